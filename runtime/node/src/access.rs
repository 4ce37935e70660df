//! `zhtp grant | revoke`: the owner changes who reads a content.
//!
//! The owner's side does the cryptography: it unwraps the content key with its identity, wraps
//! it for the grantee (or drops a reader's wrap), and signs the new access list. The node that
//! published the content checks that signature, that the owner is the same and that the
//! version is the next one, and republishes the manifest ([`zhtp::readers`]).

use std::io::Seek as _;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use clap::Args;
use zhtp::keystore::{self, Keystore};
use zhtp::local::PutOptions;
use zhtp::readers;
use zhtp::wire::{AccessUpdated, PutReply};
use zhtp_content::Manifest;
use zhtp_identity::public::RECORD_LEN;
use zhtp_identity::{Identity, PublicKeys};
use zhtp_types::Hash;

use crate::args;
use crate::client::Client;
use crate::identity::PassphraseFile;

/// Days a re-encrypted content is paid for on a node that charges (the new content is a new
/// storage contract; the old one runs out on its own).
const PAID_DAYS: u32 = 30;

/// `zhtp grant`.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// Content hash.
    #[arg(value_parser = args::content_hash)]
    pub hash: Hash,
    /// Who gets access: an identity of this keystore, a public record file (`zhtp identity
    /// export --public`), that record in hex, or the id of an identity whose record is known
    /// here.
    pub grantee: String,
    /// The owner: an identity of this keystore (asks for its passphrase).
    #[arg(long, value_name = "NAME")]
    pub identity: String,
    #[command(flatten)]
    pub passphrase: PassphraseFile,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `zhtp revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Content hash.
    #[arg(value_parser = args::content_hash)]
    pub hash: Hash,
    /// The reader to remove: an identity of this keystore, its id (64 hex characters), or its
    /// public record file.
    pub reader: String,
    /// The owner: an identity of this keystore (asks for its passphrase).
    #[arg(long, value_name = "NAME")]
    pub identity: String,
    #[command(flatten)]
    pub passphrase: PassphraseFile,
    /// Only remove the reader's wrapped key. The content key stays the same, so a reader who
    /// noted it can still decrypt the shards; without --lazy the content is encrypted again
    /// under a fresh key.
    #[arg(long)]
    pub lazy: bool,
    /// Re-encrypt even when some remaining readers' public keys are not known in this data dir
    /// (they were granted from elsewhere): they lose access too.
    #[arg(long, conflicts_with = "lazy")]
    pub forget_unknown: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A grantee's public keys and record: a keystore name, a record file, the record in hex, or
/// the id of an identity whose record is known here.
fn public_keys(ks: &Keystore, who: &str) -> Result<(PublicKeys, Vec<u8>)> {
    if keystore::check_name(who).is_ok() && ks.key_path(who).exists() {
        let (record, keys) = ks.public_record(who)?;
        return Ok((keys, record));
    }
    if who.len() == 64
        && let Ok(Ok(id)) = hex::decode(who).map(<[u8; 32]>::try_from)
    {
        let (record, keys) = ks.find(&id).with_context(|| {
            format!(
                "the public keys of {who} are not known here: grant with its public record file \
                 (`zhtp identity export NAME --public`)"
            )
        })?;
        return Ok((keys, record));
    }
    let path = Path::new(who);
    let record = if path.is_file() {
        keystore::read_bounded(path, RECORD_LEN)
            .with_context(|| format!("reading {}", path.display()))?
            .with_context(|| format!("{} is too long for a public record", path.display()))?
    } else if let Ok(b) = hex::decode(who.trim()) {
        b
    } else {
        bail!(
            "{who:?} is neither an identity of this keystore, nor a public record file, nor a record in hex"
        );
    };
    Ok((PublicKeys::from_record(&record)?, record))
}

/// A reader's id: a keystore name, 64 hex characters, or a record file.
fn reader_id(ks: &Keystore, who: &str) -> Result<[u8; 32]> {
    if who.len() == 64
        && let Ok(Ok(id)) = hex::decode(who).map(<[u8; 32]>::try_from)
    {
        return Ok(id);
    }
    Ok(public_keys(ks, who)?.0.signing)
}

/// The manifest as the node (or this data dir) has it, and a way to hand it a new version.
enum Place {
    Local(zhtp::local::LocalNode),
    Remote(Client),
}

impl Place {
    fn new(dir: &Path, remote: Option<&str>) -> Result<Self> {
        Ok(match remote {
            Some(url) => Self::Remote(Client::new(url)?),
            None => Self::Local(crate::files::open(dir)?),
        })
    }

    fn manifest(&self, hash: Hash) -> Result<Manifest> {
        match self {
            Self::Local(n) => n
                .manifest(&hash)?
                .with_context(|| format!("no content {hash} on this node")),
            Self::Remote(c) => {
                let mut bytes = Vec::new();
                c.download(&format!("/content/{hash}/access"), &[], &mut bytes)?;
                let m = Manifest::decode(&bytes)?;
                anyhow::ensure!(
                    m.content_hash == hash,
                    "the node sent the manifest of {}",
                    m.content_hash
                );
                Ok(m)
            }
        }
    }

    fn publish(&self, new: &Manifest) -> Result<AccessUpdated> {
        match self {
            Self::Local(n) => {
                n.update_access(new).map_err(|e| match e {
                    zhtp::local::Error::NotFound(h) => anyhow::anyhow!(
                        "content {h} was not put through this data dir (use --node with the node it was put through)"
                    ),
                    e => e.into(),
                })?;
                Ok(AccessUpdated {
                    version: new.encryption.access_version,
                    readers: readers::ids(new)?,
                    published: false,
                })
            }
            Self::Remote(c) => c.post_bytes(
                &format!("/content/{}/access", new.content_hash),
                &new.encode(),
            ),
        }
    }
}

fn report(what: &str, r: &AccessUpdated, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
    } else {
        println!("{what}; access list version {}", r.version);
        for (i, id) in r.readers.iter().enumerate() {
            println!("{}  {id}", if i == 0 { "owner " } else { "reader" });
        }
    }
    Ok(())
}

pub fn grant(dir: &Path, remote: Option<&str>, a: GrantArgs) -> Result<()> {
    let ks = Keystore::new(dir);
    let (grantee, record) = public_keys(&ks, &a.grantee)?;
    let place = Place::new(dir, remote)?;
    let m = place.manifest(a.hash)?;
    let owner = crate::identity::open(dir, &a.identity, &a.passphrase)?;
    let new = readers::grant(&m, &owner, &grantee)?;
    let r = place.publish(&new)?;
    // Kept so that a revoke that re-encrypts can wrap the new key for this reader again.
    ks.remember(&record)?;
    report(
        &format!("granted {} access to {}", grantee.id(), a.hash),
        &r,
        a.json,
    )
}

pub fn revoke(dir: &Path, remote: Option<&str>, a: RevokeArgs) -> Result<()> {
    let ks = Keystore::new(dir);
    let id = reader_id(&ks, &a.reader)?;
    let place = Place::new(dir, remote)?;
    let m = place.manifest(a.hash)?;
    let owner = crate::identity::open(dir, &a.identity, &a.passphrase)?;
    // Checks ownership and that `id` is a reader before anything is re-encrypted.
    let lazy = readers::revoke(&m, &owner, &id)?;
    if a.lazy {
        let r = place.publish(&lazy)?;
        if !a.json {
            eprintln!(
                "only the wrapped key was removed: the content key is unchanged, so a reader who \
                 kept it (or the content) still has it; revoke without --lazy re-encrypts"
            );
        }
        return report(
            &format!("revoked {} on {}", hex::encode(id), a.hash),
            &r,
            a.json,
        );
    }
    reencrypt(dir, &place, &m, &owner, &id, a.forget_unknown, a.json)
}

/// Revoke by re-encryption: the owner reads the content, stores it again under a fresh key
/// wrapped for itself (the same address, so the new manifest replaces the old and the old
/// shards are collected), then grants each remaining reader whose keys are known here.
fn reencrypt(
    dir: &Path,
    place: &Place,
    m: &Manifest,
    owner: &Identity,
    revoked: &[u8; 32],
    forget_unknown: bool,
    json: bool,
) -> Result<()> {
    let hash = m.content_hash;
    let ks = Keystore::new(dir);
    let key = readers::unwrap(m, owner)?;
    let metadata = m.open_metadata(&key)?;
    // Every reader kept must be granted the new key: their public keys are needed before
    // anything changes (the old manifest is the only list of them).
    let mut keep = Vec::new();
    let mut unknown = Vec::new();
    for w in readers::check(m)?.iter().skip(1) {
        let r = w.recipient();
        if r == revoked {
            continue;
        }
        match ks.find(r) {
            Some((_, k)) => keep.push(k),
            None => unknown.push(hex::encode(r)),
        }
    }
    if !unknown.is_empty() && !forget_unknown {
        bail!(
            "the public keys of readers {} are not known in this data dir (they were granted \
             from elsewhere): re-encrypting would take their access too. Revoke with --lazy, \
             or pass --forget-unknown to re-encrypt and drop them; nothing was changed",
            unknown.join(", ")
        );
    }
    // The plaintext passes through a file no one can open by name, gone with this process
    // however it ends (O_TMPFILE), in the data dir (0700).
    zhtp::private::create_dir(dir)?;
    let mut tmp = tempfile::tempfile_in(dir)
        .with_context(|| format!("a temporary file in {}", dir.display()))?;
    match place {
        Place::Local(n) => {
            n.get_with_key(&hash, Some(key.clone()), &mut tmp, &|_| {})?;
        }
        Place::Remote(c) => {
            crate::files::get_remote_into(c, hash, Some(Hash(key.0)), Some(owner), &mut tmp)?
        }
    }
    tmp.seek(std::io::SeekFrom::Start(0))?;
    let mut opts = PutOptions::new(m.tier);
    opts.encryption = m.encryption.level;
    opts.code = m.code;
    opts.segment_size = m.segment_size;
    opts.metadata = metadata;
    opts.readers = vec![owner.public()];
    let put = match place {
        Place::Remote(c) => {
            let pay = crate::files::Pay {
                payer: owner,
                days: PAID_DAYS,
                max_price: None,
                proofs: false,
            };
            crate::files::put_remote(c, tmp, Some(m.code), opts, Some(owner), Some(pay))?
        }
        Place::Local(n) => PutReply::of(&n.put(&mut tmp, opts, &|_| {})?, 0.0),
    };
    anyhow::ensure!(
        put.content_hash == hash,
        "the content changed while re-encrypting"
    );
    let mut r = AccessUpdated {
        version: 0,
        readers: vec![owner.public().id()],
        published: put.published.unwrap_or(false),
    };
    for (i, k) in keep.iter().enumerate() {
        let granted = place
            .manifest(hash)
            .and_then(|current| Ok(readers::grant(&current, owner, k)?))
            .and_then(|next| place.publish(&next));
        r = granted.with_context(|| {
            let left: Vec<String> = keep[i..].iter().map(PublicKeys::id).collect();
            format!(
                "re-encrypted, but granting the kept readers again stopped; grant these again \
                 (their records are in {}): {}",
                ks.dir().join("contacts").display(),
                left.join(", ")
            )
        })?;
    }
    if !json {
        eprintln!(
            "re-encrypted under a fresh key: {} revoked; what it downloaded before, and the old \
             key, open none of the new shards",
            hex::encode(revoked)
        );
        if !unknown.is_empty() {
            eprintln!(
                "dropped with it (public keys not known here): {}",
                unknown.join(", ")
            );
        }
    }
    report(
        &format!("revoked {} on {hash}", hex::encode(revoked)),
        &r,
        json,
    )
}
