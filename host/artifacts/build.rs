//! Builds every guest crate of `plugins/` and `contracts/` for `wasm32-unknown-unknown` with a
//! nested cargo per workspace (the wasmtime `test-programs` pattern) and writes `guests.rs`
//! with one `pub const NAME: &[u8]` per guest. `cargo test --workspace` and `cargo run -p zhtp`
//! need no manual step.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    // Share one guest target dir between profiles: <target>/guests, found from OUT_DIR
    // (<target>/<profile>/build/<pkg>/out). Nested cargo locks it, so parallel builds queue.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(|t| t.join("guests"))
        .unwrap_or_else(|| out_dir.join("guests"));

    for dir in [
        "plugins",
        "contracts",
        "sdk",
        "host/abi",
        "runtime/types",
        "rust-toolchain.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let mut src = String::new();
    // Plugins are listed in `ALL` (the built-ins a node may install), contracts in `CONTRACTS`.
    for (workspace, list_name) in [("plugins", "ALL"), ("contracts", "CONTRACTS")] {
        let members = guest_members(&root.join(workspace).join("Cargo.toml"));
        build(&root.join(workspace), &target_dir);
        for name in &members {
            let file = name.replace('-', "_");
            let wasm = target_dir
                .join(TARGET)
                .join("release")
                .join(format!("{file}.wasm"));
            assert!(
                wasm.exists(),
                "guest `{name}` built but {} is missing",
                wasm.display()
            );
            let ident = file.to_uppercase();
            writeln!(
                src,
                "/// `{workspace}/{name}` built for wasm32.\npub const {ident}: &[u8] = include_bytes!({:?});",
                wasm.display().to_string()
            )
            .unwrap();
        }
        // Guests named `test-*` exist for the test suite: constants, but not in the lists.
        let list: Vec<String> = members
            .iter()
            .filter(|n| !n.starts_with("test-"))
            .map(|n| format!("({n:?}, {})", n.replace('-', "_").to_uppercase()))
            .collect();
        writeln!(
            src,
            "/// Every guest of `{workspace}/` as `(crate name, wasm bytes)`.\npub const {list_name}: &[(&str, &[u8])] = &[{}];",
            list.join(", ")
        )
        .unwrap();
    }
    std::fs::write(out_dir.join("guests.rs"), src).unwrap();
}

/// Builds the guest workspace at `dir` into `target_dir` (shared by both workspaces: their
/// common crates, the SDK, are built once).
fn build(dir: &Path, target_dir: &Path) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args(["build", "--release", "--locked", "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    // The outer build's flags and wrappers (clippy, coverage, RUSTFLAGS for the host) are not
    // meant for the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("failed to run cargo for the wasm guests");
    if !status.success() {
        panic!(
            "building the wasm guests in {} failed ({status}). Is the target installed? \
             Run `rustup target add {TARGET}` (the Makefile does this).",
            dir.display()
        );
    }
}

/// Reads `members = [...]` from the guest workspace manifest. Kept to a line-based parse so the
/// build script needs no TOML dependency; the manifest keeps `members` on one line.
fn guest_members(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("plugins/Cargo.toml has no `members = [...]` line");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}
