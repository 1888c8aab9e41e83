//! Processes: forks (into a cgroup, vfork-style), titles, limits, the
//! descriptors a process holds, its terminal, and the vserver(2) call.

use super::{check, cstr};
use nix::errno::Errno;
use nix::unistd::Pid;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

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

/// The shell's convention: the exit status, or 128 + the killing signal.
pub fn status_code(ws: nix::sys::wait::WaitStatus) -> i32 {
    use nix::sys::wait::WaitStatus;
    match ws {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 1,
    }
}

/// Waits for `pid` to end (retrying on EINTR) and returns its exit code.
pub fn wait_for(pid: Pid) -> i32 {
    use nix::sys::wait::WaitStatus;
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Ok(ws @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => return status_code(ws),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return 1,
        }
    }
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

/// pidfd_getfd(2): a copy of descriptor `fd` of the process `pidfd` names
/// (which needs ptrace access to it).
pub fn pidfd_getfd(pidfd: &OwnedFd, fd: RawFd) -> Result<OwnedFd, Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain integer arguments; the result is a new descriptor
    // (close-on-exec) that nothing else owns.
    let got = check(unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) })?;
    Ok(adopt_fd(got as RawFd))
}

/// The network namespace of socket `sock` (ioctl SIOCGSKNS), as a new
/// descriptor.
pub fn socket_netns(sock: &OwnedFd) -> Result<OwnedFd, Errno> {
    use std::os::fd::AsRawFd;
    const SIOCGSKNS: libc::c_ulong = 0x894C; // linux/sockios.h
                                             // SAFETY: SIOCGSKNS takes no argument and returns a new descriptor.
    let got = check(unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGSKNS as _) } as libc::c_long)?;
    Ok(adopt_fd(got as RawFd))
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
/// process still runs fault back in from the page cache. The code's
/// ranges are read once (/proc/self/maps), so calling it again is one
/// madvise(2) a range.
pub fn release_own_text() {
    static TEXT: std::sync::OnceLock<Vec<(usize, usize)>> = std::sync::OnceLock::new();
    for &(a, b) in TEXT.get_or_init(own_text) {
        // SAFETY: the range is an executable, never-written private file
        // mapping of this process (own_text); MADV_DONTNEED only drops its
        // page-table entries, and the same code faults back in from the
        // file.
        unsafe {
            libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED);
        }
    }
}

/// The ranges of this process's executable mappings of its own binary.
fn own_text() -> Vec<(usize, usize)> {
    let mut text = Vec::new();
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return text;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return text;
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
        if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
            text.push((a, b));
        }
    }
    text
}

/// Gives back the pages of this (single-threaded) process's stack below
/// the caller's frame, less a margin: set-up ran deep once, and a process
/// that then only waits would keep them resident for nothing. They are
/// unused now (the stack grows down; signal handlers run only on return
/// from a system call; the margin holds the madvise(2) call itself) and
/// fault back in as zeroes.
#[inline(never)]
pub fn release_unused_stack() {
    const MARGIN: usize = 4096;
    // The stack's bounds, read once (/proc/self/maps): set-up has grown it
    // as deep as it goes by the first call.
    static STACK: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let Some((low, high)) = *STACK.get_or_init(|| {
        let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
        let range = maps.lines().find(|l| l.ends_with("[stack]"))?.split_whitespace().next()?;
        let (low, high) = range.split_once('-')?;
        Some((usize::from_str_radix(low, 16).ok()?, usize::from_str_radix(high, 16).ok()?))
    }) else {
        return;
    };
    let page = 4096;
    let top = sp.saturating_sub(MARGIN) & !(page - 1);
    if !(low < top && sp < high) {
        return;
    }
    // SAFETY: [low, top) is this process's own stack mapping below the
    // current frame by MARGIN, which nothing uses now (see above);
    // MADV_DONTNEED only drops those pages, which fault back in zeroed.
    unsafe {
        libc::madvise(low as *mut libc::c_void, top - low, libc::MADV_DONTNEED);
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

/// sysinfo(2): the host's memory, swap, uptime and process count.
pub fn sysinfo() -> Result<libc::sysinfo, Errno> {
    // SAFETY: all-zero is a valid sysinfo (integers only); the kernel
    // fills it in.
    let mut s: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: s is a writable sysinfo.
    check(unsafe { libc::sysinfo(&mut s) } as libc::c_long)?;
    Ok(s)
}
