//! The few system calls that neither std nor nix wraps. Every `unsafe`
//! block of the library lives here, each with its SAFETY argument; the
//! rest of the crate calls these safe functions.

use nix::errno::Errno;
use nix::unistd::Pid;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

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

/// Names this process (its `comm`, as ps and top show it).
pub fn set_name(name: &str) -> Result<(), Errno> {
    nix::sys::prctl::set_name(&cstr(name.as_bytes())?)
}

/// Gives this process `title` as its command line (what `ps ax` shows),
/// within the room its original arguments took, and as its `comm`.
pub fn set_title(title: &str) {
    let _ = set_name(title);
    let Some((start, end)) = arg_area() else { return };
    let room = end.saturating_sub(start);
    if room == 0 {
        return;
    }
    let mut bytes = vec![0u8; room];
    let n = title.len().min(room - 1);
    bytes[..n].copy_from_slice(&title.as_bytes()[..n]);
    // A last byte that is not NUL tells the kernel the arguments were
    // rewritten (setproctitle(3)): /proc/PID/cmdline then ends at the
    // title's NUL instead of giving the whole area, padding included
    // (fs/proc/base.c, get_mm_cmdline).
    if room > n + 1 {
        bytes[room - 1] = b' ';
    }
    // SAFETY: [start, end) is where the kernel put this process's argument
    // strings at exec (/proc/self/stat fields 48-49): mapped, writable
    // stack memory of this process. Nothing holds Rust references into it;
    // std only reads it again if env::args is called, and then finds the
    // NUL-terminated title.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), start as *mut u8, room) };
}

/// arg_start and arg_end of this process, from /proc/self/stat.
fn arg_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    // After the command come fields 3..; arg_start is field 48.
    let start = fields.nth(45)?.parse().ok()?;
    let end = fields.next()?.parse().ok()?;
    (start != 0 && end > start).then_some((start, end))
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

const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;

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

/// The Landlock ABI version (landlock_create_ruleset(2) with
/// LANDLOCK_CREATE_RULESET_VERSION).
pub fn landlock_abi() -> Result<libc::c_long, Errno> {
    // SAFETY: no attribute, only the version flag.
    check(unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<u64>(), 0usize, 1u32) })
}

/// landlock_create_ruleset(2) with `attr` (struct landlock_ruleset_attr).
pub fn landlock_ruleset(attr: &[u64]) -> Result<OwnedFd, Errno> {
    // SAFETY: attr is valid for its length; the kernel only reads it.
    let fd = check(unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, attr.as_ptr(), std::mem::size_of_val(attr), 0u32) })?;
    // SAFETY: the kernel just returned this descriptor to us; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// landlock_restrict_self(2): the calling thread enters the ruleset's domain.
pub fn landlock_restrict_self(ruleset: &OwnedFd) -> Result<(), Errno> {
    // SAFETY: plain syscall on a descriptor we own.
    check(unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0) }).map(drop)
}

pub fn setxattr(path: &Path, name: &str, value: &[u8]) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let (p, n) = (cstr(path.as_os_str().as_bytes())?, cstr(name.as_bytes())?);
    // SAFETY: both strings are NUL-terminated; value is valid for its length.
    check(unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) } as libc::c_long).map(drop)
}

/// The value of an extended attribute; Ok(None) when it is not set.
pub fn getxattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>, Errno> {
    use std::os::unix::ffi::OsStrExt;
    let (p, n) = (cstr(path.as_os_str().as_bytes())?, cstr(name.as_bytes())?);
    let mut buf = vec![0u8; 256];
    // SAFETY: strings are NUL-terminated; buf is writable for its length.
    let r = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return match Errno::last() {
            Errno::ENODATA => Ok(None),
            e => Err(e),
        };
    }
    buf.truncate(r as usize);
    Ok(Some(buf))
}

pub fn setdomainname(name: &str) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe `name`'s bytes.
    check(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) } as libc::c_long).map(drop)
}

/// The x86_64 "vserver" system call of the kernel patch (ENOSYS on a
/// stock kernel).
pub fn vserver(cmd: u32, id: u32, data: usize) -> Result<libc::c_long, Errno> {
    // SAFETY: on a stock kernel the number is reserved and returns ENOSYS;
    // with the patch, `data` is only dereferenced for commands that take a
    // structure, and callers pass 0 for the others.
    check(unsafe { libc::syscall(libc::c_long::from(crate::abi::__NR_vserver_x86_64 as i32), cmd, id, data) })
}

pub enum Forked {
    Parent(Pid),
    Child,
}

/// fork(2). vsbox is single-threaded wherever it forks, so the child may
/// go on using the allocator and std as usual.
pub fn fork() -> Result<Forked, Errno> {
    // SAFETY: the process has one thread (nothing in vsbox spawns threads),
    // so no lock can be held by a thread that does not exist in the child.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork(2) through clone3(2): the child starts in the cgroup `cgroup` (an
/// open cgroup v2 directory) and in the new namespaces `ns_flags` asks for.
/// Being born in the cgroup skips the migration that a write to
/// cgroup.procs costs (a global lock and an RCU grace period, milliseconds).
pub fn fork_into(cgroup: &impl std::os::fd::AsRawFd, ns_flags: nix::sched::CloneFlags) -> Result<Forked, Errno> {
    let args = CloneArgs {
        flags: ns_flags.bits() as u32 as u64 | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: as for fork(): one thread, and no CLONE_VM and no new stack,
    // so the child runs on its own copy of this stack like a forked child.
    // glibc keeps no pid cache; the child calls no pthread functions.
    let r = check(unsafe { libc::syscall(libc::SYS_clone3, &args as *const CloneArgs, std::mem::size_of::<CloneArgs>()) })?;
    Ok(if r == 0 {
        Forked::Child
    } else {
        Forked::Parent(Pid::from_raw(r as i32))
    })
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 1;

/// mount_setattr(2) on `path` and, with `recursive`, every mount below it:
/// one system call for a whole tree of mounts.
pub fn mount_setattr(path: &Path, recursive: bool, set: u64, clear: u64) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let p = cstr(path.as_os_str().as_bytes())?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: p is NUL-terminated; attr is a valid mount_attr of the size passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            p.as_ptr(),
            flags,
            &attr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Closes every descriptor from `first` up, so nothing of the host's
/// reaches a guest.
pub fn close_from(first: u32) -> Result<(), Errno> {
    close_range(first, u32::MAX)
}

/// Closes descriptors `first..=last`.
pub fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: close_range only closes descriptors; callers hold no Rust
    // objects owning descriptors in the range that they use later.
    check(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) }).map(drop)
}

pub fn getrlimit(resource: libc::__rlimit_resource_t) -> Result<(u64, u64), Errno> {
    let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: cur is a valid rlimit for the kernel to fill in.
    check(unsafe { libc::getrlimit(resource, &mut cur) } as libc::c_long)?;
    Ok((cur.rlim_cur, cur.rlim_max))
}

pub fn setrlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> Result<(), Errno> {
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: new is a valid rlimit.
    check(unsafe { libc::setrlimit(resource, &new) } as libc::c_long).map(drop)
}

/// Sets this process's niceness.
pub fn set_nice(n: i32) -> Result<(), Errno> {
    // SAFETY: plain system call with integer arguments.
    check(unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n) } as libc::c_long).map(drop)
}

/// Runs `f` in the child of `cmd` between fork and exec.
pub fn before_exec(cmd: &mut std::process::Command, f: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static) {
    use std::os::unix::process::CommandExt;
    // SAFETY: vsbox is single-threaded where it spawns, so the forked child
    // may allocate; the closures passed here only make system calls.
    unsafe {
        cmd.pre_exec(f);
    }
}

/// A descriptor that becomes readable when process `pid` has ended.
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new
    // descriptor, which nothing else owns.
    let fd = check(unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) })?;
    Ok(adopt_fd(fd as RawFd))
}

/// Takes ownership of descriptor `fd`, which the caller has just set up
/// (with dup2) and which nothing else owns.
pub fn adopt_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: by the caller's contract, `fd` is open and unowned.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Makes terminal `fd` the controlling terminal of this (new) session.
pub fn set_controlling_tty(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    check(unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) } as libc::c_long).map(drop)
}

/// Copies the window size of terminal `from` to terminal `to`.
pub fn copy_winsize(from: RawFd, to: RawFd) -> Result<(), Errno> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ws is a valid winsize for both ioctls.
    check(unsafe { libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) } as libc::c_long)?;
    check(unsafe { libc::ioctl(to, libc::TIOCSWINSZ, &ws) } as libc::c_long).map(drop)
}

/// Borrows a descriptor this process keeps open for its whole life
/// (stdin, stdout, or one the caller owns for longer than the borrow).
pub fn borrow_fd(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: by the caller's contract the descriptor outlives every use.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Drops this process's mappings of its own code: pages
/// touched once (during set-up) stop counting as resident, and the few the
/// process still runs fault back in from the page cache.
pub fn release_own_text() {
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else { return };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let exe = exe.to_string_lossy().into_owned();
    for line in maps.lines().filter(|l| l.ends_with(exe.as_str())) {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        // Only code: it is never written. Read-only data is not safe to
        // drop, since RELRO pages were written by relocation before being
        // made read-only, and would fault back in unrelocated.
        if !perms.contains('x') || perms.contains('w') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else {
            continue;
        };
        // SAFETY: the range is an executable, never-written private file
        // mapping of this process; MADV_DONTNEED only drops its page-table
        // entries, and the same code faults back in from the file.
        unsafe {
            libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED);
        }
    }
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

/// The id of the mount that `fd` is on (statx's STATX_MNT_ID, Linux 5.8):
/// unlike st_dev it tells a bind mount from the file system it shows.
pub fn mount_id(fd: &impl AsRawFd) -> Result<u64, Errno> {
    let mut st = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // The system call itself: glibc's statx() is a weak symbol that a
    // static link can leave unresolved (a call to address 0).
    // SAFETY: "" with AT_EMPTY_PATH names fd itself; st is a statx buffer
    // (256 bytes, the kernel's struct statx) the kernel fills in.
    check(unsafe {
        libc::syscall(
            libc::SYS_statx,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            st.as_mut_ptr(),
        )
    })?;
    // SAFETY: zeroed, then filled in by a successful statx.
    let st = unsafe { st.assume_init() };
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Errno::ENOSYS);
    }
    Ok(st.stx_mnt_id)
}

/// openat2(2): opens `path` below `dir` with the given resolution limits.
pub fn openat2(dir: &impl AsRawFd, path: &Path, flags: i32, mode: u32, resolve: u64) -> Result<OwnedFd, Errno> {
    use std::os::unix::ffi::OsStrExt;
    let p = cstr(path.as_os_str().as_bytes())?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve,
    };
    // SAFETY: p is NUL-terminated; how is a valid open_how of the size passed.
    let fd = check(unsafe { libc::syscall(libc::SYS_openat2, dir.as_raw_fd(), p.as_ptr(), &how, std::mem::size_of::<OpenHow>()) })?;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sets a signal's disposition to a plain handler that takes the signal number.
pub fn set_handler(sig: nix::sys::signal::Signal, handler: extern "C" fn(libc::c_int)) -> Result<(), Errno> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let act = SigAction::new(SigHandler::Handler(handler), SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handlers vsbox installs only make async-signal-safe
    // calls (kill, atomic stores).
    unsafe { sigaction(sig, &act) }.map(drop)
}

/// The process that [`forward_signals`] passes signals on to (0: none),
/// and whether it passes on only those sent from outside the caller's
/// PID namespace.
static FORWARD_TO: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
static FORWARD_OUTSIDE_ONLY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    use std::sync::atomic::Ordering::Relaxed;
    let pid = FORWARD_TO.load(Relaxed);
    // SAFETY: the kernel hands an SA_SIGINFO handler a valid siginfo_t.
    // A sender outside our PID namespace shows as pid 0 (and so does the
    // kernel itself, e.g. a terminal's hang-up).
    let sender = if info.is_null() { 0 } else { unsafe { (*info).si_pid() } };
    if pid > 0 && !(FORWARD_OUTSIDE_ONLY.load(Relaxed) && sender != 0) {
        // SAFETY: kill(2) takes plain integers and is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Passes each of `signals` on to `child` from now on; with
/// `outside_only`, only those whose sender is outside this process's PID
/// namespace (a supervisor on the host), never one sent from inside.
pub fn forward_signals(child: Pid, signals: &[nix::sys::signal::Signal], outside_only: bool) -> Result<(), Errno> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    use std::sync::atomic::Ordering::Relaxed;
    FORWARD_OUTSIDE_ONLY.store(outside_only, Relaxed);
    FORWARD_TO.store(child.as_raw(), Relaxed);
    let act = SigAction::new(
        SigHandler::SigAction(forward),
        SaFlags::SA_RESTART | SaFlags::SA_SIGINFO,
        SigSet::empty(),
    );
    for &sig in signals {
        // SAFETY: `forward` only reads atomics and calls kill(2).
        unsafe { sigaction(sig, &act) }?;
    }
    Ok(())
}

/// Points the handlers [`forward_signals`] installed at `child`.
pub fn forward_to(child: Pid) {
    FORWARD_TO.store(child.as_raw(), std::sync::atomic::Ordering::Relaxed);
}

/// glibc's SIGRTMIN (34: glibc keeps the first two real-time signals), the
/// base of systemd's and vsbox's SIGRTMIN+N conventions.
pub fn sigrtmin() -> libc::c_int {
    libc::SIGRTMIN()
}

/// kill(2) with any signal number, real-time ones included.
pub fn kill_raw(pid: Pid, sig: libc::c_int) -> Result<(), Errno> {
    // SAFETY: plain integers.
    check(unsafe { libc::kill(pid.as_raw(), sig) } as libc::c_long).map(drop)
}

/// A signal set of `signals` and the real-time signals `rt` (numbers).
pub fn sigset(signals: &[nix::sys::signal::Signal], rt: &[libc::c_int]) -> nix::sys::signal::SigSet {
    let mut set: nix::sys::signal::SigSet = signals.iter().copied().collect();
    let mut raw = *set.as_ref();
    for &n in rt {
        // SAFETY: raw is an initialised sigset_t; an out-of-range number
        // makes sigaddset fail with EINVAL, nothing else.
        unsafe { libc::sigaddset(&mut raw, n) };
    }
    // SAFETY: raw came from a valid SigSet and sigaddset only.
    set = unsafe { nix::sys::signal::SigSet::from_sigset_t_unchecked(raw) };
    set
}

pub fn set_ignored(sig: nix::sys::signal::Signal, ignore: bool) -> Result<(), Errno> {
    use nix::sys::signal::{signal, SigHandler};
    let h = if ignore { SigHandler::SigIgn } else { SigHandler::SigDfl };
    // SAFETY: SIG_IGN and SIG_DFL are not functions; nothing can be unsound.
    unsafe { signal(sig, h) }.map(drop)
}

/// One extent of a file, as FIEMAP reports it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extent {
    pub logical: u64,
    pub length: u64,
    pub flags: u32,
}

pub const FIEMAP_EXTENT_LAST: u32 = 0x1;
pub const FIEMAP_EXTENT_SHARED: u32 = 0x2000;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

const FIEMAP_BATCH: usize = 32;

#[repr(C)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [FiemapExtent; FIEMAP_BATCH],
}

/// _IOWR('f', 11, struct fiemap): the header is 32 bytes.
const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;

/// The extents of `fd` from byte `start` on, at most a batch of them (the
/// last one carries FIEMAP_EXTENT_LAST).
pub fn fiemap(fd: &impl AsRawFd, start: u64) -> Result<Vec<Extent>, Errno> {
    let mut map = Fiemap {
        start,
        length: u64::MAX - start,
        flags: 0,
        mapped_extents: 0,
        extent_count: FIEMAP_BATCH as u32,
        reserved: 0,
        extents: [FiemapExtent::default(); FIEMAP_BATCH],
    };
    // SAFETY: map is a struct fiemap followed by room for extent_count
    // extents, which is all the kernel writes.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FIEMAP, &mut map as *mut Fiemap) } as libc::c_long)?;
    let n = (map.mapped_extents as usize).min(FIEMAP_BATCH);
    Ok(map.extents[..n]
        .iter()
        .map(|e| Extent {
            logical: e.logical,
            length: e.length,
            flags: e.flags,
        })
        .collect())
}

#[repr(C)]
struct DedupeRange {
    src_offset: u64,
    src_length: u64,
    dest_count: u16,
    reserved1: u16,
    reserved2: u32,
    dest_fd: i64,
    dest_offset: u64,
    bytes_deduped: u64,
    status: i32,
    reserved: u32,
}

/// _IOWR(0x94, 54, struct file_dedupe_range): the header is 24 bytes.
const FIDEDUPERANGE: libc::c_ulong = 0xC018_9436;
pub const FILE_DEDUPE_RANGE_DIFFERS: i32 = 1;

/// Makes `len` bytes of `dst` at `offset` share the extents of the same
/// bytes of `src`, if the kernel finds them identical (it compares them
/// under lock). Some(bytes shared), or None when the contents differ.
pub fn dedupe_range(src: &impl AsRawFd, dst: &impl AsRawFd, offset: u64, len: u64) -> Result<Option<u64>, Errno> {
    let mut r = DedupeRange {
        src_offset: offset,
        src_length: len,
        dest_count: 1,
        reserved1: 0,
        reserved2: 0,
        dest_fd: i64::from(dst.as_raw_fd()),
        dest_offset: offset,
        bytes_deduped: 0,
        status: 0,
        reserved: 0,
    };
    // SAFETY: r is a file_dedupe_range with exactly dest_count (1)
    // file_dedupe_range_info records after its header, as the kernel reads
    // and writes them.
    check(unsafe { libc::ioctl(src.as_raw_fd(), FIDEDUPERANGE, &mut r as *mut DedupeRange) } as libc::c_long)?;
    match r.status {
        0 => Ok(Some(r.bytes_deduped)),
        FILE_DEDUPE_RANGE_DIFFERS => Ok(None),
        e if e < 0 => Err(Errno::from_raw(-e)),
        _ => Err(Errno::EINVAL),
    }
}

extern "C" fn unshare_user_as(arg: *mut libc::c_void) -> libc::c_int {
    let id = arg as usize as libc::c_long;
    // Raw system calls only: this child shares the parent's memory (the
    // parent is suspended until it exits), so no libc state may change.
    // SAFETY: plain integer arguments; setgroups with a null list of 0.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
            || libc::syscall(libc::SYS_setresgid, id, id, id) != 0
            || libc::syscall(libc::SYS_setresuid, id, id, id) != 0
            || libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) != 0
        {
            return 1;
        }
    }
    0
}

/// Creates a user namespace owned by host uid (and gid) `owner`: a child
/// started with vfork's cost (CLONE_VM | CLONE_VFORK) becomes `owner` and
/// unshares one, then exits. Its namespace stays reachable through
/// /proc/PID/ns/user (and its maps writable through /proc/PID/uid_map)
/// until the caller reaps it with `waitpid`; Ok(pid) once it has exited
/// with success, still unreaped.
pub fn vfork_unshare_user(owner: u32) -> Result<Pid, Errno> {
    let mut stack = vec![0u8; 16 * 1024];
    // SAFETY: the stack is ours for the child's whole life (the parent is
    // suspended until the child exits, CLONE_VFORK); the child runs only
    // `unshare_user_as`, which makes raw system calls.
    let pid = unsafe {
        libc::clone(
            unshare_user_as,
            stack.as_mut_ptr().add(stack.len()) as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            owner as usize as *mut libc::c_void,
        )
    };
    if pid < 0 {
        return Err(Errno::last());
    }
    let pid = Pid::from_raw(pid);
    // The child has exited by now; look at its status but leave it be.
    let flags = nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT;
    match nix::sys::wait::waitid(nix::sys::wait::Id::Pid(pid), flags)? {
        nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(pid),
        _ => {
            let _ = nix::sys::wait::waitpid(pid, None);
            Err(Errno::EPERM)
        }
    }
}
