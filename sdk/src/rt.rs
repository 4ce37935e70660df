//! Guest runtime for wasm32: allocator and panic handler.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

const PAGE: usize = 65_536;

/// A bump allocator that gives a call's memory back when the call has freed all of it.
///
/// Plugins are short calls over small messages: a bump pointer is the cheapest allocator there
/// is. Resetting it at every entry, as versions before 0.2 did, was unsound: an allocation that
/// outlives its call (`Box::leak`, a lazily built table kept in a static) was handed out again
/// by the next call while still in use — undefined behaviour from safe code. Now each call
/// records where the heap stood when it began (`MARK`) and counts its own allocations that are
/// still live (`LIVE`: allocated at or above the mark, not yet freed). At the next entry, if that
/// count is zero, nothing of the last call can still be in use and the heap goes back to the
/// mark; otherwise everything the last call allocated stays where it is, for good, and the
/// next call starts above it. Memory freed below the mark is never reused (a kept allocation
/// freed later is a small leak, never a double use). Freeing the allocation on top of the
/// heap (a `Vec` that grew last, then dropped) gives its bytes back at once.
struct Bump;

// wasm32 without the threads proposal is single-threaded: relaxed atomics compile to plain
// loads and stores and need no `static mut`.
static NEXT: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);
static MARK: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" {
    static __heap_base: u8;
}

fn heap_base() -> usize {
    // `__heap_base` is a linker-provided symbol; only its address is taken (no read).
    core::ptr::addr_of!(__heap_base) as usize
}

/// Called at every entry, before anything is allocated: releases what the previous call
/// allocated if it freed all of it, and marks where this call's allocations begin.
pub(crate) fn begin_call() {
    let mut next = NEXT.load(Ordering::Relaxed);
    if next == 0 {
        next = heap_base();
    }
    if LIVE.load(Ordering::Relaxed) == 0 {
        let mark = MARK.load(Ordering::Relaxed);
        if mark != 0 {
            next = mark;
        }
    }
    NEXT.store(next, Ordering::Relaxed);
    MARK.store(next, Ordering::Relaxed);
    LIVE.store(0, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut next = NEXT.load(Ordering::Relaxed);
        if next == 0 {
            next = heap_base();
        }
        let mut end = END.load(Ordering::Relaxed);
        if end == 0 {
            end = core::arch::wasm32::memory_size(0) * PAGE;
        }
        let start = (next + layout.align() - 1) & !(layout.align() - 1);
        let Some(stop) = start.checked_add(layout.size()) else {
            return core::ptr::null_mut();
        };
        if stop > end {
            let pages = (stop - end).div_ceil(PAGE);
            if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
                return core::ptr::null_mut();
            }
            end += pages * PAGE;
        }
        NEXT.store(stop, Ordering::Relaxed);
        END.store(end, Ordering::Relaxed);
        // Everything handed out lies at or above this call's mark (the heap only grows within
        // a call, and the mark is where it stood when the call began).
        LIVE.store(LIVE.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let at = ptr as usize;
        // Below the mark: an earlier call's allocation, kept for good (see the type's docs).
        if at < MARK.load(Ordering::Relaxed) {
            return;
        }
        LIVE.store(
            LIVE.load(Ordering::Relaxed).saturating_sub(1),
            Ordering::Relaxed,
        );
        // The top of the heap: nothing lies above it, so its bytes can be handed out again.
        if at + layout.size() == NEXT.load(Ordering::Relaxed) {
            NEXT.store(at, Ordering::Relaxed);
        }
    }
}

#[global_allocator]
static ALLOC: Bump = Bump;

/// Reports a panic through `abort` (code -1) with as much of the message as fits in 256 bytes.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    struct Buf {
        bytes: [u8; 256],
        len: usize,
    }
    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let n = s.len().min(self.bytes.len() - self.len);
            self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }
    let mut buf = Buf {
        bytes: [0; 256],
        len: 0,
    };
    let _ = write!(buf, "panic: {}", info.message());
    crate::host::abort(-1, &buf.bytes[..buf.len])
}
