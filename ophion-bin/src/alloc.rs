//! The server's global allocator: mimalloc (ADR 001) wrapped to count the
//! bytes in use, which is what the memory guard compares with its limit
//! (ADR 002). Resident memory is the wrong gauge for a guard: allocators
//! keep freed pages, so RSS can stay above a limit long after the data that
//! pushed it there is gone, and a guard reading RSS would refuse writes
//! forever.

#![allow(unsafe_code)]

use std::{
    alloc::{GlobalAlloc, Layout},
    sync::atomic::{AtomicIsize, Ordering::Relaxed},
};

#[cfg(not(feature = "system-alloc"))]
type Inner = mimalloc::MiMalloc;
#[cfg(feature = "system-alloc")]
type Inner = std::alloc::System;

static IN_USE: AtomicIsize = AtomicIsize::new(0);

/// An allocator that counts the bytes its callers hold.
pub struct Counting(Inner);

impl std::fmt::Debug for Counting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counting")
            .field("in_use", &in_use())
            .finish()
    }
}

impl Counting {
    /// The allocator: `#[global_allocator] static A: Counting = Counting::new();`.
    pub const fn new() -> Self {
        #[cfg(not(feature = "system-alloc"))]
        {
            Self(mimalloc::MiMalloc)
        }
        #[cfg(feature = "system-alloc")]
        {
            Self(std::alloc::System)
        }
    }
}

impl Default for Counting {
    fn default() -> Self {
        Self::new()
    }
}

/// Bytes allocated and not yet freed through [`Counting`]; `None` when it
/// is not the global allocator (nothing was ever counted).
pub fn in_use() -> Option<u64> {
    let n = IN_USE.load(Relaxed);
    (n > 0).then_some(n as u64)
}

/// Hands memory freed on the calling thread back to the OS now rather than
/// whenever the allocator next purges. For rare, large, short-lived
/// allocations: a password hash takes 19 MiB, which otherwise stayed
/// resident and doubled the idle server's RSS.
pub fn release_freed() {
    // SAFETY: `mi_collect` takes no pointers and may run on any thread at
    // any time; it only returns unused pages of mimalloc's own heaps.
    #[cfg(not(feature = "system-alloc"))]
    unsafe {
        libmimalloc_sys::mi_collect(true)
    }
}

// SAFETY: every method forwards to the inner allocator with the caller's
// arguments unchanged, so the inner allocator's guarantees hold; the only
// addition is a relaxed atomic counter update, which cannot allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received (see above).
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            IN_USE.fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as received.
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            IN_USE.fetch_add(layout.size() as isize, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { self.0.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size() as isize, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as received.
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            IN_USE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        p
    }
}
