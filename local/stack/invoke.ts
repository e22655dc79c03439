import { FUNCTIONS, type FunctionName, invokeWithEvent, loadEvent } from './invoke-event.ts';
import { seedDemoProfile, startLocalStack } from './stack.ts';

const [name, file] = process.argv.slice(2);
if (!FUNCTIONS.includes(name as FunctionName) || !file) {
  console.error(`usage: npm run invoke -- <${FUNCTIONS.join('|')}> <event file>`);
  process.exit(2);
}

// The offline stand-in for `sam local invoke`: one handler, one event, against the local emulators.
const stack = await startLocalStack({ poller: false, firstTokenDelayMs: 100, perTokenDelayMs: 15 });
try {
  await seedDemoProfile(stack);
  const event = await loadEvent(stack, file);
  const result = await invokeWithEvent(stack, name as FunctionName, event, (text) =>
    process.stdout.write(text),
  );
  if (result && 'statusCode' in result) {
    console.error(`\n--- status ${result.statusCode}, headers ${JSON.stringify(result.headers)}`);
  } else {
    console.log(JSON.stringify(result, null, 2));
  }
} finally {
  await stack.close();
  process.exit(0);
}
