# The two commands of the README. Both set everything up first (idempotent).
.PHONY: setup demo test test-fast

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/mmembed demo

test: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider --timeout=1800 tests

test-fast: setup
	.venv/bin/python -m pytest -q -p no:cacheprovider -m "not integration" tests
