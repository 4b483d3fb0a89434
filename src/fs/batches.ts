import type { DirEntry } from './types';

/**
 * Entries read whole (a filesystem without readdirStream) as readdirStream gives them: sorted by
 * name, `batch` at a time.
 */
export function sortedBatches(entries: DirEntry[], batch: number): AsyncIterable<DirEntry[]> {
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const size = Math.max(1, Math.floor(batch));
  return (async function* batches(): AsyncGenerator<DirEntry[]> {
    for (let i = 0; i < entries.length; i += size) yield entries.slice(i, i + size);
  })();
}
