# zhtp: the two commands a newcomer needs are `make demo` and `make test`.
# Both install what the build needs first (scripts/prereqs.sh).

CARGO ?= cargo

.PHONY: demo test prereqs lint fmt bench

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

## Criterion benches (release).
bench: prereqs
	$(CARGO) bench -p zhtp-benches

prereqs:
	@bash scripts/prereqs.sh
