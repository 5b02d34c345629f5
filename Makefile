# sophia.migrate — every target runs from the repository root (= the collection root).
SHELL := /bin/bash
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
SCENARIO ?= default
PYTEST_ARGS ?=

.PHONY: help setup demo test test-unit test-integration test-molecule lint sanity rehearsal bench build docs clean status

help:
	@echo "make demo        set up, then run playbooks/phase2a.yml on the lab inventory"
	@echo "make test        set up, then every test (lint, sanity, unit, integration, molecule)"
	@echo "make setup       idempotent machine + venv + image preparation"
	@echo "make status      where the migration stands (INVENTORY=inventories/production for production)"
	@echo "make test-unit | test-integration | test-molecule SCENARIO=x | lint | sanity | bench | build"

setup:
	@scripts/setup.sh

demo: setup
	@scripts/demo.sh

test: setup
	@scripts/test-all.sh

test-unit:
	pytest tests/unit $(PYTEST_ARGS)

test-integration:
	pytest tests/integration $(PYTEST_ARGS)

test-molecule:
	molecule test -s $(SCENARIO)

lint:
	ruff check .
	yamllint -s .
	ansible-lint

sanity:
	@scripts/sanity.sh

rehearsal: setup
	@scripts/rehearsal.sh

# Where the migration stands (ledger + live splitter shares), changing nothing: INVENTORY=inventories/production
status:
	ansible-playbook $(if $(INVENTORY),-i $(INVENTORY)) playbooks/status.yml

# Every benchmark, then one table of all results (benchmarks/results.json). A FAIL line is a measurement;
# only a benchmark that crashes (non-zero exit) makes the target fail, after the table.
bench: setup
	@rc=0; for b in benchmarks/bench_*.py; do echo "== $$b"; python "$$b" || { echo "== $$b CRASHED"; rc=1; }; done; \
	python benchmarks/report.py; exit $$rc

build:
	ansible-galaxy collection build --force --output-path build/

clean:
	rm -rf build tests/output .pytest_cache .ruff_cache
