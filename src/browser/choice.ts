/**
 * The demo page's model choice: the Served / URL / Local files tabs, the served model list, the
 * files chosen, and the selection they make (what to load, and a key telling whether it is the
 * loaded model). Local files are sorted into model and tokenizer by their content (pick.ts).
 */
import type { ModelSource } from './index.ts';
import { $, el, message, mib } from './page.ts';
import { pairFiles } from './pick.ts';

export type Tab = 'served' | 'url' | 'files';

export interface Selection {
  key: string;
  source: ModelSource;
}

export const choice = {
  tab: 'served' as Tab,
  served: [] as { name: string; format: string; model: string; tokenizer?: string; bytes: number; summary?: string }[],
  files: [] as File[],
};

export function selectTab(tab: Tab): void {
  choice.tab = tab;
  for (const b of document.querySelectorAll<HTMLButtonElement>('.tab')) {
    const on = b.dataset.tab === tab;
    b.classList.toggle('active', on);
    b.setAttribute('aria-selected', String(on));
  }
  for (const p of document.querySelectorAll<HTMLElement>('.tab-panel')) p.hidden = p.dataset.panel !== tab;
}

export async function loadServedList(): Promise<void> {
  const sel = $<HTMLSelectElement>('served');
  try {
    const res = await fetch('models/');
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = (await res.json()) as { models: typeof choice.served };
    choice.served = body.models;
  } catch (e) {
    choice.served = [];
    $('served-summary').textContent = `No model list from this server (${message(e)}): use a URL or local files.`;
  }
  sel.replaceChildren();
  if (choice.served.length === 0) {
    sel.append(el('option', { value: '' }, 'no models served (set KLOOP_MODELS)'));
    if (!$('served-summary').textContent) $('served-summary').textContent = 'The server found no models: use a URL or local files.';
    return;
  }
  choice.served.forEach((m, i) => {
    // A name such as "stories260K (gguf)" says its format already.
    const format = m.name.includes(`(${m.format})`) ? '' : ` · ${m.format}`;
    sel.append(el('option', { value: String(i) }, `${m.name}${format} · ${mib(m.bytes)}`));
  });
  const preferred = choice.served.findIndex((m) => m.name === 'stories260K');
  sel.value = String(preferred >= 0 ? preferred : 0);
  showServedSummary();
}

export function showServedSummary(): void {
  const m = choice.served[Number($<HTMLSelectElement>('served').value)];
  $('served-summary').textContent = m ? `${m.model}${m.tokenizer ? ` + ${m.tokenizer}` : ''}${m.summary ? ` · ${m.summary}` : ''}` : '';
}

export function setFiles(files: File[], note = ''): void {
  choice.files = files;
  $('files-chosen').textContent = files.length ? `${files.map((f) => `${f.name} (${mib(f.size)})`).join(', ')}${note}` : '';
}

export async function selection(tab: Tab): Promise<Selection> {
  if (tab === 'served') {
    const m = choice.served[Number($<HTMLSelectElement>('served').value)];
    if (!m) throw new Error('no served model chosen: pick one, or use a URL or local files');
    return { key: `served:${m.model}`, source: m.tokenizer ? { model: m.model, tokenizer: m.tokenizer } : m.model };
  }
  if (tab === 'url') {
    const model = $<HTMLInputElement>('model-url').value.trim();
    const tok = $<HTMLInputElement>('tok-url').value.trim();
    if (!model) throw new Error('Model URL is empty: fill in the URL of a .gguf file, or of a llama2.c .bin and its tokenizer below');
    return { key: `url:${model}|${tok}`, source: tok ? { model, tokenizer: tok } : model };
  }
  const files = choice.files;
  if (files.length === 0) throw new Error('no local files chosen: drop a .gguf, or a llama2.c .bin with its tokenizer (tok*.bin or tokenizer.json)');
  const p = await pairFiles(files);
  const left = p.ignored.map((x) => `${x.file.name} (${x.why})`).join(', ');
  setFiles(files, ` → model ${p.model.name}${p.tokenizer ? `, tokenizer ${p.tokenizer.name}` : ''}${left ? `; left out: ${left}` : ''}`);
  const key = `files:${files.map((f) => `${f.name}:${f.size}:${f.lastModified}`).join('|')}`;
  return { key, source: p.tokenizer ? { model: p.model, tokenizer: p.tokenizer } : p.model };
}

/** The tabs, the file input and the drop zone (files dropped anywhere on the page count): `onFiles` gets what was chosen. */
export function wireFiles(onFiles: (files: File[]) => void): void {
  for (const b of document.querySelectorAll<HTMLButtonElement>('.tab')) b.onclick = () => selectTab(b.dataset.tab as Tab);
  const input = $<HTMLInputElement>('files');
  input.onchange = () => {
    onFiles([...(input.files ?? [])]);
    // The same files chosen again fire a change again.
    input.value = '';
  };
  const drop = $('drop');
  const over = (on: boolean) => (e: DragEvent) => {
    e.preventDefault();
    drop.classList.toggle('over', on);
  };
  drop.addEventListener('dragenter', over(true));
  drop.addEventListener('dragover', over(true));
  drop.addEventListener('dragleave', over(false));
  drop.addEventListener('drop', (e) => {
    over(false)(e);
    onFiles([...(e.dataTransfer?.files ?? [])]);
  });
  // Files dropped anywhere on the page go to the drop zone instead of replacing the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => {
    e.preventDefault();
    if (!drop.contains(e.target as Node) && e.dataTransfer?.files.length) {
      selectTab('files');
      onFiles([...e.dataTransfer.files]);
    }
  });
}
