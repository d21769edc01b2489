"""Crash benchmark: kill an overlapped sync at random points, rerun, and check the counts are exact.

The edge is bench/sync.py's: a county's 公安 SQLite system (``--rows`` rows, 0.1 % planted defects) into
the county's library, in batches of ``--batch`` rows, so many batches are in flight while others
commit. A reference run (never killed) gives what a finished sync leaves: records, failed rows, the
ledger's inserted count and the cursor. Then, ``--runs`` times, into a fresh library each time:

1. a child process starts the sync and is killed with SIGKILL after a random delay from the moment
   the sync starts (uniform over the reference sync's duration: anywhere in reading, validating,
   sealing or loading, between or inside batches' transactions);
2. a second child runs the sync again to the end;
3. the library must hold exactly the reference's records (same keys, same content hashes), each once
   (the ledger's inserted counts add up to the record count), the reference's failed rows, and the
   reference's cursor; the run folder holds no rows.

The source keeps one row per key: a key repeated in the source is a KEY_DUPLICATE within one run but
an update across two runs (the later row is the newer version), so a kill between the two rows
rightly changes which version stands, and the comparison would not be exact. Every other planted
defect stays (rejected rows must be recorded once, whatever the kill).

Any difference stops the script with the run number and the delay (exit 1). Run:
``.venv/bin/python bench/crash.py [--runs 100] [--rows 50000] [--batch 1000] [--postgres URL]``
(about 5 minutes at the defaults on 2 cores; SQLite library unless ``--postgres`` is given).
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sync import (
    EDGE,
    LIB_ENV,
    PostgresTarget,
    SqliteTarget,
    Target,
    make_source,
    write_exchange,
)

from tongban.core.config import load_exchange
from tongban.core.initialize import initialize, root_public_key
from tongban.core.store import Library
from tongban.core.trust import KeyStore, TrustList

COUNTY = "630104"
CHILD = """
import sys, time
from tongban.core import engine
from tongban.core.config import load_exchange
ex = load_exchange(sys.argv[1])
print("ready", flush=True)
start = time.perf_counter()
batches = engine.sync_edge(ex, sys.argv[2])["batches"]
print(batches, time.perf_counter() - start, flush=True)
"""


def child(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config), EDGE],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def snapshot(url: str) -> dict[str, Any]:
    """What the library holds for the edge: records (key -> hash), failed rows, ledger, cursor."""
    lib = Library(url, COUNTY)
    try:
        with lib.engine.connect() as c:
            records = dict(c.exec_driver_sql("SELECT id_number, _hash FROM population").all())
            failed = c.exec_driver_sql(
                "SELECT row_key, codes FROM failed_transfers WHERE kind = 'row' ORDER BY row_key, codes"
            ).all()
            inserted = c.exec_driver_sql("SELECT coalesce(sum(inserted), 0) FROM batches").scalar_one()
        state = lib.state(EDGE) or {}
    finally:
        lib.dispose()
    return {
        "records": records,
        "failed": sorted((str(k), str(v)) for k, v in failed),
        "inserted": int(inserted),
        "cursor": state.get("cursor"),
    }


def check(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    problems = []
    if got["records"] != want["records"]:
        missing = len(set(want["records"]) - set(got["records"]))
        extra = len(set(got["records"]) - set(want["records"]))
        changed = sum(
            1 for k, v in got["records"].items() if k in want["records"] and want["records"][k] != v
        )
        problems.append(f"records: {missing} missing, {extra} extra, {changed} with another hash")
    if got["inserted"] != len(got["records"]):
        problems.append(f"ledger inserted {got['inserted']:,} rows for {len(got['records']):,} records")
    if got["failed"] != want["failed"]:
        problems.append(f"failed rows: {len(got['failed'])} instead of {len(want['failed'])}")
    if got["cursor"] != want["cursor"]:
        problems.append(f"cursor {got['cursor']} instead of {want['cursor']}")
    return problems


def main() -> None:
    # The county's master key (encryption at rest) from the environment, as in production: every fresh
    # library of the run, and every child, wraps its data keys with it.
    os.environ.setdefault(f"TONGBAN_MASTER_KEY_{COUNTY}", base64.b64encode(os.urandom(32)).decode())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--postgres", help="a PostgreSQL server for the library (default: SQLite)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="tongban-bench-crash-"))
    target: Target = PostgresTarget(args.postgres) if args.postgres else SqliteTarget(base)
    try:
        source = make_source(base, args.rows)
        with sqlite3.connect(source) as con:  # one row per key: see the module's docstring
            con.execute("DELETE FROM czrk WHERE rowid NOT IN (SELECT min(rowid) FROM czrk GROUP BY sfzh)")
        config = write_exchange(base, args.batch)
        ex = load_exchange(config)
        os.environ[LIB_ENV] = target.fresh()
        initialize(ex)
        target.root_key = root_public_key(KeyStore(ex.keys_dir), TrustList.load(ex.trust_list))
        env = dict(os.environ)

        url = target.fresh()
        env[LIB_ENV] = url
        ref = child(config, env)
        out, err = ref.communicate()
        if ref.returncode:
            raise SystemExit(f"the reference run failed:\n{err[-2000:]}")
        batches, seconds = out.split()[-2:]
        took = float(seconds)
        want = snapshot(url)
        target.forget(url)
        print(
            f"reference: {args.rows:,} rows in batches of {args.batch:,} ({batches} batches), "
            f"{len(want['records']):,} records and {len(want['failed'])} failed rows; the sync took "
            f"{took:.2f} s; {target.kind} library"
        )
        killed_at: list[float] = []
        finished_first = 0
        for run in range(1, args.runs + 1):
            url = target.fresh()
            env[LIB_ENV] = url
            delay = rng.uniform(0.0, took)
            proc = child(config, env)
            assert proc.stdout is not None
            proc.stdout.readline()  # "ready": imports done, the sync starts now
            time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed_at.append(delay)
            else:
                finished_first += 1
            proc.communicate()
            partial = snapshot(url)["inserted"]
            rerun = child(config, env)
            _, err = rerun.communicate()
            if rerun.returncode:
                raise SystemExit(f"run {run}: the rerun after a kill at {delay:.3f} s failed:\n{err[-2000:]}")
            problems = check(snapshot(url), want)
            left = [
                p for p in (ex.spool / EDGE).rglob("*") if p.is_file() and p.suffix in (".arrow", ".jsonl")
            ]
            if left:
                problems.append(f"{len(left)} files with rows left in the spool")
            if problems:
                raise SystemExit(f"run {run}: killed at {delay:.3f} s: " + "; ".join(problems))
            target.forget(url)
            print(
                f"  run {run:>3}: killed at {delay:5.2f} s with {partial:>6,} rows committed; rerun exact",
                flush=True,
            )
        print(
            f"\n{args.runs} runs: every rerun exact ({len(killed_at)} killed mid-run, {finished_first} had "
            f"finished before the kill); kill delays {min(killed_at, default=0):.2f}-"
            f"{max(killed_at, default=0):.2f} s of a {took:.2f} s run"
        )
    finally:
        target.cleanup()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
