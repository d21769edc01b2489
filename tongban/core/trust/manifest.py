"""Signed batch manifests: what a batch holds, who sealed it, and where it sits in its edge's chain.

A manifest names the batch, its dataset and edge, the cursor range it covers, its row count, the
Merkle root over its rows' leaf hashes (:mod:`tongban.core.trust.merkle`), the hash of the previous manifest on
the same edge (``""`` for the first), the time, and the source node's key id and Ed25519 signature
over the canonical JSON of every other field. :func:`verify` is what a target runs before it loads.

>>> import tempfile
>>> from pathlib import Path
>>> from tongban.core.trust.merkle import merkle_root
>>> from tongban.core.trust import KeyStore, init_trust
>>> tmp = Path(tempfile.mkdtemp())
>>> store = KeyStore(tmp / "keys")
>>> trust = init_trust(store, ["630104", "630000"], root="000000", path=tmp / "trust.json")
>>> leaves = np.zeros((3, 32), dtype=np.uint8)
>>> kid, key = store.signer("630104")
>>> m = seal(dataset="population", edge="population.630104.630000", source="630104", target="630000",
...          cursor_from=None, cursor_to={"updated_at": "2024-01-01T00:00:00Z", "key": "X"}, rows=3,
...          rejected=0, merkle_root=merkle_root(leaves), prev_hash="", schema="s", key_id=kid,
...          private_key=key)
>>> verify(m, trust, expected_prev="", leaves=leaves)
>>> Manifest.from_json(m.to_json()) == m
True
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.errors import TongbanError
from tongban.core.trust import TrustError, TrustList, b64url, canonical_json, from_b64url, from_iso, iso
from tongban.core.trust.merkle import merkle_root as compute_root

__all__ = ["Manifest", "ManifestError", "batch_id_for", "schema_fingerprint", "seal", "verify"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_KEY_CODES = {
    "KEY_UNKNOWN": "BATCH_KEY_UNKNOWN",
    "KEY_REVOKED": "BATCH_KEY_REVOKED",
    "KEY_EXPIRED": "BATCH_KEY_EXPIRED",
    "KEY_NODE_MISMATCH": "BATCH_KEY_NODE",
}


class ManifestError(TongbanError):
    """A manifest that is malformed or fails verification: the whole batch is rejected."""


def _short(h: str) -> str:
    return h[:12] if h else "(none)"


@dataclass(frozen=True)
class Manifest:
    """The signed description of one batch on one edge."""

    batch_id: str
    dataset: str
    edge: str  # "<dataset>.<source>.<target>", e.g. "population.630104.630000"
    source: str
    target: str
    cursor_from: dict[str, Any] | None
    cursor_to: dict[str, Any] | None
    rows: int
    rejected: int  # rows of the extract that failed validation (carried for the record, not shipped)
    merkle_root: str  # hex
    prev_hash: str  # hex hash of the previous manifest on this edge, "" for the first
    created_at: str  # ISO 8601 UTC
    key_id: str
    signature: str  # base64url Ed25519 signature of canonical_bytes(), "" before signing
    schema: str  # schema_fingerprint() of the dataset's Arrow schema

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def canonical_bytes(self) -> bytes:
        """Canonical JSON of every field except ``signature``: what the source signs."""
        data = self.to_dict()
        del data["signature"]
        return canonical_json(data)

    @property
    def hash(self) -> str:
        """sha256 hex of the canonical JSON of every field, signature included: the next ``prev_hash``."""
        return hashlib.sha256(canonical_json(self.to_dict())).hexdigest()

    def to_json(self) -> str:
        """The manifest as JSON text (UTF-8, keys sorted)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Manifest:
        """Check and build a manifest; ManifestError MANIFEST_INVALID naming the first bad field."""
        if not isinstance(data, dict):
            raise _invalid("清单必须是 JSON 对象", "a manifest must be a JSON object", where)
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise _invalid(f"缺少字段 {', '.join(missing)}", f"missing fields {', '.join(missing)}", where)
        extra = sorted(set(data) - set(names))
        if extra:
            raise _invalid(f"未知字段 {', '.join(extra)}", f"unknown fields {', '.join(extra)}", where)
        for name in ("batch_id", "dataset", "edge", "source", "target", "created_at", "key_id", "schema"):
            if not isinstance(data[name], str) or not data[name]:
                raise _invalid(f"{name} 必须是非空字符串", f"{name} must be a non-empty string", where)
        for name in ("signature", "prev_hash", "merkle_root"):
            if not isinstance(data[name], str):
                raise _invalid(f"{name} 必须是字符串", f"{name} must be a string", where)
        for name in ("rows", "rejected"):
            value = data[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _invalid(f"{name} 必须是非负整数", f"{name} must be a non-negative integer", where)
        for name in ("cursor_from", "cursor_to"):
            if data[name] is not None and not isinstance(data[name], dict):
                raise _invalid(f"{name} 必须是对象或 null", f"{name} must be an object or null", where)
        if not _HEX64.match(data["merkle_root"]):
            raise _invalid(
                "merkle_root 必须是 64 位小写十六进制", "merkle_root must be 64 lower-case hex", where
            )
        if data["prev_hash"] and not _HEX64.match(data["prev_hash"]):
            raise _invalid(
                "prev_hash 必须为空或 64 位小写十六进制", "prev_hash must be empty or 64 hex", where
            )
        try:
            from_iso(data["created_at"])
        except ValueError as exc:
            raise _invalid(f"created_at 无效：{exc}", f"invalid created_at: {exc}", where) from exc
        return cls(**{n: data[n] for n in names})

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "") -> Manifest:
        """Parse manifest JSON; ManifestError MANIFEST_INVALID on bad JSON or bad or missing fields."""
        try:
            data = json.loads(text)
        except (ValueError, TypeError) as exc:
            raise _invalid(f"不是有效的 JSON：{exc}", f"not valid JSON: {exc}", where) from exc
        return cls.from_dict(data, where)


def _invalid(zh: str, en: str, where: str) -> ManifestError:
    return ManifestError("MANIFEST_INVALID", f"批次清单无效：{zh}", f"invalid batch manifest: {en}", where)


def schema_fingerprint(schema: pa.Schema | Any) -> str:
    """sha256 hex over a schema's column names, types and nullability (metadata left out).

    ``schema`` is an Arrow schema or anything with one as ``.schema`` (a :class:`schemas.contract.Dataset`).

    >>> schema_fingerprint(pa.schema([("a", pa.string())])) == schema_fingerprint(
    ...     pa.schema([pa.field("a", pa.string(), metadata={"label_zh": "甲"})]))
    True
    """
    if not isinstance(schema, pa.Schema):
        schema = schema.schema
    shape = [[f.name, str(f.type), f.nullable] for f in schema]
    return hashlib.sha256(canonical_json(shape)).hexdigest()


def batch_id_for(edge: str, prev_hash: str, merkle_root: str, cursor_to: dict[str, Any] | None) -> str:
    """The batch id: the first 32 hex characters of sha256 over canonical JSON of
    ``[edge, prev_hash, merkle_root, cursor_to]``.

    It is deterministic, so re-sealing the same rows at the same place in the same chain (a retried
    run) yields the same id, and ingest can be idempotent by batch id.
    """
    return hashlib.sha256(canonical_json([edge, prev_hash, merkle_root, cursor_to])).hexdigest()[:32]


def seal(
    *,
    dataset: str,
    edge: str,
    source: str,
    target: str,
    cursor_from: dict[str, Any] | None,
    cursor_to: dict[str, Any] | None,
    rows: int,
    rejected: int,
    merkle_root: bytes | str,
    prev_hash: str,
    schema: str,
    key_id: str,
    private_key: Ed25519PrivateKey,
    created_at: datetime.datetime | None = None,
) -> Manifest:
    """Build and sign a manifest (``created_at`` defaults to now; ``merkle_root`` as bytes or hex)."""
    root_hex = merkle_root.hex() if isinstance(merkle_root, bytes | bytearray) else merkle_root
    unsigned = Manifest(
        batch_id=batch_id_for(edge, prev_hash, root_hex, cursor_to),
        dataset=dataset,
        edge=edge,
        source=source,
        target=target,
        cursor_from=cursor_from,
        cursor_to=cursor_to,
        rows=rows,
        rejected=rejected,
        merkle_root=root_hex,
        prev_hash=prev_hash,
        created_at=iso(created_at or datetime.datetime.now(datetime.UTC)),
        key_id=key_id,
        signature="",
        schema=schema,
    )
    Manifest.from_dict(unsigned.to_dict(), where=edge)  # refuse to sign what a target could not read
    return dataclasses.replace(unsigned, signature=b64url(private_key.sign(unsigned.canonical_bytes())))


#: How far ahead of this node's clock a manifest's ``created_at`` may be (clocks drift).
CLOCK_SKEW = datetime.timedelta(minutes=5)


def _check_time(
    manifest: Manifest,
    trust: TrustList,
    created: datetime.datetime,
    where: str,
    *,
    now: datetime.datetime | None,
    not_before: datetime.datetime | None,
) -> None:
    """A key is used within its validity *now*, not only at the time the signer wrote into the manifest:
    an expired key whose private half survived cannot sign new batches by backdating them. And a
    manifest is not dated in the future, nor before the edge's last loaded one."""
    moment = now or datetime.datetime.now(datetime.UTC)
    entry = trust.entry(manifest.key_id)
    if entry is not None and entry.valid_until is not None and moment > entry.valid_until:
        raise ManifestError(
            "BATCH_KEY_EXPIRED",
            f"批次签名密钥 {manifest.key_id} 已于 {iso(entry.valid_until)} 过期（已轮换），不能再签封新批次",
            f"batch signing key {manifest.key_id} expired at {iso(entry.valid_until)} (rotated): it signs no "
            "new batches",
            where,
        )
    if created > moment + CLOCK_SKEW or (not_before is not None and created < not_before):
        raise ManifestError(
            "BATCH_TIME",
            f"批次清单时间 {manifest.created_at} 晚于当前时间或早于本边上一批次",
            f"the manifest's time {manifest.created_at} is in the future or before the edge's last batch",
            where,
        )


def _check_binding(
    manifest: Manifest,
    where: str,
    *,
    signer: str | None,
    edge: str | None,
    target: str | None,
    dataset: str | None,
) -> None:
    """What a signed manifest may claim here: its signer, edge, target and dataset (see :func:`verify`)."""
    if signer is not None and manifest.source != signer:
        raise ManifestError(
            "BATCH_SIGNER",
            f"批次由节点 {manifest.source} 签名，但本边只接受 {signer} 签封的批次",
            f"batch signed by node {manifest.source}, but only {signer} may seal batches on this edge",
            where,
        )
    checks = (
        ("BATCH_EDGE", "同步边", "edge", manifest.edge, edge),
        ("BATCH_TARGET", "目标节点", "target node", manifest.target, target),
        ("BATCH_DATASET", "数据集", "dataset", manifest.dataset, dataset),
    )
    for code, zh, en, claimed, expected in checks:
        if expected is not None and claimed != expected:
            raise ManifestError(
                code,
                f"批次清单的{zh}为 {claimed}，但正在载入的是 {expected}",
                f"the batch manifest names {en} {claimed}, but it is being loaded into {expected}",
                where,
            )


def verify(
    manifest: Manifest,
    trust: TrustList,
    *,
    expected_prev: str,
    leaves: np.ndarray | None = None,
    rows: int | None = None,
    now: datetime.datetime | None = None,
    schema: str | None = None,
    signer: str | None = None,
    edge: str | None = None,
    target: str | None = None,
    dataset: str | None = None,
    not_before: datetime.datetime | None = None,
) -> None:
    """Check a manifest before loading its batch; ManifestError on the first failure.

    In order: the source's key in the trust list at ``created_at`` (BATCH_KEY_UNKNOWN,
    BATCH_KEY_REVOKED, BATCH_KEY_EXPIRED, BATCH_KEY_NODE), the signature (BATCH_SIGNATURE); then what
    the signature is bound to, each when given: the signer must be the node allowed to seal for this
    edge (BATCH_SIGNER), and the edge, target and dataset must be the ones being loaded (BATCH_EDGE,
    BATCH_TARGET, BATCH_DATASET) — a valid signature proves only who signed, not that they may; the
    chain (BATCH_CHAIN: ``prev_hash`` must equal ``expected_prev``), the schema when ``schema`` is
    given (BATCH_SCHEMA), the row count against ``rows`` and ``len(leaves)`` (BATCH_ROWS), and the
    Merkle root recomputed from ``leaves`` (BATCH_ROOT).
    """
    where = f"{manifest.edge} batch {manifest.batch_id}"
    try:
        created = from_iso(manifest.created_at)
    except (ValueError, TypeError) as exc:
        raise _invalid(f"created_at 无效：{exc}", f"invalid created_at: {exc}", where) from exc
    try:
        public = trust.lookup(manifest.source, manifest.key_id, created, now=now)
    except TrustError as exc:
        code = _KEY_CODES.get(exc.code, "BATCH_KEY_UNKNOWN")
        raise ManifestError(
            code,
            f"批次签名密钥不可用：{exc.message_zh}",
            f"batch signing key refused: {exc.message_en}",
            where,
        ) from exc
    try:
        public.verify(from_b64url(manifest.signature), manifest.canonical_bytes())
    except (InvalidSignature, ValueError) as exc:
        raise ManifestError(
            "BATCH_SIGNATURE",
            f"批次清单签名无效（清单被改动或签名不是 {manifest.source} 的密钥 {manifest.key_id} 所作）",
            f"batch manifest signature invalid (altered manifest, or not signed by key {manifest.key_id} "
            f"of {manifest.source})",
            where,
        ) from exc
    _check_binding(manifest, where, signer=signer, edge=edge, target=target, dataset=dataset)
    _check_time(manifest, trust, created, where, now=now, not_before=not_before)
    if manifest.prev_hash != expected_prev:
        raise ManifestError(
            "BATCH_CHAIN",
            f"批次链断裂：清单的上一批哈希为 {_short(manifest.prev_hash)}，本边最后一批为 {_short(expected_prev)}"
            "（重放、缺批或乱序）",
            f"batch chain broken: manifest's previous hash is {_short(manifest.prev_hash)}, the edge's last "
            f"batch is {_short(expected_prev)} (replayed, missing or out-of-order batch)",
            where,
        )
    if schema is not None and manifest.schema != schema:
        raise ManifestError(
            "BATCH_SCHEMA",
            f"批次的数据结构 {_short(manifest.schema)} 与本节点的 {_short(schema)} 不同",
            f"batch schema {_short(manifest.schema)} differs from this node's {_short(schema)}",
            where,
        )
    for actual in (rows, None if leaves is None else len(leaves)):
        if actual is not None and actual != manifest.rows:
            raise ManifestError(
                "BATCH_ROWS",
                f"批次行数不符：清单为 {manifest.rows} 行，收到 {actual} 行",
                f"batch row count mismatch: manifest says {manifest.rows}, received {actual}",
                where,
            )
    if leaves is not None:
        actual_root = compute_root(leaves).hex()
        if actual_root != manifest.merkle_root:
            raise ManifestError(
                "BATCH_ROOT",
                f"批次内容与清单不符：默克尔根为 {_short(actual_root)}，清单为 {_short(manifest.merkle_root)}",
                f"batch content does not match its manifest: Merkle root {_short(actual_root)}, "
                f"manifest says {_short(manifest.merkle_root)}",
                where,
            )
    expected_id = batch_id_for(manifest.edge, manifest.prev_hash, manifest.merkle_root, manifest.cursor_to)
    if manifest.batch_id != expected_id:
        raise ManifestError(
            "BATCH_ID",
            f"批次编号 {manifest.batch_id[:12]} 不是由其同步边、链上位置、默克尔根与游标算出的",
            f"batch id {manifest.batch_id[:12]} is not the one its edge, chain position, root and cursor give",
            where,
        )
