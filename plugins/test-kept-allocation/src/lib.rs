//! A test guest, not a pricing model: it keeps one allocation across calls, as a lazily built
//! table in a static would, and checks on every call that nothing has written over it. Under
//! an allocator that reset its heap at every entry, the next call's allocations landed on the
//! kept bytes (undefined behaviour from safe code); `tests/sdk_memory.rs` runs it on one reused
//! instance. Its quote reports the guest's memory size in pages as `max_bonus`, so the test
//! also sees that calls which free what they allocate do not grow the heap.
#![no_std]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec;
use core::sync::atomic::{AtomicPtr, Ordering};

use zhtp_sdk::pricing::{Quote, QuoteRequest};

const PATTERN: u8 = 0xa5;
const KEPT: usize = 4096;

static KEPT_BYTES: AtomicPtr<[u8; KEPT]> = AtomicPtr::new(core::ptr::null_mut());

/// The allocation kept for good, made by the first call.
fn kept() -> &'static [u8; KEPT] {
    let p = KEPT_BYTES.load(Ordering::Relaxed);
    if p.is_null() {
        let b: &'static mut [u8; KEPT] = Box::leak(Box::new([PATTERN; KEPT]));
        KEPT_BYTES.store(b, Ordering::Relaxed);
        return b;
    }
    // SAFETY: `p` came from `Box::leak` above and is never freed or written through again.
    #[allow(unsafe_code)]
    unsafe {
        &*p
    }
}

fn memory_pages() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return core::arch::wasm32::memory_size(0) as u64;
    #[cfg(not(target_arch = "wasm32"))]
    0
}

/// Checks the kept bytes after allocating and filling twice their size.
#[zhtp_sdk::plugin(pricing)]
pub fn quote(_req: QuoteRequest) -> Result<Quote, &'static str> {
    let kept = kept();
    // This call's own allocations, filled with another pattern; `after` lies above `scratch`
    // and is freed last, so freeing the heap's top alone does not give `scratch` back: only
    // the release at the next entry does.
    let scratch = vec![!PATTERN; 2 * KEPT];
    let after = vec![0u8; 16];
    if kept.iter().any(|&b| b != PATTERN) {
        return Err("the allocation kept from an earlier call was overwritten");
    }
    let base = 1 + core::hint::black_box(&scratch).len() as u64;
    drop(scratch);
    drop(core::hint::black_box(after));
    Ok(Quote {
        base,
        quality_premium: 0,
        network_fee: 0,
        escrow_fee: 0,
        max_bonus: memory_pages(),
        total: base,
        adjustments: vec![],
    })
}
