//! The admin API's bodies: one set of types that the axum handlers serialise, the `--node`
//! client deserialises, and `--json` prints, so a command shows the same thing whether it read
//! the local data dir or asked a running node, and a field renamed on one side fails to compile
//! on the other instead of reading back as zero.
//!
//! In JSON, hashes and keys are 64 hex characters, amounts integer µZHTP, tiers and encryption
//! levels their command-line names (`warm`, `standard`).

use serde::{Deserialize, Serialize};
use zhtp_content::{CodeParams, EncryptionLevel, Manifest};
use zhtp_host::{Plugin, PricedQuote};
use zhtp_types::{Hash, MicroZhtp, StorageTier};

use crate::local::Summary;

/// Serde of a [`Hash`] as hex (its own serde is 32 bytes, for postcard).
pub mod hex {
    use serde::{Deserialize as _, Deserializer, Serializer};
    use zhtp_types::Hash;

    /// As 64 hex characters.
    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&h.to_hex())
    }

    /// From 64 hex characters.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Hash::from_hex(&s).map_err(serde::de::Error::custom)
    }

    /// `Option<Hash>` as hex or null.
    pub mod option {
        use serde::{Deserialize as _, Deserializer, Serializer};
        use zhtp_types::Hash;

        /// As hex, or null.
        pub fn serialize<S: Serializer>(h: &Option<Hash>, s: S) -> Result<S::Ok, S::Error> {
            match h {
                Some(h) => s.serialize_str(&h.to_hex()),
                None => s.serialize_none(),
            }
        }

        /// From hex, or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Hash>, D::Error> {
            Option::<std::borrow::Cow<'de, str>>::deserialize(d)?
                .map(|s| Hash::from_hex(&s).map_err(serde::de::Error::custom))
                .transpose()
        }
    }

    /// `Vec<Hash>` as a list of hex strings.
    pub mod list {
        use serde::ser::SerializeSeq as _;
        use serde::{Deserialize as _, Deserializer, Serializer};
        use zhtp_types::Hash;

        /// As hex strings.
        pub fn serialize<S: Serializer>(v: &[Hash], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for h in v {
                seq.serialize_element(&h.to_hex())?;
            }
            seq.end()
        }

        /// From hex strings.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Hash>, D::Error> {
            Vec::<std::borrow::Cow<'de, str>>::deserialize(d)?
                .iter()
                .map(|s| Hash::from_hex(s).map_err(serde::de::Error::custom))
                .collect()
        }
    }
}

/// An error answer: `{"error": "..."}` with a 4xx/5xx status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

/// Put options, sent as JSON in the `zhtp-put` header of `POST /content`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRequest {
    /// Tier (default warm).
    pub tier: Option<StorageTier>,
    /// Encryption (default standard, which needs an owner in `readers`; `none` for public
    /// content).
    pub encryption: Option<EncryptionLevel>,
    /// Erasure code instead of the tier's.
    pub code: Option<CodeParams>,
    /// Name.
    pub name: Option<String>,
    /// MIME type.
    pub mime: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Description.
    pub description: Option<String>,
    /// Readers' signed public records (`zhtp identity export --public`), hex, the owner
    /// first: the content key is wrapped for each in the manifest and the node keeps none.
    /// Every level but `none` needs the owner's (a put names only the owner).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readers: Vec<String>,
    /// BLAKE3 of the body, when the client states it: the node refuses an upload that hashes
    /// to anything else. Required with `readers`: the owner's signature covers these options,
    /// so it then covers the bytes too.
    #[serde(default, with = "hex::option", skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<Hash>,
    /// The client's payment, which a node that charges needs (with `content_hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<PaymentRequest>,
}

/// What a put stored (`POST /content`, `put --json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PutReply {
    /// The content's address.
    #[serde(with = "hex")]
    pub content_hash: Hash,
    /// Plaintext bytes.
    pub size: u64,
    /// Bytes stored across all shards.
    pub stored: u64,
    /// Segments.
    pub segments: usize,
    /// Tier.
    pub tier: StorageTier,
    /// Encryption.
    pub encryption: EncryptionLevel,
    /// Erasure code, `k+m`.
    pub code: String,
    /// How long the put took.
    pub seconds: f64,
    /// Whether the manifest record reached another node (network puts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<bool>,
    /// Which node got each shard, per segment (network puts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement: Vec<Vec<String>>,
    /// The storage contract that pays for it (a put through a node that charges).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<ContractInfo>,
}

impl PutReply {
    /// What a put of `m` reports, before the network's fields.
    pub fn of(m: &Manifest, seconds: f64) -> Self {
        Self {
            content_hash: m.content_hash,
            size: m.size,
            stored: m.stored_bytes(),
            segments: m.segments.len(),
            tier: m.tier,
            encryption: m.encryption.level,
            code: format!("{}+{}", m.code.data, m.code.parity),
            seconds,
            published: None,
            placement: Vec::new(),
            contract: None,
        }
    }
}

/// One line of `ls` / `search` (`GET /content`, `GET /search`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// The content's address.
    #[serde(with = "hex")]
    pub content_hash: Hash,
    /// Plaintext bytes.
    pub size: u64,
    /// Bytes stored across all shards.
    pub stored: u64,
    /// Tier.
    pub tier: StorageTier,
    /// Encryption.
    pub encryption: EncryptionLevel,
    /// Name.
    pub name: Option<String>,
    /// MIME type.
    pub mime: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Description.
    pub description: Option<String>,
    /// When it was put (Unix seconds).
    pub created: u64,
}

impl From<&Summary> for Listed {
    fn from(s: &Summary) -> Self {
        Self {
            content_hash: s.content_hash,
            size: s.size,
            stored: s.stored,
            tier: s.tier,
            encryption: s.encryption,
            name: s.metadata.name.clone(),
            mime: s.metadata.mime.clone(),
            tags: s.metadata.tags.clone(),
            description: s.metadata.description.clone(),
            created: s.metadata.created,
        }
    }
}

/// An access list taken (`POST /content/{hash}/access`, `grant` and `revoke --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessUpdated {
    /// Its version.
    pub version: u64,
    /// The readers' ids, the owner first.
    pub readers: Vec<String>,
    /// Whether the new manifest record reached another node.
    pub published: bool,
}

/// A whole manifest (`GET /content/{hash}/manifest`, `info --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestInfo {
    /// Manifest format version.
    pub version: u16,
    /// The content's address.
    #[serde(with = "hex")]
    pub content_hash: Hash,
    /// Plaintext bytes.
    pub size: u64,
    /// Bytes stored across all shards.
    pub stored: u64,
    /// Tier.
    pub tier: StorageTier,
    /// Erasure code.
    pub code: CodeInfo,
    /// Plaintext bytes per segment.
    pub segment_size: u32,
    /// Encryption.
    pub encryption: EncryptionLevel,
    /// Hash that tells whether a key is this content's.
    #[serde(with = "hex::option")]
    pub key_check: Option<Hash>,
    /// The content key wrapped for each reader, hex, the owner first (the first 64 characters
    /// of each are the reader's id).
    #[serde(default)]
    pub readers: Vec<String>,
    /// The owner's metadata encrypted under the content key, hex (empty when public).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub private: String,
    /// Segments, in order.
    pub segments: Vec<SegmentDetail>,
    /// Name, tags and so on.
    pub metadata: MetadataInfo,
}

/// An erasure code in [`ManifestInfo`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeInfo {
    /// Implementation (`unknown` for a code this build does not implement).
    pub kind: String,
    /// k.
    pub data: u8,
    /// m.
    pub parity: u8,
}

/// A segment in [`ManifestInfo`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentDetail {
    /// Plaintext bytes.
    pub plain_len: u32,
    /// Whether LZ4 made it smaller.
    pub compressed: bool,
    /// Bytes after compression and encryption.
    pub stored_len: u32,
    /// Bytes per shard.
    pub shard_len: u32,
    /// Shard hashes, data shards first.
    #[serde(with = "hex::list")]
    pub shards: Vec<Hash>,
}

/// Metadata in [`ManifestInfo`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataInfo {
    /// Name.
    pub name: Option<String>,
    /// MIME type.
    pub mime: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Description.
    pub description: Option<String>,
    /// When it was put (Unix seconds).
    pub created: u64,
}

impl From<&Manifest> for ManifestInfo {
    fn from(m: &Manifest) -> Self {
        Self {
            version: m.version,
            content_hash: m.content_hash,
            size: m.size,
            stored: m.stored_bytes(),
            tier: m.tier,
            code: CodeInfo {
                kind: m.code.kind().map_or("unknown", |k| k.name()).to_owned(),
                data: m.code.data,
                parity: m.code.parity,
            },
            segment_size: m.segment_size,
            encryption: m.encryption.level,
            key_check: m.encryption.key_check,
            readers: m.encryption.readers.iter().map(::hex::encode).collect(),
            private: ::hex::encode(&m.encryption.private),
            segments: m
                .segments
                .iter()
                .map(|s| SegmentDetail {
                    plain_len: s.plain_len,
                    compressed: s.compressed,
                    stored_len: s.stored_len,
                    shard_len: s.shard_len,
                    shards: s.shards.clone(),
                })
                .collect(),
            metadata: MetadataInfo {
                name: m.metadata.name.clone(),
                mime: m.metadata.mime.clone(),
                tags: m.metadata.tags.clone(),
                description: m.metadata.description.clone(),
                created: m.metadata.created,
            },
        }
    }
}

/// A priced quote (`POST /quote`, `quote --json`), amounts in integer µZHTP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Priced {
    /// Base price.
    pub base: MicroZhtp,
    /// Quality premium.
    pub quality_premium: MicroZhtp,
    /// Network fee.
    pub network_fee: MicroZhtp,
    /// Escrow fee.
    pub escrow_fee: MicroZhtp,
    /// Most bonus paid to providers from the incentive pool.
    pub max_bonus: MicroZhtp,
    /// What the client pays.
    pub total: MicroZhtp,
    /// The plugin that priced it.
    pub plugin: String,
    /// BLAKE3 of its code.
    #[serde(with = "hex")]
    pub plugin_hash: Hash,
    /// The factors it applied.
    pub adjustments: Vec<AdjustmentInfo>,
}

/// One factor of a [`Priced`] quote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustmentInfo {
    /// Factor name.
    pub name: String,
    /// Multiplier in basis points (10,000 = ×1).
    pub factor_bp: u32,
}

impl From<&PricedQuote> for Priced {
    fn from(p: &PricedQuote) -> Self {
        let q = &p.quote;
        Self {
            base: q.base,
            quality_premium: q.quality_premium,
            network_fee: q.network_fee,
            escrow_fee: q.escrow_fee,
            max_bonus: q.max_bonus,
            total: q.total,
            plugin: p.plugin.clone(),
            plugin_hash: p.plugin_hash,
            adjustments: q
                .adjustments
                .iter()
                .map(|a| AdjustmentInfo {
                    name: a.factor.name().to_owned(),
                    factor_bp: a.factor_bp,
                })
                .collect(),
        }
    }
}

/// An installed plugin in a registry slot (`GET /plugins`, `plugin list --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginRow {
    /// Plugin kind (`pricing`).
    pub kind: String,
    /// `current` or `previous`.
    pub slot: String,
    /// The name it gives itself.
    pub name: String,
    /// BLAKE3 of its code.
    #[serde(with = "hex")]
    pub hash: Hash,
    /// The ABI version it was built for.
    pub abi_version: u32,
    /// Bytes of code.
    pub size: u64,
}

impl PluginRow {
    /// `p` in `slot`.
    pub fn of(slot: &str, p: &Plugin) -> Self {
        let i = p.info();
        Self {
            kind: p.kind().as_str().to_owned(),
            slot: slot.to_owned(),
            name: i.name.clone(),
            hash: i.hash,
            abi_version: i.abi_version,
            size: i.size as u64,
        }
    }
}

/// A plugin made current (`POST /plugins/{kind}`, `.../rollback`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// The name it gives itself.
    pub name: String,
    /// BLAKE3 of its code.
    #[serde(with = "hex")]
    pub hash: Hash,
}

/// A running node's status (`GET /status`, `node status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// This node's peer id.
    pub peer_id: String,
    /// Where it listens for peers.
    pub listen: Vec<String>,
    /// Peers connected now.
    pub connected: Vec<String>,
    /// How many.
    pub peers: usize,
    /// Peers in the routing table.
    pub routing_table: usize,
    /// DHT records held.
    pub records: usize,
    /// Shards held for the network.
    pub shards: u64,
    /// Their bytes.
    pub shard_bytes: u64,
    /// Contents they belong to.
    pub contents: usize,
    /// DHT records refused (bad signature, not the owner, stale).
    pub refused_records: u64,
    /// Inbound shard requests that failed.
    pub inbound_failures: u64,
    /// Inbound requests being answered now.
    pub serving: usize,
    /// Bytes those answers hold.
    pub serving_bytes: usize,
    /// Requests refused as busy since start.
    pub busy: u64,
    /// Whether this node charges for storage (takes puts with a payment only).
    #[serde(default)]
    pub charges: bool,
    /// The network's storage utilisation this node measures from providers' ads, bp: what
    /// its pricing requests carry (5,000 when it knows no ad).
    #[serde(default = "neutral_utilization")]
    pub utilization_bp: u16,
    /// The churn this node's durability figures assume (`zhtp info` through it).
    #[serde(default)]
    pub churn: Option<crate::network::Churn>,
}

fn neutral_utilization() -> u16 {
    zhtp_host::abi::pricing::QuoteRequest::NEUTRAL_UTILIZATION_BP
}

/// Live shards of a content (`GET /content/{hash}/holders`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderMap {
    /// The content.
    #[serde(with = "hex")]
    pub content_hash: Hash,
    /// Shards needed per segment.
    pub k: u8,
    /// Per segment.
    pub segments: Vec<SegmentHolders>,
}

/// One segment of a [`HolderMap`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentHolders {
    /// Segment number.
    pub segment: u32,
    /// Shards with at least one live holder.
    pub live: usize,
    /// Shards in all (k + m).
    pub of: usize,
    /// Peer ids holding any of them.
    pub nodes: Vec<String>,
}

impl HolderMap {
    /// The fewest live shards of any segment, and k + m.
    pub fn weakest(&self) -> (usize, usize) {
        let min = self.segments.iter().map(|s| s.live).min().unwrap_or(0);
        let of = self.segments.first().map_or(0, |s| s.of);
        (min, of)
    }
}

/// The line `zhtp node run` prints on stdout once it serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    /// Its peer id.
    pub peer_id: String,
    /// Its API's URL.
    pub api: String,
    /// The file holding the API token.
    pub token_file: std::path::PathBuf,
    /// Addresses peers can dial (with `/p2p/<id>`, usable as `--bootstrap`).
    pub listen: Vec<String>,
}

/// An account of the node's ledger (`GET /accounts/{id}`, `account show --json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfo {
    /// The account: an identity's id (its Ed25519 key, hex).
    pub account: String,
    /// µZHTP.
    pub balance: MicroZhtp,
    /// All the µZHTP of this ledger.
    pub supply: MicroZhtp,
    /// Whether this ledger has a faucet (`node run --devnet`).
    pub devnet: bool,
    /// Its last transfers, newest first.
    pub history: Vec<TransferInfo>,
}

/// One transfer of the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferInfo {
    /// Its idempotency key (hex).
    pub id: String,
    /// Its place in the ledger's order.
    pub seq: u64,
    /// Who paid: an id (hex), or `faucet`, `treasury`, `incentive pool`, `escrow of ...`.
    pub from: String,
    /// Who was paid.
    pub to: String,
    /// µZHTP.
    pub amount: MicroZhtp,
    /// Why: `faucet`, `transfer`, `escrow-lock`, `escrow-release`, ...
    pub kind: zhtp_economy::Kind,
    /// Unix seconds.
    pub at: u64,
}

impl From<&zhtp_economy::Transfer> for TransferInfo {
    fn from(t: &zhtp_economy::Transfer) -> Self {
        Self {
            id: ::hex::encode(t.id),
            seq: t.seq,
            from: t.debit.to_string(),
            to: t.credit.to_string(),
            amount: t.amount,
            kind: t.kind,
            at: t.at,
        }
    }
}

/// `POST /accounts/{id}/fund`: µZHTP from a devnet's faucet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundRequest {
    /// µZHTP.
    pub amount: MicroZhtp,
    /// An idempotency key (64 hex characters): the same request sent again pays once. The node
    /// picks a fresh one when there is none.
    #[serde(default)]
    pub id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_tiers_and_levels_are_spelled_as_on_the_command_line() {
        let h = Hash([0xab; 32]);
        let req = PutRequest {
            tier: Some(StorageTier::Cold),
            encryption: Some(EncryptionLevel::None),
            ..PutRequest::default()
        };
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(json["tier"], "cold");
        assert_eq!(json["encryption"], "none");
        let installed = Installed {
            name: "p".into(),
            hash: h,
        };
        let json = serde_json::to_string(&installed).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"name":"p","hash":"{}"}}"#, "ab".repeat(32))
        );
        assert_eq!(serde_json::from_str::<Installed>(&json).unwrap(), installed);
        // A bad hash is an error naming it, not a zero hash.
        let e = serde_json::from_str::<Installed>(r#"{"name":"p","hash":"xyz"}"#).unwrap_err();
        assert!(e.to_string().contains("hex"), "{e}");
    }

    #[test]
    fn a_put_request_with_an_unknown_field_is_refused() {
        // A misspelt option must not silently fall back to a default.
        let e = serde_json::from_str::<PutRequest>(r#"{"teir":"hot"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        // The names of earlier versions still read.
        let r: PutRequest = serde_json::from_str(r#"{"tier":"Hot"}"#).unwrap();
        assert_eq!(r.tier, Some(StorageTier::Hot));
    }
}

/// Seconds in a storage contract's settlement period unless a put asks for others: a day.
pub const PERIOD_SECS: u64 = 86_400;

/// How a put pays (`zhtp-put` `payment`): the fields of the client's mandate
/// (`zhtp_economy::contract::Mandate`) but the content, which is the put's `content_hash`, and
/// the client's signature over it. A node that charges takes a put only with one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequest {
    /// Who pays: its Ed25519 key (an identity's id), hex.
    pub client: String,
    /// Most it pays for the whole term, µZHTP.
    pub max_price: MicroZhtp,
    /// Settlement periods (days, unless `period_secs` says otherwise).
    pub periods: u32,
    /// Seconds per period.
    #[serde(default = "default_period")]
    pub period_secs: u64,
    /// Unix seconds after which the mandate buys nothing.
    pub expires: u64,
    /// 16 random bytes, hex.
    pub nonce: String,
    /// Ed25519 signature over the mandate's signing message, hex.
    pub signature: String,
    /// Have the node commit to every shard and audit this content by Groth16 proofs of
    /// storage instead of BLAKE3 digests (README "Storage proofs"): about 0.25 s per MiB of
    /// shard more at put time. The node's `--proof-audits` does it for every put.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proof_audits: bool,
}

fn default_period() -> u64 {
    PERIOD_SECS
}

impl PaymentRequest {
    /// A payment by `id` of at most `max_price` for storing `content` `periods` periods of
    /// `period_secs`, valid for ten minutes.
    pub fn sign(
        id: &zhtp_identity::Identity,
        content: Hash,
        max_price: MicroZhtp,
        periods: u32,
        period_secs: u64,
    ) -> Result<Self, String> {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness: {e}"))?;
        let mandate = zhtp_economy::contract::Mandate {
            content,
            client: id.public().signing,
            max_price,
            periods,
            period_secs,
            expires: zhtp_dht::record::unix_now() + 600,
            nonce,
        };
        Ok(Self {
            client: ::hex::encode(mandate.client),
            max_price,
            periods,
            period_secs,
            expires: mandate.expires,
            nonce: ::hex::encode(nonce),
            signature: ::hex::encode(id.sign(&mandate.signing_message())),
            proof_audits: false,
        })
    }

    /// The mandate for `content` and its signature, decoded (the signature is checked where
    /// the contract is made).
    pub fn mandate(
        &self,
        content: Hash,
    ) -> Result<(zhtp_economy::contract::Mandate, Vec<u8>), String> {
        let bytes = |what: &str, s: &str, n: usize| -> Result<Vec<u8>, String> {
            let b = ::hex::decode(s).map_err(|e| format!("payment {what}: {e}"))?;
            if b.len() != n {
                return Err(format!("payment {what}: {} bytes, not {n}", b.len()));
            }
            Ok(b)
        };
        let client = bytes("client", &self.client, 32)?;
        let nonce = bytes("nonce", &self.nonce, 16)?;
        let signature = bytes("signature", &self.signature, 64)?;
        let mandate = zhtp_economy::contract::Mandate {
            content,
            client: client.try_into().expect("32 bytes"),
            max_price: self.max_price,
            periods: self.periods,
            period_secs: self.period_secs,
            expires: self.expires,
            nonce: nonce.try_into().expect("16 bytes"),
        };
        Ok((mandate, signature))
    }
}

/// Longest term a payment may ask for: 100 years.
pub const MAX_TERM_SECS: u64 = 100 * 365 * 86_400;

/// The days a term of `periods` periods of `period_secs` is priced as: whole days, rounded
/// up (a term of 20 periods of 3 s is priced as 1 day, one of 2 periods of 1.5 days as 3).
/// `None` beyond [`MAX_TERM_SECS`] or for an empty term.
pub fn term_days(periods: u32, period_secs: u64) -> Option<u32> {
    let secs = u64::from(periods).checked_mul(period_secs)?;
    if secs == 0 || secs > MAX_TERM_SECS {
        return None;
    }
    u32::try_from(secs.div_ceil(PERIOD_SECS)).ok()
}

/// The pricing request of a put of `size` bytes for `days` in `tier` with code `code`: what a
/// node charging for a put asks its pricing plugin, and what a client asks `/quote` to know
/// the price beforehand. Redundancy is the code's, in whole copies, rounded up.
pub fn put_quote(
    size: u64,
    days: u32,
    tier: StorageTier,
    code: CodeParams,
) -> zhtp_host::abi::pricing::QuoteRequest {
    let (k, m) = (u32::from(code.data), u32::from(code.parity));
    zhtp_host::abi::pricing::QuoteRequest {
        size_bytes: size.max(1),
        duration_days: days.max(1),
        tier,
        quality: false,
        replication: (k + m).div_ceil(k).clamp(1, 12) as u8,
        urgency: zhtp_host::abi::pricing::Urgency::Normal,
        utilization_bp: zhtp_host::abi::pricing::QuoteRequest::NEUTRAL_UTILIZATION_BP,
    }
}

/// One storage contract (`GET /storage-contracts`, `storage-contract show`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractInfo {
    /// Its id.
    #[serde(with = "hex")]
    pub id: Hash,
    /// Where it stands (`active`, `settled`...).
    pub state: zhtp_economy::contract::State,
    /// The content stored.
    #[serde(with = "hex")]
    pub content: Hash,
    /// Who pays, hex.
    pub client: String,
    /// Price for the whole term, µZHTP.
    pub price: MicroZhtp,
    /// The network fee, part of the price, paid into the incentive pool, µZHTP.
    #[serde(default)]
    pub fee: MicroZhtp,
    /// BLAKE3 of the pricing plugin that quoted it.
    #[serde(with = "hex")]
    pub plugin: Hash,
    /// Start, Unix seconds.
    pub start: u64,
    /// Periods in the term, and seconds each.
    pub periods: u32,
    /// Seconds per period.
    pub period_secs: u64,
    /// Periods settled.
    pub periods_settled: u32,
    /// Each provider (hex key) and how many shards it holds.
    pub providers: Vec<(String, usize)>,
    /// Shards paid for.
    pub shards: usize,
    /// How many parties signed, of how many.
    pub signatures: (usize, usize),
    /// The escrow, when this node holds it. Its `released` includes the network fee once
    /// moved to the incentive pool (with the first period paid).
    pub escrow: Option<zhtp_economy::Escrow>,
    /// The network fee the escrow still holds for the incentive pool, µZHTP.
    #[serde(default)]
    pub fee_pending: MicroZhtp,
    /// The audits this node ran under it: period, provider (hex), outcome (`show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audits: Vec<(u32, String, zhtp_economy::audit::Outcome)>,
    /// The proof audits among them: period, provider (hex), details (`show` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub proof_audits: Vec<(u32, String, zhtp_economy::audit::ProofAudit)>,
    /// Shards whose placement carries a proof commitment (audited by Groth16 proofs).
    #[serde(default)]
    pub committed: usize,
}

impl ContractInfo {
    /// What `c` shows, with its escrow when this node holds it.
    pub fn of(
        c: &zhtp_economy::contract::StorageContract,
        escrow: Option<zhtp_economy::Escrow>,
    ) -> Self {
        let t = c.terms();
        let providers = t
            .providers()
            .into_iter()
            .map(|p| {
                let n = t.shards.iter().filter(|s| s.holder == p).count();
                (::hex::encode(p), n)
            })
            .collect();
        Self {
            id: c.id(),
            state: c.state(),
            content: t.content,
            client: ::hex::encode(t.client),
            price: t.price,
            fee: t.fee,
            plugin: t.plugin,
            start: t.start,
            periods: t.periods,
            period_secs: t.period_secs,
            periods_settled: c.periods_settled(),
            providers,
            shards: t.shards.len(),
            signatures: (c.signatures().len(), c.parties().len()),
            fee_pending: if escrow.is_some() { t.fee } else { 0 },
            escrow,
            audits: Vec::new(),
            proof_audits: Vec::new(),
            committed: t.shards.iter().filter(|s| s.proof.is_some()).count(),
        }
    }
}

/// What `POST /contracts` answers: the deployed code's hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    /// BLAKE3 of the wasm, hex: what `instantiate` names.
    pub code: String,
}

/// The body of a contract call through the API.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The message: JSON, handed to the contract as its bytes.
    pub msg: serde_json::Value,
    /// The call's gas limit (default: the host's default).
    #[serde(default)]
    pub gas: Option<u64>,
    /// µZHTP sent with the call. Only 0 for now: contracts have no ledger accounts yet.
    #[serde(default)]
    pub funds: u64,
}

/// A contract call the replicas agreed on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallReply {
    /// The contract's address, hex.
    pub address: String,
    /// The contract's answer when it is JSON (SDK contracts answer JSON).
    pub output: Option<serde_json::Value>,
    /// The answer's bytes, hex, when it is not JSON.
    pub output_hex: Option<String>,
    /// Why the call failed, when it did (it then wrote nothing).
    pub error: Option<String>,
    /// The state version after the call.
    pub sequence: u64,
    /// The state root after the call, hex.
    pub root: String,
    /// Gas used.
    pub gas_used: u64,
    /// The replicas asked, closest to the address first.
    pub replicas: Vec<String>,
    /// How many gave this answer.
    pub agreeing: usize,
    /// Replicas that answered otherwise or not at all: `[peer, what it answered]`.
    pub mismatches: Vec<(String, String)>,
}

impl CallReply {
    /// The reply of an agreed call.
    pub fn of(a: &crate::network::Agreed) -> Self {
        let (output, output_hex, error) = match &a.reply.result {
            Ok(out) => match serde_json::from_slice(out) {
                Ok(v) => (Some(v), None, None),
                Err(_) => (None, Some(::hex::encode(out)), None),
            },
            Err(e) => (None, None, Some(e.to_string())),
        };
        Self {
            address: a.address.to_string(),
            output,
            output_hex,
            error,
            sequence: a.reply.sequence,
            root: ::hex::encode(a.reply.root),
            gas_used: a.reply.gas_used,
            replicas: a.replicas.iter().map(|p| p.to_string()).collect(),
            agreeing: a.agreeing,
            mismatches: a
                .mismatches
                .iter()
                .map(|(p, w)| (p.to_string(), w.clone()))
                .collect(),
        }
    }
}
