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
# (includes end-to-end runs of the embedded SmolLM2 GGUF through transformers and llama.cpp).
# llama-cpp-python builds from source: 443 s on 2 cores the first time (measured), then pip
# reuses the wheel it cached. vLLM's interface classes, for the vLLM adapter's tests: vllm pins
# another torch, so it goes --no-deps into its own directory (VLLM_SITE, put on sys.path by
# tests/test_vllm.py) with the few light modules its import needs (35 s from pip's cache,
# measured); the machine's torch and transformers stay as they are. Two vLLMs: 0.33 has the V1
# logits-processor interface, 0.34 replaced it with Model Runner V2 (VLLM2_SITE, tested in its
# own interpreter by tests/test_vllm_v2.py; about 100 s to install, 640 MB).
PYTHON ?= python3
VLLM_SITE ?= target/vllm-site
VLLM2_SITE ?= target/vllm034-site
VLLM_LIGHT_DEPS = msgspec==0.22.0 cbor2==6.3.0 pyzmq==27.3.0 aiohttp==3.14.5 multidict==7.2.1 \
	  yarl==1.25.1 propcache==0.5.4 aiohappyeyeballs==2.7.1 aiosignal==1.4.0 frozenlist==1.8.0 \
	  openai-harmony==0.0.8 openai==3.57.0 pillow==13.0.0 pybase64==1.5.1 cachetools==8.0.2 \
	  uvloop==0.23.0 py-cpuinfo==9.0.0
.PHONY: test-python
test-python:
	$(PYTHON) -m pip install -q maturin pytest numpy scipy mpmath torch transformers gguf accelerate "ray[data]==2.60.0" playwright openai
	$(PYTHON) -m pip install -q llama-cpp-python
	test -d $(VLLM_SITE)/vllm || $(PYTHON) -m pip install -q --no-deps --target $(VLLM_SITE) \
	  vllm==0.33.0 $(VLLM_LIGHT_DEPS)
	test -d $(VLLM2_SITE)/vllm || $(PYTHON) -m pip install -q --no-deps --target $(VLLM2_SITE) \
	  vllm==0.34.0 $(VLLM_LIGHT_DEPS)
	rm -f target/wheels/greenmark-*.whl
	$(PYTHON) -m maturin build --release -m bindings/python/Cargo.toml
	$(PYTHON) -m pip install -q --force-reinstall --no-deps target/wheels/greenmark-*.whl
	cd bindings/python && GREENMARK_VLLM_SITE=$(abspath $(VLLM_SITE)) \
	  GREENMARK_VLLM2_SITE=$(abspath $(VLLM2_SITE)) $(PYTHON) -m pytest -q tests
