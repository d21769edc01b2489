"""`tongban demo`, `generate` and `schema`: what a new user runs first."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest

import schemas
from tongban.cli import main


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The README's first command, run once: the whole demo exchange through Airflow."""
    workdir = tmp_path_factory.mktemp("demo") / "demo"
    out = io.StringIO()
    code = run_demo_cli(workdir, out)
    assert code == 0, out.getvalue()
    return workdir, out.getvalue()


def run_demo_cli(workdir: Path, out: io.StringIO) -> int:
    from tongban.cli import build_parser
    from tongban.cli.demo import cmd_demo

    args = build_parser().parse_args(["demo", "--workdir", str(workdir)])
    return cmd_demo(args, out)


def test_demo_runs_every_dag_through_airflow(demo: tuple[Path, str]) -> None:
    workdir, out = demo
    dags = re.findall(r"✓ (tongban_\w+)\s+success", out)
    # One DAG per province and dataset, then one national DAG per dataset.
    assert len(dags) == 5 * 3 + 3
    assert dags[-3:] == [
        "tongban_business_national",
        "tongban_license_national",
        "tongban_population_national",
    ]
    assert "missed 0" in out and "unexpected 0" in out and "demo OK" in out
    # Everything the demo made stays under its working folder, Airflow's database included.
    assert (workdir / "manifest.json").is_file()
    assert (workdir / "airflow" / "airflow.db").is_file()
    assert (workdir / "exchange.yaml").is_file()
    assert (
        sorted(p.name for p in (workdir / "libraries").iterdir() if p.suffix == ".sqlite")[0]
        == "000000.sqlite"
    )


def test_status_json_has_every_edge(demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    workdir, _ = demo
    assert main(["status", "--workdir", str(workdir), "--json"]) == 0
    edges = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(edges) == 27 + 27 + 15
    for e in edges:
        assert {
            "dataset",
            "source",
            "target",
            "rows_loaded",
            "rows_failed",
            "last_success",
            "lag_seconds",
        } <= set(e)
        assert e["last_success"] is not None and e["lag_seconds"] >= 0, e
    manifest = json.loads((workdir / "manifest.json").read_text(encoding="utf-8"))
    planted = sum(len(s["defects"]) for s in manifest["systems"])
    local = [e for e in edges if "-" in e["source"]]
    assert sum(e["rows_failed"] for e in local) == planted
    total = sum(s["rows"] for s in manifest["systems"])
    national = [e for e in edges if e["target"] == "000000"]
    assert sum(e["rows_loaded"] for e in national) == total - planted


def test_failed_list_and_show(demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    workdir, _ = demo
    assert main(["failed", "list", "--workdir", str(workdir), "--node", "630104", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(r["kind"] == "row" and r["codes"] for r in rows)
    population = next(r for r in rows if r["dataset"] == "population")
    assert main(["failed", "show", population["id"], "--workdir", str(workdir), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    # Masked: the identity number keeps only its division and last four characters.
    assert "*" in shown["payload"]["id_number"]
    assert main(["failed", "show", "630104:999999", "--workdir", str(workdir)]) == 2


def test_incremental_rerun_changes_nothing(
    demo: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    workdir, _ = demo
    code = main(["sync", "--workdir", str(workdir), "--json"])
    runs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(runs) == 69
    assert all(r["ok"] and r["inserted"] == 0 and r["updated"] == 0 for r in runs), runs

    # The README's next step: validate one county's population register.
    system = workdir / "systems" / "630104"
    args = [
        "validate",
        "population",
        str(system / "gongan.sqlite"),
        "--mapping",
        str(system / "gongan.mapping.yaml"),
    ]
    assert main([*args, "--format", "json"]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    manifest = json.loads((workdir / "manifest.json").read_text(encoding="utf-8"))
    planted = next(s for s in manifest["systems"] if s["county"] == "630104" and s["dataset"] == "population")
    rejected = {r["row"]: set(r["codes"]) for r in lines[:-1] if r["severity"] == "error"}
    assert rejected == {d["row"]: set(d["codes"]) for d in planted["defects"]}


def test_generate_reports_what_it_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "generate",
        "--workdir",
        str(tmp_path / "g"),
        "--population",
        "50",
        "--business",
        "20",
        "--licenses",
        "30",
        "--defect-rate",
        "0.1",
        "--json",
    ]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text(encoding="utf-8"))
    assert summary["rows"] == sum(s["rows"] for s in manifest["systems"]) == 9 * (50 + 20 + 30)
    assert summary["defects"] == sum(len(s["defects"]) for s in manifest["systems"]) > 0


@pytest.mark.parametrize("name", list(schemas.DATASETS))
def test_schema_lists_every_field(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", name, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    dataset = schemas.get(name)
    assert [f["name"] for f in doc["fields"]] == dataset.names
    assert doc["key"] == dataset.key
    assert all(f["label_zh"] and f["description"] for f in doc["fields"])
    assert main(["schema", name]) == 0
    assert dataset.key in capsys.readouterr().out


def test_schema_unknown_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "nosuch"]) == 2
    assert "DATASET_UNKNOWN" in capsys.readouterr().err


def test_help_everywhere(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--help"],
        ["validate", "--help"],
        ["demo", "--help"],
        ["generate", "--help"],
        ["schema", "--help"],
    ):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 0
        assert "usage: tongban" in capsys.readouterr().out


def test_reference_page_is_current() -> None:
    from pathlib import Path

    from schemas.reference import render

    page = Path(__file__).resolve().parents[1] / "docs" / "datasets.md"
    assert page.read_text(encoding="utf-8") == render(), "run: tongban schema --markdown > docs/datasets.md"


def test_schema_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "license", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## license (电子证照)") and "`license_id`" in out
    assert main(["schema"]) == 2
    assert "DATASET_MISSING" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [["--population", "-5"], ["--licenses", "many"], ["--defect-rate", "1.5"], ["--defect-rate", "nan"]],
)
def test_generate_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv) -> None:
    with pytest.raises(SystemExit) as info:
        main(["generate", "--workdir", str(tmp_path / "g"), *argv])
    assert info.value.code == 2
    assert "must be" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()


def test_unwritable_workdir_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for command in ("generate", "demo"):
        assert main([command, "--workdir", str(blocker / "demo")]) == 2
        err = capsys.readouterr().err
        assert "WORKDIR_UNWRITABLE" in err and "Traceback" not in err


def test_repository_exchange_yaml_is_the_demo_topology(demo: tuple[Path, str]) -> None:
    """The shipped exchange.yaml equals what the demo writes, with its mappings inline and paths under demo/."""
    from tongban.demo.exchange_yaml import demo_exchange_yaml
    from tongban.demo.generate import DEMO_COUNTIES

    workdir, _ = demo
    manifest = json.loads((workdir / "manifest.json").read_text(encoding="utf-8"))
    expected = demo_exchange_yaml(
        workdir, manifest["systems"], DEMO_COUNTIES, prefix="demo/", inline_mappings=True
    )
    shipped = Path(__file__).resolve().parent.parent / "exchange.yaml"
    assert shipped.read_text(encoding="utf-8") == expected, "regenerate exchange.yaml (see this test)"


def copy_of(demo: tuple[Path, str], tmp_path: Path) -> Path:
    """A copy of the demo folder as `make demo` left it (Airflow's logs and the spool left out)."""
    copy = tmp_path / "demo"
    shutil.copytree(demo[0], copy, ignore=shutil.ignore_patterns("airflow", "spool"))
    return copy


def test_rerun_keeps_a_users_edits(
    demo: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`make demo` run again after the user edited a mapping and dropped a file refuses, keeping both."""
    workdir = copy_of(demo, tmp_path)
    mapping = workdir / "systems" / "630104" / "gongan.mapping.yaml"
    edited = mapping.read_text(encoding="utf-8") + "# 我的修改 my edit\n"
    mapping.write_text(edited, encoding="utf-8")
    dropped = workdir / "systems" / "630104" / "drop" / "license" / "mine.csv"
    dropped.write_text("license_id\n1.2.156\n", encoding="utf-8")
    assert main(["demo", "--workdir", str(workdir)]) == 2
    err = capsys.readouterr().err
    assert "WORKDIR_EXISTS" in err and "--fresh" in err
    assert f"{mapping} (已修改 changed)" in err and f"{dropped} (新增 added)" in err
    assert mapping.read_text(encoding="utf-8") == edited and dropped.exists()
    assert (workdir / "libraries" / "000000.sqlite").exists()  # nothing of the demo was removed


def test_rerun_after_looking_around_starts_over(
    demo: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's commands (status, failed, sync, validate) change nothing the demo protects."""
    from tongban.demo import workdir as folder

    workdir = copy_of(demo, tmp_path)
    system = workdir / "systems" / "630104"
    mapping = str(system / "gongan.mapping.yaml")
    assert main(["status", "--workdir", str(workdir)]) == 0
    assert main(["failed", "list", "--workdir", str(workdir), "--node", "630104", "--limit", "5"]) == 0
    assert main(["failed", "show", "630104:1", "--workdir", str(workdir)]) == 0
    assert main(["sync", "--workdir", str(workdir)]) == 0
    assert main(["validate", "population", str(system / "gongan.sqlite"), "--mapping", mapping, "-q"]) == 1
    assert folder.changes(workdir) == []
    capsys.readouterr()
    monkeypatch.setattr("tongban.demo.runner.run_airflow", lambda *args, **kwargs: [])  # (Airflow: above)
    assert main(["demo", "--workdir", str(workdir)]) == 1  # regenerated; no DAG ran here
    assert "the previous demo was unchanged: starting over" in capsys.readouterr().out
    assert folder.changes(workdir) == [] and not (workdir / "airflow").exists()


def test_fresh_starts_over(
    demo: tuple[Path, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tongban.demo import workdir as folder

    workdir = copy_of(demo, tmp_path)
    exchange = workdir / "exchange.yaml"
    original = exchange.read_text(encoding="utf-8")
    exchange.write_text(original + "# mine\n", encoding="utf-8")
    (workdir / "systems" / "630104" / "mine.txt").write_text("mine\n", encoding="utf-8")
    monkeypatch.setattr("tongban.demo.runner.run_airflow", lambda *args, **kwargs: [])
    assert main(["demo", "--workdir", str(workdir), "--fresh"]) == 1  # regenerated; no DAG ran here
    assert "--fresh: 重新开始 starting over" in capsys.readouterr().out
    assert exchange.read_text(encoding="utf-8") == original
    assert not (workdir / "systems" / "630104" / "mine.txt").exists()
    assert folder.changes(workdir) == []


def test_generate_never_overwrites_the_users_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Generating again over unchanged demo data starts over; over changed data it refuses (exit 2)
    and leaves every file as it is, unless --fresh."""
    folder = tmp_path / "g"
    args = ["generate", "--workdir", str(folder), "--population", "5", "--business", "2", "--licenses", "2"]
    assert main(args) == 0
    assert main(args) == 0  # unchanged: generated anew
    edited = next((folder / "systems").rglob("*.csv"))
    edited.write_text(edited.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    before = edited.read_bytes()
    capsys.readouterr()
    assert main([*args, "--json"]) == 2
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["code"] == "WORKDIR_EXISTS" and edited.name in err["where"]
    assert edited.read_bytes() == before
    assert main([*args, "--fresh"]) == 0
    assert edited.read_bytes() != before
