// `node:http` as CommonJS. An ESM `import … from 'node:http'` builds the module's ESM facade, which reads
// every export, and its lazy fetch/WebSocket getters load undici, http2 and tls: 20-30 ms of every cold start.
module.exports = process.getBuiltinModule('node:http');
