//! `zhtp plugin list | install | rollback | export`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Subcommand, ValueEnum};
use serde::Serialize;
use zhtp::wire::{Installed, PluginRow};
use zhtp_host::{
    Host, Kind, Limits, LoadError, Plugin, PricingPlugin, QualityCheck, QualityPlugin, Registry,
    SelfCheck, TierCheck, TierPlugin,
};
use zhtp_types::Hash;

/// `zhtp plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List the installed plugins (current and previous of each kind).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Install a plugin: validated, compiled and self-checked before it replaces the current one.
    Install {
        /// Plugin kind.
        #[arg(value_enum)]
        kind: PluginKind,
        /// The plugin's .wasm file.
        file: PathBuf,
    },
    /// Check a plugin before shipping it: the validation and the install self-check of
    /// `plugin install`, without installing anything (no node or data directory needed).
    /// Prints each check, and every sample request with the plugin's answer. Exits non-zero
    /// when the plugin would be refused.
    Check {
        /// The plugin's .wasm file.
        file: PathBuf,
        /// Plugin kind.
        #[arg(long, value_enum, default_value = "pricing")]
        kind: PluginKind,
        /// Print the report as JSON (`passed`, `load`, `self_check.calls[]`).
        #[arg(long)]
        json: bool,
    },
    /// Make the previous plugin of a kind current again.
    Rollback {
        /// Plugin kind.
        #[arg(value_enum)]
        kind: PluginKind,
    },
    /// Write one of the plugins built into this binary to a file (a starting point, or to
    /// install it again by hand).
    Export {
        /// Built-in plugin name (see `zhtp plugin list`); e.g. pricing-surge.
        name: String,
        /// Where to write the .wasm.
        #[arg(short, long)]
        output: PathBuf,
    },
}

/// Plugin kinds a node loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PluginKind {
    /// Prices storage (`zhtp quote`, contracts).
    Pricing,
    /// Judges each settled period of a provider (`zhtp node run --quality-plugin FILE`).
    Quality,
    /// Chooses the tier and erasure code of new content (`zhtp node run --tier-plugin FILE`).
    Tier,
}

impl PluginKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pricing => "pricing",
            Self::Quality => "quality",
            Self::Tier => "tier",
        }
    }

    /// Refuses kinds that are not installed through the registry.
    fn installable(self) -> Result<&'static str> {
        match self {
            Self::Pricing => Ok(self.as_str()),
            Self::Quality | Self::Tier => bail!(
                "a {0} plugin is not installed on a running node: start the node with \
                 `zhtp node run --{0}-plugin FILE` (check it first with \
                 `zhtp plugin check --kind {0} FILE`)",
                self.as_str()
            ),
        }
    }
}

/// Loads and self-checks the quality plugin in `file` (`node run --quality-plugin`).
pub fn load_quality(host: &Host, file: &Path) -> Result<QualityPlugin> {
    load_checked(
        host,
        file,
        Kind::Quality,
        QualityPlugin::new,
        QualityPlugin::self_check,
    )
}

/// Loads and self-checks the tier plugin in `file` (`node run --tier-plugin`).
pub fn load_tier(host: &Host, file: &Path) -> Result<TierPlugin> {
    load_checked(
        host,
        file,
        Kind::Tier,
        TierPlugin::new,
        TierPlugin::self_check,
    )
}

/// Loads `file` as a plugin of `kind`, wraps it and runs its self-check.
fn load_checked<P>(
    host: &Host,
    file: &Path,
    kind: Kind,
    wrap: fn(Plugin) -> P,
    self_check: fn(&P) -> Result<(), LoadError>,
) -> Result<P> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let plugin = wrap(
        host.load(kind, &wasm)
            .with_context(|| format!("{} is not a {} plugin", file.display(), kind.as_str()))?,
    );
    self_check(&plugin)
        .with_context(|| format!("{} fails the {} self-check", file.display(), kind.as_str()))?;
    Ok(plugin)
}

/// The pricing plugin a fresh node starts with.
pub const DEFAULT_PRICING: &str = "pricing-standard";

/// Opens the plugin registry of the data directory, with the embedded default plugin.
pub fn open_registry(dir: &Path) -> Result<Registry> {
    let host = Host::with_cache_dir(Limits::default(), Some(dir.join("cache")))
        .context("could not start the wasm host")?;
    let builtin = zhtp_artifacts::get(DEFAULT_PRICING).context("default plugin not embedded")?;
    Registry::open(host, Some(dir.join("plugins")), builtin)
        .with_context(|| format!("could not open the plugins in {}", dir.display()))
}

pub fn run(dir: &Path, remote: Option<&str>, cmd: PluginCommand) -> Result<()> {
    let client = remote.map(crate::client::Client::new).transpose()?;
    match cmd {
        PluginCommand::List { json } => {
            let rows: Vec<PluginRow> = match &client {
                Some(c) => c.get("/plugins")?,
                None => zhtp::api::plugin_rows(&open_registry(dir)?),
            };
            if json {
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                println!(
                    "{:<8} {:<9} {:<28} {:<12} {:>4} {:>8}",
                    "KIND", "SLOT", "NAME", "HASH", "ABI", "BYTES"
                );
                for r in &rows {
                    println!(
                        "{:<8} {:<9} {:<28} {:<12} {:>4} {:>8}",
                        r.kind,
                        r.slot,
                        r.name,
                        r.hash.fmt_short(),
                        format!("v{}", r.abi_version),
                        r.size
                    );
                }
                let builtins: Vec<&str> = zhtp_artifacts::ALL.iter().map(|(n, _)| *n).collect();
                println!(
                    "\nbuilt in (zhtp plugin export NAME -o FILE): {}",
                    builtins.join(", ")
                );
            }
        }
        PluginCommand::Install { kind, file } => {
            let kind = kind.installable()?;
            let wasm =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let done: Installed = match &client {
                Some(c) => c
                    .post_bytes(&format!("/plugins/{kind}"), &wasm)
                    .with_context(|| format!("{} was not installed", file.display()))?,
                None => {
                    let info = open_registry(dir)?
                        .install(&wasm)
                        .with_context(|| format!("{} was not installed", file.display()))?;
                    Installed {
                        name: info.name,
                        hash: info.hash,
                    }
                }
            };
            println!(
                "installed {} as the {kind} plugin (blake3 {})",
                done.name, done.hash
            );
        }
        PluginCommand::Check { file, kind, json } => check(&file, kind, json)?,
        PluginCommand::Rollback { kind } => {
            let kind = kind.installable()?;
            let done: Installed = match &client {
                Some(c) => c.post(&format!("/plugins/{kind}/rollback"), &())?,
                None => {
                    let info = open_registry(dir)?.rollback()?;
                    Installed {
                        name: info.name,
                        hash: info.hash,
                    }
                }
            };
            println!(
                "rolled back: {} is the {kind} plugin again (blake3 {})",
                done.name, done.hash
            );
        }
        PluginCommand::Export { name, output } => {
            let Some(wasm) = zhtp_artifacts::get(&name) else {
                let names: Vec<&str> = zhtp_artifacts::ALL.iter().map(|(n, _)| *n).collect();
                bail!(
                    "no built-in plugin `{name}` (built in: {})",
                    names.join(", ")
                );
            };
            std::fs::write(&output, wasm)
                .with_context(|| format!("cannot write {}", output.display()))?;
            println!(
                "wrote {name} ({} bytes) to {}",
                wasm.len(),
                output.display()
            );
        }
    }
    Ok(())
}

/// What `zhtp plugin check --json` prints.
#[derive(Debug, Serialize)]
struct CheckReport {
    file: String,
    bytes: usize,
    /// Validation and the self-check both passed: `plugin install` would accept it.
    passed: bool,
    load: LoadOutcome,
    /// Absent when validation failed (nothing was run).
    self_check: Option<Checked>,
}

/// The self-check of the plugin's kind.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum Checked {
    Pricing(SelfCheck),
    Quality(QualityCheck),
    Tier(TierCheck),
}

impl Checked {
    fn passed(&self) -> bool {
        match self {
            Self::Pricing(c) => c.passed(),
            Self::Quality(c) => c.passed(),
            Self::Tier(c) => c.passed(),
        }
    }
}

#[derive(Debug, Serialize)]
struct LoadOutcome {
    ok: bool,
    name: Option<String>,
    hash: Option<Hash>,
    abi_version: Option<u32>,
    error: Option<String>,
}

/// `zhtp plugin check FILE`: validation, then every self-check request, reported in full.
fn check(file: &Path, kind: PluginKind, json: bool) -> Result<()> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let host = Host::new(Limits::default()).context("could not start the wasm host")?;
    let loaded = host.load(
        match kind {
            PluginKind::Pricing => Kind::Pricing,
            PluginKind::Quality => Kind::Quality,
            PluginKind::Tier => Kind::Tier,
        },
        &wasm,
    );
    let load = match &loaded {
        Ok(p) => LoadOutcome {
            ok: true,
            name: Some(p.info().name.clone()),
            hash: Some(p.info().hash),
            abi_version: Some(p.info().abi_version),
            error: None,
        },
        Err(e) => LoadOutcome {
            ok: false,
            name: None,
            hash: None,
            abi_version: None,
            error: Some(e.to_string()),
        },
    };
    let self_check = loaded.ok().map(|p| match kind {
        PluginKind::Pricing => Checked::Pricing(PricingPlugin::new(p).self_check_report()),
        PluginKind::Quality => Checked::Quality(QualityPlugin::new(p).self_check_report()),
        PluginKind::Tier => Checked::Tier(TierPlugin::new(p).self_check_report()),
    });
    let report = CheckReport {
        file: file.display().to_string(),
        bytes: wasm.len(),
        passed: load.ok && self_check.as_ref().is_some_and(Checked::passed),
        load,
        self_check,
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        emit(&render(&report, host.limits())?);
    }
    if !report.passed {
        match kind {
            PluginKind::Pricing => bail!(
                "{} would be refused by `zhtp plugin install`",
                file.display()
            ),
            PluginKind::Quality | PluginKind::Tier => bail!(
                "{} would be refused by `zhtp node run --{}-plugin`",
                file.display(),
                kind.as_str()
            ),
        }
    }
    Ok(())
}

/// The report for a person.
fn render(r: &CheckReport, limits: &Limits) -> Result<String, std::fmt::Error> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
    writeln!(out, "{} ({} bytes)", r.file, r.bytes)?;
    writeln!(
        out,
        "validation (host/SPEC.md sections 1-2: size, module, metadata, marker, imports, entry, memory)"
    )?;
    match (&r.load.name, &r.load.hash, &r.load.error) {
        (Some(name), Some(hash), _) => writeln!(
            out,
            "  {}  {name}, ABI v{}, blake3 {hash}, {} bytes of at most {}",
            mark(true),
            r.load.abi_version.unwrap_or(0),
            r.bytes,
            limits.code_size()
        )?,
        (_, _, Some(e)) => writeln!(out, "  {}  {e}", mark(false))?,
        _ => {}
    }
    let check = match &r.self_check {
        None => {
            writeln!(out, "self-check: not run (validation failed)")?;
            return Ok(out);
        }
        Some(Checked::Quality(q)) => {
            render_quality(&mut out, q, r)?;
            return Ok(out);
        }
        Some(Checked::Tier(t)) => {
            render_tier(&mut out, t, r)?;
            return Ok(out);
        }
        Some(Checked::Pricing(check)) => check,
    };
    let failed = check.calls.iter().filter(|c| c.problem.is_some()).count();
    writeln!(
        out,
        "self-check (host/SPEC.md section 9): {} requests, {failed} failed",
        check.calls.len()
    )?;
    writeln!(
        out,
        "        {:<42} {:>22} {:>22}",
        "REQUEST (replication 3, normal, 50%)", "TOTAL µZHTP", "BASE µZHTP"
    )?;
    for c in &check.calls {
        let request = c.describe();
        match (&c.quote, &c.problem) {
            (Some(q), None) => writeln!(
                out,
                "  {}  {request:<42} {:>22} {:>22}",
                mark(true),
                q.total,
                q.base
            )?,
            (_, Some(p)) => writeln!(out, "  {}  {request:<42} {p}", mark(false))?,
            (None, None) => {}
        }
    }
    if r.passed {
        writeln!(
            out,
            "passed: `zhtp plugin install pricing {}` will accept it",
            r.file
        )?;
    }
    Ok(out)
}

/// The quality self-check's five periods and the answers.
fn render_quality(
    out: &mut String,
    check: &QualityCheck,
    r: &CheckReport,
) -> Result<(), std::fmt::Error> {
    use std::fmt::Write as _;
    let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
    let failed = check.calls.iter().filter(|c| c.problem.is_some()).count();
    writeln!(
        out,
        "self-check (host/SPEC.md section 12.6): {} periods, {failed} failed",
        check.calls.len()
    )?;
    writeln!(
        out,
        "        {:<10} {:<38} {:>6} {:>6}  VIOLATIONS",
        "PERIOD", "AUDITS passed/slow/lost/unanswered", "SCORE", "BONUS"
    )?;
    for c in &check.calls {
        let m = &c.request;
        let audits = format!(
            "{} = {}/{}/{}/{}",
            m.audits, m.passed, m.slow, m.lost, m.unanswered
        );
        match (&c.assessment, &c.problem) {
            (Some(a), None) => writeln!(
                out,
                "  {}  {:<10} {audits:<38} {:>6} {:>6}  {:?}",
                mark(true),
                c.name,
                a.score_bp,
                a.bonus_bp,
                a.violations
            )?,
            (_, Some(p)) => writeln!(out, "  {}  {:<10} {audits:<38} {p}", mark(false), c.name)?,
            (None, None) => {}
        }
    }
    if r.passed {
        writeln!(
            out,
            "passed: `zhtp node run --quality-plugin {}` will accept it",
            r.file
        )?;
    }
    Ok(())
}

/// The tier self-check's five requests and the choices.
fn render_tier(
    out: &mut String,
    check: &TierCheck,
    r: &CheckReport,
) -> Result<(), std::fmt::Error> {
    use std::fmt::Write as _;
    let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
    let failed = check.calls.iter().filter(|c| c.problem.is_some()).count();
    writeln!(
        out,
        "self-check (host/SPEC.md section 13.7): {} requests, {failed} failed",
        check.calls.len()
    )?;
    writeln!(
        out,
        "        {:<18} {:<34} {:<14}",
        "REQUEST", "CONTENT (size, tier, code, nodes)", "CHOICE"
    )?;
    for c in &check.calls {
        let f = &c.request;
        let code = if f.is_put() {
            "new".to_owned()
        } else {
            format!("{}+{}", f.data, f.parity)
        };
        let content = format!(
            "{}, {}, {code}, {} nodes",
            crate::quote::human_bytes(f.size),
            f.tier,
            f.nodes
        );
        match (&c.choice, &c.problem) {
            (Some(ch), None) => writeln!(
                out,
                "  {}  {:<18} {content:<34} {} {}+{}",
                mark(true),
                c.name,
                ch.tier,
                ch.data,
                ch.parity
            )?,
            (_, Some(p)) => writeln!(out, "  {}  {:<18} {content:<34} {p}", mark(false), c.name)?,
            (None, None) => {}
        }
    }
    if r.passed {
        writeln!(
            out,
            "passed: `zhtp node run --tier-plugin {}` will accept it",
            r.file
        )?;
    }
    Ok(())
}

/// Writes `text` to stdout in one piece; a closed pipe (`| head`) is not an error: the exit
/// status still tells whether the plugin passed.
fn emit(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}
