//! A/B of two builds of a pricing plugin on one host, in one process: quotes through A, then
//! through B, 5,000 each, 200 times, and the median of the 200 ratios B/A with its quartiles.
//! On a noisy VM (identical binaries 470–935 ns/quote back to back) the alternation is what
//! makes a 5% difference visible; A against itself gives 0.98–1.06.
//!
//! `cargo bench -p zhtp-plugin-benches --bench plugin_ab -- /abs/A.wasm /abs/B.wasm` (cargo
//! runs it in `benches/plugins/`, so give absolute paths; `builtin` names the embedded
//! pricing-standard). Build B from a changed SDK or plugin with
//! `cd plugins && cargo build --release --target wasm32-unknown-unknown --target-dir /tmp/b -p pricing-standard`.

use std::hint::black_box;
use std::time::Instant;

use zhtp_host::abi::pricing::QuoteRequest;
use zhtp_host::{Host, Kind, Limits, PricingPlugin};
use zhtp_types::StorageTier;

fn main() {
    let files: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let host = Host::new(Limits::default()).expect("host");
    let load = |path: &str| {
        let wasm = if path == "builtin" {
            zhtp_artifacts::PRICING_STANDARD.to_vec()
        } else {
            std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        PricingPlugin::new(host.load(Kind::Pricing, &wasm).expect("loads"))
    };
    let a = load(files.first().map_or("builtin", String::as_str));
    let b = load(files.get(1).map_or("builtin", String::as_str));
    let req = QuoteRequest::new(1_000_000_000, 1, StorageTier::Warm, true);
    assert_eq!(
        a.quote_only(&req).expect("A quotes"),
        b.quote_only(&req).expect("B quotes"),
        "A and B must price alike"
    );
    let time = |p: &PricingPlugin| {
        let t = Instant::now();
        for _ in 0..5_000 {
            black_box(p.quote_only(black_box(&req)).unwrap());
        }
        t.elapsed().as_nanos() as f64 / 5_000.0
    };
    let (mut ta, mut tb, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..200 {
        let (x, y) = (time(&a), time(&b));
        ta.push(x);
        tb.push(y);
        ratio.push(y / x);
    }
    for v in [&mut ta, &mut tb, &mut ratio] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "A: min {:.0} ns, median {:.0} | B: min {:.0} ns, median {:.0} | B/A median {:.3} (quartiles {:.3}–{:.3})",
        ta[0], ta[100], tb[0], tb[100], ratio[100], ratio[50], ratio[150]
    );
}
