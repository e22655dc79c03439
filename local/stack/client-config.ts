/** AWS SDK client settings for a local emulator: its endpoint, a fixed region and throwaway credentials. */
export const LOCAL_REGION = 'us-east-1';

export const localClientConfig = (endpoint: string, maxAttempts?: number) => ({
  endpoint,
  region: LOCAL_REGION,
  credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  ...(maxAttempts ? { maxAttempts } : {}),
});
