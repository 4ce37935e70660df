//! Content keys wrapped for their owner in the manifest: the owner reads through any node, no
//! node keeps the key, and nobody else gets it. Real nodes (libp2p on 127.0.0.1, RocksDB in
//! temp dirs); the CLI and the API through `zhtp node run` processes.

use std::path::Path;
use std::process::Output;

use zhtp::api::signed;
use zhtp::keystore::Keystore;
use zhtp::network::Node;
use zhtp::readers;
use zhtp_content::{EncryptionLevel, Manifest};
use zhtp_identity::Identity;
use zhtp_identity::wrap::Scheme;
use zhtp_store::Cf;

#[path = "support/net.rs"]
mod net;
#[path = "support/process.rs"]
mod process;

use net::{data, network, opts};
use process::ok;

async fn put_for(
    node: &Node,
    dir: &tempfile::TempDir,
    bytes: &[u8],
    level: EncryptionLevel,
    owner: &Identity,
) -> zhtp::network::Stored {
    let path = dir.path().join(format!("in-{level}"));
    std::fs::write(&path, bytes).unwrap();
    let mut o = opts(level);
    o.readers = vec![owner.public()];
    o.metadata.name = Some(format!("secret-name-{level}"));
    o.metadata.tags = vec!["secret-tag".into()];
    node.put_file(&path, o).await.unwrap()
}

/// Every file under `dir` (RocksDB's log, tables and pack files included) searched for `key`.
fn found_in(dir: &Path, key: &[u8; 32]) -> bool {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p)
                && b.windows(32).any(|w| w == key)
            {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_reads_through_any_node_and_no_node_keeps_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 3).await;
    let (alice, carol) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let levels = [
        EncryptionLevel::Standard,
        EncryptionLevel::High,
        EncryptionLevel::QuantumResistant,
    ];
    for (i, level) in levels.into_iter().enumerate() {
        let bytes = data(300_000, 11 + 2 * i as u64);
        let stored = put_for(&nodes[0], &tmp, &bytes, level, &alice).await;
        let hash = stored.manifest.content_hash;
        for n in &nodes {
            assert!(
                n.local()
                    .store()
                    .get(Cf::Keys, hash.as_bytes())
                    .unwrap()
                    .is_none(),
                "a node keeps the key"
            );
        }
        // A node that never saw the put fetches the manifest from the DHT; alice unwraps it.
        let m = nodes[2].manifest(&hash).await.unwrap();
        assert_eq!(readers::ids(&m).unwrap(), [alice.public().id()]);
        let want = readers::scheme(level).unwrap();
        assert!(
            readers::check(&m)
                .unwrap()
                .iter()
                .all(|w| w.scheme() == want)
        );
        let key = readers::unwrap(&m, &alice).unwrap();
        assert_eq!(
            nodes[2].get_bytes(&hash, Some(key.clone())).await.unwrap(),
            bytes
        );
        assert!(matches!(
            nodes[0].get_bytes(&hash, None).await,
            Err(zhtp::network::Error::NoKey(_))
        ));
        // The name and tags are in the manifest only encrypted; alice reads them.
        let record = m.encode();
        for s in [format!("secret-name-{level}"), "secret-tag".to_owned()] {
            assert!(!record.windows(s.len()).any(|w| w == s.as_bytes()), "{s}");
        }
        assert_eq!(m.metadata.name, None);
        let md = m.open_metadata(&key).unwrap();
        assert_eq!(
            md.name.as_deref(),
            Some(format!("secret-name-{level}").as_str())
        );
        assert_eq!(md.tags, ["secret-tag"]);
        assert!(
            nodes[0]
                .local()
                .list(Some("secret-tag"))
                .unwrap()
                .is_empty()
        );
        // Carol is not a reader: nothing to unwrap.
        assert!(matches!(
            readers::unwrap(&m, &carol),
            Err(readers::Error::NotAReader { .. })
        ));
        // And the key is nowhere on any node's disk, while the search does find 32 bytes
        // the storing node keeps (a shard hash, in its manifest).
        for i in 0..3 {
            assert!(!found_in(&tmp.path().join(format!("node-{i}")), &key.0));
        }
        let shard = m.segments[0].shards[0];
        assert!(found_in(&tmp.path().join("node-0"), shard.as_bytes()));
    }
    // Without an owner no encrypted put starts: nobody could ever read it.
    let path = tmp.path().join("no-owner");
    std::fs::write(&path, data(10_000, 99)).unwrap();
    for level in levels {
        let mut o = opts(level);
        o.readers.clear();
        let e = nodes[0].put_file(&path, o).await.unwrap_err();
        assert!(
            matches!(
                e,
                zhtp::network::Error::Local(zhtp::local::Error::NeedsReader(l)) if l == level
            ),
            "{e}"
        );
    }
    assert!(nodes[0].local().list(None).unwrap().len() == levels.len());
}

/// Wraps someone could slip into a manifest: an altered one, one for another key (a valid wrap,
/// made by someone who can write the manifest), a classical one in a quantum content, and one
/// reader named twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_wraps_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 3).await;
    let (alice, carol) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let bytes = data(100_000, 5);
    let stored = put_for(
        &nodes[0],
        &tmp,
        &bytes,
        EncryptionLevel::QuantumResistant,
        &alice,
    )
    .await;
    let m = stored.manifest;
    let hash = m.content_hash;

    let mut altered = m.clone();
    altered.encryption.readers[0][200] ^= 1;
    assert!(matches!(
        readers::unwrap(&altered, &alice),
        Err(readers::Error::Identity(zhtp_identity::Error::Unwrap))
    ));

    // Carol wraps a key of her own for alice, validly, in the right scheme and context.
    let ctx = [b"zhtp/content/v1/".as_slice(), hash.as_bytes()].concat();
    let forged = zhtp_identity::wrap::wrap(&[9; 32], &alice.public(), Scheme::XWing, &ctx)
        .unwrap()
        .as_bytes()
        .to_vec();
    let mut other_key = m.clone();
    other_key.encryption.readers = vec![forged];
    assert!(matches!(
        readers::unwrap(&other_key, &alice),
        Err(readers::Error::Invalid { why, .. }) if why.contains("not the content's key")
    ));

    let key = readers::unwrap(&m, &alice).unwrap();
    let classical = zhtp_identity::wrap::wrap(&key.0, &carol.public(), Scheme::X25519, &ctx)
        .unwrap()
        .as_bytes()
        .to_vec();
    let mut mixed = m.clone();
    mixed.encryption.readers.push(classical);
    assert!(matches!(
        readers::check(&mixed),
        Err(readers::Error::Invalid { why, .. }) if why.contains("at level quantum")
    ));
    let mut twice = m.clone();
    twice
        .encryption
        .readers
        .push(m.encryption.readers[0].clone());
    assert!(matches!(
        readers::check(&twice),
        Err(readers::Error::Invalid { why, .. }) if why.contains("named twice")
    ));
    // The network refuses such a manifest as a record: it decodes, and then fails the check.
    let bytes = mixed.encode();
    assert!(Manifest::decode(&bytes).is_ok());
    let record_key = [b"zhtp/m/".as_slice(), hash.as_bytes()].concat();
    assert!(
        zhtp::network::validate_record(&record_key, &m.encode(), &zhtp_dht::PeerId::random())
            .is_ok()
    );
    assert!(
        zhtp::network::validate_record(&record_key, &bytes, &zhtp_dht::PeerId::random()).is_err()
    );
}

/// `GET /content/HASH` on `node` with its token and `extra` headers, unsigned.
fn unsigned_get(node: &process::NodeProcess, hash: &str, extra: &[String]) -> (u16, String) {
    node.api("GET", &format!("/content/{hash}"), extra, b"")
}

fn zhtp(dir: &Path, node: &process::NodeProcess, pw: &str, args: &[&str]) -> Output {
    node.cli_in(dir, pw, args)
}

/// `info --json` of `hash` through `node`.
fn info_of(dir: &Path, node: &process::NodeProcess, hash: &str) -> zhtp::wire::ManifestInfo {
    serde_json::from_str(&ok(zhtp(dir, node, "", &["info", hash, "--json"]))).unwrap()
}

/// Three `zhtp node run` processes, and the data dirs of alice (passphrase "a") and bob ("b"),
/// each with its identity.
fn alice_and_bob(
    tmp: &tempfile::TempDir,
) -> (
    Vec<process::NodeProcess>,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    let nodes = process::network(tmp.path(), 3);
    let (alice, bob) = (tmp.path().join("alice"), tmp.path().join("bob"));
    ok(zhtp(&alice, &nodes[0], "a", &["identity", "new", "alice"]));
    ok(zhtp(&bob, &nodes[0], "b", &["identity", "new", "bob"]));
    (nodes, alice, bob)
}

/// Through the CLI and the API: alice puts at the quantum level through one node and gets
/// through another with her passphrase; bob, another identity, gets nothing.
#[test]
fn the_cli_puts_for_an_identity_and_reads_through_another_node() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, alice, bob) = alice_and_bob(&tmp);
    let bytes = data(500_000, 3);
    let file = tmp.path().join("in.bin");
    std::fs::write(&file, &bytes).unwrap();
    let f = file.to_str().unwrap();

    // Through a node, a put for an owner is signed by it: its passphrase is needed.
    let put = ok(zhtp(
        &alice,
        &nodes[0],
        "a",
        &[
            "put",
            f,
            "--encryption",
            "quantum",
            "--identity",
            "alice",
            "--name",
            "plans.pdf",
            "--description",
            "the merger",
            "--json",
        ],
    ));
    let put: serde_json::Value = serde_json::from_str(&put).unwrap();
    assert!(put.get("key").is_none(), "no key handed out: {put}");
    let hash = put["content_hash"].as_str().unwrap().to_owned();

    let out = tmp.path().join("out.bin");
    let o = out.to_str().unwrap();
    ok(zhtp(
        &alice,
        &nodes[2],
        "a",
        &["get", &hash, "-o", o, "--identity", "alice"],
    ));
    assert!(std::fs::read(&out).unwrap() == bytes);
    std::fs::remove_file(&out).unwrap();

    let denied = zhtp(
        &bob,
        &nodes[1],
        "b",
        &["get", &hash, "-o", o, "--identity", "bob"],
    );
    assert!(!denied.status.success());
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(err.contains("is not a reader"), "{err}");
    // Without --identity the CLI reads as the keystore's only identity: bob again.
    let as_bob = zhtp(&bob, &nodes[1], "b", &["get", &hash, "-o", o]);
    let err = String::from_utf8_lossy(&as_bob.stderr);
    assert!(err.contains("is not a reader"), "{err}");
    // And the node itself refuses an unsigned read with the token alone (as curl would ask).
    let (status, body) = unsigned_get(&nodes[1], &hash, &[]);
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("needs a request signed by an identity"),
        "{body}"
    );
    assert!(!out.exists(), "no output written");
    // A wrong passphrase is one clear error.
    let wrong = zhtp(
        &alice,
        &nodes[1],
        "b",
        &["get", &hash, "-o", o, "--identity", "alice"],
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    // The manifest names its owner, and only the owner sees the name and description.
    let alice_id = ok(zhtp(
        &alice,
        &nodes[0],
        "",
        &["identity", "show", "alice", "--json"],
    ));
    let alice_id: serde_json::Value = serde_json::from_str(&alice_id).unwrap();
    for args in [
        vec!["info", &hash],
        vec!["info", &hash, "--json"],
        vec!["ls", "--json"],
    ] {
        // Through the node the put went through: the one that indexed it.
        let shown = ok(zhtp(&bob, &nodes[0], "", &args));
        assert!(
            !shown.contains("plans.pdf") && !shown.contains("the merger"),
            "{shown}"
        );
    }
    let info = ok(zhtp(&bob, &nodes[1], "", &["info", &hash]));
    assert!(info.contains(alice_id["id"].as_str().unwrap()), "{info}");
    let mine = ok(zhtp(
        &alice,
        &nodes[2],
        "a",
        &["info", &hash, "--identity", "alice"],
    ));
    assert!(
        mine.contains("plans.pdf") && mine.contains("the merger"),
        "{mine}"
    );
    // Bob sees the public manifest and is told the rest stays hidden.
    let denied = zhtp(&bob, &nodes[2], "b", &["info", &hash, "--identity", "bob"]);
    assert!(String::from_utf8_lossy(&denied.stderr).contains("is not a reader"));
    let shown = String::from_utf8_lossy(&denied.stdout);
    assert!(
        shown.contains(&hash) && !shown.contains("plans.pdf"),
        "{shown}"
    );

    // The API itself, as curl would speak it: a get of private content needs a reader's
    // signed request, taken once.
    let me = Keystore::new(&alice).open("alice", b"a").unwrap();
    let bob_id = Keystore::new(&bob).open("bob", b"b").unwrap();
    let key = readers::unwrap_info(
        &info_of(&bob, &nodes[1], &hash),
        &hash.parse().unwrap(),
        &me,
    )
    .unwrap();
    let n = &nodes[1];
    let path = format!("/content/{hash}");
    let base = [format!("zhtp-key: {}", hex::encode(key.0))];
    let with = |signed: Option<String>| -> Vec<String> {
        let mut h = base.to_vec();
        h.extend(signed.map(|v| format!("{}: {v}", signed::HEADER)));
        h
    };
    let (code, body) = n.api("GET", &path, &with(None), b"");
    assert_eq!(code, 401, "{body}");
    let get = signed::Target {
        method: "GET",
        node: &n.addr,
        path: &path,
    };
    let by_alice = signed::sign(&me, get, b"").unwrap();
    let (code, body) = n.api("GET", &path, &with(Some(by_alice.clone())), b"");
    assert_eq!(code, 200, "{}", &body[..body.len().min(200)]);
    let (code, body) = n.api("GET", &path, &with(Some(by_alice)), b"");
    assert_eq!((code, body.contains("a replay")), (403, true), "{body}");
    let by_bob = signed::sign(&bob_id, get, b"").unwrap();
    let (code, body) = n.api("GET", &path, &with(Some(by_bob)), b"");
    assert_eq!(
        (code, body.contains("is not a reader")),
        (403, true),
        "{body}"
    );
    let other = signed::Target {
        path: "/content/other",
        ..get
    };
    let elsewhere = signed::sign(&me, other, b"").unwrap();
    let (code, body) = n.api("GET", &path, &with(Some(elsewhere)), b"");
    assert_eq!((code, body.contains("signature")), (403, true), "{body}");
    // Signed for another node: not taken here.
    let node0 = signed::Target {
        node: &nodes[0].addr,
        ..get
    };
    let elsewhere = signed::sign(&me, node0, b"").unwrap();
    let (code, body) = n.api("GET", &path, &with(Some(elsewhere)), b"");
    assert_eq!((code, body.contains("signature")), (403, true), "{body}");
    // Its removal is the owner's: not bob's, and not unsigned.
    let n0 = &nodes[0];
    let del = |signed: Option<String>| {
        let h: Vec<String> = signed
            .map(|v| format!("{}: {v}", signed::HEADER))
            .into_iter()
            .collect();
        n0.api("DELETE", &path, &h, b"")
    };
    assert_eq!(del(None).0, 401);
    let delete = signed::Target {
        method: "DELETE",
        node: &n0.addr,
        path: &path,
    };
    let (code, body) = del(Some(signed::sign(&bob_id, delete, b"").unwrap()));
    assert_eq!(
        (code, body.contains("is not the owner")),
        (403, true),
        "{body}"
    );
    let (code, body) = del(Some(signed::sign(&me, delete, b"").unwrap()));
    assert_eq!(code, 200, "{body}");

    // A signed put names the bytes: other bytes under the same signed options are refused,
    // and so are signed options that name none.
    let put = |req: &zhtp::wire::PutRequest, body: &[u8]| {
        let options = serde_json::to_string(req).unwrap();
        let to = signed::Target {
            method: "POST",
            node: &n0.addr,
            path: "/content",
        };
        let sig = signed::sign(&me, to, options.as_bytes()).unwrap();
        let h = [
            format!("zhtp-put: {options}"),
            format!("{}: {sig}", signed::HEADER),
        ];
        n0.api("POST", "/content", &h, body)
    };
    let mut req = zhtp::wire::PutRequest {
        encryption: Some(EncryptionLevel::QuantumResistant),
        readers: vec![hex::encode(me.public_record())],
        content_hash: Some(zhtp_types::Hash(
            *blake3::hash(b"what alice signed").as_bytes(),
        )),
        ..Default::default()
    };
    let (code, body) = put(&req, b"something else");
    assert_eq!(
        (code, body.contains("the upload hashes to")),
        (400, true),
        "{body}"
    );
    let (code, body) = put(&req, b"what alice signed");
    assert_eq!(code, 200, "{body}");
    req.content_hash = None;
    let (code, body) = put(&req, b"what alice signed");
    assert_eq!(
        (code, body.contains("names its content_hash")),
        (400, true),
        "{body}"
    );
}

/// Grant and revoke at the library level: the owner signs each new access list, the publishing
/// node checks it, and every other node reads the latest from the DHT. What a node refuses:
/// a replayed update, a list signed by someone else, a new owner, and any change besides the
/// readers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_revoke_and_what_a_node_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, _) = network(&tmp, 3).await;
    let [alice, bob, mallory] = [(); 3].map(|_| Identity::generate().unwrap());
    let bytes = data(150_000, 21);
    let stored = put_for(
        &nodes[0],
        &tmp,
        &bytes,
        EncryptionLevel::QuantumResistant,
        &alice,
    )
    .await;
    let v0 = stored.manifest;
    let hash = v0.content_hash;

    let v1 = readers::grant(&v0, &alice, &bob.public()).unwrap();
    assert_eq!(v1.encryption.access_version, 1);
    assert!(nodes[0].update_access(v1.clone()).await.unwrap());
    let m = nodes[2].manifest(&hash).await.unwrap();
    assert_eq!(m, v1, "node 2 reads the latest access list");
    let key = readers::unwrap(&m, &bob).unwrap();
    assert_eq!(nodes[2].get_bytes(&hash, Some(key)).await.unwrap(), bytes);

    // Only the owner grants.
    assert!(matches!(
        readers::grant(&v1, &bob, &mallory.public()),
        Err(readers::Error::NotOwner { .. })
    ));
    let refused = |r: Result<bool, zhtp::network::Error>, want: &str| {
        let e = r.expect_err(want).to_string();
        assert!(e.contains(want), "{e} lacks {want:?}");
    };
    // The same update again.
    refused(
        nodes[0].update_access(v1.clone()).await,
        "an old or replayed update",
    );
    // Mallory's wrap added, the list signed by mallory (a valid signature, of the wrong key).
    let key = readers::unwrap(&v1, &alice).unwrap();
    let mut forged = v1.clone();
    forged
        .encryption
        .readers
        .extend(readers::wrap(forged.encryption.level, &key, &hash, &[mallory.public()]).unwrap());
    forged.encryption.access_version = 2;
    forged.encryption.owner_sig = mallory.sign(&readers::statement(&forged)).to_vec();
    refused(
        nodes[0].update_access(forged.clone()).await,
        "not signed by its owner",
    );
    let record_key = [b"zhtp/m/".as_slice(), hash.as_bytes()].concat();
    assert!(
        zhtp::network::validate_record(&record_key, &forged.encode(), &zhtp_dht::PeerId::random())
            .is_err()
    );
    // Mallory as the owner of a list she signs.
    let mut usurped = forged.clone();
    usurped.encryption.readers.swap(0, 2);
    usurped.encryption.owner_sig = mallory.sign(&readers::statement(&usurped)).to_vec();
    assert!(readers::check(&usurped).is_ok(), "valid on its own");
    refused(nodes[0].update_access(usurped).await, "keeps the owner");
    // Signed by alice, but the tier changed too.
    let mut other = readers::grant(&v1, &alice, &mallory.public()).unwrap();
    other.tier = zhtp_types::StorageTier::Archive;
    other.encryption.owner_sig = alice.sign(&readers::statement(&other)).to_vec();
    refused(
        nodes[0].update_access(other).await,
        "changes only the readers",
    );
    // Another node does not take updates of a content it did not publish.
    let v2 = readers::grant(&v1, &alice, &mallory.public()).unwrap();
    assert!(matches!(
        nodes[1].update_access(v2).await,
        Err(zhtp::network::Error::Local(zhtp::local::Error::NotFound(_)))
    ));

    // Stored again by someone with the plaintext: not without an owner, not for another.
    let path = tmp.path().join("again");
    std::fs::write(&path, &bytes).unwrap();
    let mut for_bob = opts(EncryptionLevel::QuantumResistant);
    for_bob.readers = vec![bob.public()];
    for o in [opts(EncryptionLevel::Standard), for_bob] {
        assert!(matches!(
            nodes[0].put_file(&path, o).await,
            Err(zhtp::network::Error::Local(
                zhtp::local::Error::Owned { .. }
            ))
        ));
    }
    assert_eq!(nodes[0].manifest(&hash).await.unwrap(), v1, "unchanged");

    // Revoke: bob's wrap goes; through any node he is no reader of the new version.
    let v2 = readers::revoke(&v1, &alice, &bob.public().signing).unwrap();
    assert!(nodes[0].update_access(v2.clone()).await.unwrap());
    let m = nodes[2].manifest(&hash).await.unwrap();
    assert_eq!(m.encryption.access_version, 2);
    assert!(matches!(
        readers::unwrap(&m, &bob),
        Err(readers::Error::NotAReader { .. })
    ));
    assert!(matches!(
        readers::revoke(&v2, &alice, &alice.public().signing),
        Err(readers::Error::Invalid { why, .. }) if why.contains("owner cannot be revoked")
    ));
}

/// Through the CLI: alice grants bob (from his exported public record), bob reads through
/// another node; alice revokes him, the content is encrypted again, and neither bob's
/// identity nor the key he had opens the new version.
#[test]
fn grant_and_revoke_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let (nodes, alice, bob) = alice_and_bob(&tmp);
    let bob_pub = tmp.path().join("bob.pub");
    let bp = bob_pub.to_str().unwrap();
    ok(zhtp(
        &bob,
        &nodes[0],
        "",
        &["identity", "export", "bob", "--public", "-o", bp],
    ));
    let bytes = data(400_000, 8);
    let file = tmp.path().join("in.bin");
    std::fs::write(&file, &bytes).unwrap();
    let f = file.to_str().unwrap();
    // Through a node, a put for an owner is signed by it: its passphrase is needed.
    let put = ok(zhtp(
        &alice,
        &nodes[0],
        "a",
        &[
            "put",
            f,
            "--encryption",
            "high",
            "--identity",
            "alice",
            "--tag",
            "t",
        ],
    ));
    let hash = put.trim().to_owned();

    let out = tmp.path().join("out.bin");
    let o = out.to_str().unwrap();
    let before = zhtp(
        &bob,
        &nodes[2],
        "b",
        &["get", &hash, "-o", o, "--identity", "bob"],
    );
    assert!(String::from_utf8_lossy(&before.stderr).contains("is not a reader"));
    let granted = ok(zhtp(
        &alice,
        &nodes[0],
        "a",
        &["grant", &hash, bp, "--identity", "alice", "--json"],
    ));
    let granted: serde_json::Value = serde_json::from_str(&granted).unwrap();
    assert_eq!(granted["version"], 1);
    ok(zhtp(
        &bob,
        &nodes[2],
        "b",
        &["get", &hash, "-o", o, "--identity", "bob"],
    ));
    assert!(std::fs::read(&out).unwrap() == bytes);
    std::fs::remove_file(&out).unwrap();
    // The key bob could have noted while he was a reader.
    let bob_id = Keystore::new(&bob).open("bob", b"b").unwrap();
    let old_key = readers::unwrap_info(
        &info_of(&bob, &nodes[2], &hash),
        &hash.parse().unwrap(),
        &bob_id,
    )
    .unwrap();

    let revoked = ok(zhtp(
        &alice,
        &nodes[0],
        "a",
        &["revoke", &hash, bp, "--identity", "alice", "--json"],
    ));
    let revoked: serde_json::Value = serde_json::from_str(&revoked).unwrap();
    assert_eq!(revoked["readers"].as_array().unwrap().len(), 1);
    let after = zhtp(
        &bob,
        &nodes[2],
        "b",
        &["get", &hash, "-o", o, "--identity", "bob"],
    );
    assert!(String::from_utf8_lossy(&after.stderr).contains("is not a reader"));
    // The node asks a reader's signature before it tries any key.
    let key = format!("zhtp-key: {}", hex::encode(old_key.0));
    let (status, body) = unsigned_get(&nodes[1], &hash, &[key]);
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("needs a request signed by an identity"),
        "{body}"
    );
    assert!(!out.exists());
    // And the content is under a new key: the old one is not what the manifest commits to.
    let info = ok(zhtp(&bob, &nodes[1], "", &["info", &hash, "--json"]));
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_ne!(
        info["key_check"].as_str().unwrap(),
        old_key.check().to_hex(),
        "re-encrypted under a fresh key"
    );
    assert_eq!(info["readers"].as_array().unwrap().len(), 1);
    ok(zhtp(
        &alice,
        &nodes[1],
        "a",
        &["get", &hash, "-o", o, "--identity", "alice"],
    ));
    assert!(std::fs::read(&out).unwrap() == bytes);
}
