//! Accounts of a node's ledger through `zhtp account` and the API: a devnet's faucet funds an
//! identity's account; a node started without `--devnet` never mints, through any door.

use std::path::Path;

#[path = "support/cli.rs"]
mod cli;
#[path = "support/process.rs"]
mod process;

use process::{NodeProcess, ok};

const JSON: &str = "Content-Type: application/json";

/// `zhtp node run` on `dir` with `flags` must refuse to start, saying `why`.
fn refuses_to_start(dir: &Path, flags: &[&str], why: &str) {
    let mut args = vec!["node", "run"];
    args.extend_from_slice(flags);
    args.extend(["--api", "127.0.0.1:0", "--listen", "/ip4/127.0.0.1/tcp/0"]);
    let out = cli::zhtp(dir, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains(why), "{err}");
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn a_devnet_faucet_funds_an_identity_and_the_total_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let node = NodeProcess::start_with(&tmp.path().join("node"), &[], &["--devnet"]);
    let me = tmp.path().join("me");
    ok(node.cli_in(&me, "pw", &["account", "new", "alice"]));
    let paid = json(&ok(node.cli_in(
        &me,
        "",
        &["account", "fund", "alice", "12.5", "--json"],
    )));
    assert_eq!(paid["amount"], 12_500_000);
    assert_eq!(paid["from"], "faucet");
    assert_eq!(paid["kind"], "faucet");
    ok(node.cli_in(&me, "", &["account", "fund", "alice", "500000u"]));
    // `show` needs no passphrase, and with one identity no name either.
    let shown = json(&ok(node.cli_in(&me, "", &["account", "show", "--json"])));
    assert_eq!(shown["balance"], 13_000_000);
    assert_eq!(shown["supply"], 1_000_000_000_000_000u64);
    assert_eq!(shown["devnet"], true);
    assert_eq!(shown["history"].as_array().unwrap().len(), 2);
    assert_eq!(shown["history"][0]["amount"], 500_000, "newest first");
    let id = shown["account"].as_str().unwrap().to_owned();
    // The faucet holds the rest: nothing was minted on the way.
    let text = ok(node.cli_in(&me, "", &["account", "show", &id]));
    assert!(text.contains("balance   13 ZHTP"), "{text}");

    // Bad input, each with its own line; nothing moves.
    for (args, want) in [
        (
            vec!["account", "fund", "alice", "1.0000001"],
            "is not an amount",
        ),
        (vec!["account", "fund", "alice", "0"], "at least 1 µZHTP"),
        (
            vec!["account", "fund", "bob", "1"],
            "no identity named \"bob\"",
        ),
        (
            vec!["account", "fund", "alice", "1000000001"],
            "faucet has 999999987 ZHTP and cannot pay 1000000001 ZHTP",
        ),
    ] {
        let out = node.cli_in(&me, "", &args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        // The first line says it (clap adds a hint for a bad argument).
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: ") && first.contains(want),
            "{args:?}: {err}"
        );
    }
    let shown = json(&ok(node.cli_in(
        &me,
        "",
        &["account", "show", &id, "--json"],
    )));
    assert_eq!(shown["balance"], 13_000_000);

    // The API as curl would use it: the same request id pays once.
    let body = format!(r#"{{"amount":7,"id":"{}"}}"#, "ab".repeat(32));
    let headers = [JSON.to_owned()];
    let path = format!("/accounts/{id}/fund");
    for _ in 0..2 {
        let (code, reply) = node.api("POST", &path, &headers, body.as_bytes());
        assert_eq!(code, 200, "{reply}");
    }
    let shown = json(&ok(node.cli_in(
        &me,
        "",
        &["account", "show", &id, "--json"],
    )));
    assert_eq!(shown["balance"], 13_000_007);
    // Another request under that id is refused.
    let other = format!(r#"{{"amount":8,"id":"{}"}}"#, "ab".repeat(32));
    let (code, reply) = node.api("POST", &path, &headers, other.as_bytes());
    assert_eq!(code, 409, "{reply}");
    assert!(reply.contains("is taken by another transfer"), "{reply}");

    // A devnet's data dir stays one: started without --devnet it says so and stops.
    let mut node = node;
    node.kill();
    refuses_to_start(&node.dir, &[], "start it with --devnet");
}

#[test]
fn a_node_started_without_devnet_never_mints() {
    let tmp = tempfile::tempdir().unwrap();
    let node = NodeProcess::start(&tmp.path().join("node"), &[]);
    let me = tmp.path().join("me");
    ok(node.cli_in(&me, "pw", &["account", "new", "alice"]));
    let out = node.cli_in(&me, "", &["account", "fund", "alice", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this ledger has no faucet"), "{err}");
    let shown = json(&ok(node.cli_in(&me, "", &["account", "show", "--json"])));
    assert_eq!(
        (shown["balance"].as_u64(), shown["supply"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(shown["devnet"], false);
    // The API says so too (403), and a local data dir without a devnet genesis as well.
    let (code, reply) = node.api(
        "POST",
        &format!("/accounts/{}/fund", shown["account"].as_str().unwrap()),
        &[JSON.to_owned()],
        br#"{"amount":1}"#,
    );
    assert_eq!(code, 403, "{reply}");
    let out = cli::zhtp(&me, &["account", "fund", &"cd".repeat(32), "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("this ledger has no faucet"),
        "{err}"
    );
    // Nor can it become a devnet later: the node refuses to start with --devnet.
    let mut node = node;
    node.kill();
    refuses_to_start(&node.dir, &["--devnet"], "started without --devnet");
}

#[test]
fn a_put_through_a_devnet_node_is_paid_by_the_identity_and_without_funds_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let node = NodeProcess::start_with(&tmp.path().join("node"), &[], &["--devnet"]);
    assert_eq!(node.status()["charges"], true);
    let me = tmp.path().join("me");
    ok(node.cli_in(&me, "pw", &["account", "new", "alice"]));
    let file = tmp.path().join("paid.txt");
    std::fs::write(&file, b"storage that is paid for").unwrap();
    let path = file.to_str().unwrap();

    // No funds: one line naming the shortfall, and nothing stored.
    let out = node.cli_in(&me, "pw", &["put", path, "--identity", "alice"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("has 0 ZHTP and this put costs") && err.contains("fund it first"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_eq!(node.status()["shards"], 0);

    // Funded: the put pays its quote into escrow, and the contract shows. (Two megabytes: a
    // price large enough to carry a network fee.) Its shards are committed for proof audits.
    ok(node.cli_in(&me, "", &["account", "fund", "alice", "10"]));
    let bytes: Vec<u8> = (0..2_000_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&file, bytes).unwrap();
    let put = json(&ok(node.cli_in(
        &me,
        "pw",
        &["put", path, "--days", "3", "--proof-audits", "--json"],
    )));
    let c = &put["contract"];
    assert_eq!(c["state"], "active", "{put}");
    assert!(c["committed"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(c["committed"], c["shards"], "{c}");
    assert_eq!(c["periods"], 3);
    let price = c["price"].as_u64().unwrap();
    assert!(price > 0);
    let fee = c["fee"].as_u64().unwrap();
    assert!(fee > 0 && fee * 10 <= price, "the quote's network fee: {c}");
    // The whole price is in escrow; the fee waits there for the first period paid.
    assert_eq!(c["escrow"]["funded"], price);
    assert_eq!(c["fee_pending"], fee);
    let shown = json(&ok(node.cli_in(&me, "", &["account", "show", "--json"])));
    assert_eq!(shown["balance"], 10_000_000 - price);
    // `zhtp stats` sees it all: the contract, the escrow (the fee still in it), the content
    // and its shards, the node's DHT.
    let stats = json(&ok(node.cli(&["stats", "--json"])));
    let e = &stats["economy"];
    assert_eq!(e["contracts"]["active"], 1, "{stats}");
    assert_eq!(
        (e["escrowed"].as_u64(), e["open_escrows"].as_u64()),
        (Some(price), Some(1))
    );
    assert_eq!(e["incentive_pool"], 0);
    assert_eq!(e["supply"], 1_000_000_000_000_000u64);
    assert_eq!(e["devnet"], true);
    assert_eq!(stats["storage"]["local_contents"], 1);
    assert_eq!(stats["storage"]["shards"], node.status()["shards"]);
    assert_eq!(stats["storage"]["held_contents"], 1);
    assert_eq!(stats["dht"]["peer_id"], node.status()["peer_id"]);
    let text = ok(node.cli(&["stats"]));
    assert!(
        text.contains("1 active") && text.contains("1 content(s) put here"),
        "{text}"
    );
    let list = json(&ok(node.cli(&["storage-contract", "list", "--json"])));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["fee_pending"], fee, "read from the ledger");
    let id = c["id"].as_str().unwrap();
    let one = ok(node.cli(&["storage-contract", "show", id]));
    assert!(one.contains("state       Active"), "{one}");
    let shards = c["shards"].as_u64().unwrap();
    assert!(
        one.contains(&format!("{shards} ({shards} committed for proof audits)")),
        "{one}"
    );
    // An audit round: the node is its own provider and proves it keeps its shards; `show`
    // lists the proof audit.
    let audit = json(&ok(node.cli(&["storage-contract", "audit"])));
    assert_eq!(audit["audits"], 1, "{audit}");
    assert_eq!(audit["passed"], 1, "{audit}");
    assert_eq!(audit["proofs"][0][2], true, "{audit}");
    let one = ok(node.cli(&["storage-contract", "show", id]));
    let line = one
        .lines()
        .find(|l| l.starts_with("  proof     period 0"))
        .unwrap_or_else(|| panic!("no proof audit listed: {one}"));
    assert!(
        line.contains("circuit v1-d8-s10") && line.contains("passed"),
        "{line}"
    );
    // A budget below the quote is refused before anything is stored.
    std::fs::write(&file, b"another content").unwrap();
    let out = node.cli_in(&me, "pw", &["put", path, "--max-price", "1u"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("budget"), "{err}");
}
