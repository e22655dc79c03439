import { createRoot } from 'react-dom/client';
import { App, applyKeptTheme } from './App.tsx';
import { loadConfig } from './config.ts';
import { preloadMarkdown } from './Message.tsx';
import './styles.css';

applyKeptTheme();
preloadMarkdown();
const element = document.getElementById('root');
if (!element) throw new Error('index.html has no #root');
const root = createRoot(element);
loadConfig().then(
  (config) => root.render(<App config={config} />),
  (error: unknown) =>
    root.render(
      <main className="sign-in">
        <p role="alert">{error instanceof Error ? error.message : String(error)}</p>
      </main>,
    ),
);
