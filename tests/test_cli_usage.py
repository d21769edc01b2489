"""What a new user of ``tongban`` runs into: typos answered with a code and a suggestion, dates in the
forms people write, a quiet rerun, file names where files failed, help that explains each command, the
error catalogue at hand, and a README that says what the commands do."""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schemas.errors import CATALOGUE, ExitCode
from schemas.reference import render_errors
from tongban.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _subcommands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every (sub)command's parser by its words, e.g. ("keys", "rotate")."""
    found: dict[tuple[str, ...], Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[(*path, name)] = sub
                found.update(_subcommands(sub, (*path, name)))
    return found


# -- the README ------------------------------------------------------------------------------------


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def test_readme_adding_a_county_runs_init_before_sync() -> None:
    config = _section("Configuration")
    (paragraph,) = [p for p in config.split("\n\n") if "Adding a county" in p]
    words = " ".join(paragraph.split())
    assert "tongban init" in words and "tongban sync" in words, paragraph
    assert words.index("tongban init") < words.index("tongban sync")


def test_readme_says_which_commands_take_config() -> None:
    parser = build_parser()
    commands = _subcommands(parser)
    takes_config = {
        words[0]
        for words, sub in commands.items()
        if any("--config" in a.option_strings for a in sub._actions)
    }
    cli = " ".join(_section("Operating it: the CLI").split())
    claim = re.search(r"([^.]*) take `--config FILE`", cli)
    assert claim, "the README says which commands take --config"
    named = set(re.findall(r"`(\w[\w-]*)`", claim.group(1)))
    assert not claim.group(1).strip().startswith("All")
    assert named == takes_config
    # ... and every top-level command has a row in the README's table.
    top = {words[0] for words in commands}
    table = {m for m in re.findall(r"^\| `tongban ([\w-]+)", _section("Operating it: the CLI"), re.M)}
    listed = table | set(re.findall(r"`(validate|schema|generate)`", _section("Operating it: the CLI")))
    assert top <= listed, top - listed


def test_adding_a_county_then_init_then_sync(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the README says to do after adding a county, done: the error before init names the fix."""
    world = make_world({h.A: h.QINGHAI})
    world.registers[h.A].put(h.people(h.A, 2))
    h.write_exchange(
        world.root, counties={h.A: h.QINGHAI, h.B: h.QINGHAI}, systems=[h.sql_system(h.A), h.sql_system(h.B)]
    )
    register = h.Register(world.root / "systems" / h.B / "czrk.sqlite")
    register.put(h.people(h.B, 3))
    config = str(world.root / "exchange.yaml")
    code, out, _ = _run(capsys, "sync", "--config", config, "--node", h.B)
    assert code == ExitCode.RUN_FAILED and "KEY_MISSING" in out and "tongban init" in out
    code, out, _ = _run(capsys, "init", "--config", config, "--json")
    assert code == 0 and _lines(out)[0]["keys_created"] == 1
    code, out, _ = _run(capsys, "sync", "--config", config, "--json")
    assert code == 0, out
    assert world.lib(h.NATIONAL).count("population") == 5


# -- typos are coded errors with a suggestion --------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "code", "hint"),
    [
        (["--dataset", "populaton"], "DATASET_UNKNOWN", "did you mean 'population'?"),
        (["--node", "99"], "NODE_UNKNOWN", "known: "),
        (["--node", "6301022"], "NODE_UNKNOWN", "did you mean '630102'?"),
        (["--dataset", "license"], "ARGUMENT_INVALID", "no edge matches"),  # a real dataset, no edge of it
    ],
)
def test_sync_refuses_unknown_selections(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str], argv: list[str], code: str, hint: str
) -> None:
    world = make_world()
    world.registers[h.A].put(h.people(h.A, 2))
    config = str(world.root / "exchange.yaml")
    rc, out, err = _run(capsys, "sync", "--config", config, *argv)
    assert rc == ExitCode.UNUSABLE and code in err and hint in err, err
    assert "Traceback" not in err and out == ""
    assert world.lib(h.A).count("population") == 0  # nothing ran
    rc, out, _ = _run(capsys, "sync", "--config", config, "--json", *argv)
    assert rc == 2 and json.loads(out)["error"]["code"] == code


def test_status_refuses_an_unknown_dataset(make_world: Any, capsys: pytest.CaptureFixture[str]) -> None:
    world = make_world()
    rc, _, err = _run(capsys, "status", "--config", str(world.root / "exchange.yaml"), "--dataset", "licence")
    assert rc == 2 and "DATASET_UNKNOWN" in err and "did you mean 'license'?" in err


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["--state", "bogus"], "known: open, queued, resolved, discarded, all"),
        (["--state", "opne"], "did you mean 'open'?"),
        (["--limit", "-1"], "--limit -1"),
        (["--code", "ID_CHEKSUM"], "did you mean 'ID_CHECKSUM'?"),
        (["--dataset", "busines"], "did you mean 'business'?"),
    ],
)
def test_failed_list_refuses_bad_filters(
    make_world: Any, capsys: pytest.CaptureFixture[str], argv: list[str], hint: str
) -> None:
    world = make_world()
    rc, out, err = _run(capsys, "failed", "list", "--config", str(world.root / "exchange.yaml"), *argv)
    assert rc == ExitCode.UNUSABLE, (out, err)
    assert ("ARGUMENT_INVALID" in err or "DATASET_UNKNOWN" in err) and hint in err, err
    assert "共 0 条" not in out  # not an empty list that looks like an answer


def test_failed_list_unknown_node_suggests(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    world = make_world()
    rc, _, err = _run(
        capsys, "failed", "list", "--config", str(world.root / "exchange.yaml"), "--node", "63010"
    )
    assert rc == 2 and "NODE_UNKNOWN" in err and "did you mean" in err


def test_failed_list_since_accepts_the_forms_people_write(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    world = make_world({h.A: h.QINGHAI})
    bad = h.people(h.A, 1)[0]
    bad["sfzh"] = bad["sfzh"][:-1] + ("0" if bad["sfzh"][-1] != "0" else "1")
    world.registers[h.A].put([bad])
    config = str(world.root / "exchange.yaml")
    assert main(["sync", "--config", config]) == 1
    capsys.readouterr()
    (failure,) = world.lib(h.A).failures()
    created = failure["created_at"].astimezone(dt.UTC)
    beijing = dt.timezone(dt.timedelta(hours=8))

    def shown(since: str) -> int:
        rc, out, err = _run(capsys, "failed", "list", "--config", config, "--json", "--since", since)
        assert rc == 0, err
        return len(_lines(out))

    assert shown("2000-01-01") == shown("2000-01-01T08:00") == 1
    assert shown("24h") == shown("1d") == shown("90m") == 1
    assert shown("2999-01-01") == 0
    # An offset is honoured (not read as UTC): a minute before and after the failure, in Beijing time.
    before = (created - dt.timedelta(minutes=1)).astimezone(beijing).isoformat(timespec="seconds")
    after = (created + dt.timedelta(minutes=1)).astimezone(beijing).isoformat(timespec="seconds")
    assert (shown(before), shown(after)) == (1, 0)

    for word in ("yesterday", "2026-13-45", "7 days"):
        rc, _, err = _run(capsys, "failed", "list", "--config", config, "--since", word)
        assert rc == ExitCode.UNUSABLE and "ARGUMENT_INVALID" in err, err
        assert "INTERNAL" not in err and "isoformat" not in err
        assert "2026-11-28T08:00+08:00" in err and "24h" in err  # the accepted forms


# -- a quiet rerun -------------------------------------------------------------------------------------


def test_rerun_prints_only_edges_that_changed_and_a_summary(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    world = make_world()  # A and B in Qinghai: 5 edges
    world.registers[h.A].put(h.people(h.A, 3))
    world.registers[h.B].put(h.people(h.B, 2))
    config = str(world.root / "exchange.yaml")
    rc, out, _ = _run(capsys, "sync", "--config", config)
    assert rc == 0
    *edges, summary = out.splitlines()
    assert len(edges) == 5 and all("inserted" in line for line in edges)
    assert (
        "5 条边 edges" in summary and "read 15 行 rows" in summary and "inserted 15" in summary
    )  # 5 local, 5 + 5 up

    rc, out, _ = _run(capsys, "sync", "--config", config)  # nothing new
    assert rc == 0
    (summary,) = out.splitlines()
    assert "5 条边 edges" in summary and "0 有变化 changed" in summary and "inserted 0" in summary
    assert "failed edges 0" in summary and "time" in summary

    world.registers[h.A].put(h.people(h.A, 1, start=10))  # one new resident of A
    rc, out, _ = _run(capsys, "sync", "--config", config)
    *edges, summary = out.splitlines()
    changed = [line.split(":")[0] for line in edges]
    assert changed == [world.system_edge(h.A), world.edge(h.A, h.QINGHAI), world.edge(h.QINGHAI, h.NATIONAL)]
    assert "3 有变化 changed" in summary and "inserted 3" in summary

    rc, out, _ = _run(capsys, "sync", "--config", config, "--verbose")
    assert len(out.splitlines()) == 5 + 1
    rc, out, _ = _run(capsys, "sync", "--config", config, "--json")  # the JSON shape is one object per edge
    runs = _lines(out)
    assert len(runs) == 5 and all(r["ok"] and r["inserted"] == 0 for r in runs)


def test_a_failed_edge_is_listed_and_counted(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    world = make_world(
        {h.A: h.QINGHAI},
        registers=(),
        systems=[h.sql_system(h.A, url="sqlite:///nowhere/missing/czrk.sqlite")],
    )
    rc, out, _ = _run(capsys, "sync", "--config", str(world.root / "exchange.yaml"))
    assert rc == ExitCode.RUN_FAILED
    failed, summary = out.splitlines()[0], out.splitlines()[-1]
    assert "SQL_UNREACHABLE" in failed and "failed edges 1" in summary


# -- file failures name their file ---------------------------------------------------------------------


def test_failed_list_names_the_quarantined_file(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    world = make_world({h.A: h.QINGHAI}, drop=(h.A,))
    no_names = h.csv_text(h.people(h.A, 2, start=70)).replace("name,", "xingming,", 1)
    (world.drops[h.A] / "columns.csv").write_text(no_names, encoding="utf-8")
    config = str(world.root / "exchange.yaml")
    assert main(["sync", "--config", config]) == 1
    capsys.readouterr()
    rc, out, _ = _run(capsys, "failed", "list", "--config", config, "--kind", "file")
    assert rc == 0
    (line,) = [x for x in out.splitlines() if x.startswith(f"{h.A}:")]
    assert "\tcolumns.csv\tCOLUMN_MISSING\t" in line
    rc, out, _ = _run(capsys, "failed", "list", "--config", config, "--kind", "file", "--json")
    (failure,) = _lines(out)
    assert failure["file"] == "columns.csv" and failure["codes"] == ["COLUMN_MISSING"]


# -- help ----------------------------------------------------------------------------------------------


def test_every_command_help_describes_itself_with_examples_and_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    descriptions = set()
    for words, sub in _subcommands(parser).items():
        with pytest.raises(SystemExit) as info:
            main([*words, "--help"])
        assert info.value.code == 0
        text = capsys.readouterr().out
        assert text.startswith(f"usage: tongban {' '.join(words)}"), words
        assert "cross-region data-sharing exchange hub" not in text  # not the parent's text
        assert text != top
        examples = text.split("示例 examples:", 1)
        assert len(examples) == 2 and f"tongban {words[0]}" in examples[1], words
        assert sub.description and sub.description not in descriptions, words
        descriptions.add(sub.description)
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
                flag = action.option_strings[-1]
                shown = " ".join(text.split(flag, 2)[-1].split())
                assert "default:" in shown.split(" --")[0], (words, flag)
    with pytest.raises(SystemExit):
        main(["keys", "rotate", "--help"])
    assert "default: 7d" in " ".join(capsys.readouterr().out.split())


def test_keys_rotate_takes_a_duration(make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]) -> None:
    world = make_world({h.A: h.QINGHAI})
    rc, out, _ = _run(
        capsys,
        "keys",
        "rotate",
        h.A,
        "--overlap",
        "12h",
        "--config",
        str(world.root / "exchange.yaml"),
        "--json",
    )
    assert rc == 0 and _lines(out)[0]["node"] == h.A
    with pytest.raises(SystemExit) as info:
        main(["keys", "rotate", h.A, "--overlap", "soon"])
    assert info.value.code == 2 and "12h" in capsys.readouterr().err


# -- the error catalogue -------------------------------------------------------------------------------


def test_errors_looks_a_code_up(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "errors", "EDGE_BUSY")
    assert rc == 0
    assert CATALOGUE["EDGE_BUSY"].zh in out and CATALOGUE["EDGE_BUSY"].en in out
    assert "retried: 是" in out and "exit: 4" in out
    rc, out, _ = _run(capsys, "errors", "config_invalid", "--json")  # any case
    assert rc == 0 and _lines(out) == [
        {
            "code": "CONFIG_INVALID",
            "kind": "error",
            "area": "config",
            "zh": CATALOGUE["CONFIG_INVALID"].zh,
            "en": CATALOGUE["CONFIG_INVALID"].en,
            "retryable": False,
            "exit": 2,
        }
    ]
    rc, out, _ = _run(capsys, "errors", "ID_CHECKSUM")  # a row rule is found too
    assert rc == 0 and "row rule" in out
    rc, out, _ = _run(capsys, "errors", "--json")
    assert [e["code"] for e in _lines(out)] == list(CATALOGUE)
    rc, out, _ = _run(capsys, "errors")
    assert all(code in out for code in CATALOGUE)


def test_errors_unknown_code_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = _run(capsys, "errors", "EDGE_BUISY")
    assert rc == ExitCode.UNUSABLE and "ARGUMENT_INVALID" in err and "did you mean 'EDGE_BUSY'?" in err
    rc, out, err = _run(capsys, "errors", "EDGE_BUISY", "--json")
    assert rc == 2 and json.loads(out)["error"]["code"] == "ARGUMENT_INVALID"


def test_errors_markdown_is_the_reference_page(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(capsys, "errors", "--markdown")
    assert rc == 0 and out == render_errors() == (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")


# -- exit codes come from the catalogue ------------------------------------------------------------------


def test_an_unreachable_library_exits_4(make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]) -> None:
    world = make_world({h.A: h.QINGHAI})
    h.write_exchange(
        world.root,
        counties={h.A: h.QINGHAI},
        libraries={h.A: {"library": "postgresql+psycopg://tongban@127.0.0.1:9/none"}},  # nothing listens
        systems=[h.sql_system(h.A)],
    )
    rc, _, err = _run(capsys, "failed", "list", "--config", str(world.root / "exchange.yaml"), "--node", h.A)
    code = re.search(r"error (\w+):", err)
    assert code and CATALOGUE[code.group(1)].exit == ExitCode.RUN_FAILED, err
    assert rc == ExitCode.RUN_FAILED


# -- the room itself -----------------------------------------------------------------------------------


def test_cli_modules_import_no_cycle_and_demo_only_where_needed() -> None:
    folder = ROOT / "tongban" / "cli"
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {
            node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
        } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        if path.name != "demo.py":
            assert not any(m.startswith("tongban.demo") for m in imported), path
        if path.name not in ("__init__.py", "__main__.py"):
            assert "tongban.cli" not in imported, path  # no module reaches back into the package
        assigned = {
            t.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        assert not [n for n in assigned if n.startswith("EXIT_")], path  # one ExitCode, in schemas.errors
    for path in (ROOT / "tongban" / "core").rglob("*.py"):
        assert "tongban.cli" not in path.read_text(encoding="utf-8"), path  # Core imports no face


def test_importing_the_cli_is_light() -> None:
    code = "import sys, tongban.cli; print(sorted(m for m in ('tongban.demo', 'schemas', 'pyarrow') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"
    done = subprocess.run(
        [sys.executable, "-m", "tongban.cli", "errors", "KEY_MISSING"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0 and "tongban init" in done.stdout
