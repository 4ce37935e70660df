use thiserror::Error;

/// A module was refused at load time. Nothing of it was instantiated.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Larger than the code-size limit.
    #[error("module is {len} bytes; the limit is {max} bytes")]
    TooLarge {
        /// Size of the module.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a valid WebAssembly module.
    #[error("not a valid WebAssembly module: {0}")]
    InvalidWasm(String),
    /// No `zhtp_abi_v<N>` export.
    #[error(
        "no ABI version marker: a zhtp guest exports exactly one `zhtp_abi_v<N>` function \
         (this host supports v{min}..=v{max})"
    )]
    MissingMarker {
        /// Oldest supported version.
        min: u32,
        /// Newest supported version.
        max: u32,
    },
    /// A marker for a version this host does not implement.
    #[error("guest targets ABI `{found}`, this host supports v{min}..=v{max}")]
    UnsupportedVersion {
        /// The marker found.
        found: String,
        /// Oldest supported version.
        min: u32,
        /// Newest supported version.
        max: u32,
    },
    /// More than one version marker.
    #[error("guest exports several ABI markers ({0}); exactly one is allowed")]
    MultipleMarkers(String),
    /// An import outside the allow-list.
    #[error("forbidden import `{module}::{name}`; a v1 {kind} plugin may import only: {allowed}")]
    ForbiddenImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
        /// The plugin kind.
        kind: &'static str,
        /// The allowed imports.
        allowed: String,
    },
    /// An allowed import with the wrong signature.
    #[error("import `{module}::{name}` has signature {found}; ABI v1 defines it as {expected}")]
    ImportSignature {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
        /// Signature in the ABI.
        expected: String,
        /// Signature in the module.
        found: String,
    },
    /// The kind's entry export is missing or has the wrong type.
    #[error("missing export `{name}` of type {expected} required for a {kind} plugin")]
    MissingExport {
        /// Export name.
        name: &'static str,
        /// Expected type.
        expected: &'static str,
        /// The plugin kind.
        kind: &'static str,
    },
    /// The guest's memory is missing or declared larger than the cap.
    #[error("memory: {0}")]
    Memory(String),
    /// The `zhtp.meta` section is malformed.
    #[error("bad `zhtp.meta` section: {0}")]
    BadMeta(String),
    /// Compilation failed.
    #[error("compilation failed: {0}")]
    Compile(String),
    /// The plugin loaded but failed its self-check on sample inputs.
    #[error("self-check failed: {0}")]
    SelfCheck(String),
}

/// A plugin call failed. The node is unaffected; the instance is discarded unless the call kept
/// the ABI (a refusal, `Refused`, keeps it: SPEC.md R-state-discard).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// The call ran past its wall-clock limit.
    #[error("plugin exceeded its time limit of {limit_ms} ms")]
    Timeout {
        /// The limit.
        limit_ms: u64,
    },
    /// The guest tried to grow its memory past the cap.
    #[error("plugin tried to grow its memory to {desired} bytes; the limit is {limit} bytes")]
    MemoryLimit {
        /// Size asked for.
        desired: usize,
        /// The cap.
        limit: usize,
    },
    /// The guest's wasm stack overflowed (e.g. unbounded recursion).
    #[error("plugin overflowed its stack")]
    StackOverflow,
    /// The guest set an output larger than the ABI allows.
    #[error("plugin output of {len} bytes exceeds the limit of {max} bytes")]
    OutputTooLarge {
        /// Size attempted.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The guest called `abort` (a panic in an SDK guest ends here too).
    #[error("plugin aborted with code {code}: {message}")]
    Aborted {
        /// Guest-defined code (-1 for a panic).
        code: i32,
        /// Guest message, lossily decoded, at most 1 KiB.
        message: String,
    },
    /// Any other trap (unreachable, out-of-bounds access, division by zero, ...).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The guest refused the request (status 1) and said why.
    #[error("plugin refused the request: {0}")]
    Refused(String),
    /// The guest returned a status code the ABI does not define for entry points.
    #[error("plugin returned status {0}, which the ABI does not define for an entry point")]
    BadStatus(i32),
    /// The guest returned success without setting an output.
    #[error("plugin returned success but set no output")]
    NoOutput,
    /// The output does not decode, or breaks an invariant of its message type.
    #[error("plugin output is invalid: {0}")]
    BadOutput(String),
    /// The request is larger than the ABI's input limit.
    #[error("request of {len} bytes exceeds the ABI input limit of {max} bytes")]
    InputTooLarge {
        /// Size of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A fresh instance could not be created.
    #[error("could not instantiate plugin: {0}")]
    Instantiate(String),
    /// The request is outside what the host ever sends a plugin (SPEC.md R-req-ranges); the
    /// plugin was not called.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}
