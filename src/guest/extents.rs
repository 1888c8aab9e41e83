//! Blocks that files share (reflinks, deduplication): what a file really
//! costs on disk, and making identical files of two guests share their
//! blocks. Sharing is copy-on-write, so whoever writes to a shared file
//! gets blocks of its own; the other file never changes. It needs a file
//! system that shares extents (btrfs; xfs with reflink).

use crate::sys::{self, Extent, FIEMAP_EXTENT_LAST, FIEMAP_EXTENT_SHARED};
use nix::errno::Errno;
use std::fs::File;

/// Calls `f` for each extent of `file` in order, until it returns false.
fn each_extent(file: &File, mut f: impl FnMut(&Extent) -> bool) -> Result<(), Errno> {
    let mut at = 0u64;
    loop {
        let batch = sys::fiemap(file, at)?;
        let Some(last) = batch.last().copied() else { return Ok(()) };
        if !batch.iter().all(&mut f) || last.flags & FIEMAP_EXTENT_LAST != 0 {
            return Ok(());
        }
        at = last.logical + last.length.max(1);
    }
}

/// Bytes of `file` (of `allocated` bytes on disk) that no other file
/// shares. Where the file system cannot say, all of them.
pub fn unshared_bytes(file: &File, allocated: u64) -> u64 {
    let mut shared = 0u64;
    let counted = each_extent(file, |e| {
        if e.flags & FIEMAP_EXTENT_SHARED != 0 {
            shared += e.length;
        }
        true
    });
    match counted {
        Ok(()) => allocated.saturating_sub(shared),
        Err(_) => allocated,
    }
}

/// Whether any extent of `file` is shared with another file.
pub fn any_shared(file: &File) -> bool {
    let mut any = false;
    let _ = each_extent(file, |e| {
        any = e.flags & FIEMAP_EXTENT_SHARED != 0;
        !any
    });
    any
}

/// The most one request asks the kernel to compare and share (btrfs
/// caps each request at 16 MiB).
const STEP: u64 = 16 << 20;

/// Makes `dst` share the blocks of `src`, both `len` bytes long, where
/// the kernel finds their contents identical: Some(bytes now shared), or
/// None when they differ. Errors say the file system cannot (EOPNOTSUPP,
/// EXDEV), these extents cannot be shared (EINVAL) or the file may not
/// change (EPERM: immutable).
pub fn share(src: &File, dst: &File, len: u64) -> Result<Option<u64>, Errno> {
    let mut done = 0u64;
    while done < len {
        match sys::dedupe_range(src, dst, done, (len - done).min(STEP))? {
            Some(0) => return Err(Errno::EINVAL),
            Some(n) => done += n,
            None => return Ok(None),
        }
    }
    Ok(Some(done))
}

/// What the tree at `root` really costs on disk, in bytes: the blocks of
/// its regular files that have one link and that no other file shares
/// (hard-linked and shared blocks are paid for elsewhere, or together).
/// Directories, symlinks and devices count nothing; other file systems
/// mounted inside are not entered.
pub fn tree_cost(root: &std::path::Path) -> crate::error::Result<u64> {
    let mut total = 0u64;
    crate::guest::walk::files(root, &|_| true, &mut |f| {
        if f.stat.st_nlink == 1 && f.stat.st_blocks > 0 {
            total += unshared_bytes(f.file, f.stat.st_blocks as u64 * 512);
        }
        Ok(())
    })?;
    Ok(total)
}
