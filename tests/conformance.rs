//! ABI v1 conformance kit: every rule of `host/SPEC.md` that the host enforces or guarantees,
//! checked through the host's public API with hand-written guests.
//!
//! Each test names the rule tags it checks in a `/// SPEC R-…` line of its doc comment (the
//! test [`every_spec_rule_is_covered_or_listed`] holds the kit to every tag of the spec, and
//! every tag cited here or in a guest to one the spec defines). Guests of more than a few lines
//! are WebAssembly text files in `tests/conformance/`, each starting with the rules it
//! exercises; small ones are inline, most of them built with `zhtp_tests::guest`.
//!
//! How a guest reports what a host function returned: `Plugin::call` returns the output of a
//! call that returned status 0 as raw bytes, without any validation (a `Quote` is validated by
//! `PricingPlugin`). A *probe* guest calls host functions in a fixed order, appends each result
//! to a record as one little-endian `i32` word, and appends the bytes of its memory it wants to
//! show as one word per byte; it sets the record as its output and returns 0. The test decodes
//! the words ([`words`]) and compares the whole record with the one it expects ([`Record`]),
//! so a single wrong result, or a byte copied where nothing should be, fails it. A guest that
//! must show the request bytes the host sends it refuses with them in hex
//! (`conformance/echo-hex.wat`). Output checks (section 8.4) go through `PricingPlugin` with a
//! guest that answers fixed bytes ([`answering`]); which check refused an output is told by the
//! host's reason ([`out_check`]), since the spec fixes their order but not their wording.
//!
//! Limits are those of `zhtp_tests::host()`: a 50 ms call timeout and a 4 MiB (64-page) memory
//! cap; the other limits are the defaults.

use zhtp_host::abi::Status;
use zhtp_host::abi::pricing::{Adjustment, Factor, Quote, QuoteRequest, Urgency};
use zhtp_host::abi::quality::{Assessment, Class, Measurements};
use zhtp_host::abi::tier::{Choice, Facts};
use zhtp_host::{
    CallError, Host, Kind, Limits, LoadError, Plugin, PricingPlugin, QualityPlugin, Registry,
    RegistryError, TierPlugin,
};
use zhtp_tests::{
    SPEC, TEST_MEMORY, TEST_TIMEOUT, assert_serves, golden_request, guest, hex_bytes, host, load,
    spec_bytes, standard, wat_bytes,
};
use zhtp_types::StorageTier;

/// The kit: this file and the contract profile's tests (section 14).
const KIT: &str = concat!(
    include_str!("conformance.rs"),
    include_str!("contract_profile.rs")
);

const CHECK_PRICE_FALLS: &str = include_str!("conformance/check-price-falls.wat");
const CHECK_REFUSES_ARCHIVE: &str = include_str!("conformance/check-refuses-archive.wat");
const CHECK_REQUESTS: &str = include_str!("conformance/check-requests.wat");
const CHECK_TRAPS_ON_DOUBLE: &str = include_str!("conformance/check-traps-on-double.wat");
const CONCURRENT: &str = include_str!("conformance/concurrent.wat");
const ECHO_HEX: &str = include_str!("conformance/echo-hex.wat");
const EXPORTS_OTHER: &str = include_str!("conformance/exports-other.wat");
const FN_INPUT: &str = include_str!("conformance/fn-input.wat");
const FN_LOG: &str = include_str!("conformance/fn-log.wat");
const FN_OUTPUT_SET: &str = include_str!("conformance/fn-output_set.wat");
const MEMORY_MAX_ABOVE_CAP: &str = include_str!("conformance/memory-max-above-cap.wat");
const MEMORY_MAX_BELOW_CAP: &str = include_str!("conformance/memory-max-below-cap.wat");
const START: &str = include_str!("conformance/start.wat");
const STATE: &str = include_str!("conformance/state.wat");
const TABLE: &str = include_str!("conformance/table.wat");

/// Every guest file of the kit, for the tag check.
const GUESTS: [&str; 15] = [
    CHECK_PRICE_FALLS,
    CHECK_REFUSES_ARCHIVE,
    CHECK_REQUESTS,
    CHECK_TRAPS_ON_DOUBLE,
    CONCURRENT,
    ECHO_HEX,
    EXPORTS_OTHER,
    FN_INPUT,
    FN_LOG,
    FN_OUTPUT_SET,
    MEMORY_MAX_ABOVE_CAP,
    MEMORY_MAX_BELOW_CAP,
    START,
    STATE,
    TABLE,
];

/// Rules of the spec this kit does not check, and why.
const NOT_COVERED: [(&str, &str); 13] = [
    (
        "R-c-net-caller",
        "the node's replicas: runtime/node/tests/processes.rs, \
         contracts_through_the_command_line_of_three_node_processes",
    ),
    (
        "R-c-net-time",
        "the node's replicas: runtime/node/tests/devnet_contracts.rs, \
         a_contract_deployed_on_one_node_runs_on_its_replicas_from_any_other",
    ),
    (
        "R-c-net-address",
        "the node's contract store: runtime/node/tests/smart.rs, \
         an_address_is_derived_as_the_spec_says",
    ),
    (
        "R-c-net-sequence",
        "the node's replicas: runtime/node/tests/devnet_contracts.rs, \
         a_contract_deployed_on_one_node_runs_on_its_replicas_from_any_other",
    ),
    (
        "R-c-net-funds",
        "the node's API: runtime/node/tests/processes.rs, \
         contracts_through_the_command_line_of_three_node_processes",
    ),
    (
        "R-tuse-fallback",
        "the node's placement: runtime/node/tests/network.rs, \
         the_tier_plugin_places_puts_and_a_failing_one_is_passed_over",
    ),
    (
        "R-tuse-put",
        "the node's put: runtime/node/tests/api.rs, \
         a_put_naming_no_code_gets_the_tier_plugins_placement",
    ),
    (
        "R-tuse-review",
        "the node's review: runtime/node/tests/network.rs, \
         a_review_migrates_content_where_the_tier_plugin_says",
    ),
    (
        "R-quse-worst",
        "the node's settlement: runtime/node/tests/paid.rs, \
         the_quality_plugin_judges_each_period_and_a_broken_one_never_stops_settlement",
    ),
    (
        "R-quse-bonus",
        "the node's settlement: runtime/node/tests/paid.rs, \
         a_node_dropping_its_shards_is_penalized_banned_and_replaced_and_the_ledger_adds_up",
    ),
    (
        "R-quse-fallback",
        "the node's settlement: runtime/node/tests/paid.rs, \
         the_quality_plugin_judges_each_period_and_a_broken_one_never_stops_settlement",
    ),
    (
        "R-enc-zigzag",
        "no v1 message has a signed integer: nothing the host sends or reads uses zigzag",
    ),
    (
        "R-enc-string",
        "no v1 message has a string (a refusal reason is raw UTF-8, checked under \
         R-call-status-1)",
    ),
];

/// A wasm page.
const PAGE: usize = 65_536;

/// The v1 marker, the entry (it refuses: status 1) and the memory: a valid pricing guest
/// together.
const MARKER: &str = r#"(func (export "zhtp_abi_v1"))"#;
const ENTRY: &str = r#"(func (export "pricing_quote") (result i32) (i32.const 1))"#;
const MEMORY: &str = r#"(memory (export "memory") 1)"#;

/// The five functions of `zhtp:env/v1` with their signatures in WAT (SPEC section 4).
const ENV: [(&str, &str); 5] = [
    ("input_len", "(func (result i32))"),
    ("input_read", "(func (param i32 i32) (result i32))"),
    ("output_set", "(func (param i32 i32) (result i32))"),
    ("log", "(func (param i32 i32 i32) (result i32))"),
    ("abort", "(func (param i32 i32 i32))"),
];

/// The quote of 100 / 10 / 5 / 2 / 15 / 117 µZHTP with no adjustments (SPEC section 8.5).
const COMPAT_QUOTE: [u8; 7] = [0x64, 0x0a, 0x05, 0x02, 0x0f, 0x75, 0x00];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Assembles WebAssembly text.
fn wasm(src: &str) -> Vec<u8> {
    wat::parse_str(src).unwrap_or_else(|e| panic!("bad test WAT: {e}\n{src}"))
}

/// Assembles `(module <fields>)`.
fn module(fields: &str) -> Vec<u8> {
    wasm(&format!("(module {fields})"))
}

/// Loads a guest that must pass validation.
fn plugin(host: &Host, wasm: &[u8]) -> Plugin {
    load(host, wasm).unwrap_or_else(|e| panic!("the guest must load: {e}"))
}

/// Loads a pricing guest that must pass validation.
fn pricing(host: &Host, wasm: &[u8]) -> PricingPlugin {
    PricingPlugin::new(plugin(host, wasm))
}

/// Loads a module that must be refused, and returns why.
fn refused(host: &Host, wasm: &[u8]) -> LoadError {
    load(host, wasm).expect_err("the module must be refused")
}

/// The little-endian `i32` words of a probe's record.
fn words(out: &[u8]) -> Vec<i32> {
    assert!(
        out.len().is_multiple_of(4),
        "a probe's record is whole words, got {} bytes",
        out.len()
    );
    out.chunks_exact(4)
        .map(|w| i32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        .collect()
}

/// Calls a probe through `Plugin::call` and decodes its record.
fn record(plugin: &Plugin, input: &[u8]) -> Vec<i32> {
    words(
        &plugin
            .call(input)
            .unwrap_or_else(|e| panic!("the probe must answer: {e}")),
    )
}

/// A probe's expected record, built in the order the probe records: results of host-function
/// calls, and bytes of its memory (one word per byte).
#[derive(Debug, Default)]
struct Record(Vec<i32>);

impl Record {
    fn results(mut self, results: &[i32]) -> Self {
        self.0.extend_from_slice(results);
        self
    }

    fn memory(mut self, bytes: &[u8]) -> Self {
        self.0.extend(bytes.iter().map(|&b| i32::from(b)));
        self
    }
}

/// The call timeout of the test host, as `CallError` reports it.
fn timeout() -> CallError {
    CallError::Timeout {
        limit_ms: TEST_TIMEOUT.as_millis() as u64,
    }
}

/// An unsigned LEB128 varint in its shortest form (SPEC R-enc-varint, written from the spec's
/// own description).
fn leb128(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while value >= 0x80 {
        out.push((value & 0x7f) as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
    out
}

/// A custom section `name` holding `data`.
fn custom_section(name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = leb128(name.len() as u64);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    let mut section = vec![0];
    section.extend(leb128(body.len() as u64));
    section.extend(body);
    section
}

/// `wasm` with a custom section appended (it comes after every other section).
fn with_custom(wasm: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    [wasm, &custom_section(name, data)].concat()
}

/// `wasm` with a custom section first, right after the 8-byte header.
fn with_custom_first(wasm: &[u8], name: &str, data: &[u8]) -> Vec<u8> {
    let (header, sections) = wasm.split_at(8);
    [header, &custom_section(name, data), sections].concat()
}

/// `wasm` padded to exactly `total` bytes with a custom section named `pad`.
fn padded(wasm: &[u8], total: usize) -> Vec<u8> {
    let room = total - wasm.len();
    // The section takes 1 byte (id) + k bytes (its size, LEB128) + its size.
    let size = (1..=5)
        .map(|k| room - 1 - k)
        .find(|&size| leb128(size as u64).len() == room - 1 - size)
        .expect("a section size that fills the room");
    // Its content: 1 byte (name length) + 3 bytes (`pad`) + the padding.
    let out = with_custom(wasm, "pad", &vec![0; size - 4]);
    assert_eq!(out.len(), total);
    out
}

/// The part of the spec between two markers.
fn spec_between(start: &str, end: &str) -> &'static str {
    let (_, rest) = SPEC
        .split_once(start)
        .unwrap_or_else(|| panic!("SPEC.md has no {start:?}"));
    let (section, _) = rest
        .split_once(end)
        .unwrap_or_else(|| panic!("SPEC.md has no {end:?} after {start:?}"));
    section
}

/// The section 10 example guest, as it stands in the spec.
fn spec_example() -> Vec<u8> {
    wasm(spec_between("```wat\n", "\n```"))
}

/// The 24 bytes the spec says its example guest answers the golden request with.
fn spec_example_answer() -> Vec<u8> {
    let (_, rest) = SPEC
        .split_once("returns the 24 bytes")
        .expect("SPEC.md gives the example's answer");
    hex_bytes(rest.split('`').nth(1).expect("the answer in backquotes"))
}

/// A pricing guest that answers every call with `bytes` and status 0.
fn answering_wasm(bytes: &[u8]) -> Vec<u8> {
    let body = format!(
        "(drop (call $output_set (i32.const 16) (i32.const {}))) (i32.const 0)",
        bytes.len()
    );
    let data = format!(r#"(data (i32.const 16) "{}")"#, wat_bytes(bytes));
    guest(&body, &data, 1)
}

/// [`answering_wasm`], loaded.
fn answering(host: &Host, bytes: &[u8]) -> PricingPlugin {
    pricing(host, &answering_wasm(bytes))
}

/// The golden request answered with `bytes`, through `PricingPlugin` (section 8.4 applies).
fn quote_of(host: &Host, bytes: &[u8]) -> Result<Quote, CallError> {
    answering(host, bytes).quote_only(&golden_request())
}

/// A `Quote` in bytes: the six amounts, then `adjustments` as given (count included).
fn quote(amounts: [u64; 6], adjustments: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = amounts.into_iter().flat_map(leb128).collect();
    out.extend_from_slice(adjustments);
    out
}

/// A `Quote` of 1 µZHTP with `n` adjustments Surge 10,000 bp.
fn with_adjustments(n: usize) -> Vec<u8> {
    let count = u8::try_from(n).expect("fewer than 256");
    quote(
        [1, 0, 0, 0, 0, 1],
        &[[count].as_slice(), &[4, 0x90, 0x4e].repeat(n)].concat(),
    )
}

/// The check of SPEC section 8.4 that refused an output.
#[derive(Debug, PartialEq, Eq)]
enum OutCheck {
    /// R-out-decode.
    Decode,
    /// R-out-adjustments-max.
    AdjustmentsMax,
    /// R-out-exact.
    Exact,
    /// R-out-sum.
    Sum,
}

/// Which check refused an output, told by the host's reason (`zhtp-host`'s `decode_quote`).
fn out_check(err: &CallError) -> OutCheck {
    match err {
        CallError::BadOutput(m) if m.starts_with("not a Quote") => OutCheck::Decode,
        CallError::BadOutput(m) if m.contains("adjustments; at most") => OutCheck::AdjustmentsMax,
        CallError::BadOutput(m) if m.contains("after the end") || m.contains("shortest") => {
            OutCheck::Exact
        }
        CallError::BadOutput(m) if m.contains("is not base + quality_premium") => OutCheck::Sum,
        other => panic!("not a BadOutput of a known section 8.4 check: {other:?}"),
    }
}

/// The golden request answered with `bytes`, which must be refused: by which check.
fn refused_output(host: &Host, bytes: &[u8]) -> OutCheck {
    out_check(
        &quote_of(host, bytes)
            .expect_err("the output must be refused with CallError::BadOutput (SPEC 8.4)"),
    )
}

/// The request of 1 B for `days` days (Warm, no quality, neutral market): its second byte is
/// `days` when below 128, which selects the case of `state.wat`.
fn days(duration: u32) -> QuoteRequest {
    QuoteRequest::new(1, duration, StorageTier::Warm, false)
}

/// What `state.wat` answers: (calls, memory word, memory pages, table size, input length).
fn counters(q: &Quote) -> (u64, u64, u64, u64, u64) {
    (
        q.base,
        q.quality_premium,
        q.network_fee,
        q.escrow_fee,
        q.max_bonus,
    )
}

/// The bytes `echo-hex.wat` was sent for `req`, in hex.
fn sent(echo: &PricingPlugin, req: &QuoteRequest) -> String {
    match echo.quote_only(req) {
        Err(CallError::Refused(hex)) => hex,
        other => panic!("the echo guest refuses every request with its input, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The kit covers the spec
// ---------------------------------------------------------------------------------------------

/// Every rule tag the spec defines (`**[R-…]**`).
fn spec_tags() -> Vec<&'static str> {
    let mut tags: Vec<&str> = SPEC
        .split("**[")
        .skip(1)
        .filter_map(|s| s.split_once("]**").map(|(tag, _)| tag))
        .filter(|tag| tag.starts_with("R-"))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    tags
}

/// The rule tags (`R-…`) in `text`.
fn tags_in(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|w| w.starts_with("R-"))
}

/// SPEC (all rules): each is checked by a test here (named in a `/// SPEC` line) or listed in
/// `NOT_COVERED` with the reason; every tag the kit or its guests cite exists in the spec.
#[test]
fn every_spec_rule_is_covered_or_listed() {
    let spec = spec_tags();
    assert!(spec.len() >= 77, "SPEC.md defines {} rule tags", spec.len());
    let covered: Vec<&str> = KIT
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("/// SPEC "))
        .flat_map(tags_in)
        .collect();
    let listed: Vec<&str> = NOT_COVERED.iter().map(|(tag, _)| *tag).collect();
    for tag in &spec {
        assert!(
            covered.contains(tag) != listed.contains(tag),
            "{tag}: must be either checked by a test or listed in NOT_COVERED (not both)"
        );
    }
    let cited = covered
        .iter()
        .chain(&listed)
        .copied()
        .chain(GUESTS.into_iter().flat_map(tags_in));
    for tag in cited {
        assert!(spec.contains(&tag), "{tag} is not a rule of SPEC.md");
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Module shape
// ---------------------------------------------------------------------------------------------

/// SPEC R-shape-core: a core module in the binary format, WebAssembly 2.0 features allowed;
/// anything the engine cannot validate is `InvalidWasm`.
#[test]
fn r_shape_core_binary_core_module() {
    let host = host();
    let valid = module(&format!("{MARKER} {ENTRY} {MEMORY}"));
    let ill_typed = module(&format!(
        r#"{MARKER} (func (export "pricing_quote") (result i32) (i64.const 0)) {MEMORY}"#
    ));
    let not_core: [(&str, &[u8]); 5] = [
        ("a component", b"\0asm\x0d\x00\x01\x00"),
        ("binary format version 2", b"\0asm\x02\x00\x00\x00"),
        ("text, not binary", b"(module)"),
        ("truncated", &valid[..valid.len() - 1]),
        ("ill-typed", &ill_typed),
    ];
    for (what, bytes) in not_core {
        let err = refused(&host, bytes);
        assert!(
            matches!(err, LoadError::InvalidWasm(_)),
            "R-shape-core, {what}: {err:?}"
        );
    }

    // Multi-value, non-trapping float-to-int, sign extension, SIMD, bulk memory, reference types.
    let body = "(drop (i32.trunc_sat_f32_s (f32.const 1e10)))
                (drop (i32.extend8_s (i32.const 0x80)))
                (drop (i32x4.extract_lane 0 (v128.const i32x4 1 2 3 4)))
                (memory.fill (i32.const 0) (i32.const 0) (i32.const 0))
                (drop (ref.is_null (ref.null func)))
                (call $pair) (drop)";
    let features = guest(
        body,
        "(func $pair (result i32 i32) (i32.const 1) (i32.const 0))",
        1,
    );
    assert_eq!(
        plugin(&host, &features).call(&[]),
        Err(CallError::Refused(String::new())),
        "R-shape-core: a guest using WebAssembly 2.0 features loads and runs"
    );
}

/// SPEC R-shape-marker: exactly one `zhtp_abi_v…` export, the function `zhtp_abi_v1` of type
/// `() -> ()`, the version spelled exactly `1`.
#[test]
fn r_shape_marker_exactly_one_v1_function() {
    let host = host();
    let with = |markers: &str| module(&format!("{markers} {ENTRY} {MEMORY}"));

    // No marker: the prefix is exact and case-sensitive.
    for markers in [
        "",
        r#"(func (export "ZHTP_ABI_V1"))"#,
        r#"(func (export "zhtp_abi_1"))"#,
        r#"(func (export "abi_v1"))"#,
    ] {
        let err = refused(&host, &with(markers));
        assert!(
            matches!(err, LoadError::MissingMarker { min: 1, max: 1 }),
            "R-shape-marker, {markers:?}: {err:?}"
        );
    }

    // Two or more: every export starting with the prefix counts, whatever its kind.
    for (markers, names) in [
        (
            r#"(func (export "zhtp_abi_v1")) (func (export "zhtp_abi_v2"))"#,
            ["zhtp_abi_v1", "zhtp_abi_v2"],
        ),
        (
            r#"(func (export "zhtp_abi_v1")) (global (export "zhtp_abi_v1x") i32 (i32.const 0))"#,
            ["zhtp_abi_v1", "zhtp_abi_v1x"],
        ),
    ] {
        match refused(&host, &with(markers)) {
            LoadError::MultipleMarkers(found) => assert!(
                names.iter().all(|n| found.contains(n)),
                "R-shape-marker: {found:?} names {names:?}"
            ),
            other => panic!("R-shape-marker, {markers:?}: {other:?}"),
        }
    }

    // Another version, or 1 not spelled `1`: named, with the supported range.
    for found in [
        "zhtp_abi_v2",
        "zhtp_abi_v0",
        "zhtp_abi_v01",
        "zhtp_abi_v+1",
        "zhtp_abi_v1.0",
        "zhtp_abi_v1 ",
        "zhtp_abi_v",
    ] {
        let err = refused(&host, &with(&format!(r#"(func (export "{found}"))"#)));
        assert!(
            err.to_string().contains("v1..=v1"),
            "R-shape-marker: {err} names the supported range"
        );
        match err {
            LoadError::UnsupportedVersion {
                found: f,
                min: 1,
                max: 1,
            } => assert_eq!(f, found, "R-shape-marker"),
            other => panic!("R-shape-marker, {found:?}: {other:?}"),
        }
    }

    // `zhtp_abi_v1`, but not a `() -> ()` function.
    for fields in [
        format!(r#"(global (export "zhtp_abi_v1") i32 (i32.const 1)) {ENTRY} {MEMORY}"#),
        format!(r#"(func (export "zhtp_abi_v1") (param i32)) {ENTRY} {MEMORY}"#),
        format!(r#"(func (export "zhtp_abi_v1") (result i32) (i32.const 1)) {ENTRY} {MEMORY}"#),
        format!(r#"{ENTRY} (memory (export "memory") (export "zhtp_abi_v1") 1)"#),
    ] {
        let err = refused(&host, &module(&fields));
        assert!(
            matches!(
                err,
                LoadError::MissingExport {
                    name: "zhtp_abi_v1",
                    expected: "func () -> ()",
                    ..
                }
            ),
            "R-shape-marker, {fields}: {err:?}"
        );
    }
}

/// SPEC R-shape-exports-other, R-shape-marker-uncalled: other exports are ignored; the host
/// never calls `_start`, `_initialize`, `main` or the marker (every one of them traps here).
#[test]
fn r_shape_exports_other_ignored_and_marker_never_called() {
    let host = host();
    let p = pricing(&host, &wasm(EXPORTS_OTHER));
    for call in 1..=2 {
        let q = p
            .quote_only(&golden_request())
            .unwrap_or_else(|e| panic!("R-shape-exports-other, call {call}: {e}"));
        assert_eq!((q.base, q.total), (100, 117));
    }
    p.self_check()
        .expect("R-shape-marker-uncalled: the self-check never calls the marker either");
}

/// SPEC R-shape-entry: a pricing guest exports `pricing_quote` of type `() -> (i32)`.
#[test]
fn r_shape_entry_pricing_quote_returns_i32() {
    let host = host();
    for entry in [
        "",
        r#"(func (export "pricing_quote"))"#,
        r#"(func (export "pricing_quote") (param i32) (result i32) (i32.const 1))"#,
        r#"(func (export "pricing_quote") (result i64) (i64.const 1))"#,
        r#"(func (export "pricing_quote") (result i32 i32) (i32.const 1) (i32.const 1))"#,
        r#"(func (export "pricing_quote") (result f32) (f32.const 1))"#,
        r#"(global (export "pricing_quote") i32 (i32.const 1))"#,
        r#"(func (export "Pricing_quote") (result i32) (i32.const 1))"#,
    ] {
        let err = refused(&host, &module(&format!("{MARKER} {entry} {MEMORY}")));
        assert!(
            matches!(
                err,
                LoadError::MissingExport {
                    name: "pricing_quote",
                    expected: "func () -> i32",
                    kind: "pricing",
                }
            ),
            "R-shape-entry, {entry:?}: {err:?}"
        );
    }
}

/// SPEC R-shape-imports: any import other than a function of `zhtp:env/v1` of section 4 is
/// refused with `ForbiddenImport`, naming it and listing the allowed ones.
#[test]
fn r_shape_imports_forbidden() {
    let host = host();
    let exported_import = r#"(export "memory" (memory 0))"#;
    for (import, module_name, name, memory) in [
        (
            r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32)
                (result i32)))"#,
            "wasi_snapshot_preview1",
            "fd_write",
            MEMORY,
        ),
        (
            r#"(import "zhtp:env/v1" "input_write" (func (param i32 i32) (result i32)))"#,
            "zhtp:env/v1",
            "input_write",
            MEMORY,
        ),
        (
            r#"(import "zhtp:env/v2" "input_len" (func (result i32)))"#,
            "zhtp:env/v2",
            "input_len",
            MEMORY,
        ),
        (
            r#"(import "ZHTP:ENV/V1" "input_len" (func (result i32)))"#,
            "ZHTP:ENV/V1",
            "input_len",
            MEMORY,
        ),
        (
            r#"(import "zhtp:kv/v1" "get" (func (param i32 i32) (result i32)))"#,
            "zhtp:kv/v1",
            "get",
            MEMORY,
        ),
        (
            r#"(import "env" "abort" (func (param i32 i32 i32)))"#,
            "env",
            "abort",
            MEMORY,
        ),
        (
            r#"(import "zhtp:env/v1" "input_len" (global i32))"#,
            "zhtp:env/v1",
            "input_len",
            MEMORY,
        ),
        (
            r#"(import "zhtp:env/v1" "log" (table 1 funcref))"#,
            "zhtp:env/v1",
            "log",
            MEMORY,
        ),
        (
            r#"(import "env" "memory" (memory 1))"#,
            "env",
            "memory",
            exported_import,
        ),
        (
            r#"(import "zhtp:env/v1" "memory" (memory 1))"#,
            "zhtp:env/v1",
            "memory",
            exported_import,
        ),
    ] {
        let err = refused(
            &host,
            &module(&format!("{import} {MARKER} {ENTRY} {memory}")),
        );
        let text = err.to_string();
        match err {
            LoadError::ForbiddenImport {
                module: m,
                name: n,
                kind: "pricing",
                ..
            } => assert_eq!(
                (m.as_str(), n.as_str()),
                (module_name, name),
                "R-shape-imports"
            ),
            other => panic!("R-shape-imports, {import}: {other:?}"),
        }
        for (allowed, _) in ENV {
            assert!(
                text.contains(&format!("zhtp:env/v1::{allowed}")),
                "R-shape-imports: {text:?} lists the allowed imports"
            );
        }
    }
}

/// SPEC R-shape-imports, R-fn-abort: a function of `zhtp:env/v1` declared with another
/// signature is refused with `ImportSignature` (`abort` has no result).
#[test]
fn r_shape_imports_signature() {
    let host = host();
    for (name, ty, expected, found) in [
        (
            "input_len",
            "(func (param i32) (result i32))",
            "() -> (i32)",
            "(i32) -> (i32)",
        ),
        ("input_len", "(func)", "() -> (i32)", "() -> ()"),
        (
            "input_read",
            "(func (param i32 i32))",
            "(i32, i32) -> (i32)",
            "(i32, i32) -> ()",
        ),
        (
            "input_read",
            "(func (param i64 i32) (result i32))",
            "(i32, i32) -> (i32)",
            "(i64, i32) -> (i32)",
        ),
        (
            "output_set",
            "(func (param i32 i32) (result i64))",
            "(i32, i32) -> (i32)",
            "(i32, i32) -> (i64)",
        ),
        (
            "log",
            "(func (param i32 i32) (result i32))",
            "(i32, i32, i32) -> (i32)",
            "(i32, i32) -> (i32)",
        ),
        (
            "abort",
            "(func (param i32 i32 i32) (result i32))",
            "(i32, i32, i32) -> ()",
            "(i32, i32, i32) -> (i32)",
        ),
        (
            "abort",
            "(func (param f32 i32 i32))",
            "(i32, i32, i32) -> ()",
            "(f32, i32, i32) -> ()",
        ),
    ] {
        let import = format!(r#"(import "zhtp:env/v1" "{name}" {ty})"#);
        match refused(
            &host,
            &module(&format!("{import} {MARKER} {ENTRY} {MEMORY}")),
        ) {
            LoadError::ImportSignature {
                module: m,
                name: n,
                expected: e,
                found: f,
            } => assert_eq!(
                (m.as_str(), n.as_str(), e.as_str(), f.as_str()),
                ("zhtp:env/v1", name, expected, found),
                "R-shape-imports"
            ),
            other => panic!("R-shape-imports, {import}: {other:?}"),
        }
    }
}

/// SPEC R-shape-imports-subset, R-call-status-1: any subset of the five functions is valid, none
/// included, and a function may be imported twice.
#[test]
fn r_shape_imports_subset_any_of_the_five() {
    let host = host();
    for subset in 0..32_u32 {
        let imports = ENV
            .iter()
            .enumerate()
            .filter(|(i, _)| subset & (1 << i) != 0)
            .map(|(_, (name, ty))| format!(r#"(import "zhtp:env/v1" "{name}" {ty})"#))
            .collect::<Vec<_>>()
            .join(" ");
        let p = plugin(
            &host,
            &module(&format!("{imports} {MARKER} {ENTRY} {MEMORY}")),
        );
        assert_eq!(
            p.call(&[]),
            Err(CallError::Refused(String::new())),
            "R-shape-imports-subset: {imports:?}"
        );
    }

    let twice = module(
        r#"(import "zhtp:env/v1" "output_set" (func $a (param i32 i32) (result i32)))
           (import "zhtp:env/v1" "output_set" (func $b (param i32 i32) (result i32)))
           (memory (export "memory") 1)
           (data (i32.const 0) "ab")
           (func (export "zhtp_abi_v1"))
           (func (export "pricing_quote") (result i32)
             (drop (call $a (i32.const 0) (i32.const 1)))
             (drop (call $b (i32.const 0) (i32.const 2)))
             (i32.const 1))"#,
    );
    assert_eq!(
        plugin(&host, &twice).call(&[]),
        Err(CallError::Refused("ab".into())),
        "R-shape-imports-subset: the same function imported twice"
    );
}

/// SPEC R-shape-memory, R-limit-memory: exactly one defined memory, exported as `memory`, its
/// initial size at most the cap (here 4 MiB = 64 pages).
#[test]
fn r_shape_memory_one_exported_within_the_cap() {
    let host = host();
    assert_eq!(TEST_MEMORY, 64 * PAGE, "the test host's memory cap");
    for (what, memory) in [
        ("no memory", ""),
        ("not exported", "(memory 1)"),
        (
            "exported under another name",
            r#"(memory (export "mem") 1)"#,
        ),
        (
            "`memory` is a global",
            r#"(memory 1) (global (export "memory") i32 (i32.const 0))"#,
        ),
        ("initially over the cap", r#"(memory (export "memory") 65)"#),
    ] {
        let err = refused(&host, &module(&format!("{MARKER} {ENTRY} {memory}")));
        assert!(
            matches!(err, LoadError::Memory(_)),
            "R-shape-memory, {what}: {err:?}"
        );
    }

    let two = module(&format!("{MARKER} {ENTRY} {MEMORY} (memory 1)"));
    let err = refused(&host, &two);
    assert!(
        matches!(err, LoadError::InvalidWasm(_)),
        "R-shape-memory, two memories: {err:?}"
    );

    // 64-bit and shared memories are refused; whether as `Memory` or, by an engine that does not
    // validate them (neither is WebAssembly 2.0, R-shape-core), as `InvalidWasm`.
    for memory in [
        r#"(memory (export "memory") i64 1)"#,
        r#"(memory (export "memory") 1 1 shared)"#,
    ] {
        let err = refused(&host, &module(&format!("{MARKER} {ENTRY} {memory}")));
        assert!(
            matches!(err, LoadError::Memory(_) | LoadError::InvalidWasm(_)),
            "R-shape-memory, {memory}: {err:?}"
        );
    }

    for pages in [0, 64] {
        let fields = format!(r#"{MARKER} {ENTRY} (memory (export "memory") {pages})"#);
        load(&host, &module(&fields))
            .unwrap_or_else(|e| panic!("R-shape-memory: {pages} pages load: {e}"));
    }
}

/// SPEC R-shape-memory-max, R-limit-memory: a declared maximum above the cap loads; growth up to
/// the cap works, and growth past it ends the call with `MemoryLimit`, never -1.
#[test]
fn r_shape_memory_max_above_the_cap_loads_and_the_cap_wins() {
    let host = host();
    let code = wasm(MEMORY_MAX_ABOVE_CAP);
    // memory.grow 0 = 1; grow 62 from 1; grow 1 from 63 (to exactly the cap); grow 0; size.
    assert_eq!(
        record(&plugin(&host, &code), &[]),
        [1, 1, 63, 64, 64],
        "R-shape-memory-max"
    );
    assert_eq!(
        plugin(&host, &code).call(&[0]),
        Err(CallError::MemoryLimit {
            desired: 65 * PAGE,
            limit: TEST_MEMORY,
        }),
        "R-limit-memory: growth past the cap, within the declared maximum"
    );
}

/// SPEC R-shape-memory-max, R-limit-memory: within the cap, growth past the declared maximum
/// returns -1 as usual and `memory.grow 0` returns the size; past the cap the call ends.
#[test]
fn r_shape_memory_max_below_the_cap_returns_minus_one() {
    let host = host();
    let code = wasm(MEMORY_MAX_BELOW_CAP);
    assert_eq!(
        record(&plugin(&host, &code), &[]),
        [1, -1, 2, 2],
        "R-shape-memory-max"
    );
    assert_eq!(
        plugin(&host, &code).call(&[0]),
        Err(CallError::MemoryLimit {
            desired: 101 * PAGE,
            limit: TEST_MEMORY,
        }),
        "R-limit-memory: growth past the cap and the declared maximum"
    );
}

/// SPEC R-shape-table, R-limit-table: at most one table, of at most 10,000 elements initially.
#[test]
fn r_shape_table_at_most_one_within_the_cap() {
    let host = host();
    let with = |tables: &str| module(&format!("{MARKER} {ENTRY} {MEMORY} {tables}"));
    for tables in ["(table 1 funcref)", "(table 10000 funcref)"] {
        load(&host, &with(tables)).unwrap_or_else(|e| panic!("R-shape-table, {tables}: {e}"));
    }
    for tables in [
        "(table 10001 funcref)",
        "(table 1 funcref) (table 1 funcref)",
    ] {
        let err = refused(&host, &with(tables));
        assert!(
            matches!(err, LoadError::InvalidWasm(_)),
            "R-shape-table, {tables}: {err:?}"
        );
    }
}

/// SPEC R-shape-start, R-load-no-instantiate: the start function runs once per instance, when
/// the first call creates it, not at load; from it, `input_len` returns 0, `input_read`,
/// `output_set` and `log` return -1 where they would succeed, and argument errors still -4.
#[test]
fn r_shape_start_runs_once_per_instance_outside_any_call() {
    let host = host();
    let code = wasm(START);
    let p = plugin(&host, &code);
    assert_eq!(p.idle_instances(), 0, "R-load-no-instantiate");
    let in_start = Record::default()
        .results(&[0]) // input_len
        .results(&[-1, -1]) // input_read(0, 4), input_read(0, 0)
        .results(&[-4, -4]) // input_read(-1, 4), input_read(0, -1)
        .results(&[-1, -4]) // output_set(0, 4), output_set(-1, 4)
        .results(&[-1, -4, -4]); // log(1, 0, 4), log(7, 0, 4), log(1, -1, 4)
    for call in 1..=3 {
        let expected = Record::default().results(&[1, call]).results(&in_start.0);
        assert_eq!(
            record(&p, &[]),
            expected.0,
            "R-shape-start: [start runs, calls, results in start] at call {call}"
        );
    }
    // Another plugin of the same module has its own instances: its start function runs again.
    assert_eq!(
        record(&plugin(&host, &code), &[])[..2],
        [1, 1],
        "R-shape-start"
    );
}

/// SPEC R-shape-start, R-load-no-instantiate, R-limit-time: a start function runs under the
/// call limits; its failure fails the call that created the instance (`Instantiate` for a trap),
/// and the module still loads.
#[test]
fn r_shape_start_failure_fails_the_call_that_created_the_instance() {
    let host = host();
    let first_call = |init: &str| {
        let extra = format!("(func $init {init}) (start $init)");
        let p = plugin(&host, &guest("(i32.const 1)", &extra, 1));
        assert_eq!(p.idle_instances(), 0, "R-load-no-instantiate: {init}");
        p.call(&[])
            .expect_err("R-shape-start: the start function fails")
    };
    let trap = first_call("unreachable");
    assert!(
        matches!(trap, CallError::Instantiate(_)),
        "R-shape-start: {trap:?}"
    );
    assert_eq!(
        first_call("(call $abort (i32.const 5) (i32.const 0) (i32.const 4))"),
        CallError::Aborted {
            code: 5,
            message: "<message unreadable: OutOfBounds>".into(),
        },
        "R-shape-start: abort before the memory is attached"
    );
    assert_eq!(
        first_call("(call $abort (i32.const 6) (i32.const -1) (i32.const 4))"),
        CallError::Aborted {
            code: 6,
            message: "<message unreadable: InvalidArgument>".into(),
        },
        "R-shape-start: abort with a negative pointer"
    );
    assert_eq!(
        first_call("(drop (call $output_set (i32.const 0) (i32.const 65537)))"),
        CallError::OutputTooLarge {
            len: 65_537,
            max: 65_536,
        },
        "R-shape-start: an output_set over 64 KiB still ends it"
    );
    assert_eq!(
        first_call("(drop (memory.grow (i32.const 64)))"),
        CallError::MemoryLimit {
            desired: 65 * PAGE,
            limit: TEST_MEMORY,
        },
        "R-shape-start: the memory cap"
    );
    assert_eq!(
        first_call("(call $init)"),
        CallError::StackOverflow,
        "R-shape-start: the stack cap"
    );
    assert_eq!(
        first_call("(loop (br 0))"),
        timeout(),
        "R-limit-time: instantiation has a time limit"
    );
}

// ---------------------------------------------------------------------------------------------
// Metadata
// ---------------------------------------------------------------------------------------------

/// SPEC R-meta-optional: the `zhtp.meta` name is the plugin's and is attached to every quote.
#[test]
fn r_meta_optional_names_the_plugin_and_its_quotes() {
    let host = host();
    let code = spec_example();
    let p = pricing(&host, &code);
    assert_eq!(
        p.plugin().info().name,
        "hand-priced@1.0.0",
        "R-meta-optional"
    );
    let q = p.quote(&golden_request()).expect("the spec example prices");
    assert_eq!(q.plugin, "hand-priced@1.0.0", "R-meta-optional");
    assert_eq!(q.plugin_hash.as_bytes(), blake3::hash(&code).as_bytes());
}

/// SPEC R-meta-default: without `zhtp.meta`, `unnamed@` and the first 10 hex digits of the
/// BLAKE3 hash of the module's bytes.
#[test]
fn r_meta_default_is_unnamed_and_the_hash() {
    let host = host();
    let code = module(&format!("{MARKER} {ENTRY} {MEMORY}"));
    let expected = format!("unnamed@{}", &blake3::hash(&code).to_hex()[..10]);
    assert_eq!(plugin(&host, &code).info().name, expected, "R-meta-default");
    // A section with another name is not the metadata.
    let other = with_custom(&code, "zhtp.metadata", b"not@this");
    let expected = format!("unnamed@{}", &blake3::hash(&other).to_hex()[..10]);
    assert_eq!(
        plugin(&host, &other).info().name,
        expected,
        "R-meta-default"
    );
}

/// SPEC R-meta-format: at most 128 bytes of UTF-8 without control characters, `name@version`
/// split at the last `@`, both parts non-empty.
#[test]
fn r_meta_format() {
    let host = host();
    let base = module(&format!("{MARKER} {ENTRY} {MEMORY}"));
    let at_limit = format!("{}@1", "x".repeat(126));
    for meta in [
        "kit@1.0.0",
        "n@v",
        "a@b@c",
        "@scope/pkg@1.0",
        "prix-β@2.0.0-rc.1",
        "two words@1 2",
        "nbsp\u{a0}@1",
        at_limit.as_str(),
    ] {
        let p = load(&host, &with_custom(&base, "zhtp.meta", meta.as_bytes()))
            .unwrap_or_else(|e| panic!("R-meta-format: {meta:?} is well-formed: {e}"));
        assert_eq!(p.info().name, meta, "R-meta-format");
    }

    let too_long = format!("{}@1", "x".repeat(127));
    let bad: [&[u8]; 15] = [
        b"",
        b"@",
        b"a@",
        b"@1",
        b"no-version",
        b"a\n@1",
        b"a@1\t",
        b"\0a@1",
        b"a\x7f@1",
        "a\u{85}@1".as_bytes(),
        "a\u{9f}@1".as_bytes(),
        too_long.as_bytes(),
        b"\xff@1",
        b"a@\xc3",
        b"a@1\xed\xa0\x80",
    ];
    for meta in bad {
        let err = refused(&host, &with_custom(&base, "zhtp.meta", meta));
        assert!(
            matches!(err, LoadError::BadMeta(_)),
            "R-meta-format, {:?}: {err:?}",
            String::from_utf8_lossy(meta)
        );
    }
}

/// SPEC R-meta-single: at most one `zhtp.meta` section, even when both say the same.
#[test]
fn r_meta_single_section() {
    let host = host();
    let once = with_custom(
        &module(&format!("{MARKER} {ENTRY} {MEMORY}")),
        "zhtp.meta",
        b"kit@1",
    );
    load(&host, &once).expect("R-meta-single: one section");
    let err = refused(&host, &with_custom(&once, "zhtp.meta", b"kit@1"));
    assert!(
        matches!(err, LoadError::BadMeta(_)),
        "R-meta-single: {err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Loading
// ---------------------------------------------------------------------------------------------

/// SPEC R-load-order, R-limit-code: a module with two problems is refused for the one checked
/// first.
#[test]
fn r_load_order_reports_the_first_failure() {
    let host = host();
    let wasi = r#"(import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))"#;
    let bad_signature = r#"(import "zhtp:env/v1" "input_len" (func (param i64) (result i32)))"#;
    let ill_typed_entry = r#"(func (export "pricing_quote") (result i32) (i64.const 0))"#;
    let big_memory = r#"(memory (export "memory") 65)"#;

    // 1. size, before the magic number.
    let junk = vec![0xff; Limits::DEFAULT_CODE_SIZE + 1];
    let err = refused(&host, &junk);
    assert!(
        matches!(err, LoadError::TooLarge { .. }),
        "1 before 2: {err:?}"
    );

    // 3. one pass over the sections in file order: a bad zhtp.meta before the memory section
    // is reported, after it the memory is.
    let over_cap = module(&format!("{MARKER} {ENTRY} {big_memory}"));
    let err = refused(&host, &with_custom_first(&over_cap, "zhtp.meta", b"@"));
    assert!(
        matches!(err, LoadError::BadMeta(_)),
        "3, meta first: {err:?}"
    );
    let err = refused(&host, &with_custom(&over_cap, "zhtp.meta", b"@"));
    assert!(
        matches!(err, LoadError::Memory(_)),
        "3, memory first: {err:?}"
    );

    // 3 before 4: the section pass before validation.
    let ill_typed = module(&format!("{MARKER} {ill_typed_entry} {MEMORY}"));
    let err = refused(&host, &with_custom(&ill_typed, "zhtp.meta", b"@"));
    assert!(matches!(err, LoadError::BadMeta(_)), "3 before 4: {err:?}");
    let err = refused(
        &host,
        &module(&format!("{MARKER} {ill_typed_entry} {big_memory}")),
    );
    assert!(matches!(err, LoadError::Memory(_)), "3 before 4: {err:?}");

    // 4 before 5: validation before the marker.
    let err = refused(&host, &module(&format!("{ill_typed_entry} {MEMORY}")));
    assert!(
        matches!(err, LoadError::InvalidWasm(_)),
        "4 before 5: {err:?}"
    );

    // 5 before 6: the marker before the imports.
    let err = refused(&host, &module(&format!("{wasi} {ENTRY} {MEMORY}")));
    assert!(
        matches!(err, LoadError::MissingMarker { .. }),
        "5 before 6: {err:?}"
    );
    let two_markers = r#"(func (export "zhtp_abi_v1")) (func (export "zhtp_abi_v2"))"#;
    let err = refused(&host, &module(&format!("{wasi} {two_markers}")));
    assert!(
        matches!(err, LoadError::MultipleMarkers(_)),
        "5 before 6 and 7: {err:?}"
    );

    // 6: the imports in declaration order.
    let err = refused(
        &host,
        &module(&format!("{wasi} {bad_signature} {MARKER} {ENTRY} {MEMORY}")),
    );
    assert!(
        matches!(err, LoadError::ForbiddenImport { .. }),
        "6, forbidden first: {err:?}"
    );
    let err = refused(
        &host,
        &module(&format!("{bad_signature} {wasi} {MARKER} {ENTRY} {MEMORY}")),
    );
    assert!(
        matches!(err, LoadError::ImportSignature { .. }),
        "6, signature first: {err:?}"
    );

    // 6 before 7: the imports before the entry.
    let err = refused(&host, &module(&format!("{wasi} {MARKER} {MEMORY}")));
    assert!(
        matches!(err, LoadError::ForbiddenImport { .. }),
        "6 before 7: {err:?}"
    );

    // 7 before 8: the entry before the memory export.
    let err = refused(&host, &module(MARKER));
    assert!(
        matches!(
            err,
            LoadError::MissingExport {
                name: "pricing_quote",
                ..
            }
        ),
        "7 before 8: {err:?}"
    );
}

/// SPEC R-load-no-instantiate: loading never runs guest code; a start function that never
/// returns runs (and times out) only in the first call.
#[test]
fn r_load_no_instantiate() {
    let host = host();
    let p = plugin(
        &host,
        &guest(
            "(i32.const 1)",
            "(func $init (loop (br 0))) (start $init)",
            1,
        ),
    );
    assert_eq!(p.idle_instances(), 0, "R-load-no-instantiate");
    assert_eq!(p.call(&[]), Err(timeout()), "R-load-no-instantiate");
}

// ---------------------------------------------------------------------------------------------
// 3. Calls
// ---------------------------------------------------------------------------------------------

/// SPEC R-call-registers: every call starts with its own request as input and an empty, unset
/// output; nothing of an earlier call's input or output shows.
#[test]
fn r_call_registers_are_fresh_each_call() {
    let host = host();
    let p = pricing(&host, &wasm(STATE));
    let q = p.quote_only(&golden_request()).expect("answers");
    assert_eq!(
        q.max_bonus, 12,
        "R-call-registers: input_len of a 12-byte request"
    );
    let q = p.quote_only(&days(1)).expect("answers");
    assert_eq!(
        counters(&q),
        (2, 2, 3, 3, 8),
        "R-call-registers: the same instance, an 8-byte request"
    );
    assert_eq!(
        p.quote_only(&days(13)),
        Err(CallError::Refused(String::new())),
        "R-call-registers: the previous call's output is not this call's"
    );
    assert_eq!(p.plugin().idle_instances(), 1);
    assert_eq!(
        p.quote_only(&days(4)),
        Err(CallError::NoOutput),
        "R-call-registers: the output starts unset"
    );

    // input_read sees only this call's input, on an instance whose memory still holds the last.
    let echo = plugin(&host, &wasm(ECHO_HEX));
    assert_eq!(
        echo.call(b"hello world"),
        Err(CallError::Refused(hex::encode("hello world")))
    );
    assert_eq!(echo.idle_instances(), 1);
    assert_eq!(
        echo.call(b"hi"),
        Err(CallError::Refused("6869".into())),
        "R-call-registers"
    );
}

/// SPEC R-call-status-0: status 0 with an output: the output is the response. `Plugin::call`
/// returns it as is; a pricing call requires a valid `Quote`.
#[test]
fn r_call_status_0_the_output_is_the_response() {
    let host = host();
    let body = "(drop (call $output_set (i32.const 16) (i32.const 11))) (i32.const 0)";
    let p = plugin(
        &host,
        &guest(body, r#"(data (i32.const 16) "not a quote")"#, 1),
    );
    assert_eq!(p.call(&[]), Ok(b"not a quote".to_vec()), "R-call-status-0");
    assert_eq!(
        out_check(
            &PricingPlugin::new(p)
                .quote_only(&golden_request())
                .unwrap_err()
        ),
        OutCheck::Decode,
        "R-call-status-0"
    );
    let q = answering(&host, &COMPAT_QUOTE)
        .quote(&golden_request())
        .expect("R-call-status-0: a valid Quote");
    assert_eq!(
        (q.quote.base, q.quote.total, q.quote.adjustments.len()),
        (100, 117, 0)
    );
}

/// SPEC R-call-no-output, R-fn-output_set: status 0 without a successful `output_set` is
/// `NoOutput`; an `output_set` of length 0 counts as set, to an empty output.
#[test]
fn r_call_no_output() {
    let host = host();
    let p = plugin(&host, &guest("(i32.const 0)", "", 1));
    assert_eq!(p.call(&[]), Err(CallError::NoOutput), "R-call-no-output");

    let probe = plugin(&host, &wasm(FN_OUTPUT_SET));
    // Case 4: only a failing output_set.
    assert_eq!(
        probe.call(&[0; 4]),
        Err(CallError::NoOutput),
        "R-call-no-output"
    );

    let empty = "(drop (call $output_set (i32.const 16) (i32.const 0))) (i32.const 0)";
    let p = plugin(&host, &guest(empty, "", 1));
    assert_eq!(
        p.call(&[]),
        Ok(Vec::new()),
        "R-call-no-output: empty is set"
    );
    assert_eq!(
        out_check(
            &PricingPlugin::new(p)
                .quote_only(&golden_request())
                .unwrap_err()
        ),
        OutCheck::Decode,
        "R-call-no-output: an empty output fails to decode"
    );
}

/// SPEC R-call-status-1, R-limit-io: status 1 is a refusal; its reason is the first 1,024 bytes
/// of the output, lossy UTF-8, empty when there is no output.
#[test]
fn r_call_status_1_reason() {
    let host = host();
    let refusal = |len: usize, data: &[u8]| {
        let body =
            format!("(drop (call $output_set (i32.const 16) (i32.const {len}))) (i32.const 1)");
        let data = format!(r#"(data (i32.const 16) "{}")"#, wat_bytes(data));
        plugin(&host, &guest(&body, &data, 1)).call(&[])
    };
    let refused_with = |reason: &str| Err(CallError::Refused(reason.into()));

    assert_eq!(
        plugin(&host, &guest("(i32.const 1)", "", 1)).call(&[]),
        refused_with(""),
        "R-call-status-1: no output"
    );
    assert_eq!(
        refusal(0, b""),
        refused_with(""),
        "R-call-status-1: empty output"
    );
    assert_eq!(refusal(2, b"no"), refused_with("no"), "R-call-status-1");
    assert_eq!(
        refusal(2, b"\xff\xfe"),
        refused_with("\u{fffd}\u{fffd}"),
        "R-call-status-1: invalid UTF-8"
    );
    let long = "a".repeat(2000);
    assert_eq!(
        refusal(2000, long.as_bytes()),
        refused_with(&long[..1024]),
        "R-call-status-1: the first 1,024 bytes"
    );
    let fits = format!("{}é", "a".repeat(1022));
    assert_eq!(
        refusal(1024, fits.as_bytes()),
        refused_with(&fits),
        "R-call-status-1: exactly 1,024 bytes"
    );
    let cut = format!("{}é", "a".repeat(1023));
    assert_eq!(
        refusal(1025, cut.as_bytes()),
        refused_with(&format!("{}\u{fffd}", "a".repeat(1023))),
        "R-call-status-1: a character cut at byte 1,024"
    );

    // The typed call reports the same refusal.
    let body = "(drop (call $output_set (i32.const 16) (i32.const 2))) (i32.const 1)";
    let p = pricing(&host, &guest(body, r#"(data (i32.const 16) "no")"#, 1));
    assert_eq!(
        p.quote_only(&golden_request()),
        Err(CallError::Refused("no".into()))
    );
}

/// SPEC R-call-status-other: any status but 0 and 1 is `BadStatus`, including a negative
/// status passed on from a host function.
#[test]
fn r_call_status_other_is_bad_status() {
    let host = host();
    for status in [2, 3, -1, -2, -3, -4, -5, 100, i32::MIN, i32::MAX] {
        let p = plugin(&host, &guest(&format!("(i32.const {status})"), "", 1));
        assert_eq!(
            p.call(&[]),
            Err(CallError::BadStatus(status)),
            "R-call-status-other"
        );
    }
    let passed_on = guest("(call $output_set (i32.const -1) (i32.const 0))", "", 1);
    assert_eq!(
        plugin(&host, &passed_on).call(&[]),
        Err(CallError::BadStatus(-4)),
        "R-call-status-other: passed on from output_set"
    );
}

/// SPEC R-call-ended: a trap, a limit, `abort` or an oversized `output_set` ends a call without
/// a status; an output set before is ignored, and other plugins are not affected.
#[test]
fn r_call_ended_without_a_status() {
    let host = host();
    let set = "(drop (call $output_set (i32.const 16) (i32.const 7)))";
    let data = format!(r#"(data (i32.const 16) "{}")"#, wat_bytes(&COMPAT_QUOTE));
    let ended = |then: &str| {
        let p = pricing(&host, &guest(&format!("{set} {then}"), &data, 1));
        p.quote_only(&golden_request())
            .expect_err("R-call-ended: the call ends without a status")
    };

    for (then, trap) in [
        ("(unreachable)", "unreachable"),
        ("(i32.load (i32.const 65536))", "out of bounds"),
        ("(i32.div_u (i32.const 1) (i32.const 0))", "divide by zero"),
    ] {
        match ended(then) {
            CallError::Trap(msg) => assert!(msg.contains(trap), "R-call-ended: {msg:?}"),
            other => panic!("R-call-ended, {then}: {other:?}"),
        }
    }
    assert_eq!(
        ended("(call $abort (i32.const 3) (i32.const 16) (i32.const 0)) (i32.const 0)"),
        CallError::Aborted {
            code: 3,
            message: String::new(),
        },
        "R-call-ended: abort"
    );
    assert_eq!(
        ended("(drop (call $output_set (i32.const 0) (i32.const 65537))) (i32.const 0)"),
        CallError::OutputTooLarge {
            len: 65_537,
            max: 65_536,
        },
        "R-call-ended: an output_set over 64 KiB"
    );
    assert_eq!(
        ended("(loop (br 0)) (i32.const 0)"),
        timeout(),
        "R-call-ended: a limit"
    );
    assert_serves(&standard(&host));
}

// ---------------------------------------------------------------------------------------------
// 3.2 Instances
// ---------------------------------------------------------------------------------------------

/// SPEC R-state-persist: on a reused instance, globals, memory contents, memory size and tables
/// persist from one call to the next.
#[test]
fn r_state_persist_across_calls_on_one_instance() {
    let host = host();
    let p = pricing(&host, &wasm(STATE));
    for call in 1..=3 {
        let q = p
            .quote_only(&days(1))
            .unwrap_or_else(|e| panic!("call {call}: {e}"));
        assert_eq!(
            counters(&q),
            (call, call, call + 1, call + 1, 8),
            "R-state-persist: (global, memory word, pages, table size) at call {call}"
        );
        assert_eq!(p.plugin().idle_instances(), 1, "R-state-persist");
    }
}

/// SPEC R-state-discard, R-call-ended, R-call-status-other, R-call-no-output, R-limit-stack:
/// an instance is kept after a success or a refusal and discarded after anything else: the next
/// call gets a fresh instance, whose counters start again.
#[test]
fn r_state_discard_after_an_abi_break_kept_after_a_refusal() {
    let host = host();
    let p = pricing(&host, &wasm(STATE));
    let calls = || {
        p.quote_only(&days(1))
            .expect("the ordinary case answers")
            .base
    };
    assert_eq!((calls(), calls()), (1, 2));
    assert_eq!(p.quote_only(&days(2)), Err(CallError::Refused("no".into())));
    assert_eq!(
        p.quote_only(&days(13)),
        Err(CallError::Refused(String::new()))
    );
    assert_eq!(
        p.plugin().idle_instances(),
        1,
        "R-state-discard: kept after a refusal"
    );
    assert_eq!(
        calls(),
        5,
        "R-state-discard: the refusals' instance served on"
    );

    // Each case of `state.wat` that breaks the ABI, and the error it must end with.
    type Ends = fn(&CallError) -> bool;
    let discarded: [(u32, Ends); 10] = [
        (3, |e| *e == CallError::BadStatus(2)),
        (10, |e| *e == CallError::BadStatus(-1)),
        (4, |e| *e == CallError::NoOutput),
        (6, |e| matches!(e, CallError::BadOutput(_))),
        (
            5,
            |e| matches!(e, CallError::Trap(m) if m.contains("unreachable")),
        ),
        (7, |e| {
            *e == CallError::Aborted {
                code: 7,
                message: "bye".into(),
            }
        }),
        (8, |e| {
            matches!(e, CallError::OutputTooLarge { len: 65_537, .. })
        }),
        (9, |e| *e == timeout()),
        (
            11,
            |e| matches!(e, CallError::MemoryLimit { limit, .. } if *limit == TEST_MEMORY),
        ),
        (12, |e| *e == CallError::StackOverflow),
    ];
    for (case, expected) in discarded {
        calls(); // an instance that served a call is idle: the case runs on it
        let err = p
            .quote_only(&days(case))
            .expect_err("the case breaks the ABI");
        assert!(expected(&err), "case {case}: {err:?}");
        assert_eq!(
            p.plugin().idle_instances(),
            0,
            "R-state-discard: the instance of a call that ended in {err:?} was kept"
        );
        // Memory included: the fresh instance likely takes the discarded one's pool slot.
        let fresh = p.quote_only(&days(1)).expect("a fresh instance answers");
        assert_eq!(
            counters(&fresh),
            (1, 1, 2, 2, 8),
            "R-state-discard: after {err:?} the next call needs a fresh instance, memory included"
        );
    }
}

/// SPEC R-state-exclusive, R-limit-instances: concurrent calls run on different instances, each
/// serving one call at a time; at most 8 instances are kept idle.
#[test]
fn r_state_exclusive_concurrent_calls_never_share_an_instance() {
    // Twelve threads on however few cores: a generous time limit, so that a thread preempted
    // in the middle of a call cannot fail it (time is not what this test is about).
    let host = Host::new(Limits::default().with_call_timeout(std::time::Duration::from_secs(30)))
        .expect("host");
    let p = pricing(&host, &wasm(CONCURRENT));
    std::thread::scope(|s| {
        for thread in 0..12_u32 {
            let p = &p;
            s.spawn(move || {
                for call in 0..20 {
                    let d = 1 + thread * 10 + call % 10;
                    let q = p
                        .quote_only(&days(d))
                        .unwrap_or_else(|e| panic!("R-state-exclusive, {thread}/{call}: {e}"));
                    assert_eq!(
                        (q.base, q.total),
                        (u64::from(d), u64::from(d)),
                        "R-state-exclusive: another call wrote this instance's memory"
                    );
                }
            });
        }
    });
    let idle = p.plugin().idle_instances();
    assert!(
        (1..=8).contains(&idle),
        "R-limit-instances: {idle} idle instances; at most 8 are kept"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Host functions
// ---------------------------------------------------------------------------------------------

/// SPEC R-fn-input_len, R-fn-input_read, R-fn-input_read-offset0, R-fn-args, R-status-reserved:
/// every case of the `input_read` table, in order, with a 6-byte input (no case returns -2/-3).
#[test]
fn r_fn_input_read_cases() {
    let host = host();
    let p = plugin(&host, &wasm(FN_INPUT));
    let expected = Record::default()
        .results(&[6]) // input_len
        .results(&[-4, -4, -4]) // len < 0, whatever ptr is
        .results(&[-4, -4]) // ptr < 0, even with nothing to copy
        .results(&[-1]) // ptr + n past the end: nothing copied
        .memory(b"ZZ")
        .results(&[-1, -1]) // ptr at, or far past, the end with n = 1
        .results(&[0]) // len 0: nothing copied
        .memory(b".")
        .results(&[0]) // an empty range at the end of memory
        .results(&[6]) // len > input_len: n = 6
        .memory(b"abcdef..")
        .results(&[6]) // only n bytes need to fit
        .memory(b"abcdef")
        .results(&[2, 4]) // every read starts at byte 0
        .memory(b"ab.")
        .memory(b"abcd.")
        .results(&[6]); // the input does not change
    assert_eq!(record(&p, b"abcdef"), expected.0, "R-fn-input_read");
}

/// SPEC R-fn-input_len, R-fn-input_read, R-fn-args: with an empty input, `n` is 0 and only the
/// pointer must be valid: at most the memory size.
#[test]
fn r_fn_input_read_empty_input() {
    let host = host();
    let p = plugin(&host, &wasm(FN_INPUT));
    let expected = Record::default()
        .results(&[0])
        .results(&[-4, -4, -4, -4, -4])
        .results(&[0]) // n = 0: the empty range at 65,534 is in memory
        .memory(b"ZZ")
        .results(&[0]) // the empty range at 65,536 (the memory size) too
        .results(&[-1]) // the empty range at 2^31 - 1 is not
        .results(&[0])
        .memory(b".")
        .results(&[0])
        .results(&[0])
        .memory(b"........")
        .results(&[0])
        .memory(b"....ZZ")
        .results(&[0, 0])
        .memory(b"...")
        .memory(b".....")
        .results(&[0]);
    assert_eq!(record(&p, &[]), expected.0, "R-fn-input_read");
}

/// SPEC R-fn-input_len, R-fn-input_read, R-limit-io: the input may be 64 KiB, never more
/// (`InputTooLarge`, the host's own check).
#[test]
fn r_fn_input_len_64_kib_and_no_more() {
    let host = host();
    let p = plugin(&host, &wasm(FN_INPUT));
    let input: Vec<u8> = (b'a'..=b'z').cycle().take(64 * 1024).collect();
    let expected = Record::default()
        .results(&[65_536])
        .results(&[-4, -4, -4, -4, -4])
        .results(&[-1])
        .memory(b"ZZ")
        .results(&[-1, -1])
        .results(&[0])
        .memory(b".")
        .results(&[0])
        .results(&[100]) // len 100 < input_len: n = 100
        .memory(b"abcdefgh")
        .results(&[-1]) // 100 bytes from 65,530 do not fit
        .memory(b"....ZZ")
        .results(&[2, 4])
        .memory(b"ab.")
        .memory(b"abcd.")
        .results(&[65_536]);
    assert_eq!(record(&p, &input), expected.0, "R-fn-input_len");
    assert_eq!(
        p.call(&vec![0; 64 * 1024 + 1]),
        Err(CallError::InputTooLarge {
            len: 65_537,
            max: 65_536,
        }),
        "R-limit-io"
    );
}

/// SPEC R-fn-output_set, R-fn-args, R-status-reserved: argument errors return -4 and range
/// errors -1, and leave the output unchanged.
#[test]
fn r_fn_output_set_errors_leave_the_output_unchanged() {
    let host = host();
    let p = plugin(&host, &wasm(FN_OUTPUT_SET));
    // The input's length selects the case (see the file).
    let expected = Record::default()
        .results(&[0]) // "keep"
        .results(&[-4, -4, -4, -4]) // ptr < 0, len < 0, both, len = i32::MIN
        .results(&[-1, -1]) // past the end; an empty range past the end
        .results(&[-4]); // ptr < 0 with len 0
    assert_eq!(record(&p, &[]), expected.0, "R-fn-output_set");
    assert_eq!(
        p.call(&[0]),
        Ok(b"keep".to_vec()),
        "R-fn-output_set: failed calls leave the output unchanged"
    );
}

/// SPEC R-fn-output_set, R-fn-args, R-call-no-output: a later `output_set` replaces an earlier
/// one; a length of 0 sets an empty output; the range may end at the memory size.
#[test]
fn r_fn_output_set_replaces_and_may_be_empty() {
    let host = host();
    let p = plugin(&host, &wasm(FN_OUTPUT_SET));
    assert_eq!(p.call(&[0; 2]), Ok(b"first".to_vec()), "R-fn-output_set");
    assert_eq!(p.call(&[0; 3]), Ok(Vec::new()), "R-fn-output_set");

    // A memory of 0 pages: the empty range at 0 is in it, at 1 it is not.
    let empty = "(call $output_set (i32.const 0) (i32.const 0))";
    let p = plugin(&host, &guest(empty, "", 0));
    assert_eq!(p.call(&[]), Ok(Vec::new()), "R-fn-args: ptr = memory size");
    let past = "(call $output_set (i32.const 1) (i32.const 0))";
    let p = plugin(&host, &guest(past, "", 0));
    assert_eq!(
        p.call(&[]),
        Err(CallError::BadStatus(-1)),
        "R-fn-args: ptr past the memory size"
    );
}

/// SPEC R-fn-output_set, R-limit-io, R-call-ended: an output of exactly 64 KiB is fine; a
/// length over it ends the call with `OutputTooLarge`, whatever the pointer.
#[test]
fn r_fn_output_set_64_kib_and_no_more() {
    let host = host();
    let p = plugin(&host, &wasm(FN_OUTPUT_SET));
    let out = p.call(&[0; 5]).expect("R-fn-output_set: 65,536 bytes");
    assert_eq!(out.len(), 65_536);
    assert_eq!((&out[..4], &out[16..21]), (&b"keep"[..], &b"first"[..]));
    for (case, len) in [
        (6, 65_537),        // ptr -1
        (7, 65_537),        // a range inside memory
        (8, 65_537),        // a range past the end
        (9, 2_147_483_647), // i32::MAX
        (10, 65_537),       // after a successful output_set
    ] {
        assert_eq!(
            p.call(&vec![0; case]),
            Err(CallError::OutputTooLarge { len, max: 65_536 }),
            "R-fn-output_set, case {case}"
        );
    }
}

/// SPEC R-fn-log, R-fn-args, R-limit-io, R-status-reserved: every case of the `log` table, in
/// order; the quota of 16 lines is per call.
#[test]
fn r_fn_log_cases_and_quota() {
    let host = host();
    let p = plugin(&host, &wasm(FN_LOG));
    let expected = Record::default()
        .results(&[-4, -4]) // levels 4 and -1: not counted
        .results(&[0, 0, 0, 0]) // levels 0 to 3: lines 1-4
        .results(&[-4, -4]) // ptr < 0, len < 0: lines 5-6
        .results(&[-1]) // past the end: line 7
        .results(&[0]) // an empty line at the end of memory: line 8
        .results(&[0]) // len 5,000 from 64,512: only 1,024 bytes are read, and fit: line 9
        .results(&[-1]) // len 5,000 from 64,513: 1,024 bytes do not fit: line 10
        .results(&[-1]) // an empty range past the end: line 11
        .results(&[0, 0, 0, 0, 0]) // lines 12-16
        .results(&[-5]) // a 17th line
        .results(&[-5]) // the quota is checked before the pointer
        .results(&[-4]) // the level is checked before the quota
        .results(&[-5]);
    for call in 1..=2 {
        assert_eq!(record(&p, &[]), expected.0, "R-fn-log, call {call}");
        assert_eq!(
            p.idle_instances(),
            1,
            "R-fn-log: one instance, a fresh quota"
        );
    }
}

/// SPEC R-fn-abort, R-limit-io, R-call-ended: `abort` ends the call with its code and message,
/// read like a log line; an unreadable message is replaced, and the call still ends.
#[test]
fn r_fn_abort_code_and_message() {
    let host = host();
    let aborted = |args: &str, data: &str| {
        let body = format!("(call $abort {args}) (i32.const 0)");
        plugin(&host, &guest(&body, data, 1))
            .call(&[])
            .expect_err("abort never returns")
    };
    let abort = |code: i32, message: &str| CallError::Aborted {
        code,
        message: message.into(),
    };

    let panic = r#"(data (i32.const 16) "panic: boom!")"#;
    assert_eq!(
        aborted("(i32.const -1) (i32.const 16) (i32.const 12)", panic),
        abort(-1, "panic: boom!"),
        "R-fn-abort"
    );
    assert_eq!(
        aborted("(i32.const -2147483648) (i32.const 16) (i32.const 0)", ""),
        abort(i32::MIN, ""),
        "R-fn-abort: any code, an empty message"
    );
    let invalid = "<message unreadable: InvalidArgument>";
    let out_of_bounds = "<message unreadable: OutOfBounds>";
    for (args, message) in [
        ("(i32.const 1) (i32.const -1) (i32.const 4)", invalid),
        ("(i32.const 1) (i32.const 16) (i32.const -1)", invalid),
        (
            "(i32.const 1) (i32.const 65535) (i32.const 4)",
            out_of_bounds,
        ),
        (
            "(i32.const 1) (i32.const 65537) (i32.const 0)",
            out_of_bounds,
        ),
    ] {
        assert_eq!(aborted(args, ""), abort(1, message), "R-fn-abort: {args}");
    }
    assert_eq!(
        aborted("(i32.const 2) (i32.const 64512) (i32.const 5000)", ""),
        abort(2, &"\0".repeat(1024)),
        "R-fn-abort: only 1,024 bytes are read"
    );
    let cut = format!(r#"(data (i32.const 1000) "{}\c3\a9")"#, "a".repeat(1023));
    assert_eq!(
        aborted("(i32.const 3) (i32.const 1000) (i32.const 5000)", &cut),
        abort(3, &format!("{}\u{fffd}", "a".repeat(1023))),
        "R-fn-abort: a character cut at byte 1,024"
    );
    assert_eq!(
        aborted(
            "(i32.const 4) (i32.const 16) (i32.const 2)",
            r#"(data (i32.const 16) "\ff\fe")"#
        ),
        abort(4, "\u{fffd}\u{fffd}"),
        "R-fn-abort: lossy UTF-8"
    );

    // Usable where a call that never returns is needed.
    let fail = "(func $fail (result i32)
                  (call $abort (i32.const 9) (i32.const 0) (i32.const 0)) (unreachable))";
    let p = plugin(&host, &guest("(call $fail)", fail, 1));
    assert_eq!(p.call(&[]), Err(abort(9, "")), "R-fn-abort");
}

// ---------------------------------------------------------------------------------------------
// 5. Status codes
// ---------------------------------------------------------------------------------------------

/// SPEC R-status-table: the codes and names of the spec's table are `zhtp_abi::Status`'s.
#[test]
fn r_status_table_is_the_abi_crate_s() {
    let table = spec_between("**[R-status-table]**", "**[R-status-reserved]**");
    let rows: Vec<(i32, &str)> = table
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let code = cells.get(1)?.parse().ok()?;
            Some((code, cells.get(2)?.trim_matches('`')))
        })
        .collect();
    assert_eq!(rows.len(), 11, "R-status-table: {rows:?}");
    for (code, name) in rows {
        let status = Status::from_code(code)
            .unwrap_or_else(|| panic!("R-status-table: {code} is not a Status"));
        assert_eq!(
            (status.code(), format!("{status:?}")),
            (code, name.to_owned()),
            "R-status-table"
        );
    }
    for undefined in [2, -10, i32::MIN] {
        assert_eq!(Status::from_code(undefined), None, "R-status-table");
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Limits
// ---------------------------------------------------------------------------------------------

/// SPEC R-limit-time: a call that runs past the time limit ends with `Timeout`.
#[test]
fn r_limit_time_ends_the_call() {
    let host = host();
    let p = plugin(&host, &guest("(loop (br 0)) (i32.const 0)", "", 1));
    assert_eq!(p.call(&[]), Err(timeout()), "R-limit-time");
}

/// SPEC R-limit-code, R-load-order: a module of exactly 1 MiB loads; one byte more is refused
/// before anything is parsed.
#[test]
fn r_limit_code_size() {
    let host = host();
    let max = Limits::DEFAULT_CODE_SIZE;
    assert_eq!(max, 1 << 20);
    let base = module(&format!("{MARKER} {ENTRY} {MEMORY}"));
    load(&host, &padded(&base, max)).expect("R-limit-code: exactly 1 MiB loads");
    for too_large in [padded(&base, max + 1), vec![0xff; max + 1]] {
        let err = refused(&host, &too_large);
        assert!(
            matches!(err, LoadError::TooLarge { len, max: m } if len == max + 1 && m == max),
            "R-limit-code: {err:?}"
        );
    }
}

/// SPEC R-limit-stack: unbounded recursion ends the call with `StackOverflow`.
#[test]
fn r_limit_stack_overflow() {
    let host = host();
    let down = "(func $down (param i32) (result i32)
                  (call $down (i32.add (local.get 0) (i32.const 1))))";
    let p = plugin(&host, &guest("(call $down (i32.const 0))", down, 1));
    assert_eq!(p.call(&[]), Err(CallError::StackOverflow), "R-limit-stack");
}

/// SPEC R-limit-table, R-shape-table: a table grows up to 10,000 elements; growth past it ends
/// the call with a `Trap` naming the table limit.
#[test]
fn r_limit_table_growth() {
    let host = host();
    let code = wasm(TABLE);
    assert_eq!(
        record(&plugin(&host, &code), &[]),
        [1, 10_000, 10_000],
        "R-limit-table: growth to exactly the cap"
    );
    match plugin(&host, &code).call(&[0]) {
        Err(CallError::Trap(msg)) => assert!(
            msg.contains("table") && msg.contains("10000"),
            "R-limit-table: {msg:?}"
        ),
        other => panic!("R-limit-table: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// 7. Encoding, 8.3 - 8.4 the response
// ---------------------------------------------------------------------------------------------

/// SPEC R-enc-varint, R-enc-varint-max, R-out-exact: every value of the spec's varint table, in
/// the widths it fits (u64 amount, u32 factor_bp, u16 Custom code), is read as that value.
#[test]
fn r_enc_varint_table_of_the_spec() {
    let host = host();
    let table: Vec<(u64, Vec<u8>)> =
        spec_between("- **[R-enc-varint]**", "- **[R-enc-varint-max]**")
            .lines()
            .filter(|l| l.trim_start().starts_with('|') && l.contains('`'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let value = cells[1]
                    .split(' ')
                    .next()
                    .expect("a value")
                    .replace(',', "")
                    .parse()
                    .unwrap_or_else(|e| panic!("{l}: {e}"));
                (value, hex_bytes(cells[2].trim_matches('`')))
            })
            .collect();
    assert_eq!(table.len(), 10, "R-enc-varint: the spec's table");
    for (value, bytes) in table {
        assert_eq!(
            leb128(value),
            bytes,
            "R-enc-varint: the spec's own algorithm"
        );
        let as_amounts = [bytes.as_slice(), &[0, 0, 0, 0], &bytes, &[0]].concat();
        let q = quote_of(&host, &as_amounts)
            .unwrap_or_else(|e| panic!("R-enc-varint: {value} as base and total: {e}"));
        assert_eq!((q.base, q.total), (value, value), "R-enc-varint");
        if let Ok(bp) = u32::try_from(value) {
            let adjustment = [[0, 0, 0, 0, 0, 0, 1, 0].as_slice(), &bytes].concat();
            let q = quote_of(&host, &adjustment)
                .unwrap_or_else(|e| panic!("R-enc-varint: {value} as factor_bp: {e}"));
            assert_eq!(q.adjustments[0].factor_bp, bp, "R-enc-varint");
        }
        if let Ok(code) = u16::try_from(value) {
            let custom = [[0, 0, 0, 0, 0, 0, 1, 5].as_slice(), &bytes, &[1]].concat();
            let q = quote_of(&host, &custom)
                .unwrap_or_else(|e| panic!("R-enc-varint: {value} as a Custom code: {e}"));
            assert_eq!(
                q.adjustments[0].factor,
                Factor::Custom(code),
                "R-enc-varint"
            );
        }
    }
}

/// SPEC R-enc-varint-max, R-out-decode: a varint longer than its width allows, or whose last
/// allowed byte is too large for the width, is malformed.
#[test]
fn r_enc_varint_max_longer_or_larger_is_malformed() {
    let host = host();
    let head = [0, 0, 0, 0, 0, 0, 1];
    for (what, bytes) in [
        (
            "u64 of 11 bytes",
            [[0x80; 10].as_slice(), &[0, 0, 0, 0, 0, 0, 0]].concat(),
        ),
        (
            "u64 with 02 in its 10th byte",
            [[0xff; 9].as_slice(), &[0x02, 0, 0, 0, 0, 0, 0]].concat(),
        ),
        (
            "u32 factor_bp of 6 bytes",
            [head.as_slice(), &[0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]].concat(),
        ),
        (
            "u32 factor_bp with 10 in its 5th byte",
            [head.as_slice(), &[0, 0xff, 0xff, 0xff, 0xff, 0x10]].concat(),
        ),
        (
            "u16 Custom code of 4 bytes",
            [head.as_slice(), &[5, 0x80, 0x80, 0x80, 0x00, 1]].concat(),
        ),
        (
            "u16 Custom code with 04 in its 3rd byte",
            [head.as_slice(), &[5, 0xff, 0xff, 0x04, 1]].concat(),
        ),
    ] {
        assert_eq!(
            refused_output(&host, &bytes),
            OutCheck::Decode,
            "R-enc-varint-max: {what}"
        );
    }
}

/// SPEC R-enc-varint-overlong, R-enc-varint-canonical, R-out-exact: an overlong varint decodes
/// but is refused in an output, wherever it is.
#[test]
fn r_enc_varint_overlong_is_refused_in_an_output() {
    let host = host();
    let cases: [(&str, &[u8]); 6] = [
        ("base 0 as 80 00", &[0x80, 0x00, 0, 0, 0, 0, 0, 0]),
        ("base 1 as 81 80 00", &[0x81, 0x80, 0x00, 0, 0, 0, 0, 1, 0]),
        ("the count as 80 00", &[0, 0, 0, 0, 0, 0, 0x80, 0x00]),
        (
            "a Factor index as 80 00",
            &[0, 0, 0, 0, 0, 0, 1, 0x80, 0x00, 1],
        ),
        (
            "factor_bp 10,000 as 90 ce 00",
            &[0, 0, 0, 0, 0, 0, 1, 0, 0x90, 0xce, 0x00],
        ),
        (
            "Custom(7) as 87 00",
            &[0, 0, 0, 0, 0, 0, 1, 5, 0x87, 0x00, 1],
        ),
    ];
    for (what, bytes) in cases {
        assert_eq!(
            refused_output(&host, bytes),
            OutCheck::Exact,
            "R-enc-varint-overlong: {what}"
        );
    }
}

/// SPEC R-enc-enum, R-msg-tables, R-out-decode, R-out-custom: Factor indices 0 to 5, Custom
/// with its u16 code; an index above 5 is malformed.
#[test]
fn r_enc_enum_factor_indices() {
    let host = host();
    let all = quote([0; 6], &[6, 0, 1, 1, 1, 2, 1, 3, 1, 4, 1, 5, 0xac, 0x02, 1]);
    let q = quote_of(&host, &all).expect("R-enc-enum: indices 0 to 5");
    let factors: Vec<Factor> = q.adjustments.iter().map(|a| a.factor).collect();
    assert_eq!(
        factors,
        [
            Factor::Tier,
            Factor::Replication,
            Factor::Urgency,
            Factor::Utilization,
            Factor::Surge,
            Factor::Custom(300),
        ],
        "R-msg-tables"
    );
    for index in [6, 0x7f] {
        let bytes = quote([0; 6], &[1, index, 1]);
        assert_eq!(
            refused_output(&host, &bytes),
            OutCheck::Decode,
            "R-enc-enum: index {index}"
        );
    }
}

/// SPEC R-enc-trailing, R-enc-struct, R-out-exact, R-out-decode: a message is exactly its
/// encoding: a byte after it is refused, a missing one is malformed.
#[test]
fn r_enc_trailing_and_truncated_outputs() {
    let host = host();
    let golden = spec_bytes("    Quote = ");
    for trailing in [0x00, 0xff] {
        for message in [COMPAT_QUOTE.as_slice(), &golden] {
            let bytes = [message, &[trailing]].concat();
            assert_eq!(
                refused_output(&host, &bytes),
                OutCheck::Exact,
                "R-enc-trailing"
            );
        }
    }
    for len in [0, 6, golden.len() - 1] {
        assert_eq!(
            refused_output(&host, &golden[..len]),
            OutCheck::Decode,
            "R-out-decode: the first {len} bytes of the golden Quote"
        );
    }
    assert_eq!(
        refused_output(&host, &quote([0; 6], &[1])),
        OutCheck::Decode,
        "R-out-decode: a count of 1 and no adjustment"
    );
}

/// SPEC R-out-adjustments-max, R-enc-vec: at most 16 adjustments.
#[test]
fn r_out_adjustments_max_16() {
    let host = host();
    let q = quote_of(&host, &with_adjustments(16)).expect("R-out-adjustments-max: 16");
    assert_eq!(q.adjustments.len(), 16);
    assert_eq!(
        refused_output(&host, &with_adjustments(17)),
        OutCheck::AdjustmentsMax,
        "R-out-adjustments-max: 17"
    );
}

/// SPEC R-out-decode, R-out-adjustments-max, R-out-exact, R-out-sum: the checks apply in this
/// order; the first failure is reported.
#[test]
fn r_out_checks_in_order() {
    let host = host();
    let wrong_total = |mut bytes: Vec<u8>| {
        bytes[5] = 2; // total 2, where base is 1 and the rest 0
        bytes
    };
    let with_trailing = |mut bytes: Vec<u8>| {
        bytes.push(0);
        bytes
    };

    let mut malformed_17th = with_adjustments(17);
    let last = malformed_17th.len() - 3;
    malformed_17th[last] = 6;
    assert_eq!(
        refused_output(&host, &malformed_17th),
        OutCheck::Decode,
        "decode before the count"
    );
    assert_eq!(
        refused_output(&host, &with_trailing(wrong_total(with_adjustments(17)))),
        OutCheck::AdjustmentsMax,
        "the count before exactness and the sum"
    );
    assert_eq!(
        refused_output(&host, &with_trailing(wrong_total(with_adjustments(16)))),
        OutCheck::Exact,
        "exactness (a trailing byte) before the sum"
    );
    assert_eq!(
        refused_output(&host, &[0x81, 0x00, 0, 0, 0, 0, 2, 0]),
        OutCheck::Exact,
        "exactness (an overlong varint) before the sum"
    );
    assert_eq!(
        refused_output(&host, &wrong_total(with_adjustments(0))),
        OutCheck::Sum,
        "the sum"
    );
}

/// SPEC R-out-sum: total = base + quality_premium + network_fee + escrow_fee, without
/// overflow; max_bonus is not part of it.
#[test]
fn r_out_sum_without_overflow() {
    let host = host();
    let max = u64::MAX;
    for amounts in [
        [100, 10, 5, 2, 15, 118],
        [100, 10, 5, 2, 15, 132], // max_bonus counted in
        [max, 1, 0, 0, 0, 0],     // wrapped around
        [max, 1, 0, 0, 0, max],   // saturated
        [1, max, max, max, 0, max - 2],
    ] {
        assert_eq!(
            refused_output(&host, &quote(amounts, &[0])),
            OutCheck::Sum,
            "R-out-sum: {amounts:?}"
        );
    }
    for amounts in [
        [100, 10, 5, 2, 15, 117],
        [max, 0, 0, 0, max, max],
        [max - 2, 0, 1, 1, 0, max],
    ] {
        let q = quote_of(&host, &quote(amounts, &[0]))
            .unwrap_or_else(|e| panic!("R-out-sum: {amounts:?}: {e}"));
        assert_eq!(q.total, amounts[5], "R-out-sum");
    }
}

/// SPEC R-out-zero, R-out-factor-bp, R-out-custom, R-out-duplicates, R-msg-quote: zero amounts,
/// any factor_bp and Custom code, repeated factors in their order: all accepted as given.
#[test]
fn r_out_accepted_as_given() {
    let host = host();
    let zero = quote_of(&host, &quote([0; 6], &[0])).expect("R-out-zero");
    assert_eq!(
        zero,
        Quote {
            base: 0,
            quality_premium: 0,
            network_fee: 0,
            escrow_fee: 0,
            max_bonus: 0,
            total: 0,
            adjustments: vec![],
        },
        "R-out-zero"
    );

    let adjustments = [
        &[7][..],
        &[4, 0xa8, 0x46],                   // Surge 9,000
        &[0, 0x00],                         // Tier 0
        &[5, 0x00, 0x01],                   // Custom(0) 1
        &[5, 0xff, 0xff, 0x03, 0x90, 0x4e], // Custom(65,535) 10,000
        &[1, 0xff, 0xff, 0xff, 0xff, 0x0f], // Replication u32::MAX
        &[4, 0xe0, 0x5d],                   // Surge 12,000
        &[4, 0xa8, 0x46],                   // Surge 9,000
    ]
    .concat();
    let q = quote_of(&host, &quote([1, 2, 3, 4, 5, 10], &adjustments))
        .expect("R-out-factor-bp, R-out-custom, R-out-duplicates");
    let adjustment = |factor, factor_bp| Adjustment { factor, factor_bp };
    assert_eq!(
        (
            q.base,
            q.quality_premium,
            q.network_fee,
            q.escrow_fee,
            q.max_bonus,
            q.total
        ),
        (1, 2, 3, 4, 5, 10),
        "R-msg-quote: the fields in order"
    );
    assert_eq!(
        q.adjustments,
        [
            adjustment(Factor::Surge, 9_000),
            adjustment(Factor::Tier, 0),
            adjustment(Factor::Custom(0), 1),
            adjustment(Factor::Custom(u16::MAX), 10_000),
            adjustment(Factor::Replication, u32::MAX),
            adjustment(Factor::Surge, 12_000),
            adjustment(Factor::Surge, 9_000),
        ],
        "R-out-duplicates: kept, in the order given"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Pricing messages
// ---------------------------------------------------------------------------------------------

/// SPEC R-msg-golden-quote, R-msg-quote: the spec's golden Quote is what the standard plugin
/// answers the golden request, and decodes to the spec's values; so do its two other examples.
#[test]
fn r_msg_golden_quote() {
    let host = host();
    let golden = spec_bytes("    Quote = ");
    let request = spec_bytes("    QuoteRequest = ");
    assert_eq!(
        standard(&host).plugin().call(&request),
        Ok(golden.clone()),
        "R-msg-golden-quote: pricing-standard's answer"
    );
    let q = quote_of(&host, &golden).expect("R-msg-golden-quote");
    let neutral = |factor| Adjustment {
        factor,
        factor_bp: 10_000,
    };
    assert_eq!(
        q,
        Quote {
            base: 100_000_000,
            quality_premium: 10_000_000,
            network_fee: 5_000_000,
            escrow_fee: 2_000_000,
            max_bonus: 15_000_000,
            total: 117_000_000,
            adjustments: vec![
                neutral(Factor::Tier),
                neutral(Factor::Replication),
                neutral(Factor::Urgency),
                neutral(Factor::Utilization),
            ],
        },
        "R-msg-golden-quote"
    );

    let custom = [&golden[..23], &[2, 0x00, 0x90, 0x4e, 0x05, 0x07, 0x01]].concat();
    let q = quote_of(&host, &custom).expect("R-msg-golden-quote: the Custom(7) example");
    assert_eq!(
        q.adjustments,
        [
            neutral(Factor::Tier),
            Adjustment {
                factor: Factor::Custom(7),
                factor_bp: 1,
            },
        ],
        "R-msg-golden-quote"
    );
    let q = quote_of(&host, &COMPAT_QUOTE).expect("R-msg-golden-quote: the compat example");
    assert_eq!(
        (
            q.base,
            q.quality_premium,
            q.network_fee,
            q.escrow_fee,
            q.max_bonus,
            q.total
        ),
        (100, 10, 5, 2, 15, 117),
        "R-msg-golden-quote"
    );
}

/// SPEC R-msg-golden-request, R-msg-request, R-req-canonical, R-enc-varint-canonical
/// SPEC R-enc-u8, R-enc-bool, R-enc-struct, R-enc-trailing: the host sends a request as exactly
/// its shortest encoding, field by field.
#[test]
fn r_msg_request_bytes_as_sent() {
    let host = host();
    let echo = pricing(&host, &wasm(ECHO_HEX));
    assert_eq!(
        sent(&echo, &golden_request()),
        hex::encode(spec_bytes("    QuoteRequest = ")),
        "R-msg-golden-request"
    );
    for (req, bytes) in [
        (
            QuoteRequest {
                size_bytes: 300,
                duration_days: 128,
                tier: StorageTier::Archive,
                quality: false,
                replication: 200,
                urgency: Urgency::High,
                utilization_bp: 10_000,
            },
            "ac02 8001 03 00 c8 02 904e",
        ),
        (
            QuoteRequest {
                size_bytes: u64::MAX,
                duration_days: u32::MAX,
                tier: StorageTier::Hot,
                quality: true,
                replication: 255,
                urgency: Urgency::Low,
                utilization_bp: 10_000,
            },
            "ffffffffffffffffff01 ffffffff0f 00 01 ff 00 904e",
        ),
        (
            QuoteRequest {
                size_bytes: 1,
                duration_days: 1,
                tier: StorageTier::Hot,
                quality: false,
                replication: 1,
                urgency: Urgency::Low,
                utilization_bp: 0,
            },
            "01 01 00 00 01 00 00",
        ),
        (
            QuoteRequest {
                size_bytes: 127,
                duration_days: 16_384,
                tier: StorageTier::Cold,
                quality: true,
                replication: 127,
                urgency: Urgency::Normal,
                utilization_bp: 128,
            },
            "7f 808001 02 01 7f 01 8001",
        ),
    ] {
        assert_eq!(
            sent(&echo, &req),
            bytes.replace(' ', ""),
            "R-msg-request: {req:?}"
        );
    }
}

/// SPEC R-msg-tables, R-enc-enum: StorageTier and Urgency are sent as their variant indices.
#[test]
fn r_msg_tables_tier_and_urgency_indices() {
    let host = host();
    let echo = pricing(&host, &wasm(ECHO_HEX));
    for (index, tier) in StorageTier::ALL.into_iter().enumerate() {
        let req = QuoteRequest::new(1, 1, tier, false);
        assert_eq!(
            sent(&echo, &req),
            format!("0101{index:02x}0003018827"),
            "R-msg-tables: {tier}"
        );
    }
    for (index, urgency) in Urgency::ALL.into_iter().enumerate() {
        let req = QuoteRequest {
            urgency,
            ..QuoteRequest::new(1, 1, StorageTier::Hot, false)
        };
        assert_eq!(
            sent(&echo, &req),
            format!("0101000003{index:02x}8827"),
            "R-msg-tables: {urgency:?}"
        );
    }
}

/// SPEC R-req-ranges: the host refuses a request with size 0, duration 0, replication 0 or a
/// utilization over 10,000 itself (`InvalidRequest`), without calling the plugin; it sends the
/// boundaries.
#[test]
fn r_req_ranges_refused_by_the_host() {
    let host = host();
    let echo = pricing(&host, &wasm(ECHO_HEX));
    let ok = QuoteRequest::new(1, 1, StorageTier::Warm, false);
    for (what, req) in [
        ("size 0", QuoteRequest::new(0, 1, StorageTier::Warm, false)),
        (
            "duration 0",
            QuoteRequest::new(1, 0, StorageTier::Warm, false),
        ),
        (
            "replication 0",
            QuoteRequest {
                replication: 0,
                ..ok.clone()
            },
        ),
        (
            "utilization 10,001",
            QuoteRequest {
                utilization_bp: 10_001,
                ..ok.clone()
            },
        ),
        (
            "utilization 65,535",
            QuoteRequest {
                utilization_bp: u16::MAX,
                ..ok.clone()
            },
        ),
    ] {
        for result in [echo.quote_only(&req).map(drop), echo.quote(&req).map(drop)] {
            assert!(
                matches!(result, Err(CallError::InvalidRequest(_))),
                "R-req-ranges, {what}: {result:?}"
            );
        }
    }
    assert_eq!(
        echo.plugin().idle_instances(),
        0,
        "R-req-ranges: the plugin was never called (no instance was made)"
    );
    let boundaries = QuoteRequest {
        replication: 1,
        utilization_bp: 10_000,
        ..ok
    };
    assert_eq!(
        sent(&echo, &boundaries),
        "010101000101904e",
        "R-req-ranges: the boundaries are sent"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. The install self-check
// ---------------------------------------------------------------------------------------------

/// SPEC R-check-requests, R-check-success, R-req-canonical: the self-check sends its 48 requests
/// in the spec's order, each in its shortest encoding.
#[test]
fn r_check_requests_48_in_order() {
    let host = host();
    let p = pricing(&host, &wasm(CHECK_REQUESTS));
    p.self_check()
        .expect("R-check-success: a guest that answers every request passes");
    assert_eq!(
        p.plugin().idle_instances(),
        1,
        "the self-check's calls ran one after another on one instance"
    );
    let log = p.plugin().call(&[]).expect("the guest outputs its log");
    let mut requests = Vec::new();
    let mut rest = log.as_slice();
    while let Some((&len, tail)) = rest.split_first() {
        let (bytes, tail) = tail.split_at(usize::from(len));
        let req: QuoteRequest = postcard::from_bytes(bytes).expect("a QuoteRequest");
        assert_eq!(
            postcard::to_allocvec(&req).expect("encodes"),
            bytes,
            "R-req-canonical: {req:?} in its shortest encoding, nothing after it"
        );
        requests.push(req);
        rest = tail;
    }
    let mut expected = Vec::new();
    for tier in StorageTier::ALL {
        for quality in [false, true] {
            for (size, duration) in [(1, 1), (1_000_000_000, 1), (1 << 40, 365)] {
                expected.push(QuoteRequest::new(size, duration, tier, quality));
                expected.push(QuoteRequest::new(2 * size, duration, tier, quality));
            }
        }
    }
    assert_eq!(expected.len(), 48);
    assert_eq!(requests, expected, "R-check-requests");
}

/// SPEC R-check-refusal, R-check-success, R-req-refuse: a refusal of a sample request fails the
/// self-check, naming the request and the reason.
#[test]
fn r_check_refusal_names_the_request() {
    let host = host();
    let p = pricing(&host, &wasm(CHECK_REFUSES_ARCHIVE));
    let archive = QuoteRequest::new(1_000_000_000, 1, StorageTier::Archive, false);
    assert_eq!(
        p.quote_only(&archive),
        Err(CallError::Refused("no archive".into())),
        "R-req-refuse: a plugin may refuse any request"
    );
    match p.self_check() {
        Err(LoadError::SelfCheck(what)) => assert_eq!(
            what, "1 B, 1 d, archive: plugin refused the request: no archive",
            "R-check-refusal"
        ),
        other => panic!("R-check-refusal: {other:?}"),
    }
}

/// SPEC R-check-refusal: an install stops asking after the pair with the first failure (a
/// plugin that refuses or times out costs one pair of calls, not 48); `plugin check`'s report
/// still asks all 48.
#[test]
fn r_check_refusal_stops_after_the_failing_pair() {
    // Refuses every request and counts them in a global; an empty input reads the count.
    let counting = module(
        r#"(import "zhtp:env/v1" "input_len" (func $len (result i32)))
        (import "zhtp:env/v1" "output_set" (func $out (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        (global $n (mut i32) (i32.const 0))
        (func (export "zhtp_abi_v1"))
        (func (export "pricing_quote") (result i32)
          (if (i32.eqz (call $len)) (then
            (i32.store8 (i32.const 0) (global.get $n))
            (drop (call $out (i32.const 0) (i32.const 1)))
            (return (i32.const 0))))
          (global.set $n (i32.add (global.get $n) (i32.const 1)))
          (i32.store8 (i32.const 0) (i32.const 110))
          (drop (call $out (i32.const 0) (i32.const 1)))
          (i32.const 1))"#,
    );
    let host = host();
    let p = pricing(&host, &counting);
    assert!(matches!(p.self_check(), Err(LoadError::SelfCheck(_))));
    assert_eq!(
        p.plugin().call(&[]),
        Ok(vec![2]),
        "R-check-refusal: the install asked the first pair only"
    );
    let report = pricing(&host, &counting).self_check_report();
    assert_eq!(report.calls.len(), 48);
    assert!(report.calls.iter().all(|c| c.problem.is_some()));
}

/// SPEC R-check-nonzero, R-check-monotone: the first request of each pair must have a non-zero
/// total (the other fields may be 0); an equal total for the doubled request passes.
#[test]
fn r_check_nonzero_total() {
    let host = host();
    match answering(&host, &quote([0; 6], &[0])).self_check() {
        Err(LoadError::SelfCheck(what)) => assert!(
            what.starts_with("1 B, 1 d, hot: ") && what.contains("zero"),
            "R-check-nonzero: {what:?}"
        ),
        other => panic!("R-check-nonzero: {other:?}"),
    }
    answering(&host, &quote([0, 0, 7, 0, 0, 7], &[0]))
        .self_check()
        .expect("R-check-nonzero: only the total must be non-zero; R-check-monotone: ≥");
}

/// SPEC R-check-monotone, R-check-refusal: doubling the size must not lower the total; the
/// failure names the doubled request.
#[test]
fn r_check_monotone_price() {
    let host = host();
    match pricing(&host, &wasm(CHECK_PRICE_FALLS)).self_check() {
        Err(LoadError::SelfCheck(what)) => assert!(
            what.starts_with("2 B, 1 d, hot: ") && what.contains("from 10 to 5"),
            "R-check-monotone: {what:?}"
        ),
        other => panic!("R-check-monotone: {other:?}"),
    }
}

/// SPEC R-check-success, R-check-refusal: every call must succeed with a valid output; a failed
/// one is named, the doubled request by its own size.
#[test]
fn r_check_success_every_call() {
    let host = host();
    match pricing(&host, &wasm(CHECK_TRAPS_ON_DOUBLE)).self_check() {
        Err(LoadError::SelfCheck(what)) => assert!(
            what.starts_with("2 B, 1 d, hot: plugin trapped: "),
            "R-check-success: {what:?}"
        ),
        other => panic!("R-check-success: {other:?}"),
    }
    let trailing = [COMPAT_QUOTE.as_slice(), &[0]].concat();
    match answering(&host, &trailing).self_check() {
        Err(LoadError::SelfCheck(what)) => assert!(
            what.starts_with("1 B, 1 d, hot: plugin output is invalid: "),
            "R-check-success: {what:?}"
        ),
        other => panic!("R-check-success: {other:?}"),
    }
}

/// SPEC R-check-when: install runs the self-check; a plugin loaded at node start and a rollback
/// are not checked again.
#[test]
fn r_check_when_install_only() {
    let zero = answering_wasm(&quote([0; 6], &[0]));
    let registry = Registry::open(host(), None, &zero)
        .expect("R-check-when: the plugin loaded at start is not self-checked");
    assert_eq!(
        registry
            .quote(&golden_request())
            .expect("it serves")
            .quote
            .total,
        0
    );
    let err = registry
        .install(&zero)
        .expect_err("R-check-when: install self-checks");
    assert!(
        matches!(err, RegistryError::Load(LoadError::SelfCheck(_))),
        "R-check-when: {err:?}"
    );
    assert_eq!(
        registry.slot().current.plugin().wasm(),
        zero,
        "R-check-refusal: a failed install changes nothing"
    );
    registry
        .install(&spec_example())
        .expect("the spec example passes the self-check");
    registry
        .rollback()
        .expect("R-check-when: rollback does not self-check");
    assert_eq!(
        registry
            .quote(&golden_request())
            .expect("it serves")
            .quote
            .total,
        0,
        "R-check-when"
    );
}

// ---------------------------------------------------------------------------------------------
// 10. The spec's example guest
// ---------------------------------------------------------------------------------------------

/// SPEC R-state-independent, R-req-refuse, R-check-success: the section 10 example, taken from
/// the spec, passes the self-check, answers the golden request with the spec's 24 bytes on a
/// fresh or a reused instance, and refuses what it cannot price.
#[test]
fn spec_example_guest_passes_and_answers_as_documented() {
    let host = host();
    let p = pricing(&host, &spec_example());
    let input = spec_bytes("    QuoteRequest = ");
    let answer = spec_example_answer();
    assert_eq!(answer.len(), 24);
    assert_eq!(
        p.plugin().call(&input),
        Ok(answer.clone()),
        "a fresh instance"
    );
    p.self_check().expect("R-check-success: the example passes");
    assert_eq!(p.plugin().idle_instances(), 1);
    assert_eq!(
        p.plugin().call(&input),
        Ok(answer),
        "R-state-independent: the same answer on a reused instance"
    );
    let reason = Err(CallError::Refused("cannot price this request".into()));
    let huge = QuoteRequest::new(1 << 48, 1, StorageTier::Warm, false);
    let long = QuoteRequest::new(1, 36_501, StorageTier::Warm, false);
    assert_eq!(p.quote_only(&huge), reason, "R-req-refuse");
    assert_eq!(p.quote_only(&long), reason, "R-req-refuse");
}

// ---------------------------------------------------------------------------------------------
// 12. Quality plugins
// ---------------------------------------------------------------------------------------------

/// The golden request of section 12.5, as numbers (not read from the spec: the spec's bytes
/// are checked against it).
fn golden_measurements() -> Measurements {
    Measurements {
        period: 2,
        payment: 1_000_000,
        audits: 4,
        passed: 3,
        slow: 0,
        lost: 1,
        unanswered: 0,
        latency_avg_ms: 7,
        latency_max_ms: 12,
        deadline_ms: 500,
        uptime_bp: 9_500,
        latency_ms: 5_000,
        integrity_bp: 9_900,
        bandwidth_bp: 8_000,
    }
}

/// Loads a quality guest that must pass validation.
fn quality(host: &Host, wasm: &[u8]) -> QualityPlugin {
    QualityPlugin::new(
        host.load(Kind::Quality, wasm)
            .unwrap_or_else(|e| panic!("the quality guest must load: {e}")),
    )
}

/// A quality guest answering every call with `bytes` and status 0.
fn quality_answering(bytes: &[u8]) -> Vec<u8> {
    wasm(&format!(
        r#"(module
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  {MEMORY} {MARKER}
  (data (i32.const 16) "{}")
  (func (export "quality_assess") (result i32)
    (drop (call $output_set (i32.const 16) (i32.const {}))) (i32.const 0)))"#,
        wat_bytes(bytes),
        bytes.len()
    ))
}

/// The section 12.8 example guest, as it stands in the spec.
fn spec_quality_example() -> String {
    let (_, section) = SPEC.split_once("## 12.").expect("SPEC.md has a section 12");
    let (_, rest) = section
        .split_once("```wat\n")
        .expect("section 12 has a guest");
    rest.split_once("\n```")
        .expect("the guest ends")
        .0
        .to_owned()
}

/// SPEC R-quality-entry, R-shape-entry: a quality plugin exports `quality_assess` of type
/// `() -> i32`; a module is loaded as one kind, and one exporting both entries is valid as
/// either.
#[test]
fn r_quality_entry_is_quality_assess() {
    let host = host();
    let only_quality = quality_answering(&[0, 0, 0]);
    let both = module(&format!(
        r#"{MARKER} {ENTRY} {MEMORY} (func (export "quality_assess") (result i32) (i32.const 1))"#
    ));
    let wrong_type = module(&format!(
        r#"{MARKER} {MEMORY} (func (export "quality_assess") (result i64) (i64.const 0))"#
    ));
    let missing = |r: Result<Plugin, LoadError>| {
        matches!(
            r,
            Err(LoadError::MissingExport {
                name: "quality_assess",
                expected: "func () -> i32",
                kind: "quality",
            })
        )
    };
    assert!(host.load(Kind::Quality, &only_quality).is_ok());
    assert!(matches!(
        host.load(Kind::Pricing, &only_quality),
        Err(LoadError::MissingExport {
            name: "pricing_quote",
            ..
        })
    ));
    assert!(missing(host.load(
        Kind::Quality,
        &module(&format!("{MARKER} {ENTRY} {MEMORY}"))
    )));
    assert!(missing(host.load(Kind::Quality, &wrong_type)));
    assert!(host.load(Kind::Quality, &both).is_ok());
    assert!(host.load(Kind::Pricing, &both).is_ok());
}

/// SPEC R-qmsg-request, R-qmsg-golden-request, R-qreq-canonical: the host sends the
/// golden request as the spec's bytes, and every request as its shortest encoding with
/// nothing after it (postcard's bytes, the reference format), the largest values too.
#[test]
fn r_qmsg_request_bytes_are_the_specs() {
    let host = host();
    let echo = quality(
        &host,
        &wasm(&ECHO_HEX.replace("pricing_quote", "quality_assess")),
    );
    let sent = |m: &Measurements| match echo.assess(m) {
        Err(CallError::Refused(hex)) => hex_bytes(
            &hex.as_bytes()
                .chunks(2)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        other => panic!("the echo guest refuses with its input: {other:?}"),
    };
    let golden = spec_bytes("    Measurements = ");
    assert_eq!(golden.len(), 21);
    assert_eq!(sent(&golden_measurements()), golden);
    assert_eq!(
        postcard::to_allocvec(&golden_measurements()).unwrap(),
        golden
    );
    // The longest request the host sends: every count a 5-byte varint (each at least 2^28,
    // adding up to audits), the shares at 10,000: 66 bytes.
    let big = 1 << 28;
    let largest = Measurements {
        period: u32::MAX,
        payment: u64::MAX,
        audits: u32::MAX,
        passed: u32::MAX - 3 * big,
        slow: big,
        lost: big,
        unanswered: big,
        latency_avg_ms: u32::MAX,
        latency_max_ms: u32::MAX,
        deadline_ms: u32::MAX,
        uptime_bp: 10_000,
        latency_ms: u32::MAX,
        integrity_bp: 10_000,
        bandwidth_bp: 10_000,
    };
    let bytes = sent(&largest);
    assert_eq!(bytes, postcard::to_allocvec(&largest).unwrap());
    assert_eq!(bytes.len(), 66);
    assert_eq!(sent(&Measurements::default()), [0u8; 14]);
}

/// SPEC R-qreq-ranges: counts that do not add up, or SLA shares over 100%, are refused by the
/// host without calling the guest (which would trap).
#[test]
fn r_qreq_ranges_are_the_hosts_to_refuse() {
    let host = host();
    let trapping = quality(
        &host,
        &module(&format!(
            r#"{MARKER} {MEMORY} (func (export "quality_assess") (result i32) unreachable)"#
        )),
    );
    let bad: [fn(&mut Measurements); 5] = [
        |m| m.audits += 1,
        |m| m.lost += 1,
        |m| m.uptime_bp = 10_001,
        |m| m.integrity_bp = 10_001,
        |m| m.bandwidth_bp = 10_001,
    ];
    for f in bad {
        let mut m = golden_measurements();
        f(&mut m);
        assert!(
            matches!(trapping.assess(&m), Err(CallError::InvalidRequest(_))),
            "{m:?}"
        );
    }
    // In range, the guest is called (and traps).
    let mut edge = golden_measurements();
    (edge.latency_ms, edge.deadline_ms, edge.latency_max_ms) = (0, 0, u32::MAX);
    assert!(matches!(trapping.assess(&edge), Err(CallError::Trap(_))));
}

/// SPEC R-qmsg-assessment, R-qmsg-tables, R-qmsg-golden-assessment: the spec's assessment
/// bytes decode to what it says, and each class index is its class.
#[test]
fn r_qmsg_assessment_decodes_as_specified() {
    let host = host();
    let golden = spec_bytes("    Assessment = ");
    let a = quality(&host, &quality_answering(&golden))
        .assess(&golden_measurements())
        .unwrap();
    assert_eq!(
        a,
        Assessment {
            score_bp: 7_500,
            bonus_bp: 0,
            violations: vec![Class::DataLoss],
        }
    );
    for (i, class) in Class::ALL.into_iter().enumerate() {
        let a = quality(&host, &quality_answering(&[0x01, 0x00, 0x01, i as u8]))
            .assess(&golden_measurements())
            .unwrap();
        assert_eq!((a.score_bp, a.violations), (1, vec![class]));
    }
    let clean = [0x90, 0x4e, 0xdc, 0x0b, 0x00]; // 10,000, 1,500, no violation
    let a = quality(&host, &quality_answering(&clean))
        .assess(&golden_measurements())
        .unwrap();
    assert_eq!(
        (a.score_bp, a.bonus_bp, a.violations.len()),
        (10_000, 1_500, 0)
    );
}

/// Which check of section 12.4 refused `bytes`, by the host's reason.
fn quality_refusal(bytes: &[u8]) -> &'static str {
    let host = host();
    match quality(&host, &quality_answering(bytes)).assess(&golden_measurements()) {
        Err(CallError::BadOutput(m)) if m.starts_with("not an Assessment") => "decode",
        Err(CallError::BadOutput(m)) if m.contains("violations; at most 5") => "max",
        Err(CallError::BadOutput(m)) if m.contains("after the end") || m.contains("shortest") => {
            "exact"
        }
        Err(CallError::BadOutput(m)) if m.contains("score_bp") => "score",
        Err(CallError::BadOutput(m)) if m.contains("1,500") => "bonus",
        Err(CallError::BadOutput(m)) if m.contains("bonus together") => "bonus-clean",
        other => panic!("not a section 12.4 refusal: {other:?}"),
    }
}

/// SPEC R-qout-decode, R-qout-max, R-qout-exact, R-qout-score, R-qout-bonus, R-qout-bonus-clean
///
/// Each bad output is refused by its check, in the spec's order.
#[test]
fn r_qout_each_rule_refuses_in_order() {
    let cases: [(&[u8], &str); 12] = [
        (&[0x00, 0x00, 0x01, 0x05], "decode"),       // class 5
        (&[0x00, 0x00, 0x02, 0x00], "decode"),       // truncated list
        (&[0xff, 0xff, 0x04, 0x00, 0x00], "decode"), // u16 too large
        (&[0x00, 0x00, 0x06, 0, 0, 0, 0, 0, 0], "max"),
        (&[0x00, 0x00, 0x06, 0, 0, 0, 0, 0, 9], "decode"), // malformed before too many
        (&[0x80, 0x00, 0x00, 0x00], "exact"),              // overlong score
        (&[0x00, 0x00, 0x00, 0x00], "exact"),              // a byte after the message
        (&[0x80, 0x00, 0x00, 0x06, 0, 0, 0, 0, 0, 0], "max"), // too many before not exact
        (&[0x91, 0x4e, 0x00, 0x00], "score"),              // 10,001
        (&[0x91, 0x4e, 0xdd, 0x0b, 0x00], "score"),        // score before bonus
        (&[0x00, 0xdd, 0x0b, 0x00], "bonus"),              // 1,501
        (&[0x00, 0x01, 0x01, 0x02], "bonus-clean"),        // a bonus and a violation
    ];
    for (bytes, check) in cases {
        assert_eq!(quality_refusal(bytes), check, "{bytes:02x?}");
    }
}

/// SPEC R-qout-duplicates: classes may repeat, in any order; the host keeps them as given.
#[test]
fn r_qout_duplicates_are_kept() {
    let host = host();
    let a = quality(
        &host,
        &quality_answering(&[0x00, 0x00, 0x03, 0x02, 0x00, 0x02]),
    )
    .assess(&golden_measurements())
    .unwrap();
    assert_eq!(
        a.violations,
        [Class::SlowResponse, Class::DataLoss, Class::SlowResponse]
    );
}

/// SPEC R-qcheck-requests: the self-check sends the five documented requests, in order (the
/// echo guest refuses each with its bytes; every answer is reported).
#[test]
fn r_qcheck_requests_are_the_five_documented() {
    let host = host();
    let echo = quality(
        &host,
        &wasm(&ECHO_HEX.replace("pricing_quote", "quality_assess")),
    );
    let report = echo.self_check_report();
    assert!(!report.passed());
    let base = Measurements {
        payment: 1_000_000,
        audits: 4,
        deadline_ms: 500,
        uptime_bp: 9_500,
        latency_ms: 5_000,
        integrity_bp: 9_900,
        bandwidth_bp: 8_000,
        ..Measurements::default()
    };
    let expected = [
        (
            "clean",
            Measurements {
                passed: 4,
                latency_avg_ms: 5,
                latency_max_ms: 9,
                ..base.clone()
            },
        ),
        (
            "lost",
            Measurements {
                lost: 4,
                ..base.clone()
            },
        ),
        (
            "silent",
            Measurements {
                unanswered: 4,
                ..base.clone()
            },
        ),
        (
            "mixed",
            Measurements {
                passed: 2,
                slow: 1,
                lost: 1,
                latency_avg_ms: 40,
                latency_max_ms: 70,
                ..base.clone()
            },
        ),
        (
            "unaudited",
            Measurements {
                audits: 0,
                ..base.clone()
            },
        ),
    ];
    assert_eq!(report.calls.len(), 5);
    for (call, (name, m)) in report.calls.iter().zip(expected) {
        assert_eq!((call.name, &call.request), (name, &m));
        let hex: String = postcard::to_allocvec(&m)
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let problem = call.problem.as_deref().unwrap();
        assert!(problem.ends_with(&hex), "{name}: the guest saw {problem}");
    }
}

/// SPEC R-qcheck-clean, R-qcheck-loss, R-qcheck-silent: a plugin that flags a clean period,
/// misses a total loss or calls silence anything but unavailability fails the self-check
/// with the period named; the spec's example passes.
#[test]
fn r_qcheck_rules_each_fail_a_plugin_that_breaks_them() {
    let host = host();
    let example = spec_quality_example();
    let fails = |wasm: &[u8]| {
        quality(&host, wasm)
            .self_check()
            .expect_err("the self-check fails")
            .to_string()
    };
    let flags_clean = fails(&quality_answering(&[0x00, 0x00, 0x01, 0x02]));
    assert!(flags_clean.contains("clean period") && flags_clean.contains("R-qcheck-clean"));
    let loss_as_degradation = example.replace(
        "(local.get $lost) (i32.const 0)",
        "(local.get $lost) (i32.const 3)",
    );
    assert_ne!(loss_as_degradation, example);
    let e = fails(&wasm(&loss_as_degradation));
    assert!(
        e.contains("lost period") && e.contains("R-qcheck-loss"),
        "{e}"
    );
    let silence_as_loss = example.replace(
        "(local.get $unanswered) (i32.const 1)",
        "(local.get $unanswered) (i32.const 0)",
    );
    assert_ne!(silence_as_loss, example);
    let e = fails(&wasm(&silence_as_loss));
    assert!(
        e.contains("silent period") && e.contains("R-qcheck-silent"),
        "{e}"
    );
    quality(&host, &wasm(&example))
        .self_check()
        .expect("the example passes");
}

/// SPEC R-state-independent, R-qmsg-golden-assessment: the section 12.8 example, taken from the
/// spec, answers the golden request with the spec's bytes on a fresh and a reused instance.
#[test]
fn spec_quality_example_answers_as_documented() {
    let host = host();
    let p = quality(&host, &wasm(&spec_quality_example()));
    let input = spec_bytes("    Measurements = ");
    let answer = spec_bytes("    Assessment = ");
    assert_eq!(
        p.plugin().call(&input),
        Ok(answer.clone()),
        "a fresh instance"
    );
    assert_eq!(p.plugin().info().name, "hand-judged@1.0.0");
    assert_eq!(p.plugin().call(&input), Ok(answer), "a reused instance");
    let silent = Measurements {
        unanswered: 4,
        passed: 0,
        lost: 0,
        audits: 4,
        ..golden_measurements()
    };
    assert_eq!(
        p.assess(&silent).unwrap(),
        Assessment {
            score_bp: 0,
            bonus_bp: 0,
            violations: vec![Class::Unavailability]
        }
    );
}

// ---------------------------------------------------------------------------------------------
// 13. Tier plugins
// ---------------------------------------------------------------------------------------------

/// The request of SPEC R-tmsg-golden-request.
fn golden_facts() -> Facts {
    Facts {
        size: 3 << 20,
        tier: StorageTier::Warm,
        data: 8,
        parity: 4,
        age_secs: 30 * 86_400,
        reads_30d: 0,
        idle_secs: 30 * 86_400,
        nodes: 40,
        lifetime_secs: 90 * 86_400,
        repair_secs: 3_600,
    }
}

/// A tier guest answering every call with `bytes` and status 0.
fn tier_answering(bytes: &[u8]) -> TierPlugin {
    let src = format!(
        r#"(module
  (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
  {MEMORY} {MARKER}
  (data (i32.const 16) "{}")
  (func (export "tier_choose") (result i32)
    (drop (call $output_set (i32.const 16) (i32.const {}))) (i32.const 0)))"#,
        wat_bytes(bytes),
        bytes.len()
    );
    TierPlugin::new(
        host()
            .load(Kind::Tier, &wasm(&src))
            .unwrap_or_else(|e| panic!("the tier guest must load: {e}")),
    )
}

/// The echo guest as a tier plugin: refuses every call with its input in hex.
fn tier_echo() -> TierPlugin {
    TierPlugin::new(
        host()
            .load(
                Kind::Tier,
                &wasm(&ECHO_HEX.replace("pricing_quote", "tier_choose")),
            )
            .unwrap(),
    )
}

/// What the echo guest was sent for `f`.
fn tier_sent(echo: &TierPlugin, f: &Facts) -> Vec<u8> {
    match echo.choose(f) {
        Err(CallError::Refused(hex)) => hex_bytes(
            &hex.as_bytes()
                .chunks(2)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        other => panic!("the echo guest refuses with its input: {other:?}"),
    }
}

/// SPEC R-tier-entry: a tier plugin exports `tier_choose() -> i32`; without it the module is
/// refused as a tier plugin by name, and a module with several kinds' entries is each kind.
#[test]
fn r_tier_entry_is_tier_choose() {
    let host = host();
    let missing = |r: Result<Plugin, LoadError>| {
        matches!(
            r,
            Err(LoadError::MissingExport {
                name: "tier_choose",
                expected: "func () -> i32",
                kind: "tier",
            })
        )
    };
    assert!(missing(host.load(
        Kind::Tier,
        &module(&format!("{MARKER} {ENTRY} {MEMORY}"))
    )));
    let both = module(&format!(
        r#"{MARKER} {ENTRY} {MEMORY} (func (export "tier_choose") (result i32) (i32.const 1))"#
    ));
    assert!(host.load(Kind::Tier, &both).is_ok());
    assert!(host.load(Kind::Pricing, &both).is_ok());
}

/// SPEC R-tmsg-request, R-tmsg-tables, R-tmsg-golden-request, R-treq-canonical: the host
/// sends the golden request as the spec's bytes (postcard's), each tier as its index, and the
/// largest request in 63 bytes with nothing after it.
#[test]
fn r_tmsg_request_bytes_are_the_specs() {
    let echo = tier_echo();
    let golden = spec_bytes("    Facts = ");
    assert_eq!(golden.len(), 23);
    assert_eq!(tier_sent(&echo, &golden_facts()), golden);
    assert_eq!(postcard::to_allocvec(&golden_facts()).unwrap(), golden);
    for (i, tier) in StorageTier::ALL.into_iter().enumerate() {
        let f = Facts {
            tier,
            ..golden_facts()
        };
        assert_eq!(tier_sent(&echo, &f)[4], i as u8, "{tier}");
    }
    let largest = Facts {
        size: u64::MAX,
        tier: StorageTier::Archive,
        data: 200,
        parity: 55,
        age_secs: u64::MAX,
        reads_30d: u32::MAX,
        idle_secs: u64::MAX,
        nodes: u32::MAX,
        lifetime_secs: u64::MAX,
        repair_secs: u64::MAX,
    };
    let bytes = tier_sent(&echo, &largest);
    assert_eq!(bytes, postcard::to_allocvec(&largest).unwrap());
    assert_eq!(bytes.len(), 63);
}

/// SPEC R-treq-ranges: requests out of range are refused by the host without calling the
/// guest (this one traps on any call).
#[test]
fn r_treq_ranges_are_the_hosts_to_refuse() {
    let trap = TierPlugin::new(
        host()
            .load(
                Kind::Tier,
                &module(&format!(
                    r#"{MARKER} {MEMORY} (func (export "tier_choose") (result i32) unreachable)"#
                )),
            )
            .unwrap(),
    );
    let put = Facts {
        data: 0,
        parity: 0,
        age_secs: 0,
        idle_secs: 0,
        ..golden_facts()
    };
    let bad: [(&str, Facts); 8] = [
        (
            "put with parity",
            Facts {
                parity: 1,
                ..put.clone()
            },
        ),
        (
            "put with age",
            Facts {
                age_secs: 1,
                ..put.clone()
            },
        ),
        (
            "put with reads",
            Facts {
                reads_30d: 1,
                ..put.clone()
            },
        ),
        (
            "review without parity",
            Facts {
                parity: 0,
                ..golden_facts()
            },
        ),
        (
            "review of 256 shards",
            Facts {
                data: 200,
                parity: 56,
                ..golden_facts()
            },
        ),
        (
            "idle longer than old",
            Facts {
                idle_secs: 30 * 86_400 + 1,
                ..golden_facts()
            },
        ),
        (
            "no nodes",
            Facts {
                nodes: 0,
                ..golden_facts()
            },
        ),
        (
            "no lifetime",
            Facts {
                lifetime_secs: 0,
                ..golden_facts()
            },
        ),
    ];
    for (what, f) in bad {
        assert!(
            matches!(trap.choose(&f), Err(CallError::InvalidRequest(_))),
            "{what}"
        );
    }
    // In range, the guest is called (and traps).
    assert!(matches!(trap.choose(&put), Err(CallError::Trap(_))));
}

/// SPEC R-tmsg-choice, R-tmsg-golden-choice: the spec's choice decodes as cold 12+6.
#[test]
fn r_tmsg_choice_decodes_as_specified() {
    let golden = spec_bytes("    Choice = ");
    let c = tier_answering(&golden).choose(&golden_facts()).unwrap();
    assert_eq!(
        c,
        Choice {
            tier: StorageTier::Cold,
            data: 12,
            parity: 6
        }
    );
}

/// SPEC R-tout-decode, R-tout-exact, R-tout-code, R-tout-fit, R-tout-tier: each bad output is
/// refused by its check, in the spec's order; a review may keep its code on fewer nodes and
/// move the tier, a put may not change the tier.
#[test]
fn r_tout_each_rule_refuses_in_order() {
    let put = Facts {
        data: 0,
        parity: 0,
        age_secs: 0,
        idle_secs: 0,
        ..golden_facts()
    };
    let refusal = |bytes: &[u8], nodes: u32| {
        let f = match nodes {
            // Node counts above 1,000 stand for a put on (count - 1,000) nodes.
            n if n > 1_000 => Facts {
                nodes: n - 1_000,
                ..put.clone()
            },
            n => Facts {
                nodes: n,
                ..golden_facts()
            },
        };
        match tier_answering(bytes).choose(&f) {
            Err(CallError::BadOutput(m)) if m.starts_with("not a Choice") => "decode",
            Err(CallError::BadOutput(m))
                if m.contains("after the end") || m.contains("shortest") =>
            {
                "exact"
            }
            Err(CallError::BadOutput(m))
                if m.contains("at least 1") || m.contains("64") || m.contains("twice") =>
            {
                "code"
            }
            Err(CallError::BadOutput(m)) if m.contains("nodes known") => "fit",
            Err(CallError::BadOutput(m)) if m.contains("client asked") => "tier",
            other => panic!("not a section 13.4 refusal: {other:?}"),
        }
    };
    let cases: [(&[u8], u32, &str); 13] = [
        (&[0x04, 0x08, 0x04], 40, "decode"),      // tier 4
        (&[0x01, 0x08], 40, "decode"),            // truncated
        (&[0x01, 0x08, 0x04, 0x00], 40, "exact"), // a byte after the message
        (&[0x81, 0x00, 0x08, 0x04], 40, "exact"), // overlong tier index
        (&[0x01, 0x00, 0x04], 40, "code"),        // no data shards
        (&[0x01, 0x08, 0x00], 40, "code"),        // no parity
        (&[0x01, 0x3c, 0x05], 100, "code"),       // 65 shards
        (&[0x01, 0x02, 0x05], 40, "code"),        // parity above twice data
        (&[0x01, 0x08, 0x05], 11, "fit"),         // 13 shards on 11 nodes
        (&[0x01, 0x08, 0x04], 1_011, "fit"),      // a put: 12 shards on 11 nodes
        (&[0x00, 0x08, 0x04], 1_040, "tier"),     // a put of warm content placed hot
        (&[0x00, 0x08, 0x05], 1_011, "fit"),      // fit before tier
        (&[0x01, 0x02, 0x01], 1, "fit"),          // 3 shards on a lone node
    ];
    for (bytes, nodes, check) in cases {
        assert_eq!(
            refusal(bytes, nodes),
            check,
            "{bytes:02x?} on {nodes} nodes"
        );
    }
    // The edges that pass: 64 shards on 64 nodes, two on a lone node, a review keeping its
    // 8+4 on three nodes, a review moving warm content to cold.
    assert!(
        tier_answering(&[0x01, 0x08, 0x04])
            .choose(&Facts {
                nodes: 3,
                ..golden_facts()
            })
            .is_ok()
    );
    assert!(
        tier_answering(&[0x02, 0x08, 0x04])
            .choose(&golden_facts())
            .is_ok()
    );
    assert!(
        tier_answering(&[0x01, 0x3c, 0x04])
            .choose(&Facts {
                nodes: 64,
                ..golden_facts()
            })
            .is_ok()
    );
    assert!(
        tier_answering(&[0x01, 0x01, 0x01])
            .choose(&Facts {
                nodes: 1,
                ..golden_facts()
            })
            .is_ok()
    );
}

/// SPEC R-tcheck-requests, R-tcheck-valid: the self-check sends the five documented requests
/// in order, and a plugin failing any is refused with its name.
#[test]
fn r_tcheck_requests_are_the_five_documented() {
    let report = tier_echo().self_check_report();
    assert!(!report.passed());
    const DAY: u64 = 86_400;
    let put = |size, tier| Facts {
        size,
        tier,
        data: 0,
        parity: 0,
        age_secs: 0,
        reads_30d: 0,
        idle_secs: 0,
        nodes: 40,
        lifetime_secs: 90 * DAY,
        repair_secs: 3_600,
    };
    let expected = [
        ("small-warm-put", put(10_000, StorageTier::Warm)),
        ("large-archive-put", put(1 << 30, StorageTier::Archive)),
        (
            "three-node-put",
            Facts {
                nodes: 3,
                ..put(3 << 20, StorageTier::Hot)
            },
        ),
        (
            "idle-review",
            Facts {
                data: 8,
                parity: 4,
                age_secs: 200 * DAY,
                idle_secs: 200 * DAY,
                ..put(64 << 20, StorageTier::Warm)
            },
        ),
        (
            "busy-review",
            Facts {
                data: 4,
                parity: 2,
                age_secs: DAY,
                reads_30d: 1_000,
                idle_secs: 60,
                ..put(1 << 20, StorageTier::Hot)
            },
        ),
    ];
    assert_eq!(report.calls.len(), expected.len());
    for (call, (name, request)) in report.calls.iter().zip(expected) {
        assert_eq!((call.name, &call.request), (name, &request));
    }
    assert!(matches!(
        tier_echo().self_check(),
        Err(LoadError::SelfCheck(why)) if why.starts_with("small-warm-put: ")
    ));
    // Always warm 8+4: fine for the warm put on 40 nodes, refused for the archive put (its
    // tier) and on three nodes (its width); the first failure is the one reported.
    let warm = tier_answering(&[0x01, 0x08, 0x04]);
    let problems: Vec<_> = warm
        .self_check_report()
        .calls
        .into_iter()
        .map(|c| c.problem.unwrap_or_default())
        .collect();
    assert!(problems[0].is_empty(), "{problems:?}");
    assert!(problems[1].contains("client asked"), "{problems:?}");
    assert!(problems[2].contains("nodes known"), "{problems:?}");
    assert!(matches!(
        warm.self_check(),
        Err(LoadError::SelfCheck(why)) if why.starts_with("large-archive-put: ")
    ));
}

/// SPEC R-tdur-model, R-tdur-figures: the model's figures are the spec's.
#[test]
fn r_tdur_figures_are_the_models() {
    use zhtp_host::abi::durability::{YEAR_SECS, loss_probability};
    const DAY: u64 = 86_400;
    let nines = |k, m, repair| -loss_probability(k, m, 90 * DAY, repair, YEAR_SECS).log10();
    let p = loss_probability(4, 2, 90 * DAY, DAY, YEAR_SECS);
    assert!((p - 0.0271).abs() < 0.00005, "{p}");
    assert!((nines(4, 2, DAY) - 1.57).abs() < 0.005);
    assert!((nines(8, 4, 3_600) - 9.13).abs() < 0.005);
    assert!((nines(16, 8, DAY) - 8.08).abs() < 0.005);
    assert!((nines(16, 6, 3_600) - 13.33).abs() < 0.005);
}
