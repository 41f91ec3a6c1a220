# The two commands of README.md. Each one sets everything up on a fresh machine first.
.PHONY: demo test venv lint format

venv:
	@bash scripts/bootstrap.sh

demo: venv
	@bash scripts/demo.sh

test: venv
	@bash scripts/test.sh

lint: venv
	@.venv/bin/ruff check . && .venv/bin/ruff format --check .

format: venv
	@.venv/bin/ruff format . && .venv/bin/ruff check --fix .
