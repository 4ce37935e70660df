//! The keystore: identities kept in the data dir, each sealed under its own passphrase.
//!
//! `<data-dir>/identities/NAME.key` holds the sealed identity ([`zhtp_identity::sealed`],
//! 172 bytes: Argon2id, then XChaCha20-Poly1305; never a plaintext key) and `NAME.pub` its
//! signed public record ([`zhtp_identity::public`]), so that listing and showing identities
//! needs no passphrase. Both are mode 0600 in a 0700 directory, written to a temporary file and
//! renamed into place; a new identity never replaces an existing one. The `.key` file is the
//! truth: the `.pub` beside it is rewritten from it whenever the identity is opened.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use zhtp_identity::public::RECORD_LEN;
use zhtp_identity::sealed::SEALED_LEN;
use zhtp_identity::{Identity, KdfParams, PublicKeys};

/// Longest identity name.
pub const MAX_NAME_LEN: usize = 64;

/// What can go wrong with the keystore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a usable identity name.
    #[error(
        "{0:?} is not an identity name: 1 to 64 letters, digits, '-' or '_', starting with a letter or digit"
    )]
    BadName(String),
    /// No such identity in this keystore.
    #[error("no identity named {0:?} in this data dir (see `zhtp identity list`)")]
    NotFound(String),
    /// An identity of that name exists already; it is never replaced.
    #[error("an identity named {0:?} exists already (identities are never replaced)")]
    Exists(String),
    /// The identity's public record is missing or invalid; opening the identity rewrites it.
    #[error(
        "the public keys of {0:?} are missing or damaged: open the identity once with its passphrase to rewrite them"
    )]
    NoPublicRecord(String),
    /// Sealing, unsealing or reading keys failed (a wrong passphrase is one of these).
    #[error(transparent)]
    Identity(#[from] zhtp_identity::Error),
    /// The file system failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// Refuses names that are empty, too long, or not `[A-Za-z0-9][A-Za-z0-9_-]*`: they become file
/// names, so nothing that could climb out of the directory or look like an option.
pub fn check_name(name: &str) -> Result<(), Error> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::BadName(name.to_owned()))
    }
}

/// Reads at most `max` bytes of `path`; a longer file is an error (`None`), not a big read.
pub fn read_bounded(path: &Path, max: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::with_capacity(max + 1);
    std::fs::File::open(path)?
        .take(max as u64 + 1)
        .read_to_end(&mut out)?;
    Ok((out.len() <= max).then_some(out))
}

/// One identity as `list` shows it.
#[derive(Debug)]
pub struct Listed {
    /// Its name in this keystore.
    pub name: String,
    /// Its public keys, when its public record is present and valid.
    pub public: Option<PublicKeys>,
}

/// The identities of one data dir.
#[derive(Clone, Debug)]
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// The keystore of `data_dir` (nothing is created until an identity is added).
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("identities"),
        }
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where `name`'s sealed identity is.
    pub fn key_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    fn pub_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pub"))
    }

    /// Refuses a name that is not one ([`check_name`]) or is in use: what adding an identity
    /// checks first (the CLI too, before it asks for a passphrase).
    pub fn check_free(&self, name: &str) -> Result<(), Error> {
        check_name(name)?;
        if self.key_path(name).exists() {
            return Err(Error::Exists(name.to_owned()));
        }
        Ok(())
    }

    /// Adds `identity` as `name`, sealed under `passphrase` with `params`. Refuses a name in
    /// use.
    pub fn create(
        &self,
        name: &str,
        identity: &Identity,
        passphrase: &[u8],
        params: KdfParams,
    ) -> Result<PublicKeys, Error> {
        self.check_free(name)?;
        let sealed = zhtp_identity::seal(identity, passphrase, params)?;
        self.add(name, &sealed, identity)
    }

    /// Writes a new `.key` (never over an existing one), then its `.pub`.
    fn add(&self, name: &str, sealed: &[u8], identity: &Identity) -> Result<PublicKeys, Error> {
        let path = self.key_path(name);
        match crate::private::write_new(&path, sealed) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(name.to_owned()));
            }
            r => r.map_err(io(format!("writing {}", path.display())))?,
        }
        self.write_public(name, identity)?;
        Ok(identity.public())
    }

    fn write_public(&self, name: &str, identity: &Identity) -> Result<(), Error> {
        let path = self.pub_path(name);
        crate::private::write_file(&path, &identity.public_record())
            .map_err(io(format!("writing {}", path.display())))
    }

    /// The identities, by name.
    pub fn list(&self) -> Result<Vec<Listed>, Error> {
        let entries = match std::fs::read_dir(&self.dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            r => r.map_err(io(format!("reading {}", self.dir.display())))?,
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(io(format!("reading {}", self.dir.display())))?;
            let file = e.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_suffix(".key")) else {
                continue;
            };
            if check_name(name).is_err() {
                continue;
            }
            out.push(Listed {
                name: name.to_owned(),
                public: self.public(name).ok(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `name`'s public keys, from its public record (no passphrase needed).
    pub fn public(&self, name: &str) -> Result<PublicKeys, Error> {
        Ok(self.public_record(name)?.1)
    }

    /// `name`'s signed public record (what `export --public` hands out) and the keys in it,
    /// checked.
    pub fn public_record(&self, name: &str) -> Result<(Vec<u8>, PublicKeys), Error> {
        self.sealed(name)?;
        let bytes = read_bounded(&self.pub_path(name), RECORD_LEN)
            .ok()
            .flatten()
            .ok_or_else(|| Error::NoPublicRecord(name.to_owned()))?;
        let keys =
            PublicKeys::from_record(&bytes).map_err(|_| Error::NoPublicRecord(name.to_owned()))?;
        Ok((bytes, keys))
    }

    /// Keeps another identity's public record (a grantee's), so that its keys are at hand
    /// again (a revoke that re-encrypts wraps the new key for the readers it keeps). Returns
    /// its keys.
    pub fn remember(&self, record: &[u8]) -> Result<PublicKeys, Error> {
        let keys = PublicKeys::from_record(record)?;
        let path = self.dir.join("contacts").join(format!("{}.pub", keys.id()));
        crate::private::write_file(&path, record)
            .map_err(io(format!("writing {}", path.display())))?;
        Ok(keys)
    }

    /// The public record and keys of the identity `id` (Ed25519 key), if known here: a
    /// remembered record, or one of this keystore's identities.
    pub fn find(&self, id: &[u8; 32]) -> Option<(Vec<u8>, PublicKeys)> {
        let contact = self
            .dir
            .join("contacts")
            .join(format!("{}.pub", hex::encode(id)));
        if let Ok(Some(b)) = read_bounded(&contact, RECORD_LEN)
            && let Ok(k) = PublicKeys::from_record(&b)
            && k.signing == *id
        {
            return Some((b, k));
        }
        self.list()
            .ok()?
            .into_iter()
            .filter(|l| l.public.as_ref().is_some_and(|k| k.signing == *id))
            .find_map(|l| self.public_record(&l.name).ok())
    }

    /// `name`'s sealed bytes, as on disk (what `export` hands out: still sealed).
    pub fn sealed(&self, name: &str) -> Result<Vec<u8>, Error> {
        check_name(name)?;
        let path = self.key_path(name);
        match read_bounded(&path, SEALED_LEN) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::NotFound(name.to_owned()))
            }
            Err(e) => Err(io(format!("reading {}", path.display()))(e)),
            Ok(None) => {
                Err(zhtp_identity::Error::NotAKeystore("longer than any keystore file").into())
            }
            Ok(Some(b)) => Ok(b),
        }
    }

    /// Opens `name` with `passphrase`, and rewrites its public record if it is missing or
    /// does not match the keys.
    pub fn open(&self, name: &str, passphrase: &[u8]) -> Result<Identity, Error> {
        let identity = zhtp_identity::unseal(&self.sealed(name)?, passphrase)?;
        if self.public(name).ok().as_ref() != Some(&identity.public()) {
            self.write_public(name, &identity)?;
        }
        Ok(identity)
    }

    /// Adds sealed bytes from elsewhere as `name`, once `passphrase` opens them (which also
    /// checks their parameters). The bytes are kept as they are: same passphrase, same
    /// parameters.
    pub fn import(
        &self,
        name: &str,
        sealed: &[u8],
        passphrase: &[u8],
    ) -> Result<PublicKeys, Error> {
        self.check_free(name)?;
        let identity = zhtp_identity::unseal(sealed, passphrase)?;
        self.add(name, sealed, &identity)
    }

    /// Seals `name` again under `new` with `params`, replacing its file atomically: a crash
    /// leaves the old file or the new one, never neither.
    pub fn change_passphrase(
        &self,
        name: &str,
        old: &[u8],
        new: &[u8],
        params: KdfParams,
    ) -> Result<(), Error> {
        let identity = self.open(name, old)?;
        let sealed = zhtp_identity::seal(&identity, new, params)?;
        let path = self.key_path(name);
        crate::private::write_file(&path, &sealed)
            .map_err(io(format!("writing {}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: KdfParams = KdfParams::FLOOR;

    #[test]
    fn names() {
        for good in ["a", "alice", "Bob-2", "x_y", &"a".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "a/b",
            "../a",
            "a.b",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(matches!(check_name(bad), Err(Error::BadName(_))), "{bad}");
        }
    }

    /// The files hold no secret, nor 8 bytes of one; the `.key` is the sealed form, and
    /// neither file is readable by others.
    #[test]
    fn files_hold_no_plaintext_secret() {
        let dir = tempfile::tempdir().unwrap();
        let ks = Keystore::new(dir.path());
        let id = Identity::generate().unwrap();
        ks.create("alice", &id, b"pw", P).unwrap();
        let secrets = [
            id.signing_key().to_bytes(),
            *id.exchange_secret().as_bytes(),
            *id.kem().as_bytes(),
        ];
        for f in std::fs::read_dir(ks.dir()).unwrap() {
            let path = f.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            for s in &secrets {
                for part in s.chunks(8) {
                    assert!(!bytes.windows(8).any(|w| w == part), "{}", path.display());
                }
            }
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "{} is private", path.display());
            }
        }
        assert_eq!(ks.sealed("alice").unwrap().len(), SEALED_LEN);
    }

    #[test]
    fn create_list_open_and_change_the_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let ks = Keystore::new(dir.path());
        assert!(ks.list().unwrap().is_empty());
        let id = Identity::generate().unwrap();
        let public = ks.create("bob", &id, b"pw", P).unwrap();
        ks.create("alice", &Identity::generate().unwrap(), b"pw", P)
            .unwrap();
        let listed = ks.list().unwrap();
        assert_eq!(
            listed.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["alice", "bob"]
        );
        assert_eq!(listed[1].public.as_ref(), Some(&public));
        assert!(matches!(
            ks.create("bob", &id, b"pw", P),
            Err(Error::Exists(_))
        ));
        assert!(matches!(
            ks.open("bob", b"nope"),
            Err(Error::Identity(zhtp_identity::Error::WrongPassphrase))
        ));
        assert!(matches!(ks.open("carol", b"pw"), Err(Error::NotFound(_))));
        ks.change_passphrase("bob", b"pw", b"new", P).unwrap();
        assert!(matches!(
            ks.open("bob", b"pw"),
            Err(Error::Identity(zhtp_identity::Error::WrongPassphrase))
        ));
        assert_eq!(ks.open("bob", b"new").unwrap().public(), public);
    }

    /// A damaged or swapped `.pub` is not shown as the identity's keys, and opening the
    /// identity puts the right one back.
    #[test]
    fn the_public_record_follows_the_sealed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let ks = Keystore::new(dir.path());
        let (a, b) = (Identity::generate().unwrap(), Identity::generate().unwrap());
        ks.create("a", &a, b"pw", P).unwrap();
        ks.create("b", &b, b"pw", P).unwrap();
        std::fs::write(ks.pub_path("a"), b"junk").unwrap();
        assert!(matches!(ks.public("a"), Err(Error::NoPublicRecord(_))));
        std::fs::copy(ks.pub_path("b"), ks.pub_path("a")).unwrap();
        assert_eq!(ks.public("a").unwrap(), b.public(), "a valid record, b's");
        ks.open("a", b"pw").unwrap();
        assert_eq!(ks.public("a").unwrap(), a.public());
    }

    #[test]
    fn import_keeps_the_sealed_bytes_and_checks_them() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (
            Keystore::new(&dir.path().join("1")),
            Keystore::new(&dir.path().join("2")),
        );
        let id = Identity::generate().unwrap();
        from.create("me", &id, b"pw", P).unwrap();
        let sealed = from.sealed("me").unwrap();
        assert!(matches!(
            to.import("me", &sealed, b"wrong"),
            Err(Error::Identity(zhtp_identity::Error::WrongPassphrase))
        ));
        assert!(
            to.list().unwrap().is_empty(),
            "nothing kept on a failed import"
        );
        assert_eq!(to.import("me", &sealed, b"pw").unwrap(), id.public());
        assert_eq!(to.sealed("me").unwrap(), sealed);
        assert!(matches!(
            to.import("me", &sealed, b"pw"),
            Err(Error::Exists(_))
        ));
    }
}
