"""An independent checker of provenance proofs, written from the SPEC's rules (section 6) and the
documented hashing rules, importing nothing of Tongban's verification or trust code.

- A row's leaf is ``sha256(0x00 || canonical)``, canonical = the dataset's fields then the owner,
  each rendered as text (NULL as the single byte 0x00) and joined by 0x1f.
- An interior node is ``sha256(0x01 || children)``; a proof step gives the node's position among its
  siblings.
- A manifest is signed (Ed25519) over the canonical JSON (sorted keys, no spaces, UTF-8) of every field
  but ``signature``, by its ``source`` node's key as listed in the root-signed trust list.
- The chain: the first batch was loaded by the answering node; each next one by the previous batch's
  source; the last batch was signed by the record's owner (the issuing county).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def leaf_of(values: list[Any]) -> str:
    parts = [b"\x00" if v is None else str(v).encode("utf-8") for v in values]
    return hashlib.sha256(b"\x00" + b"\x1f".join(parts)).hexdigest()


def sqlite_timestamp(text: str) -> str:
    """A SQLite library's stored timestamp ('YYYY-MM-DD HH:MM:SS.ffffff', UTC) as hashed ('...T...Z')."""
    return text.replace(" ", "T") + "Z"


def trusted_keys(trust_json: dict[str, Any]) -> dict[str, tuple[str, bytes, str | None]]:
    """key id -> (node, raw public key, revoked_at), after checking the root's signature."""
    body = {k: v for k, v in trust_json.items() if k != "signature"}
    message = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    roots = [e for e in trust_json["entries"] if e["node"] == trust_json["root"]]
    assert any(_verifies(b64(e["public_key"]), b64(trust_json["signature"]), message) for e in roots)
    return {
        e["key_id"]: (e["node"], b64(e["public_key"]), e.get("revoked_at")) for e in trust_json["entries"]
    }


def _verifies(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except Exception:
        return False
    return True


def check(
    proof: dict[str, Any], trust_json: dict[str, Any], *, answering: str, owner: str, leaf: str
) -> list[str]:
    """Problems found (empty when the proof holds)."""
    problems: list[str] = []
    keys = trusted_keys(trust_json)
    if proof["leaf"] != leaf:
        problems.append("leaf differs from the record's")
    expected_target = answering
    for i, hop in enumerate(proof["hops"]):
        m = hop["manifest"]
        node = bytes.fromhex(leaf)
        for pos, siblings in hop["path"]:
            sib = [bytes.fromhex(s) for s in siblings]
            node = hashlib.sha256(b"\x01" + b"".join(sib[:pos]) + node + b"".join(sib[pos:])).digest()
        if node.hex() != m["merkle_root"]:
            problems.append(f"hop {i}: path does not reach the root")
        body = {k: v for k, v in m.items() if k != "signature"}
        message = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        listed = keys.get(m["key_id"])
        if listed is None or listed[0] != m["source"] or listed[2] is not None:
            problems.append(f"hop {i}: key not listed for {m['source']}")
        elif not _verifies(listed[1], b64(m["signature"]), message):
            problems.append(f"hop {i}: bad signature")
        if m["target"] != expected_target:
            problems.append(f"hop {i}: target {m['target']} != {expected_target}")
        expected_target = m["source"]
    if not proof["hops"] or proof["hops"][-1]["manifest"]["source"] != owner:
        problems.append("the chain does not end at the owner's signature")
    return problems
