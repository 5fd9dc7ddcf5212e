# Two commands for a newcomer: `make run` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(BIN)/uv
# uv must not fetch a Python of its own: .venv is made from $(PYTHON).
export UV_PYTHON_DOWNLOADS := never

.PHONY: run test lint typecheck bench lock lock-uv clean

EXAMPLE_PLUGIN := examples/plugins/tollway-banned-words

# uv itself comes from a hash-pinned requirements file; everything else from uv.lock.
$(UV): requirements-uv.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-uv.txt
	touch $(UV)

# .venv gets exactly the versions and hashes in uv.lock: the dev extra, and the example
# plugin (a test loads it through its entry point), both editable. `--locked` refuses a
# lock that pyproject.toml no longer matches; `--inexact` leaves alone what was installed
# by hand (`make clean` for a .venv that is exactly the lock).
$(STAMP): $(UV) uv.lock pyproject.toml $(EXAMPLE_PLUGIN)/pyproject.toml
	$(UV) sync --locked --inexact --extra dev || { \
	  echo "uv.lock does not match pyproject.toml: run 'make lock' and commit uv.lock" >&2; \
	  exit 1; }
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/tollway serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples deploy
	$(BIN)/ruff format --check src tests bench examples deploy
	$(BIN)/hadolint Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

# The floor proxy and Tollway's paths side by side (bench/README.md); a few minutes.
# Options through BENCH_ARGS, e.g. make bench BENCH_ARGS="--quick" or "--wait-quiet 300".
bench: $(STAMP)
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y wrk; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Re-resolve uv.lock after a change to the dependencies in pyproject.toml, keeping every
# other pin; `make lock UPGRADE=1` moves every package to its newest allowed release.
lock: $(UV)
	$(UV) lock $(if $(UPGRADE),--upgrade)

# uv itself (installed first, to install the rest): make lock-uv UV_RELEASE=X.Y.Z, then
# raise [tool.uv] required-version in pyproject.toml to it and run `make lock`.
lock-uv: $(UV)
	test -n "$(UV_RELEASE)" || { echo "usage: make lock-uv UV_RELEASE=X.Y.Z" >&2; exit 2; }
	echo "uv==$(UV_RELEASE)" | $(UV) pip compile - --no-config --universal --generate-hashes \
	  --no-annotate --custom-compile-command "make lock-uv UV_RELEASE=$(UV_RELEASE)" \
	  --output-file requirements-uv.txt

clean:
	rm -rf $(VENV) .tollway .pytest_cache .mypy_cache .ruff_cache
