//! Throughput of the local pipeline against same-run references: what `zhtp bench pipeline`
//! and `benches/pipeline.rs` print; and the keystore's cost (`zhtp bench identity`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use zhtp_content::{CodeKind, CodeParams, EncryptionLevel};
use zhtp_store::Config;
use zhtp_types::StorageTier;

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
