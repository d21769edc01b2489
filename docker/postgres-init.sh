#!/bin/sh
# The libraries' role and database beside Airflow's own (which the image creates from POSTGRES_*).
# Each node's library is a schema of this database: name it in exchange.yaml with `library_env`.
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE tongban LOGIN PASSWORD '$POSTGRES_PASSWORD';
CREATE DATABASE tongban OWNER tongban;
SQL
