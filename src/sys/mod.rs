//! The few system calls that neither std nor nix wraps. Every `unsafe`
//! block of the library lives here, each with its SAFETY argument; the
//! rest of the crate calls these safe functions, as `sys::NAME` whatever
//! file of this folder holds them: `caps` (capability sets), `filter`
//! (seccomp and its notifications, bpf(2)), `fs` (xattrs, mounts, openat2, statx,
//! FIEMAP, dedupe), `process` (forks, titles, limits, descriptors,
//! terminals), `signal` (handlers and signal numbers).

pub mod alloc;
mod caps;
mod filter;
mod fs;
mod process;
mod signal;

pub use caps::*;
pub use filter::*;
pub use fs::*;
pub use process::*;
pub use signal::*;

use nix::errno::Errno;
use std::ffi::CString;

fn cstr(s: &[u8]) -> Result<CString, Errno> {
    CString::new(s).map_err(|_| Errno::EINVAL)
}

fn check(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// prctl with integer arguments only.
fn prctl(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> Result<libc::c_long, Errno> {
    // SAFETY: every operation used here takes plain integers, no pointers.
    check(unsafe { libc::prctl(op, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) } as libc::c_long)
}
