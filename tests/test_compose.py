"""docker-compose.yml and the Dockerfile describe a production form that can run (checked without Docker):
every file, volume, variable and path the compose file names exists and fits, and its services run the
same components and commands as the real-scheduler test starts (tongban.demo.stack)."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath

import pytest
import yaml

from tongban.core.config import load_exchange
from tongban.demo.stack import COMPONENTS, SHARED_SETTINGS

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = tuple(COMPONENTS)
LONG_RUNNING = (*AIRFLOW, "postgres", "redis")


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _env_example() -> dict[str, str]:
    out = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME:-default}`` and ``${NAME}``, from ``env``."""

    def one(m: re.Match[str]) -> str:
        name, _, default = m.group(1).partition(":-")
        return env.get(name, default)

    return re.sub(r"\$\{([^}]+)\}", one, value)


def _mounts(service: dict) -> list[tuple[str, str]]:
    """``(source, target)`` of each volume of a service."""
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        out.append((source, target))
    return out


def test_services_run_the_components_the_real_scheduler_test_starts() -> None:
    services = _compose()["services"]
    assert {*AIRFLOW, "airflow-init", "postgres", "redis"} <= set(services)
    for name, command in COMPONENTS.items():
        assert services[name]["command"].split() == list(command), name
    for name in AIRFLOW:
        service = services[name]
        env = service["environment"]
        assert service["image"] == "tongban:latest"
        for key, value in SHARED_SETTINGS.items():  # the same settings as make airflow and the test
            assert str(env[key]) == value, key
        assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")
        assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in LONG_RUNNING:
        assert "healthcheck" in services[name], f"{name} has no health check"
    init = " ".join(services["airflow-init"]["command"])
    assert "airflow db migrate" in init and "tongban init --config /opt/tongban/config/exchange.yaml" in init


def test_no_password_is_written_into_the_compose_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    for url in re.findall(r"\w+(?:\+\w+)*://[^\s\"']+", text):
        user_info = url.split("://", 1)[1].split("@", 1)
        if len(user_info) == 2 and ":" in user_info[0]:
            assert "${POSTGRES_PASSWORD" in user_info[0], url


def test_every_variable_the_compose_file_reads_is_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    used = {m.split(":-")[0] for m in re.findall(r"(?<!\$)\$\{([^}]+)\}", text)}
    example = _env_example()
    assert used <= set(example), f"add to .env.example: {sorted(used - set(example))}"
    assert "env_file" in _compose()["x-airflow"] and (ROOT / ".env.example").is_file()


def test_mounted_files_exist_and_named_volumes_are_declared_and_used() -> None:
    compose = _compose()
    declared = set(compose["volumes"])
    used: set[str] = set()
    for service in compose["services"].values():
        for source, _target in _mounts(service):
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
            else:
                assert source in declared, f"volume {source} is not declared"
                used.add(source)
    assert used == declared, f"declared but never mounted: {sorted(declared - used)}"


def _container_to_host(path: PurePosixPath, mounts: list[tuple[str, str]]) -> tuple[str, Path | None] | None:
    """The mount a container path lies on: (source, host path for bind mounts, else None)."""
    best = None
    for source, target in mounts:
        t = PurePosixPath(target)
        if (path == t or t in path.parents) and (best is None or len(str(t)) > len(best[1])):
            best = (source, target)
    if best is None:
        return None
    source, target = best
    if source.startswith("./"):
        rel = path.relative_to(PurePosixPath(target))
        return source, ROOT / source / rel if str(rel) != "." else ROOT / source
    return source, None


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> tuple[object, dict]:
    """The production exchange.yaml, loaded with the library URLs the compose file gives."""
    compose = _compose()
    env = compose["x-airflow"]["environment"]
    example = _env_example()
    for key, value in env.items():
        if key.startswith("TONGBAN_LIB_"):
            monkeypatch.setenv(key, _interpolate(str(value), example))
    return load_exchange(ROOT / "deploy" / "exchange.production.yaml"), compose


def test_the_production_config_fits_the_volumes(production: tuple) -> None:
    ex, compose = production
    worker = compose["services"]["airflow-worker"]
    mounts = _mounts(worker)
    env = worker["environment"]
    # The config the services read is the production example, mounted read-only with its mappings.
    config = _container_to_host(PurePosixPath(env["TONGBAN_EXCHANGE"]), mounts)
    assert config == ("./deploy/exchange.production.yaml", ROOT / "deploy" / "exchange.production.yaml")
    # Its paths are absolute and each lies on a volume every worker shares.
    for path in (ex.spool, ex.keys_dir, ex.trust_list.parent):
        assert path.is_absolute()
        where = _container_to_host(PurePosixPath(path), mounts)
        assert where is not None and where[0].startswith("tongban-"), f"{path} is on no volume"
    for system in ex.systems.values():
        if system.kind == "files":
            assert system.folder is not None
            where = _container_to_host(PurePosixPath(system.folder), mounts)
            assert where is not None and where[0] == "tongban-drops", system.folder
        # Mapping files resolve to the mounted mappings folder, and exist there.
        source = system.mapping.source
        if source:
            container = PurePosixPath("/opt/tongban/config") / Path(source).relative_to(ROOT / "deploy")
            host = _container_to_host(container, mounts)
            assert host is not None and host[1] is not None and host[1].is_file(), source


def test_the_production_config_keeps_credentials_out(production: tuple) -> None:
    ex, compose = production
    env = compose["x-airflow"]["environment"]
    example = _env_example()
    for node in ex.nodes.values():
        assert node.library is None and node.library_env in env, node.code  # a variable, set by compose
        assert env[node.library_env].startswith("postgresql+psycopg://")
    for system in ex.systems.values():
        if system.kind == "sql":
            assert system.conn_id and system.url is None and system.url_env is None
            assert f"AIRFLOW_CONN_{system.conn_id.upper()}" in example, system.conn_id
            assert example[f"AIRFLOW_CONN_{system.conn_id.upper()}"].startswith("tongban://")
    text = (ROOT / "deploy" / "exchange.production.yaml").read_text(encoding="utf-8")
    assert not re.search(r"://[^/\s]*:[^@\s]*@", text)  # no user:password@ anywhere


def test_the_image_installs_the_project_at_the_pinned_airflow() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    assert pinned and f"FROM apache/airflow:{pinned.group(1)}-python3.11" in dockerfile
    assert "pip install --no-cache-dir -c constraints.txt ." in dockerfile
    for folder in ("tongban", "schemas", "connectors", "dags", "docker"):
        assert f"COPY --chown=airflow:root {folder} ./{folder}" in dockerfile
    # The folders the volumes mount exist in the image, owned by airflow (named volumes copy them).
    targets = {t for s, t in _mounts(_compose()["x-airflow"]) if not s.startswith("./") and "tongban" in t}
    for target in targets:
        assert target in dockerfile, target
    # The compose file's command runs the library set-up script the image carries.
    assert (ROOT / "docker" / "init_libraries.py").is_file()
    assert os.access(ROOT / "docker" / "postgres-init.sh", os.R_OK)
