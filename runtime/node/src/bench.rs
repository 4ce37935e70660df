//! Throughput of the local pipeline against same-run references: what `zhtp bench pipeline`
//! and `benches/pipeline.rs` print; and the keystore's cost (`zhtp bench identity`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use zhtp_content::{CodeKind, CodeParams, EncryptionLevel};
use zhtp_store::Config;
use zhtp_types::{Hash, StorageTier};

use crate::local::{LocalNode, PutOptions};

/// Mixed data: a third compressible text, two thirds random (xorshift).
pub fn mixed_data(len: usize) -> Vec<u8> {
    let mut x = 0x2545f4914f6cdd1du64;
    (0..len)
        .map(|i| {
            if (i / 65536) % 3 == 0 {
                b"the quick brown fox stores shards. "[i % 35]
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            }
        })
        .collect()
}

fn best_of(n: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..n).map(|_| f()).min().unwrap_or_default()
}

/// Runs of each pipeline case: the disk of a shared VM is noisy, so the table gives the median
/// and the best of these.
const RUNS: usize = 3;

/// Durable single-node put and get of `mib` MiB of mixed data for each encryption level and for
/// 4+2 and 16+8, [`RUNS`] times each into a fresh store, next to memcpy and BLAKE3 of the same
/// bytes. Prints a table; `dir` holds the temporary stores.
pub fn pipeline(mib: usize, dir: &std::path::Path) -> Result<(), crate::local::Error> {
    let size = mib << 20;
    let input = mixed_data(size);
    let mut copy = vec![0u8; size];
    let memcpy = best_of(3, || {
        let t = Instant::now();
        copy.copy_from_slice(black_box(&input));
        black_box(&copy);
        t.elapsed()
    });
    drop(copy);
    let hash = best_of(3, || {
        let t = Instant::now();
        black_box(blake3::hash(black_box(&input)));
        t.elapsed()
    });
    println!(
        "{mib} MiB of mixed data (1/3 text, 2/3 random), durable (synced at commit), {} threads, \
         median and best of {RUNS} runs",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "{:<36} {:>10} {:>10} {:>12}",
        "operation", "MB/s", "best", "vs memcpy"
    );
    let mbps = |d: Duration| size as f64 / d.as_secs_f64() / 1e6;
    let row = |name: &str, runs: &mut [Duration]| {
        runs.sort();
        let (median, best) = (runs[runs.len() / 2], runs[0]);
        println!(
            "{name:<36} {:>10.0} {:>10.0} {:>11.3}x",
            mbps(median),
            mbps(best),
            memcpy.as_secs_f64() / median.as_secs_f64()
        );
    };
    row("memcpy (reference)", &mut [memcpy]);
    row("blake3 hash, 1 thread (reference)", &mut [hash]);
    // Every encrypted level wraps the content key for an owner: a throwaway identity here. The
    // wrap is per content and the get unwraps once, so high and quantum should cost what
    // standard costs, give or take XChaCha20's extra HChaCha20 per segment.
    let owner = zhtp_identity::Identity::generate().map_err(crate::readers::Error::from)?;
    let cases = [
        ("none", EncryptionLevel::None, 4, 2),
        ("standard", EncryptionLevel::Standard, 4, 2),
        ("high", EncryptionLevel::High, 4, 2),
        ("quantum", EncryptionLevel::QuantumResistant, 4, 2),
        ("none", EncryptionLevel::None, 16, 8),
        ("standard", EncryptionLevel::Standard, 16, 8),
    ];
    for (i, (name, level, k, m)) in cases.into_iter().enumerate() {
        let (mut puts, mut gets) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            let store_dir = dir.join(format!("bench-{i}-{run}"));
            let node = LocalNode::open(&store_dir, Config::default())?;
            let mut opts = PutOptions::new(StorageTier::Warm);
            opts.encryption = level;
            opts.code = CodeParams::new(CodeKind::ReedSolomonSimd, k, m)?;
            let wraps = level != EncryptionLevel::None;
            if wraps {
                opts.readers = vec![owner.public()];
            }
            let t = Instant::now();
            let manifest = node.put(&mut &input[..], opts, &|_| {})?;
            puts.push(t.elapsed());
            let t = Instant::now();
            // The owner's get: unwrap the key from the manifest, then read.
            let key = if wraps {
                Some(crate::readers::unwrap(&manifest, &owner)?)
            } else {
                None
            };
            node.get_with_key(&manifest.content_hash, key, &mut std::io::sink(), &|_| {})?;
            gets.push(t.elapsed());
            drop(node);
            let _ = std::fs::remove_dir_all(&store_dir);
        }
        row(&format!("put {name} {k}+{m}"), &mut puts);
        row(&format!("get {name} {k}+{m}"), &mut gets);
    }
    Ok(())
}

/// Peak resident memory of this process in KiB (`VmHWM`), after optionally resetting it.
fn peak_rss_kib(reset: bool) -> Option<u64> {
    if reset {
        // "5" resets the peak (Linux ≥ 4.0); without it the figure includes earlier phases.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A `nodes`-node devnet in this process (real libp2p swarms on 127.0.0.1, QUIC + TCP, one
/// RocksDB each): put `mib` MiB through node 0 at 4+2, then get it through the last node, which
/// holds one shard per segment and fetches the rest. Prints get throughput against memcpy of
/// the same bytes in the same run, and the peak memory of the get.
pub fn devnet(
    mib: usize,
    nodes: usize,
    dir: &std::path::Path,
) -> Result<(), crate::network::Error> {
    use crate::network::{Node, RepairConfig};
    use futures::StreamExt as _;
    let size = mib << 20;
    let input = mixed_data(size);
    let mut copy = vec![0u8; size];
    let memcpy = best_of(3, || {
        let t = Instant::now();
        copy.copy_from_slice(black_box(&input));
        black_box(&copy);
        t.elapsed()
    });
    drop(copy);
    let file = dir.join("devnet-input");
    std::fs::write(&file, &input).map_err(crate::network::Error::Input)?;
    drop(input);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(crate::network::Error::Input)?;
    rt.block_on(async {
        let config = |boot: Vec<zhtp_dht::Multiaddr>| {
            let mut c = zhtp_dht::Config::default();
            c.listen = vec![
                "/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("valid"),
                "/ip4/127.0.0.1/tcp/0".parse().expect("valid"),
            ];
            c.bootstrap = boot;
            c
        };
        let first =
            Node::start(&dir.join("node-0"), config(vec![]), RepairConfig::default()).await?;
        let boot = first.dht().dialable(2).await?;
        let mut net = vec![first];
        for i in 1..nodes {
            net.push(
                Node::start(
                    &dir.join(format!("node-{i}")),
                    config(boot.clone()),
                    RepairConfig::default(),
                )
                .await?,
            );
        }
        for n in &net {
            let _ = n.dht().bootstrap().await;
        }
        for n in &net {
            n.dht().wait_connected(nodes - 1).await?;
        }
        println!("{mib} MiB of mixed data, {nodes}-node devnet in one process on 127.0.0.1, 4+2");
        println!("{:<52} {:>10} {:>12}", "operation", "MB/s", "vs memcpy");
        let row = |name: &str, d: Duration| {
            println!(
                "{name:<52} {:>10.0} {:>11.3}x",
                size as f64 / d.as_secs_f64() / 1e6,
                memcpy.as_secs_f64() / d.as_secs_f64()
            );
        };
        row("memcpy (reference)", memcpy);
        let owner = zhtp_identity::Identity::generate()
            .map_err(|e| crate::network::Error::Invalid(e.to_string()))?;
        for level in [EncryptionLevel::None, EncryptionLevel::Standard] {
            let mut opts = PutOptions::new(StorageTier::Hot);
            opts.encryption = level;
            if level != EncryptionLevel::None {
                opts.readers = vec![owner.public()];
            }
            let t = Instant::now();
            let stored = net[0].put_file(&file, opts).await?;
            row(
                &format!("put through node 0 ({})", level.as_str()),
                t.elapsed(),
            );
            let reader = &net[nodes - 1];
            let before = peak_rss_kib(true);
            let t = Instant::now();
            // The owner reads through the last node: it unwraps the key and hands it over.
            let key = match level {
                EncryptionLevel::None => None,
                _ => Some(
                    crate::readers::unwrap(&stored.manifest, &owner)
                        .map_err(|e| crate::network::Error::Invalid(e.to_string()))?,
                ),
            };
            let (_, stream) = reader.get(&stored.manifest.content_hash, key).await?;
            let mut stream = Box::pin(stream);
            let mut got = 0usize;
            while let Some(chunk) = stream.next().await {
                got += chunk?.len();
            }
            let took = t.elapsed();
            if got != size {
                return Err(crate::network::Error::Invalid(format!(
                    "the get delivered {got} of {size} bytes"
                )));
            }
            row(
                &format!(
                    "get through node {} ({}), verified",
                    nodes - 1,
                    level.as_str()
                ),
                took,
            );
            if let (Some(b), Some(a)) = (before, peak_rss_kib(false)) {
                // The process holds six nodes (RocksDB memtables and caches included); what
                // the get itself adds is the peak over the resident size just before it.
                println!(
                    "{:<52} {:>10} MiB peak, {} MiB before (process, {nodes} nodes)",
                    "  memory during the get",
                    a.max(b) / 1024,
                    b / 1024
                );
            }
        }
        for n in net {
            n.stop().await;
        }
        Ok(())
    })
}

/// The keystore's cost: sealing and opening an identity with the default Argon2id parameters
/// and with the floor's, next to a memcpy of the default's memory in the same run (Argon2 is
/// bound by memory bandwidth). What `zhtp bench identity` prints; every command that signs or
/// decrypts as an identity pays one open.
pub fn identity() -> Result<(), zhtp_identity::Error> {
    use zhtp_identity::{Identity, KdfParams, seal, unseal};
    let id = Identity::generate()?;
    let mem = KdfParams::DEFAULT.memory_kib as usize * 1024;
    let (src, mut dst) = (mixed_data(mem), vec![0u8; mem]);
    let memcpy = best_of(3, || {
        let t = Instant::now();
        dst.copy_from_slice(black_box(&src));
        black_box(&dst);
        t.elapsed()
    });
    println!(
        "keystore: Argon2id then XChaCha20-Poly1305; reference: memcpy of {} MiB = {:.1} ms",
        mem >> 20,
        ms(memcpy)
    );
    println!("{:<56} {:>10} {:>10}", "", "best of 3", "/ memcpy");
    for (what, params) in [("default", KdfParams::DEFAULT), ("floor", KdfParams::FLOOR)] {
        let mut sealed = Vec::new();
        let seal_t = best_of(3, || {
            let t = Instant::now();
            sealed = seal(&id, b"bench passphrase", params).expect("seal");
            t.elapsed()
        });
        let mut err = None;
        let open_t = best_of(3, || {
            let t = Instant::now();
            if let Err(e) = unseal(&sealed, b"bench passphrase") {
                err = Some(e);
            }
            t.elapsed()
        });
        if let Some(e) = err {
            return Err(e);
        }
        for (op, d) in [("seal", seal_t), ("open", open_t)] {
            println!(
                "{:<56} {:>7.1} ms {:>9.1}x",
                format!("{op}, {what} {params}"),
                ms(d),
                d.as_secs_f64() / memcpy.as_secs_f64()
            );
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The median of `n` timings of `f`, after `n / 10` unmeasured runs.
fn median_of(n: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..n / 10 {
        f();
    }
    let mut v: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    v.sort();
    v[n / 2]
}

/// CosmWasm 3.0 (wasmer singlepass) on this machine, measured side by side when the contract
/// issue was filed: a counter increment warm, and a full cycle (instance from cache, execute,
/// state commit).
const COSMWASM_WARM: Duration = Duration::from_micros(24);
const COSMWASM_CYCLE: Duration = Duration::from_micros(102);

/// Smart-contract costs: the counter's increment natively (serde_json and a map: the same
/// work without wasm), warm in the host, through a node's store with its commit, and end to
/// end through a 3-node devnet; compiling; a 1,000-name registry batch; gas per second. Each
/// next to the CosmWasm anchor where there is one. `dir` holds the stores.
pub fn contracts(dir: &std::path::Path) -> Result<(), crate::network::Error> {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use zhtp_host::abi::contract::DEFAULT_GAS_LIMIT as GAS;
    use zhtp_host::{Call, Contracts, Entry};

    use crate::smart::SmartContracts;

    let invalid = |e: &dyn std::fmt::Display| crate::network::Error::Invalid(e.to_string());
    let inc = br#"{"increment":{"by":1}}"#;
    let host = Contracts::new().map_err(|e| invalid(&e))?;
    let counter = zhtp_artifacts::COUNTER;
    let code = host.load(counter).map_err(|e| invalid(&e))?;
    let call = |entry, msg: &[u8], gas_limit| Call {
        entry,
        msg: msg.to_vec(),
        caller: [1; 32],
        address: [2; 32],
        sequence: 0,
        time: 1_700_000_000,
        funds: 0,
        balance: 0,
        gas_limit,
    };
    // The counter's state after its instantiate, in memory.
    let made = code.run(
        call(Entry::Instantiate, br#"{"start":0}"#, GAS),
        Arc::new(BTreeMap::<Vec<u8>, Vec<u8>>::new()),
    );
    let state: Arc<BTreeMap<Vec<u8>, Vec<u8>>> = Arc::new(
        made.writes
            .iter()
            .filter_map(|w| Some((w.key.clone(), w.after.clone()?)))
            .collect(),
    );
    const N: usize = 2_000;

    // The same work natively: parse the message, read, add, write, answer.
    let mut map: BTreeMap<Vec<u8>, Vec<u8>> = (*state).clone();
    let native = median_of(N * 10, || {
        let m: serde_json::Value = serde_json::from_slice(black_box(inc)).expect("json");
        let by = m["increment"]["by"].as_u64().unwrap_or(0);
        let now = map
            .get(b"count".as_slice())
            .and_then(|v| serde_json::from_slice::<u64>(v).ok())
            .unwrap_or(0);
        map.insert(
            b"count".to_vec(),
            serde_json::to_vec(&(now + by)).expect("json"),
        );
        black_box(serde_json::to_vec(&serde_json::json!({ "count": now + by })).expect("json"));
    });
    let mut gas = 0;
    let warm = median_of(N, || {
        let o = code.run(call(Entry::Execute, inc, GAS), state.clone());
        gas = o.gas_used;
        black_box(o);
    });
    let unpooled = Contracts::on_demand()
        .and_then(|h| h.load(counter))
        .map_err(|e| invalid(&e))?;
    let on_demand = median_of(N, || {
        black_box(unpooled.run(call(Entry::Execute, inc, GAS), state.clone()));
    });
    let query = median_of(N, || {
        black_box(code.run(call(Entry::Query, br#"{"count":{}}"#, GAS), state.clone()));
    });
    let compile = median_of(20, || {
        black_box(host.load(counter).expect("valid"));
    });

    // Through a node's store: load, run, commit (one batch), with and without fsync.
    let cycle = |sync: bool,
                 name: &str|
     -> Result<(Duration, SmartContracts, Hash), crate::network::Error> {
        let store = Arc::new(zhtp_store::Store::open(
            dir.join(name),
            Config::default().with_sync(sync),
        )?);
        let sc = SmartContracts::open(store).map_err(|e| invalid(&e))?;
        let h = sc.deploy(counter).map_err(|e| invalid(&e))?;
        let (a, _) = sc
            .instantiate(&h, [1; 32], br#"{"start":0}"#, 1_700_000_000, GAS)
            .map_err(|e| invalid(&e))?;
        let d = median_of(if sync { 200 } else { N }, || {
            black_box(
                sc.execute(&a, [1; 32], inc, 1_700_000_000, GAS, 0, None)
                    .expect("runs"),
            );
        });
        Ok((d, sc, a))
    };
    let (cycle_nosync, sc, counter_at) = cycle(false, "contracts-nosync")?;
    let (cycle_sync, _, _) = cycle(true, "contracts-sync")?;
    let cache_hit = median_of(N, || {
        black_box(sc.instance(&counter_at).expect("kept"));
    });

    // 1,000 registry names, one execute each, committed with fsync as a node does.
    let store = Arc::new(zhtp_store::Store::open(
        dir.join("registry"),
        Config::default(),
    )?);
    let sc = SmartContracts::open(store).map_err(|e| invalid(&e))?;
    let h = sc
        .deploy(zhtp_artifacts::REGISTRY)
        .map_err(|e| invalid(&e))?;
    let (reg, _) = sc
        .instantiate(&h, [1; 32], b"{}", 1_700_000_000, GAS)
        .map_err(|e| invalid(&e))?;
    let content = "ab".repeat(32);
    let (mut batch_gas, t) = (0u64, Instant::now());
    for i in 0..1_000 {
        let msg = format!(r#"{{"register":{{"name":"name-{i}","content":"{content}"}}}}"#);
        let c = sc
            .execute(&reg, [1; 32], msg.as_bytes(), 1_700_000_000, GAS, 0, None)
            .map_err(|e| invalid(&e))?;
        if let Err(e) = c.result {
            return Err(invalid(&e));
        }
        batch_gas += c.gas_used;
    }
    let batch = t.elapsed();

    // End to end through a 3-node devnet on 127.0.0.1: status round, primary, the others.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(crate::network::Error::Input)?;
    let e2e = rt.block_on(devnet_execute(dir))?;

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("smart contracts: the counter's increment unless said otherwise; medians");
    println!(
        "{:<58} {:>11} {:>11} {:>11}",
        "operation", "µs", "vs native", "vs CosmWasm"
    );
    let row = |name: &str, d: Duration, anchor: Option<Duration>| {
        println!(
            "{name:<58} {:>11.1} {:>10.1}x {:>11}",
            us(d),
            d.as_secs_f64() / native.as_secs_f64(),
            anchor.map_or("".into(), |a| format!(
                "{:.2}x",
                d.as_secs_f64() / a.as_secs_f64()
            ))
        );
    };
    row("native: serde_json + a map (reference)", native, None);
    row(
        "warm execute: fresh instance, call, writes collected",
        warm,
        Some(COSMWASM_WARM),
    );
    row(
        "warm execute, memory mapped per instance (no pool)",
        on_demand,
        Some(COSMWASM_WARM),
    );
    row("warm query", query, None);
    row(
        "full cycle: load, execute, commit (RocksDB, no fsync)",
        cycle_nosync,
        Some(COSMWASM_CYCLE),
    );
    row(
        "full cycle with fsync (what a node does)",
        cycle_sync,
        Some(COSMWASM_CYCLE),
    );
    row("compile the counter (cold, Cranelift)", compile, None);
    row("compiled-code cache hit and instance read", cache_hit, None);
    row(
        "registry: 1,000 names registered, per name (fsync)",
        batch / 1_000,
        None,
    );
    row("devnet execute end to end, 3 replicas", e2e, None);
    println!(
        "gas: {gas} per increment; {:.0} M gas/s warm; registry batch {:.0} M gas/s with commits ({} ms for 1,000)",
        gas as f64 / warm.as_secs_f64() / 1e6,
        batch_gas as f64 / batch.as_secs_f64() / 1e6,
        batch.as_millis()
    );
    Ok(())
}

/// The median of 50 counter increments through a 3-node devnet, as a node's API would run them.
async fn devnet_execute(dir: &std::path::Path) -> Result<Duration, crate::network::Error> {
    use crate::network::{Node, RepairConfig};
    use zhtp_host::abi::contract::DEFAULT_GAS_LIMIT as GAS;
    let config = |boot: Vec<zhtp_dht::Multiaddr>| {
        let mut c = zhtp_dht::Config::default();
        c.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid")];
        c.bootstrap = boot;
        c
    };
    let first = Node::start(&dir.join("e2e-0"), config(vec![]), RepairConfig::default()).await?;
    let boot = first.dht().dialable(1).await?;
    let mut net = vec![first];
    for i in 1..3 {
        let d = dir.join(format!("e2e-{i}"));
        net.push(Node::start(&d, config(boot.clone()), RepairConfig::default()).await?);
    }
    for n in &net {
        let _ = n.dht().bootstrap().await;
    }
    for n in &net {
        n.dht().wait_connected(2).await?;
    }
    let now = zhtp_dht::record::unix_now;
    let code = net[0]
        .contract_deploy(zhtp_artifacts::COUNTER.to_vec())
        .await?;
    let a = net[1]
        .contract_instantiate(code, br#"{"start":0}"#.to_vec(), now(), GAS)
        .await?
        .address;
    let mut v = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        net[2]
            .contract_execute(a, br#"{"increment":{"by":1}}"#.to_vec(), now(), GAS)
            .await?;
        v.push(t.elapsed());
    }
    v.sort();
    for n in net {
        n.stop().await;
    }
    Ok(v[v.len() / 2])
}
