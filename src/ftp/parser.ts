// The only importer of the vendored protocol package: the rest of src/ftp goes through here.
export { CommandFramer, formatReply, sanitizeLine, quotePath } from 'ftp-srv-protocol-parser';
export type { FrameEvent, CommandEvent, ErrorEvent, FramerOptions } from 'ftp-srv-protocol-parser';

/**
 * Text for the wire in `encoding: 'latin1'`: characters above U+00FF become `?`. Node's latin1
 * encoder keeps only a character's low byte, so U+010D became CR and U+010A LF (U+4E0D and U+4E0A
 * too, common in Chinese names): a name on disk forged reply lines and listing lines, after every
 * check for CR and LF had passed. pyftpdlib sends `?` too (errors='replace').
 */
export function latin1Safe(text: string): string {
  return /[^\x00-\xff]/.test(text) ? text.replace(/[^\x00-\xff]/g, '?') : text;
}
