// Typed failures raised by the store, permissions, quotas and transactions.
// They are turned into XenStore error strings in exactly one place:
// call.ts. Anything else that escapes becomes EIO there.

/**
 * Base of the typed failures. They are answers, not bugs: no stack trace is
 * captured, so a client provoking errors in a loop costs little.
 */
export class XsFailure extends Error {
  constructor(message?: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }
}

/** The node does not exist (ENOENT). */
export class NoEntry extends XsFailure {}
/** The caller may not do this to this node (EACCES). */
export class PermissionDenied extends XsFailure {}
/** A malformed request: bad path, bad perms, wrong argument count (EINVAL). */
export class InvalidArgument extends XsFailure {}
/**
 * A per-domain limit was reached. C xenstored answers ENOSPC for every limit
 * but the watch count, which 4.17 answers with E2BIG.
 */
export class QuotaReached extends XsFailure {
  constructor(what: string, readonly code: 'ENOSPC' | 'E2BIG' = 'ENOSPC') {
    super(what);
  }
}
/** A reply is larger than a message may be (E2BIG). */
export class DataTooBig extends XsFailure {}
/** The transaction conflicted with another change; redo it (EAGAIN). */
export class TransactionAgain extends XsFailure {}
/** A step of the transaction failed half-way (its node cap): it cannot commit (ENOMEM, as C's trans->fail). */
export class TransactionFailed extends XsFailure {}
/** Already there: a duplicate watch (EEXIST). */
export class AlreadyExists extends XsFailure {}
/** Only the owner-changing rule: unprivileged domains may not change owners (EPERM). */
export class NotPermitted extends XsFailure {}
/** A transaction is already open where none may be (EBUSY). */
export class Busy extends XsFailure {}
/** A message type this server does not implement (ENOSYS). */
export class Unsupported extends XsFailure {}
