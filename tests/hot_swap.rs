//! Hot swap: calls in flight finish on the old plugin, new calls see the new one, no call fails
//! or sees a half-installed plugin, and the installed plugins persist across restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use zhtp_host::{Registry, RegistryError};
use zhtp_tests::*;
use zhtp_types::Hash;

const STANDARD_TOTAL: u64 = 117_000_000;
const SURGE_TOTAL: u64 = 195_200_000;

/// The identity the host gives a plugin (BLAKE3 of its wasm), via the registry's own host: a
/// compile-cache hit, not a second engine.
fn hash_of(registry: &Registry, wasm: &[u8]) -> Hash {
    registry
        .host()
        .load(zhtp_host::Kind::Pricing, wasm)
        .unwrap()
        .info()
        .hash
}

#[test]
fn swap_under_concurrent_quoting() {
    let registry =
        Arc::new(Registry::open(host(), None, zhtp_artifacts::PRICING_STANDARD).unwrap());
    let std_hash = hash_of(&registry, zhtp_artifacts::PRICING_STANDARD);
    let surge_hash = hash_of(&registry, zhtp_artifacts::PRICING_SURGE);
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));

    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (registry, stop, calls) = (registry.clone(), stop.clone(), calls.clone());
            std::thread::spawn(move || {
                let mut seen = [0u64; 2];
                while !stop.load(Ordering::Relaxed) {
                    let q = registry
                        .quote(&golden_request())
                        .expect("no call may fail during a swap");
                    // Every quote is wholly one plugin's: its total matches the hash it names.
                    match q.quote.total {
                        STANDARD_TOTAL => {
                            assert_eq!(q.plugin_hash, std_hash);
                            seen[0] += 1;
                        }
                        SURGE_TOTAL => {
                            assert_eq!(q.plugin_hash, surge_hash);
                            seen[1] += 1;
                        }
                        other => panic!("a quote from no installed plugin: {other}"),
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                }
                seen
            })
        })
        .collect();

    for round in 0..10 {
        // A handle taken before the swap is a call in flight: it finishes on the old plugin.
        let in_flight = registry.pricing();
        let old_total = in_flight.quote(&golden_request()).unwrap().quote.total;
        let installed = registry
            .install_in_background(zhtp_artifacts::PRICING_SURGE.to_vec())
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(installed.hash, surge_hash);
        assert_eq!(
            in_flight.quote(&golden_request()).unwrap().quote.total,
            old_total
        );
        assert_eq!(
            registry.quote(&golden_request()).unwrap().quote.total,
            SURGE_TOTAL,
            "round {round}"
        );
        registry.rollback().unwrap();
        assert_eq!(
            registry.quote(&golden_request()).unwrap().quote.total,
            STANDARD_TOTAL
        );
    }
    stop.store(true, Ordering::Relaxed);
    let mut total_seen = 0;
    for w in workers {
        let seen = w.join().expect("a worker failed");
        total_seen += seen[0] + seen[1];
    }
    assert_eq!(total_seen, calls.load(Ordering::Relaxed));
    assert!(total_seen > 0);
}

#[test]
fn installed_plugins_persist_and_roll_back_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Registry::open(
            host(),
            Some(dir.path().join("plugins")),
            zhtp_artifacts::PRICING_STANDARD,
        )
        .unwrap()
    };

    let r = open();
    assert!(matches!(
        r.rollback(),
        Err(RegistryError::NoPrevious("pricing"))
    ));
    r.install(zhtp_artifacts::PRICING_SURGE).unwrap();
    drop(r);

    let r = open();
    assert_eq!(r.quote(&golden_request()).unwrap().quote.total, SURGE_TOTAL);
    assert!(
        r.slot().previous.is_some(),
        "the builtin was kept for rollback"
    );
    r.rollback().unwrap();
    drop(r);

    let r = open();
    assert_eq!(
        r.quote(&golden_request()).unwrap().quote.total,
        STANDARD_TOTAL
    );
    // A refused install changes nothing, in memory or on disk.
    assert!(r.install(b"\0asm\x01\0\0\0junk").is_err());
    drop(r);
    let r = open();
    assert_eq!(
        r.quote(&golden_request()).unwrap().quote.total,
        STANDARD_TOTAL
    );
    assert_eq!(
        r.slot().previous.unwrap().plugin().info().name,
        "pricing-surge@0.1.0"
    );
}

#[test]
fn tampered_plugin_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let r = Registry::open(
        host(),
        Some(plugins.clone()),
        zhtp_artifacts::PRICING_STANDARD,
    )
    .unwrap();
    let info = r.install(zhtp_artifacts::PRICING_SURGE).unwrap();
    drop(r);
    let file = plugins.join("pricing").join(format!("{}.wasm", info.hash));
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let err = Registry::open(host(), Some(plugins), zhtp_artifacts::PRICING_STANDARD).unwrap_err();
    assert!(err.to_string().contains("does not match its hash"), "{err}");
}

#[test]
fn compile_cache_hits_in_memory_and_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let limits = zhtp_host::Limits::default();
    let host = zhtp_host::Host::with_cache_dir(limits.clone(), Some(dir.path().into())).unwrap();
    let first = host
        .load(zhtp_host::Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
        .unwrap();
    let again = host
        .load(zhtp_host::Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
        .unwrap();
    let s = host.cache().stats();
    assert_eq!((s.misses, s.memory_hits, s.disk_hits), (1, 1, 0));
    // Found by its bytes: the second plugin shares the first one's copy of them.
    assert!(std::ptr::eq(first.wasm(), again.wasm()));

    // A memory hit compares bytes: a module of the same length that differs in one byte is
    // another module, with its own hash, compiled on its own.
    let mut other = zhtp_artifacts::PRICING_STANDARD.to_vec();
    let at = other
        .windows(8)
        .position(|w| w == b"pricing-")
        .expect("the plugin names itself");
    other[at] = b'P';
    let p = host.load(zhtp_host::Kind::Pricing, &other).unwrap();
    assert_eq!(p.info().hash.as_bytes(), blake3::hash(&other).as_bytes());
    let s = host.cache().stats();
    assert_eq!((s.misses, s.memory_hits), (2, 1));

    // At most MAX_SEEN modules are found by their bytes: loading more forgets the oldest, which
    // is then found again by its hash (a memory hit of the compiled module, a new copy of the
    // bytes).
    for i in 0..zhtp_host::MAX_SEEN {
        let mut filler = other.clone();
        // Printable: the name may sit in `zhtp.meta`, which refuses control characters.
        filler[at + 1] = b'a' + (i / 26) as u8;
        filler[at + 2] = b'a' + (i % 26) as u8;
        host.load(zhtp_host::Kind::Pricing, &filler).unwrap();
    }
    let forgotten = host
        .load(zhtp_host::Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
        .unwrap();
    assert!(!std::ptr::eq(first.wasm(), forgotten.wasm()));
    assert_eq!(forgotten.info().hash, first.info().hash);

    // A new host (a restart) loads the artifact from disk instead of compiling.
    let host2 = zhtp_host::Host::with_cache_dir(limits.clone(), Some(dir.path().into())).unwrap();
    let p = host2
        .load(zhtp_host::Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
        .unwrap();
    assert_eq!(host2.cache().stats().disk_hits, 1);
    assert_serves(&zhtp_host::PricingPlugin::new(p));

    // A cache directory others may write to is not trusted: recompiled, never loaded.
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let modules = dir.path().join("modules-v1");
        std::fs::set_permissions(&modules, std::fs::Permissions::from_mode(0o777)).unwrap();
        let host =
            zhtp_host::Host::with_cache_dir(limits.clone(), Some(dir.path().into())).unwrap();
        host.load(zhtp_host::Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
            .unwrap();
        assert_eq!(
            (host.cache().stats().disk_hits, host.cache().stats().misses),
            (0, 1)
        );
        std::fs::set_permissions(&modules, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    // A corrupted artifact is detected and recompiled, never loaded.
    for entry in std::fs::read_dir(dir.path().join("modules-v1")).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
    }
    let host3 = zhtp_host::Host::with_cache_dir(limits, Some(dir.path().into())).unwrap();
    let p = host3
        .load(zhtp_host::Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
        .unwrap();
    assert_eq!(host3.cache().stats().misses, 1);
    assert_serves(&zhtp_host::PricingPlugin::new(p));
}
