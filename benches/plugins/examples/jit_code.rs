//! Writes the machine code the host's engine makes of a module, as an ELF object, so that
//! `objdump -d` shows what Cranelift did with a guest (same engine settings as the node).
//!
//! ```text
//! cargo run --release -p zhtp-plugin-benches --example jit_code -- IN.wasm OUT.elf
//! objdump -d OUT.elf | less     # functions are named wasm[0]::function[N]
//! ```

use zhtp_host::{Host, Limits};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(input), Some(output)) = (args.next(), args.next()) else {
        eprintln!("usage: jit_code IN.wasm OUT.elf");
        std::process::exit(2);
    };
    let host = Host::new(Limits::default()).unwrap();
    let wasm = std::fs::read(&input).expect("a .wasm file");
    let elf = host
        .engine()
        .precompile_module(&wasm)
        .expect("a valid module");
    std::fs::write(&output, elf).expect("a writable output path");
}
