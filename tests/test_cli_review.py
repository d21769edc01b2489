"""`tongban failed retry|resubmit|discard|resolve|apply` and `tongban operators`: output, exit codes,
bad input, and the audit log each action leaves."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tongban.cli import main
from tongban.core.audit import AuditLog

P = "population"


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def _world(make_world: Any, h: Any) -> tuple[Any, str, dict[str, Any], dict[str, Any]]:
    w = make_world({h.A: h.QINGHAI})
    bad = h.person(h.A, 50)
    good_id = bad["sfzh"]
    bad["sfzh"] = good_id[:-1] + ("0" if good_id[-1] != "0" else "1")
    dates = [{**h.person(h.A, 60 + i), "csrq": "1980-02-30"} for i in range(3)]
    w.registers[h.A].put([*h.people(h.A, 2), bad, *dates])
    config = str(w.root / "exchange.yaml")
    assert main(["sync", "--config", config, "--json"]) == 1
    return w, config, {"bad": bad, "good_id": good_id}, {"dates": dates}


def test_resubmit_then_apply_reaches_the_national_library(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    w, config, row, _ = _world(make_world, h)
    capsys.readouterr()
    assert main(["failed", "list", "--config", config, "--json", "--code", "ID_CHECKSUM"]) == 0
    (failed,) = _lines(capsys)
    # Still invalid: refused with its code, exit 2, nothing queued.
    assert main(["failed", "resubmit", failed["id"], "--config", config, "--set", "name="]) == 2
    err = capsys.readouterr().err
    assert "FAILED_EDIT_INVALID" in err
    # The key fixed through an edited JSON file.
    edit = tmp_path / "edit.json"
    edit.write_text(json.dumps({"id_number": row["good_id"]}), encoding="utf-8")
    assert (
        main(
            [
                "failed",
                "resubmit",
                failed["id"],
                "--config",
                config,
                "--file",
                str(edit),
                "--operator",
                "wang",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "queued" in out and row["good_id"] not in out
    # Shown while queued: the edited row is masked like the payload (unless --reveal).
    assert main(["failed", "show", failed["id"], "--config", config, "--json"]) == 0
    (queued,) = _lines(capsys)
    assert queued["state"] == "queued" and queued["pending"]["action"] == "resubmit"
    assert row["good_id"] not in json.dumps(queued, ensure_ascii=False)
    assert queued["pending"]["fields"] == ["id_number"]
    assert main(["failed", "apply", "--config", config, "--json"]) == 0
    edges = [e["edge"] for e in _lines(capsys)]
    assert edges[0] == w.system_edge(h.A) and edges[-1] == w.edge(h.QINGHAI, h.NATIONAL)
    assert w.lib(h.NATIONAL).record(P, row["good_id"])["_owner"] == h.A
    assert main(["failed", "show", failed["id"], "--config", config, "--json"]) == 0
    (shown,) = _lines(capsys)
    assert shown["state"] == "resolved"
    assert [x["action"] for x in shown["history"]] == ["resubmit", "resubmitted"]
    assert [x["actor"] for x in shown["history"]] == ["wang", "sync"]
    # Audited in the county's library, chain intact, no personal value in it.
    log = AuditLog(w.lib(h.A).engine)
    entries = log.entries(action="failed.resubmit")
    assert [e.result for e in entries] == ["FAILED_EDIT_INVALID", "ok"]
    assert entries[0].actor.startswith("cli:") and entries[1].actor == "wang"
    assert log.verify() is None
    assert row["good_id"] not in json.dumps([e.detail for e in entries], ensure_ascii=False)
    # Showing it unmasked is audited too.
    assert main(["failed", "show", failed["id"], "--config", config, "--reveal"]) == 0
    assert [e.subject for e in log.entries(action="failed.reveal")] == [failed["id"]]
    # Already resolved: acting again is refused with its code.
    assert main(["failed", "resolve", failed["id"], "--config", config]) == 2
    assert "FAILED_CLOSED" in capsys.readouterr().out


def test_discard_by_filter_needs_a_reason_and_a_filter(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _w, config, _, _rows = _world(make_world, h)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # --reason is required by the parser
        main(["failed", "discard", "--code", "DATE_INVALID", "--config", config])
    assert exc.value.code == 2
    capsys.readouterr()
    assert main(["failed", "discard", "--config", config, "--reason", "x"]) == 2
    assert "FAILED_NO_FILTER" in capsys.readouterr().err
    assert (
        main(
            [
                "failed",
                "discard",
                "--code",
                "DATE_INVALID",
                "--config",
                config,
                "--reason",
                "测试数据",
                "--json",
            ]
        )
        == 0
    )
    done = _lines(capsys)
    assert len(done) == 3 and {d["state"] for d in done} == {"discarded"}
    assert main(["failed", "list", "--config", config, "--json", "--state", "discarded"]) == 0
    assert len(_lines(capsys)) == 3
    # A typo in a filter is an error, not an empty selection.
    assert main(["failed", "retry", "--code", "NO_SUCH_THING", "--config", config]) == 2


def test_retry_of_a_failed_run_and_stale_version(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _w, config, _, _rows = _world(make_world, h)
    capsys.readouterr()
    assert (
        main(["failed", "list", "--config", config, "--json", "--code", "DATE_INVALID", "--limit", "1"]) == 0
    )
    (one,) = _lines(capsys)
    assert main(["failed", "retry", one["id"], "--config", config, "--expect-version", "7"]) == 4
    assert "FAILED_CHANGED" in capsys.readouterr().out
    assert main(["failed", "retry", one["id"], "--config", config, "--expect-version", "1"]) == 0
    assert "queued" in capsys.readouterr().out
    assert main(["failed", "list", "--config", config, "--json", "--state", "queued"]) == 0
    assert [f["id"] for f in _lines(capsys)] == [one["id"]]


def test_operators_add_list_disable(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    w = make_world({h.A: h.QINGHAI})
    config = str(w.root / "exchange.yaml")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["operators", "add", "wang", "--password-stdin", "--config", config]) == 2
    assert "OPERATOR_PASSWORD_WEAK" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert (
        main(
            ["operators", "add", "wang", "--name", "王工", "--reveal", "--password-stdin", "--config", config]
        )
        == 0
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    assert main(["operators", "add", "wang", "--password-stdin", "--config", config]) == 2
    assert "OPERATOR_EXISTS" in capsys.readouterr().err
    assert main(["operators", "add", "../x", "--password-stdin", "--config", config]) == 2
    assert main(["operators", "disable", "nobody", "--config", config]) == 2
    assert main(["operators", "disable", "wang", "--config", config]) == 0
    capsys.readouterr()
    assert main(["operators", "list", "--config", config, "--json"]) == 0
    (op,) = _lines(capsys)
    assert (op["username"], op["name"], op["reveal"], op["disabled"]) == ("wang", "王工", True, True)
    # The password is stored hashed only.
    with w.lib(h.NATIONAL).connect() as c:
        stored = c.exec_driver_sql("select password from operators").scalar()
    assert stored.startswith("scrypt$") and "horse" not in stored
