"""Initialize an exchange: the spool, every node's library (schema migrated), missing signing keys and
the signed trust list. ``tongban init`` runs it; so do the demo, the benchmarks and the tests.

It is idempotent: a library already migrated, a key already made and a trust list already listing every
node are left as they are, so it is also what to run after adding a county to ``exchange.yaml``.
"""

from __future__ import annotations

from typing import Any

from tongban.core.config import Exchange

__all__ = ["initialize"]


def root_public_key(keys: Any, trust: Any) -> str:
    """The root's public key to pin (base64url): from this machine's key store when it holds the root's
    key (the national node), else the one that signed the trust list (trust on first use)."""
    from tongban.core.trust import b64url, raw_public

    kid = keys.current(trust.root)
    if kid is not None:
        return b64url(raw_public(keys.public(trust.root, kid)))
    entry = trust.entry(trust.key_id)
    return b64url(entry.public_key)


def initialize(ex: Exchange) -> dict[str, Any]:
    """Create the spool, every node's library (schema migrated) and keys, and the signed trust list.

    Each node without a master key in the environment gets one in ``<keys>/<node>/master.key`` (mode
    0600): it wraps the library's data keys (encryption at rest). Every library pins the root's public key the first time (``roots_pinned``): from then on a trust list
    signed by any other root key is refused. Returns what it did: the config, the number of nodes,
    libraries, keys created, roots pinned and edges, and the trust list's path.
    """
    from tongban.core import engine
    from tongban.core.trust import KeyStore, init_trust

    ex.spool.mkdir(parents=True, exist_ok=True)
    keys = KeyStore(ex.keys_dir)
    before = set(keys.nodes())
    libraries = []
    trust = init_trust(keys, list(ex.nodes), ex.trust_root, ex.trust_list)
    root_key = root_public_key(keys, trust)
    pinned = 0
    from tongban.core.store import Vault

    masters = 0
    with engine.Libraries(ex) as libs:
        for code in ex.nodes:
            masters += Vault(code, ex.keys_dir).create()  # unless TONGBAN_MASTER_KEY_<code> is set
            lib = libs.get(code)
            lib.migrate()
            pinned += lib.pin_root(root_key)  # an existing pin is kept: a swapped list cannot re-pin
            libraries.append(code)
    return {
        "config": str(ex.path),
        "nodes": len(ex.nodes),
        "libraries": len(libraries),
        "keys_created": len(set(keys.nodes()) - before),
        "roots_pinned": pinned,
        "master_keys_created": masters,
        "trust_list": str(ex.trust_list),
        "edges": len(ex.edges),
    }
