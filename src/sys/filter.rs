//! Filters the kernel runs for a process: seccomp programs and their
//! user notifications, and bpf(2).

use super::check;
use nix::errno::Errno;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A classic-BPF seccomp instruction (struct sock_filter).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Installs a seccomp filter on the calling thread (inherited by children
/// and kept across execve; it can never be removed).
pub fn seccomp_install(prog: &[SockFilter]) -> Result<(), Errno> {
    let len = u16::try_from(prog.len()).map_err(|_| Errno::E2BIG)?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: SockFilter has sock_filter's layout; fprog points at `prog`,
    // which outlives the call; the kernel copies the program.
    check(unsafe {
        libc::syscall(libc::SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 0, &fprog)
    })
    .map(drop)
}

/// Installs a seccomp filter whose SECCOMP_RET_USER_NOTIF calls are
/// handed to the returned descriptor (the caller answers them).
pub fn seccomp_listener(prog: &[SockFilter]) -> Result<OwnedFd, Errno> {
    let len = u16::try_from(prog.len()).map_err(|_| Errno::E2BIG)?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: as in seccomp_install; flag 8 is SECCOMP_FILTER_FLAG_NEW_LISTENER.
    let fd = check(unsafe { libc::syscall(libc::SYS_seccomp, 1, 8, &fprog) })?;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A system call waiting on a seccomp listener.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SeccompNotif {
    pub id: u64,
    pub pid: u32,
    pub flags: u32,
    pub nr: i32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

#[repr(C)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const SECCOMP_IOCTL_NOTIF_RECV: libc::Ioctl = 0xc050_2100u32 as libc::Ioctl;
const SECCOMP_IOCTL_NOTIF_SEND: libc::Ioctl = 0xc018_2101u32 as libc::Ioctl;

/// Receives the next waiting call.
pub fn seccomp_recv(listener: &OwnedFd) -> Result<SeccompNotif, Errno> {
    let mut n = SeccompNotif::default();
    // SAFETY: n has struct seccomp_notif's layout (80 bytes) and is zeroed.
    check(unsafe { libc::ioctl(listener.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV, &mut n) } as libc::c_long)?;
    Ok(n)
}

/// Answers call `id`: 0 for success, or an errno.
pub fn seccomp_answer(listener: &OwnedFd, id: u64, errno: i32) -> Result<(), Errno> {
    let r = SeccompNotifResp {
        id,
        val: 0,
        error: -errno,
        flags: 0,
    };
    // SAFETY: r has struct seccomp_notif_resp's layout (24 bytes).
    check(unsafe { libc::ioctl(listener.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND, &r) } as libc::c_long).map(drop)
}

const SECCOMP_IOCTL_NOTIF_ID_VALID: libc::Ioctl = 0x4008_2102u32 as libc::Ioctl;
const SECCOMP_IOCTL_NOTIF_ADDFD: libc::Ioctl = 0x4018_2103u32 as libc::Ioctl;
const SECCOMP_ADDFD_FLAG_SEND: u32 = 2;

/// Whether call `id` still waits (its process has not gone, nor has a
/// signal interrupted it): checked before acting on the caller's memory.
pub fn seccomp_id_valid(listener: &OwnedFd, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64.
    check(unsafe { libc::ioctl(listener.as_raw_fd(), SECCOMP_IOCTL_NOTIF_ID_VALID, &id) } as libc::c_long).is_ok()
}

/// Whether `fd` is a seccomp listener: an anonymous inode (no file type
/// in its mode) that knows the listener's ioctl and has no call 0 waiting
/// (ENOENT; notification ids start at a random value, and any other
/// descriptor says ENOTTY or EINVAL). Two system calls where reading its
/// /proc/self/fd link took a path walk through /proc.
pub fn is_seccomp_listener(fd: &OwnedFd) -> bool {
    let anon = nix::sys::stat::fstat(fd.as_raw_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == 0);
    // SAFETY: the ioctl reads one u64.
    anon && check(unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_ID_VALID, &0u64) } as libc::c_long) == Err(Errno::ENOENT)
}

/// Puts a copy of `fd` into the process of waiting call `id` (struct
/// seccomp_notif_addfd, Linux 5.9; SEND 5.14) and gives its number
/// there. With `send`, that number is the call's result and the call is
/// answered in the same step.
pub fn seccomp_addfd(listener: &OwnedFd, id: u64, fd: RawFd, cloexec: bool, send: bool) -> Result<RawFd, Errno> {
    #[repr(C)]
    struct AddFd {
        id: u64,
        flags: u32,
        srcfd: u32,
        newfd: u32,
        newfd_flags: u32,
    }
    let a = AddFd {
        id,
        flags: if send { SECCOMP_ADDFD_FLAG_SEND } else { 0 },
        srcfd: fd as u32,
        newfd: 0,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: a has struct seccomp_notif_addfd's layout (24 bytes).
    check(unsafe { libc::ioctl(listener.as_raw_fd(), SECCOMP_IOCTL_NOTIF_ADDFD, &a) } as libc::c_long).map(|n| n as RawFd)
}

/// socket(2) with its arguments as a caller passed them (type with its
/// SOCK_NONBLOCK and SOCK_CLOEXEC bits): the kernel checks them.
pub fn socket_as_asked(domain: i32, ty: i32, protocol: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: integers only; the kernel returns a new descriptor we own.
    let fd = check(unsafe { libc::socket(domain, ty, protocol) } as libc::c_long)?;
    // SAFETY: just returned to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// socketpair(2) with its arguments as a caller passed them.
pub fn socketpair_as_asked(domain: i32, ty: i32, protocol: i32) -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut sv = [0 as libc::c_int; 2];
    // SAFETY: sv has room for the two descriptors the kernel writes.
    check(unsafe { libc::socketpair(domain, ty, protocol, sv.as_mut_ptr()) } as libc::c_long)?;
    // SAFETY: both were just returned to us.
    Ok(unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) })
}

/// bpf(2) with an attribute block the caller laid out.
pub fn bpf(cmd: libc::c_int, attr: &mut [u8]) -> Result<libc::c_long, Errno> {
    // SAFETY: attr is a writable buffer of the size passed; the pointers it
    // holds (instructions, licence, log) are kept alive by the caller.
    check(unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) })
}

/// bpf(2) for commands that return a new file descriptor.
pub fn bpf_fd(cmd: libc::c_int, attr: &mut [u8]) -> Result<OwnedFd, Errno> {
    let fd = bpf(cmd, attr)? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
