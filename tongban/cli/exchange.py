"""Kept only so ``tongban/demo/runner.py`` (another room, being reorganized) still finds ``initialize``.

The exchange's commands now live one module per group (:mod:`tongban.cli.init`, ``sync``, ``status``,
``failed``, ``keys``) and ``initialize`` belongs to Core (:mod:`tongban.core.initialize`). Remove this
module once the demo runner imports ``tongban.core.initialize``.
"""

from __future__ import annotations

from tongban.core.initialize import initialize

__all__ = ["initialize"]
