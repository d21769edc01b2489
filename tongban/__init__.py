"""Tongban (通办): cross-region data-sharing exchange hub.

``tongban.__version__`` is looked up on first use (PEP 562): importing the package stays instant, which
keeps the command's start-up short and a DAG file's parse cheap.
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module 'tongban' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("tongban")
    except PackageNotFoundError:  # running from a source tree that was not installed
        found = "0.0.0+source"
    globals()["__version__"] = found
    return found
