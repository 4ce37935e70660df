//! Node processes killed for real: six `zhtp node run` processes on 127.0.0.1, content put
//! through one, two others SIGKILLed (no goodbye to their peers, their QUIC connections left
//! to time out, their stores not closed), and the content read back through a node that never
//! saw the upload; then a killed node is restarted on its data dir and serves again.

#[path = "support/process.rs"]
mod support;

use support::NodeProcess;

fn ok(out: std::process::Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn content_survives_two_sigkilled_nodes_and_a_restarted_one_serves_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = support::network(tmp.path(), 6);
    let boot = nodes[0].listen.clone();
    let mut bytes = vec![0u8; 6 << 20];
    blake3::Hasher::new()
        .update(b"sigkill")
        .finalize_xof()
        .fill(&mut bytes);
    let file = tmp.path().join("in.bin");
    std::fs::write(&file, &bytes).unwrap();
    // The owner's data dir holds its identity and nothing else: it reads through any node.
    let me = tmp.path().join("owner");
    ok(nodes[0].cli_in(&me, "pw", &["identity", "new", "me"]));
    let put: serde_json::Value = serde_json::from_slice(&ok(nodes[0].cli_in(
        &me,
        "pw",
        &["put", file.to_str().unwrap(), "--tier", "hot", "--json"],
    )))
    .unwrap();
    let hash = put["content_hash"].as_str().unwrap().to_owned();

    nodes[1].kill();
    nodes[2].kill();
    let out = tmp.path().join("out.bin");
    ok(nodes[5].cli_in(&me, "pw", &["get", &hash, "-o", out.to_str().unwrap()]));
    assert!(std::fs::read(&out).unwrap() == bytes, "wrong bytes back");

    // A SIGKILLed node's store was never closed: it opens again, with what it held.
    let dir = nodes[1].dir.clone();
    nodes[1] = NodeProcess::start(&dir, &boot);
    nodes[1].wait_for_peers(3);
    let held = nodes[1].status()["shards"].as_u64().unwrap();
    assert!(held > 0, "the restarted node lost its shards");
    let out = tmp.path().join("out2.bin");
    ok(nodes[1].cli_in(&me, "pw", &["get", &hash, "-o", out.to_str().unwrap()]));
    assert!(
        std::fs::read(&out).unwrap() == bytes,
        "wrong bytes back after the restart"
    );
}

#[test]
fn contracts_through_the_command_line_of_three_node_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = support::network(tmp.path(), 3);
    let fail = |out: std::process::Output| {
        assert!(
            !out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    };
    let wasm = tmp.path().join("counter.wasm");
    std::fs::write(&wasm, zhtp_artifacts::COUNTER).unwrap();
    let plugin = tmp.path().join("pricing.wasm");
    std::fs::write(&plugin, zhtp_artifacts::PRICING_STANDARD).unwrap();

    // A plugin is refused before anything is sent; the counter is deployed through node 0.
    let e = fail(nodes[0].cli(&["contract", "deploy", plugin.to_str().unwrap()]));
    assert!(e.contains("not a valid v1 contract"), "{e}");
    let code = String::from_utf8(ok(nodes[0].cli(&[
        "contract",
        "deploy",
        wasm.to_str().unwrap(),
    ])))
    .unwrap();
    let code = code.trim();
    assert_eq!(
        code,
        blake3::hash(zhtp_artifacts::COUNTER).to_hex().as_str()
    );

    // Instantiated from node 1 (its creator and owner), executed from node 2, queried from 0.
    let made: serde_json::Value = serde_json::from_slice(&ok(nodes[1].cli(&[
        "contract",
        "instantiate",
        code,
        "--msg",
        r#"{"start":5}"#,
        "--json",
    ])))
    .unwrap();
    assert_eq!(made["output"], serde_json::json!({"count": 5}));
    assert_eq!(made["agreeing"], 3);
    let address = made["address"].as_str().unwrap();
    let out = String::from_utf8(ok(nodes[2].cli(&[
        "contract",
        "execute",
        address,
        "--msg",
        r#"{"increment":{"by":1}}"#,
    ])))
    .unwrap();
    assert!(out.contains(r#"answer    {"count":6}"#), "{out}");
    assert!(
        out.contains("version 1,") && out.contains("agreed by 3 of 3"),
        "{out}"
    );
    let out = String::from_utf8(ok(nodes[0].cli(&[
        "contract",
        "query",
        address,
        "--msg",
        r#"{"count":{}}"#,
    ])))
    .unwrap();
    assert!(out.contains(r#"answer    {"count":6}"#), "{out}");

    // The contract's own refusal: only its owner (node 1) resets it. Nothing changes.
    let e = fail(nodes[2].cli(&["contract", "execute", address, "--msg", r#"{"reset":{}}"#]));
    assert!(
        e.contains("the contract's execute failed: the contract refused"),
        "{e}"
    );
    // SPEC R-c-net-caller: the caller is the node the command went to; node 1 owns it.
    let out = String::from_utf8(ok(nodes[1].cli(&[
        "contract",
        "execute",
        address,
        "--msg",
        r#"{"reset":{}}"#,
    ])))
    .unwrap();
    assert!(out.contains(r#"answer    {"count":0}"#), "{out}");
    let out = String::from_utf8(ok(nodes[2].cli(&[
        "contract",
        "execute",
        address,
        "--msg",
        r#"{"increment":{"by":6}}"#,
    ])))
    .unwrap();
    assert!(
        out.contains(r#"answer    {"count":6}"#) && out.contains("version 3,"),
        "{out}"
    );
    // Bad input, each named.
    let e = fail(nodes[0].cli(&["contract", "execute", address, "--msg", "{count"]));
    assert!(e.contains("is not JSON"), "{e}");
    let e = fail(nodes[0].cli(&[
        "contract", "execute", address, "--msg", "{}", "--funds", "5",
    ]));
    assert!(e.contains("funds are not supported"), "{e}");
    let nowhere = "ab".repeat(32);
    let e = fail(nodes[0].cli(&["contract", "query", &nowhere, "--msg", "{}"]));
    assert!(e.contains("no contract at"), "{e}");
    let e = fail(nodes[0].cli(&["contract", "query", "xyz", "--msg", "{}"]));
    assert!(e.contains("not a contract address"), "{e}");

    // The API as curl sees it: a query with the token answers; without it, 401.
    let path = format!("/contracts/{address}/query");
    let (status, body) = nodes[1].api(
        "POST",
        &path,
        &["Content-Type: application/json".into()],
        br#"{"msg":{"count":{}}}"#,
    );
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (
            reply["output"]["count"].as_u64(),
            reply["sequence"].as_u64()
        ),
        (Some(6), Some(3))
    );
    let (status, _) = support::http(
        &nodes[1].addr,
        "POST",
        &path,
        &[
            format!("Host: {}", nodes[1].addr),
            "Content-Type: application/json".into(),
        ],
        br#"{"msg":{}}"#,
    );
    assert_eq!(status, 401);
}
