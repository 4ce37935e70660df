//! Put and get on one node: round trips, crash safety, self-repair, clear errors.

#[path = "support/cli.rs"]
mod support;
use support::{owner_in, zhtp, zhtp_owner};

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use zhtp::local::{LocalNode, PutOptions};
use zhtp_content::EncryptionLevel;
use zhtp_identity::Identity;
use zhtp_store::Config;
use zhtp_types::{Hash, StorageTier};

/// Deterministic pseudo-random bytes (xorshift), optionally with compressible stretches.
fn bytes(seed: u64, len: usize, compressible: bool) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    (0..len)
        .map(|i| {
            if compressible && (i / 8192) % 3 == 0 {
                return b"zhtp "[i % 5];
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The owner of the encrypted contents put through the library (no node keeps a key); a child
/// process of a test gets its parent's, sealed in the file `ZHTP_TEST_OWNER` names.
fn owner() -> &'static Identity {
    static OWNER: OnceLock<Identity> = OnceLock::new();
    OWNER.get_or_init(|| match std::env::var_os("ZHTP_TEST_OWNER") {
        Some(f) => zhtp_identity::unseal(&std::fs::read(f).unwrap(), b"owner").unwrap(),
        None => Identity::generate().unwrap(),
    })
}

/// `owner()` sealed into a file under `dir`, for a child process (`ZHTP_TEST_OWNER`).
fn owner_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("owner.sealed");
    let sealed = zhtp_identity::seal(owner(), b"owner", zhtp_identity::KdfParams::FLOOR).unwrap();
    std::fs::write(&path, sealed).unwrap();
    path
}

/// Options for a put at `level` in `tier`, owned by [`owner`] when encrypted.
fn opts(tier: StorageTier, level: EncryptionLevel) -> PutOptions {
    let mut opts = PutOptions::new(tier);
    opts.encryption = level;
    opts.segment_size = 1 << 20;
    if level != EncryptionLevel::None {
        opts.readers = vec![owner().public()];
    }
    opts
}

fn put(node: &LocalNode, data: &[u8], level: EncryptionLevel) -> Hash {
    node.put(&mut &data[..], opts(StorageTier::Warm, level), &|_| {})
        .unwrap()
        .content_hash
}

/// A get as [`owner`]: the key unwrapped from the manifest when encrypted.
fn get(node: &LocalNode, h: &Hash) -> Result<(Vec<u8>, usize), zhtp::local::Error> {
    let m = node.manifest(h)?.ok_or(zhtp::local::Error::NotFound(*h))?;
    let key = match m.encryption.level {
        EncryptionLevel::None => None,
        _ => Some(zhtp::readers::unwrap(&m, owner())?),
    };
    let mut out = Vec::new();
    let r = node.get_with_key(h, key, &mut out, &|_| {})?;
    Ok((out, r.repaired))
}

#[test]
fn random_64_mib_file_roundtrips_through_the_cli_with_standard_encryption() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("in.bin");
    let data = bytes(64, 64 << 20, false);
    std::fs::write(&input, &data).unwrap();
    // The keystore's only identity owns it.
    let me = owner_in(d);
    let out = zhtp(
        d,
        &[
            "put",
            input.to_str().unwrap(),
            "--encryption",
            "standard",
            "--json",
            "--tag",
            "big",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hash = v["content_hash"].as_str().unwrap().to_owned();
    assert_eq!(hash, blake3::hash(&data).to_hex().as_str());
    assert_eq!(v["segments"], 16);

    let output = d.join("out.bin");
    let out = zhtp_owner(d, &["get", &hash, "-o", output.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&output).unwrap() == data,
        "get returned other bytes"
    );

    // Name and tags are the owner's, encrypted: the node lists the content without them.
    let ls: serde_json::Value = serde_json::from_slice(&zhtp(d, &["ls", "--json"]).stdout).unwrap();
    assert_eq!(ls[0]["content_hash"], hash.as_str());
    assert_eq!(ls[0]["name"], serde_json::Value::Null);
    let tagged = zhtp(d, &["ls", "--tag", "big", "--json"]).stdout;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&tagged).unwrap(),
        serde_json::json!([])
    );
    let info: serde_json::Value = serde_json::from_slice(
        &zhtp_owner(d, &["info", &hash, "--json", "--identity", "owner"]).stdout,
    )
    .unwrap();
    assert_eq!(info["metadata"]["name"], "in.bin");
    assert_eq!(info["metadata"]["tags"][0], "big");
    let info: serde_json::Value =
        serde_json::from_slice(&zhtp(d, &["info", &hash, "--json"]).stdout).unwrap();
    assert_eq!(info["encryption"], "standard");
    assert_eq!(info["code"]["kind"], "reed-solomon-simd");
    // The modeled durability of warm's 4+2 under the reference churn (about 1 in 37 a year).
    let text = String::from_utf8(zhtp(d, &["info", &hash]).stdout).unwrap();
    assert!(
        text.contains("durable   1.6 nines per segment per year"),
        "{text}"
    );
    // The owner's key is nowhere in the data dir (RocksDB's log and tables, the packs).
    let me_id = zhtp::keystore::Keystore::new(d)
        .open("owner", support::PASSPHRASE.as_bytes())
        .unwrap();
    let m = LocalNode::open(d, Config::default())
        .unwrap()
        .manifest(&Hash::from_hex(&hash).unwrap())
        .unwrap()
        .unwrap();
    let key = zhtp::readers::unwrap(&m, &me_id).unwrap();
    let mut stack = vec![d.join("store")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(b) = std::fs::read(&p) {
                assert!(
                    !b.windows(32).any(|w| w == key.0),
                    "the key is in {}",
                    p.display()
                );
            }
        }
    }
    // Wrapped for the owner, and the data dir holds no key: without the passphrase, no bytes.
    assert_eq!(info["readers"][0].as_str().unwrap()[..64], me.id());
    let out = zhtp(d, &["get", &hash, "-o", output.to_str().unwrap()]);
    assert!(!out.status.success());
}

#[test]
fn every_level_and_tier_roundtrips_and_metadata_is_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let node = LocalNode::open(dir.path(), Config::default()).unwrap();
    let mut hashes = Vec::new();
    for (i, tier) in StorageTier::ALL.into_iter().enumerate() {
        for (j, level) in [EncryptionLevel::None, EncryptionLevel::Standard]
            .into_iter()
            .enumerate()
        {
            let data = bytes((2 * i + j) as u64, 3 << 20 | 12345, true);
            let mut opts = opts(tier, level);
            opts.metadata.name = Some(format!("file-{tier}.bin"));
            opts.metadata.tags = vec![tier.to_string()];
            opts.metadata.description = Some("Quarterly REPORT".into());
            let m = node.put(&mut &data[..], opts, &|_| {}).unwrap();
            assert_eq!(m.code, PutOptions::code_for(tier));
            assert_eq!(get(&node, &m.content_hash).unwrap().0, data);
            hashes.push(m.content_hash);
        }
    }
    // The metadata of encrypted content is its owner's (encrypted): only the public half is
    // listed by tag and found by search.
    assert_eq!(node.list(None).unwrap().len(), 8);
    let archive = node.list(Some("archive")).unwrap();
    assert_eq!(archive.len(), 1);
    assert_eq!(
        archive[0].metadata.name.as_deref(),
        Some("file-archive.bin")
    );
    assert_eq!(node.search("quarterly report").unwrap().len(), 4);
    assert_eq!(node.search("file-cold").unwrap().len(), 1);
    assert!(node.search("nothing like this").unwrap().is_empty());
    // The empty content is a content too.
    let empty = put(&node, &[], EncryptionLevel::Standard);
    assert_eq!(empty.to_hex(), blake3::hash(b"").to_hex().as_str());
    assert_eq!(get(&node, &empty).unwrap().0, Vec::<u8>::new());
}

#[test]
fn corrupt_and_missing_shards_are_rebuilt_and_written_back() {
    let dir = tempfile::tempdir().unwrap();
    let node = LocalNode::open(dir.path(), Config::default()).unwrap();
    let data = bytes(7, 3 << 20, false);
    let h = put(&node, &data, EncryptionLevel::Standard);
    let m = node.manifest(&h).unwrap().unwrap();
    let store = node.store();
    // Segment 0: one data shard corrupted on disk, one deleted. Segment 2: one parity deleted.
    let mut b = store.batch();
    store
        .put_shard(&mut b, &m.segments[0].shards[1], b"rotten bytes")
        .unwrap();
    store
        .delete(
            &mut b,
            zhtp_store::Cf::Shards,
            m.segments[0].shards[2].as_bytes(),
        )
        .unwrap();
    store.write(b).unwrap();
    let (out, repaired) = get(&node, &h).unwrap();
    assert!(out == data, "repaired content differs");
    assert_eq!(repaired, 2);
    // Written back: the next read needs no repair and every shard verifies.
    assert_eq!(get(&node, &h).unwrap().1, 0);
    for shard in &m.segments[0].shards {
        assert!(store.shard(shard).unwrap().is_some());
    }

    // Too many losses in segment 1: an error naming the segment, and no output file.
    let mut b = store.batch();
    for s in &m.segments[1].shards[..3] {
        store
            .delete(&mut b, zhtp_store::Cf::Shards, s.as_bytes())
            .unwrap();
    }
    store.write(b).unwrap();
    let dest = dir.path().join("out.bin");
    let key = zhtp::readers::unwrap(&m, owner()).unwrap();
    let err = zhtp::local::write_atomically(&dest, None, |w| {
        node.get_with_key(&h, Some(key.clone()), w, &|_| {})
    })
    .unwrap_err();
    assert!(err.to_string().contains("segment 1"), "{err}");
    assert!(!dest.exists(), "a failed get must leave nothing behind");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().into_owned();
            n.contains("zhtp-partial").then_some(n)
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// The child half of the SIGKILL test: puts deterministic contents forever, printing
/// `ACK <seed> <hash>` after each put returns.
fn crash_child_writer(dir: &str) -> ! {
    let node = LocalNode::open(Path::new(dir), Config::default()).unwrap();
    for seed in 0u64.. {
        let data = bytes(seed, 300_000 + (seed as usize % 5) * 200_000, seed % 2 == 0);
        let level = if seed % 3 == 0 {
            EncryptionLevel::None
        } else {
            EncryptionLevel::Standard
        };
        let h = put(&node, &data, level);
        println!("ACK {seed} {h}");
    }
    unreachable!()
}

#[test]
fn sigkill_during_a_stream_of_puts_loses_no_acknowledged_write() {
    // The test re-runs itself as the writer process, selected by an environment variable.
    if let Ok(dir) = std::env::var("ZHTP_CRASH_CHILD_DIR") {
        crash_child_writer(&dir);
    }
    let dir = tempfile::tempdir().unwrap();
    let owner_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sigkill_during_a_stream_of_puts_loses_no_acknowledged_write",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("ZHTP_CRASH_CHILD_DIR", dir.path())
        .env("ZHTP_TEST_OWNER", owner_file(owner_dir.path()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while acked.len() < 12 {
        let line = lines.next().expect("child ended early").unwrap();
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (seed, hash) = rest.split_once(' ').unwrap();
            acked.push((seed.parse::<u64>().unwrap(), Hash::from_hex(hash).unwrap()));
        }
    }
    // SIGKILL, most likely in the middle of the next put.
    child.kill().unwrap();
    child.wait().unwrap();

    let node = LocalNode::open(dir.path(), Config::default()).expect("store reopens after SIGKILL");
    for (seed, h) in &acked {
        let data = bytes(
            *seed,
            300_000 + (*seed as usize % 5) * 200_000,
            seed % 2 == 0,
        );
        let (out, repaired) =
            get(&node, h).unwrap_or_else(|e| panic!("acknowledged put {seed} lost: {e}"));
        assert!(out == data, "acknowledged put {seed} came back different");
        assert_eq!(repaired, 0);
    }
    // Whatever was in flight is either wholly there or wholly absent.
    for s in node.list(None).unwrap() {
        assert!(get(&node, &s.content_hash).is_ok());
    }
}

#[test]
fn clear_errors_for_bad_input_and_a_locked_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let unknown = "ab".repeat(32);
    let out = zhtp(d, &["get", &unknown, "-o", d.join("x").to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no content") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!d.join("x").exists());

    let out = zhtp(d, &["get", "not-a-hash", "-o", "x"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a content hash") && err.contains("64 hex characters"),
        "{err}"
    );

    let out = zhtp(d, &["put", "/no/such/file"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /no/such/file"));

    let f = d.join("f.txt");
    std::fs::write(&f, "hello").unwrap();
    // Every encrypted level wraps the key for an owner: without one, nothing is stored.
    for level in ["standard", "high", "quantum"] {
        let out = zhtp(d, &["put", f.to_str().unwrap(), "--encryption", level]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "encryption {level} wraps the content key for its owner"
            )) && err.contains("`zhtp identity new NAME` makes one")
                && err.lines().count() == 1,
            "{err}"
        );
    }
    let out = zhtp(d, &["put", f.to_str().unwrap(), "--identity", "nobody"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no identity named \"nobody\""), "{err}");
    assert!(
        String::from_utf8(zhtp(d, &["ls", "--json"]).stdout)
            .unwrap()
            .trim()
            == "[]"
    );

    // Another process holds the store.
    let _held = LocalNode::open(d, Config::default()).unwrap();
    let out = zhtp(d, &["ls"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another zhtp process"), "{err}");
}

/// A full disk: one clear error line, a non-zero exit, no content half there, and the space
/// the failed put had written given back; `zhtp compact` then removes the dead packs and a
/// smaller put fits. The data dir is on a 16 MiB tmpfs mounted in a new user and mount
/// namespace (`unshare`, util-linux), so the test needs no root and leaves nothing mounted.
#[test]
fn a_full_disk_is_one_clear_error_stores_nothing_and_keeps_no_space() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.bin");
    std::fs::write(&input, bytes(12, 16 << 20, false)).unwrap();
    let small = dir.path().join("three.bin");
    std::fs::write(&small, bytes(3, 3 << 20, false)).unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // $0 = zhtp, $1 = mount point, $2 = input, $3 = a smaller input. The put's stderr goes to
    // a file so that it can be checked line by line.
    let script = r#"mount -t tmpfs -o size=16m tmpfs "$1" || exit 90
df --output=avail -B1 "$1" | tail -1
"$0" --data-dir "$1/data" put "$2" --encryption none 2>"$1/err"
echo "put exit $?"
cat "$1/err"
"$0" --data-dir "$1/data" ls --json
df --output=avail -B1 "$1" | tail -1
"$0" --data-dir "$1/data" compact
"$0" --data-dir "$1/data" put "$3" --encryption none >/dev/null && echo "small put ok""#;
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", script])
        .arg(env!("CARGO_BIN_EXE_zhtp"))
        .arg(&mnt)
        .arg(&input)
        .arg(&small)
        .env_remove("ZHTP_DATA_DIR")
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(90) || stderr.contains("unshare failed") {
        // Not a failure of zhtp: this machine gives an unprivileged user no user namespace
        // (kernel.unprivileged_userns_clone=0, a container without CLONE_NEWUSER) or no tmpfs
        // in it, and a full disk cannot be made without root any other way.
        eprintln!(
            "SKIPPED a_full_disk_is_one_clear_error_stores_nothing_and_keeps_no_space: cannot \
             mount a 16 MiB tmpfs in a new user and mount namespace here ({})",
            stderr.trim()
        );
        return;
    }
    assert!(out.status.success(), "a step failed: {stdout}{stderr}");
    let mut lines = stdout.lines();
    let free = |l: Option<&str>| -> u64 { l.unwrap_or_default().trim().parse().unwrap() };
    let empty = free(lines.next());
    assert_eq!(lines.next(), Some("put exit 1"), "{stdout}");
    let err = lines.next().unwrap_or_default();
    assert!(
        err.starts_with("error: ") && err.contains("no space left on the device"),
        "{stdout}"
    );
    // `ls --json`: an empty list, nothing half-stored.
    let listed: serde_json::Value = serde_json::from_str(lines.next().unwrap_or("")).unwrap();
    assert_eq!(listed, serde_json::json!([]), "{stdout}");
    // The failed put gave back what it wrote (the store's own files take the rest).
    let after = free(lines.next());
    assert!(
        after + (1 << 20) >= empty,
        "{empty} B free at first, {after} B after: {stdout}"
    );
    let compacted = lines.next().unwrap_or_default();
    assert!(
        compacted.contains("pack(s) removed") && !compacted.starts_with("0 pack"),
        "{stdout}"
    );
    assert_eq!(lines.next(), Some("small put ok"), "{stdout}");
    assert_eq!(lines.next(), None, "{stdout}");
}

/// A store whose every shard write fails (here: its pack directory became a file, so each
/// new pack fails with "not a directory", an error other than a full disk) ends the put with
/// that error; the put never waits for good on workers that have all stopped.
#[test]
fn a_put_whose_every_shard_write_fails_ends_with_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let node = LocalNode::open(dir.path(), Config::default()).unwrap();
    let packs = dir.path().join("store").join("packs");
    std::fs::remove_dir_all(&packs).unwrap();
    std::fs::write(&packs, b"not a directory").unwrap();
    // 64 segments: far more than the workers and the channel between them hold.
    let input = bytes(31, 64 << 20, false);
    let (tx, rx) = std::sync::mpsc::channel();
    // Not a scoped thread: a hung put must fail the test, not keep the scope waiting.
    std::thread::spawn(move || {
        let r = node.put(
            &mut &input[..],
            opts(StorageTier::Hot, EncryptionLevel::Standard),
            &|_| {},
        );
        let _ = tx.send((r, node));
    });
    let (r, node) = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the put hung with every shard write failing");
    let err = r.expect_err("a put with no writable pack succeeded");
    assert!(
        matches!(&err, zhtp::local::Error::Store(zhtp_store::Error::Io(_, e))
            if e.kind() == std::io::ErrorKind::NotADirectory),
        "{err:?}"
    );
    assert!(node.list(None).unwrap().is_empty());
}
