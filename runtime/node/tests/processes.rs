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
