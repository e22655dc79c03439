import type { FileUIPart } from 'ai';
import { useId } from 'react';
import { DEFAULTS } from '../../functions/contracts/defaults.ts';

/** The five types the API takes (Converse image and document blocks). */
const ACCEPT = 'image/png,image/jpeg,image/gif,image/webp,application/pdf';

const readAsDataUrl = (file: File) =>
  new Promise<string>((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });

/** Files as `useChat` sends them: data URLs (the page's CSP allows `data:` images, not `blob:`). */
async function toParts(files: FileList): Promise<{ parts: FileUIPart[]; refused: string[] }> {
  const parts: FileUIPart[] = [];
  const refused: string[] = [];
  for (const file of files) {
    const cap = file.type === 'application/pdf' ? DEFAULTS.maxDocumentBytes : DEFAULTS.maxImageBytes;
    if (!ACCEPT.split(',').includes(file.type) || file.size > cap) {
      refused.push(file.name);
      continue;
    }
    parts.push({ type: 'file', mediaType: file.type, filename: file.name, url: await readAsDataUrl(file) });
  }
  return { parts, refused };
}

/** The composer's attach button: a labelled file input for images and PDFs. */
export function AttachButton(props: {
  count: number;
  disabled: boolean;
  onAdd(parts: FileUIPart[], refused: string[]): void;
}) {
  const id = useId();
  const full = props.count >= DEFAULTS.maxAttachments;
  return (
    <label className="attach" htmlFor={id} aria-disabled={props.disabled || full}>
      Attach
      <input
        id={id}
        type="file"
        accept={ACCEPT}
        multiple
        className="visually-hidden"
        disabled={props.disabled || full}
        onChange={async (event) => {
          const input = event.currentTarget;
          if (!input.files?.length) return;
          const { parts, refused } = await toParts(input.files);
          input.value = '';
          props.onAdd(parts.slice(0, DEFAULTS.maxAttachments - props.count), refused);
        }}
      />
    </label>
  );
}

/** Thumbnails for images, a chip for PDFs (and for files whose bytes the API did not return inline). */
export function AttachmentList(props: { files: FileUIPart[]; onRemove?: (index: number) => void }) {
  if (props.files.length === 0) return null;
  return (
    <ul className="files" aria-label="Attachments">
      {props.files.map((file, index) => (
        // Name, size and the end of the data: stable across renders, without the list's positions.
        <li key={`${file.filename ?? ''}:${file.url.length}:${file.url.slice(-24)}`} className="file">
          {file.mediaType.startsWith('image/') && file.url.startsWith('data:image/') ? (
            <img src={file.url} alt={file.filename ?? 'image'} className="thumbnail" />
          ) : (
            <span className="chip">{file.filename ?? file.mediaType}</span>
          )}
          {props.onRemove ? (
            <button
              type="button"
              className="remove"
              aria-label={`Remove ${file.filename ?? 'attachment'}`}
              onClick={() => props.onRemove?.(index)}
            >
              ×
            </button>
          ) : null}
        </li>
      ))}
    </ul>
  );
}

/** The file parts of a message. */
export const filesOf = (parts: ReadonlyArray<{ type: string }>): FileUIPart[] =>
  parts.filter((p): p is FileUIPart => p.type === 'file');
