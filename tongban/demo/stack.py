"""Airflow 3 in production form on this machine: api-server, scheduler, dag-processor, triggerer and Celery
workers as separate processes, metadata in PostgreSQL, Redis as the broker.

The same components, commands and settings as ``docker-compose.yml`` (its services run these commands;
``tests/test_compose.py`` checks that the two agree), without containers: ``make airflow`` starts a stack
for a person (:mod:`tongban.airflow.local`), and ``tests/test_airflow_scheduler.py`` starts one, drives
the exchange through Airflow's REST API, kills a worker in the middle of a run and starts another.

This module starts Airflow as processes; it does not import it. Every component writes its log to
``<home>/logs/<component>.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

__all__ = ["COMPONENTS", "REPO", "Stack", "StackError", "free_port"]

#: The repository (its ``dags/`` is the DAG folder).
REPO = Path(__file__).resolve().parents[2]

#: Each component: the compose service that runs it and its ``airflow`` command.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "airflow-apiserver": ("api-server",),
    "airflow-scheduler": ("scheduler",),
    "airflow-dag-processor": ("dag-processor",),
    "airflow-triggerer": ("triggerer",),
    "airflow-worker": ("celery", "worker"),
}

#: Settings every stack shares with ``docker-compose.yml`` (the compose file's values for these keys).
SHARED_SETTINGS = {
    "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__AUTH_MANAGER": (
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    ),
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
}


class StackError(RuntimeError):
    """A component that would not start, or an API call that failed; names the log to read."""


def free_port() -> int:
    """A TCP port on the loopback interface nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def provider_overlay(home: Path) -> Path | None:
    """A folder to put first on ``PYTHONPATH`` when the installed ``tongban`` lacks the provider entry point.

    That happens when the virtual environment was installed from another checkout (an older one):
    Airflow finds providers through installed metadata, so the overlay declares this checkout's
    ``apache_airflow_provider`` entry point. A fresh ``make setup`` needs none (None).
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("tongban")
    except metadata.PackageNotFoundError:
        dist = None
    if dist is not None and any(ep.group == "apache_airflow_provider" for ep in dist.entry_points):
        return None
    site = home / "provider-overlay"
    info = site / "tongban-0.1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tongban\nVersion: 0.1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[apache_airflow_provider]\nprovider_info = tongban.airflow.provider:get_provider_info\n",
        encoding="utf-8",
    )
    return site


def _psycopg(url: str) -> str:
    """A PostgreSQL URL with the psycopg (3) driver, the one Tongban installs."""
    scheme, _, rest = url.partition("://")
    return f"postgresql+psycopg://{rest}" if scheme.startswith("postgres") else url


@dataclass
class Stack:
    """One Airflow installation: its home folder, metadata database, broker, queue and API port.

    ``settings`` adds or overrides ``AIRFLOW__*`` (and other) variables of every component.
    """

    home: Path
    metadata_url: str  # a PostgreSQL URL (any driver; Airflow gets psycopg)
    broker_url: str  # redis://host:port/db
    exchange: Path
    port: int = 0
    queue: str = ""
    password: str = ""
    settings: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _token: str = ""

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        self.port = self.port or free_port()
        self.queue = self.queue or f"tongban_{secrets.token_hex(4)}"
        self.logs.mkdir(parents=True, exist_ok=True)
        users = self.home / "passwords.json"
        if users.exists():
            self.password = self.password or json.loads(users.read_text(encoding="utf-8"))["admin"]
        self.password = self.password or secrets.token_urlsafe(12)
        users.write_text(json.dumps({"admin": self.password}), encoding="utf-8")
        users.chmod(0o600)
        secret_file = self.home / "secrets.json"
        if secret_file.exists():
            kept = json.loads(secret_file.read_text(encoding="utf-8"))
        else:
            kept = {"jwt": secrets.token_urlsafe(32), "api": secrets.token_urlsafe(32)}
            secret_file.write_text(json.dumps(kept), encoding="utf-8")
            secret_file.chmod(0o600)
        self._secrets = kept

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The environment of every component (and of ``airflow`` commands run against this stack)."""
        meta = _psycopg(self.metadata_url)
        bin_dir = str(Path(sys.executable).parent)
        env = dict(os.environ)
        env.update(SHARED_SETTINGS)
        overlay = provider_overlay(self.home)
        paths = [str(overlay)] if overlay else []
        paths += [str(REPO), env.get("PYTHONPATH", "")]
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                # `airflow` starts `airflow …` children by name: the venv must be on PATH.
                "PATH": bin_dir + os.pathsep + env.get("PATH", ""),
                "PYTHONPATH": os.pathsep.join(p for p in paths if p),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__SECRET_KEY": self._secrets["api"],
                "AIRFLOW__API_AUTH__JWT_SECRET": self._secrets["jwt"],
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta,
                # psycopg 3 is async too (Airflow would otherwise look for asyncpg).
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": meta,
                "AIRFLOW__CELERY__BROKER_URL": self.broker_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta,
                "AIRFLOW__CELERY__WORKER_ENABLE_REMOTE_CONTROL": "False",
                "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs / "tasks"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                "TONGBAN_EXCHANGE": str(Path(self.exchange).resolve()),
            }
        )
        env.update(self.settings)
        return env

    # -- processes ------------------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run one ``airflow`` command against this stack (its output appended to ``logs/cli.log``)."""
        with (self.logs / "cli.log").open("a", encoding="utf-8") as log:
            log.write(f"$ airflow {' '.join(args)}\n")
            log.flush()
            done = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=self.env(),
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                timeout=timeout,
                check=False,
            )
            log.write(done.stdout)
        if done.returncode:
            raise StackError(
                f"airflow {' '.join(args)} failed ({done.returncode}); see {self.logs / 'cli.log'}"
            )
        return done

    def migrate(self) -> None:
        """Create or upgrade Airflow's metadata database."""
        self.airflow("db", "migrate")

    def start(self, name: str, *, log_name: str | None = None) -> subprocess.Popen[bytes]:
        """Start a component (its own process group); its output goes to ``logs/<name>.log``."""
        args = list(COMPONENTS[name])
        if name == "airflow-worker":
            args += ["--queues", self.queue, "--concurrency", self.settings.get("TONGBAN_WORKERS", "2")]
            args += ["--celery-hostname", f"{log_name or name}-{secrets.token_hex(3)}@%h"]
        log = (self.logs / f"{log_name or name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.procs[log_name or name] = proc
        (self.home / "pids").mkdir(exist_ok=True)
        (self.home / "pids" / f"{log_name or name}.pid").write_text(
            f"{proc.pid} {_started_at(proc.pid)}", encoding="utf-8"
        )
        return proc

    def start_all(self) -> None:
        for name in COMPONENTS:
            self.start(name)

    def kill(self, name: str) -> None:
        """Kill a component and everything it started at once (SIGKILL to its process group)."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop(self, name: str, *, timeout: float = 30) -> None:
        """Stop a component: SIGTERM to its process group, then SIGKILL after ``timeout`` seconds."""
        proc = self.procs.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what the leader left behind
        (self.home / "pids" / f"{name}.pid").unlink(missing_ok=True)

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.stop(name)

    def check_alive(self) -> None:
        """StackError naming the log of a component that has exited."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise StackError(f"{name} exited ({proc.returncode}); see {self.logs / (name + '.log')}")

    # -- the REST API ---------------------------------------------------------------------------

    def wait_until(self, what: str, ready: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
        """Poll ``ready`` until it returns something true; StackError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = ready()
            except (requests.RequestException, StackError) as exc:
                last = exc
            else:
                if last:
                    return last
            time.sleep(every)
        raise StackError(
            f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r}); logs: {self.logs}"
        )

    def token(self) -> str:
        """A JWT from ``/auth/token`` for the admin user (Airflow 3's simple auth manager)."""
        if not self._token:
            r = requests.post(
                f"{self.base_url}/auth/token",
                json={"username": "admin", "password": self.password},
                timeout=30,
            )
            if r.status_code >= 300:
                raise StackError(f"POST /auth/token: {r.status_code} {r.text[:300]}")
            self._token = r.json()["access_token"]
        return self._token

    def api(self, method: str, path: str, **kw: Any) -> Any:
        """Call the REST API (``/api/v2`` + ``path``) as the admin; the decoded JSON answer."""
        r = requests.request(
            method,
            f"{self.base_url}/api/v2{path}",
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=60,
            **kw,
        )
        if r.status_code == 401:
            self._token = ""
            r = requests.request(
                method,
                f"{self.base_url}/api/v2{path}",
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=60,
                **kw,
            )
        if r.status_code >= 300:
            raise StackError(f"{method} /api/v2{path}: {r.status_code} {r.text[:500]}")
        return r.json() if r.content else None

    def health(self) -> dict[str, Any]:
        r = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=10)
        r.raise_for_status()
        return dict(r.json())

    def healthy(self) -> bool:
        h = self.health()
        return all(
            (h.get(k) or {}).get("status") == "healthy"
            for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def dag_ids(self) -> list[str]:
        found = self.api("GET", "/dags", params={"limit": 1000})
        return sorted(d["dag_id"] for d in found["dags"])

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/importErrors")["import_errors"])

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run now; its run id."""
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}})
        return str(run["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run (the API answers 100 a page)."""
        out: list[dict[str, Any]] = []
        while True:
            found = self.api(
                "GET",
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                params={"limit": 100, "offset": len(out)},
            )
            out += found["task_instances"]
            if not found["task_instances"] or len(out) >= int(found["total_entries"]):
                return out


@contextlib.contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    """Every component started, and stopped again on the way out."""
    try:
        stack.start_all()
        yield stack
    finally:
        stack.stop_all()


# -- make airflow: the whole stack on this machine for a person -------------------------------------

#: Where ``make airflow`` keeps the demo exchange, Airflow's home and every component's log.
LOCAL_DIR = REPO / "demo-airflow"
#: The databases ``make airflow`` uses on this machine's PostgreSQL (created when missing).
LOCAL_META_DB, LOCAL_LIB_DB = "tongban_airflow", "tongban_libraries"


def _pg_admin_url() -> str:
    return (
        os.environ.get("TONGBAN_AIRFLOW_POSTGRES") or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )


def _ensure_database(admin_url: str, name: str) -> str:
    import sqlalchemy as sa

    base = sa.make_url(admin_url)
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        if not conn.execute(sa.text("select 1 from pg_database where datname = :n"), {"n": name}).first():
            conn.execute(sa.text(f'create database "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _library_env(lib_db_url: str, codes: list[str]) -> dict[str, str]:
    """``TONGBAN_LIB_<code>`` for each node: a schema ``n<code>`` of the libraries' database (created)."""
    import sqlalchemy as sa

    url = sa.make_url(lib_db_url)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    out = {}
    with engine.begin() as conn:
        for code in codes:
            conn.execute(sa.text(f'create schema if not exists "n{code}"'))
            scoped = url.update_query_dict({"options": f"-csearch_path=n{code}"})
            out[f"TONGBAN_LIB_{code}"] = scoped.render_as_string(hide_password=False)
    engine.dispose()
    return out


def _started_at(pid: int) -> str:
    """A process's start time (clock ticks since boot): with its id, it names that one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _recorded(pid_file: Path) -> int | None:
    """The process group a pid file names, if that very process (same start time) still runs."""
    try:
        pid_text, _, started = pid_file.read_text(encoding="utf-8").strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if started and _started_at(pid) == started else None


def local_up(workdir: Path = LOCAL_DIR, *, port: int = 8080, out: Any = sys.stdout) -> int:
    """Start the whole stack on this machine's PostgreSQL and Redis with the demo exchange scheduled."""
    from tongban.core.config import load_exchange
    from tongban.core.initialize import initialize
    from tongban.demo.exchange_yaml import demo_exchange_yaml
    from tongban.demo.generate import DEMO_COUNTIES, generate_demo

    workdir = workdir.resolve()
    home = workdir / "airflow"
    pids = home / "pids"
    if pids.is_dir() and any(_recorded(p) for p in pids.glob("*.pid")):
        out.write(f"already running; `make airflow-stop` stops it (logs: {home / 'logs'})\n")
        return 0
    admin = _pg_admin_url()
    meta = _ensure_database(admin, LOCAL_META_DB)
    libs_url = _ensure_database(admin, LOCAL_LIB_DB)
    exchange = workdir / "exchange.yaml"
    if not exchange.exists():
        out.write(f"generating the demo exchange in {workdir} …\n")
        manifest = generate_demo(workdir)
        text = demo_exchange_yaml(workdir, manifest["systems"], DEMO_COUNTIES, library_env="TONGBAN_LIB_")
        exchange.write_text(text, encoding="utf-8")
    codes = [
        line.split("TONGBAN_LIB_")[1].split("}")[0].strip()
        for line in exchange.read_text().splitlines()
        if "TONGBAN_LIB_" in line
    ]
    libraries = _library_env(libs_url, codes)
    os.environ.update(libraries)
    initialize(load_exchange(exchange))
    saved = home / "stack.json"
    kept = json.loads(saved.read_text(encoding="utf-8")) if saved.exists() else {}
    if not kept.get("port"):
        try:
            with socket.create_server(("127.0.0.1", port)):
                pass
            kept["port"] = port
        except OSError:
            kept["port"] = free_port()
    stack = Stack(
        home,
        meta,
        os.environ.get("TONGBAN_AIRFLOW_REDIS") or "redis://127.0.0.1:6379/0",
        exchange,
        port=int(kept["port"]),
        queue=kept.get("queue", ""),
        settings={**libraries, "TONGBAN_WORKERS": "4"},
    )
    home.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"port": stack.port, "queue": stack.queue}), encoding="utf-8")
    env_sh = home / "env.sh"
    env_sh.write_text(
        "".join(f"export {k}='{v}'\n" for k, v in {**libraries, "TONGBAN_EXCHANGE": str(exchange)}.items()),
        encoding="utf-8",
    )
    env_sh.chmod(0o600)
    out.write("migrating Airflow's metadata database …\n")
    stack.migrate()
    stack.start_all()
    out.write(f"starting {', '.join(COMPONENTS)} (logs: {stack.logs}) …\n")
    stack.wait_until("a healthy stack", stack.healthy, 300)
    stack.wait_until("the DAGs parsed", lambda: len(stack.dag_ids()) >= 18, 300)
    sync = [
        d
        for d in stack.dag_ids()
        if d.startswith("tongban_") and d.split("_")[1] in ("population", "business", "license")
    ]
    for dag_id in sync:
        stack.unpause(dag_id)  # scheduled @hourly: unpausing starts a run at once
    stack.procs.clear()  # they keep running after this process ends; `make airflow-stop` stops them
    out.write(
        f"\nAirflow UI: {stack.base_url}   user admin, password {stack.password}\n"
        f"{len(sync)} sync DAGs unpaused (their first runs start now); tongban_review applies operators' "
        "queued actions every 5 minutes; the other maintenance DAGs stay paused.\n"
        f"CLI: . {env_sh} && .venv/bin/tongban status --config {exchange}\n"
        "stop: make airflow-stop\n"
    )
    return 0


def local_down(workdir: Path = LOCAL_DIR, *, out: Any = sys.stdout) -> int:
    """Stop every component ``local_up`` started (by the process ids it recorded)."""
    home = workdir.resolve() / "airflow"
    stopped = 0
    for pid_file in sorted((home / "pids").glob("*.pid")) if (home / "pids").is_dir() else []:
        pid = _recorded(pid_file)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while _recorded(pid_file) and time.monotonic() < deadline:
                time.sleep(0.5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # the group: what the leader started goes too
            stopped += 1
        pid_file.unlink(missing_ok=True)
    out.write(f"stopped {stopped} components; the databases and {workdir} stay (delete them to start over)\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tongban.demo.stack")
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--workdir", type=Path, default=LOCAL_DIR)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    if args.action == "up":
        try:
            return local_up(args.workdir, port=args.port)
        except StackError as exc:
            sys.stderr.write(f"AIRFLOW_RUN: {exc}\n")
            return 4
    return local_down(args.workdir)


if __name__ == "__main__":
    sys.exit(main())
