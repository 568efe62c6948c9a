# Herald's commands. `make run` and `make test` are the two the README promises work on a
# fresh machine: each installs what is missing first (quietly when it is already there).

SHELL := /bin/bash
CARGO_LEPTOS_VERSION := 0.3.10
WASM_BINDGEN_VERSION := 0.2.130
# wasm-opt from npm's binaryen (Debian's breaks hydration) and cargo's bin directory.
export PATH := $(CURDIR)/end2end/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
# The same flags cargo-leptos uses for debug builds, so tests reuse its compiled crates.
TEST_RUSTFLAGS := --cfg erase_components

.PHONY: run build test test-rust test-e2e lint bench setup setup-browser clean

## Install the toolchain pieces that are missing (idempotent).
setup:
	@rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@cargo leptos --version 2>/dev/null | grep -q "$(CARGO_LEPTOS_VERSION)" || \
		cargo install cargo-leptos --version $(CARGO_LEPTOS_VERSION) --locked
	@wasm-bindgen --version 2>/dev/null | grep -q "$(WASM_BINDGEN_VERSION)" || \
		cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)
	@[ -x end2end/node_modules/.bin/playwright ] && [ -x end2end/node_modules/.bin/wasm-opt ] || \
		(cd end2end && npm ci --no-audit --no-fund --loglevel=error)

## Chromium from Debian for the browser tests (Playwright cannot download its own here).
setup-browser:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
			(sleep 5; apt-get update -qq && apt-get install -y -qq chromium >/dev/null); \
		else echo "Install Chromium (apt-get install chromium) to run the browser tests"; exit 1; fi; }

## Build (debug) and start Herald on SQLite under ./data; prints where to sign in.
run: setup
	cargo leptos serve

## Release build: afterwards `target/release/herald serve` from the repo root serves everything.
build: setup
	cargo leptos build --release

## Every test: unit and integration tests, then the browser suite against a fresh database.
test: setup setup-browser test-rust test-e2e

test-rust:
	RUSTFLAGS="$(TEST_RUSTFLAGS)" cargo test --workspace --features ssr

test-e2e:
	cargo leptos build
	cd end2end && npx playwright test

## Throughput and latency of a release build against a local receiver; writes target/bench/report.json.
bench:
	cargo build --release --features ssr --bins
	target/release/herald-bench --herald target/release/herald

lint: setup
	cargo fmt --all -- --check
	RUSTFLAGS="$(TEST_RUSTFLAGS)" cargo clippy --workspace --features ssr --all-targets -- -D warnings
	cargo clippy -p herald -p app --lib --features hydrate --target wasm32-unknown-unknown -- -D warnings

clean:
	cargo clean
	rm -rf end2end/test-results end2end/playwright-report
