"""The trust list: every node's public keys with their validity, signed by the root, and the
operations on it (init, rotate, revoke)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tongban.core.trust.canonical import (
    NODE_RE,
    TRUST_VERSION,
    TrustError,
    b64url,
    canonical_json,
    check_node,
    from_b64url,
    from_iso,
    iso,
    key_id,
    raw_public,
    utc_now,
    write_atomic,
)
from tongban.core.trust.keys import KeyStore

__all__ = ["TrustEntry", "TrustList", "init_trust", "revoke", "rotate"]

# --- the trust list --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustEntry:
    """One public key of one node, with its validity."""

    node: str
    key_id: str
    public_key: bytes  # raw 32 bytes
    valid_from: datetime.datetime
    valid_until: datetime.datetime | None = None
    revoked_at: datetime.datetime | None = None
    revoked_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "key_id": self.key_id,
            "public_key": b64url(self.public_key),
            "valid_from": iso(self.valid_from),
            "valid_until": iso(self.valid_until) if self.valid_until else None,
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
            "revoked_reason": self.revoked_reason,
        }

    @classmethod
    def from_dict(cls, data: Any) -> TrustEntry:
        """Read an entry; ``ValueError`` naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("an entry must be an object")
        missing = {"node", "key_id", "public_key", "valid_from"} - data.keys()
        if missing:
            raise ValueError(f"entry lacks {', '.join(sorted(missing))}")
        node, kid = data["node"], data["key_id"]
        if not isinstance(node, str) or not NODE_RE.match(node):
            raise ValueError(f"bad node {node!r}")
        public = from_b64url(data["public_key"])
        if len(public) != 32:
            raise ValueError(f"public key of {kid!r} is not 32 bytes")
        if kid != key_id(public):
            raise ValueError(f"key id {kid!r} does not match its public key")
        reason = data.get("revoked_reason")
        if reason is not None and not isinstance(reason, str):
            raise ValueError(f"bad revoked_reason of {kid}")

        def when(name: str) -> datetime.datetime | None:
            value = data.get(name)
            return None if value is None else from_iso(value)

        valid_from = when("valid_from")
        assert valid_from is not None
        return cls(node, kid, public, valid_from, when("valid_until"), when("revoked_at"), reason)

    def revoked(self, moment: datetime.datetime) -> bool:
        """Whether the key was revoked at or before ``moment``."""
        return self.revoked_at is not None and self.revoked_at <= moment

    def valid_at(self, moment: datetime.datetime) -> bool:
        """Whether ``moment`` lies in ``valid_from .. valid_until`` (revocation aside)."""
        return self.valid_from <= moment and (self.valid_until is None or moment <= self.valid_until)


@dataclass
class TrustList:
    """The signed list of every node's public keys. ``root`` is the node whose key signs it."""

    root: str
    issued_at: datetime.datetime
    entries: list[TrustEntry] = field(default_factory=list)
    key_id: str = ""  # the root key that signed (set by save and load)
    signature: str = ""

    # -- reading and writing --

    def unsigned(self) -> dict[str, Any]:
        """Everything that is signed, as a JSON-ready dict."""
        data: dict[str, Any] = {
            "version": TRUST_VERSION,
            "root": self.root,
            "issued_at": iso(self.issued_at),
            "entries": [e.to_dict() for e in self.entries],
        }
        if self.key_id:  # lists signed without naming the key are checked against every root key
            data["key_id"] = self.key_id
        return data

    def canonical_bytes(self) -> bytes:
        """The canonical JSON that the root signs."""
        return canonical_json(self.unsigned())

    def to_json(self) -> str:
        """The file's text (indented for people; the signature is over the canonical form)."""
        return (
            json.dumps({**self.unsigned(), "signature": self.signature}, ensure_ascii=False, indent=2) + "\n"
        )

    @classmethod
    def from_json(cls, text: str, where: str = "", root_public_key: bytes | None = None) -> TrustList:
        """Parse and verify a trust list's text (see :meth:`load`)."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("the trust list must be a JSON object")
            if data.get("version") != TRUST_VERSION:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            missing = {"root", "issued_at", "entries", "signature"} - data.keys()
            if missing:
                raise ValueError(f"missing {', '.join(sorted(missing))}")
            extra = data.keys() - {"version", "root", "issued_at", "key_id", "entries", "signature"}
            if extra:
                raise ValueError(f"unknown fields {', '.join(sorted(extra))}")
            if not isinstance(data["entries"], list):
                raise ValueError("entries must be a list")
            entries = [TrustEntry.from_dict(e) for e in data["entries"]]
            seen: set[str] = set()
            for e in entries:
                if e.key_id in seen:
                    raise ValueError(f"key id {e.key_id} is listed twice")
                seen.add(e.key_id)
            root, signed_by, signature = data["root"], data.get("key_id", ""), data["signature"]
            if not isinstance(root, str) or not NODE_RE.match(root):
                raise ValueError(f"bad root {root!r}")
            if not isinstance(signed_by, str) or not isinstance(signature, str):
                raise ValueError("key_id and signature must be strings")
            trust = cls(root, from_iso(data["issued_at"]), entries, signed_by, signature)
            raw_signature = from_b64url(signature)
            message = canonical_json({k: v for k, v in data.items() if k != "signature"})
        except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
            raise TrustError(
                "TRUST_UNREADABLE", f"信任列表无法读取：{exc}", f"the trust list cannot be read: {exc}", where
            ) from exc
        trust._verify(message, raw_signature, where, root_public_key)
        return trust

    def _verify(self, message: bytes, raw_signature: bytes, where: str, pinned: bytes | None) -> None:
        """Check ``raw_signature`` over ``message`` (the file's own canonical form) against a root key."""

        def fail(zh: str, en: str) -> TrustError:
            return TrustError(
                "TRUST_SIGNATURE", f"信任列表签名无效：{zh}", f"trust list signature invalid: {en}", where
            )

        roots = [e for e in self.entries if e.node == self.root]
        if self.key_id:
            roots = [e for e in roots if e.key_id == self.key_id]
            if not roots:
                raise fail(
                    f"签名密钥 {self.key_id} 不是根节点的密钥", f"signing key {self.key_id} is not a root key"
                )
        if pinned is not None:
            pinned = raw_public(pinned)
            roots = [e for e in roots if e.public_key == pinned]
            if not roots:
                raise fail(
                    f"根密钥与预置的根公钥 {key_id(pinned)} 不符",
                    f"the root key differs from the pinned root key {key_id(pinned)}",
                )
        now = utc_now()
        live = [e for e in roots if not e.revoked(now)]
        if not live:
            raise fail("根节点没有未吊销的密钥", "the root has no unrevoked key in the list")
        for entry in live:
            try:
                Ed25519PublicKey.from_public_bytes(entry.public_key).verify(raw_signature, message)
            except InvalidSignature:
                continue
            return
        raise fail(
            "签名与内容不符（文件被改动或签名密钥不对）",
            "signature does not match (altered file or wrong key)",
        )

    @classmethod
    def load(cls, path: Path | str, root_public_key: bytes | None = None) -> TrustList:
        """Read and verify the trust list at ``path``.

        The signature is checked against the root's key named in the list, or, when
        ``root_public_key`` (raw 32 bytes) is pinned, against that key only. TrustError
        TRUST_UNREADABLE (unreadable, malformed) or TRUST_SIGNATURE (bad signature, pinned key differs).
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise TrustError(
                "TRUST_UNREADABLE",
                f"无法读取信任列表：{exc}",
                f"cannot read the trust list: {exc}",
                str(path),
            ) from exc
        return cls.from_json(text, str(path), root_public_key)

    def sign(self, keystore: KeyStore, now: datetime.datetime | None = None) -> None:
        """Sign with the root's current key (which must be listed and unrevoked); sets ``issued_at``."""
        kid, private = keystore.signer(self.root)
        moment = utc_now(now)
        entry = self.entry(kid)
        if entry is None or entry.node != self.root or entry.revoked(moment):
            raise TrustError(
                "ROOT_KEY_UNLISTED",
                f"根节点 {self.root} 的当前密钥 {kid} 不在信任列表中或已吊销",
                f"the current key {kid} of root {self.root} is not in the trust list or is revoked",
                str(keystore.folder / self.root),
            )
        self.issued_at = moment
        self.key_id = kid
        self.signature = b64url(private.sign(self.canonical_bytes()))

    def save(self, path: Path | str, keystore: KeyStore, now: datetime.datetime | None = None) -> None:
        """Sign with the root's current key and write the file atomically."""
        self.sign(keystore, now)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, self.to_json().encode("utf-8"))

    # -- queries --

    def entry(self, kid: str) -> TrustEntry | None:
        """The entry for key ``kid``, if listed."""
        return next((e for e in self.entries if e.key_id == kid), None)

    def entries_of(self, node: str) -> list[TrustEntry]:
        """The entries of ``node``, oldest first."""
        return [e for e in self.entries if e.node == node]

    def lookup(
        self, node: str, kid: str, at: datetime.datetime, now: datetime.datetime | None = None
    ) -> Ed25519PublicKey:
        """The public key ``kid`` of ``node`` for something signed at ``at``.

        TrustError KEY_UNKNOWN (not listed), KEY_NODE_MISMATCH (another node's key), KEY_REVOKED
        (revoked at or before ``now`` or ``at``: revocation takes effect at once) or KEY_EXPIRED
        (``at`` outside ``valid_from .. valid_until``).
        """
        moment = utc_now(at)
        current = utc_now(now)
        entry = self.entry(kid)
        if entry is None:
            raise TrustError(
                "KEY_UNKNOWN",
                f"信任列表中没有密钥 {kid}",
                f"key {kid} is not in the trust list",
                f"{node}/{kid}",
            )
        if entry.node != node:
            raise TrustError(
                "KEY_NODE_MISMATCH",
                f"密钥 {kid} 属于节点 {entry.node}，不属于 {node}",
                f"key {kid} belongs to node {entry.node}, not {node}",
                f"{node}/{kid}",
            )
        if entry.revoked(current) or entry.revoked(moment):
            reason = f"（{entry.revoked_reason}）" if entry.revoked_reason else ""
            reason_en = f" ({entry.revoked_reason})" if entry.revoked_reason else ""
            assert entry.revoked_at is not None
            raise TrustError(
                "KEY_REVOKED",
                f"密钥 {kid} 已于 {iso(entry.revoked_at)} 吊销{reason}",
                f"key {kid} was revoked at {iso(entry.revoked_at)}{reason_en}",
                f"{node}/{kid}",
            )
        if not entry.valid_at(moment):
            until = iso(entry.valid_until) if entry.valid_until else "—"
            raise TrustError(
                "KEY_EXPIRED",
                f"密钥 {kid} 在 {iso(moment)} 不在有效期内（{iso(entry.valid_from)} 至 {until}）",
                f"key {kid} is not valid at {iso(moment)} (valid {iso(entry.valid_from)} to {until})",
                f"{node}/{kid}",
            )
        return Ed25519PublicKey.from_public_bytes(entry.public_key)


# --- operations used by the CLI --------------------------------------------------------------------


def _new_entry(keystore: KeyStore, node: str, kid: str, moment: datetime.datetime) -> TrustEntry:
    return TrustEntry(node, kid, raw_public(keystore.public(node, kid)), moment)


def init_trust(
    keystore: KeyStore,
    nodes: Iterable[str],
    root: str,
    path: Path | str,
    now: datetime.datetime | None = None,
) -> TrustList:
    """Give every node (and the root) a key if it lacks one and write the signed trust list.

    Idempotent: existing keys are kept, and an existing list (which must verify and have the same
    root) only gains the current keys it is missing; it is rewritten only when something changed.
    """
    path = Path(path)
    moment = utc_now(now)
    wanted = list(dict.fromkeys([check_node(root), *(check_node(n) for n in nodes)]))
    for node in wanted:
        if keystore.current(node) is None:
            keystore.generate(node)
    if path.exists():
        trust = TrustList.load(path)
        if trust.root != root:
            raise TrustError(
                "TRUST_ROOT_MISMATCH",
                f"已有信任列表的根节点是 {trust.root}，不是 {root}",
                f"the existing trust list has root {trust.root}, not {root}",
                str(path),
            )
    else:
        trust = TrustList(root=root, issued_at=moment)
    changed = not path.exists()
    for node in wanted:
        kid = keystore.current(node)
        assert kid is not None
        if trust.entry(kid) is None:
            trust.entries.append(_new_entry(keystore, node, kid, moment))
            changed = True
    if changed:
        trust.save(path, keystore, moment)
    return trust


def rotate(
    keystore: KeyStore,
    trust_path: Path | str,
    node: str,
    overlap_seconds: float = 7 * 86400,
    now: datetime.datetime | None = None,
) -> str:
    """Give ``node`` a new current key; the old one stays valid for ``overlap_seconds`` more.

    The list is re-signed (by the new key when ``node`` is the root). Returns the new key id.
    """
    moment = utc_now(now)
    trust = TrustList.load(trust_path)
    old = keystore.current(node)
    new = keystore.generate(node)
    until = moment + datetime.timedelta(seconds=overlap_seconds)
    trust.entries = [
        replace(e, valid_until=until)
        if e.key_id == old and e.node == node and (e.valid_until is None or e.valid_until > until)
        else e
        for e in trust.entries
    ]
    trust.entries.append(_new_entry(keystore, node, new, moment))
    trust.save(trust_path, keystore, moment)
    return new


def revoke(
    keystore: KeyStore,
    trust_path: Path | str,
    kid: str,
    reason: str,
    now: datetime.datetime | None = None,
) -> None:
    """Revoke key ``kid`` now (with ``reason``) and re-sign the list.

    Revoking the root's current key is refused (TrustError ROOT_REVOKE): rotate the root first.
    Revoking a key again keeps its first revocation time.
    """
    moment = utc_now(now)
    trust = TrustList.load(trust_path)
    entry = trust.entry(kid)
    if entry is None:
        raise TrustError(
            "KEY_UNKNOWN", f"信任列表中没有密钥 {kid}", f"key {kid} is not in the trust list", str(trust_path)
        )
    if entry.node == trust.root and keystore.current(trust.root) == kid:
        raise TrustError(
            "ROOT_REVOKE",
            f"不能吊销根节点 {trust.root} 的当前密钥 {kid}：先轮换根密钥（tongban keys rotate {trust.root}）",
            f"cannot revoke the current key {kid} of root {trust.root}: rotate the root key first "
            f"(tongban keys rotate {trust.root})",
            str(trust_path),
        )
    if entry.revoked_at is not None:
        return
    trust.entries = [
        replace(e, revoked_at=moment, revoked_reason=reason) if e.key_id == kid else e for e in trust.entries
    ]
    trust.save(trust_path, keystore, moment)
