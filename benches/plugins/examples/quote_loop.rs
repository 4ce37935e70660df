//! Quotes in a loop, for `perf`: prints ns per quote and nothing else.
//!
//! ```text
//! cargo build --release -p zhtp-plugin-benches --features profiling --example quote_loop
//! ZHTP_WASM_PERFMAP=1 perf record -e cpu-clock -F 20000 target/release/examples/quote_loop std 5
//! perf report --no-children --sort symbol
//! ```
//!
//! Arguments: the plugin (`std` for the bundled pricing-standard, `fixed` for the ABI floor
//! fixture `tests/fixtures/compat-v1.wat`, or a path to a `.wasm`) and the seconds to run.
//! `FRESH=1` sets the pool size to 0: every quote on a new instance. `LOAD=1` loads the
//! plugin (a compile-cache hit in memory) before every quote, which then runs on a new
//! instance. With the `profiling` feature and `ZHTP_WASM_PERFMAP=1`, `perf` names guest code
//! `wasm[0]::function[N]`; N is the function's index counting imports, as in the module's
//! name section (build the plugin with `CARGO_PROFILE_RELEASE_STRIP=false` to keep it).

use std::hint::black_box;
use std::time::Instant;

use zhtp_host::abi::pricing::QuoteRequest;
use zhtp_host::{Host, Kind, Limits, PricingPlugin};
use zhtp_types::StorageTier;

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "std".into());
    let secs: f64 = args.next().map_or(5.0, |s| s.parse().expect("seconds"));
    let pool = if std::env::var_os("FRESH").is_some() {
        0
    } else {
        Limits::DEFAULT_POOL_SIZE
    };
    let host = Host::new(Limits::default().with_pool_size(pool)).unwrap();
    let wasm = match which.as_str() {
        "std" => zhtp_artifacts::PRICING_STANDARD.to_vec(),
        "fixed" => wat::parse_str(include_str!("../../../tests/fixtures/compat-v1.wat")).unwrap(),
        path => std::fs::read(path).expect("a .wasm file"),
    };
    let plugin = PricingPlugin::new(host.load(Kind::Pricing, &wasm).unwrap());
    let req = QuoteRequest::new(1_000_000_000, 1, StorageTier::Warm, true);
    if std::env::var_os("LOAD").is_some() {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed().as_secs_f64() < secs {
            for _ in 0..1_000 {
                let p = PricingPlugin::new(host.load(Kind::Pricing, &wasm).unwrap());
                black_box(p.quote_only(black_box(&req)).unwrap());
            }
            n += 1_000;
        }
        println!(
            "{:.1} ns/load+first quote",
            start.elapsed().as_nanos() as f64 / n as f64
        );
        return;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..10_000 {
            black_box(plugin.quote_only(black_box(&req)).unwrap());
        }
        n += 10_000;
    }
    println!(
        "{:.1} ns/quote",
        start.elapsed().as_nanos() as f64 / n as f64
    );
}
