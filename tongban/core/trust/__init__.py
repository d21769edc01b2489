"""Node keys and the trust list.

Every node signs with an Ed25519 key. Private keys live in a :class:`KeyStore` (one folder per node,
PKCS8 PEM files readable by the owner only, and a ``current`` file naming the key in use). The root
node (national, ``000000``) signs the **trust list**: every node's public keys with their validity.

The trust list is a JSON file::

    {"version": 1, "root": "000000", "issued_at": "...Z", "key_id": "<signing key id>",
     "entries": [{"node", "key_id", "public_key", "valid_from", "valid_until", "revoked_at",
                  "revoked_reason"}, ...],
     "signature": "<base64url>"}

The signature covers the canonical JSON (sorted keys, no spaces, UTF-8) of everything but
``signature``. ``key_id`` names the root key that signed, so a list stays checkable after the root
rotates its key. Keys rotate with overlap (the old key stays valid for batches made before its
``valid_until``); a revoked key fails at once, whatever the batch's time.

:mod:`.keys` holds the key store, :mod:`.trustlist` the trust list and its operations, :mod:`.canonical`
what they share; :mod:`.manifest` and :mod:`.merkle` the signed batches.

>>> import tempfile
>>> from pathlib import Path
>>> tmp = Path(tempfile.mkdtemp())
>>> store = KeyStore(tmp / "keys")
>>> trust = init_trust(store, ["630104"], root="000000", path=tmp / "trust.json")
>>> sorted(e.node for e in TrustList.load(tmp / "trust.json").entries)
['000000', '630104']
"""

from __future__ import annotations

from tongban.core.trust.canonical import (
    TrustError,
    b64url,
    canonical_json,
    from_b64url,
    from_iso,
    iso,
    key_id,
    raw_public,
)
from tongban.core.trust.keys import KeyStore
from tongban.core.trust.trustlist import TrustEntry, TrustList, init_trust, revoke, rotate

__all__ = [
    "KeyStore",
    "TrustEntry",
    "TrustError",
    "TrustList",
    "b64url",
    "canonical_json",
    "from_b64url",
    "from_iso",
    "init_trust",
    "iso",
    "key_id",
    "raw_public",
    "revoke",
    "rotate",
]
