"""Key trust (SPEC section 6): signing keys rotate with an overlap window, a revoked key is refused at once
for batches, and `tongban keys trust-list` publishes the signed list only when it verifies."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tongban.cli import main
from tongban.core import engine
from tongban.core.engine import SyncError
from tongban.core.trust import KeyStore, TrustList, from_b64url, revoke

P = "population"


@pytest.fixture
def world(make_world: Any, h: Any) -> Any:
    w = make_world({h.A: h.QINGHAI}, batch_size=4)
    w.registers[h.A].put(h.people(h.A, 10))
    w.edge_id = w.system_edge(h.A)
    return w


def sealed(w: Any) -> str:
    uri = engine.extract(w.ex, w.edge_id)
    engine.validate(w.ex, uri)
    engine.seal(w.ex, uri)
    return uri


def config(w: Any) -> str:
    return str(w.root / "exchange.yaml")


def test_batch_sealed_before_a_rotation_loads_within_the_overlap(
    world: Any, h: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = sealed(world)  # signed by the county's current key
    old = KeyStore(world.ex.keys_dir).current(h.A)
    assert main(["keys", "rotate", h.A, "--overlap", "1d", "--config", config(world), "--json"]) == 0
    new = json.loads(capsys.readouterr().out)["key_id"]
    listed = TrustList.load(world.ex.trust_list)
    entry = listed.entry(old)
    assert entry is not None and entry.valid_until is not None
    left = entry.valid_until - dt.datetime.now(dt.UTC)
    assert dt.timedelta(hours=23) < left <= dt.timedelta(days=1)  # the overlap window
    assert engine.load(world.ex, uri)["batches"] == 3  # made before the rotation: still trusted
    world.registers[h.A].update(
        next(iter(world.registers[h.A].key_set())), xm="新名字", gxsj="2025-03-01 11:00:00"
    )
    assert world.sync(world.edge_id)["updated"] == 1
    assert world.lib(h.A).last_manifest(world.edge_id)["key_id"] == new  # new batches: the new key


def test_revoked_key_is_refused_at_once_even_within_its_overlap(world: Any, h: Any) -> None:
    keys = KeyStore(world.ex.keys_dir)
    old = keys.current(h.A)
    uri = sealed(world)
    assert main(["keys", "rotate", h.A, "--overlap", "7d", "--config", config(world)]) == 0
    revoke(keys, world.ex.trust_list, old, "密钥泄露 key leaked")  # still inside its overlap window
    with pytest.raises(SyncError) as err:
        engine.load(world.ex, uri)
    assert err.value.code == "BATCH_KEY_REVOKED"
    assert world.lib(h.A).count(P) == 0
    assert world.sync(world.edge_id)["rows"] == 10  # re-read and signed with the new key: loads


def test_trust_list_published_as_signed(
    world: Any, h: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = KeyStore(world.ex.keys_dir)
    old = keys.current(h.A)
    assert main(["keys", "rotate", h.A, "--config", config(world)]) == 0
    revoke(keys, world.ex.trust_list, old, "retired")
    capsys.readouterr()
    out = tmp_path / "pub" / "trust-list.json"
    out.parent.mkdir()
    assert main(["keys", "trust-list", "--out", str(out), "--config", config(world), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["revoked"] == 1 and report["keys"] == len(world.ex.nodes) + 1
    assert out.read_bytes() == Path(world.ex.trust_list).read_bytes()
    pinned = world.lib(world.ex.trust_root).pinned_root()
    published = TrustList.load(out, from_b64url(pinned))  # verifies against the pinned root key
    assert published.entry(old).revoked_at is not None
    assert out.stat().st_mode & 0o777 == 0o644
    # Without --out: the same signed text on stdout.
    assert main(["keys", "trust-list", "--config", config(world)]) == 0
    assert capsys.readouterr().out == out.read_text(encoding="utf-8")


def test_altered_trust_list_is_not_published(
    world: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Path(world.ex.trust_list)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["entries"][0]["valid_until"] = "2099-01-01T00:00:00Z"  # an attacker extends a key
    path.write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "trust-list.json"
    code = main(["keys", "trust-list", "--out", str(out), "--config", config(world)])
    captured = capsys.readouterr()
    assert code == 2 and "TRUST_SIGNATURE" in captured.out + captured.err
    assert "Traceback" not in captured.out + captured.err
    assert not out.exists()
