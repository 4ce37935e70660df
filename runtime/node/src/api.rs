//! The admin API of a running node: HTTP/JSON on a local address, what `zhtp --node URL ...`
//! talks to.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/status` | peer id, addresses, peers, records, shards held |
//! | POST | `/content` | store the body; options in the `zhtp-put` header (JSON [`PutRequest`]) |
//! | GET | `/content?tag=T` | list, newest first |
//! | GET | `/search?q=TEXT` | search names, tags, descriptions |
//! | GET | `/content/{hash}` | the content's bytes, streamed, verified; key in `zhtp-key`; a reader's signature when it has readers |
//! | DELETE | `/content/{hash}` | remove a content put through this node (tombstone, shards) |
//! | GET | `/content/{hash}/manifest` | the manifest as JSON |
//! | GET | `/content/{hash}/holders` | live shards per segment |
//! | GET | `/content/{hash}/access` | the manifest's bytes (what an owner signs a new access list over) |
//! | POST | `/content/{hash}/access` | a new version of the access list: the whole manifest, owner-signed |
//! | POST | `/quote` | price a JSON `QuoteRequest` with the current pricing plugin |
//! | POST | `/review` | one tier review of the contents put through this node: each migrated where the tier plugin says (`ReviewReport`) |
//! | GET | `/placement?size=N&tier=T` | the tier and code the tier plugin gives such a put, its modeled durability and the churn behind it |
//! | GET | `/accounts/{id}` | an account of the node's ledger: balance, supply, last transfers |
//! | POST | `/accounts/{id}/fund` | pay a JSON [`FundRequest`] from a devnet's faucet (`node run --devnet`) |
//! | GET | `/plugins` | installed plugins |
//! | POST | `/plugins/pricing` | install the body (.wasm) live |
//! | POST | `/plugins/pricing/rollback` | the previous plugin again |
//! | POST | `/repair` | run a repair round now |
//! | POST | `/gc` | run a garbage-collection round now (unreferenced held shards) |
//! | POST | `/contracts` | deploy the body (a contract's .wasm) through the DHT: its code hash |
//! | POST | `/contracts/{code}` | instantiate: a JSON [`CallRequest`]; the address in the reply |
//! | POST | `/contracts/{address}/execute` | execute on the replicas: a JSON [`CallRequest`] |
//! | POST | `/contracts/{address}/query` | query the replicas: a JSON [`CallRequest`] |
//!
//! Every request needs the node's token (`Authorization: Bearer ...`) and a `Host` naming the
//! API's address ([`auth`]). Bodies are bounded per route: a plugin by the host's code-size
//! limit, JSON by [`MAX_JSON`], an upload by [`MAX_UPLOAD`] (streamed to disk, never held in
//! memory). Keys travel in headers, never in a URL (URLs end up in logs and shell histories).
//!
//! A request that writes or reads a content with readers must also be signed by the right
//! identity ([`signed`]): a put for an owner by that owner, a get of such a content by one of
//! its readers, its removal by its owner. Access-list updates carry the owner's signature in
//! the manifest itself, with a version that must be the next one.
//!
//! Errors are `{"error": "..."}` with a 4xx/5xx status.

pub mod auth;
pub mod signed;

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;
use zhtp_content::{ContentKey, EncryptionLevel, Metadata};
use zhtp_host::Registry;
use zhtp_host::abi::pricing::QuoteRequest;
use zhtp_types::{Hash, StorageTier};

use crate::local::PutOptions;
use crate::network::{self, Node, RepairReport};
pub use crate::wire::PutRequest;
use crate::wire::{
    AccessUpdated, AccountInfo, ContractInfo, ErrorBody, FundRequest, HolderMap, Installed, Listed,
    ManifestInfo, NodeStatus, PluginRow, Priced, PutReply, SegmentHolders, TransferInfo,
};
use crate::wire::{CallReply, CallRequest, Deployed};

/// Largest upload accepted through the API.
pub const MAX_UPLOAD: u64 = 64 << 30;
/// Largest JSON body.
pub const MAX_JSON: usize = 64 << 10;
/// Largest plugin upload: the host's code-size limit, and room for nothing else.
pub const MAX_PLUGIN: usize = zhtp_host::Limits::DEFAULT_CODE_SIZE;
/// The header that carries a content key (hex) to `GET /content/{hash}`.
pub const KEY_HEADER: &str = "zhtp-key";

/// What the API serves.
#[derive(Clone)]
pub struct ApiState {
    /// The node.
    pub node: Node,
    /// Its plugins.
    pub registry: Arc<Registry>,
    /// Where uploads are spooled before they are stored.
    pub spool: PathBuf,
    /// The nonces of signed requests seen within their window.
    pub replay: Arc<signed::Replay>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<network::Error> for ApiError {
    fn from(e: network::Error) -> Self {
        let code = match &e {
            network::Error::NotFound(_)
            | network::Error::Local(crate::local::Error::NotFound(_)) => StatusCode::NOT_FOUND,
            network::Error::NoKey(_) => StatusCode::FORBIDDEN,
            // Readers that break the rules (a bad key, an access update not signed by the
            // owner, replayed, or changing more than the readers), no owner for a level that
            // needs one: the client's to fix.
            network::Error::Local(
                crate::local::Error::Readers(_) | crate::local::Error::NeedsReader(_),
            ) => StatusCode::BAD_REQUEST,
            // Someone else's content.
            network::Error::Local(crate::local::Error::Owned { .. }) => StatusCode::FORBIDDEN,
            network::Error::Invalid(_) | network::Error::Input(_) => StatusCode::BAD_REQUEST,
            network::Error::Smart(s) => match s {
                network::SmartError::Invalid(_) => StatusCode::BAD_REQUEST,
                network::SmartError::NoCode(_) | network::SmartError::NoInstance(_) => {
                    StatusCode::NOT_FOUND
                }
                network::SmartError::Exists(_) | network::SmartError::Contended(_) => {
                    StatusCode::CONFLICT
                }
                _ => StatusCode::SERVICE_UNAVAILABLE,
            },
            network::Error::Payment(_) => StatusCode::PAYMENT_REQUIRED,
            network::Error::Declined(_) => StatusCode::SERVICE_UNAVAILABLE,
            network::Error::Unavailable { .. } | network::Error::Placement { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl From<zhtp_economy::Error> for ApiError {
    fn from(e: zhtp_economy::Error) -> Self {
        use zhtp_economy::Error as E;
        let code = match &e {
            // Only a devnet mints.
            E::NotDevnet => StatusCode::FORBIDDEN,
            // The ledger's state says no: not enough money, an id or escrow already used.
            E::InsufficientFunds { .. }
            | E::IdReused(_)
            | E::EscrowExists(_)
            | E::Settled(_)
            | E::EscrowShort { .. } => StatusCode::CONFLICT,
            E::Store(_) | E::Corrupt(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(code, e.to_string())
    }
}

/// Runs ledger work (RocksDB reads and synced writes) off the async workers.
async fn ledger<T: Send + 'static>(
    st: &ApiState,
    f: impl FnOnce(&zhtp_economy::Ledger) -> Result<T, zhtp_economy::Error> + Send + 'static,
) -> Result<T, ApiError> {
    let node = st.node.clone();
    tokio::task::spawn_blocking(move || f(node.local().ledger()))
        .await
        .map_err(internal)?
        .map_err(ApiError::from)
}

async fn account(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<AccountInfo>, ApiError> {
    let key = crate::accounts::parse_id(&id).map_err(bad)?;
    Ok(Json(
        ledger(&st, move |l| crate::accounts::info(l, key)).await?,
    ))
}

async fn fund(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    Json(req): Json<FundRequest>,
) -> Result<Json<TransferInfo>, ApiError> {
    let key = crate::accounts::parse_id(&id).map_err(bad)?;
    let tid = req
        .id
        .as_deref()
        .map(crate::accounts::parse_id)
        .transpose()
        .map_err(|_| bad("id: a transfer id is 64 hex characters"))?;
    let t = ledger(&st, move |l| crate::accounts::fund(l, key, req.amount, tid)).await?;
    Ok(Json(t))
}

/// Most storage contracts one listing returns.
const MAX_LISTED_CONTRACTS: usize = 1_000;

async fn contracts(State(st): State<ApiState>) -> Result<Json<Vec<ContractInfo>>, ApiError> {
    let node = st.node.clone();
    let list = tokio::task::spawn_blocking(move || {
        let ledger = node.local().ledger();
        crate::accounts::contracts(node.contracts(), ledger, MAX_LISTED_CONTRACTS)
    })
    .await
    .map_err(internal)??;
    Ok(Json(list))
}

async fn contract(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<ContractInfo>, ApiError> {
    let id = parse_hash(&id)?;
    let node = st.node.clone();
    let found = tokio::task::spawn_blocking(move || {
        let ledger = node.local().ledger();
        crate::accounts::contract(node.contracts(), ledger, &id)
            .map(|c| c.ok_or_else(|| crate::accounts::not_kept(ledger, &id, "on this node")))
    })
    .await
    .map_err(internal)??;
    found
        .map(Json)
        .map_err(|why| ApiError(StatusCode::NOT_FOUND, why))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// Refuses unless the request carries a valid, fresh `zhtp-signed` header ([`signed`]) by one
/// of `allowed` (ids, hex): 401 without one, 403 otherwise.
fn signed_by_one_of(
    st: &ApiState,
    headers: &HeaderMap,
    (method, path): (&str, &str),
    bound: &[u8],
    allowed: &[String],
    who: &str,
) -> Result<(), ApiError> {
    let h = headers.get(signed::HEADER).ok_or_else(|| {
        ApiError(
            StatusCode::UNAUTHORIZED,
            format!(
                "{method} {path} needs a request signed by an identity (`{}` header)",
                signed::HEADER
            ),
        )
    })?;
    let h = h
        .to_str()
        .map_err(|_| bad(format!("{}: not text", signed::HEADER)))?;
    // The guard has checked that Host names this API: the node the request was signed for.
    let node = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let to = signed::Target { method, node, path };
    let allowed = |id: &[u8; 32]| {
        let id = hex::encode(id);
        if allowed.contains(&id) {
            Ok(())
        } else {
            Err(format!("{method} {path}: signed by {id}, who is not {who}"))
        }
    };
    st.replay
        .verify(h, to, bound, allowed)
        .map(|_| ())
        .map_err(|e| ApiError(StatusCode::FORBIDDEN, e))
}

fn parse_hash(s: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(s).map_err(|e| bad(format!("`{s}` is not a content hash: {e}")))
}

/// The router; every route behind `guard`.
pub fn router(state: ApiState, guard: auth::Guard) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/stats", get(stats))
        .route("/content", post(put).get(list))
        .route("/search", get(search))
        .route("/content/{hash}", get(fetch).delete(remove))
        .route("/content/{hash}/manifest", get(manifest))
        .route("/content/{hash}/holders", get(holders))
        .route(
            "/content/{hash}/access",
            get(access)
                .post(update_access)
                .layer(DefaultBodyLimit::max(zhtp_content::MAX_MANIFEST_LEN)),
        )
        .route("/quote", post(quote))
        .route("/placement", get(placement))
        .route("/accounts/{id}", get(account))
        .route("/accounts/{id}/fund", post(fund))
        .route("/storage-contracts", get(contracts))
        .route("/storage-contracts/{id}", get(contract))
        .route("/audit", post(audit))
        .route("/settle", post(settle))
        .route("/reputation", get(reputation))
        .route("/plugins", get(plugins))
        .route(
            "/plugins/{kind}",
            post(install).layer(DefaultBodyLimit::max(MAX_PLUGIN)),
        )
        .route("/plugins/{kind}/rollback", post(rollback))
        .route("/repair", post(repair))
        .route("/gc", post(collect))
        .route("/review", post(review))
        .route(
            "/contracts",
            post(deploy).layer(DefaultBodyLimit::max(zhtp_host::abi::contract::MAX_CODE)),
        )
        .route("/contracts/{id}", post(instantiate))
        .route("/contracts/{id}/execute", post(execute))
        .route("/contracts/{id}/query", post(query))
        // `put` streams its body and counts it against MAX_UPLOAD itself.
        .layer(DefaultBodyLimit::max(MAX_JSON))
        .route_layer(axum::middleware::from_fn_with_state(guard, auth::require))
        .with_state(state)
}

/// The node's status.
pub async fn status_of(node: &Node) -> Result<NodeStatus, network::Error> {
    let s = node.dht().status().await?;
    // RocksDB scans: off the async workers.
    let n = node.clone();
    let ((shards, bytes), contents) = tokio::task::spawn_blocking(move || {
        Ok::<_, network::Error>((n.held_totals()?, n.held_contents()?.len()))
    })
    .await
    .map_err(|e| network::Error::Task(e.to_string()))??;
    Ok(NodeStatus {
        peer_id: s.peer_id.to_string(),
        listen: s.listen.iter().map(|a| a.to_string()).collect(),
        connected: s.connected.iter().map(|p| p.to_string()).collect(),
        peers: s.connected.len(),
        routing_table: s.routing_table,
        records: s.records,
        shards,
        shard_bytes: bytes,
        contents,
        refused_records: s.refused_records,
        inbound_failures: s.inbound_failures,
        serving: s.serving,
        serving_bytes: s.serving_bytes,
        busy: s.busy,
        charges: node.charges(),
        utilization_bp: node.utilization_bp(),
        churn: Some(node.churn()),
    })
}

async fn status(State(st): State<ApiState>) -> Result<Json<NodeStatus>, ApiError> {
    Ok(Json(status_of(&st.node).await?))
}

async fn stats(State(st): State<ApiState>) -> Result<Json<crate::stats::Stats>, ApiError> {
    Ok(Json(crate::stats::of_node(&st.node).await?))
}

async fn put(
    State(st): State<ApiState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<PutReply>, ApiError> {
    let options = headers.get("zhtp-put").map_or(&[][..], |v| v.as_bytes());
    let req: PutRequest = match headers.get("zhtp-put") {
        Some(v) => serde_json::from_slice(v.as_bytes())
            .map_err(|e| bad(format!("zhtp-put header: {e}")))?,
        None => PutRequest::default(),
    };
    let tier = req.tier.unwrap_or(StorageTier::Warm);
    let mut opts = PutOptions::new(tier);
    if let Some(e) = req.encryption {
        opts.encryption = e;
    }
    let chosen = req.code.is_none();
    if let Some(code) = req.code {
        code.validate().map_err(|e| bad(e.to_string()))?;
        opts.code = code;
    }
    opts.readers = req
        .readers
        .iter()
        .map(|r| {
            let bytes = ::hex::decode(r).map_err(|e| bad(format!("a reader is not hex: {e}")))?;
            zhtp_identity::PublicKeys::from_record(&bytes).map_err(|e| bad(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    if opts.readers.len() > 1 {
        // Version 0 of an access list is unsigned and names the owner alone: others are
        // granted afterwards, each grant signed by the owner.
        return Err(bad(
            "a put names one reader, its owner; grant the others after the put",
        ));
    }
    if opts.encryption != EncryptionLevel::None && opts.readers.is_empty() {
        // Before the upload is spooled: no node keeps a content key, so encrypted content
        // without an owner could never be read.
        return Err(bad(format!(
            "encryption {} wraps the content key for its owner, and no node keeps it: name the \
             owner's public record in zhtp-put `readers` and sign the put, or ask for \
             \"encryption\": \"none\" (public content)",
            opts.encryption
        )));
    }
    let expected = req.content_hash;
    let proofs = req.payment.as_ref().is_some_and(|p| p.proof_audits);
    let payment = match (&req.payment, st.node.charges()) {
        (None, true) => {
            return Err(ApiError(
                StatusCode::PAYMENT_REQUIRED,
                "this node charges for storage: a put carries a payment (zhtp-put `payment`, a \
                 mandate signed by the paying identity; `zhtp put --identity NAME --node URL` \
                 signs one)"
                    .into(),
            ));
        }
        (Some(p), true) => {
            let Some(content) = expected else {
                return Err(bad(
                    "a paid put names its content_hash in zhtp-put (the mandate is for it)",
                ));
            };
            Some(p.mandate(content).map_err(bad)?)
        }
        // A node that does not charge stores for free, and a payment buys nothing here.
        (_, false) => None,
    };
    if let Some(owner) = opts.readers.first() {
        // A put for an owner is the owner's: signed by it, bound to these options, which name
        // the bytes (so the signature cannot be used for other bytes).
        if expected.is_none() {
            return Err(bad(
                "a put for an owner names its content_hash in zhtp-put (BLAKE3 of the body)",
            ));
        }
        let to = ("POST", "/content");
        signed_by_one_of(&st, &headers, to, options, &[owner.id()], "the owner")?;
    }
    opts.metadata = Metadata {
        name: req.name,
        mime: req.mime,
        tags: req.tags,
        description: req.description,
        created: 0,
    };
    // Spool the upload: the content address (which shards are filed under) is known only
    // after the last byte.
    std::fs::create_dir_all(&st.spool).map_err(internal)?;
    let path = st.spool.join(format!(
        "upload-{}-{}",
        std::process::id(),
        Hash(*blake3::hash(format!("{:?}", std::time::Instant::now()).as_bytes()).as_bytes())
            .fmt_short()
    ));
    // Removed however the handler ends, also when the client goes away mid-put (the future is
    // dropped then, and nothing after an `.await` runs).
    let _spool = Spool(path.clone());
    async {
        let mut file = tokio::fs::File::create(&path).await.map_err(internal)?;
        let mut stream = body.into_data_stream();
        let mut total = 0u64;
        // Hashed as it arrives: the content address is then known without reading the spool
        // file twice.
        let mut hasher = blake3::Hasher::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| bad(format!("upload interrupted: {e}")))?;
            total += chunk.len() as u64;
            if total > MAX_UPLOAD {
                return Err(bad(format!("uploads are limited to {MAX_UPLOAD} bytes")));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(internal)?;
        }
        file.flush().await.map_err(internal)?;
        drop(file);
        let t = std::time::Instant::now();
        let hashed = (Hash(*hasher.finalize().as_bytes()), total);
        if let Some(h) = expected
            && h != hashed.0
        {
            return Err(bad(format!(
                "the upload hashes to {}, not to the content_hash {h} of zhtp-put",
                hashed.0
            )));
        }
        if chosen {
            // No code named: the tier plugin places the content, now that its size is known
            // (and before it is priced: the code is part of the quote).
            let p = st.node.placement(total, opts.tier).await;
            (opts.tier, opts.code) = (p.tier, p.code());
        }
        let (stored, contract) = match payment {
            None => (st.node.put_hashed(&path, hashed, opts).await?, None),
            Some((mandate, signature)) => {
                // Priced by the term's length, whatever its periods: a client choosing long
                // periods does not pay for fewer days.
                let days = crate::wire::term_days(mandate.periods, mandate.period_secs)
                    .ok_or_else(|| {
                        bad(format!(
                            "a payment's term is 1 s to {} days",
                            crate::wire::MAX_TERM_SECS / 86_400
                        ))
                    })?;
                let mut q = crate::wire::put_quote(total, days, opts.tier, opts.code);
                // The market's measured utilisation, as `zhtp put` asked `/status` for it.
                q.utilization_bp = st.node.utilization_bp();
                let priced = st.registry.quote(&q).map_err(|e| {
                    ApiError(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("pricing the put: {e}"),
                    )
                })?;
                let price = priced.quote.total;
                if price > mandate.max_price {
                    return Err(ApiError(
                        StatusCode::PAYMENT_REQUIRED,
                        format!(
                            "the put costs {}, more than the payment's budget of {}",
                            zhtp_economy::tokens(price),
                            zhtp_economy::tokens(mandate.max_price)
                        ),
                    ));
                }
                let pay = network::Payment {
                    mandate,
                    signature,
                    price,
                    fee: priced.quote.network_fee,
                    plugin: priced.plugin_hash,
                    proofs,
                };
                let (stored, c) = st.node.put_paid(&path, hashed, opts, pay).await?;
                let id = c.id().0;
                let escrow = ledger(&st, move |l| l.escrow(&id)).await.ok().flatten();
                (stored, Some(crate::wire::ContractInfo::of(&c, escrow)))
            }
        };
        let mut out = PutReply::of(&stored.manifest, t.elapsed().as_secs_f64());
        out.contract = contract;
        out.published = Some(stored.published);
        out.placement = stored
            .placement
            .iter()
            .map(|s| s.iter().map(|p| p.to_string()).collect())
            .collect();
        Ok(Json(out))
    }
    .await
}

/// A spooled upload, deleted when dropped.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[derive(Deserialize)]
struct ListQuery {
    tag: Option<String>,
}

async fn list(
    State(st): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Listed>>, ApiError> {
    let items = st.node.local().list(q.tag.as_deref()).map_err(internal)?;
    Ok(Json(items.iter().map(Listed::from).collect()))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: String,
}

async fn search(
    State(st): State<ApiState>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Vec<Listed>>, ApiError> {
    if q.q.trim().is_empty() {
        return Err(bad("search needs some text"));
    }
    let items = st.node.local().search(&q.q).map_err(internal)?;
    Ok(Json(items.iter().map(Listed::from).collect()))
}

async fn fetch(
    State(st): State<ApiState>,
    Path(hash): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let hash = parse_hash(&hash)?;
    if query.is_some_and(|q| {
        q.to_ascii_lowercase()
            .split('&')
            .any(|kv| kv.starts_with("key=") || kv.starts_with("%6bey="))
    }) {
        return Err(bad(format!(
            "a content key goes in the `{KEY_HEADER}` header, never in the URL"
        )));
    }
    let key = match headers.get(KEY_HEADER) {
        Some(k) => Some(ContentKey(
            k.to_str()
                .ok()
                .and_then(|k| Hash::from_hex(k.trim()).ok())
                .ok_or_else(|| bad(format!("{KEY_HEADER}: a key is 64 hex characters")))?
                .0,
        )),
        None => None,
    };
    let m = st.node.manifest(&hash).await?;
    if !m.encryption.readers.is_empty() {
        let readers = crate::readers::ids(&m).map_err(|e| bad(e.to_string()))?;
        let path = format!("/content/{hash}");
        signed_by_one_of(&st, &headers, ("GET", &path), b"", &readers, "a reader")?;
    }
    let (manifest, stream) = st.node.get_from(m, key).await?;
    let body = Body::from_stream(stream.map(|r| {
        r.map(Bytes::from).map_err(|e| {
            tracing::error!("get failed mid-stream: {e}");
            std::io::Error::other(e.to_string())
        })
    }));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, manifest.size.to_string()),
        ],
        body,
    )
        .into_response())
}

async fn manifest(
    State(st): State<ApiState>,
    Path(hash): Path<String>,
) -> Result<Json<ManifestInfo>, ApiError> {
    let m = st.node.manifest(&parse_hash(&hash)?).await?;
    Ok(Json(ManifestInfo::from(&m)))
}

/// The manifest as its bytes (postcard; written as version 1 while it has no readers): what
/// the owner signs a new access list over.
async fn access(State(st): State<ApiState>, Path(hash): Path<String>) -> Result<Vec<u8>, ApiError> {
    let m = st.node.manifest(&parse_hash(&hash)?).await?;
    Ok(m.encode())
}

/// A new version of the access list of a content put through this node: the whole manifest,
/// signed by its owner (see `zhtp::readers`), which the node checks and publishes.
async fn update_access(
    State(st): State<ApiState>,
    Path(hash): Path<String>,
    body: Bytes,
) -> Result<Json<AccessUpdated>, ApiError> {
    let hash = parse_hash(&hash)?;
    let m = zhtp_content::Manifest::decode(&body).map_err(|e| bad(e.to_string()))?;
    if m.content_hash != hash {
        return Err(bad(format!(
            "the manifest is of {}, not {hash}",
            m.content_hash
        )));
    }
    let version = m.encryption.access_version;
    let readers = crate::readers::ids(&m).map_err(|e| bad(e.to_string()))?;
    let published = st.node.update_access(m).await?;
    Ok(Json(AccessUpdated {
        version,
        readers,
        published,
    }))
}

async fn holders(
    State(st): State<ApiState>,
    Path(hash): Path<String>,
) -> Result<Json<HolderMap>, ApiError> {
    let hash = parse_hash(&hash)?;
    let m = st.node.manifest(&hash).await?;
    let (holders, _) = st.node.holders(&hash).await?;
    let n = m.code.total();
    let segments = (0..m.segments.len() as u32)
        .map(|s| {
            let live = (0..n)
                .filter(|j| holders.get(&(s, *j as u16)).is_some_and(|h| !h.is_empty()))
                .count();
            let mut nodes: Vec<String> = (0..n)
                .flat_map(|j| {
                    holders
                        .get(&(s, j as u16))
                        .into_iter()
                        .flatten()
                        .map(|p| p.to_string())
                })
                .collect();
            nodes.sort();
            nodes.dedup();
            SegmentHolders {
                segment: s,
                live,
                of: n,
                nodes,
            }
        })
        .collect();
    Ok(Json(HolderMap {
        content_hash: hash,
        k: m.code.data,
        segments,
    }))
}

/// `GET /placement?size=N&tier=T`: the tier and code a put of that size and tier would get.
async fn placement(
    State(st): State<ApiState>,
    Query(q): Query<PlacementQuery>,
) -> Json<network::Placement> {
    Json(
        st.node
            .placement(q.size, q.tier.unwrap_or(StorageTier::Warm))
            .await,
    )
}

/// `GET /placement`'s query.
#[derive(Debug, Deserialize)]
struct PlacementQuery {
    /// Plaintext bytes.
    size: u64,
    /// The tier asked for (default warm).
    tier: Option<StorageTier>,
}

async fn quote(
    State(st): State<ApiState>,
    Json(req): Json<QuoteRequest>,
) -> Result<Json<Priced>, ApiError> {
    let priced = st.registry.quote(&req).map_err(|e| bad(e.to_string()))?;
    Ok(Json(Priced::from(&priced)))
}

async fn plugins(State(st): State<ApiState>) -> Json<Vec<PluginRow>> {
    Json(plugin_rows(&st.registry))
}

/// The registry's plugins, current first.
pub fn plugin_rows(registry: &Registry) -> Vec<PluginRow> {
    let slot = registry.slot();
    let mut rows = vec![PluginRow::of("current", slot.current.plugin())];
    if let Some(p) = &slot.previous {
        rows.push(PluginRow::of("previous", p.plugin()));
    }
    rows
}

fn check_kind(kind: &str) -> Result<(), ApiError> {
    if kind == "pricing" {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown plugin kind `{kind}` (known: pricing)"),
        ))
    }
}

async fn install(
    State(st): State<ApiState>,
    Path(kind): Path<String>,
    wasm: Bytes,
) -> Result<Json<Installed>, ApiError> {
    check_kind(&kind)?;
    let reg = st.registry.clone();
    let info = tokio::task::spawn_blocking(move || reg.install(&wasm))
        .await
        .map_err(internal)?
        .map_err(|e| bad(format!("not installed: {e}")))?;
    tracing::info!(plugin = %info.name, hash = %info.hash, "pricing plugin swapped live");
    Ok(Json(Installed {
        name: info.name,
        hash: info.hash,
    }))
}

async fn rollback(
    State(st): State<ApiState>,
    Path(kind): Path<String>,
) -> Result<Json<Installed>, ApiError> {
    check_kind(&kind)?;
    let info = st.registry.rollback().map_err(|e| bad(e.to_string()))?;
    Ok(Json(Installed {
        name: info.name,
        hash: info.hash,
    }))
}

async fn remove(
    State(st): State<ApiState>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Result<Json<network::RemoveReport>, ApiError> {
    let hash = parse_hash(&hash)?;
    if let Some(m) = st.node.local().manifest(&hash).map_err(internal)?
        && let Some(owner) = crate::readers::owner(&m)
    {
        let path = format!("/content/{hash}");
        let owner = [hex::encode(owner)];
        signed_by_one_of(&st, &headers, ("DELETE", &path), b"", &owner, "the owner")?;
    }
    Ok(Json(st.node.remove(&hash).await?))
}

async fn collect(State(st): State<ApiState>) -> Result<Json<network::GcReport>, ApiError> {
    Ok(Json(st.node.collect().await?))
}

/// An audit round now, then the repair of what banned providers held.
async fn audit(State(st): State<ApiState>) -> Result<Json<network::AuditReport>, ApiError> {
    let r = st.node.audit_round(zhtp_dht::record::unix_now()).await?;
    if !r.banned.is_empty() {
        st.node.repair_banned().await?;
    }
    Ok(Json(r))
}

async fn settle(State(st): State<ApiState>) -> Result<Json<network::SettleReport>, ApiError> {
    Ok(Json(st.node.settle(zhtp_dht::record::unix_now()).await?))
}

async fn reputation(State(st): State<ApiState>) -> Result<Json<Vec<network::Standing>>, ApiError> {
    let node = st.node.clone();
    let list = tokio::task::spawn_blocking(move || node.standings())
        .await
        .map_err(internal)??;
    Ok(Json(list))
}

async fn review(State(st): State<ApiState>) -> Result<Json<network::ReviewReport>, ApiError> {
    Ok(Json(st.node.review().await?))
}

async fn repair(State(st): State<ApiState>) -> Result<Json<RepairReport>, ApiError> {
    Ok(Json(st.node.repair().await?))
}

/// The call's message bytes and gas, or why the request is refused.
fn call_parts(req: CallRequest) -> Result<(Vec<u8>, u64), ApiError> {
    if req.funds > 0 {
        return Err(bad(
            "calls with funds are not supported yet: contracts have no ledger accounts",
        ));
    }
    let gas = req
        .gas
        .unwrap_or(zhtp_host::abi::contract::DEFAULT_GAS_LIMIT);
    let msg = serde_json::to_vec(&req.msg).map_err(internal)?;
    Ok((msg, gas))
}

fn parse_address(s: &str) -> Result<Hash, ApiError> {
    Hash::from_hex(s).map_err(|e| bad(format!("`{s}` is not a contract address: {e}")))
}

async fn deploy(State(st): State<ApiState>, wasm: Bytes) -> Result<Json<Deployed>, ApiError> {
    let h = st.node.contract_deploy(wasm.to_vec()).await?;
    Ok(Json(Deployed {
        code: h.to_string(),
    }))
}

async fn instantiate(
    State(st): State<ApiState>,
    Path(code): Path<String>,
    Json(req): Json<CallRequest>,
) -> Result<Json<CallReply>, ApiError> {
    let code =
        Hash::from_hex(&code).map_err(|e| bad(format!("`{code}` is not a code hash: {e}")))?;
    let (msg, gas) = call_parts(req)?;
    let a = st
        .node
        .contract_instantiate(code, msg, zhtp_dht::record::unix_now(), gas)
        .await?;
    Ok(Json(CallReply::of(&a)))
}

async fn execute(
    State(st): State<ApiState>,
    Path(address): Path<String>,
    Json(req): Json<CallRequest>,
) -> Result<Json<CallReply>, ApiError> {
    call(&st, &address, req, false).await
}

async fn query(
    State(st): State<ApiState>,
    Path(address): Path<String>,
    Json(req): Json<CallRequest>,
) -> Result<Json<CallReply>, ApiError> {
    call(&st, &address, req, true).await
}

/// An execute (or with `query`, a query) on the contract at `address`.
async fn call(
    st: &ApiState,
    address: &str,
    req: CallRequest,
    query: bool,
) -> Result<Json<CallReply>, ApiError> {
    let address = parse_address(address)?;
    let (msg, gas) = call_parts(req)?;
    let now = zhtp_dht::record::unix_now();
    let a = if query {
        st.node.contract_query(address, msg, now, gas).await?
    } else {
        st.node.contract_execute(address, msg, now, gas).await?
    };
    Ok(Json(CallReply::of(&a)))
}
