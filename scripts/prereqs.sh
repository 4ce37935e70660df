#!/usr/bin/env bash
# Installs what the build needs beyond rustup + gcc, idempotently:
# - the pinned toolchain (rust-toolchain.toml) and its wasm32-unknown-unknown target: rustup does
#   not add a listed target to a toolchain that is already installed;
# - clang + libclang-dev, which RocksDB's bindgen needs (apt-get when root, else a clear message).
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! command -v rustup >/dev/null 2>&1; then
  echo "error: rustup is required (https://rustup.rs); it installs Rust $toolchain from rust-toolchain.toml" >&2
  exit 1
fi
if ! rustup toolchain list | grep -q "^$toolchain"; then
  rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy
fi
if ! rustup target list --installed --toolchain "$toolchain" | grep -q '^wasm32-unknown-unknown$'; then
  rustup target add --toolchain "$toolchain" wasm32-unknown-unknown
fi
for c in rustfmt clippy; do
  rustup component list --installed --toolchain "$toolchain" | grep -q "^$c" \
    || rustup component add --toolchain "$toolchain" "$c"
done

have_libclang() {
  ldconfig -p 2>/dev/null | grep -q 'libclang' || ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1
}
if ! have_libclang || ! command -v clang >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing clang and libclang-dev (needed by RocksDB's bindgen)..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-dev >/dev/null
  else
    echo "error: clang and libclang are required to build RocksDB's bindings." >&2
    echo "       install them as root: apt-get install clang libclang-dev" >&2
    exit 1
  fi
fi
