//! `zhtp identity new | list | show | export | import | passphrase`.
//!
//! Passphrases come from `--passphrase-file FILE` (its first line), else the environment
//! (`ZHTP_PASSPHRASE`; `identity passphrase` reads the replacement from `ZHTP_NEW_PASSPHRASE`
//! or `--new-passphrase-file`), else a prompt on the terminal that does not echo. Never from a flag's value: other users of the machine can read a
//! command line.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use zeroize::Zeroizing;
use zhtp::keystore::{self, Keystore};
use zhtp_identity::sealed::SEALED_LEN;
use zhtp_identity::{Identity, KdfParams, PublicKeys};

/// `zhtp identity new` (and `zhtp account new`, which is the same).
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Its name in this keystore: 1 to 64 letters, digits, '-' or '_'.
    pub name: String,
    #[command(flatten)]
    pub passphrase: PassphraseFile,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `zhtp identity ...`
#[derive(Debug, Subcommand)]
pub enum IdentityCommand {
    /// Create an identity (Ed25519, X25519 and X-Wing keys), sealed under a new passphrase in
    /// the data dir's keystore.
    New(NewArgs),
    /// List the identities of the keystore (no passphrase needed).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show an identity's id and public keys (no passphrase needed).
    Show {
        /// Its name in this keystore.
        name: String,
        /// Print JSON, with the signed public record in hex (what others need to grant it
        /// access).
        #[arg(long)]
        json: bool,
    },
    /// Write an identity to a file: the sealed keystore file as it is (still encrypted under
    /// its passphrase), or with --public its signed public record.
    Export {
        /// Its name in this keystore.
        name: String,
        /// Where to write; `-` for standard output.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        /// Export the public record (public keys, signed by the identity) instead.
        #[arg(long)]
        public: bool,
    },
    /// Add a sealed identity file (from `zhtp identity export`) to this keystore. Its
    /// key-derivation parameters are shown and checked before the passphrase is asked for.
    Import {
        /// The sealed file.
        file: PathBuf,
        /// Its name here; default the file's name without its extension.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        passphrase: PassphraseFile,
    },
    /// Change an identity's passphrase (it is sealed again, with the default parameters).
    Passphrase {
        /// Its name in this keystore.
        name: String,
        #[command(flatten)]
        passphrase: PassphraseFile,
        /// Read the new passphrase from the first line of FILE (else $ZHTP_NEW_PASSPHRASE,
        /// else a prompt).
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
}

/// `--passphrase-file`.
#[derive(Debug, Args)]
pub struct PassphraseFile {
    /// Read the passphrase from the first line of FILE (else $ZHTP_PASSPHRASE, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// Longest passphrase file read (its first line is the passphrase).
const MAX_PASSPHRASE_FILE: usize = 4096;

/// A passphrase from `file`, else the environment variable `env`, else the terminal (twice
/// when `confirm`, for a new one).
pub fn passphrase(
    file: Option<&Path>,
    env: &str,
    prompt: &str,
    confirm: bool,
) -> Result<Zeroizing<String>> {
    let p = if let Some(f) = file {
        let bytes = keystore::read_bounded(f, MAX_PASSPHRASE_FILE)
            .with_context(|| format!("reading the passphrase file {}", f.display()))?
            .with_context(|| {
                format!(
                    "the passphrase file {} is longer than {MAX_PASSPHRASE_FILE} bytes",
                    f.display()
                )
            })?;
        let bytes = Zeroizing::new(bytes);
        let text = std::str::from_utf8(&bytes)
            .with_context(|| format!("the passphrase file {} is not UTF-8", f.display()))?;
        Zeroizing::new(text.lines().next().unwrap_or("").to_owned())
    } else if let Some(v) = std::env::var_os(env) {
        Zeroizing::new(
            v.into_string()
                .map_err(|_| anyhow::anyhow!("{env} is not UTF-8"))?,
        )
    } else if !std::io::stdin().is_terminal() {
        // No one to ask (a script, a pipe, a test): fail now rather than wait on the terminal.
        bail!("no passphrase: set {env}, pass --passphrase-file FILE, or run in a terminal");
    } else {
        let ask = |p: &str| {
            rpassword::prompt_password(p).map(Zeroizing::new).with_context(|| {
                format!(
                    "no passphrase: set {env}, pass --passphrase-file FILE, or run in a terminal"
                )
            })
        };
        let first = ask(prompt)?;
        if confirm && *ask("Same passphrase again: ")? != *first {
            bail!("the two passphrases differ; nothing was changed");
        }
        first
    };
    if p.is_empty() {
        bail!("an empty passphrase protects nothing");
    }
    Ok(p)
}

/// The identity `name` of the keystore in `dir`, opened with its passphrase (`--identity NAME`
/// of the commands that sign or decrypt).
pub fn open(dir: &Path, name: &str, pf: &PassphraseFile) -> Result<Identity> {
    let ks = Keystore::new(dir);
    ks.sealed(name)?;
    let pw = passphrase(
        pf.passphrase_file.as_deref(),
        "ZHTP_PASSPHRASE",
        &format!("Passphrase of {name}: "),
        false,
    )?;
    Ok(ks.open(name, pw.as_bytes())?)
}

/// The identity a command acts as: `given` (--identity or $ZHTP_IDENTITY), else the keystore's
/// only identity. `why` says what it is needed for, in the error when there is none to choose.
pub fn choose(dir: &Path, given: Option<String>, why: &str) -> Result<String> {
    if let Some(name) = given {
        return Ok(name);
    }
    let names: Vec<String> = Keystore::new(dir)
        .list()?
        .into_iter()
        .map(|l| l.name)
        .collect();
    match &names[..] {
        [one] => {
            eprintln!("as identity {one}, the only one in this keystore");
            Ok(one.clone())
        }
        [] => bail!(
            "{why}, and this data dir's keystore has no identity: `zhtp identity new NAME` makes one"
        ),
        many => bail!(
            "{why}: choose one of the {} identities of this keystore ({}) with --identity NAME or $ZHTP_IDENTITY",
            many.len(),
            many.join(", ")
        ),
    }
}

/// An identity's public side, as `show --json` and `list --json` print it.
#[derive(Debug, Serialize)]
struct Shown {
    name: String,
    /// The Ed25519 verifying key, hex: the identity's id on the network.
    id: Option<String>,
    /// The X25519 public key, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    exchange: Option<String>,
    /// BLAKE3 of the X-Wing encapsulation key, hex (the key itself is in the record).
    #[serde(skip_serializing_if = "Option::is_none")]
    kem_digest: Option<String>,
    /// The signed public record, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<String>,
}

impl Shown {
    fn new(name: &str, p: Option<&PublicKeys>) -> Self {
        Self {
            name: name.to_owned(),
            id: p.map(PublicKeys::id),
            exchange: None,
            kem_digest: None,
            record: None,
        }
    }
}

pub fn run(dir: &Path, cmd: IdentityCommand) -> Result<()> {
    let ks = Keystore::new(dir);
    match cmd {
        IdentityCommand::New(NewArgs {
            name,
            passphrase: pf,
            json,
        }) => {
            ks.check_free(&name)?;
            let pw = passphrase(
                pf.passphrase_file.as_deref(),
                "ZHTP_PASSPHRASE",
                &format!("New passphrase for {name}: "),
                true,
            )?;
            let id = Identity::generate()?;
            let public = ks.create(&name, &id, pw.as_bytes(), KdfParams::DEFAULT)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&Shown::new(&name, Some(&public)))?
                );
            } else {
                println!("created identity {name}");
                println!("id    {}", public.id());
                println!(
                    "file  {} (sealed: Argon2id {})",
                    ks.key_path(&name).display(),
                    KdfParams::DEFAULT
                );
            }
            Ok(())
        }
        IdentityCommand::List { json } => {
            let all = ks.list()?;
            if json {
                let rows: Vec<Shown> = all
                    .iter()
                    .map(|l| Shown::new(&l.name, l.public.as_ref()))
                    .collect();
                println!("{}", serde_json::to_string(&rows)?);
            } else if all.is_empty() {
                println!(
                    "no identities in {} (create one: zhtp identity new NAME)",
                    ks.dir().display()
                );
            } else {
                for l in all {
                    let id = l.public.as_ref().map_or_else(
                        || "(public keys damaged: open it once to rewrite them)".to_owned(),
                        PublicKeys::id,
                    );
                    println!("{:<20} {id}", l.name);
                }
            }
            Ok(())
        }
        IdentityCommand::Show { name, json } => {
            let (record, p) = ks.public_record(&name)?;
            let mut s = Shown::new(&name, Some(&p));
            s.exchange = Some(hex::encode(p.exchange));
            s.kem_digest = Some(blake3::hash(&p.kem).to_hex().to_string());
            if json {
                s.record = Some(hex::encode(record));
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!("name      {name}");
                println!("id        {}", p.id());
                println!("x25519    {}", s.exchange.unwrap_or_default());
                println!("x-wing    blake3 {}", s.kem_digest.unwrap_or_default());
            }
            Ok(())
        }
        IdentityCommand::Export {
            name,
            output,
            public,
        } => {
            let bytes = if public {
                ks.public_record(&name)?.0
            } else {
                ks.sealed(&name)?
            };
            if output.as_os_str() == "-" {
                std::io::stdout().write_all(&bytes)?;
            } else {
                // The sealed file is as safe as its passphrase: kept private all the same.
                zhtp::private::write_file(&output, &bytes)
                    .with_context(|| format!("writing {}", output.display()))?;
                eprintln!(
                    "wrote {} ({} bytes{})",
                    output.display(),
                    bytes.len(),
                    if public {
                        ", public record"
                    } else {
                        ", sealed"
                    }
                );
            }
            Ok(())
        }
        IdentityCommand::Import {
            file,
            name,
            passphrase: pf,
        } => {
            let name = match name {
                Some(n) => n,
                None => file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .context("cannot name the identity after the file: pass --name")?
                    .to_owned(),
            };
            ks.check_free(&name)?;
            let sealed = keystore::read_bounded(&file, SEALED_LEN)
                .with_context(|| format!("reading {}", file.display()))?
                .with_context(|| format!("{} is not a keystore file (too long)", file.display()))?;
            let params = zhtp_identity::sealed::params(&sealed)
                .with_context(|| format!("reading {}", file.display()))?;
            eprintln!("{}: sealed with Argon2id {params}", file.display());
            let pw = passphrase(
                pf.passphrase_file.as_deref(),
                "ZHTP_PASSPHRASE",
                &format!("Passphrase of {}: ", file.display()),
                false,
            )?;
            let public = ks.import(&name, &sealed, pw.as_bytes())?;
            println!("imported identity {name}");
            println!("id    {}", public.id());
            Ok(())
        }
        IdentityCommand::Passphrase {
            name,
            passphrase: pf,
            new_passphrase_file,
        } => {
            ks.sealed(&name)?;
            let old = passphrase(
                pf.passphrase_file.as_deref(),
                "ZHTP_PASSPHRASE",
                &format!("Current passphrase of {name}: "),
                false,
            )?;
            // Check the old one before asking for a new one.
            ks.open(&name, old.as_bytes())?;
            let new = passphrase(
                new_passphrase_file.as_deref(),
                "ZHTP_NEW_PASSPHRASE",
                &format!("New passphrase for {name}: "),
                true,
            )?;
            ks.change_passphrase(&name, old.as_bytes(), new.as_bytes(), KdfParams::DEFAULT)?;
            println!("passphrase of {name} changed");
            Ok(())
        }
    }
}
