"""docker-compose.yml and the Dockerfile describe the production form (checked without Docker)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_every_airflow_3_service_is_there_with_postgres_and_redis() -> None:
    services = _compose()["services"]
    assert {*AIRFLOW, "airflow-init", "postgres", "redis"} <= set(services)
    commands = {name: services[name]["command"] for name in AIRFLOW}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
        "airflow-worker": "celery worker",
    }
    for name in AIRFLOW:
        service = services[name]
        env = service["environment"]
        assert service["image"] == "tongban:latest"
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert "@postgres:5432/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379")
        assert env["TONGBAN_EXCHANGE"] == "/opt/tongban/config/exchange.yaml"
        assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]


def test_no_password_is_written_into_the_compose_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    for url in re.findall(r"\w+(?:\+\w+)?://[^\s\"']+", text):
        user_info = url.split("://", 1)[1].split("@", 1)
        if len(user_info) == 2 and ":" in user_info[0]:
            assert "${POSTGRES_PASSWORD" in user_info[0], url


def test_mounted_files_exist_and_the_image_matches_the_pins() -> None:
    compose = _compose()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    assert pinned and f"FROM apache/airflow:{pinned.group(1)}-python3.11" in dockerfile
    assert "-c constraints.txt" in dockerfile
    for folder in ("tongban", "schemas", "connectors", "dags"):
        assert f"COPY --chown=airflow:root {folder} ./{folder}" in dockerfile
