//! The SDK's allocator is sound on a reused instance: an allocation kept across calls (a
//! `Box::leak`, a lazily built static) is never handed out again, and calls that free what they
//! allocate do not grow the heap. `plugins/test-kept-allocation` keeps 4 KiB filled with a
//! pattern from its first call and, on every call, allocates 8 KiB of another pattern before
//! checking the kept bytes; its quote's `max_bonus` is its memory size in pages.

use zhtp_host::{Kind, PricingPlugin};
use zhtp_tests::{golden_request, host};

#[test]
fn an_allocation_kept_across_calls_is_never_reused_and_the_heap_does_not_grow() {
    let host = host();
    let plugin = PricingPlugin::new(
        host.load(Kind::Pricing, zhtp_artifacts::TEST_KEPT_ALLOCATION)
            .expect("the test guest loads"),
    );
    let mut pages = None;
    for call in 0..500 {
        // Calls one after another take the same pooled instance.
        let q = plugin
            .quote_only(&golden_request())
            .unwrap_or_else(|e| panic!("call {call}: {e}"));
        assert_eq!(
            plugin.plugin().idle_instances(),
            1,
            "call {call} used a new instance"
        );
        match pages {
            None => pages = Some(q.max_bonus),
            Some(p) => assert_eq!(q.max_bonus, p, "call {call} grew the guest's memory"),
        }
    }
}
