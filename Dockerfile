# The image every Airflow service and the exchange CLI run in: Airflow 3.3.2 with Tongban installed
# (its DAG file, the tongban command and the provider entry point that registers the connection type).
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update && apt-get install -y --no-install-recommends sqlite3 curl && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /opt/tongban/config /opt/tongban/keys /opt/tongban/spool /opt/tongban/drops /opt/tongban/libraries \
    && chown -R airflow:root /opt/tongban
USER airflow

WORKDIR /opt/tongban
COPY --chown=airflow:root pyproject.toml constraints.txt README.md ./
COPY --chown=airflow:root tongban ./tongban
COPY --chown=airflow:root schemas ./schemas
COPY --chown=airflow:root connectors ./connectors
COPY --chown=airflow:root dags ./dags
COPY --chown=airflow:root docker ./docker
RUN pip install --no-cache-dir -c constraints.txt . \
    && python -c "import tongban, tongban.airflow.factory, tongban.airflow.provider"
