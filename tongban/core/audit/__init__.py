"""The node's audit log: every verification request and operator action, hash-chained.

Each entry's hash covers its own fields and the previous entry's hash (RFC 8785 canonical JSON, then
SHA-256), so an altered, inserted or removed entry breaks the chain at a place :meth:`AuditLog.verify`
names. Entries carry no personal data: a claim is logged by its digest, a row by its failure id.
"""

from tongban.core.audit.chain import GENESIS, AuditEntry, AuditLog, AuditProblem, entry_hash

__all__ = ["GENESIS", "AuditEntry", "AuditLog", "AuditProblem", "entry_hash"]
