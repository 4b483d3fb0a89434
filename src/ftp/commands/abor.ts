import type { CommandDescriptor } from './types';

export const abor: CommandDescriptor = {
  verb: 'ABOR',
  help: 'ABOR (abort data-channel transfer).',
  login: true,
  arg: 'none',
  duringTransfer: true,
  handle({ session }) {
    // A running transfer answers for itself: 426 then 226.
    if (session.abortTransfer()) return;
    if (session.dataChannel) {
      session.setDataChannel(null);
      session.reply(225, 'ABOR command successful; data channel closed.');
      return;
    }
    session.reply(225, 'No transfer to abort.');
  },
};
