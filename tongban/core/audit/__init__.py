"""The node's audit log: every verification request and operator action, hash-chained.

Each entry's hash covers its own fields and the previous entry's hash (RFC 8785 canonical JSON, then
SHA-256), so an altered, inserted or removed entry breaks the chain at a place :meth:`AuditLog.verify`
names; :mod:`.checkpoint` signs the chain's head from time to time, so a log rewritten and re-hashed
from some entry on is caught too. Entries carry no personal data: a claim is logged by its digest, a row by its failure id.
"""

from tongban.core.audit.chain import GENESIS, AuditEntry, AuditLog, AuditProblem, entry_hash
from tongban.core.audit.checkpoint import Checkpoint, verify_log, write_checkpoint

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditLog",
    "AuditProblem",
    "Checkpoint",
    "entry_hash",
    "verify_log",
    "write_checkpoint",
]
