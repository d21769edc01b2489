"""Benchmark: signed verifications per second against a 1,000,000-license library (SPEC section 11:
at least 3,000/s, p99 under 20 ms at 32 connections, at least 60% of a bare FastAPI endpoint).

In one run, on this machine:
- a national library (SQLite) is filled directly with ``--licenses`` generated licenses (leaf hashes
  computed as a sync would) and an office is added;
- the verification app (``tongban.web.server``, uvicorn, ``--workers``) serves it; a separate load
  process keeps ``--connections`` HTTP/1.1 keep-alive connections busy with ``POST /v1/verify/license``
  for random presented licenses (bearer token, purpose; every answer is looked up, compared, masked,
  signed as an EdDSA attestation and written to the hash-chained audit log);
- the baseline: a bare FastAPI endpoint (pydantic body, JSON answer, no work) under the same uvicorn
  settings, loaded the same way.

Run: ``make bench`` or ``.venv/bin/python bench/verify.py [--licenses N] [--seconds S] [--workers W]
[--rounds R]`` (the two servers take turns R times; every round is printed, the median round is the result).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EXCHANGE = """version: 1
spool: spool
nodes:
  - {code: "000000", name: 国家库, level: national, parent: null, library: "sqlite:///libraries/000000.sqlite"}
  - {code: "630000", name: 青海省, level: province, parent: "000000", library: "sqlite:///libraries/630000.sqlite"}
  - {code: "630104", name: 城西区, level: county, parent: "630000", library: "sqlite:///libraries/630104.sqlite"}
systems: []
"""

BARE_APP = """
from fastapi import FastAPI
from pydantic import BaseModel


class Claim(BaseModel):
    purpose: str
    license_id: str | None = None
    holder_code: str


app = FastAPI()


@app.post("/v1/verify/license")
def verify(body: Claim) -> dict:
    return {"result": "match", "license_id": body.license_id}
"""


def build_library(root: Path, n: int) -> tuple[list[tuple[str, str]], str, float]:
    """The exchange under ``root`` with ``n`` licenses in the national library; (sample claims, token, s)."""
    from tongban.core.config import load_exchange
    from tongban.core.engine.libraries import Libraries
    from tongban.core.engine.sealing import hash_columns
    from tongban.core.initialize import initialize
    from tongban.core.store.sealed import seal_table
    from tongban.core.trust.merkle import row_hashes
    from tongban.core.verification import offices
    from tongban.core.verification.scope import Scope
    from tongban.demo.generate import license_table

    started = time.perf_counter()
    (root / "exchange.yaml").write_text(EXCHANGE, encoding="utf-8")
    ex = load_exchange(root / "exchange.yaml")
    initialize(ex)
    table = license_table(n, seed=11)
    names = list(table.column_names)
    table = table.append_column("_owner", table.column("division"))
    leaves = row_hashes(table, hash_columns("license"))
    hexes = [bytes(x).hex() for x in leaves]
    plain_claims = list(
        zip(table.column("license_id").to_pylist(), table.column("holder_code").to_pylist(), strict=True)
    )
    with Libraries(ex) as libs:  # the library's keys, under the node's master key made by initialize
        lib = libs.get("000000")
        lib.migrate()
        # Encryption at rest: the personal fields are stored sealed, the holder code with its keyed hash.
        table = seal_table(lib.keyring(), "license", table)
    extra = [n for n in table.column_names if n not in names and n != "_owner"]
    cols = {name: table.column(name).to_pylist() for name in [*names, "_owner", *extra]}
    for name in ("issue_date", "valid_from", "valid_until"):
        cols[name] = [None if v is None else v.isoformat() for v in cols[name]]
    cols["updated_at"] = [v.strftime("%Y-%m-%d %H:%M:%S.%f") for v in cols["updated_at"]]
    now = time.strftime("%Y-%m-%d %H:%M:%S.000000", time.gmtime())
    conn = sqlite3.connect(str(root / "libraries" / "000000.sqlite"))
    order = [*names, "_owner", *extra, "_hash", "_batch", "_leaf", "_source", "_flags", "_synced_at", "_seq"]
    sql = f"insert into license ({','.join(order)}) values ({','.join('?' * len(order))})"
    conn.execute("pragma journal_mode=wal")
    conn.execute("pragma synchronous=off")
    rows = zip(
        *[cols[name] for name in names],
        cols["_owner"],
        *[cols[name] for name in extra],
        hexes,
        ["bench" + "0" * 27] * n,
        range(n),
        ["630000"] * n,
        [None] * n,
        [now] * n,
        [1] * n,
        strict=True,
    )
    with conn:
        conn.executemany(sql, rows)
    conn.execute("analyze")
    conn.close()
    with Libraries(ex) as libs:
        _, token = offices.add(
            libs.get("000000"), "BENCH-1", "bench", Scope(datasets=("license",)), 1_000_000
        )
    rng = random.Random(5)
    picks = rng.sample(range(n), min(n, 20_000))
    claims = [plain_claims[i] for i in picks]
    return claims, token, time.perf_counter() - started


def serve(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            *args,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    deadline = time.monotonic() + 60
    import socket

    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the load process ---------------------------------------------------------------------------


async def _connection(
    port: int,
    bodies: list[bytes],
    token: str,
    stop: float,
    warm: float,
    out: list[float],
    errors: list[int],
    done: list[int],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rng = random.Random()
    head = (
        "POST /v1/verify/license HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: "
    ).encode()
    while True:
        now = time.perf_counter()
        if now >= stop:
            break
        body = bodies[rng.randrange(len(bodies))]
        writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        t0 = time.perf_counter()
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        t1 = time.perf_counter()
        done[0] += 1
        if t0 >= warm:
            if status_line[9:12] == b"200":
                out.append(t1 - t0)
            else:
                errors.append(int(status_line[9:12] or 0))
    writer.close()


def load(
    port: int, claims_file: str, token: str, connections: int, seconds: float, warmup: float
) -> dict[str, float]:
    claims = json.loads(Path(claims_file).read_text())
    bodies = [
        json.dumps({"purpose": "tax", "license_id": c[0], "holder_code": c[1]}).encode() for c in claims
    ]
    latencies: list[float] = []
    errors: list[int] = []
    done = [0]

    async def run() -> None:
        start = time.perf_counter()
        warm, stop = start + warmup, start + warmup + seconds
        await asyncio.gather(
            *(
                _connection(port, bodies, token, stop, warm, latencies, errors, done)
                for _ in range(connections)
            )
        )

    asyncio.run(run())
    lat = np.array(latencies) * 1000
    return {
        "rps": len(latencies) / seconds,
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "errors": len(errors),
        "ok": len(latencies),
        "total": done[0],
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of ``pid`` and its child processes (uvicorn's workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        this, parent = int(stat.parent.name), int(fields[1])
        if this == pid or parent == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def run_load(
    port: int, claims_file: str, token: str, connections: int, seconds: float, warmup: float
) -> dict[str, float]:
    """The load in a separate process (so it does not share the server's interpreter)."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--load",
            str(port),
            claims_file,
            token,
            str(connections),
            str(seconds),
            str(warmup),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--licenses", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (both servers)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="bare and signed runs, interleaved; median reported"
    )
    parser.add_argument("--load", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        port, claims, token, conns, secs, warm = args.load
        print(json.dumps(load(int(port), claims, token, int(conns), float(secs), float(warm))))
        return
    with tempfile.TemporaryDirectory(prefix="tongban-bench-verify-") as tmp:
        root = Path(tmp)
        claims, token, built = build_library(root, args.licenses)
        claims_file = root / "claims.json"
        claims_file.write_text(json.dumps(claims))
        (root / "bare_app.py").write_text(BARE_APP)
        print(
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"{args.licenses:,} licenses built in {built:.1f} s; {args.connections} connections, "
            f"{args.seconds:.0f} s measured after {args.warmup:.0f} s warm-up, uvicorn workers {args.workers}"
        )
        env = {
            **os.environ,
            "TONGBAN_WEB_CONFIG": str(root / "exchange.yaml"),
            "TONGBAN_WEB_NODE": "000000",
        }
        servers = (
            ("bare FastAPI endpoint", ["bare_app:app"], {"PYTHONPATH": str(root)}),
            ("signed verification", ["tongban.web.server:app_from_env", "--factory"], {}),
        )
        rounds: list[dict[str, dict[str, float]]] = []
        for r in range(args.rounds):  # interleaved: bare, signed, bare, signed ... (a busy spell hits both)
            results = {}
            for name, app_args, extra_env in servers:
                port = free_port()
                proc = serve([*app_args, "--workers", str(args.workers)], {**env, **extra_env}, port)
                try:
                    before = cpu_seconds(proc.pid)
                    results[name] = run_load(
                        port, str(claims_file), token, args.connections, args.seconds, args.warmup
                    )
                    used = cpu_seconds(proc.pid) - before
                    results[name]["cpu_ms"] = 1000 * used / max(1, results[name]["total"])
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
            rounds.append(results)
            print(f"round {r + 1} of {args.rounds}:")
            for name, res in results.items():
                print(
                    f"  {name:24s} {res['rps']:8,.0f} req/s   p50 {res['p50']:6.2f} ms   p99 {res['p99']:6.2f} ms   "
                    f"server CPU {res['cpu_ms']:.3f} ms/request   errors {res['errors']}"
                )
            bare, real = results["bare FastAPI endpoint"], results["signed verification"]
            print(f"  share of the bare endpoint: {real['rps'] / bare['rps']:.0%}" if bare["rps"] else "")
        # The round with the median share stands for the run (every round is printed above).
        rounds.sort(
            key=lambda x: x["signed verification"]["rps"] / max(1.0, x["bare FastAPI endpoint"]["rps"])
        )
        middle = rounds[len(rounds) // 2]
        bare, real = middle["bare FastAPI endpoint"], middle["signed verification"]
        share = real["rps"] / bare["rps"] if bare["rps"] else float("nan")
        print(
            f"signed verifications (median round): {real['rps']:,.0f}/s (target >= 3,000), p99 {real['p99']:.1f} ms "
            f"(target < 20), {share:.0%} of the bare endpoint (target >= 60%); bare endpoint {bare['rps']:,.0f}/s, "
            f"p99 {bare['p99']:.1f} ms"
        )


if __name__ == "__main__":
    main()
