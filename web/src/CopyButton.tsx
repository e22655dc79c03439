import { useState } from 'react';

const copyText = async (text: string) => {
  await navigator.clipboard.writeText(text);
};

/** A button that copies, and says so for a moment. */
export function CopyButton({ label, text }: { label: 'code' | 'answer'; text: () => string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      className="copy"
      onClick={() => {
        copyText(text()).then(
          () => {
            setCopied(true);
            setTimeout(() => setCopied(false), 1500);
          },
          () => setCopied(false),
        );
      }}
    >
      {copied ? 'Copied' : 'Copy'}
      <span className="visually-hidden"> {label}</span>
    </button>
  );
}
