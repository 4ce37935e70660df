//! The SDK is sound on a reused instance. Its allocator never hands out again an allocation
//! kept across calls (a `Box::leak`, a lazily built static), and calls that free what they
//! allocate do not grow the heap: `plugins/test-kept-allocation` keeps 4 KiB filled with a
//! pattern from its first call and, on every call, allocates 8 KiB of another pattern before
//! checking the kept bytes; its quote's `max_bonus` is its memory size in pages. Its message
//! buffers, statics, cannot be reached twice (`plugins/test-nested-dispatch`).

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

/// The SDK keeps a call's message buffers in statics (no zeroing per call); a plugin function
/// that calls `dispatch` itself is refused before the nested call reaches them, and the outer
/// call answers as if nothing happened. `plugins/test-nested-dispatch` reports otherwise as a
/// refusal.
#[test]
fn a_dispatch_inside_a_plugin_function_is_refused_and_the_call_goes_on() {
    let host = host();
    let plugin = PricingPlugin::new(
        host.load(Kind::Pricing, zhtp_artifacts::TEST_NESTED_DISPATCH)
            .expect("the test guest loads"),
    );
    for call in 0..3 {
        let q = plugin
            .quote_only(&golden_request())
            .unwrap_or_else(|e| panic!("call {call}: {e}"));
        assert_eq!((q.base, q.total), (7, 7), "call {call}");
    }
    assert_eq!(
        plugin.plugin().idle_instances(),
        1,
        "one instance served every call"
    );
}
