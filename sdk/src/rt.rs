//! Guest runtime for wasm32: allocator and panic handler.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

const PAGE: usize = 65_536;

/// A bump allocator. Plugins are short calls over small messages, so freeing is not worth its
/// code: the whole heap is released at the start of the next call ([`reset_heap`]). That also
/// guarantees a pooled instance carries no heap state from one call into the next.
struct Bump;

// wasm32 without the threads proposal is single-threaded: relaxed atomics compile to plain
// loads and stores and need no `static mut`.
static NEXT: AtomicUsize = AtomicUsize::new(0);
static END: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" {
    static __heap_base: u8;
}

fn heap_base() -> usize {
    // `__heap_base` is a linker-provided symbol; only its address is taken (no read).
    core::ptr::addr_of!(__heap_base) as usize
}

pub(crate) fn reset_heap() {
    NEXT.store(heap_base(), Ordering::Relaxed);
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
        start as *mut u8
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
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
