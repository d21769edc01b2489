"""`tongban init | sync | status | failed | keys` on a small exchange: output, exit codes, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tongban.cli import main


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_sync_then_status_then_rerun(make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]) -> None:
    world = make_world()
    world.registers[h.A].put(h.people(h.A, 5))
    bad = h.people(h.A, 1, start=50)[0]
    bad["sfzh"] = bad["sfzh"][:-1] + ("0" if bad["sfzh"][-1] != "0" else "1")  # wrong check character
    world.registers[h.A].put([bad])
    world.registers[h.B].put(h.people(h.B, 3))
    config = str(world.root / "exchange.yaml")

    assert main(["sync", "--config", config, "--json"]) == 1  # a row was rejected
    runs = {r["edge"]: r for r in _lines(capsys)}
    assert runs[world.system_edge(h.A)]["inserted"] == 5 and runs[world.system_edge(h.A)]["rejected"] == 1
    assert runs[world.edge(h.QINGHAI, h.NATIONAL)]["inserted"] == 8

    assert main(["status", "--config", config, "--json"]) == 0
    status = {r["edge"]: r for r in _lines(capsys)}
    local = status[world.system_edge(h.A)]
    assert (local["rows_loaded"], local["rows_failed"], local["open_failures"]) == (5, 1, 1)
    assert local["lag_seconds"] is not None and local["last_success"]

    # Nothing changed: the rejected row is not kept twice, nothing loads, exit 0.
    assert main(["sync", "--config", config, "--json"]) == 0
    assert all(r["inserted"] == r["updated"] == r["rejected"] == 0 for r in _lines(capsys))

    assert main(["failed", "list", "--config", config, "--json", "--code", "ID_CHECKSUM"]) == 0
    (failed,) = _lines(capsys)
    assert failed["id"].startswith(f"{h.A}:") and failed["codes"] == ["ID_CHECKSUM"]
    assert main(["failed", "show", failed["id"], "--config", config]) == 0
    shown = capsys.readouterr().out
    assert "ID_CHECKSUM" in shown and bad["sfzh"] not in shown  # masked
    assert main(["failed", "show", failed["id"], "--config", config, "--reveal"]) == 0
    assert bad["sfzh"] in capsys.readouterr().out

    assert main(["status", "--config", config]) == 0
    text = capsys.readouterr().out
    assert world.system_edge(h.A) in text and "last success" in text


def test_unreachable_system_exits_4_and_is_kept(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    world = make_world(
        {h.A: h.QINGHAI},
        registers=(),
        systems=[h.sql_system(h.A, url="sqlite:///nowhere/missing/czrk.sqlite")],
    )
    config = str(world.root / "exchange.yaml")
    assert main(["sync", "--config", config, "--json", world.system_edge(h.A)]) == 4
    (run,) = _lines(capsys)
    assert run["ok"] is False and run["error"]["code"] == "SQL_UNREACHABLE"
    assert main(["failed", "list", "--config", config, "--json", "--kind", "run"]) == 0
    (failure,) = _lines(capsys)
    assert failure["codes"] == ["SQL_UNREACHABLE"] and failure["attempts"] == 1


def test_config_typo_names_file_line_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "exchange.yaml"
    config.write_text(
        'version: 1\nnodes:\n  - code: "000000"\n    name: 国家库\n    level: national\n'
        '    libary: "sqlite:///x.sqlite"\n',
        encoding="utf-8",
    )
    for command in (["status"], ["sync"], ["init"], ["failed", "list"], ["keys", "list"]):
        assert main([*command, "--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert f"{config}:6" in err and "libary" in err and "CONFIG_INVALID" in err
        assert "Traceback" not in err
    assert main(["status", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "CONFIG_NOT_FOUND" in capsys.readouterr().err


def test_unknown_edge_is_a_clear_error(make_world: Any, capsys: pytest.CaptureFixture[str]) -> None:
    world = make_world()
    assert main(["sync", "--config", str(world.root / "exchange.yaml"), "population.nowhere.630000"]) == 2
    assert "EDGE_UNKNOWN" in capsys.readouterr().err


def test_keys_rotate_and_revoke(make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]) -> None:
    world = make_world({h.A: h.QINGHAI})
    config = str(world.root / "exchange.yaml")
    assert main(["keys", "list", "--config", config, "--json"]) == 0
    before = {e["node"]: e["key_id"] for e in _lines(capsys)}
    assert set(before) == {h.NATIONAL, h.QINGHAI, h.A}
    assert main(["keys", "rotate", h.A, "--config", config, "--json"]) == 0
    new = _lines(capsys)[0]["key_id"]
    assert new != before[h.A]
    assert main(["keys", "revoke", before[h.A], "--reason", "test", "--config", config]) == 0
    capsys.readouterr()
    assert main(["keys", "list", "--config", config, "--json"]) == 0
    entries = {e["key_id"]: e for e in _lines(capsys)}
    assert entries[before[h.A]]["revoked_at"] and not entries[new]["revoked_at"]
    # Batches signed with the new key still load.
    world.registers[h.A].put(h.people(h.A, 2))
    assert main(["sync", "--config", config, "--json"]) == 0
    assert main(["keys", "rotate", "--config", config]) == 2


def test_init_is_idempotent(make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]) -> None:
    world = make_world({h.A: h.QINGHAI})
    config = str(world.root / "exchange.yaml")
    assert main(["init", "--config", config, "--json"]) == 0
    report = _lines(capsys)[0]
    assert report["nodes"] == 3 and report["keys_created"] == 0  # made by the fixture already


def test_revoking_a_nodes_current_key_needs_a_reason_and_force(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from tongban.core.trust import KeyStore

    w = make_world({h.A: h.QINGHAI})
    config = str(w.root / "exchange.yaml")
    current = KeyStore(w.ex.keys_dir).current(h.A)
    assert main(["keys", "revoke", current, "--config", config]) == 2
    assert "KEYS_ARGUMENT" in capsys.readouterr().err
    assert main(["keys", "revoke", current, "--reason", "lost", "--config", config]) == 2
    err = capsys.readouterr().err
    assert "KEY_CURRENT" in err and f"tongban keys rotate {h.A}" in err
    assert main(["keys", "revoke", current, "--reason", "lost", "--force", "--config", config]) == 0


def test_status_says_which_library_it_cannot_read(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    w = make_world({h.A: h.QINGHAI})
    cfg = w.root / "exchange.yaml"
    text = cfg.read_text(encoding="utf-8").replace(
        '"library": "sqlite:///libraries/630000.sqlite"', '"library_env": "TB_TEST_UNSET_LIB"'
    )
    cfg.write_text(text, encoding="utf-8")
    monkeypatch.delenv("TB_TEST_UNSET_LIB", raising=False)
    assert main(["status", "--config", str(cfg), "--json"]) == 4
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    into = {r["edge"]: r["library_error"] for r in rows}
    assert into[w.edge(h.A, h.QINGHAI)].startswith("CONFIG_ENV_MISSING")
    assert into[w.system_edge(h.A)] is None


def test_one_broken_mapping_stops_only_its_own_system(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A county's mapping file gone: status, failed list and keys still work, sync fails only that
    county's system edge (exit 4) and the other county's rows still reach the national library."""
    drop = {
        "name": f"files-{h.B}",
        "node": h.B,
        "dataset": "population",
        "kind": "files",
        "folder": f"systems/{h.B}/drop",
        "mapping": "gone.mapping.yaml",
    }
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI}, registers=(h.A,), systems=[])
    cfg = w.root / "exchange.yaml"
    (w.root / "gone.mapping.yaml").write_text("dataset: population\n", encoding="utf-8")
    cfg.write_text(cfg.read_text(encoding="utf-8") + f"  - {json.dumps(drop)}\n", encoding="utf-8")
    (w.root / "systems" / h.B / "drop").mkdir(parents=True)
    (w.root / "gone.mapping.yaml").unlink()
    w.registers[h.A].put(h.people(h.A, 4))
    config = str(cfg)
    assert main(["status", "--config", config]) == 0
    assert "MAPPING_NOT_FOUND" in capsys.readouterr().err
    assert main(["failed", "list", "--config", config]) == 0
    assert main(["sync", "--config", config]) == 4
    out = capsys.readouterr().out
    assert f"population.files-{h.B}.{h.B}" in out and "MAPPING_NOT_FOUND" in out
    assert w.lib(h.NATIONAL).count("population") == 4


def test_config_and_workdir_together_and_a_misspelt_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--config", "a.yaml", "--workdir", "b"]) == 2
    assert "ARGUMENT_INVALID" in capsys.readouterr().err
    assert main(["schema", "populaton"]) == 2
    assert "did you mean 'population'?" in capsys.readouterr().err
