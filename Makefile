# Herald's commands. `make run` and `make test` are the two the README promises work on a
# fresh machine: each installs what is missing first (quietly when it is already there).
#
# Herald builds without cargo-leptos (whose own install compiles ~670 crates): the site is
# built by scripts/build-site, the server by cargo, both with the variables below — the very
# ones cargo-leptos sets — so `cargo leptos watch` still works and shares what these built.

SHELL := /bin/bash
WASM_BINDGEN_VERSION := 0.2.130
# wasm-opt and terser from npm (Debian's binaryen breaks hydration) and cargo's bin directory.
# (cargo installs into $CARGO_HOME/bin, ~/.cargo/bin unless CARGO_HOME says otherwise.)
export PATH := $(CURDIR)/end2end/node_modules/.bin:$(or $(CARGO_HOME),$(HOME)/.cargo)/bin:$(HOME)/.cargo/bin:$(PATH)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

# One set of build variables for every cargo command and for the server process. leptos reads
# LEPTOS_OUTPUT_NAME at compile time (also set in .cargo/config.toml for bare cargo commands).
export LEPTOS_OUTPUT_NAME := herald
export LEPTOS_SITE_ROOT := target/site
export LEPTOS_SITE_PKG_DIR := pkg
export LEPTOS_SITE_ADDR := 127.0.0.1:3000
export LEPTOS_RELOAD_PORT := 3001
export LEPTOS_LIB_DIR := .
export LEPTOS_BIN_DIR := .
export LEPTOS_HASH_FILES := false
# Debug builds (run, test, lint) erase component types on both sides, as cargo-leptos does;
# release builds (build, bench) do not. Every target of one kind uses the same flags, so none
# rebuilds what another just built.
DEBUG := RUSTFLAGS="--cfg erase_components"
RELEASE := RUSTFLAGS=""
SERVER := --package=herald --no-default-features --features=ssr

.PHONY: run build test test-rust test-e2e lint bench bench-scale setup setup-node setup-browser setup-nextest setup-postgres \
	site-debug site-release server-debug server-release check-assets clean

## Rust pieces: the wasm32 target and wasm-bindgen-cli (pinned, the same as the wasm-bindgen crate).
## Only its `wasm-bindgen` binary, without the test runner's TLS stack, at opt-level 1: 2.5 minutes
## to compile instead of 3.3, and it runs as fast on Herald's wasm.
setup:
	@rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@wasm-bindgen --version 2>/dev/null | grep -q "$(WASM_BINDGEN_VERSION)" || \
		CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) \
			--no-default-features --bin wasm-bindgen

## npm pieces: Playwright and axe-core (browser tests), binaryen's wasm-opt and terser (release builds).
setup-node:
	@[ -x end2end/node_modules/.bin/playwright ] && [ -x end2end/node_modules/.bin/wasm-opt ] && \
		[ -x end2end/node_modules/.bin/terser ] && [ -d end2end/node_modules/@axe-core/playwright ] || \
		(cd end2end && npm ci --no-audit --no-fund --loglevel=error)

## Chromium from Debian for the browser tests (Playwright cannot download its own here).
setup-browser:
	@command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
			(sleep 5; apt-get update -qq && apt-get install -y -qq chromium >/dev/null); \
		else echo "Install Chromium (apt-get install chromium) to run the browser tests"; exit 1; fi; }

## PostgreSQL's server from Debian, for the tests on the PostgreSQL store (each run starts a
## private cluster of its own with scripts/pg-cluster; nothing is configured system-wide).
setup-postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			(apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) || \
			(sleep 5; apt-get update -qq && apt-get install -y -qq postgresql >/dev/null); \
		else echo "Install PostgreSQL (apt-get install postgresql) to run the tests on PostgreSQL"; exit 1; fi; }

site-debug: setup
	$(DEBUG) scripts/build-site debug
site-release: setup setup-node
	$(RELEASE) scripts/build-site release
server-debug:
	$(DEBUG) cargo build $(SERVER) --bin=herald
server-release:
	$(RELEASE) cargo build $(SERVER) --release --bins

## Build (debug) and start Herald on SQLite under ./data; prints where to sign in.
run: site-debug server-debug
	target/debug/herald serve

## Release build: afterwards `target/release/herald serve` from the repo root serves everything.
build: site-release server-release check-assets

## Every /pkg/… asset the release pages reference answers 200 from the release binary.
check-assets:
	scripts/check-assets target/release/herald

## Every test: unit and integration tests, then the browser suite against a fresh database.
test: setup setup-node setup-browser test-rust test-e2e

## Unit and integration tests, each test in its own process (cargo-nextest: a Leptos server per
## process, as in production; .config/nextest.toml stops a test that hangs), on SQLite and then
## again on a private PostgreSQL cluster; then the doctests.
test-rust: setup-nextest setup-postgres
	$(DEBUG) cargo nextest run --workspace --features ssr
	$(DEBUG) scripts/with-postgres cargo nextest run --workspace --features ssr -E "kind(test)"
	$(DEBUG) cargo test --workspace --features ssr --doc

setup-nextest:
	@cargo nextest --version >/dev/null 2>&1 || cargo install cargo-nextest --locked

## The browser suite on SQLite, then on a private PostgreSQL cluster's empty database.
test-e2e: site-debug server-debug setup-postgres
	cd end2end && npx playwright test
	scripts/with-postgres bash -c 'cd end2end && HERALD_E2E_DATABASE_URL="$$HERALD_TEST_POSTGRES" npx playwright test'


## Throughput and latency of a release build against a local receiver, on SQLite and then on a
## private PostgreSQL cluster with 1, 2 and 3 nodes; writes target/bench/report.json.
bench: build setup-postgres
	PG_CLUSTER_DURABLE=1 scripts/with-postgres target/release/herald-bench --herald target/release/herald

## The million-row run: a million deliveries held, every page and API list timed on the full
## queue, the drain, the disk per delivered event, a bulk retry with the writer's longest hold,
## peak RSS and single-event publishing; SQLite, then a private PostgreSQL cluster. Writes
## target/bench/scale.json.
bench-scale: build setup-postgres
	PG_CLUSTER_DURABLE=1 scripts/with-postgres target/release/herald-bench --herald target/release/herald --only scale

lint: setup
	scripts/check-doc-links
	cargo fmt --all -- --check
	$(DEBUG) cargo clippy --workspace --features ssr --all-targets -- -D warnings
	$(DEBUG) cargo clippy -p herald -p app --lib --features hydrate --target wasm32-unknown-unknown \
		--target-dir=target/front -- -D warnings

clean:
	cargo clean
	rm -rf end2end/test-results end2end/playwright-report
