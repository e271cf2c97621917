# `make demo` and `make test` each create the virtual environment they need (once).
VENV ?= .venv
STAMP := $(VENV)/.tuneforge-installed

.PHONY: install demo test check bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tuneforge demo

test: $(STAMP) check
	bash scripts/install_browser.sh
	bash scripts/install_go.sh
	bash scripts/install_server.sh $(VENV)
	$(VENV)/bin/python -m pytest -q --durations=30  # the slowest tests, printed to keep CI under 30 min

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/train_throughput.py --compile
	$(VENV)/bin/python benchmarks/generation_throughput.py

# lint, formatting and type checking of the package (part of `make test`, so CI runs them)
check: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts benchmarks
	$(VENV)/bin/ruff format --check src tests scripts benchmarks
	$(VENV)/bin/mypy

lint: check

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
