"""The web face: one FastAPI app with a router per area (verification, review), its login and pages.

:func:`tongban.web.app.create_app` builds it over one node's library; ``tongban serve`` runs it alone,
and the Airflow adapter mounts the same app in Airflow's API server.
"""
