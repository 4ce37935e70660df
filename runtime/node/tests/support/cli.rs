//! Shared by the integration tests: run the `zhtp` binary on a data directory.

use std::path::Path;
use std::process::{Command, Output};

/// Runs `zhtp --data-dir DIR ARGS...` (ignoring any `ZHTP_DATA_DIR` of the caller).
pub fn zhtp(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zhtp"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("ZHTP_DATA_DIR")
        .env_remove("ZHTP_IDENTITY")
        .env_remove("ZHTP_PASSPHRASE")
        .output()
        .expect("run zhtp")
}
