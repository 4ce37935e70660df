//! One quote through the pricing plugin (warm, pooled instance; postcard in and out) against
//! the same function called natively and against a bare wasmtime call that writes and reads
//! guest memory directly; plus instance creation with the pooling allocator and compile-cache
//! hits. Prints a ratio table measured in the same run.
//!
//! `cargo bench -p zhtp-plugin-benches --bench plugin_call` (builds without the node: no RocksDB)

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group};
use wasmtime::{Instance, Module, Store, TypedFunc};
use zhtp_host::abi::pricing::QuoteRequest;
use zhtp_host::{Host, Kind, Limits, PricingPlugin};
use zhtp_plugin_benches::ns_per_call;
use zhtp_types::StorageTier;

/// The reference: the host writes a 12-byte request into guest memory, calls an export that
/// copies 48 bytes of answer, and reads them back. No ABI, no postcard, no validation.
const RAW: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "f") (param $len i32) (result i32)
    (memory.copy (i32.const 1024) (i32.const 0) (local.get $len))
    (i32.const 48)))"#;

/// The reference for the ABI's shape: the same copy, but the guest fetches its input and hands
/// back its answer through two host calls, as every v1 plugin does (`input_read`,
/// `output_set`). What this costs over [`RAW`] is wasmtime's price for two host calls, which no
/// host of this ABI can avoid.
const RAW_CALLS: &str = r#"(module
  (import "h" "read" (func $read (param i32 i32) (result i32)))
  (import "h" "write" (func $write (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "f") (result i32)
    (local $len i32)
    (local.set $len (call $read (i32.const 0) (i32.const 64)))
    (memory.copy (i32.const 1024) (i32.const 0) (local.get $len))
    (call $write (i32.const 1024) (i32.const 48))))"#;

/// The host side of [`RAW_CALLS`]: an input and an output register, no checks beyond wasmtime's.
struct Regs {
    memory: Option<wasmtime::Memory>,
    input: Vec<u8>,
    output: Vec<u8>,
}

struct RawCalls {
    store: Store<Regs>,
    f: TypedFunc<(), i32>,
}

impl RawCalls {
    fn new(host: &Host) -> Self {
        let module = Module::new(host.engine(), wat::parse_str(RAW_CALLS).unwrap()).unwrap();
        let mut linker = wasmtime::Linker::<Regs>::new(host.engine());
        linker
            .func_wrap(
                "h",
                "read",
                |mut c: wasmtime::Caller<'_, Regs>, ptr: i32, len: i32| -> i32 {
                    let mem = c.data().memory.unwrap();
                    let (data, regs) = mem.data_and_store_mut(&mut c);
                    let n = regs.input.len().min(len as usize);
                    data[ptr as usize..][..n].copy_from_slice(&regs.input[..n]);
                    n as i32
                },
            )
            .unwrap();
        linker
            .func_wrap(
                "h",
                "write",
                |mut c: wasmtime::Caller<'_, Regs>, ptr: i32, len: i32| -> i32 {
                    let mem = c.data().memory.unwrap();
                    let (data, regs) = mem.data_and_store_mut(&mut c);
                    regs.output.clear();
                    regs.output
                        .extend_from_slice(&data[ptr as usize..][..len as usize]);
                    0
                },
            )
            .unwrap();
        let regs = Regs {
            memory: None,
            input: Vec::new(),
            output: Vec::new(),
        };
        let mut store = Store::new(host.engine(), regs);
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = linker.instantiate(&mut store, &module).unwrap();
        store.data_mut().memory = instance.get_memory(&mut store, "memory");
        let f = instance.get_typed_func(&mut store, "f").unwrap();
        Self { store, f }
    }

    fn call(&mut self, input: &[u8], out: &mut [u8; 48]) {
        let regs = self.store.data_mut();
        regs.input.clear();
        regs.input.extend_from_slice(input);
        self.f.call(&mut self.store, ()).unwrap();
        out.copy_from_slice(&self.store.data().output);
    }
}

struct Raw {
    store: Store<()>,
    memory: wasmtime::Memory,
    f: TypedFunc<i32, i32>,
}

impl Raw {
    fn new(host: &Host, module: &Module) -> Self {
        let mut store = Store::new(host.engine(), ());
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = Instance::new(&mut store, module, &[]).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        let f = instance.get_typed_func(&mut store, "f").unwrap();
        Self { store, memory, f }
    }

    fn call(&mut self, input: &[u8], out: &mut [u8; 48]) {
        self.memory.write(&mut self.store, 0, input).unwrap();
        let n = self.f.call(&mut self.store, input.len() as i32).unwrap();
        self.memory
            .read(&self.store, 1024, &mut out[..n as usize])
            .unwrap();
    }
}

fn request() -> QuoteRequest {
    QuoteRequest::new(1_000_000_000, 1, StorageTier::Warm, true)
}

fn setup() -> (Host, PricingPlugin, Module) {
    let host = Host::new(Limits::default()).unwrap();
    let plugin = PricingPlugin::new(
        host.load(Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
            .unwrap(),
    );
    let raw = Module::new(host.engine(), wat::parse_str(RAW).unwrap()).unwrap();
    (host, plugin, raw)
}

fn benches(c: &mut Criterion) {
    let (host, plugin, raw_module) = setup();
    let req = request();
    let input = postcard::to_allocvec(&req).unwrap();

    let mut g = c.benchmark_group("quote");
    g.bench_function("native", |b| {
        b.iter(|| pricing_standard::quote(black_box(req.clone())).unwrap())
    });
    g.bench_function("plugin_warm", |b| {
        b.iter(|| plugin.quote_only(black_box(&req)).unwrap())
    });
    let mut raw = Raw::new(&host, &raw_module);
    let mut out = [0u8; 48];
    g.bench_function("raw_wasmtime", |b| {
        b.iter(|| raw.call(black_box(&input), &mut out))
    });
    let mut raw_calls = RawCalls::new(&host);
    g.bench_function("raw_wasmtime_two_host_calls", |b| {
        b.iter(|| raw_calls.call(black_box(&input), &mut out))
    });
    g.finish();

    let mut g = c.benchmark_group("instance");
    g.bench_function("raw_instantiate_pooled", |b| {
        b.iter(|| Raw::new(&host, &raw_module))
    });
    let cold = Host::new(Limits::default().with_pool_size(0)).unwrap();
    let cold_plugin = PricingPlugin::new(
        cold.load(Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
            .unwrap(),
    );
    g.bench_function("plugin_fresh_instance_and_quote", |b| {
        b.iter(|| cold_plugin.quote_only(black_box(&req)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("load");
    g.bench_function("cache_hit_memory", |b| {
        b.iter(|| {
            host.load(Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
                .unwrap()
        })
    });
    g.bench_function("cache_hit_memory_and_first_quote", |b| {
        b.iter(|| load_and_quote(&host, &req))
    });
    let dir = tempfile_dir();
    let disk_host = Host::with_cache_dir(Limits::default(), Some(dir.clone())).unwrap();
    disk_host
        .load(Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
        .unwrap();
    g.bench_function("cache_hit_disk", |b| {
        b.iter(|| {
            disk_host.cache().clear_memory();
            disk_host
                .load(Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
                .unwrap()
        })
    });
    g.sample_size(10);
    g.bench_function("compile_miss", |b| {
        b.iter(|| Module::new(host.engine(), zhtp_artifacts::PRICING_STANDARD).unwrap())
    });
    g.finish();
    let _ = std::fs::remove_dir_all(dir);
}

/// A plugin loaded from the compile cache's memory and its first quote (on a new instance).
fn load_and_quote(host: &Host, req: &QuoteRequest) {
    let plugin = PricingPlugin::new(
        host.load(Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
            .unwrap(),
    );
    black_box(plugin.quote_only(black_box(req)).unwrap());
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("zhtp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The ratio table: the three quote paths timed back to back in this run.
fn summary() {
    let (host, plugin, raw_module) = setup();
    let req = request();
    let input = postcard::to_allocvec(&req).unwrap();
    let mut raw = Raw::new(&host, &raw_module);
    let mut out = [0u8; 48];
    let native = ns_per_call(15, 200_000, || {
        black_box(pricing_standard::quote(black_box(req.clone())).unwrap());
    });
    let via_plugin = ns_per_call(15, 50_000, || {
        black_box(plugin.quote_only(black_box(&req)).unwrap());
    });
    let bare = ns_per_call(15, 200_000, || raw.call(black_box(&input), &mut out));
    let mut raw_calls = RawCalls::new(&host);
    let two_calls = ns_per_call(15, 200_000, || raw_calls.call(black_box(&input), &mut out));
    let fixed = PricingPlugin::new(
        host.load(
            Kind::Pricing,
            &wat::parse_str(include_str!("../../tests/fixtures/compat-v1.wat")).unwrap(),
        )
        .unwrap(),
    );
    let fixed_ns = ns_per_call(15, 100_000, || {
        black_box(fixed.quote_only(black_box(&req)).unwrap());
    });
    let raw_instance = ns_per_call(15, 2_000, || {
        black_box(Raw::new(&host, &raw_module));
    });
    let cold = Host::new(Limits::default().with_pool_size(0)).unwrap();
    let cold_plugin = PricingPlugin::new(
        cold.load(Kind::Pricing, zhtp_artifacts::PRICING_STANDARD)
            .unwrap(),
    );
    let fresh = ns_per_call(15, 2_000, || {
        black_box(cold_plugin.quote_only(black_box(&req)).unwrap());
    });
    let first = ns_per_call(15, 2_000, || load_and_quote(&host, &req));
    println!("\nquote path                        ns/call   ratio");
    println!("native pricing_standard::quote   {native:>8.1}   1.0x native");
    println!(
        "bare wasmtime (write/call/read)  {bare:>8.1}   {:.1}x native",
        bare / native
    );
    println!(
        "bare wasmtime + 2 host calls     {two_calls:>8.1}   {:.2}x bare wasmtime (the v1 ABI's shape)",
        two_calls / bare
    );
    println!(
        "zhtp ABI floor (fixed answer)    {fixed_ns:>8.1}   {:.2}x bare wasmtime, {:.2}x with 2 host calls",
        fixed_ns / bare,
        fixed_ns / two_calls
    );
    println!(
        "zhtp plugin (ABI + v1 codec)     {via_plugin:>8.1}   {:.1}x native, {:.2}x bare wasmtime, {:.2}x with 2 host calls, {:.1}x faster than Extism's ~3200 ns",
        via_plugin / native,
        via_plugin / bare,
        via_plugin / two_calls,
        3200.0 / via_plugin
    );
    println!("\nsetup                                   µs");
    println!(
        "raw wasmtime instance (pooling)    {:>8.2}",
        raw_instance / 1e3
    );
    println!(
        "new plugin instance + quote        {:>8.2}   (pool size 0)",
        fresh / 1e3
    );
    println!(
        "cache hit in memory + first quote  {:>8.2}   (Host::load, new instance)",
        first / 1e3
    );
    println!(
        "RUST_BACKTRACE={}",
        std::env::var("RUST_BACKTRACE").unwrap_or_else(|_| "<unset>".into())
    );
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}

fn main() {
    group();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
