"""Encryption at rest: the node's master key, the library's data and index keys, and the envelope.

Envelope keys: each library holds its own AES-256 **data keys** and one HMAC-SHA256 **index key** in its
``data_keys`` table, each wrapped (AES-GCM) by the node's **master key**, which never enters the library.
The master key comes from ``TONGBAN_MASTER_KEY_<node>`` (base64 of 32 bytes; production: a secret store
fills it) or else from ``<keys folder>/<node>/master.key`` (created by ``tongban init``, mode 0600).

A sealed value is the text ``tb1.<data key id>.<base64(nonce ‖ ciphertext ‖ tag)>``: AES-256-GCM with a
random 96-bit nonce (the same value sealed twice gives two different texts), and the associated data
``<dataset>.<field>:<record key>`` so a ciphertext moved to another record or field fails to open.
A keyed hash of an identifier (:meth:`Keyring.index`) lets verification find a record without the
plaintext: equal identifiers give equal hashes, and nobody without the index key can compute one.

>>> ring = Keyring("a1b2c3d4e5f6", {"a1b2c3d4e5f6": bytes(range(32))}, bytes(32))
>>> sealed = ring.seal("蒋秀珍", b"population.name:11010519491231002X")
>>> sealed.startswith("tb1.") and sealed != ring.seal("蒋秀珍", b"population.name:11010519491231002X")
True
>>> ring.open(sealed, b"population.name:11010519491231002X", where="test")
'蒋秀珍'
>>> ring.index("11010519491231002x") == ring.index(" 11010519491231002X")
True
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.errors import TongbanError

__all__ = [
    "INDEXED",
    "MASTER_ENV",
    "SEALED",
    "Keyring",
    "Vault",
    "VaultError",
    "WrappedKey",
    "index_column",
    "is_sealed",
]

#: The fields sealed in every row of a dataset (records, their history): personal and sensitive values
#: that are not the record's key. Keys stay plain: README "Personal data" says why.
SEALED: dict[str, tuple[str, ...]] = {
    "population": ("name", "birth_date", "household_address"),
    "business": ("legal_representative", "legal_rep_id_number", "address"),
    "license": ("holder_name", "holder_code", "surface"),
}

#: Sealed fields that verification looks up: each has a keyed-hash column ``_ix_<field>``.
INDEXED: dict[str, tuple[str, ...]] = {"license": ("holder_code",)}

#: The environment variable holding a node's master key (``{node}`` is its code).
MASTER_ENV = "TONGBAN_MASTER_KEY_{node}"

_PREFIX = "tb1."
_NONCE = 12
_TAG = 16
_KID_RE = re.compile(r"^[0-9a-f]{12}$")
_CHECK = b"tongban master key check v1"


def index_column(name: str) -> str:
    """The keyed-hash column of an indexed field."""
    return f"_ix_{name}"


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(_PREFIX)


class VaultError(TongbanError):
    """A master key, data key or ciphertext that cannot be used."""


def _decode_master(text: str, where: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip().replace("-", "+").replace("_", "/") + "==", validate=False)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise VaultError(
            "MASTER_KEY_INVALID",
            "主密钥必须是 32 字节的 base64 文本",
            "the master key must be 32 bytes written as base64",
            where,
        )
    return raw


def master_check(master: bytes) -> str:
    """A fingerprint of the master key kept beside each wrapped key: tells a wrong master key from a
    tampered wrapped key (it reveals nothing of the key)."""
    return hmac.new(master, _CHECK, hashlib.sha256).hexdigest()[:32]


@dataclass
class Vault:
    """Where a node's master key comes from: the environment first, else ``folder/<node>/master.key``.

    ``key`` gives it directly (benchmarks, tests).
    """

    node: str
    folder: Path | None = None
    key: bytes | None = None
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)

    @property
    def env_name(self) -> str:
        return MASTER_ENV.format(node=self.node)

    @property
    def path(self) -> Path | None:
        return self.folder / self.node / "master.key" if self.folder is not None else None

    def master(self) -> bytes:
        """The master key; VaultError MASTER_KEY_MISSING / MASTER_KEY_INVALID."""
        if self.key is not None:
            return self.key
        text = self.env.get(self.env_name)
        if text:
            return _decode_master(text, f"${self.env_name}")
        path = self.path
        if path is None or not path.is_file():
            raise VaultError(
                "MASTER_KEY_MISSING",
                f"节点 {self.node} 没有主密钥：运行 tongban init，或设置 {self.env_name}",
                f"node {self.node} has no master key: run `tongban init`, or set {self.env_name}",
                str(path) if path else self.env_name,
            )
        if path.stat().st_mode & 0o077:
            raise VaultError(
                "MASTER_KEY_INVALID",
                "主密钥文件可被他人读取（应为 0600）",
                "the master key file is readable by others (it must be mode 0600)",
                str(path),
            )
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            text = ""
        return _decode_master(text, str(path))

    def create(self) -> bool:
        """Make the master key file (mode 0600) unless the key comes from elsewhere or exists."""
        if self.key is not None or self.env.get(self.env_name) or self.path is None or self.path.exists():
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
        return True


@dataclass(frozen=True)
class WrappedKey:
    """One row of ``data_keys``: a data or index key sealed by the master key."""

    key_id: str
    purpose: str  # data | index
    state: str  # active | retiring (data keys being replaced) | index
    wrapped: str
    check: str

    @classmethod
    def wrap(cls, master: bytes, key: bytes, purpose: str, state: str) -> WrappedKey:
        kid = secrets.token_hex(6)
        nonce = secrets.token_bytes(_NONCE)
        blob = AESGCM(master).encrypt(nonce, key, f"data_keys:{kid}:{purpose}".encode())
        return cls(kid, purpose, state, base64.b64encode(nonce + blob).decode(), master_check(master))

    def unwrap(self, master: bytes, where: str) -> bytes:
        if not hmac.compare_digest(self.check, master_check(master)):
            raise VaultError(
                "MASTER_KEY_WRONG",
                "主密钥不是加密此库数据密钥的那一把",
                "the master key is not the one that wrapped this library's data keys",
                where,
            )
        try:
            blob = base64.b64decode(self.wrapped, validate=True)
            return AESGCM(master).decrypt(
                blob[:_NONCE], blob[_NONCE:], f"data_keys:{self.key_id}:{self.purpose}".encode()
            )
        except (binascii.Error, ValueError, InvalidTag):
            raise VaultError(
                "DATA_TAMPERED",
                f"数据密钥 {self.key_id} 被改动，无法解开",
                f"data key {self.key_id} was altered and cannot be unwrapped",
                where,
            ) from None


class Keyring:
    """A library's unwrapped keys: the data keys by id (one active) and the index key."""

    def __init__(
        self, active: str, data: dict[str, bytes], index_key: bytes, *, lenient: bool = False
    ) -> None:
        self.active = active
        self._aead = {kid: AESGCM(k) for kid, k in data.items()}
        self._index_key = index_key
        #: While a library's plaintext rows are being sealed (schema step 6), plain values still read.
        self.lenient = lenient

    @property
    def key_ids(self) -> set[str]:
        return set(self._aead)

    def seal(self, value: str, aad: bytes) -> str:
        """``value`` sealed under the active data key, bound to ``aad``."""
        nonce = os.urandom(_NONCE)
        blob = self._aead[self.active].encrypt(nonce, value.encode("utf-8"), aad)
        return f"{_PREFIX}{self.active}.{base64.b64encode(nonce + blob).decode()}"

    def seal_many(self, values: list[str | None], aads: list[bytes]) -> list[str | None]:
        """:meth:`seal` over a column (nonces drawn in one call; the same envelopes, faster)."""
        encrypt = self._aead[self.active].encrypt
        head = f"{_PREFIX}{self.active}."
        nonces = os.urandom(_NONCE * len(values))
        b2a = binascii.b2a_base64
        out: list[str | None] = []
        append = out.append
        for i, (value, bound) in enumerate(zip(values, aads, strict=True)):
            if value is None:
                append(None)
                continue
            nonce = nonces[i * _NONCE : (i + 1) * _NONCE]
            append(head + b2a(nonce + encrypt(nonce, value.encode("utf-8"), bound), newline=False).decode())
        return out

    def key_of(self, text: str) -> str | None:
        """The data key id a sealed text names (None for a plain value)."""
        return text[len(_PREFIX) : len(_PREFIX) + 12] if is_sealed(text) else None

    def open(self, text: str, aad: bytes, *, where: str) -> str:
        """The plaintext of a sealed value; VaultError DATA_TAMPERED or DATA_KEY_UNKNOWN."""
        if not text.startswith(_PREFIX):
            if self.lenient:
                return text
            raise VaultError(
                "DATA_TAMPERED",
                "应为密文的字段存有明文或无效内容",
                "a field that must be sealed holds plain or invalid text",
                where,
            )
        kid, _, body = text[len(_PREFIX) :].partition(".")
        aead = self._aead.get(kid)
        if aead is None:
            raise VaultError(
                "DATA_KEY_UNKNOWN" if _KID_RE.match(kid) else "DATA_TAMPERED",
                f"密文所指的数据密钥 {kid[:12]!r} 不在库中",
                f"the ciphertext names data key {kid[:12]!r}, which the library does not hold",
                where,
            )
        try:
            blob = base64.b64decode(body, validate=True)
            if len(blob) < _NONCE + _TAG:
                raise ValueError("short")
            return aead.decrypt(blob[:_NONCE], blob[_NONCE:], aad).decode("utf-8")
        except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
            raise VaultError(
                "DATA_TAMPERED",
                "密文被改动或放错了位置，认证失败",
                "the ciphertext was altered or moved to another record, and fails authentication",
                where,
            ) from None

    def open_many(self, texts: list[str | None], aads: list[bytes], *, where: str) -> list[str | None]:
        """:meth:`open` over a column; any value that does not open fails the whole call."""
        plen = len(_PREFIX)
        aeads = self._aead
        a2b = binascii.a2b_base64
        out: list[str | None] = []
        append = out.append
        for text, bound in zip(texts, aads, strict=True):
            if text is None:
                append(None)
                continue
            aead = aeads.get(text[plen : plen + 12]) if text.startswith(_PREFIX) else None
            if aead is None or text[plen + 12 : plen + 13] != ".":
                append(
                    self.open(text, bound, where=where)
                )  # plain (while pending), unknown key: the slow path
                continue
            try:
                blob = a2b(text[plen + 13 :], strict_mode=True)
                if len(blob) < _NONCE + _TAG:
                    raise ValueError("short")
                append(aead.decrypt(blob[:_NONCE], blob[_NONCE:], bound).decode("utf-8"))
            except (binascii.Error, ValueError, InvalidTag, UnicodeDecodeError):
                append(self.open(text, bound, where=where))  # raises DATA_TAMPERED with its message
        return out

    def digest(self, text: str) -> str:
        """A keyed digest (HMAC-SHA256, hex) of any text, e.g. a failed transfer's content."""
        return hmac.new(self._index_key, b"digest:" + text.encode("utf-8"), hashlib.sha256).hexdigest()

    def index(self, value: str) -> str:
        """The keyed hash (HMAC-SHA256, hex) of an identifier, as the ``_ix_`` columns hold it."""
        return hmac.new(self._index_key, value.strip().upper().encode("utf-8"), hashlib.sha256).hexdigest()


def new_keys(master: bytes) -> list[WrappedKey]:
    """A new library's keys: one active data key and the index key, wrapped."""
    return [
        WrappedKey.wrap(master, secrets.token_bytes(32), "data", "active"),
        WrappedKey.wrap(master, secrets.token_bytes(32), "index", "index"),
    ]


def unwrap_all(master: bytes, rows: list[WrappedKey], where: str, *, lenient: bool) -> Keyring:
    """The keyring of a library's ``data_keys`` rows."""
    data: dict[str, bytes] = {}
    index_key = b""
    active = ""
    for row in rows:
        key = row.unwrap(master, where)
        if row.purpose == "index":
            index_key = key
        else:
            data[row.key_id] = key
            if row.state == "active":
                active = row.key_id
    if not active or not index_key:
        raise VaultError(
            "DATA_TAMPERED",
            "库的数据密钥表不完整（缺少当前数据密钥或索引密钥）",
            "the library's data key table is incomplete (no active data key or no index key)",
            where,
        )
    return Keyring(active, data, index_key, lenient=lenient)


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)
