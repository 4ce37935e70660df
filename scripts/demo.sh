#!/usr/bin/env bash
# The demo: a fresh node in a temporary data directory prices storage with its built-in plugin,
# swaps in a different pricing model, shows the new price, rolls back, and refuses a bad plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
zhtp() { cargo run --quiet -p zhtp -- --data-dir "$dir" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "price 1 GB for 1 day, warm tier, with quality guarantees (the seed's model)"
zhtp quote --size 1GB --days 1 --tier warm --quality
step "the same as JSON (integer µZHTP)"
zhtp quote --size 1GB --days 1 --tier warm --quality --json
step "installed plugins"
zhtp plugin list
step "install the surge pricing plugin (validated, compiled, self-checked, then swapped)"
zhtp plugin export pricing-surge -o "$dir/surge.wasm"
zhtp plugin install pricing "$dir/surge.wasm"
zhtp quote --size 1GB --days 1 --tier warm --quality
step "surge pricing on a busy network (90% utilisation)"
zhtp quote --size 1GB --days 1 --tier warm --quality --utilization 90
step "roll back to the standard model"
zhtp plugin rollback pricing
zhtp quote --size 1GB --days 1 --tier warm --quality
step "a file that is not a plugin is refused; the installed plugin stays"
printf 'not wasm' > "$dir/bad.wasm"
if zhtp plugin install pricing "$dir/bad.wasm"; then echo "unexpectedly installed" >&2; exit 1; fi
zhtp plugin list
