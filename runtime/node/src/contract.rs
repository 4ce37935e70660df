//! `zhtp contract ...`: smart contracts. `new` scaffolds a contract crate that builds on its
//! own, outside this repository, with one `cargo build`; `check` validates one and dry-runs its
//! instantiate; `deploy`, `instantiate`, `execute` and `query` go through a running node
//! (`--node`) to the network, where each contract lives on the replicas closest to its address.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;

/// `zhtp contract ...`
#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Create a contract crate NAME (a working counter to start from, with native tests).
    ///
    /// `cd NAME && cargo build --target wasm32-unknown-unknown --release` gives
    /// `target/wasm32-unknown-unknown/release/NAME.wasm`; `cargo test` runs the contract
    /// natively with the SDK's Mock.
    New {
        /// The crate's name: lowercase letters, digits, `-` and `_`, starting with a letter.
        name: String,
        /// Where to create it (default: the current directory).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The zhtp-sdk to build against (default: the SDK of the source tree this zhtp was
        /// built from).
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
    /// Check a contract before deploying it: validation (host/SPEC.md 14.1) and, with --msg,
    /// a dry run of its instantiate on an empty state: the answer, the gas, the keys written
    /// and the state root. Nothing is stored.
    Check {
        /// The contract's .wasm file.
        file: PathBuf,
        /// An instantiate message (JSON for SDK contracts) to dry-run.
        #[arg(long, value_name = "JSON")]
        msg: Option<String>,
        /// The caller of the dry run, 64 hex characters (default: all zeros).
        #[arg(long, value_name = "KEY")]
        caller: Option<String>,
        /// µZHTP sent with the dry run.
        #[arg(long, default_value_t = 0)]
        funds: u64,
        /// The gas limit of the dry run.
        #[arg(long, default_value_t = zhtp_host::abi::contract::DEFAULT_GAS_LIMIT)]
        gas: u64,
    },
    /// Deploy a contract's code through the node (--node): validated, kept, and published as a
    /// signed DHT record under its BLAKE3 hash. Prints the code hash `instantiate` takes.
    Deploy {
        /// The contract's .wasm file.
        file: PathBuf,
    },
    /// Create an instance of deployed code on its replicas; the node (--node) is its creator.
    /// Prints the new contract's address.
    Instantiate {
        /// The code hash `deploy` printed (64 hex characters).
        code: String,
        #[command(flatten)]
        call: CallArgs,
    },
    /// Run an execute on a contract's replicas: committed when a majority agree.
    Execute {
        /// The contract's address (64 hex characters).
        address: String,
        #[command(flatten)]
        call: CallArgs,
    },
    /// Run a query on a contract's replicas: nothing is written.
    Query {
        /// The contract's address (64 hex characters).
        address: String,
        #[command(flatten)]
        call: CallArgs,
    },
}

/// What a call through the network takes.
#[derive(Debug, clap::Args)]
pub struct CallArgs {
    /// The message, JSON (SDK contracts take JSON), e.g. '{"increment":{"by":1}}'.
    #[arg(long, value_name = "JSON")]
    msg: String,
    /// The call's gas limit.
    #[arg(long, default_value_t = zhtp_host::abi::contract::DEFAULT_GAS_LIMIT)]
    gas: u64,
    /// µZHTP to send with the call (contracts have no ledger accounts yet: only 0).
    #[arg(long, default_value_t = 0)]
    funds: u64,
    /// Print the reply as JSON.
    #[arg(long)]
    json: bool,
}

/// Sends a call to the node and prints the replicas' agreed answer.
fn call(remote: Option<&str>, path: &str, args: CallArgs, what: &str) -> Result<()> {
    let msg: serde_json::Value = serde_json::from_str(&args.msg)
        .with_context(|| format!("--msg {:?} is not JSON", args.msg))?;
    let req = zhtp::wire::CallRequest {
        msg,
        gas: Some(args.gas),
        funds: args.funds,
    };
    let reply: zhtp::wire::CallReply = node(remote, what)?.post(path, &req)?;
    for (peer, answer) in &reply.mismatches {
        eprintln!("warning: replica {peer} disagrees with the majority: {answer}");
    }
    if args.json {
        println!("{}", serde_json::to_string(&reply)?);
    } else {
        if what == "instantiate" {
            println!("address   {}", reply.address);
        }
        match (&reply.output, &reply.output_hex, &reply.error) {
            (Some(v), _, _) => println!("answer    {v}"),
            (_, Some(h), _) => println!("answer    0x{h}"),
            (_, _, Some(e)) => println!("failed    {e}"),
            _ => {}
        }
        println!(
            "state     version {}, root {}; gas {}; agreed by {} of {} replicas",
            reply.sequence,
            reply.root,
            reply.gas_used,
            reply.agreeing,
            reply.replicas.len()
        );
    }
    if let Some(e) = reply.error {
        bail!("the contract's {what} failed: {e}");
    }
    Ok(())
}

fn node(remote: Option<&str>, what: &str) -> Result<crate::client::Client> {
    match remote {
        Some(url) => crate::client::Client::new(url),
        None => bail!("contract {what} runs on a node: give --node URL (or $ZHTP_NODE)"),
    }
}

fn hash_arg(s: &str, what: &str) -> Result<zhtp_types::Hash> {
    zhtp_types::Hash::from_hex(s.trim())
        .map_err(|_| anyhow::anyhow!("{s:?} is not a {what} (64 hex characters)"))
}

/// The counter of `contracts/counter`, the template's contract (tested in this repository).
const TEMPLATE: &str = include_str!("../../../contracts/counter/src/lib.rs");

/// The SDK of the source tree this binary was built from.
fn built_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk")
}

pub fn run(remote: Option<&str>, cmd: ContractCommand) -> Result<()> {
    match cmd {
        ContractCommand::Deploy { file } => {
            let wasm =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            // Refused here with the host's own words before anything is sent.
            zhtp_host::Contracts::new()?
                .load(&wasm)
                .with_context(|| format!("{} is not a valid v1 contract", file.display()))?;
            let d: zhtp::wire::Deployed =
                node(remote, "deploy")?.post_bytes("/contracts", &wasm)?;
            println!("{}", d.code);
            Ok(())
        }
        ContractCommand::Instantiate { code, call: args } => {
            let code = hash_arg(&code, "code hash")?;
            call(remote, &format!("/contracts/{code}"), args, "instantiate")
        }
        ContractCommand::Execute {
            address,
            call: args,
        } => {
            let a = hash_arg(&address, "contract address")?;
            call(remote, &format!("/contracts/{a}/execute"), args, "execute")
        }
        ContractCommand::Query {
            address,
            call: args,
        } => {
            let a = hash_arg(&address, "contract address")?;
            call(remote, &format!("/contracts/{a}/query"), args, "query")
        }
        ContractCommand::Check {
            file,
            msg,
            caller,
            funds,
            gas,
        } => check(&file, msg, caller.as_deref(), funds, gas),
        ContractCommand::New { name, dir, sdk } => {
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !valid {
                bail!(
                    "{name:?} is not a crate name for a contract: lowercase letters, digits, `-` \
                     and `_`, starting with a letter"
                );
            }
            let sdk = sdk.unwrap_or_else(built_sdk);
            let sdk = sdk.canonicalize().with_context(|| {
                format!(
                    "the zhtp SDK is not at {} (give --sdk DIR: the `sdk` directory of a zhtp \
                     source tree)",
                    sdk.display()
                )
            })?;
            let at = dir.unwrap_or_else(|| PathBuf::from(".")).join(&name);
            if at.exists() {
                bail!("{} exists already: nothing was written", at.display());
            }
            std::fs::create_dir_all(at.join("src"))
                .with_context(|| format!("creating {}", at.display()))?;
            std::fs::write(at.join("Cargo.toml"), manifest(&name, &sdk))?;
            std::fs::write(at.join("src/lib.rs"), source(&name))?;
            std::fs::write(at.join(".gitignore"), "/target\n")?;
            println!("created {}", at.display());
            println!(
                "build it: cd {} && cargo build --target wasm32-unknown-unknown --release",
                at.display()
            );
            println!(
                "the contract: {}/target/wasm32-unknown-unknown/release/{}.wasm",
                at.display(),
                name.replace('-', "_")
            );
            Ok(())
        }
    }
}

/// The crate's manifest: its own workspace, the SDK by path, the release profile of
/// `contracts/` (small, no unwinding).
fn manifest(name: &str, sdk: &Path) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
serde = {{ version = "1", default-features = false, features = ["derive"] }}
zhtp-sdk = {{ path = {sdk:?} }}

# A workspace of its own, wherever it is created.
[workspace]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true
"#,
        sdk = sdk.display().to_string()
    )
}

/// The counter, with native tests of it through the SDK's Mock.
fn source(name: &str) -> String {
    let mut src = TEMPLATE.replacen(
        "//! A counter:",
        &format!("//! `{name}`, started from zhtp's counter:"),
        1,
    );
    src.push_str(
        r#"
#[cfg(test)]
mod tests {
    use super::*;
    use zhtp_sdk::contract::{Kind, Mock};

    #[test]
    fn anyone_raises_the_count_and_only_the_owner_resets_it() {
        let (owner, other) = ([1; 32], [2; 32]);
        let mut c = Mock::new([9; 32], owner);
        assert_eq!(
            c.call(Kind::Instantiate, instantiate, Init { start: 5 }),
            Ok(Count { count: 5 })
        );
        c.ctx.caller = other;
        assert_eq!(
            c.call(Kind::Execute, execute, Exec::Increment { by: 2 }),
            Ok(Count { count: 7 })
        );
        assert!(c.call(Kind::Execute, execute, Exec::Reset {}).is_err());
        c.ctx.caller = owner;
        assert_eq!(c.call(Kind::Execute, execute, Exec::Reset {}), Ok(Count { count: 0 }));
        assert_eq!(c.call(Kind::Query, query, Query::Count {}), Ok(Count { count: 0 }));
    }
}
"#,
    );
    src
}

fn check(
    file: &Path,
    msg: Option<String>,
    caller: Option<&str>,
    funds: u64,
    gas: u64,
) -> Result<()> {
    let wasm = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let host = zhtp_host::Contracts::new()?;
    let code = host
        .load(&wasm)
        .with_context(|| format!("{} is not a valid v1 contract", file.display()))?;
    let info = code.info();
    println!(
        "valid: {} (ABI v{}, {} bytes, code hash {})",
        info.name, info.abi_version, info.size, info.hash
    );
    let Some(msg) = msg else {
        return Ok(());
    };
    let caller = match caller {
        None => [0; 32],
        Some(h) => hex::decode(h)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .with_context(|| format!("--caller {h:?} is not 64 hex characters"))?,
    };
    let o = code.run(
        zhtp_host::Call {
            entry: zhtp_host::Entry::Instantiate,
            msg: msg.into_bytes(),
            caller,
            address: [0; 32],
            sequence: 0,
            time: 0,
            funds,
            balance: 0,
            gas_limit: gas,
        },
        std::sync::Arc::new(std::collections::BTreeMap::<Vec<u8>, Vec<u8>>::new()),
    );
    let mut root = zhtp_host::StateHash::default();
    o.apply_to(&mut root);
    match &o.result {
        Ok(answer) => println!("instantiate: {}", String::from_utf8_lossy(answer)),
        Err(e) => println!("instantiate failed: {e}"),
    }
    println!(
        "gas {} of {gas}; {} key(s) written; {} transfer(s); state root {}",
        o.gas_used,
        o.writes.len(),
        o.transfers.len(),
        hex::encode(root.root())
    );
    if o.result.is_err() {
        bail!("the dry run failed");
    }
    Ok(())
}
