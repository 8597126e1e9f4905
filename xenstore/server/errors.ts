// Typed failures raised by the store, permissions, quotas and transactions.
// They are turned into XenStore error strings in exactly one place:
// call.ts. Anything else that escapes becomes EIO there.

export class XsFailure extends Error {}

/** The node does not exist (ENOENT). */
export class NoEntry extends XsFailure {}
/** The caller may not do this to this node (EACCES). */
export class PermissionDenied extends XsFailure {}
/** A malformed request: bad path, bad perms, wrong argument count (EINVAL). */
export class InvalidArgument extends XsFailure {}
/** A per-domain count limit was reached (EQUOTA). */
export class QuotaReached extends XsFailure {}
/** A value or reply is larger than allowed (E2BIG). */
export class DataTooBig extends XsFailure {}
/** The transaction conflicted with another change; redo it (EAGAIN). */
export class TransactionAgain extends XsFailure {}
/** Already there: a duplicate watch (EEXIST). */
export class AlreadyExists extends XsFailure {}
/** Only the owner-changing rule: unprivileged domains may not change owners (EPERM). */
export class NotPermitted extends XsFailure {}
/** A transaction is already open where none may be (EBUSY). */
export class Busy extends XsFailure {}
/** A message type this server does not implement (ENOSYS). */
export class Unsupported extends XsFailure {}
