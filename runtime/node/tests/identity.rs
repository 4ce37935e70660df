//! `zhtp identity ...` end to end: the binary on temporary data dirs, passphrases from the
//! environment and from files (never a prompt: these tests must not wait for a terminal).

use std::path::Path;
use std::process::{Command, Output};

use zhtp::keystore::Keystore;
use zhtp_identity::PublicKeys;

/// Runs `zhtp --data-dir DIR ARGS...` with the given environment (and no inherited passphrase).
fn run(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zhtp"));
    c.arg("--data-dir").arg(dir).args(args);
    for v in ["ZHTP_DATA_DIR", "ZHTP_PASSPHRASE", "ZHTP_NEW_PASSPHRASE"] {
        c.env_remove(v);
    }
    c.envs(env.iter().copied());
    c.output().expect("run zhtp")
}

fn ok(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = run(dir, env, args);
    assert!(
        out.status.success(),
        "zhtp {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails, with `want` in its one-line error.
fn fails(dir: &Path, env: &[(&str, &str)], args: &[&str], want: &str) {
    let out = run(dir, env, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "zhtp {args:?} succeeded");
    assert!(err.contains(want), "zhtp {args:?}: {err:?} lacks {want:?}");
}

const PW: &[(&str, &str)] = &[("ZHTP_PASSPHRASE", "first pass")];

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("JSON")
}

#[test]
fn new_list_show_and_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = json(&ok(d, PW, &["identity", "new", "alice", "--json"]));
    let id = made["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 64);

    let list = json(&ok(d, &[], &["identity", "list", "--json"]));
    assert_eq!(list[0]["name"], "alice");
    assert_eq!(list[0]["id"], id.as_str());

    // The record `show` prints is signed by the id it names: what a grantee hands over.
    let shown = json(&ok(d, &[], &["identity", "show", "alice", "--json"]));
    let record = hex::decode(shown["record"].as_str().unwrap()).unwrap();
    let keys = PublicKeys::from_record(&record).unwrap();
    assert_eq!(keys.id(), id);

    // The keys the CLI made open with the passphrase, and no file holds any part of them.
    let ks = Keystore::new(d);
    let identity = ks.open("alice", b"first pass").unwrap();
    assert_eq!(identity.public(), keys);
    let secrets = [
        identity.signing_key().to_bytes(),
        *identity.exchange_secret().as_bytes(),
        *identity.kem().as_bytes(),
    ];
    for f in std::fs::read_dir(ks.dir()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        for part in secrets.iter().flat_map(|s| s.chunks(8)) {
            assert!(!bytes.windows(8).any(|w| w == part));
        }
    }

    fails(d, PW, &["identity", "new", "alice"], "exists already");
    fails(d, PW, &["identity", "new", "../x"], "not an identity name");
    fails(
        d,
        &[("ZHTP_PASSPHRASE", "")],
        &["identity", "new", "bob"],
        "empty passphrase",
    );
    fails(
        d,
        &[],
        &["identity", "show", "carol"],
        "no identity named \"carol\"",
    );
    // A passphrase is never a flag's value (the process list shows those).
    let out = run(d, &[], &["identity", "new", "bob", "--passphrase", "pw"]);
    assert!(!out.status.success());
    assert!(!ks.key_path("bob").exists());
}

#[test]
fn export_import_and_a_new_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let id = json(&ok(&a, PW, &["identity", "new", "me", "--json"]))["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let file = dir.path().join("me.key");
    ok(
        &a,
        &[],
        &["identity", "export", "me", "-o", file.to_str().unwrap()],
    );
    let sealed = std::fs::read(&file).unwrap();
    assert_eq!(
        sealed,
        std::fs::read(Keystore::new(&a).key_path("me")).unwrap()
    );

    // A wrong passphrase is one clear error, and nothing is imported.
    fails(
        &b,
        &[("ZHTP_PASSPHRASE", "second pass")],
        &["identity", "import", file.to_str().unwrap()],
        "wrong passphrase",
    );
    assert!(!Keystore::new(&b).key_path("me").exists());
    // From a passphrase file: its first line.
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, "first pass\nignored\n").unwrap();
    let out = ok(
        &b,
        &[],
        &[
            "identity",
            "import",
            file.to_str().unwrap(),
            "--passphrase-file",
            pw_file.to_str().unwrap(),
        ],
    );
    assert!(out.contains(&id), "{out}");

    // The public record alone.
    let public = dir.path().join("me.pub");
    ok(
        &a,
        &[],
        &[
            "identity",
            "export",
            "me",
            "--public",
            "-o",
            public.to_str().unwrap(),
        ],
    );
    let keys = PublicKeys::from_record(&std::fs::read(&public).unwrap()).unwrap();
    assert_eq!(keys.id(), id);

    // A new passphrase: the wrong old one changes nothing; the right one re-seals.
    let before = std::fs::read(Keystore::new(&b).key_path("me")).unwrap();
    fails(
        &b,
        &[
            ("ZHTP_PASSPHRASE", "nope"),
            ("ZHTP_NEW_PASSPHRASE", "second pass"),
        ],
        &["identity", "passphrase", "me"],
        "wrong passphrase",
    );
    assert_eq!(
        before,
        std::fs::read(Keystore::new(&b).key_path("me")).unwrap()
    );
    ok(
        &b,
        &[
            ("ZHTP_PASSPHRASE", "first pass"),
            ("ZHTP_NEW_PASSPHRASE", "second pass"),
        ],
        &["identity", "passphrase", "me"],
    );
    let ks = Keystore::new(&b);
    assert!(ks.open("me", b"first pass").is_err());
    assert_eq!(ks.open("me", b"second pass").unwrap().public().id(), id);

    // An import under another name, of a file that is not a keystore, is refused as such.
    std::fs::write(&pw_file, b"ZHTPKEY\x01 too short").unwrap();
    fails(
        &c,
        PW,
        &[
            "identity",
            "import",
            pw_file.to_str().unwrap(),
            "--name",
            "x",
        ],
        "not a zhtp keystore file",
    );
}
