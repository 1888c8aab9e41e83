//! The global allocator: musl's mallocng, and Doug Lea's malloc (the
//! dlmalloc crate) for a process that has said it ends soon
//! ([`short_lived`]).
//!
//! mallocng unmaps a group of slots as soon as its last slot is freed and
//! maps a fresh one at the next allocation of that size: `vserver NAME
//! exec` paid six mmap+munmap pairs (6.6 us each here) and mallocng's
//! slower paths, 70 us of its 1.8 ms. dlmalloc keeps what is freed in its
//! segments (64 KiB and up) for the next allocation, which is right for a
//! process about to end, and wrong for one that stays: a guest's init,
//! forked from `vserver NAME start` and kept for the guest's life, would
//! keep the dirty pages of everything its parent freed (20 KiB more PSS
//! each, measured). So mallocng stays the default, and a process switches
//! once, early; what was allocated before is freed where it came from:
//! dlmalloc's memory is known by the address ranges it mapped.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many ranges dlmalloc may have mapped at once (its segments: 64 KiB
/// and up, a large allocation making one of its size). Past that it is
/// refused memory, and the allocation comes from mallocng.
const MAX_REGIONS: usize = 32;

/// The memory dlmalloc asks for: anonymous mappings (as the crate's own
/// would be), each noted so [`Heap`] knows who frees what.
struct Regions {
    /// [start, end) of each mapping; (0, 0) is a free slot.
    spans: [Cell<(usize, usize)>; MAX_REGIONS],
}

impl Regions {
    const fn new() -> Regions {
        Regions {
            spans: [const { Cell::new((0, 0)) }; MAX_REGIONS],
        }
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        self.spans.iter().any(|s| {
            let (start, end) = s.get();
            start <= p && p < end
        })
    }

    fn note(&self, old: usize, span: (usize, usize)) {
        if let Some(s) = self.spans.iter().find(|s| s.get().0 == old) {
            s.set(span);
        }
    }

    /// [start, end) is unmapped now. dlmalloc joins a new mapping that
    /// touches a segment onto it (sys_alloc), and then gives both back in
    /// one call: every noted range is cut to what lies outside. Gives how
    /// many more ranges are noted now (negative: fewer).
    fn release(&self, start: usize, end: usize) -> isize {
        let mut change = 0;
        for s in &self.spans {
            let (a, b) = s.get();
            if (a, b) == (0, 0) || b <= start || end <= a {
                continue;
            }
            let left = (a < start).then_some((a, start));
            let right = (end < b).then_some((end, b));
            match (left, right) {
                (Some(l), Some(r)) => {
                    // A hole in the middle: the right part takes a free
                    // slot; with none left the range stays whole, which
                    // only leaves frees there to dlmalloc, as before.
                    if let Some(free) = self.spans.iter().find(|f| f.get() == (0, 0)) {
                        s.set(l);
                        free.set(r);
                        change += 1;
                    }
                }
                (Some(part), None) | (None, Some(part)) => s.set(part),
                (None, None) => {
                    s.set((0, 0));
                    change -= 1;
                }
            }
        }
        change
    }
}

// SAFETY: mmap, mremap and munmap of anonymous private memory, only of
// the ranges this type mapped itself (dlmalloc passes back what alloc
// gave it); every range is noted in `spans` while mapped. Only used under
// the allocator's lock (Heap), so the Cells are never shared between
// threads at once.
unsafe impl dlmalloc::Allocator for Regions {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        let Some(slot) = self.spans.iter().find(|s| s.get() == (0, 0)) else {
            return (std::ptr::null_mut(), 0, 0);
        };
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a fresh anonymous mapping; nothing else is touched.
        let addr = unsafe { libc::mmap(std::ptr::null_mut(), size, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
        if addr == libc::MAP_FAILED {
            return (std::ptr::null_mut(), 0, 0);
        }
        slot.set((addr as usize, addr as usize + size));
        count(1);
        (addr.cast(), size, 0)
    }

    fn remap(&self, ptr: *mut u8, oldsize: usize, newsize: usize, can_move: bool) -> *mut u8 {
        let flags = if can_move { libc::MREMAP_MAYMOVE } else { 0 };
        // SAFETY: [ptr, ptr + oldsize) is a mapping of ours (see the impl).
        let addr = unsafe { libc::mremap(ptr.cast(), oldsize, newsize, flags) };
        if addr == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        self.note(ptr as usize, (addr as usize, addr as usize + newsize));
        addr.cast()
    }

    fn free_part(&self, ptr: *mut u8, oldsize: usize, newsize: usize) -> bool {
        // SAFETY: [ptr, ptr + oldsize) is a mapping of ours; it shrinks in
        // place (no MREMAP_MAYMOVE).
        let done = unsafe { libc::mremap(ptr.cast(), oldsize, newsize, 0) } != libc::MAP_FAILED
            // SAFETY: the tail of that mapping, which dlmalloc gives up.
            || unsafe { libc::munmap(ptr.add(newsize).cast(), oldsize - newsize) } == 0;
        if done {
            count(self.release(ptr as usize + newsize, ptr as usize + oldsize));
        }
        done
    }

    fn free(&self, ptr: *mut u8, size: usize) -> bool {
        // SAFETY: [ptr, ptr + size) is a whole mapping of ours.
        let done = unsafe { libc::munmap(ptr.cast(), size) } == 0;
        if done {
            count(self.release(ptr as usize, ptr as usize + size));
        }
        done
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        true
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        4096
    }
}

/// dlmalloc's state; only touched with [`LOCKED`] held.
static mut DLMALLOC: dlmalloc::Dlmalloc<Regions> = dlmalloc::Dlmalloc::new_with_allocator(Regions::new());
/// The lock around [`DLMALLOC`]: a spin lock. vsbox's threads (vps's /proc
/// readers) are few and brief. sys::fork and fork_into hold it across the
/// fork ([`Forking`]), so a child never inherits it held by a thread that
/// is not there, nor dlmalloc's state half changed.
static LOCKED: AtomicBool = AtomicBool::new(false);
/// New allocations come from dlmalloc ([`short_lived`]).
static SHORT_LIVED: AtomicBool = AtomicBool::new(false);
/// How many ranges dlmalloc has mapped: while none, every free is
/// mallocng's, without the lock.
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// Adds `change` to [`MAPPED`].
fn count(change: isize) {
    if change > 0 {
        MAPPED.fetch_add(change.unsigned_abs(), Ordering::Relaxed);
    } else if change < 0 {
        MAPPED.fetch_sub(change.unsigned_abs(), Ordering::Relaxed);
    }
}

struct Held;

impl Drop for Held {
    fn drop(&mut self) {
        LOCKED.store(false, Ordering::Release);
    }
}

fn lock() -> Held {
    while LOCKED
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
    Held
}

/// The allocator's lock, held across a fork(2) by the forking thread and
/// released in parent and child when dropped (what pthread_atfork does
/// for musl's own malloc).
pub struct Forking {
    _held: Held,
}

/// Takes the lock for a fork: see [`Forking`].
pub fn forking() -> Forking {
    Forking { _held: lock() }
}

/// dlmalloc, locked.
fn dl() -> (Held, &'static mut dlmalloc::Dlmalloc<Regions>) {
    let held = lock();
    // SAFETY: the lock is held until the returned guard drops, and the
    // reference is used only meanwhile (by the callers below).
    (held, unsafe { &mut *std::ptr::addr_of_mut!(DLMALLOC) })
}

/// Whether dlmalloc gave out `ptr` (nothing to ask while it mapped none).
fn from_dl(ptr: *mut u8) -> bool {
    MAPPED.load(Ordering::Relaxed) != 0 && dl().1.allocator().owns(ptr)
}

/// The allocator every Rust allocation of vsbox goes through.
pub struct Heap;

// SAFETY: each block is freed or resized by the allocator that gave it
// out (dlmalloc's are inside the ranges it mapped, no mallocng block
// is); dlmalloc is only used under its lock; both return memory of the
// size and alignment asked for, or null.
impl Heap {
    /// A new block of `layout`, zeroed when `zeroed`: dlmalloc's while
    /// this process is short-lived and dlmalloc has room, else mallocng's.
    ///
    /// # Safety
    /// As [`GlobalAlloc::alloc`]: `layout` has a non-zero size.
    unsafe fn new_block(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        if SHORT_LIVED.load(Ordering::Relaxed) {
            let (_held, dl) = dl();
            // SAFETY: dlmalloc under its lock, with the caller's layout.
            let p = unsafe {
                match zeroed {
                    true => dl.calloc(layout.size(), layout.align()),
                    false => dl.malloc(layout.size(), layout.align()),
                }
            };
            if !p.is_null() {
                return p;
            }
        }
        // SAFETY: the caller's layout, passed on.
        unsafe {
            match zeroed {
                true => System.alloc_zeroed(layout),
                false => System.alloc(layout),
            }
        }
    }
}

unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.new_block(layout, false) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.new_block(layout, true) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if MAPPED.load(Ordering::Relaxed) != 0 {
            let (_held, dl) = dl();
            if dl.allocator().owns(ptr) {
                // SAFETY: dlmalloc's block, of this layout.
                return unsafe { dl.free(ptr, layout.size(), layout.align()) };
            }
        }
        // SAFETY: mallocng's block, of this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if from_dl(ptr) {
            // SAFETY: dlmalloc's block, of this layout; null leaves it be.
            let p = unsafe { dl().1.realloc(ptr, layout.size(), layout.align(), new_size) };
            if !p.is_null() {
                return p;
            }
        } else if !SHORT_LIVED.load(Ordering::Relaxed) {
            // SAFETY: mallocng's block, of this layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Moved to the other allocator: a new block, the contents, the old
        // block freed by its own.
        // SAFETY: new_size and the old alignment make a valid layout (the
        // caller's contract for realloc).
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a valid layout (above).
        let p = unsafe { self.alloc(new) };
        if !p.is_null() {
            // SAFETY: both blocks hold at least the smaller size, and are
            // distinct allocations.
            unsafe { std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size)) };
            // SAFETY: the old block, of its layout.
            unsafe { self.dealloc(ptr, layout) };
        }
        p
    }
}

#[global_allocator]
static HEAP: Heap = Heap;

/// Says this process ends soon (a command entering a guest, an
/// administration tool): what it allocates from now on comes from
/// dlmalloc, which keeps freed memory for the next allocation instead of
/// giving it back to the kernel at once. Not for a process that forks one
/// that stays (a guest's init): that one would keep the dirty pages.
pub fn short_lived() {
    SHORT_LIVED.store(true, Ordering::Relaxed);
}

/// Says this process stays (one forked from a short-lived one to serve
/// on, as vsbox-watch): new allocations come from mallocng again.
pub fn long_lived() {
    SHORT_LIVED.store(false, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks cross from one allocator to the other and back, grown,
    /// shrunk and freed by whichever gave them out; other tests allocate
    /// meanwhile, on their threads.
    #[test]
    fn blocks_move_between_the_allocators_intact() {
        let pattern = |n: usize| (0..n).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>();
        let before: Vec<Vec<u8>> = (1..40).map(|i| pattern(i * 97)).collect();
        short_lived();
        let mut grown: Vec<Vec<u8>> = before.clone();
        for (i, v) in grown.iter_mut().enumerate() {
            v.extend(pattern(i * 300 + 5000));
        }
        let during: Vec<Vec<u8>> = (1..40).map(|i| pattern(i * 131)).collect();
        let big = pattern(600 * 1024);
        assert!(
            from_dl(during[3].as_ptr().cast_mut()),
            "a block made while short-lived is dlmalloc's"
        );
        assert!(!from_dl(before[3].as_ptr().cast_mut()), "a block made before is mallocng's");
        long_lived();
        // dlmalloc's blocks, resized now that new ones are mallocng's.
        let mut shrunk = during;
        for v in &mut shrunk {
            v.truncate(10);
            v.shrink_to_fit();
        }
        for (i, v) in before.iter().enumerate() {
            assert_eq!(*v, pattern((i + 1) * 97));
            assert_eq!(grown[i][..v.len()], v[..]);
            assert_eq!(grown[i][v.len()..], pattern(i * 300 + 5000)[..]);
            assert_eq!(shrunk[i], pattern((i + 1) * 131)[..10]);
        }
        assert_eq!(big, pattern(600 * 1024));
        drop((before, grown, shrunk, big));
    }

    /// dlmalloc gives back, in one call, a segment it grew by joining a
    /// mapping made next to it: both noted ranges go; a part given back
    /// leaves the rest noted, a hole in a range leaves both sides.
    #[test]
    fn what_dlmalloc_gives_back_is_no_longer_its_own() {
        let r = Regions::new();
        let (a, b, c) = (0x10_0000usize, 0x11_0000usize, 0x12_0000usize);
        r.spans[0].set((b, c));
        r.spans[1].set((a, b)); // mapped below, joined onto the segment
        assert!(r.owns(a as *mut u8) && r.owns((c - 1) as *mut u8));
        assert_eq!(r.release(a, c), -2);
        assert!(!r.owns(a as *mut u8) && !r.owns(b as *mut u8));
        r.spans[0].set((a, c));
        assert_eq!(r.release(b, c), 0);
        assert!(r.owns(a as *mut u8) && !r.owns(b as *mut u8));
        r.spans[0].set((a, c));
        assert_eq!(r.release(a + 0x1000, b), 1);
        assert!(r.owns(a as *mut u8) && !r.owns((a + 0x1000) as *mut u8) && r.owns(b as *mut u8));
        assert_eq!(r.release(0, usize::MAX), -2);
        assert!(r.spans.iter().all(|s| s.get() == (0, 0)));
    }
}
