# Two commands for a newcomer: `make demo` and `make test`. Needs python3 (3.11) and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_ROWS ?= 20000
DEMO_FILE := demo-data/sample-$(DEMO_ROWS).csv

.PHONY: install demo test lint migrate

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	DJANGO_DEBUG=1 $(PY) manage.py migrate --no-input

# Set up, load generated sample data (a second run adds nothing), print a login, serve.
demo: migrate
	mkdir -p demo-data
	test -f $(DEMO_FILE) || DJANGO_DEBUG=1 $(PY) manage.py generate_sample_data --rows $(DEMO_ROWS) --malformed --seed 42 --out $(DEMO_FILE)
	DJANGO_DEBUG=1 $(PY) manage.py import_csv $(DEMO_FILE) --reject-file demo-data/rejects.csv
	DJANGO_DEBUG=1 $(PY) manage.py summary
	DJANGO_DEBUG=1 $(PY) manage.py create_demo_login
	# The worker that resolves records sent with Prefer: respond-async runs beside the server.
	DJANGO_DEBUG=1 $(PY) manage.py resolve_queued --follow & trap 'kill $$! 2>/dev/null' EXIT INT TERM; \
	DJANGO_DEBUG=1 $(PY) manage.py runserver 127.0.0.1:8000

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
