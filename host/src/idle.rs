//! A plugin's idle instances: one in a lock-free slot, the rest behind a mutex.
//!
//! A warm call takes an instance and puts it back. Through a `Mutex` that is two lock round
//! trips, four atomic read-modify-writes: about 19 ns of a 90 ns call on the development VM
//! (`perf annotate` put a fifth of the ABI floor's samples on them). Single-threaded callers,
//! the common case, only ever need one idle instance, so the first lives in an `AtomicPtr`:
//! taking it is one swap and putting it back one compare-exchange. The mutex holds the
//! instances that concurrent calls bring back at the same time.
#![allow(unsafe_code)]

use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Up to `cap` idle values of `T`, handed out in no particular order.
pub(crate) struct Idle<T: Send> {
    /// Owns the `Box<T>` it points to, or is null.
    fast: AtomicPtr<T>,
    rest: Mutex<Vec<Box<T>>>,
    cap: usize,
}

impl<T: Send> Idle<T> {
    /// An empty pool that keeps at most `cap` values.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            fast: AtomicPtr::new(ptr::null_mut()),
            rest: Mutex::new(Vec::new()),
            cap,
        }
    }

    /// An idle value, if there is one.
    pub(crate) fn take(&self) -> Option<Box<T>> {
        // Acquire: the value's contents were published by the Release of `put`.
        let p = self.fast.swap(ptr::null_mut(), Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: a non-null pointer in `fast` came from `Box::into_raw` in `put`, and the
            // swap moved its ownership here: no other thread can have it.
            return Some(unsafe { Box::from_raw(p) });
        }
        self.lock().pop()
    }

    /// Keeps `value` for a later [`Self::take`], or drops it if `cap` values are idle already.
    pub(crate) fn put(&self, value: Box<T>) {
        if self.cap == 0 {
            return;
        }
        let p = Box::into_raw(value);
        match self
            .fast
            .compare_exchange(ptr::null_mut(), p, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) => {}
            Err(_) => {
                // SAFETY: the exchange failed, so `p` was not published: it is still ours.
                let value = unsafe { Box::from_raw(p) };
                let mut rest = self.lock();
                // The slot holds one more (or is about to be emptied by a taker): at most
                // `cap` in all.
                if rest.len() + 1 < self.cap {
                    rest.push(value);
                }
            }
        }
    }

    /// How many values are idle now (a snapshot: other threads may take or put meanwhile).
    pub(crate) fn len(&self) -> usize {
        let fast = usize::from(!self.fast.load(Ordering::Relaxed).is_null());
        self.lock().len() + fast
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Box<T>>> {
        // A plain Vec: a panic elsewhere cannot leave it inconsistent.
        self.rest.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T: Send> Drop for Idle<T> {
    /// Frees the value in the fast slot; `rest` drops its own.
    fn drop(&mut self) {
        let p = *self.fast.get_mut();
        if !p.is_null() {
            // SAFETY: as in `take`; `&mut self` means no other thread can reach the slot.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize};

    use super::*;

    /// Counts live values, so a leak or a double drop shows, and marks the one in use, so a
    /// value handed to two holders at once shows.
    struct Counted {
        live: Arc<AtomicUsize>,
        in_use: AtomicBool,
    }
    impl Counted {
        fn new(live: &Arc<AtomicUsize>) -> Box<Self> {
            live.fetch_add(1, Ordering::SeqCst);
            Box::new(Self {
                live: live.clone(),
                in_use: AtomicBool::new(false),
            })
        }
    }
    impl Drop for Counted {
        fn drop(&mut self) {
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn keeps_at_most_cap_and_drops_the_rest() {
        let live = Arc::new(AtomicUsize::new(0));
        let idle = Idle::new(3);
        for _ in 0..5 {
            idle.put(Counted::new(&live));
        }
        assert_eq!(idle.len(), 3);
        assert_eq!(live.load(Ordering::SeqCst), 3);
        let a = idle.take().unwrap();
        assert_eq!(idle.len(), 2);
        idle.put(a);
        assert_eq!(idle.len(), 3);
        drop(idle);
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "dropping the pool drops every value"
        );
    }

    #[test]
    fn cap_zero_keeps_nothing() {
        let live = Arc::new(AtomicUsize::new(0));
        let idle = Idle::new(0);
        idle.put(Counted::new(&live));
        assert_eq!(idle.len(), 0);
        assert!(idle.take().is_none());
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn threads_share_values_without_losing_or_duplicating_any() {
        let live = Arc::new(AtomicUsize::new(0));
        let idle = Arc::new(Idle::<Counted>::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (idle, live) = (idle.clone(), live.clone());
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        let v = idle.take().unwrap_or_else(|| Counted::new(&live));
                        assert!(
                            !v.in_use.swap(true, Ordering::SeqCst),
                            "one value handed out twice"
                        );
                        v.in_use.store(false, Ordering::SeqCst);
                        idle.put(v);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Every value ever made is either idle or was dropped when the pool was full.
        assert!(idle.len() <= 4);
        assert_eq!(live.load(Ordering::SeqCst), idle.len());
        drop(Arc::into_inner(idle).unwrap());
        assert_eq!(live.load(Ordering::SeqCst), 0);
    }
}
