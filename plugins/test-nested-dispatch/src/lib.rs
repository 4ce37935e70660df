//! A test guest, not a pricing model: its plugin function calls the SDK's `dispatch` again,
//! which the `#[plugin]` attribute already called. The SDK keeps a call's message buffers in
//! statics, so a nested `dispatch` must be refused before it touches them (or reads the input,
//! or runs its function). The quote says whether it was: `tests/sdk_memory.rs` checks it.
#![no_std]

extern crate alloc;

use core::sync::atomic::{AtomicBool, Ordering};

use zhtp_sdk::pricing::{Quote, QuoteRequest};

/// Set if the nested call's function ever runs.
static NESTED_RAN: AtomicBool = AtomicBool::new(false);

#[zhtp_sdk::plugin(pricing)]
pub fn quote(_req: QuoteRequest) -> Result<Quote, &'static str> {
    let status = zhtp_sdk::__private::dispatch(|_: QuoteRequest| {
        NESTED_RAN.store(true, Ordering::Relaxed);
        Ok::<_, &'static str>(answer())
    });
    if NESTED_RAN.load(Ordering::Relaxed) {
        return Err("a nested dispatch ran its function");
    }
    if status != 1 {
        return Err("a nested dispatch was not refused with status 1");
    }
    Ok(answer())
}

fn answer() -> Quote {
    Quote {
        base: 7,
        quality_premium: 0,
        network_fee: 0,
        escrow_fee: 0,
        max_bonus: 0,
        total: 7,
        adjustments: alloc::vec![],
    }
}
