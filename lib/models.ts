import { type Stack, Token } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';

/**
 * The four forms `chat:modelId` may take. Each needs different IAM resources, and a cross-Region
 * profile can only be invoked from a source Region of its geography.
 */
export type ModelRef =
  | { kind: 'foundation-model'; id: string; foundationModelId: string }
  | { kind: 'geography-profile'; id: string; geography: string; foundationModelId: string }
  | { kind: 'global-profile'; id: string; foundationModelId: string }
  | { kind: 'application-profile'; id: string; region: string; account: string };

const MODEL_ID_FORMS = [
  'a foundation model id (anthropic.claude-haiku-4-5-20251001-v1:0)',
  'a geography inference profile (us., eu., apac., jp., au., ca., us-gov. … + a foundation model id)',
  'a global inference profile (global. + a foundation model id)',
  'an application inference profile ARN (arn:aws:bedrock:<region>:<account>:application-inference-profile/<id>)',
];

// provider "." model; a provider is one word, so "us.anthropic.x" is a profile and "anthropic.claude-x" is not.
const FOUNDATION_MODEL = /^[a-z][a-z0-9-]*\.[a-z0-9][a-z0-9.:-]*$/;
const PROFILE = /^([a-z]{2,}(?:-[a-z]+)?)\.([a-z][a-z0-9]*\.[a-z0-9][a-z0-9.:-]*)$/;
const APPLICATION_PROFILE =
  /^arn:aws[a-z-]*:bedrock:([a-z]{2}(?:-[a-z]+)+-\d):(\d{12}):application-inference-profile\/[a-z0-9]+$/;

/** Parses a model id, or returns why it is none of the accepted forms. */
export function parseModelId(id: string): ModelRef | { error: string } {
  const app = APPLICATION_PROFILE.exec(id);
  if (app) return { kind: 'application-profile', id, region: app[1] ?? '', account: app[2] ?? '' };
  const profile = PROFILE.exec(id);
  if (profile) {
    const [, prefix = '', foundationModelId = ''] = profile;
    return prefix === 'global'
      ? { kind: 'global-profile', id, foundationModelId }
      : { kind: 'geography-profile', id, geography: prefix, foundationModelId };
  }
  if (FOUNDATION_MODEL.test(id)) return { kind: 'foundation-model', id, foundationModelId: id };
  return { error: `"${id}" is not a model id; expected ${MODEL_ID_FORMS.join(', or ')}` };
}

/** Source Regions of each geography's system-defined profiles (the prefix of the Region name). */
const GEOGRAPHY_REGIONS: Record<string, (region: string) => boolean> = {
  us: (r) => r.startsWith('us-') && !r.startsWith('us-gov-'),
  'us-gov': (r) => r.startsWith('us-gov-'),
  eu: (r) => r.startsWith('eu-'),
  apac: (r) => r.startsWith('ap-'),
  jp: (r) => r === 'ap-northeast-1' || r === 'ap-northeast-3',
  au: (r) => r === 'ap-southeast-2' || r === 'ap-southeast-4',
  ca: (r) => r.startsWith('ca-'),
};

/**
 * Whether the model can be invoked from the stack's Region: an error when it cannot, a warning when
 * the Region is unknown at synth (environment-agnostic stack) or the geography is one this check
 * does not know, nothing when it fits.
 */
export function checkModelRegion(
  ref: ModelRef,
  region: string,
  key = 'chat:modelId',
): { error?: string; warning?: string } {
  const agnostic = Token.isUnresolved(region);
  if (ref.kind === 'application-profile') {
    if (agnostic)
      return {
        warning: `${key} is an application inference profile in ${ref.region}; the stack has no explicit Region, so nothing checks it deploys there (set chat:region=${ref.region}).`,
      };
    return ref.region === region
      ? {}
      : {
          error: `${key} is an application inference profile in ${ref.region}, but the stack deploys to ${region}; a profile is invoked in its own Region.`,
        };
  }
  if (ref.kind !== 'geography-profile') return {};
  const fits = GEOGRAPHY_REGIONS[ref.geography];
  if (!fits)
    return {
      warning: `${key} uses the inference profile geography "${ref.geography}.", which this check does not know; make sure the deploy Region is one of its source Regions.`,
    };
  if (agnostic)
    return {
      warning: `${key} is a "${ref.geography}." inference profile, usable only from ${ref.geography} Regions; the stack has no explicit Region, so nothing checks that (set chat:region).`,
    };
  return fits(region)
    ? {}
    : {
        error: `${key} "${ref.id}" is a "${ref.geography}." inference profile, which cannot be invoked from ${region}; use a profile of that Region's geography, "global.", or a foundation model id.`,
      };
}

/**
 * IAM statements that let a role invoke the model with `actions`. A profile needs the profile and the
 * foundation model in every Region it routes to, and the model statement is conditioned on being
 * reached through this profile; a global profile is also authorized against the Region-less model ARN.
 */
export function modelInvokeStatements(stack: Stack, ref: ModelRef, actions: string[]): PolicyStatement[] {
  const { partition, region, account } = stack;
  const foundation = (r: string, model: string) => `arn:${partition}:bedrock:${r}::foundation-model/${model}`;
  if (ref.kind === 'foundation-model')
    return [new PolicyStatement({ actions, resources: [foundation(region, ref.foundationModelId)] })];
  const profileArn =
    ref.kind === 'application-profile'
      ? ref.id
      : `arn:${partition}:bedrock:${region}:${account}:inference-profile/${ref.id}`;
  const models =
    ref.kind === 'application-profile'
      ? // The application profile's ARN does not name its model; the condition keeps the grant to this profile.
        [
          foundation('*', '*'),
          foundation('', '*'),
          `arn:${partition}:bedrock:*:${account}:inference-profile/*`,
        ]
      : ref.kind === 'global-profile'
        ? [foundation('*', ref.foundationModelId), foundation('', ref.foundationModelId)]
        : [foundation('*', ref.foundationModelId)];
  return [
    new PolicyStatement({ actions, resources: [profileArn] }),
    new PolicyStatement({
      actions,
      resources: models,
      conditions: { StringEquals: { 'bedrock:InferenceProfileArn': profileArn } },
    }),
  ];
}
