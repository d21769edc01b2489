"""Running the app under uvicorn: what ``tongban serve`` starts, one process or several workers.

Workers are separate processes that each build the app from the environment (the config file and
node), so the command line passes them :data:`CONFIG_ENV` and :data:`NODE_ENV`.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

from fastapi import FastAPI

from tongban.core.config import load_exchange
from tongban.web.app import create_app
from tongban.web.settings import WebSettings

__all__ = ["CONFIG_ENV", "NODE_ENV", "app_from_env", "build"]

CONFIG_ENV = "TONGBAN_WEB_CONFIG"
NODE_ENV = "TONGBAN_WEB_NODE"


def build(config: Path, node: str | None = None) -> FastAPI:
    """The app for ``node`` of the exchange at ``config``."""
    ex = load_exchange(config, lenient=True)
    return create_app(
        WebSettings.for_node(ex, node, secure_cookies=os.environ.get("TONGBAN_SECURE_COOKIES") == "1")
    )


def app_from_env() -> FastAPI:
    """uvicorn's factory: the app named by the environment.

    What start-up made (modules, contracts, the app) lives as long as the server: it is moved out of
    the garbage collector's reach (``gc.freeze``), so a full collection does not walk it again while
    requests wait (this halved the verification p99 under load, bench/verify.py).
    """
    app = build(Path(os.environ.get(CONFIG_ENV, "exchange.yaml")), os.environ.get(NODE_ENV) or None)
    gc.collect()
    gc.freeze()
    return app
