import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The chat page. `npm run build:web` writes web/dist (what `-c chat:web=true` deploys, with a config.json
// beside it); `npm run dev` serves it from source through local/web-server.ts with a local config.json.
export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  // React + the AI SDK: about 430 kB minified, 126 kB gzipped, in one chunk the page needs at once. The
  // output has no inline script or style: the deployed page's CSP allows 'self' only.
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    chunkSizeWarningLimit: 700,
  },
  server: { host: '127.0.0.1' },
});
