//! Storage contracts signed by real Ed25519 identities, and one contract's life with its money
//! in a real ledger: escrow, a payment per period and holder, a penalty refunded, settlement.

use std::sync::Arc;

use zhtp_economy::contract::{
    Error, Event, Mandate, Penalties, Placement, Sla, State, StorageContract, Terms, Violation,
};
use zhtp_economy::{Account, Genesis, Ledger};
use zhtp_identity::Identity;
use zhtp_types::Hash;

fn terms(client: &Identity, holders: &[&Identity]) -> Terms {
    Terms {
        content: Hash([1; 32]),
        client: client.public().signing,
        shards: holders
            .iter()
            .enumerate()
            .map(|(i, h)| Placement {
                segment: 0,
                index: i as u16,
                shard: Hash([i as u8 + 10; 32]),
                holder: h.public().signing,
                proof: None,
            })
            .collect(),
        price: 1_200_000,
        fee: 0,
        plugin: Hash([2; 32]),
        start: 1_700_000_000,
        periods: 3,
        period_secs: 86_400,
        sla: Sla::default(),
        penalties: Penalties::default(),
        mandate: Mandate {
            content: Hash([1; 32]),
            client: client.public().signing,
            max_price: 1_200_000,
            periods: 3,
            period_secs: 86_400,
            expires: 1_700_000_000,
            nonce: [7; 16],
        },
        audits: Hash([0; 32]),
    }
}

fn sign(c: &StorageContract, who: &Identity) -> ([u8; 32], Vec<u8>) {
    let message = c.message_for(&who.public().signing);
    (who.public().signing, who.sign(&message).to_vec())
}

type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;

/// `c` as JSON, changed by `f`, decoded again: what a peer could send.
fn tampered(c: &StorageContract, f: Edit) -> Result<StorageContract, String> {
    let mut v = serde_json::to_value(c).unwrap();
    f(&mut v);
    serde_json::from_value(v).map_err(|e| e.to_string())
}

#[test]
fn every_party_signs_and_a_forgery_or_a_changed_term_is_refused() {
    let ids: Vec<Identity> = (0..4).map(|_| Identity::generate().unwrap()).collect();
    let (client, p1, p2, carol) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let mut c = StorageContract::new(terms(client, &[p1, p2, p1])).unwrap();
    assert_eq!(c.parties().len(), 3, "the client and two providers");

    // Carol's signature is valid, but she is no party.
    let (k, s) = sign(&c, carol);
    assert_eq!(c.sign(k, &s), Err(Error::NotAParty(k)));
    // A signature over the bare id (no context) is not one over the contract.
    let bare = client.sign(c.id().as_bytes()).to_vec();
    let ck = client.public().signing;
    assert_eq!(c.sign(ck, &bare), Err(Error::BadSignature(ck)));
    // p1 signs in p2's name: a valid signature of another key.
    let (_, forged) = sign(&c, p1);
    let p2_key = p2.public().signing;
    assert_eq!(c.sign(p2_key, &forged), Err(Error::BadSignature(p2_key)));
    // Signing is no event anyone can apply, and nothing activates an unsigned contract.
    for e in [Event::Sign, Event::EscrowLocked] {
        assert!(matches!(
            c.apply(e),
            Err(Error::Transition {
                state: State::Quoted,
                ..
            })
        ));
    }
    for who in [client, p1] {
        let (k, s) = sign(&c, who);
        assert_eq!(c.sign(k, &s), Ok(State::Quoted));
    }
    // Decoded before the last signature, a contract claiming to be signed is refused.
    let early = tampered(&c, Box::new(|v| v["state"] = "signed".into()));
    assert!(
        early
            .as_ref()
            .is_err_and(|e| e.contains("Signed with 2 of 3 signatures")),
        "{early:?}"
    );
    let (k, s) = sign(&c, p2);
    assert_eq!(c.sign(k, &s), Ok(State::Signed));
    c.verify().unwrap();
    assert_eq!(tampered(&c, Box::new(|_| {})).unwrap(), c);

    // One term changed after signing voids the signatures; so does a signature dropped or
    // doubled, or a period count the contract never reached.
    let price = c.terms().price;
    let edits: Vec<(&str, Edit)> = vec![
        (
            "price",
            Box::new(move |v| v["terms"]["price"] = (price - 1).into()),
        ),
        (
            "holder",
            Box::new(|v| {
                v["terms"]["shards"][1]["holder"] = serde_json::to_value([7u8; 32]).unwrap()
            }),
        ),
        (
            "dropped",
            Box::new(|v| {
                v["signatures"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "doubled",
            Box::new(|v| {
                let first = v["signatures"][0].clone();
                v["signatures"].as_array_mut().unwrap().push(first);
            }),
        ),
        ("periods", Box::new(|v| v["periods_settled"] = 9.into())),
        (
            "before active",
            Box::new(|v| v["periods_settled"] = 1.into()),
        ),
    ];
    for (what, f) in edits {
        assert!(tampered(&c, f).is_err(), "{what}");
    }
}

#[test]
fn a_contract_lives_through_its_states_with_its_money_in_the_ledger() {
    let ids: Vec<Identity> = (0..3).map(|_| Identity::generate().unwrap()).collect();
    let (client, p1, p2) = (&ids[0], &ids[1], &ids[2]);
    let mut c = StorageContract::new(terms(client, &[p1, p2])).unwrap();
    for who in [client, p1, p2] {
        let (k, s) = sign(&c, who);
        c.sign(k, &s).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let store = zhtp_store::Store::open(dir.path(), zhtp_store::Config::default()).unwrap();
    let ledger = Ledger::open(Arc::new(store));
    ledger
        .genesis(Genesis::Devnet { supply: 10_000_000 })
        .unwrap();
    let key = |i: &Identity| Account::Key(i.public().signing);
    ledger.fund([1; 32], key(client), 2_000_000).unwrap();

    let id = *c.id().as_bytes();
    let t = c.terms().clone();
    ledger
        .lock_escrow(id, key(client), t.price, t.mandate.id().0)
        .unwrap();
    assert_eq!(c.apply(Event::EscrowLocked), Ok(State::Active));
    assert!(
        matches!(c.apply(Event::TermEnded), Err(Error::Transition { .. })),
        "the term ends after its periods, not before"
    );
    // Period 0: each provider paid its share (one shard each: half).
    let pay = |n: u32, who: &Identity, amount| ledger.release(id, n, key(who), amount).unwrap();
    let (k1, k2) = (p1.public().signing, p2.public().signing);
    assert_eq!(t.holder_payment(0, &k1), t.period_payment(0) / 2);
    pay(0, p1, t.holder_payment(0, &k1));
    pay(0, p2, t.holder_payment(0, &k2));
    c.apply(Event::PeriodPassed).unwrap();
    // Period 1: p2 lost data: the penalty (50% of p2's share) goes back to the client, p2 gets
    // the rest of its share, p1 all of its own.
    assert_eq!(
        c.apply(Event::ViolationFound(Violation::DataLoss)),
        Ok(State::Violation)
    );
    assert!(matches!(
        c.apply(Event::PeriodPassed),
        Err(Error::Transition {
            state: State::Violation,
            ..
        })
    ));
    let penalty = t.penalty(1, &k2, Violation::DataLoss);
    ledger.refund(id, 1, penalty).unwrap();
    c.apply(Event::PenaltyPaid).unwrap();
    c.apply(Event::Resolved).unwrap();
    pay(1, p1, t.holder_payment(1, &k1));
    pay(1, p2, t.holder_payment(1, &k2) - penalty);
    assert_eq!(c.apply(Event::PeriodPassed), Ok(State::Active));
    // Period 2, then the end: no period, and no violation, after the term.
    pay(2, p1, t.holder_payment(2, &k1));
    pay(2, p2, t.holder_payment(2, &k2));
    c.apply(Event::PeriodPassed).unwrap();
    for e in [
        Event::PeriodPassed,
        Event::ViolationFound(Violation::Breach),
    ] {
        assert!(matches!(c.apply(e), Err(Error::Transition { .. })), "{e:?}");
    }
    assert_eq!(c.apply(Event::TermEnded), Ok(State::Completed));
    let back = ledger.settle(id).unwrap();
    assert_eq!(c.apply(Event::EscrowSettled), Ok(State::Settled));
    assert!(matches!(
        c.apply(Event::TermEnded),
        Err(Error::Transition {
            state: State::Settled,
            ..
        })
    ));

    // 1.2 ZHTP escrowed, 0.4 per period: the client got the penalty back, and nothing was
    // left to settle.
    assert_eq!(penalty, 100_000);
    assert_eq!(back, 0, "every period was paid out or refunded");
    assert_eq!(ledger.balance(&key(p1)).unwrap(), 600_000);
    assert_eq!(ledger.balance(&key(p2)).unwrap(), 600_000 - 100_000);
    assert_eq!(
        ledger.balance(&key(client)).unwrap(),
        2_000_000 - 1_200_000 + 100_000
    );
    let audit = ledger.audit().unwrap();
    assert_eq!((audit.supply, audit.escrows), (10_000_000, (1, 1)));
}

/// A migration hands a running contract on: the successor, signed by its own holders, pays
/// the rest of the same term from the same escrow, and no period twice; anything but the
/// shards changed is refused.
#[test]
fn a_successor_takes_over_the_rest_of_the_term_and_the_escrow() {
    let ids: Vec<Identity> = (0..4).map(|_| Identity::generate().unwrap()).collect();
    let (client, p1, p2, p3) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    let signed = |t: Terms, who: &[&Identity]| {
        let mut c = StorageContract::new(t).unwrap();
        for w in who {
            let (k, s) = sign(&c, w);
            c.sign(k, &s).unwrap();
        }
        c
    };
    let dir = tempfile::tempdir().unwrap();
    let store = zhtp_store::Store::open(dir.path(), zhtp_store::Config::default()).unwrap();
    let ledger = Ledger::open(Arc::new(store));
    ledger
        .genesis(Genesis::Devnet { supply: 10_000_000 })
        .unwrap();
    let key = |i: &Identity| Account::Key(i.public().signing);
    ledger.fund([1; 32], key(client), 2_000_000).unwrap();

    let mut t = terms(client, &[p1, p2]);
    t.fee = 100_000;
    let mut old = signed(t, &[client, p1, p2]);
    let (old_id, mandate) = (old.id().0, old.terms().mandate.id().0);
    ledger
        .lock_escrow_with(old_id, key(client), 1_200_000, 100_000, mandate, |_| Ok(()))
        .unwrap();
    old.apply(Event::EscrowLocked).unwrap();
    // Period 0 paid to p1 and p2 (the fee goes with it).
    let t = old.terms().clone();
    let paid = t.holder_payment(0, &p1.public().signing);
    ledger.release(old_id, 0, key(p1), paid).unwrap();
    ledger.release(old_id, 0, key(p2), paid).unwrap();
    old.apply(Event::PeriodPassed).unwrap();

    // The content re-coded onto three shards, one of them at p3.
    let mut moved = t.clone();
    moved.shards = terms(client, &[p1, p3, p3]).shards;
    moved.shards[0].shard = Hash([99; 32]);
    moved.audits = Hash([5; 32]);
    let mut new = signed(moved.clone(), &[client, p1, p3]);
    assert_eq!(new.state(), State::Signed);

    // Anything but the shards and the audit commitment: refused.
    let mut pricier = moved.clone();
    pricier.price += 1;
    pricier.mandate.max_price += 1;
    let mut other = signed(pricier, &[client, p1, p3]);
    assert!(matches!(other.succeed(&old), Err(Error::Terms(_))));
    let mut laxer = moved.clone();
    laxer.sla.latency_ms += 1;
    let mut other = signed(laxer, &[client, p1, p3]);
    assert!(matches!(other.succeed(&old), Err(Error::Terms(_))));
    // Not before every party signed.
    let mut unsigned = StorageContract::new(moved.clone()).unwrap();
    assert!(matches!(
        unsigned.succeed(&old),
        Err(Error::Transition { .. })
    ));

    assert_eq!(new.succeed(&old), Ok(State::Active));
    assert_eq!(new.periods_settled(), 1, "period 0 is not paid again");
    let left = ledger
        .move_escrow(old_id, new.id().0, mandate, |_| Ok(()))
        .unwrap();
    assert_eq!(left, 1_200_000 - 2 * paid);
    assert_eq!(ledger.mandate_used(&mandate).unwrap(), Some(new.id().0));
    assert_eq!(ledger.successor(&old_id).unwrap(), Some(new.id().0));
    assert!(ledger.escrow(&old_id).unwrap().unwrap().settled);
    assert_eq!(ledger.balance(&Account::Escrow(old_id)).unwrap(), 0);
    // The fee was never paid out (no period paid through `pay_period`): it moved along.
    assert_eq!(ledger.fee_pending(&old_id).unwrap(), 0);
    assert_eq!(ledger.fee_pending(&new.id().0).unwrap(), 100_000);
    // Once only: the old escrow is settled, the new one exists.
    assert!(matches!(
        ledger.move_escrow(old_id, [7; 32], mandate, |_| Ok(())),
        Err(zhtp_economy::Error::Settled(_))
    ));
    // The client got nothing back and paid nothing more.
    assert_eq!(ledger.balance(&key(client)).unwrap(), 800_000);
    let audit = ledger.audit().unwrap();
    assert_eq!((audit.supply, audit.escrows), (10_000_000, (2, 1)));
}
