"""The one exception of verification: a catalogue code, both languages, where, and an HTTP status."""

from __future__ import annotations

from schemas.errors import TongbanError

__all__ = ["HTTP_STATUS", "VerifyError"]

#: The HTTP status each verification code answers with (the web face reads it; 400 otherwise).
HTTP_STATUS = {
    "IDENTIFIER_INVALID": 422,
    "PURPOSE_REQUIRED": 422,
    "PURPOSE_UNKNOWN": 422,
    "SCOPE_DATASET": 403,
    "SCOPE_DIVISION": 403,
    "SCOPE_SEARCH": 403,
    "RATE_LIMITED": 429,
    "RECORD_NOT_FOUND": 404,
    "PROOF_UNAVAILABLE": 409,
    "STATUS_LIST_DATASET": 404,
    "NOT_READY": 503,
    "AUTH_INVALID": 401,
    "AUTH_REVOKED": 401,
    "ARGUMENT_INVALID": 422,
}


class VerifyError(TongbanError):
    """A verification refused: stable code (schemas/errors.py), Chinese and English, where."""

    @property
    def status(self) -> int:
        return HTTP_STATUS.get(self.code, 400)
