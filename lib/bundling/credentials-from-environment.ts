import { type FromEnvInit, fromEnv } from '@aws-sdk/credential-provider-env';

// Stands in for `@aws-sdk/credential-provider-node` in bundles for Lambda's on-demand environments: the
// runtime puts the role's credentials in the environment, where the SDK's default chain looks first and
// always finds them, so the chain's other providers (SSO, ini, process, web identity, container, IMDS)
// never run there, yet cost 87 KiB of bundle and about 14 ms of every cold start.
export const defaultProvider = (init?: FromEnvInit) => fromEnv(init);
