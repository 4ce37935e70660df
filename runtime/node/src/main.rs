//! `zhtp`: the node and its command-line client.

mod access;
mod account;
mod args;
mod cli;
mod client;
mod contract;
mod figures;
mod files;
mod identity;
mod node;
mod plugins;
mod quote;
mod storage_contract;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line a person can act on; details are in the chain.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `ZHTP_LOG` (e.g. `info`, `zhtp_host=debug`) chooses what, default `warn`.
fn init_logging() {
    // arkworks instruments every gadget call with an info-level span (target `gr1cs`): enabled,
    // one proof makes millions of spans, gigabytes and minutes. Always off.
    let filter = tracing_subscriber::EnvFilter::try_from_env("ZHTP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
        .add_directive("gr1cs=off".parse().expect("a valid directive"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
