"""The install is reproducible: every dependency is pinned, and the layout is what the README says."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tongban import __version__
from tongban.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_every_dependency_is_pinned_in_constraints() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["test"], *extras["bench"]]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, exact = line.partition("==")
            assert exact, f"constraints.txt must pin exact versions: {line}"
            pins[name.lower().replace("_", "-")] = exact
    missing = [r for r in wanted if _name(r) not in pins]
    assert not missing, f"not pinned in constraints.txt: {missing}"
    assert pins["apache-airflow"].startswith("3.")


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in readme and "make demo" in readme
    assert re.search(r"^make test$", ci, re.MULTILINE)


def test_layout() -> None:
    for folder in ("schemas", "connectors", "tongban", "tests", "bench"):
        assert (ROOT / folder).is_dir(), folder
    # Only the Airflow adapter (tongban/airflow/) and the DAG file import Airflow.
    for path in [
        *ROOT.glob("schemas/**/*.py"),
        *ROOT.glob("connectors/**/*.py"),
        *(p for p in ROOT.glob("tongban/**/*.py") if "airflow" not in p.relative_to(ROOT).parts),
    ]:
        assert not re.search(r"^\s*(from|import) airflow", path.read_text(encoding="utf-8"), re.MULTILINE), (
            path
        )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tongban {__version__}"


def test_readme_layout_names_every_module_of_the_rooms() -> None:
    """The README's layout section matches the tree: every module of Core, the demo and the adapter."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout") : readme.index("## Development")]
    rooms = ("tongban/core", "tongban/airflow", "tongban/demo")
    missing = [
        str(path.relative_to(ROOT))
        for room in rooms
        for path in (ROOT / room).rglob("*.py")
        if path.name != "__init__.py" and "generate" not in path.relative_to(ROOT).parts
        if f"`{path.name}`" not in layout and f"{path.name}`" not in layout
    ]
    assert missing == [], "name these in README's Layout section"
    for folder in ("schemas", "connectors", "tongban/core", "tongban/cli", "tongban/demo", "tongban/airflow"):
        assert f"{folder}/" in layout, folder
    assert (ROOT / "dags" / ".airflowignore").is_file()
    assert sorted(p.name for p in (ROOT / "dags").iterdir() if p.suffix == ".py") == ["tongban_exchange.py"]
