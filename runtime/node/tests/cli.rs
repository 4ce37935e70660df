//! The `zhtp` binary end to end, in a temporary data directory.

#[path = "support/cli.rs"]
mod support;
use support::zhtp;

fn ok(dir: &std::path::Path, args: &[&str]) -> String {
    let out = zhtp(dir, args);
    assert!(
        out.status.success(),
        "zhtp {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn total(dir: &std::path::Path) -> (u64, String) {
    let out = ok(
        dir,
        &[
            "quote",
            "--size",
            "1GB",
            "--days",
            "1",
            "--tier",
            "warm",
            "--quality",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    for field in [
        "base",
        "quality_premium",
        "network_fee",
        "escrow_fee",
        "max_bonus",
        "total",
    ] {
        assert!(v[field].is_u64(), "{field} is an integer µZHTP amount: {v}");
    }
    assert_eq!(v["plugin_hash"].as_str().unwrap().len(), 64);
    (
        v["total"].as_u64().unwrap(),
        v["plugin"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn quote_install_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(total(d), (117_000_000, "pricing-standard@0.1.0".into()));

    let surge = d.join("surge.wasm");
    ok(
        d,
        &[
            "plugin",
            "export",
            "pricing-surge",
            "-o",
            surge.to_str().unwrap(),
        ],
    );
    ok(
        d,
        &["plugin", "install", "pricing", surge.to_str().unwrap()],
    );
    assert_eq!(total(d), (195_200_000, "pricing-surge@0.1.0".into()));

    let list: serde_json::Value =
        serde_json::from_str(&ok(d, &["plugin", "list", "--json"])).unwrap();
    assert_eq!(list[0]["slot"], "current");
    assert_eq!(list[0]["name"], "pricing-surge@0.1.0");
    assert_eq!(list[1]["name"], "pricing-standard@0.1.0");

    ok(d, &["plugin", "rollback", "pricing"]);
    assert_eq!(total(d).0, 117_000_000);
}

#[test]
fn bad_plugin_file_is_one_error_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = d.join("bad.wasm");
    std::fs::write(&bad, b"this is not wasm").unwrap();
    let out = zhtp(d, &["plugin", "install", "pricing", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: ") && err.contains("not a valid WebAssembly module"),
        "{err}"
    );
    assert_eq!(total(d).0, 117_000_000);

    let out = zhtp(d, &["plugin", "install", "pricing", "/does/not/exist.wasm"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));

    // Plugin kinds are checked by the argument parser, which lists the known ones.
    let out = zhtp(d, &["plugin", "install", "colour", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid value 'colour'") && err.contains("possible values: pricing"),
        "{err}"
    );
}

#[test]
fn sizes_accept_units_and_bad_input_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let q = |size: &str| -> u64 {
        let out = ok(d, &["quote", "--size", size, "--days", "1", "--json"]);
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["base"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(q("1GB"), 100_000_000);
    assert_eq!(q("1000000000"), 100_000_000);
    assert_eq!(q("500MiB"), 52_428_800); // 524,288,000 B × 0.1 µZHTP/B
    let out = zhtp(d, &["quote", "--size", "5 parsecs", "--days", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit"));
}
