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

/// `zhtp plugin check` (the tool an author runs before shipping): the two bundled plugins pass
/// with all 48 self-check answers shown; a plugin that refuses requests and one with a
/// forbidden import fail, each saying why, with a non-zero exit; nothing is installed.
#[test]
fn plugin_check_reports_every_check_and_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let check = |file: &std::path::Path, json: bool| {
        let mut args = vec!["plugin", "check", file.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        zhtp(d, &args)
    };
    for name in ["pricing-standard", "pricing-surge"] {
        let file = d.join(format!("{name}.wasm"));
        ok(d, &["plugin", "export", name, "-o", file.to_str().unwrap()]);
        let text = String::from_utf8(check(&file, false).stdout).unwrap();
        assert!(
            text.contains(&format!("ok    {name}@0.1.0, ABI v1")),
            "{text}"
        );
        assert!(text.contains("48 requests, 0 failed"), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("  ok ")).count(), 49);
        assert!(
            text.contains("passed: `zhtp plugin install pricing"),
            "{text}"
        );
        let out = check(&file, true);
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["passed"], true);
        assert_eq!(v["load"]["name"], format!("{name}@0.1.0"));
        let calls = v["self_check"]["calls"].as_array().unwrap();
        assert_eq!(calls.len(), 48);
        assert!(
            calls
                .iter()
                .all(|c| c["problem"].is_null() && c["quote"]["total"].as_u64().unwrap() > 0)
        );
        assert_eq!(calls[3]["request"]["size_bytes"], 2_000_000_000u64);
    }

    // Valid, but refuses every request: every sample fails, each with the plugin's reason.
    let closed = d.join("closed.wasm");
    let wat = r#"(module
        (import "zhtp:env/v1" "output_set" (func $set (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "closed")
        (func (export "zhtp_abi_v1"))
        (func (export "pricing_quote") (result i32)
          (drop (call $set (i32.const 0) (i32.const 6))) (i32.const 1)))"#;
    std::fs::write(&closed, wat::parse_str(wat).unwrap()).unwrap();
    let out = check(&closed, false);
    assert!(!out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("48 requests, 48 failed"), "{text}");
    assert!(
        text.contains("FAIL  1 B, 1 d, hot") && text.contains("plugin refused the request: closed"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("would be refused"));
    let v: serde_json::Value = serde_json::from_slice(&check(&closed, true).stdout).unwrap();
    assert_eq!(
        (v["passed"].clone(), v["load"]["ok"].clone()),
        (false.into(), true.into())
    );
    assert_eq!(
        v["load"]["name"].as_str().unwrap().len(),
        "unnamed@".len() + 10
    );

    // Refused at validation: named import, and no self-check run.
    let wasi = d.join("wasi.wasm");
    let wat = r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "zhtp_abi_v1"))
        (func (export "pricing_quote") (result i32) (i32.const 0)))"#;
    std::fs::write(&wasi, wat::parse_str(wat).unwrap()).unwrap();
    let out = check(&wasi, false);
    assert!(!out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("FAIL  forbidden import `wasi_snapshot_preview1::fd_write`"),
        "{text}"
    );
    assert!(text.contains("self-check: not run"), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&check(&wasi, true).stdout).unwrap();
    assert!(v["self_check"].is_null() && v["load"]["ok"] == false);

    assert!(!d.join("plugins").exists(), "check installed something");
}

/// `zhtp plugin check --kind quality`: the bundled quality-sla passes with its five periods
/// judged; a plugin that flags a clean period fails naming it; a quality plugin cannot be
/// `install`ed on a running node (it is set at start), and a failing one keeps a node from
/// starting with it.
#[test]
fn quality_plugins_are_checked_and_a_failing_one_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sla = d.join("quality-sla.wasm");
    ok(
        d,
        &[
            "plugin",
            "export",
            "quality-sla",
            "-o",
            sla.to_str().unwrap(),
        ],
    );
    let check = |file: &std::path::Path, json: bool| {
        let mut args = vec![
            "plugin",
            "check",
            "--kind",
            "quality",
            file.to_str().unwrap(),
        ];
        if json {
            args.push("--json");
        }
        zhtp(d, &args)
    };
    let text = String::from_utf8(check(&sla, false).stdout).unwrap();
    assert!(text.contains("ok    quality-sla@0.1.0, ABI v1"), "{text}");
    assert!(text.contains("5 periods, 0 failed"), "{text}");
    assert!(text.contains("lost       4 = 0/0/4/0"), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&check(&sla, true).stdout).unwrap();
    assert_eq!(v["passed"], true);
    let calls = v["self_check"]["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 5);
    assert_eq!(calls[1]["assessment"]["violations"][0], "data-loss");
    assert_eq!(calls[0]["assessment"]["bonus_bp"], 1_500);
    // A pricing plugin is not a quality plugin: named export missing.
    let standard = d.join("standard.wasm");
    ok(
        d,
        &[
            "plugin",
            "export",
            "pricing-standard",
            "-o",
            standard.to_str().unwrap(),
        ],
    );
    let out = check(&standard, false);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("quality_assess"),
        "the missing entry is named"
    );

    // Calls every period a slow response: fails the self-check at its clean period.
    let picky = d.join("picky.wasm");
    let wat = r#"(module
        (import "zhtp:env/v1" "output_set" (func $set (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "\00\00\01\02")
        (func (export "zhtp_abi_v1"))
        (func (export "quality_assess") (result i32)
          (drop (call $set (i32.const 0) (i32.const 4))) (i32.const 0)))"#;
    std::fs::write(&picky, wat::parse_str(wat).unwrap()).unwrap();
    let out = check(&picky, false);
    assert!(!out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("FAIL  clean"), "{text}");
    assert!(text.contains("R-qcheck-clean"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--quality-plugin"));

    let out = zhtp(d, &["plugin", "install", "quality", sla.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--quality-plugin FILE"));
    let out = zhtp(
        d,
        &[
            "node",
            "run",
            "--api",
            "127.0.0.1:0",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--quality-plugin",
            picky.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "the node must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fails the quality self-check") && err.contains("clean period"),
        "{err}"
    );
}

/// `zhtp plugin check --kind tier` shows each request and choice; a tier plugin that asks for
/// more shards than the network has nodes fails it, and a node refuses to start with it.
#[test]
fn tier_plugins_are_checked_and_a_failing_one_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let policy = d.join("tier-policy.wasm");
    ok(
        d,
        &[
            "plugin",
            "export",
            "tier-policy",
            "-o",
            policy.to_str().unwrap(),
        ],
    );
    let text = String::from_utf8(
        zhtp(
            d,
            &[
                "plugin",
                "check",
                "--kind",
                "tier",
                policy.to_str().unwrap(),
            ],
        )
        .stdout,
    )
    .unwrap();
    assert!(text.contains("ok    tier-policy@0.1.0, ABI v1"), "{text}");
    assert!(text.contains("5 requests, 0 failed"), "{text}");
    assert!(
        text.contains("large-archive-put  1.07 GB, archive, new, 40 nodes    archive 16+6"),
        "{text}"
    );
    // Always 8+4, even on three nodes.
    let wide = d.join("wide.wasm");
    let wat = r#"(module
        (import "zhtp:env/v1" "output_set" (func $set (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 0) "\01\08\04")
        (func (export "zhtp_abi_v1"))
        (func (export "tier_choose") (result i32)
          (drop (call $set (i32.const 0) (i32.const 3))) (i32.const 0)))"#;
    std::fs::write(&wide, wat::parse_str(wat).unwrap()).unwrap();
    let out = zhtp(
        d,
        &["plugin", "check", "--kind", "tier", wide.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("FAIL  three-node-put"), "{text}");
    assert!(text.contains("above the nodes known"), "{text}");
    let out = zhtp(
        d,
        &[
            "node",
            "run",
            "--api",
            "127.0.0.1:0",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--tier-plugin",
            wide.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "the node must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fails the tier self-check") && err.contains("large-archive-put"),
        "{err}"
    );
}

/// `zhtp stats` without `--node`: a stopped node's economy and storage from its data dir, no
/// DHT part, and a content put there counted.
#[test]
fn stats_of_a_stopped_node_come_from_its_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let stats =
        || -> serde_json::Value { serde_json::from_str(&ok(d, &["stats", "--json"])).unwrap() };
    let v = stats();
    assert!(v["dht"].is_null(), "{v}");
    assert_eq!(v["economy"]["supply"], 0);
    assert_eq!(v["storage"]["local_contents"], 0);
    support::owner_in(d);
    let input = d.join("in.txt");
    std::fs::write(&input, b"counted by stats").unwrap();
    ok(d, &["put", input.to_str().unwrap()]);
    let v = stats();
    assert_eq!(v["storage"]["local_contents"], 1, "{v}");
    assert_eq!(v["economy"]["contracts"], serde_json::json!({}));
    let text = ok(d, &["stats"]);
    assert!(text.contains("dht:      not running"), "{text}");
    assert!(text.contains("1 content(s) put here"), "{text}");
}

/// `zhtp contract new` scaffolds a crate that builds into a contract with one cargo command,
/// outside this repository, as a user would; the host then runs what it built.
#[test]
fn contract_new_scaffolds_a_crate_that_builds_and_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().to_str().unwrap();
    let bad = zhtp(
        tmp.path(),
        &["contract", "new", "My Contract", "--dir", parent],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a crate name"));
    ok(
        tmp.path(),
        &["contract", "new", "my-counter", "--dir", parent],
    );
    let again = zhtp(
        tmp.path(),
        &["contract", "new", "my-counter", "--dir", parent],
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    // The guests' target dir of this build, when there is one: the SDK's dependencies are
    // compiled there already.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| std::path::PathBuf::from(t).join("guests"))
        .unwrap_or_else(|| tmp.path().join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = std::process::Command::new(cargo)
        .current_dir(tmp.path().join("my-counter"))
        .args([
            "build",
            "--target",
            "wasm32-unknown-unknown",
            "--release",
            "--offline",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let wasm =
        std::fs::read(target.join("wasm32-unknown-unknown/release/my_counter.wasm")).unwrap();
    let host = zhtp_host::Contracts::new().unwrap();
    let code = host.load(&wasm).unwrap();
    assert!(
        code.info().name.starts_with("my-counter@"),
        "{}",
        code.info().name
    );
    let mut state = std::collections::BTreeMap::new();
    let mut call = |entry, msg: &str| {
        let o = code.run(
            zhtp_host::Call {
                entry,
                msg: msg.as_bytes().to_vec(),
                caller: [1; 32],
                address: [9; 32],
                sequence: 0,
                time: 0,
                funds: 0,
                balance: 0,
                gas_limit: zhtp_host::abi::contract::DEFAULT_GAS_LIMIT,
            },
            std::sync::Arc::new(state.clone()),
        );
        for w in &o.writes {
            match &w.after {
                Some(v) => state.insert(w.key.clone(), v.clone()),
                None => state.remove(&w.key),
            };
        }
        String::from_utf8(o.result.unwrap()).unwrap()
    };
    assert_eq!(
        call(zhtp_host::Entry::Instantiate, r#"{"start":1}"#),
        r#"{"count":1}"#
    );
    assert_eq!(
        call(zhtp_host::Entry::Execute, r#"{"increment":{"by":2}}"#),
        r#"{"count":3}"#
    );
    assert_eq!(
        call(zhtp_host::Entry::Query, r#"{"count":{}}"#),
        r#"{"count":3}"#
    );
}

/// `zhtp contract check` validates a contract, dry-runs its instantiate, and says what is wrong
/// with a module that is not one.
#[test]
fn contract_check_validates_and_dry_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let counter = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/counter-v1.wasm"
    );
    let out = ok(tmp.path(), &["contract", "check", counter]);
    assert!(out.starts_with("valid: counter@0.1.0 (ABI v1"), "{out}");
    let out = ok(
        tmp.path(),
        &["contract", "check", counter, "--msg", r#"{"start":7}"#],
    );
    assert!(out.contains(r#"instantiate: {"count":7}"#), "{out}");
    assert!(out.contains("2 key(s) written"), "{out}");
    // A bad message: the contract's refusal, and a failing exit.
    let bad = zhtp(tmp.path(), &["contract", "check", counter, "--msg", "{}"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("malformed message"),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );
    // A pricing plugin is no contract: which export is missing is said.
    let plugin = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/pricing-standard-v1.wasm"
    );
    let out = zhtp(tmp.path(), &["contract", "check", plugin]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("contract_instantiate"), "{err}");
}
