"""Structured logs: each engine step logs what it did as one JSON object a line (TONGBAN_LOG=json), with
the run id, edge, batch ids and counts, and never a personal field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tongban.cli import main
from tongban.core import logs


def test_sync_logs_each_step_as_json_lines_without_personal_fields(
    make_world: Any, h: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world({h.A: h.QINGHAI})
    rows = h.people(h.A, 20)
    rows[3]["sfzh"] = rows[3]["sfzh"][:-1] + ("0" if rows[3]["sfzh"][-1] != "0" else "1")  # a bad check char
    world.registers[h.A].put(rows)
    monkeypatch.setenv("TONGBAN_LOG", "json")
    try:
        code = main(["sync", "--config", str(world.root / "exchange.yaml")])
    finally:
        logs.unconfigure()
    assert code == 1  # a row was rejected
    err = capsys.readouterr().err
    lines = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    events = {(x["event"], x["edge"]) for x in lines}
    edge = world.system_edge(h.A)
    assert {("extract", edge), ("validate", edge), ("seal", edge), ("load", edge)} <= events
    validate = next(x for x in lines if x["event"] == "validate" and x["edge"] == edge)
    assert validate["rejected"] == 1 and validate["rejected_by_code"] == {"ID_CHECKSUM": 1}
    load = next(x for x in lines if x["event"] == "load" and x["edge"] == edge)
    assert load["inserted"] == 19 and load["run_id"] and len(load["batch_id"]) == len(load["root"]) == 1
    # Never a personal field: no name or address, identity numbers (in the cursor) masked.
    assert "居民" not in err and "和平路" not in err
    for row in rows:
        assert row["sfzh"] not in err
    extract = next(x for x in lines if x["event"] == "extract" and x["edge"] == edge)
    assert "*" in json.dumps(extract["cursor_to"])
