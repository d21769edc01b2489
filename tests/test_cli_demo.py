"""`tongban demo`, `generate` and `schema`: what a new user runs first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import schemas
from tongban.cli import main


def test_demo_finds_exactly_the_planted_defects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workdir = tmp_path / "demo"
    assert main(["demo", "--workdir", str(workdir), "--json"]) == 0
    systems = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {s["dataset"] for s in systems} == {"population", "business", "license"}
    assert len({s["county"] for s in systems}) == 9
    assert sum(s["planted"] for s in systems) > 100
    for s in systems:
        assert s["missed"] == 0 and s["unexpected"] == 0, s
        assert s["rejected"] == s["planted"]
    # Everything the demo made stays under its working folder.
    assert (workdir / "manifest.json").is_file()
    assert not (tmp_path / "manifest.json").exists()

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
    assert lines[-1]["summary"]["rows"] == planted["rows"]


def test_demo_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--workdir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "every planted defect was found" in out and "全部缺陷均被发现" in out
    assert "630104" in out and "150205" in out


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

    from tongban.reference import render

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
