#!/usr/bin/env bash
# The demo, part 1 (`zhtp demo`): a 6-node devnet on 127.0.0.1 stores a 32 MiB file at 4+2, loses
# two nodes to SIGKILL, serves the file byte-identical from another node, repairs back to full
# redundancy, swaps a pricing plugin on a live node, then removes the file and every live node
# collects its shards.
# Part 2, one node's command line: a fresh node in a temporary data directory prices storage with its built-in plugin,
# swaps in a different pricing model, shows the new price, rolls back, and refuses a bad plugin;
# then stores a 32 MiB file (compressed, encrypted, erasure-coded), reads it back byte for byte
# and finds it again by tag and by text, then removes it and gives the space back.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# Build exactly what `make test` builds (same dependency features), so the two commands share one
# build instead of compiling RocksDB twice.
cargo test --workspace --no-run --quiet
bin="${CARGO_TARGET_DIR:-target}/debug/zhtp"
zhtp() { "$bin" --data-dir "$dir" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "part 1: a 6-node network (zhtp demo)"
"$bin" demo

step "part 2: one node's command line, on a local data dir"
step "price 1 GB for 1 day, warm tier, with quality guarantees (the seed's model)"
zhtp quote --size 1GB --days 1 --tier warm --quality
step "the same as JSON (integer µZHTP)"
zhtp quote --size 1GB --days 1 --tier warm --quality --json
step "installed plugins"
zhtp plugin list
step "check the surge pricing plugin before installing it (validation and the 48 self-check requests; first lines)"
zhtp plugin export pricing-surge -o "$dir/surge.wasm"
zhtp plugin check "$dir/surge.wasm" | head -n 8
step "install it (validated, compiled, self-checked, then swapped)"
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

step "an identity owns what it stores encrypted (its passphrase from ZHTP_PASSPHRASE here; a prompt otherwise)"
export ZHTP_PASSPHRASE="demo passphrase"
zhtp identity new demo
step "store a 32 MiB file (half text, half random) with standard encryption, warm tier (4+2)"
head -c $((16 << 20)) /dev/urandom > "$dir/demo.bin"
{ yes "zhtp keeps content encrypted and erasure-coded" || true; } | head -c $((16 << 20)) >> "$dir/demo.bin"
hash=$(zhtp put "$dir/demo.bin" --encryption standard --tag demo --description "demo upload")
echo "content hash: $hash"
step "what the node sees: sizes, code, shards; name, tags and description are the owner's, encrypted"
zhtp info "$hash"
step "what the owner sees"
zhtp info "$hash" --identity demo | head -n 5
step "read it back as the owner and compare"
zhtp get "$hash" -o "$dir/back.bin"
cmp "$dir/demo.bin" "$dir/back.bin" && echo "byte-identical"
step "public content (--encryption none): listed and searchable by anyone"
echo "a public notice" > "$dir/notice.txt"
public=$(zhtp put "$dir/notice.txt" --encryption none --tag demo --description "public notice")
zhtp ls --tag demo
zhtp search "PUBLIC notice"
zhtp rm "$public"
step "remove it: the manifest and every shard go; compaction gives the space back"
zhtp rm "$hash"
zhtp compact --max-live 1
if zhtp get "$hash" -o "$dir/gone.bin" 2>/dev/null; then echo "still readable after rm" >&2; exit 1; fi
zhtp ls
