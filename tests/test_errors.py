"""The error catalogue: every code the code raises is declared once, with both meanings, a retry
policy and an exit code; the page operators look codes up in is current."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from schemas.errors import CATALOGUE, ExitCode, TongbanError, lookup
from schemas.reference import render_errors
from schemas.rules import RULES

ROOT = Path(__file__).resolve().parent.parent
CODE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
#: Calls whose first argument looks like a code but is not one (environment variables).
NOT_CODES = {"get", "getenv", "pop", "setdefault", "environ"}


def _raised_codes() -> dict[str, list[str]]:
    """Code-like string literals the product code hands to an error, a helper or a ``code=``."""
    found: dict[str, list[str]] = {}
    for folder in ("tongban", "connectors", "schemas", "dags"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                literals: list[ast.expr] = []
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", "")
                    if name not in NOT_CODES and node.args:
                        literals.append(node.args[0])
                    literals += [k.value for k in node.keywords if k.arg == "code"]
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    args = node.args.args + node.args.kwonlyargs
                    defaults = [*node.args.defaults, *node.args.kw_defaults]
                    literals += [
                        d
                        for a, d in zip(reversed(args), reversed(defaults), strict=False)
                        if a.arg == "code" and d is not None
                    ]
                elif isinstance(node, ast.Dict):  # e.g. a table of codes mapped to codes
                    literals += [v for v in node.values if v is not None]
                for lit in literals:
                    if isinstance(lit, ast.Constant) and isinstance(lit.value, str) and CODE.match(lit.value):
                        where = f"{path.relative_to(ROOT)}:{lit.lineno}"
                        found.setdefault(lit.value, []).append(where)
    return found


def test_every_raised_code_is_declared() -> None:
    found = _raised_codes()
    assert len(found) > 80  # the scan sees the codes (not an empty pass)
    undeclared = {
        code: places
        for code, places in found.items()
        if code not in CATALOGUE and code not in RULES and not code.startswith("TONGBAN_")
    }
    assert undeclared == {}, "declare these in schemas/errors.py"


def test_entries_are_complete_and_distinct_from_rule_codes() -> None:
    for code, entry in CATALOGUE.items():
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", code) and entry.code == code
        assert entry.zh and entry.en and entry.area
        assert isinstance(entry.exit, ExitCode) and entry.exit is not ExitCode.OK
    assert not set(CATALOGUE) & set(RULES)


def test_the_base_exception_reads_the_catalogue() -> None:
    busy = TongbanError("EDGE_BUSY", "忙", "busy", "population.a.b")
    assert busy.retryable and not busy.permanent and busy.exit_code is ExitCode.RUN_FAILED
    bad = TongbanError("CONFIG_INVALID", "错", "bad")
    assert bad.permanent and bad.exit_code is ExitCode.UNUSABLE
    assert lookup("NO_SUCH_CODE").code == "INTERNAL"


def test_errors_page_is_current() -> None:
    page = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert page == render_errors(), "run: tongban errors --markdown > docs/errors.md"
    for code in CATALOGUE:
        assert f"`{code}`" in page
