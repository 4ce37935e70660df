//! Accounts of the node's ledger, as the API and the command line show and fund them.

use zhtp_economy::{Account, Error, Ledger};
use zhtp_types::{MICRO_PER_TOKEN, MicroZhtp};

use crate::wire::{AccountInfo, TransferInfo};

/// Transfers `account show` lists.
pub const HISTORY: usize = 20;

/// An account id: an identity's id, 64 hex characters (its Ed25519 public key).
pub fn parse_id(s: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(s.trim()).map_err(|e| format!("not an account id: {e}"))?;
    bytes
        .try_into()
        .map_err(|_| "not an account id: an id is 64 hex characters".to_owned())
}

/// An amount: tokens, with up to six decimals (`25`, `1.5`), or µZHTP with a `u` or `µ` suffix
/// (`1500000u`). Integers all the way: no float touches money.
pub fn parse_amount(s: &str) -> Result<MicroZhtp, String> {
    let s = s.trim();
    let bad = || format!("{s:?} is not an amount: 25 or 1.5 (ZHTP), or 1500000u (µZHTP)");
    if let Some(micro) = s
        .strip_suffix('u')
        .or_else(|| s.strip_suffix('µ'))
        .or_else(|| s.strip_suffix("uZHTP"))
        .or_else(|| s.strip_suffix("µZHTP"))
    {
        return micro.trim().parse().map_err(|_| bad());
    }
    let s = s.strip_suffix("ZHTP").unwrap_or(s).trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || (s.contains('.') && frac.is_empty())
        || frac.len() > 6
        || !(whole.bytes().chain(frac.bytes())).all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac: u64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(MICRO_PER_TOKEN)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)
}

/// `key`'s account: balance and last transfers.
pub fn info(ledger: &Ledger, key: [u8; 32]) -> Result<AccountInfo, Error> {
    let account = Account::Key(key);
    Ok(AccountInfo {
        account: hex::encode(key),
        balance: ledger.balance(&account)?,
        supply: ledger.supply()?,
        devnet: ledger.is_devnet()?,
        history: ledger
            .history(&account, HISTORY)?
            .iter()
            .map(TransferInfo::from)
            .collect(),
    })
}

/// Pays `amount` from the devnet faucet to `key`; `id` makes a retry pay once.
pub fn fund(
    ledger: &Ledger,
    key: [u8; 32],
    amount: MicroZhtp,
    id: Option<[u8; 32]>,
) -> Result<TransferInfo, Error> {
    let id = id.unwrap_or_else(|| fresh_id(&key));
    Ok(TransferInfo::from(
        &ledger.fund(id, Account::Key(key), amount)?.transfer,
    ))
}

/// An id no one else picks: the account, the time and a process-wide counter, hashed.
fn fresh_id(key: &[u8; 32]) -> [u8; 32] {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = blake3::Hasher::new_derive_key("zhtp fresh transfer id v1");
    h.update(key);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.update(&t.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(
        &COUNTER
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_le_bytes(),
    );
    *h.finalize().as_bytes()
}

/// Up to `limit` storage contracts kept in `book`, with their escrows where `ledger` holds them.
pub fn contracts(
    book: &zhtp_economy::Book,
    ledger: &Ledger,
    limit: usize,
) -> Result<Vec<crate::wire::ContractInfo>, Error> {
    book.list(limit)?
        .iter()
        .map(|c| {
            let id = c.id().0;
            let mut info = crate::wire::ContractInfo::of(c, ledger.escrow(&id)?);
            info.fee_pending = ledger.fee_pending(&id)?;
            Ok(info)
        })
        .collect()
}

/// Storage contract `id` kept in `book`, with its escrow where `ledger` holds it.
pub fn contract(
    book: &zhtp_economy::Book,
    ledger: &Ledger,
    id: &zhtp_types::Hash,
) -> Result<Option<crate::wire::ContractInfo>, Error> {
    let Some(c) = book.get(id)? else {
        return Ok(None);
    };
    let mut info = crate::wire::ContractInfo::of(&c, ledger.escrow(&id.0)?);
    info.fee_pending = ledger.fee_pending(&id.0)?;
    info.audits = book
        .audits(id, None)?
        .into_iter()
        .map(|(period, p, o)| (period, hex::encode(p), o))
        .collect();
    info.proof_audits = book
        .proof_audits(id)?
        .into_iter()
        .map(|(period, p, d)| (period, hex::encode(p), d))
        .collect();
    Ok(Some(info))
}

/// Why storage contract `id` is not shown from `where_`: not kept there, or handed on to a
/// successor when its content moved to new shards (the ledger remembers which).
pub fn not_kept(ledger: &Ledger, id: &zhtp_types::Hash, where_: &str) -> String {
    match ledger.successor(&id.0) {
        Ok(Some(next)) => format!(
            "storage contract {id} was handed on to {} when its content moved to new shards \
             (its escrow went with it)",
            hex::encode(next)
        ),
        _ => format!("no storage contract {id} is kept {where_}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_integers_with_their_unit() {
        assert_eq!(parse_amount("25"), Ok(25_000_000));
        assert_eq!(parse_amount("1.5"), Ok(1_500_000));
        assert_eq!(parse_amount("0.000001 ZHTP"), Ok(1));
        assert_eq!(parse_amount("1500000u"), Ok(1_500_000));
        assert_eq!(parse_amount("7µZHTP"), Ok(7));
        for bad in [
            "",
            "1.0000001",
            "-1",
            "1e3",
            "1.",
            ".5x",
            "18446744073709551616u",
            "99999999999999",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
        assert!(parse_id(&"ab".repeat(32)).is_ok());
        assert!(parse_id("abcd").is_err());
    }
}
