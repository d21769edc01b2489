"""What keys and the trust list share: canonical JSON, base64url, ISO times, key ids, node codes,
atomic writes, and :class:`TrustError`."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from schemas.errors import TongbanError

__all__ = [
    "KEY_ID_RE",
    "NODE_RE",
    "TrustError",
    "b64url",
    "canonical_json",
    "check_node",
    "from_b64url",
    "from_iso",
    "iso",
    "key_id",
    "raw_public",
    "rfc8785_bytes",
    "utc_now",
    "write_atomic",
]

UTC = datetime.UTC
TRUST_VERSION = 1
NODE_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")


class TrustError(TongbanError):
    """A key or trust list that cannot be used: stable code, Chinese and English, and where."""


# --- small shared helpers --------------------------------------------------------------------------


def canonical_json(obj: Any) -> bytes:
    """The canonical JSON bytes that are signed and hashed.

    >>> canonical_json({"b": 1, "a": "通办"}).decode()
    '{"a":"通办","b":1}'
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def b64url(data: bytes) -> str:
    """Unpadded base64url, as in JWTs.

    >>> b64url(b"\\xff\\xfe")
    '__4'
    """
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    """Decode base64url with or without padding; ``ValueError`` when it is not base64url."""
    if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(f"not base64url: {exc}") from exc


def iso(moment: datetime.datetime) -> str:
    """A moment as UTC ISO 8601 with microseconds and ``Z``.

    >>> iso(datetime.datetime(2024, 1, 2, 8, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=8))))
    '2024-01-02T00:00:00.000000Z'
    """
    if moment.tzinfo is None:
        raise ValueError("a time must carry its UTC offset")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_iso(text: str) -> datetime.datetime:
    """Parse an ISO 8601 time that carries an offset (``Z`` or ``+08:00``); ``ValueError`` otherwise."""
    if not isinstance(text, str):
        raise ValueError("a time must be a string")
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"time without a UTC offset: {text}")
    return moment.astimezone(UTC)


def utc_now(now: datetime.datetime | None = None) -> datetime.datetime:
    if now is None:
        return datetime.datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must carry its UTC offset")
    return now.astimezone(UTC)


def raw_public(public_key: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return bytes(public_key)


def key_id(public_key: Ed25519PublicKey | bytes) -> str:
    """First 16 hex characters of sha256 of the raw 32-byte public key.

    >>> key_id(bytes(32))
    '66687aadf862bd77'
    """
    return hashlib.sha256(raw_public(public_key)).hexdigest()[:16]


def check_node(node: str) -> str:
    if not isinstance(node, str) or not NODE_RE.match(node):
        raise TrustError(
            "NODE_INVALID",
            f"节点代码无效：{node!r}（只能含字母、数字、_ . -）",
            f"invalid node code {node!r} (letters, digits, _ . - only)",
            str(node),
        )
    return node


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_SURROGATE = re.compile("[\ud800-\udfff]")


def _plain(obj: Any, depth: int = 0) -> bool:
    """Whether ``obj`` holds only what ``json.dumps`` renders exactly as RFC 8785 does: strings, ints,
    booleans, None, lists and objects with ASCII keys — no floats, no lone surrogates."""
    if depth > 32:
        return False
    if obj is None or isinstance(obj, bool):
        return True
    if isinstance(obj, str):
        return obj.isascii() or _SURROGATE.search(obj) is None
    if isinstance(obj, int):
        return abs(obj) < 2**53
    if isinstance(obj, list | tuple):
        return all(_plain(v, depth + 1) for v in obj)
    if isinstance(obj, dict):
        return all(isinstance(k, str) and k.isascii() and _plain(v, depth + 1) for k, v in obj.items())
    return False


def rfc8785_bytes(obj: Any) -> bytes:
    """RFC 8785 canonical JSON of ``obj``, the same bytes as ``rfc8785.dumps`` but, for the common case
    (no floats, ASCII keys), through the C ``json`` encoder: sorted keys, no spaces, UTF-8, control
    characters escaped as ECMAScript does.

    >>> import rfc8785
    >>> sample = {"b": [1, None, True], "a": "通办\\u0001\\n\\"/", "c": {"z": -5, "y": ""}}
    >>> rfc8785_bytes(sample) == rfc8785.dumps(sample)
    True
    """
    if _plain(obj):
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    import rfc8785

    return rfc8785.dumps(obj)
