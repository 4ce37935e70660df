//! Installed plugins, hot swap and rollback, persisted in the node's data directory.
//!
//! Layout under the registry directory:
//! ```text
//! pricing/<blake3>.wasm   every plugin that is current or previous, named by its hash
//! pricing/state           postcard State { current, previous }, replaced atomically
//! ```
//! Install compiles, validates and self-checks the new plugin *before* touching anything
//! visible; then it writes the wasm, then the state file (write + fsync + rename), and only then
//! swaps the in-memory pointer. Callers hold an `Arc` to the plugin they started with, so calls in
//! flight finish on the old plugin and new calls see the new one; no call ever sees a
//! half-installed plugin.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zhtp_abi::pricing::QuoteRequest;
use zhtp_types::Hash;

use crate::compat::{GuestInfo, Kind};
use crate::engine::Host;
use crate::error::{CallError, LoadError};
use crate::pricing::{PricedQuote, PricingPlugin};

/// Why a registry operation failed. The installed plugins are unchanged.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The new plugin was refused.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// Reading or writing the registry directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Rollback asked for with no previous plugin.
    #[error("no previous {0} plugin to roll back to")]
    NoPrevious(&'static str),
    /// The persisted state does not match the files beside it.
    #[error("registry state at {path} is unusable: {why}")]
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// The current plugin of a kind and the one before it.
#[derive(Clone, Debug)]
pub struct Slot {
    /// Serves every new call.
    pub current: PricingPlugin,
    /// Restored by [`Registry::rollback`].
    pub previous: Option<PricingPlugin>,
}

#[derive(Serialize, Deserialize)]
struct State {
    current: Hash,
    previous: Option<Hash>,
}

/// The plugins of a node.
#[derive(Debug)]
pub struct Registry {
    host: Host,
    dir: Option<PathBuf>,
    pricing: RwLock<Slot>,
    // Installs and rollbacks are serialised; quotes never wait for them.
    writer: Mutex<()>,
}

impl Registry {
    /// Opens the registry persisted under `dir` (or an in-memory one with `None`). When nothing
    /// was installed yet, `builtin` (the embedded default plugin) is current.
    pub fn open(host: Host, dir: Option<PathBuf>, builtin: &[u8]) -> Result<Self, RegistryError> {
        let kind_dir = dir.as_ref().map(|d| d.join(Kind::Pricing.as_str()));
        let state = match &kind_dir {
            Some(d) => read_state(&d.join("state"))?,
            None => None,
        };
        let load = |bytes: &[u8]| -> Result<PricingPlugin, RegistryError> {
            Ok(PricingPlugin::new(host.load(Kind::Pricing, bytes)?))
        };
        let slot = match (state, &kind_dir) {
            (Some(state), Some(d)) => Slot {
                current: load(&read_wasm(d, &state.current)?)?,
                previous: match state.previous {
                    Some(h) => Some(load(&read_wasm(d, &h)?)?),
                    None => None,
                },
            },
            _ => Slot {
                current: load(builtin)?,
                previous: None,
            },
        };
        Ok(Self {
            host,
            dir: kind_dir,
            pricing: RwLock::new(slot),
            writer: Mutex::new(()),
        })
    }

    /// The host plugins are loaded into.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// A snapshot of the pricing slot.
    pub fn slot(&self) -> Slot {
        self.pricing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The current pricing plugin. Holding it keeps it alive across a swap.
    pub fn pricing(&self) -> PricingPlugin {
        self.pricing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .current
            .clone()
    }

    /// Prices `req` with the current plugin.
    pub fn quote(&self, req: &QuoteRequest) -> Result<PricedQuote, CallError> {
        self.pricing().quote(req)
    }

    /// Installs `wasm` as the pricing plugin: validate, compile, self-check, persist, swap. The
    /// old current plugin becomes the previous one. On any error nothing changes.
    pub fn install(&self, wasm: &[u8]) -> Result<GuestInfo, RegistryError> {
        let plugin = PricingPlugin::new(self.host.load(Kind::Pricing, wasm)?);
        plugin.self_check()?;
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.slot().current;
        if let Some(d) = &self.dir {
            write_wasm(d, &plugin.plugin().info().hash, wasm)?;
            write_wasm_if_missing(d, &old)?;
            write_state(
                d,
                &State {
                    current: plugin.plugin().info().hash,
                    previous: Some(old.plugin().info().hash),
                },
            )?;
        }
        let info = plugin.plugin().info().clone();
        *self.pricing.write().unwrap_or_else(|e| e.into_inner()) = Slot {
            current: plugin,
            previous: Some(old),
        };
        tracing::info!(plugin = %info.name, hash = %info.hash, "pricing plugin installed");
        Ok(info)
    }

    /// [`install`](Self::install) on a background thread; quoting continues meanwhile.
    pub fn install_in_background(
        self: &Arc<Self>,
        wasm: Vec<u8>,
    ) -> std::thread::JoinHandle<Result<GuestInfo, RegistryError>> {
        let this = Arc::clone(self);
        std::thread::spawn(move || this.install(&wasm))
    }

    /// Makes the previous pricing plugin current again (and the current one previous).
    pub fn rollback(&self) -> Result<GuestInfo, RegistryError> {
        let _writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let Slot { current, previous } = self.slot();
        let previous = previous.ok_or(RegistryError::NoPrevious(Kind::Pricing.as_str()))?;
        if let Some(d) = &self.dir {
            write_wasm_if_missing(d, &current)?;
            write_state(
                d,
                &State {
                    current: previous.plugin().info().hash,
                    previous: Some(current.plugin().info().hash),
                },
            )?;
        }
        let info = previous.plugin().info().clone();
        *self.pricing.write().unwrap_or_else(|e| e.into_inner()) = Slot {
            current: previous,
            previous: Some(current),
        };
        tracing::info!(plugin = %info.name, hash = %info.hash, "pricing plugin rolled back");
        Ok(info)
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_owned(),
        source,
    }
}

fn read_state(path: &Path) -> Result<Option<State>, RegistryError> {
    match fs::read(path) {
        Ok(bytes) => {
            postcard::from_bytes(&bytes)
                .map(Some)
                .map_err(|e| RegistryError::CorruptState {
                    path: path.to_owned(),
                    why: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn wasm_path(dir: &Path, hash: &Hash) -> PathBuf {
    dir.join(format!("{hash}.wasm"))
}

fn read_wasm(dir: &Path, hash: &Hash) -> Result<Vec<u8>, RegistryError> {
    let path = wasm_path(dir, hash);
    let bytes = fs::read(&path).map_err(io_err(&path))?;
    if blake3::hash(&bytes).as_bytes() != hash.as_bytes() {
        return Err(RegistryError::CorruptState {
            path,
            why: "file content does not match its hash".into(),
        });
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))?;
    // Make the rename itself durable.
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn write_wasm(dir: &Path, hash: &Hash, wasm: &[u8]) -> Result<(), RegistryError> {
    let path = wasm_path(dir, hash);
    if path.exists() {
        return Ok(());
    }
    write_atomic(&path, wasm)
}

/// The builtin plugin has no file until something replaces it; keep it for rollback.
fn write_wasm_if_missing(dir: &Path, plugin: &PricingPlugin) -> Result<(), RegistryError> {
    let info = plugin.plugin().info();
    if wasm_path(dir, &info.hash).exists() {
        return Ok(());
    }
    let wasm = plugin.plugin().wasm();
    write_wasm(dir, &info.hash, wasm)
}

fn write_state(dir: &Path, state: &State) -> Result<(), RegistryError> {
    let bytes = postcard::to_allocvec(state).map_err(|e| RegistryError::CorruptState {
        path: dir.join("state"),
        why: e.to_string(),
    })?;
    write_atomic(&dir.join("state"), &bytes)
}
