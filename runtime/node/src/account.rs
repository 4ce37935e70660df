//! `zhtp account new | show | fund`: accounts of the node's ledger. An account is an identity's
//! Ed25519 key; a name of this keystore or a 64-hex id names it.

use std::path::Path;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use zhtp::accounts;
use zhtp::keystore::Keystore;
use zhtp::wire::{AccountInfo, FundRequest, TransferInfo};
use zhtp_economy::tokens;
use zhtp_types::MicroZhtp;

use crate::client::Client;
use crate::identity::{IdentityCommand, NewArgs};

/// `zhtp account ...`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an identity to hold an account (what `zhtp identity new` does): its id is the
    /// account.
    New(NewArgs),
    /// An account's balance and last transfers (no passphrase needed).
    Show {
        /// An identity of this keystore or an account id (64 hex characters); default: the
        /// keystore's only identity.
        who: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pay tokens from a devnet's faucet. Only a ledger started with `node run --devnet` has
    /// one; any other node refuses: it never mints.
    Fund {
        /// An identity of this keystore or an account id (64 hex characters).
        who: String,
        /// Tokens (`25`, `1.5`) or µZHTP (`1500000u`).
        #[arg(value_parser = accounts::parse_amount)]
        amount: MicroZhtp,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The account `who` names: a 64-hex id, else an identity of the keystore.
fn resolve(dir: &Path, who: &str) -> Result<[u8; 32]> {
    if let Ok(id) = accounts::parse_id(who) {
        return Ok(id);
    }
    Ok(Keystore::new(dir)
        .public(who)
        .with_context(|| format!("{who:?} is not an account id (64 hex characters)"))?
        .signing)
}

pub fn run(dir: &Path, remote: Option<&str>, cmd: AccountCommand) -> Result<()> {
    match cmd {
        AccountCommand::New(args) => crate::identity::run(dir, IdentityCommand::New(args)),
        AccountCommand::Show { who, json } => {
            let who = match who {
                Some(w) => w,
                None => crate::identity::choose(
                    dir,
                    std::env::var("ZHTP_IDENTITY").ok(),
                    "show which account",
                )?,
            };
            let key = resolve(dir, &who)?;
            let info: AccountInfo = match remote {
                Some(url) => Client::new(url)?.get(&format!("/accounts/{}", hex::encode(key)))?,
                None => accounts::info(crate::files::open(dir)?.ledger(), key)?,
            };
            if json {
                println!("{}", serde_json::to_string(&info)?);
                return Ok(());
            }
            println!("account   {}", info.account);
            println!("balance   {}", tokens(info.balance));
            println!(
                "ledger    {}, {} in all",
                if info.devnet {
                    "a devnet's (it has a faucet)"
                } else {
                    "no faucet"
                },
                tokens(info.supply)
            );
            if !info.history.is_empty() {
                println!("last transfers, newest first:");
            }
            for t in &info.history {
                print_transfer(t, &info.account);
            }
            Ok(())
        }
        AccountCommand::Fund { who, amount, json } => {
            let key = resolve(dir, &who)?;
            let t: TransferInfo = match remote {
                Some(url) => Client::new(url)?.post(
                    &format!("/accounts/{}/fund", hex::encode(key)),
                    &FundRequest { amount, id: None },
                )?,
                None => accounts::fund(crate::files::open(dir)?.ledger(), key, amount, None)?,
            };
            if json {
                println!("{}", serde_json::to_string(&t)?);
            } else {
                eprintln!("paid {} from the faucet to {}", tokens(t.amount), t.to);
            }
            Ok(())
        }
    }
}

fn print_transfer(t: &TransferInfo, me: &str) {
    let (sign, other) = if t.to == me {
        ('+', &t.from)
    } else {
        ('-', &t.to)
    };
    println!(
        "  #{:<6} {sign}{:<18} {:<15} {}",
        t.seq,
        tokens(t.amount),
        serde_json::to_value(t.kind)
            .map_or_else(|_| String::new(), |v| v.as_str().unwrap_or("").to_owned()),
        other
    );
}
