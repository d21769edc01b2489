"""The demo: the generator of local systems (:mod:`.generate`), the demo ``exchange.yaml`` writer
(:mod:`.exchange_yaml`) and the runner that takes it all through Airflow (:mod:`.runner`).

Only the CLI's ``demo`` and ``generate`` commands (and tests and benchmarks) import it; it starts Airflow
as a child process and never imports it.
"""
