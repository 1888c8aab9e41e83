//! Capability sets: the bounding set and ambient set through prctl, and
//! capget/capset (which neither std nor nix wraps).

use super::{check, prctl};
use nix::errno::Errno;

pub fn capbset_read(cap: u32) -> Result<bool, Errno> {
    prctl(libc::PR_CAPBSET_READ, cap.into(), 0).map(|r| r == 1)
}

pub fn capbset_drop(cap: u32) -> Result<(), Errno> {
    prctl(libc::PR_CAPBSET_DROP, cap.into(), 0).map(drop)
}

pub fn ambient_is_set(cap: u32) -> Result<bool, Errno> {
    prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_IS_SET as libc::c_ulong, cap.into()).map(|r| r == 1)
}

pub fn ambient_clear_all() -> Result<(), Errno> {
    prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0).map(drop)
}

pub fn set_no_new_privs() -> Result<(), Errno> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map(drop)
}

/// The three per-process capability sets as 64-bit masks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

pub fn capget() -> Result<CapSets, Errno> {
    let mut hdr = CapHeader { version: CAP_V3, pid: 0 };
    let mut data = [CapData::default(); 2];
    // SAFETY: hdr and data are valid for the kernel's v3 layout (two words).
    check(unsafe { libc::syscall(libc::SYS_capget, &mut hdr, data.as_mut_ptr()) })?;
    let join = |f: fn(&CapData) -> u32| u64::from(f(&data[0])) | (u64::from(f(&data[1])) << 32);
    Ok(CapSets {
        effective: join(|d| d.effective),
        permitted: join(|d| d.permitted),
        inheritable: join(|d| d.inheritable),
    })
}

pub fn capset(s: CapSets) -> Result<(), Errno> {
    let hdr = CapHeader { version: CAP_V3, pid: 0 };
    let split = |v: u64, i: usize| (v >> (32 * i)) as u32;
    let data = [0, 1].map(|i| CapData {
        effective: split(s.effective, i),
        permitted: split(s.permitted, i),
        inheritable: split(s.inheritable, i),
    });
    // SAFETY: hdr and data are valid, readable v3 structures.
    check(unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) }).map(drop)
}
