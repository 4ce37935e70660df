//! Load-time validation of guest modules, as a flat sequence of small checks (the CosmWasm
//! `check_wasm` pattern). Every refusal names the offending item.

use wasmtime::{ExternType, Module, ValType};
use zhtp_abi::{MARKER_PREFIX, MAX_META_LEN, MAX_VERSION, META_SECTION, MIN_VERSION, v1};
use zhtp_types::Hash;

use crate::error::LoadError;
use crate::limits::Limits;

/// What a plugin is for. Decides its entry export and message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Prices storage: `QuoteRequest -> Quote`.
    Pricing,
    /// Judges a provider's period of a storage contract: `Measurements -> Assessment`.
    Quality,
    /// Places content in a tier and erasure code: `Facts -> Choice`.
    Tier,
}

impl Kind {
    /// Name used on the command line and in the data directory.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Pricing => "pricing",
            Kind::Quality => "quality",
            Kind::Tier => "tier",
        }
    }

    /// The entry export of this kind in ABI v1.
    pub const fn entry(self) -> &'static str {
        match self {
            Kind::Pricing => v1::PRICING_ENTRY,
            Kind::Quality => v1::QUALITY_ENTRY,
            Kind::Tier => v1::TIER_ENTRY,
        }
    }

    /// Parses a kind name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pricing" => Some(Kind::Pricing),
            "quality" => Some(Kind::Quality),
            "tier" => Some(Kind::Tier),
            _ => None,
        }
    }
}

/// What validation learnt about a guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestInfo {
    /// BLAKE3 of the wasm bytes: the plugin's identity.
    pub hash: Hash,
    /// `name@version` from the `zhtp.meta` section, or `unnamed@<short hash>`.
    pub name: String,
    /// ABI version from the marker.
    pub abi_version: u32,
    /// Size of the wasm in bytes.
    pub size: usize,
}

/// Checks that can run on the raw bytes, before anything is compiled: size and metadata.
pub(crate) fn check_bytes(
    wasm: &[u8],
    limits: &Limits,
) -> Result<(Hash, Option<String>), LoadError> {
    if wasm.len() > limits.code_size() {
        return Err(LoadError::TooLarge {
            len: wasm.len(),
            max: limits.code_size(),
        });
    }
    if !wasm.starts_with(b"\0asm") {
        return Err(LoadError::InvalidWasm(
            "missing the `\\0asm` magic number (is this a .wasm file?)".into(),
        ));
    }
    let meta = scan(wasm, limits)?;
    Ok((Hash(*blake3::hash(wasm).as_bytes()), meta))
}

/// One pass over the sections: reads `zhtp.meta` and checks declared memories against the cap
/// (so an oversized memory is refused by name, before the compiler sees it).
fn scan(wasm: &[u8], limits: &Limits) -> Result<Option<String>, LoadError> {
    let mut meta = None;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| LoadError::InvalidWasm(e.to_string()))?;
        if let wasmparser::Payload::MemorySection(reader) = &payload {
            for mem in reader.clone() {
                let mem = mem.map_err(|e| LoadError::InvalidWasm(e.to_string()))?;
                let page = 1u64 << mem.page_size_log2.unwrap_or(16);
                let min = mem.initial.saturating_mul(page);
                if min > limits.memory() as u64 {
                    return Err(LoadError::Memory(format!(
                        "declares {min} bytes initially; the limit is {} bytes",
                        limits.memory()
                    )));
                }
            }
        }
        if let wasmparser::Payload::CustomSection(section) = payload
            && section.name() == META_SECTION
        {
            let data = section.data();
            if data.len() > MAX_META_LEN {
                return Err(LoadError::BadMeta(format!(
                    "{} bytes, at most {MAX_META_LEN}",
                    data.len()
                )));
            }
            let text =
                std::str::from_utf8(data).map_err(|_| LoadError::BadMeta("not UTF-8".into()))?;
            // SPEC R-meta-format: `name@version`, split at the last `@`, both parts non-empty.
            let well_formed = text
                .rsplit_once('@')
                .is_some_and(|(name, version)| !name.is_empty() && !version.is_empty());
            if !well_formed || text.chars().any(|c| c.is_control()) {
                return Err(LoadError::BadMeta(format!(
                    "{text:?} is not `name@version` (both parts non-empty, no control characters)"
                )));
            }
            // SPEC R-meta-single: one name, not a choice between several.
            if meta.is_some() {
                return Err(LoadError::BadMeta(
                    "more than one `zhtp.meta` section".into(),
                ));
            }
            meta = Some(text.to_owned());
        }
    }
    Ok(meta)
}

/// Checks on the compiled module, before it is ever instantiated.
pub(crate) fn check_module(module: &Module, kind: Kind, limits: &Limits) -> Result<u32, LoadError> {
    let version = check_marker(module)?;
    check_imports(module, kind)?;
    check_exports(module, kind)?;
    check_memory(module, limits)?;
    Ok(version)
}

pub(crate) fn check_marker(module: &Module) -> Result<u32, LoadError> {
    let markers: Vec<&str> = module
        .exports()
        .map(|e| e.name())
        .filter(|n| n.starts_with(MARKER_PREFIX))
        .collect();
    let found = match markers.as_slice() {
        [] => {
            return Err(LoadError::MissingMarker {
                min: MIN_VERSION,
                max: MAX_VERSION,
            });
        }
        [one] => *one,
        many => return Err(LoadError::MultipleMarkers(many.join(", "))),
    };
    // SPEC R-shape-marker: the version is spelled in plain decimal (`zhtp_abi_v01` and
    // `zhtp_abi_v+1` are not v1).
    let digits = &found[MARKER_PREFIX.len()..];
    let version = digits
        .parse::<u32>()
        .ok()
        .filter(|v| v.to_string() == digits)
        .filter(|v| (MIN_VERSION..=MAX_VERSION).contains(v))
        .ok_or_else(|| LoadError::UnsupportedVersion {
            found: found.to_owned(),
            min: MIN_VERSION,
            max: MAX_VERSION,
        })?;
    match module.get_export(found) {
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => Ok(version),
        _ => Err(LoadError::MissingExport {
            name: v1::MARKER,
            expected: "func () -> ()",
            kind: "zhtp",
        }),
    }
}

fn allowed_list() -> String {
    v1::ENV_FUNCTIONS
        .iter()
        .map(|(n, _, _)| format!("{}::{n}", v1::ENV_MODULE))
        .collect::<Vec<_>>()
        .join(", ")
}

fn signature(params: usize, results: usize) -> String {
    format!(
        "({}) -> ({})",
        vec!["i32"; params].join(", "),
        vec!["i32"; results].join(", ")
    )
}

fn check_imports(module: &Module, kind: Kind) -> Result<(), LoadError> {
    for import in module.imports() {
        let spec = (import.module() == v1::ENV_MODULE)
            .then(|| {
                v1::ENV_FUNCTIONS
                    .iter()
                    .find(|(n, _, _)| *n == import.name())
            })
            .flatten();
        let forbidden = || LoadError::ForbiddenImport {
            module: import.module().to_owned(),
            name: import.name().to_owned(),
            kind: kind.as_str(),
            allowed: allowed_list(),
        };
        let Some(&(_, params, results)) = spec else {
            return Err(forbidden());
        };
        let ExternType::Func(f) = import.ty() else {
            return Err(forbidden());
        };
        let ok = f.params().len() == params
            && f.results().len() == results
            && f.params()
                .chain(f.results())
                .all(|t| matches!(t, ValType::I32));
        if !ok {
            let found = format!(
                "({}) -> ({})",
                f.params()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                f.results()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return Err(LoadError::ImportSignature {
                module: import.module().to_owned(),
                name: import.name().to_owned(),
                expected: signature(params, results),
                found,
            });
        }
    }
    Ok(())
}

fn check_exports(module: &Module, kind: Kind) -> Result<(), LoadError> {
    match module.get_export(kind.entry()) {
        Some(ExternType::Func(f))
            if f.params().len() == 0
                && f.results().len() == 1
                && f.results().all(|t| matches!(t, ValType::I32)) =>
        {
            Ok(())
        }
        _ => Err(LoadError::MissingExport {
            name: kind.entry(),
            expected: "func () -> i32",
            kind: kind.as_str(),
        }),
    }
}

pub(crate) fn check_memory(module: &Module, limits: &Limits) -> Result<(), LoadError> {
    let Some(ExternType::Memory(mem)) = module.get_export("memory") else {
        return Err(LoadError::Memory(
            "the guest must export its linear memory as `memory`".into(),
        ));
    };
    if mem.is_64() || mem.is_shared() {
        return Err(LoadError::Memory(
            "64-bit and shared memories are not supported".into(),
        ));
    }
    let min = mem.minimum().saturating_mul(mem.page_size());
    if min > limits.memory() as u64 {
        return Err(LoadError::Memory(format!(
            "declares {min} bytes initially; the limit is {} bytes",
            limits.memory()
        )));
    }
    Ok(())
}
