//! A hostile guest gets its own typed error within the configured limits, and the host then
//! serves the next call (of a good plugin, and of the hostile one again) correctly.

use zhtp_host::abi::pricing::Quote;
use zhtp_host::{CallError, Kind, Limits, LoadError, PricingPlugin};
use zhtp_tests::*;

/// Calls the hostile guest twice (a failed instance is discarded; the second call runs on a
/// fresh one), checks each failure with `check`, then checks that a good plugin on the same host
/// still serves.
fn contained(wasm: Vec<u8>, check: impl Fn(&CallError) -> bool) {
    let host = host();
    let good = standard(&host);
    let bad = PricingPlugin::new(load(&host, &wasm).expect("hostile module passes validation"));
    for _ in 0..2 {
        let err = bad
            .quote(&golden_request())
            .expect_err("hostile call must fail");
        assert!(check(&err), "unexpected error: {err:?}");
        assert_serves(&good);
    }
}

#[test]
fn infinite_loop_times_out() {
    contained(guest("(loop (br 0)) (i32.const 0)", "", 1), |e| {
        *e == CallError::Timeout {
            limit_ms: TEST_TIMEOUT.as_millis() as u64,
        }
    });
}

#[test]
fn memory_bomb_hits_the_cap() {
    let body = "(loop (br_if 0 (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) (i32.const 0)";
    contained(
        guest(body, "", 1),
        |e| matches!(e, CallError::MemoryLimit { limit, .. } if *limit == TEST_MEMORY),
    );
}

#[test]
fn deep_recursion_overflows_the_stack() {
    let extra = "(func $down (param i32) (result i32)
                   (call $down (i32.add (local.get 0) (i32.const 1))))";
    contained(guest("(call $down (i32.const 0))", extra, 1), |e| {
        *e == CallError::StackOverflow
    });
}

#[test]
fn huge_output_is_refused() {
    // 17 pages > 1 MiB, so the range is in bounds and only the ABI limit stops it.
    let body = "(drop (call $output_set (i32.const 0) (i32.const 1048576))) (i32.const 0)";
    contained(guest(body, "", 17), |e| {
        matches!(e, CallError::OutputTooLarge { len: 1_048_576, .. })
    });
}

#[test]
fn trap_is_reported() {
    contained(
        guest("(unreachable)", "", 1),
        |e| matches!(e, CallError::Trap(msg) if msg.contains("unreachable")),
    );
}

#[test]
fn abort_carries_code_and_message() {
    let body = "(call $abort (i32.const 7) (i32.const 16) (i32.const 4)) (i32.const 0)";
    contained(guest(body, r#"(data (i32.const 16) "boom")"#, 1), |e| {
        *e == CallError::Aborted {
            code: 7,
            message: "boom".into(),
        }
    });
}

#[test]
fn garbage_output_is_refused() {
    let body = "(drop (call $output_set (i32.const 16) (i32.const 3))) (i32.const 0)";
    contained(
        guest(body, r#"(data (i32.const 16) "\ff\ff\ff")"#, 1),
        |e| matches!(e, CallError::BadOutput(_)),
    );
}

#[test]
fn inconsistent_quote_is_refused() {
    let lie = Quote {
        base: 1,
        quality_premium: 0,
        network_fee: 0,
        escrow_fee: 0,
        max_bonus: 0,
        total: 1_000_000, // not the sum of its parts
        adjustments: vec![],
    };
    let bytes = quote_bytes(&lie);
    let body = format!(
        "(drop (call $output_set (i32.const 16) (i32.const {}))) (i32.const 0)",
        bytes.len()
    );
    let data = format!(r#"(data (i32.const 16) "{}")"#, wat_bytes(&bytes));
    contained(
        guest(&body, &data, 1),
        |e| matches!(e, CallError::BadOutput(m) if m.contains("is not base + quality_premium + network_fee + escrow_fee")),
    );
}

#[test]
fn success_without_output_is_refused() {
    contained(guest("(i32.const 0)", "", 1), |e| *e == CallError::NoOutput);
}

#[test]
fn undefined_status_is_refused() {
    contained(guest("(i32.const 99)", "", 1), |e| {
        *e == CallError::BadStatus(99)
    });
}

#[test]
fn out_of_bounds_pointer_gets_a_status_not_a_crash() {
    // output_set past the end of memory returns OutOfBounds (-1); the guest passes it on.
    let body = "(call $output_set (i32.const 65530) (i32.const 100))";
    contained(guest(body, "", 1), |e| *e == CallError::BadStatus(-1));
}

#[test]
fn refusal_carries_the_reason() {
    let body = "(drop (call $output_set (i32.const 16) (i32.const 2))) (i32.const 1)";
    contained(guest(body, r#"(data (i32.const 16) "no")"#, 1), |e| {
        *e == CallError::Refused("no".into())
    });
}

fn refused(wasm: &[u8], check: impl Fn(&LoadError) -> bool) {
    let host = host();
    let err = load(&host, wasm).expect_err("module must be refused");
    assert!(check(&err), "unexpected error: {err:?} ({err})");
    assert_serves(&standard(&host));
}

#[test]
fn forbidden_import_is_named() {
    let wasm = wat::parse_str(
        r#"(module
             (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "zhtp_abi_v1"))
             (func (export "pricing_quote") (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    refused(&wasm, |e| {
        matches!(e, LoadError::ForbiddenImport { module, name, .. }
            if module == "wasi_snapshot_preview1" && name == "fd_write")
            && e.to_string().contains("zhtp:env/v1::output_set")
    });
}

#[test]
fn wrong_import_signature_is_named() {
    let wasm = wat::parse_str(
        r#"(module
             (import "zhtp:env/v1" "input_len" (func (param i64) (result i32)))
             (memory (export "memory") 1)
             (func (export "zhtp_abi_v1"))
             (func (export "pricing_quote") (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    refused(
        &wasm,
        |e| matches!(e, LoadError::ImportSignature { name, .. } if name == "input_len"),
    );
}

#[test]
fn missing_marker_is_refused() {
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "pricing_quote") (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    refused(&wasm, |e| {
        matches!(e, LoadError::MissingMarker { min: 1, max: 1 })
    });
}

#[test]
fn unknown_version_marker_names_the_supported_range() {
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "zhtp_abi_v9"))
             (func (export "pricing_quote") (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    refused(&wasm, |e| {
        matches!(e, LoadError::UnsupportedVersion { found, min: 1, max: 1 } if found == "zhtp_abi_v9")
            && e.to_string().contains("v1..=v1")
    });
}

#[test]
fn two_markers_are_refused() {
    let wasm = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "zhtp_abi_v1")) (func (export "zhtp_abi_v2"))
             (func (export "pricing_quote") (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    refused(&wasm, |e| matches!(e, LoadError::MultipleMarkers(_)));
}

#[test]
fn missing_entry_export_is_named() {
    let wasm =
        wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "zhtp_abi_v1")))"#)
            .unwrap();
    refused(&wasm, |e| {
        matches!(
            e,
            LoadError::MissingExport {
                name: "pricing_quote",
                ..
            }
        )
    });
}

#[test]
fn oversized_initial_memory_is_refused() {
    // 1000 pages = 62.5 MiB, over the 4 MiB test cap.
    refused(
        &guest("(i32.const 0)", "", 1000),
        |e| matches!(e, LoadError::Memory(m) if m.contains("limit")),
    );
}

#[test]
fn garbage_bytes_are_refused() {
    refused(b"\0asm\x01\0\0\0garbage", |e| {
        matches!(e, LoadError::InvalidWasm(_))
    });
    refused(b"MZ\x90\0 definitely not wasm", |e| {
        matches!(e, LoadError::InvalidWasm(_))
    });
}

#[test]
fn oversize_module_is_refused_before_parsing() {
    let host = zhtp_host::Host::new(Limits::default().with_code_size(64 * 1024)).unwrap();
    let big = guest(
        "(i32.const 0)",
        &format!(r#"(data (i32.const 0) "{}")"#, "x".repeat(100_000)),
        2,
    );
    let err = host.load(Kind::Pricing, &big).expect_err("too large");
    assert!(
        matches!(err, LoadError::TooLarge { max: 65_536, .. }),
        "{err:?}"
    );
    assert_serves(&standard(&host));
}

#[test]
fn registry_refuses_a_hostile_plugin_and_keeps_serving() {
    let host = host();
    let registry = zhtp_host::Registry::open(host, None, zhtp_artifacts::PRICING_STANDARD).unwrap();
    let before = registry.slot().current.plugin().info().hash;
    let err = registry
        .install(&guest("(loop (br 0)) (i32.const 0)", "", 1))
        .expect_err("an infinite loop fails its self-check");
    assert!(err.to_string().contains("self-check failed"), "{err}");
    assert!(err.to_string().contains("time limit"), "{err}");
    assert_eq!(registry.slot().current.plugin().info().hash, before);
    assert!(registry.slot().previous.is_none());
    assert_eq!(
        registry.quote(&golden_request()).unwrap().quote.total,
        117_000_000
    );
}
