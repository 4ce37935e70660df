//! Storage contracts signed by real Ed25519 identities, and one contract's life with its money
//! in a real ledger: escrow, a payment per period, a penalty refunded, settlement.

use std::sync::Arc;

use zhtp_economy::contract::{
    Error, Event, Penalties, Placement, Sla, State, StorageContract, Terms, Violation,
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
            })
            .collect(),
        price: 1_200_000,
        plugin: Hash([2; 32]),
        start: 1_700_000_000,
        periods: 3,
        period_secs: 86_400,
        sla: Sla::default(),
        penalties: Penalties::default(),
    }
}

fn sign(c: &StorageContract, who: &Identity) -> ([u8; 32], Vec<u8>) {
    (who.public().signing, who.sign(c.id().as_bytes()).to_vec())
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
    // p1 signs in p2's name: a valid signature of another key.
    let (_, forged) = sign(&c, p1);
    let p2_key = p2.public().signing;
    assert_eq!(c.sign(p2_key, &forged), Err(Error::BadSignature(p2_key)));
    // Activating before every signature is there.
    assert!(matches!(
        c.apply(Event::EscrowLocked),
        Err(Error::Transition {
            state: State::Quoted,
            ..
        })
    ));
    for who in [client, p1] {
        let (k, s) = sign(&c, who);
        assert_eq!(c.sign(k, &s), Ok(State::Quoted));
    }
    let (k, s) = sign(&c, p2);
    assert_eq!(c.sign(k, &s), Ok(State::Signed));
    c.verify().unwrap();

    // One term changed after signing voids the signatures.
    let mut changed = c.clone();
    changed.terms.price -= 1;
    assert!(matches!(changed.verify(), Err(Error::BadSignature(_))));
    let mut moved = c.clone();
    moved.terms.shards[1].holder = carol.public().signing;
    assert!(moved.verify().is_err());
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
    ledger.lock_escrow(id, key(client), c.terms.price).unwrap();
    assert_eq!(c.apply(Event::EscrowLocked), Ok(State::Active));
    // Period 0: both providers paid their half.
    let pay = |n: u32, who: &Identity, amount| ledger.release(id, n, key(who), amount).unwrap();
    let half = c.terms.period_payment(0) / 2;
    pay(0, p1, half);
    pay(0, p2, half);
    c.apply(Event::PeriodPassed).unwrap();
    // Period 1: p2 lost data: the penalty (50% of the period) goes back to the client, p2 gets
    // what is left of its half, p1 its half.
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
    let penalty = c.terms.penalty(1, Violation::DataLoss);
    ledger.refund(id, 1, penalty).unwrap();
    c.apply(Event::PenaltyPaid).unwrap();
    c.apply(Event::Resolved).unwrap();
    pay(1, p1, half);
    // The penalty here is p2's whole half: nothing is left to pay it (a zero transfer is
    // refused, so none is made).
    assert_eq!(half - penalty, 0);
    assert_eq!(c.apply(Event::PeriodPassed), Ok(State::Active));
    // Period 2, then the end.
    let last = c.terms.period_payment(2);
    pay(2, p1, last / 2);
    pay(2, p2, last - last / 2);
    c.apply(Event::PeriodPassed).unwrap();
    assert!(matches!(
        c.apply(Event::PeriodPassed),
        Err(Error::Transition { .. })
    ));
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

    // 1.2 ZHTP escrowed: 0.4 per period; the client got the penalty and the rest back.
    assert_eq!(penalty, 200_000);
    assert_eq!(back, 0, "every period was paid out or refunded");
    assert_eq!(ledger.balance(&key(p1)).unwrap(), 600_000);
    assert_eq!(ledger.balance(&key(p2)).unwrap(), 600_000 - 200_000);
    assert_eq!(
        ledger.balance(&key(client)).unwrap(),
        2_000_000 - 1_200_000 + 200_000
    );
    let audit = ledger.audit().unwrap();
    assert_eq!((audit.supply, audit.escrows), (10_000_000, (1, 1)));
}
