"""Core: the exchange config, the sync engine, the library store and trust. Imports no face and no Airflow."""
