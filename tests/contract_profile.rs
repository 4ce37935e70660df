//! The contract profile (`host/SPEC.md` section 14) with hand-written WAT contracts: each test
//! names the rule it checks. Real wasmtime, the deterministic engine, a state in a `BTreeMap`.

use std::collections::BTreeMap;
use std::sync::Arc;

use zhtp_host::abi::Status;
use zhtp_host::abi::contract::{DEFAULT_GAS_LIMIT, MAX_MEMORY, MAX_VALUE_LEN, gas};
use zhtp_host::{Call, Code, ContractError, Contracts, Entry, LoadError, StateHash};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

fn contracts() -> Contracts {
    Contracts::new().expect("contract host")
}

/// A contract whose three entries are `body` (each `(result i32)`), with every import and
/// `extra` module fields. Memory: one page; offset 0..1024 is free for the body.
fn module(body: &str, extra: &str) -> String {
    format!(
        r#"(module
        (import "zhtp:env/v1" "input_len" (func $input_len (result i32)))
        (import "zhtp:env/v1" "input_read" (func $input_read (param i32 i32) (result i32)))
        (import "zhtp:env/v1" "output_set" (func $output_set (param i32 i32) (result i32)))
        (import "zhtp:kv/v1" "get" (func $get (param i32 i32 i32 i32) (result i32)))
        (import "zhtp:kv/v1" "set" (func $set (param i32 i32 i32 i32) (result i32)))
        (import "zhtp:kv/v1" "remove" (func $remove (param i32 i32) (result i32)))
        (import "zhtp:kv/v1" "next" (func $next (param i32 i32 i32 i32 i32 i32) (result i32)))
        (import "zhtp:ctx/v1" "caller" (func $caller (param i32) (result i32)))
        (import "zhtp:ctx/v1" "address" (func $address (param i32) (result i32)))
        (import "zhtp:ctx/v1" "sequence" (func $sequence (result i64)))
        (import "zhtp:ctx/v1" "time" (func $time (result i64)))
        (import "zhtp:crypto/v1" "blake3" (func $blake3 (param i32 i32 i32) (result i32)))
        (import "zhtp:crypto/v1" "ed25519_verify" (func $verify (param i32 i32 i32 i32) (result i32)))
        (import "zhtp:ledger/v1" "balance" (func $balance (result i64)))
        (import "zhtp:ledger/v1" "funds" (func $funds (result i64)))
        (import "zhtp:ledger/v1" "transfer" (func $transfer (param i32 i64) (result i32)))
        (memory (export "memory") 1)
        (func (export "zhtp_abi_v1"))
        (func $body (result i32) {body})
        (func (export "contract_instantiate") (result i32) (call $body))
        (func (export "contract_execute") (result i32) (call $body))
        (func (export "contract_query") (result i32) (call $body))
        {extra})"#
    )
}

fn load(body: &str, extra: &str) -> Code {
    contracts()
        .load(&wat::parse_str(module(body, extra)).unwrap())
        .unwrap()
}

fn call(entry: Entry, msg: &[u8]) -> Call {
    Call {
        entry,
        msg: msg.to_vec(),
        caller: [7; 32],
        address: [9; 32],
        sequence: 3,
        time: 1_700_000_000,
        funds: 0,
        balance: 0,
        gas_limit: DEFAULT_GAS_LIMIT,
    }
}

fn run(code: &Code, c: Call, state: &Map) -> zhtp_host::Outcome {
    code.run(c, Arc::new(state.clone()))
}

/// Applies a successful outcome's writes to `state`.
fn commit(state: &mut Map, o: &zhtp_host::Outcome) {
    for w in &o.writes {
        match &w.after {
            Some(v) => state.insert(w.key.clone(), v.clone()),
            None => state.remove(&w.key),
        };
    }
}

/// A counter: reads "count" (u64 LE, absent = 0), adds one, writes it back, outputs it, then
/// runs `tail` (e.g. a trap) and returns `status`.
fn counter(tail: &str, status: i32) -> String {
    format!(
        r#"(i64.store (i32.const 16) (i64.const 0))
        (drop (call $get (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 8)))
        (i64.store (i32.const 16) (i64.add (i64.load (i32.const 16)) (i64.const 1)))
        (drop (call $set (i32.const 0) (i32.const 5) (i32.const 16) (i32.const 8)))
        (drop (call $output_set (i32.const 16) (i32.const 8)))
        {tail}
        (i32.const {status})"#
    )
}
const COUNT_KEY: &str = r#"(data (i32.const 0) "count")"#;

/// SPEC R-c-atomic R-c-query R-c-kv-set: writes count only from a call that returned 0.
#[test]
fn r_c_atomic_a_call_commits_its_writes_only_when_it_succeeds() {
    let code = load(&counter("", 0), COUNT_KEY);
    let mut state = Map::new();
    for n in 1..=3u64 {
        let o = run(&code, call(Entry::Execute, b""), &state);
        assert_eq!(o.result, Ok(n.to_le_bytes().to_vec()));
        assert_eq!(o.writes.len(), 1);
        assert_eq!(
            o.writes[0].before,
            (n > 1).then(|| (n - 1).to_le_bytes().to_vec())
        );
        commit(&mut state, &o);
    }
    // A query may not write: its `set` answers Forbidden, and nothing is written.
    let o = run(&code, call(Entry::Query, b""), &state);
    assert_eq!(o.result, Ok(4u64.to_le_bytes().to_vec()));
    assert!(o.writes.is_empty());

    // Writes, then traps: nothing of it stays.
    let trapping = load(&counter("unreachable", 0), COUNT_KEY);
    let o = run(&trapping, call(Entry::Execute, b""), &state);
    assert!(matches!(o.result, Err(ContractError::Trap(_))), "{o:?}");
    assert!(o.writes.is_empty() && o.gas_used > 0);
    // Writes, then refuses (status 1): nothing stays either.
    let refusing = load(&counter("", 1), COUNT_KEY);
    let o = run(&refusing, call(Entry::Execute, b""), &state);
    assert!(matches!(o.result, Err(ContractError::Refused(_))), "{o:?}");
    assert!(o.writes.is_empty());
}

/// SPEC R-c-gas: exact, the same for the same call, bounded by the limit.
#[test]
fn r_c_gas_the_same_call_uses_the_same_gas_and_an_endless_loop_runs_out() {
    let code = load(&counter("", 0), COUNT_KEY);
    let a = run(&code, call(Entry::Execute, b""), &Map::new());
    let b = run(&code, call(Entry::Execute, b""), &Map::new());
    assert_eq!(a, b, "same call, same state: same result, writes and gas");
    // The host functions' gas is part of it: a get, a set of 13 bytes, output_set.
    let floor = 2 * gas::CALL + gas::READ + gas::WRITE + 13 * (gas::BYTE + gas::WRITE_BYTE);
    assert!(a.gas_used > floor, "{} > {floor}", a.gas_used);

    let looping = load("(loop $l (br $l)) (i32.const 0)", "");
    let mut c = call(Entry::Execute, b"");
    c.gas_limit = 100_000;
    let o = run(&looping, c, &Map::new());
    assert_eq!(o.result, Err(ContractError::OutOfGas { limit: 100_000 }));
    assert_eq!(o.gas_used, 100_000);
    // Out of gas inside a host function (short of the write's own cost): the write it was
    // paying for does not happen. (Wasm code between checks may overdraw by a block: gas is
    // checked at calls, loop headers and host functions, and `gas_used` never passes the
    // limit.)
    let mut c = call(Entry::Execute, b"");
    c.gas_limit = a.gas_used - gas::WRITE;
    let o = run(&code, c, &Map::new());
    assert!(
        matches!(o.result, Err(ContractError::OutOfGas { .. })),
        "{o:?}"
    );
    assert!(o.writes.is_empty());
    // A limit above the maximum is refused before anything runs.
    let mut c = call(Entry::Execute, b"");
    c.gas_limit = u64::MAX;
    let o = run(&code, c, &Map::new());
    assert!(matches!(o.result, Err(ContractError::InvalidCall(_))));
    assert_eq!(o.gas_used, 0);
}

/// SPEC R-c-limits
#[test]
fn r_c_hostile_memory_bombs_recursion_and_oversize_writes_are_stopped_by_name() {
    let bomb = load(
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) (i32.const 0)",
        "",
    );
    let o = run(&bomb, call(Entry::Execute, b""), &Map::new());
    assert!(
        matches!(o.result, Err(ContractError::MemoryLimit { limit, .. }) if limit == MAX_MEMORY),
        "{o:?}"
    );
    let deep = load("(call $body)", "");
    let o = run(&deep, call(Entry::Execute, b""), &Map::new());
    assert_eq!(o.result, Err(ContractError::StackOverflow));
    let big = load(
        &format!(
            "(drop (call $set (i32.const 0) (i32.const 1) (i32.const 0) (i32.const {})))
             (i32.const 0)",
            MAX_VALUE_LEN + 1
        ),
        "",
    );
    let o = run(&big, call(Entry::Execute, b""), &Map::new());
    assert!(
        matches!(o.result, Err(ContractError::WriteLimit(_))),
        "{o:?}"
    );
    assert!(o.writes.is_empty());
}

/// SPEC R-c-shape R-c-imports R-c-features
#[test]
fn r_c_load_forbidden_imports_missing_entries_and_wrong_signatures_are_refused() {
    let c = contracts();
    let wasi = r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "zhtp_abi_v1"))
        (func (export "contract_instantiate") (result i32) (i32.const 0))
        (func (export "contract_execute") (result i32) (i32.const 0))
        (func (export "contract_query") (result i32) (i32.const 0)))"#;
    match c.load(&wat::parse_str(wasi).unwrap()) {
        Err(LoadError::ForbiddenImport { module, kind, .. }) => {
            assert_eq!(
                (module.as_str(), kind),
                ("wasi_snapshot_preview1", "contract")
            )
        }
        other => panic!("{other:?}"),
    }
    // `sequence` returns an i64; declared as i32 it is refused, naming both.
    let wrong = module("(i32.const 0)", "").replace(
        "(func $sequence (result i64))",
        "(func $sequence (result i32))",
    );
    match c.load(&wat::parse_str(wrong).unwrap()) {
        Err(LoadError::ImportSignature {
            name,
            expected,
            found,
            ..
        }) => {
            assert_eq!(
                (name.as_str(), expected.as_str(), found.as_str()),
                ("sequence", "() -> (i64)", "() -> (i32)")
            )
        }
        other => panic!("{other:?}"),
    }
    let no_query = module("(i32.const 0)", "").replace("(export \"contract_query\")", "");
    assert!(matches!(
        c.load(&wat::parse_str(no_query).unwrap()),
        Err(LoadError::MissingExport {
            name: "contract_query",
            ..
        })
    ));
    // Threads (a shared memory) are not part of the profile.
    let shared = module("(i32.const 0)", "").replace(
        "(memory (export \"memory\") 1)",
        "(memory (export \"memory\") 1 1 shared)",
    );
    assert!(c.load(&wat::parse_str(shared).unwrap()).is_err());
}

/// NaN canonicalization: `0.0 / 0.0` and a NaN with a payload come out as the one canonical
/// NaN (0x7fc00000), whatever the machine's float unit makes of them.
/// SPEC R-c-nan
#[test]
fn r_c_nan_float_nans_are_canonical() {
    let code = load(
        r#"(i32.store (i32.const 0) (i32.reinterpret_f32 (f32.div (f32.const 0) (f32.const 0))))
           (i32.store (i32.const 4) (i32.reinterpret_f32
               (f32.add (f32.reinterpret_i32 (i32.const 0x7fa00001)) (f32.const 1))))
           (drop (call $output_set (i32.const 0) (i32.const 8)))
           (i32.const 0)"#,
        "",
    );
    let o = run(&code, call(Entry::Query, b""), &Map::new());
    let out = o.result.unwrap();
    assert_eq!(out[..4], 0x7fc0_0000u32.to_le_bytes());
    assert_eq!(out[4..], 0x7fc0_0000u32.to_le_bytes());
}

/// SPEC R-c-kv-next R-c-kv-remove R-c-root
#[test]
fn r_c_kv_next_walks_the_state_merged_with_the_calls_own_writes() {
    // Sets "b", removes "c", then lists every key from "" on: a, b, d (c removed, b new).
    let code = load(
        r#"(local $len i32) (local $out i32)
           (drop (call $set (i32.const 1) (i32.const 1) (i32.const 1) (i32.const 1)))
           (drop (call $remove (i32.const 2) (i32.const 1)))
           (local.set $out (i32.const 100))
           ;; from = 0 bytes at 16
           (i32.store (i32.const 8) (i32.const 0))
           (block $done (loop $more
               (local.set $len (call $next (i32.const 16) (i32.load (i32.const 8))
                   (i32.const 0) (i32.const 0) (i32.const 200) (i32.const 64)))
               (br_if $done (i32.lt_s (local.get $len) (i32.const 0)))
               ;; the key (after its u32 length) goes to the output, then from = key ++ 0
               (i32.store8 (local.get $out) (i32.load8_u (i32.const 204)))
               (local.set $out (i32.add (local.get $out) (i32.const 1)))
               (i32.store8 (i32.const 16) (i32.load8_u (i32.const 204)))
               (i32.store8 (i32.const 17) (i32.const 0))
               (i32.store (i32.const 8) (i32.const 2))
               (br $more)))
           (drop (call $output_set (i32.const 100) (i32.sub (local.get $out) (i32.const 100))))
           (i32.const 0)"#,
        r#"(data (i32.const 0) "abcd")"#,
    );
    let state: Map = [(b"a", b"1"), (b"c", b"3"), (b"d", b"4")]
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    let o = run(&code, call(Entry::Execute, b""), &state);
    assert_eq!(o.result, Ok(b"abd".to_vec()));
    let keys: Vec<_> = o
        .writes
        .iter()
        .map(|w| (w.key.clone(), w.after.clone()))
        .collect();
    assert_eq!(
        keys,
        [(b"b".to_vec(), Some(b"b".to_vec())), (b"c".to_vec(), None)]
    );
    // The state root follows the writes: the same as the state's own after commit.
    let mut root = StateHash::default();
    for (k, v) in &state {
        root.insert(k, v);
    }
    o.apply_to(&mut root);
    let mut after = state.clone();
    commit(&mut after, &o);
    let mut fresh = StateHash::default();
    for (k, v) in &after {
        fresh.insert(k, v);
    }
    assert_eq!(root.root(), fresh.root());
}

/// SPEC R-c-ctx R-c-ledger
#[test]
fn r_c_ctx_and_ledger_the_call_context_and_the_contracts_account() {
    // Output: caller (32), address (32), sequence, time, balance, funds (i64 each), then the
    // statuses of a transfer of 30 to [1; 32] and of one of 1,000 (more than is left).
    let code = load(
        r#"(drop (call $caller (i32.const 0)))
           (drop (call $address (i32.const 32)))
           (i64.store (i32.const 64) (call $sequence))
           (i64.store (i32.const 72) (call $time))
           (i64.store (i32.const 80) (call $balance))
           (i64.store (i32.const 88) (call $funds))
           (i32.store (i32.const 96) (call $transfer (i32.const 200) (i64.const 30)))
           (i32.store (i32.const 100) (call $transfer (i32.const 200) (i64.const 1000)))
           (drop (call $output_set (i32.const 0) (i32.const 104)))
           (i32.const 0)"#,
        r#"(data (i32.const 200) "\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01\01")"#,
    );
    let mut c = call(Entry::Execute, b"");
    (c.balance, c.funds) = (50, 20);
    let o = run(&code, c.clone(), &Map::new());
    let out = o.result.clone().unwrap();
    let i64_at = |at: usize| i64::from_le_bytes(out[at..at + 8].try_into().unwrap());
    assert_eq!(out[..32], [7; 32]);
    assert_eq!(out[32..64], [9; 32]);
    assert_eq!(
        (i64_at(64), i64_at(72), i64_at(80), i64_at(88)),
        (3, 1_700_000_000, 70, 20)
    );
    let status = |at: usize| i32::from_le_bytes(out[at..at + 4].try_into().unwrap());
    assert_eq!(status(96), Status::Ok.code());
    assert_eq!(status(100), Status::InsufficientFunds.code());
    assert_eq!(o.transfers, [([1; 32], 30)]);
    // A query moves nothing.
    c.entry = Entry::Query;
    let o = run(&code, c, &Map::new());
    let out = o.result.unwrap();
    assert_eq!(
        i32::from_le_bytes(out[96..100].try_into().unwrap()),
        Status::Forbidden.code()
    );
    assert!(o.transfers.is_empty());
}

/// SPEC R-c-crypto
#[test]
fn r_c_crypto_blake3_and_ed25519_verify() {
    // blake3("abc") at 0..32; then verify the signature at 100 by the key at 200 over "abc".
    let key = [0x5au8; 32];
    let id = zhtp_identity_test_key(key);
    let code = load(
        r#"(drop (call $blake3 (i32.const 300) (i32.const 3) (i32.const 0)))
           (i32.store (i32.const 32) (call $verify (i32.const 200) (i32.const 300) (i32.const 3) (i32.const 100)))
           (drop (call $output_set (i32.const 0) (i32.const 36)))
           (i32.const 0)"#,
        &format!(
            r#"(data (i32.const 300) "abc") (data (i32.const 100) "{}") (data (i32.const 200) "{}")"#,
            escape(&id.1),
            escape(&id.0)
        ),
    );
    let o = run(&code, call(Entry::Query, b""), &Map::new());
    let out = o.result.unwrap();
    assert_eq!(out[..32], *blake3::hash(b"abc").as_bytes());
    assert_eq!(out[32..36], Status::Ok.code().to_le_bytes());
    // The same signature checked against another key: valid bytes, wrong signer.
    let other = zhtp_identity_test_key([0x11; 32]);
    let code = load(
        r#"(i32.store (i32.const 32) (call $verify (i32.const 200) (i32.const 300) (i32.const 3) (i32.const 100)))
           (drop (call $output_set (i32.const 32) (i32.const 4)))
           (i32.const 0)"#,
        &format!(
            r#"(data (i32.const 300) "abc") (data (i32.const 100) "{}") (data (i32.const 200) "{}")"#,
            escape(&id.1),
            escape(&other.0)
        ),
    );
    let o = run(&code, call(Entry::Query, b""), &Map::new());
    assert_eq!(o.result.unwrap(), Status::BadSignature.code().to_le_bytes());
}

/// An Ed25519 key pair from a seed: the public key and its signature over "abc".
fn zhtp_identity_test_key(seed: [u8; 32]) -> ([u8; 32], Vec<u8>) {
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    use ed25519_dalek::Signer as _;
    (
        key.verifying_key().to_bytes(),
        key.sign(b"abc").to_bytes().to_vec(),
    )
}

fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// SPEC R-c-status R-c-kv-get: what an entry may return, and `get`'s answers.
#[test]
fn r_c_status_and_kv_get() {
    // Status 0 without an output, and a status no entry returns: the ABI is broken.
    for body in ["(i32.const 0)", "(i32.const 2)"] {
        let o = run(&load(body, ""), call(Entry::Execute, b""), &Map::new());
        assert!(
            matches!(o.result, Err(ContractError::Abi(_))),
            "{body}: {o:?}"
        );
    }
    // get: the value's whole length, however little of it fits; NotFound; a key too long.
    let code = load(
        r#"(i32.store (i32.const 100) (call $get (i32.const 0) (i32.const 1) (i32.const 200) (i32.const 2)))
           (i32.store (i32.const 104) (call $get (i32.const 1) (i32.const 1) (i32.const 200) (i32.const 2)))
           (i32.store (i32.const 108) (call $get (i32.const 0) (i32.const 257) (i32.const 200) (i32.const 2)))
           (i32.store (i32.const 112) (call $get (i32.const 0) (i32.const -1) (i32.const 200) (i32.const 2)))
           (i32.store (i32.const 116) (i32.load (i32.const 200)))
           (drop (call $output_set (i32.const 100) (i32.const 20)))
           (i32.const 0)"#,
        r#"(data (i32.const 0) "kz")"#,
    );
    let state: Map = [(b"k".to_vec(), b"value".to_vec())].into_iter().collect();
    let out = run(&code, call(Entry::Query, b"x"), &state).result.unwrap();
    let word = |i: usize| i32::from_le_bytes(out[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(
        [word(0), word(1), word(2), word(3)],
        [
            5,
            Status::NotFound.code(),
            Status::TooLarge.code(),
            Status::InvalidArgument.code()
        ]
    );
    assert_eq!(out[16..18], *b"va", "two bytes copied, no more");
    assert_eq!(out[18..20], [0, 0]);
}

/// The kv.next pair encoding of SPEC R-c-kv-next, byte for byte: key "ab", value "xyz".
/// SPEC R-c-kv-next
#[test]
fn r_c_kv_next_golden_pair() {
    let code = load(
        r#"(drop (call $output_set (i32.const 100)
              (call $next (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 64))))
           (i32.const 0)"#,
        "",
    );
    let state: Map = [(b"ab".to_vec(), b"xyz".to_vec())].into_iter().collect();
    let out = run(&code, call(Entry::Query, b""), &state).result.unwrap();
    assert_eq!(out, [0x02, 0, 0, 0, 0x61, 0x62, 0x78, 0x79, 0x7a]);
}

/// SPEC R-c-gas: exact figures, so a wasmtime upgrade that changed an operator's cost (or our
/// host functions' costs) fails here. The loop body is `local.get, i32.const, i32.sub,
/// local.tee, br_if` (5 operators) run 1,000 times, plus the entry's own operators and BASE.
#[test]
fn r_c_gas_exact_figures_are_pinned() {
    let looping = load(
        r#"(local $n i32) (local.set $n (i32.const 1000))
           (loop $l (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
           (drop (call $output_set (i32.const 0) (i32.const 0)))
           (i32.const 0)"#,
        "",
    );
    let o = run(&looping, call(Entry::Query, b""), &Map::new());
    assert_eq!(o.result, Ok(Vec::new()));
    assert_eq!(o.gas_used, 15_029);
    let counter = load(&counter("", 0), COUNT_KEY);
    let o = run(&counter, call(Entry::Execute, b""), &Map::new());
    assert_eq!(o.gas_used, 16_762);
}

/// SPEC R-c-gas: copying through `zhtp:env/v1` is paid per byte; a trap inside wasm is charged
/// the whole limit.
#[test]
fn r_c_gas_env_copies_are_paid_and_a_trap_costs_the_limit() {
    // Reads a 60,000-byte message 100 times: 6 M bytes, over a 1 M limit.
    let reader = load(
        r#"(local $i i32) (local.set $i (i32.const 100))
           (loop $l
             (drop (call $input_read (i32.const 0) (i32.const 65536)))
             (br_if $l (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
           (drop (call $output_set (i32.const 0) (i32.const 0)))
           (i32.const 0)"#,
        "",
    );
    let mut c = call(Entry::Query, &[7; 60_000]);
    c.gas_limit = 1_000_000;
    let o = run(&reader, c, &Map::new());
    assert_eq!(o.result, Err(ContractError::OutOfGas { limit: 1_000_000 }));
    // Burns gas in a loop, then divides by zero: charged everything.
    let burner = load(
        r#"(local $n i32) (local.set $n (i32.const 100000))
           (loop $l (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
           (drop (i32.div_s (i32.const 1) (local.get $n)))
           (i32.const 0)"#,
        "",
    );
    let mut c = call(Entry::Query, b"");
    c.gas_limit = 2_000_000;
    let o = run(&burner, c, &Map::new());
    assert!(matches!(o.result, Err(ContractError::Trap(_))), "{o:?}");
    assert_eq!(o.gas_used, 2_000_000);
    // Below the base cost nothing runs.
    let mut c = call(Entry::Query, b"");
    c.gas_limit = gas::BASE - 1;
    let o = run(&burner, c, &Map::new());
    assert_eq!(
        o.result,
        Err(ContractError::OutOfGas {
            limit: gas::BASE - 1
        })
    );
}

/// SPEC R-c-limits R-c-kv-remove R-c-ledger: long keys end the call whether set or removed;
/// removals count toward the bytes written; transfers are capped; absurd lengths cost gas,
/// never a host panic.
#[test]
fn r_c_limits_keys_removals_transfers_and_lengths() {
    for body in [
        "(drop (call $set (i32.const 0) (i32.const 257) (i32.const 0) (i32.const 1))) (i32.const 0)",
        "(drop (call $remove (i32.const 0) (i32.const 257))) (i32.const 0)",
    ] {
        let o = run(&load(body, ""), call(Entry::Execute, b""), &Map::new());
        assert!(
            matches!(o.result, Err(ContractError::WriteLimit(_))),
            "{body}: {o:?}"
        );
    }
    // 5,000 removals of 256-byte keys: 1.28 MB, over the 1 MiB a call may write.
    let remover = load(
        r#"(local $i i32) (local.set $i (i32.const 5000))
           (loop $l
             (i32.store (i32.const 0) (local.get $i))
             (drop (call $remove (i32.const 0) (i32.const 256)))
             (br_if $l (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
           (i32.const 0)"#,
        "",
    );
    let mut c = call(Entry::Execute, b"");
    c.gas_limit = 200_000_000;
    let o = run(&remover, c, &Map::new());
    assert!(
        matches!(o.result, Err(ContractError::WriteLimit(_))),
        "{o:?}"
    );
    // 300 transfers of 1: the 257th answers QuotaExceeded (-5), which this contract outputs.
    let payer = load(
        r#"(local $i i32) (local $st i32) (local.set $i (i32.const 300))
           (block $done (loop $l
             (local.set $st (call $transfer (i32.const 100) (i64.const 1)))
             (br_if $done (i32.ne (local.get $st) (i32.const 0)))
             (br_if $l (local.tee $i (i32.sub (local.get $i) (i32.const 1))))))
           (i32.store (i32.const 0) (local.get $st))
           (i32.store (i32.const 4) (local.get $i))
           (drop (call $output_set (i32.const 0) (i32.const 8)))
           (i32.const 0)"#,
        "",
    );
    let mut c = call(Entry::Execute, b"");
    c.balance = 1_000;
    let o = run(&payer, c, &Map::new());
    let out = o.result.unwrap();
    assert_eq!(out[..4], Status::QuotaExceeded.code().to_le_bytes());
    assert_eq!(o.transfers.len(), 256);
    // kv.next with both lengths at i32::MAX: its byte charge is computed without overflow and
    // is simply more gas than any call has.
    let huge = load(
        r#"(drop (call $next (i32.const 0) (i32.const 2147483647) (i32.const 0)
              (i32.const 2147483647) (i32.const 0) (i32.const 0)))
           (i32.const 0)"#,
        "",
    );
    let o = run(&huge, call(Entry::Query, b""), &Map::new());
    assert!(
        matches!(o.result, Err(ContractError::OutOfGas { .. })),
        "{o:?}"
    );
}

/// The hand-written counter of SPEC.md 14.8 loads and does what the spec says it does.
/// SPEC R-c-shape R-c-kv-get R-c-kv-set
#[test]
fn the_specs_hand_written_counter_runs_as_described() {
    let section = &zhtp_tests::SPEC[zhtp_tests::SPEC.find("### 14.8").unwrap()..];
    let start = section.find("```wat\n").unwrap() + "```wat\n".len();
    let wat = &section[start..start + section[start..].find("```").unwrap()];
    let code = contracts().load(&wat::parse_str(wat).unwrap()).unwrap();
    let o = run(&code, call(Entry::Execute, b""), &Map::new());
    assert_eq!(o.result, Ok(1u64.to_le_bytes().to_vec()));
    assert_eq!(o.writes.len(), 1);
    assert_eq!(
        (o.writes[0].key.as_slice(), o.writes[0].after.as_deref()),
        (&b"count"[..], Some(&1u64.to_le_bytes()[..]))
    );
    let o = run(&code, call(Entry::Query, b""), &Map::new());
    assert!(o.writes.is_empty(), "a query writes nothing");
}
