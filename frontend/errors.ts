// An error meant for the person running xsw-front: one sentence naming the
// thing and the fix. The CLI prints the message alone and exits non-zero.
export class FrontError extends Error {
  constructor(
    message: string,
    readonly code = 'EFRONT',
  ) {
    super(message);
    this.name = 'FrontError';
  }
}
