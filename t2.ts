import { BedrockRuntimeClient, ConverseStreamCommand } from '@aws-sdk/client-bedrock-runtime';
import { startBedrockRuntime } from '/work/main/local/emulators/bedrock-runtime.ts';

const emu = await startBedrockRuntime({});
const client = new BedrockRuntimeClient({
  endpoint: emu.url,
  region: 'us-east-1',
  credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
});
process.on('exit', (c) => console.log('exit', c));
emu.failNext('throttle');
try {
  await client.send(
    new ConverseStreamCommand({ modelId: 'm', messages: [{ role: 'user', content: [{ text: 'hi' }] }] }),
  );
  console.log('no error');
} catch (e) {
  console.log('ERR', (e as Error).name);
}
client.destroy();
await emu.close();
