"""Initialize an exchange: the spool, every node's library (schema migrated), missing signing keys and
the signed trust list. ``tongban init`` runs it; so do the demo, the benchmarks and the tests.

It is idempotent: a library already migrated, a key already made and a trust list already listing every
node are left as they are, so it is also what to run after adding a county to ``exchange.yaml``.
"""

from __future__ import annotations

from typing import Any

from tongban.core.config import Exchange

__all__ = ["initialize"]


def initialize(ex: Exchange) -> dict[str, Any]:
    """Create the spool, every node's library (schema migrated) and keys, and the signed trust list.

    Returns what it did: the config, the number of nodes, libraries, keys created and edges, and the
    trust list's path.
    """
    from tongban.core import engine
    from tongban.core.trust import KeyStore, init_trust

    ex.spool.mkdir(parents=True, exist_ok=True)
    keys = KeyStore(ex.keys_dir)
    before = set(keys.nodes())
    libraries = []
    with engine.Libraries(ex) as libs:
        for code in ex.nodes:
            libs.get(code).migrate()
            libraries.append(code)
    init_trust(keys, list(ex.nodes), ex.trust_root, ex.trust_list)
    return {
        "config": str(ex.path),
        "nodes": len(ex.nodes),
        "libraries": len(libraries),
        "keys_created": len(set(keys.nodes()) - before),
        "trust_list": str(ex.trust_list),
        "edges": len(ex.edges),
    }
