# The README's two commands: `make demo` (the main job) and `make test` (every test).
CARGO ?= cargo

.PHONY: demo test lint bench

demo:
	$(CARGO) run --release -p greenmark-cli -- demo

# Release mode: the calibration and power tests score tens of millions of tokens.
test:
	$(CARGO) test --workspace --release

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p greenmark --no-default-features --all-targets -- -D warnings

bench:
	$(CARGO) bench -p greenmark-benches
