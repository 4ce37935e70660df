//! Shared by the integration tests: run the `zhtp` binary on a data directory.
#![allow(dead_code)] // each test file uses its own part

use std::path::Path;
use std::process::{Command, Output};

use zhtp_identity::{Identity, KdfParams, PublicKeys};

/// The passphrase of the identities [`owner_in`] makes.
pub const PASSPHRASE: &str = "test passphrase";

/// Runs `zhtp --data-dir DIR ARGS...` (ignoring any `ZHTP_DATA_DIR` of the caller).
pub fn zhtp(dir: &Path, args: &[&str]) -> Output {
    zhtp_env(dir, &[], args)
}

/// [`zhtp`] with these environment variables set (the caller's `ZHTP_*` ones are not passed).
pub fn zhtp_env(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zhtp"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("ZHTP_DATA_DIR")
        .env_remove("ZHTP_IDENTITY")
        .env_remove("ZHTP_PASSPHRASE")
        .envs(env.iter().copied())
        .output()
        .expect("run zhtp")
}

/// [`zhtp`] as the owner [`owner_in`] made: its passphrase in `ZHTP_PASSPHRASE`.
pub fn zhtp_owner(dir: &Path, args: &[&str]) -> Output {
    zhtp_env(dir, &[("ZHTP_PASSPHRASE", PASSPHRASE)], args)
}

/// Makes identity `owner`, the only one in `dir`'s keystore, so encrypted puts and gets there
/// are its (sealed under [`PASSPHRASE`] at the cheapest Argon2 parameters allowed).
pub fn owner_in(dir: &Path) -> PublicKeys {
    zhtp::keystore::Keystore::new(dir)
        .create(
            "owner",
            &Identity::generate().unwrap(),
            PASSPHRASE.as_bytes(),
            KdfParams::FLOOR,
        )
        .unwrap()
}
