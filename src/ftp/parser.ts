// The only importer of the vendored protocol package: the rest of src/ftp goes through here.
export { CommandFramer, formatReply, sanitizeLine, quotePath } from 'ftp-srv-protocol-parser';
export type { FrameEvent, CommandEvent, ErrorEvent, FramerOptions } from 'ftp-srv-protocol-parser';
