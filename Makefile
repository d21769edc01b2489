# Tongban: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup browser demo test lint bench clean airflow airflow-stop

setup: $(VENV)/.installed

# The browser tests drive Debian's Chromium (headless); it comes from the distribution's packages, never a
# browser download. Installed when missing and this is root (CI); otherwise say how.
CHROMIUM ?= /usr/bin/chromium
# A font with Chinese glyphs, so the pages' screenshots (test artifacts) are readable.
CJK_FONT ?= /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc
browser:
	@if [ ! -x "$(CHROMIUM)" ] || [ ! -e "$(CJK_FONT)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; \
	  else \
	    echo "browser tests need Debian's chromium: sudo apt-get install chromium fonts-wqy-zenhei (they skip without it)"; \
	  fi; \
	fi

# Everything is pinned: constraints.txt holds the exact version of every package (Airflow's tree included).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==25.3"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $@

# Run again, it starts over unless you changed what it wrote; DEMO_ARGS=--fresh starts over regardless.
DEMO_ARGS ?=
demo: setup
	$(BIN)/tongban demo --workdir demo $(DEMO_ARGS)

test: setup browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2

# The production form on this machine: Airflow 3's api-server, scheduler, dag-processor, triggerer and a
# Celery worker as separate processes, metadata and libraries in the local PostgreSQL, Redis as the broker,
# the demo exchange scheduled (README, "Deployment"). TONGBAN_AIRFLOW_POSTGRES / TONGBAN_AIRFLOW_REDIS
# point elsewhere; everything else stays under demo-airflow/.
airflow: setup
	$(BIN)/python -m tongban.demo.stack up --workdir demo-airflow

airflow-stop:
	$(BIN)/python -m tongban.demo.stack down --workdir demo-airflow

bench: setup
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,bench]"
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/sync.py
	$(BIN)/python bench/crash.py
	$(BIN)/python bench/national.py
	$(BIN)/python bench/verify.py
	$(BIN)/python bench/review.py

clean:
	rm -rf $(VENV) demo demo-airflow .pytest_cache .ruff_cache .hypothesis
