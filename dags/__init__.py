"""Airflow wiring: DAGs built from ``exchange.yaml`` around the engine (which knows nothing of Airflow)."""
