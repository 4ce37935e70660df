# zhtp: the two commands a newcomer needs are `make demo` and `make test`.
# Both install what the build needs first (scripts/prereqs.sh).

CARGO ?= cargo

PREFIX ?= $(HOME)/.cargo

.PHONY: demo test prereqs lint fmt bench bench-plugins install fuzz

## Run the demo: a 6-node devnet stores a file, loses 2 nodes, serves it, repairs, swaps pricing live;
## then one node's command line.
demo: prereqs
	bash scripts/demo.sh

## Run every test (unit, integration, hostile guests, ABI compatibility).
test: prereqs
	$(CARGO) fmt --all -- --check
	$(CARGO) test --workspace

## Clippy with warnings as errors, over every target.
lint: prereqs
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## The fuzz targets of `tests/fuzz.rs` for longer than `make test` runs them (2,000,000 inputs each).
fuzz: prereqs
	ZHTP_FUZZ_RANDOM=1 ZHTP_FUZZ_CASES=$${ZHTP_FUZZ_CASES:-2000000} $(CARGO) test --workspace --test fuzz

## Criterion benches (release).
bench: prereqs
	$(CARGO) bench -p zhtp-benches -p zhtp-plugin-benches

## The plugin-call benches alone: they link only the wasm host, so a release build needs no
## RocksDB (about 3 minutes from cold instead of half an hour).
bench-plugins: prereqs
	$(CARGO) bench -p zhtp-plugin-benches

## Install a stripped release `zhtp` into $(PREFIX)/bin (default ~/.cargo/bin): about 37 MB
## instead of the 583 MB release build with line tables that profiling uses.
install: prereqs
	CARGO_PROFILE_RELEASE_STRIP=symbols CARGO_PROFILE_RELEASE_DEBUG=0 \
		$(CARGO) install --locked --path runtime/node --root $(PREFIX)

prereqs:
	@bash scripts/prereqs.sh
