# The README's two commands: `make demo` (the main job) and `make test` (every test).
CARGO ?= cargo

.PHONY: demo test lint bench

demo:
	$(CARGO) run --release -p greenmark-cli -- demo

# Every test: the Rust workspace, then the Python package (which installs its test
# dependencies, torch and transformers included, with pip).
test: test-rust test-python

# Release mode: the calibration and power tests score tens of millions of tokens.
.PHONY: test-rust
test-rust:
	$(CARGO) test --workspace --release

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p greenmark --no-default-features --all-targets -- -D warnings

bench:
	$(CARGO) bench -p greenmark-benches

# The Python package: build the wheel with maturin, install it into this Python, run pytest
# (includes an end-to-end run of the embedded SmolLM2 GGUF through transformers).
PYTHON ?= python3
.PHONY: test-python
test-python:
	$(PYTHON) -m pip install -q maturin pytest numpy scipy mpmath torch transformers gguf accelerate
	rm -f target/wheels/greenmark-*.whl
	$(PYTHON) -m maturin build --release -m bindings/python/Cargo.toml
	$(PYTHON) -m pip install -q --force-reinstall --no-deps target/wheels/greenmark-*.whl
	cd bindings/python && $(PYTHON) -m pytest -q tests
