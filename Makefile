# Two entry points for a newcomer on a fresh machine: `make demo` and `make test`.
# Each creates .venv (if missing) and installs what it needs there.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py src/ctrkit/data/_dictscan.c src/ctrkit/nn/_fieldattn.c src/ctrkit/train/_rowsparse.c | sha1sum | cut -c1-12)

# Two cores: keep torch, BLAS and polars from oversubscribing them.
export OMP_NUM_THREADS ?= 2
export MKL_NUM_THREADS ?= 2
export POLARS_MAX_THREADS ?= 2

.PHONY: demo test install system-deps clean

$(STAMP): pyproject.toml setup.py src/ctrkit/data/_dictscan.c src/ctrkit/nn/_fieldattn.c src/ctrkit/train/_rowsparse.c
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: the CPU wheel; anything else lets pip pull a CUDA build.
	# The editable install also compiles the native CSV/TSV reader (setup.py; skipped, not
	# failed, without a C compiler).
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet "torch==2.13.0" -e ".[test,serve,postgres]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ctrkit demo

test: $(STAMP)
	$(BIN)/python -m pytest tests

# Optional Debian packages some tests use (they skip, saying why, without them): chromium renders
# the leaderboard page headless; postgresql gives the tuning tests a throwaway study server.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium postgresql >/dev/null; \
	else echo "system-deps: needs root and apt-get; skipping (browser and PostgreSQL tests will skip)"; fi

clean:
	rm -rf $(VENV) build *.egg-info
	find src -name "*.so" -delete
