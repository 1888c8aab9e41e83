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
    // strings at exec (what [`start`] noted, or /proc/self/stat fields
    // 48-49): mapped, writable stack memory of this process. Nothing holds
    // Rust references into it: [`start`] copied the arguments, and std's
    // env::args, which would read them, is empty without std's start-up
    // (clippy.toml refuses it).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), start as *mut u8, room) };
}

/// arg_start and arg_end of this process: as [`start`] found them, else
/// from /proc/self/stat.
fn arg_area() -> Option<(usize, usize)> {
    if let Some(&area) = ARG_AREA.get() {
        return Some(area);
    }
    let [start, end] = own_stat_fields([48, 49])?;
    (start != 0 && end > start).then_some((start, end))
}

/// Where the kernel put the argument strings at exec, [start, end): the
/// first one's address to just past the last one's NUL (arg_start and
/// arg_end in proc(5); fs/exec.c copies them end to end).
static ARG_AREA: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();

/// What the binary's entry point does before any applet runs, in place of
/// the Rust runtime's start-up, which vsbox skips (`#![no_main]`): that
/// maps and installs an alternate signal stack and SIGSEGV/SIGBUS handlers
/// for a stack-overflow message, and takes them down again at exit, 11
/// system calls in every process vsbox starts, the exec relay too. Kept
/// from it: descriptors 0-2 are open (on /dev/null if they were closed:
/// a file opened later must not become standard output), and SIGPIPE is
/// ignored (a closed pipe is an EPIPE error, as std's own start-up sets
/// it; signal.rs notes it as never inherited). Returns the arguments.
///
/// # Safety
/// `argv` holds `argc` valid NUL-terminated strings: main's arguments
/// from the C runtime (musl's __libc_start_main).
pub unsafe fn start(argc: libc::c_int, argv: *const *const libc::c_char) -> Vec<std::ffi::OsString> {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    // SAFETY: fds is a valid array of 3 pollfds; a zero timeout.
    let closed: Vec<libc::c_int> = if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } >= 0 {
        fds.iter().filter(|f| f.revents & libc::POLLNVAL != 0).map(|f| f.fd).collect()
    } else {
        // poll can fail (RLIMIT_NOFILE under 3, ENOMEM): one fcntl each,
        // as std's start-up does then.
        // SAFETY: F_GETFD on a descriptor number only reads its flags.
        (0..3)
            .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 && Errno::last() == Errno::EBADF)
            .collect()
    };
    for fd in closed {
        // SAFETY: a constant path. The lowest free descriptor is the
        // closed one (they are filled from 0 up); anything else, and vsbox
        // would print into whatever it opens next: it stops, as std does.
        if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } != fd {
            // SAFETY: ends the process.
            unsafe { libc::abort() };
        }
    }
    let _ = super::set_ignored(nix::sys::signal::Signal::SIGPIPE, true);
    let count = usize::try_from(argc).unwrap_or(0);
    let mut args = Vec::with_capacity(count);
    let mut end = 0;
    for i in 0..count {
        // SAFETY: i < argc, so argv[i] is one of the C runtime's strings.
        let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
        end = arg.as_ptr() as usize + arg.to_bytes_with_nul().len();
        args.push(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(arg.to_bytes()).to_os_string());
    }
    if count > 0 {
        // SAFETY: argv[0] exists (count > 0).
        let first = unsafe { *argv } as usize;
        if end > first {
            let _ = ARG_AREA.set((first, end));
        }
    }
    args
}

/// Numeric fields of /proc/self/stat, numbered as proc(5) does (from 3
/// on: those after the command, which may hold spaces and parentheses),
/// in ascending order.
fn own_stat_fields<const N: usize>(numbers: [usize; N]) -> Option<[usize; N]> {
    let stat = crate::sys::read_text("/proc/self/stat").ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let (mut out, mut at) = ([0; N], 3);
    for (slot, n) in out.iter_mut().zip(numbers) {
        *slot = fields.nth(n.checked_sub(at)?)?.parse().ok()?;
        at = n + 1;
    }
    Some(out)
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
    // The allocator's lock across the fork (see super::alloc::Forking).
    let _forking = super::alloc::forking();
    // SAFETY: vsbox forks with one thread (vps's readers are joined before
    // it returns), so no lock of musl's can be held by a thread that does
    // not exist in the child; the allocator's is held here.
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
    let _forking = super::alloc::forking();
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

/// _exit(2): ends this process at once, without destructors, atexit
/// handlers or std's flush of standard output (whose lock a forked child
/// of a threaded process may find held).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit only ends the process.
    unsafe { libc::_exit(code) }
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

/// A command that a vsbox process inside a guest starts (its init's
/// services, a joined command, a shell): fork, the caller's last steps in
/// the child, execve along PATH as musl's execvp(3) does (the default
/// PATH without one; past ENOENT, ENOTDIR and, unless nothing else is
/// found, EACCES; no retry through /bin/sh). Not std's Command,
/// whose fork path reports an exec failure through a unix socket pair: in
/// a guest, the supervised filter has the supervisor make that pair, which
/// took milliseconds a command. A close-on-exec pipe does it here.
pub struct Spawn {
    /// Paths to try, in order (PATH's directories, or the one given).
    candidates: Vec<std::ffi::CString>,
    argv: Vec<std::ffi::CString>,
    envp: Vec<std::ffi::CString>,
    /// Descriptors to become 0, 1 and 2 (None: kept).
    stdio: [Option<RawFd>; 3],
}

impl Spawn {
    /// `program` (looked up in PATH unless it holds a slash) with
    /// `argv` (its first element is argv[0]) and exactly the environment
    /// `env`, whose PATH the lookup uses (execvp's default without one).
    /// Errors: EINVAL for a NUL byte in any of them.
    pub fn new(program: &str, argv: &[String], env: &[(String, String)]) -> Result<Spawn, Errno> {
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or("/usr/local/bin:/bin:/usr/bin", |(_, v)| v.as_str());
        let candidates = if program.is_empty() {
            Vec::new() // execvp's ENOENT (the child's search finds nothing)
        } else if program.contains('/') {
            vec![cstr(program.as_bytes())?]
        } else {
            path.split(':')
                .map(|d| cstr(format!("{}/{program}", if d.is_empty() { "." } else { d }).as_bytes()))
                .collect::<Result<_, _>>()?
        };
        Ok(Spawn {
            candidates,
            argv: argv.iter().map(|a| cstr(a.as_bytes())).collect::<Result<_, _>>()?,
            envp: env
                .iter()
                .map(|(k, v)| cstr(format!("{k}={v}").as_bytes()))
                .collect::<Result<_, _>>()?,
            stdio: [None; 3],
        })
    }

    /// Descriptors the command gets as standard input, output and error.
    pub fn stdio(mut self, fds: [Option<RawFd>; 3]) -> Spawn {
        self.stdio = fds;
        self
    }

    /// Starts it; `last` runs in the child just before execve (only
    /// system calls there: the child of a fork). The command's pid, or
    /// why it could not be started (`last`'s error, or execve's).
    pub fn spawn(&self, last: impl FnOnce() -> std::io::Result<()>) -> std::io::Result<Pid> {
        use std::os::fd::AsRawFd;
        let nul = |v: &[std::ffi::CString]| -> Vec<*const libc::c_char> {
            v.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
        };
        let (argv, envp) = (nul(&self.argv), nul(&self.envp));
        // Standard descriptors first copied above 2, so no dup2 overwrites
        // one still to be placed; closed here once the child has them.
        let mut above: Vec<OwnedFd> = Vec::new();
        for fd in self.stdio.iter().flatten() {
            above.push(adopt_fd(nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?));
        }
        let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let child = match fork()? {
            Forked::Child => {
                drop(report_r);
                let mut placed = above.iter();
                for (i, fd) in self.stdio.iter().enumerate() {
                    if fd.is_some() {
                        if let Some(from) = placed.next() {
                            // SAFETY: plain descriptors.
                            unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(from), i as RawFd) };
                        }
                    }
                }
                // A fresh program's signal state: vsbox ignores SIGPIPE for
                // itself; nothing blocked. (execve resets caught ones.)
                // SAFETY: SIG_DFL is no function; an empty set.
                unsafe {
                    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                    let mut empty: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut empty);
                    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
                }
                let err = match last() {
                    Err(e) => e.raw_os_error().unwrap_or(libc::EINVAL),
                    Ok(()) => {
                        // execvp's search: past what is not there, and past
                        // what may not be run unless nothing else is found.
                        let (mut err, mut denied) = (libc::ENOENT, false);
                        for c in &self.candidates {
                            // SAFETY: NUL-terminated strings and arrays,
                            // made before the fork.
                            unsafe { libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
                            err = Errno::last_raw();
                            match err {
                                libc::EACCES => denied = true,
                                libc::ENOENT | libc::ENOTDIR => {}
                                _ => break,
                            }
                        }
                        if denied && matches!(err, libc::ENOENT | libc::ENOTDIR) {
                            libc::EACCES
                        } else {
                            err
                        }
                    }
                };
                let bytes = err.to_ne_bytes();
                // SAFETY: a 4-byte buffer; _exit skips the parent's
                // destructors and atexit handlers.
                unsafe {
                    libc::write(report_w.as_raw_fd(), bytes.as_ptr().cast(), 4);
                    libc::_exit(127)
                }
            }
            Forked::Parent(child) => child,
        };
        drop(report_w);
        drop(above);
        let mut got = [0u8; 4];
        let n = loop {
            match nix::unistd::read(report_r.as_raw_fd(), &mut got) {
                Err(Errno::EINTR) => continue,
                r => break r.unwrap_or(0),
            }
        };
        if n == 4 {
            let _ = nix::sys::wait::waitpid(child, None);
            return Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(got)));
        }
        Ok(child)
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

/// Gives back this process's resident pages of its own binary that are
/// never written ([`own_readonly`]): code and read-only data that set-up
/// or a wake-up mapped in fault back in from the file as needed.
pub fn release_own_text() {
    for &range in own_readonly() {
        drop_readonly(range);
    }
}

/// Drops the page-table entries of `range`, one of [`own_readonly`].
fn drop_readonly((a, b): (usize, usize)) {
    // SAFETY: the range is a read-only private file mapping of this
    // process's binary with no page of its own (own_readonly);
    // MADV_DONTNEED only drops its page-table entries, and the same
    // content faults back in from the file.
    unsafe {
        libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED);
    }
}

/// poll(2) on `fds` with no timeout; with `release`, after
/// [`release_own_text`], the code range that does both given back by the
/// last system call before the poll: a wake-up's code, mapped in 64 KiB at
/// a time (the kernel's fault-around) wherever it ran, is not kept while
/// asleep, but for the one window the poll call itself faults back in.
/// The number of ready descriptors, or poll's error (EINTR for a signal).
pub fn poll_released(fds: &mut [libc::pollfd], release: bool) -> Result<i32, Errno> {
    let here = poll_released as *const () as usize;
    let mut code = None;
    let ranges: &[(usize, usize)] = if release { own_readonly() } else { &[] };
    for &(a, b) in ranges {
        if (a..b).contains(&here) {
            code = Some((a, b));
        } else {
            drop_readonly((a, b));
        }
    }
    let ret: isize;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: two system calls back to back, madvise of a read-only
    // mapping of the binary (as in release_own_text: the next instruction
    // just faults back in) and poll of `fds`, which the caller owns; the
    // registers the kernel clobbers (rcx, r11) are declared, and r8/r9
    // carry poll's arguments past the first call.
    unsafe {
        let (start, len) = code.map_or((0, 0), |(a, b)| (a, b - a));
        std::arch::asm!(
            "syscall",
            "mov eax, {poll}",
            "mov rdi, r8",
            "mov rsi, r9",
            "mov rdx, -1",
            "syscall",
            poll = const libc::SYS_poll,
            in("r8") fds.as_mut_ptr(),
            in("r9") fds.len(),
            inout("rax") if len > 0 { libc::SYS_madvise } else { libc::SYS_getpid } => ret,
            inout("rdi") start => _,
            inout("rsi") len => _,
            inout("rdx") libc::MADV_DONTNEED as usize => _,
            out("rcx") _,
            out("r11") _,
            options(nostack),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        if let Some(range) = code {
            drop_readonly(range);
        }
        // SAFETY: `fds` is the caller's slice of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        ret = if n < 0 { -(Errno::last_raw() as isize) } else { n as isize };
    }
    if ret < 0 {
        Err(Errno::from_raw(-ret as i32))
    } else {
        Ok(ret as i32)
    }
}

/// The ranges of this process's mappings of its own binary that are not
/// writable and hold no page of its own, resident or swapped out (smaps'
/// `Anonymous:` and `Swap:` both 0 kB): code and read-only data, read
/// once. A relocated read-only range (RELRO, in a position-independent
/// build) holds written pages, which dropping would replace with the
/// file's unrelocated ones: it is left alone.
fn own_readonly() -> &'static [(usize, usize)] {
    static RANGES: std::sync::OnceLock<Vec<(usize, usize)>> = std::sync::OnceLock::new();
    RANGES.get_or_init(|| {
        let mut out = Vec::new();
        let (Ok(exe), Ok(smaps)) = (std::fs::read_link("/proc/self/exe"), crate::sys::read_text("/proc/self/smaps")) else {
            return out;
        };
        let exe = exe.to_string_lossy().into_owned();
        // The mapping being read, and whether it is still a candidate
        // (read-only, of the binary, no page of its own so far).
        let mut current: Option<(usize, usize)> = None;
        let mut finish = |current: &mut Option<(usize, usize)>| out.extend(current.take());
        for line in smaps.lines() {
            let mut f = line.split_whitespace();
            let first = f.next().unwrap_or("");
            if !first.ends_with(':') && first.contains('-') {
                finish(&mut current); // a new mapping's header
                let perms = f.next().unwrap_or("");
                current = match first.split_once('-').filter(|_| line.ends_with(exe.as_str())) {
                    Some((a, b)) if !perms.contains('w') => match (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                        (Ok(a), Ok(b)) => Some((a, b)),
                        _ => None,
                    },
                    _ => None,
                };
            } else if (first == "Anonymous:" || first == "Swap:") && f.next() != Some("0") {
                current = None;
            }
        }
        finish(&mut current);
        out
    })
}

/// The fresh stack [`run_on_fresh_stack`] made (its low and high ends),
/// which [`release_unused_stack`] then trims instead of `[stack]`.
static FRESH_STACK: std::sync::OnceLock<(usize, usize)> = std::sync::OnceLock::new();

/// Runs `f` on a fresh stack, for good: for a process that, set up, only
/// waits (a guest's init). Set-up ran deep on the process's own stack;
/// the frames it left there (11 KiB of a guest's init at rest) would stay
/// resident below the waiting one. Those pages are given back, all but
/// the start-up area at the top (argv, environ, auxv, from what
/// /proc/self/stat calls startstack up), which the C library and the
/// process title still use. The new stack is a private mapping of 1 MiB
/// with a guard page below it, of which only touched pages cost memory.
/// Falls back to calling `f` where it cannot (another architecture, no
/// memory for the mapping).
pub fn run_on_fresh_stack(f: Box<dyn FnOnce() -> std::convert::Infallible>) -> ! {
    const SIZE: usize = 1 << 20;
    const GUARD: usize = 4096;
    // SAFETY: a new private anonymous mapping, nothing else's.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SIZE + GUARD,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    // SAFETY: the guard page is the first page of the mapping just made.
    if base == libc::MAP_FAILED
        || unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) } != 0
        || !cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
    {
        if base != libc::MAP_FAILED {
            // SAFETY: the mapping just made, which nothing uses.
            unsafe { libc::munmap(base, SIZE + GUARD) };
        }
        match f() {}
    }
    let (low, high) = (base as usize + GUARD, base as usize + GUARD + SIZE);
    let _ = FRESH_STACK.set((low, high));
    let arg = Box::into_raw(Box::new(f));
    extern "C" fn on_fresh(arg: *mut libc::c_void) -> ! {
        // SAFETY: `arg` is the Box::into_raw above, taken back once.
        let f = unsafe { Box::from_raw(arg.cast::<Box<dyn FnOnce() -> std::convert::Infallible>>()) };
        release_startup_frames();
        match f() {}
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `high` is the 16-byte aligned top of a writable mapping of
    // 1 MiB that nothing else uses; `on_fresh` never returns, so nothing
    // of the old stack is needed again but what is above startstack
    // (kept). `call` leaves the alignment the ABI requires at entry.
    unsafe {
        std::arch::asm!("mov rsp, {top}", "xor ebp, ebp", "call {f}", top = in(reg) high, f = sym on_fresh, in("rdi") arg, options(noreturn));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as for x86_64; sp 16-byte aligned, the argument in x0.
    unsafe {
        std::arch::asm!("mov sp, {top}", "mov x29, xzr", "bl {f}", top = in(reg) high, f = sym on_fresh, in("x0") arg, options(noreturn));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    unreachable!("no stack switch on this architecture: f ran above")
}

/// On the fresh stack: gives back the process's own stack below its
/// start-up area.
fn release_startup_frames() {
    let (Some((low, _)), Some([start])) = (own_stack(), own_stat_fields([28])) else {
        return;
    };
    let top = start & !4095;
    if low < top {
        // SAFETY: [low, top) is this process's own stack below the
        // start-up area (startstack, field 28); this code runs on another
        // stack, and no frame there runs again. The pages fault back in
        // zeroed.
        unsafe {
            libc::madvise(low as *mut libc::c_void, top - low, libc::MADV_DONTNEED);
        }
    }
}

/// The `[stack]` mapping's low and high ends.
fn own_stack() -> Option<(usize, usize)> {
    let maps = crate::sys::read_text("/proc/self/maps").ok()?;
    let range = maps.lines().find(|l| l.ends_with("[stack]"))?.split_whitespace().next()?;
    let (low, high) = range.split_once('-')?;
    Some((usize::from_str_radix(low, 16).ok()?, usize::from_str_radix(high, 16).ok()?))
}

/// Gives back the pages of this (single-threaded) process's stack below
/// the caller's frame, less a margin: set-up ran deep once, and a process
/// that then only waits would keep them resident for nothing. They are
/// unused now (the stack grows down; signal handlers run only on return
/// from a system call; the margin holds the madvise(2) call itself) and
/// fault back in as zeroes.
#[inline(never)]
pub fn release_unused_stack() {
    // The madvise(2) call's own frame and the red zone below it (128
    // bytes on x86_64) lie within; a signal frame pushed lower later just
    // faults a page in again.
    const MARGIN: usize = 1024;
    // The stack's bounds, read once (/proc/self/maps): set-up has grown it
    // as deep as it goes by the first call.
    // Or the fresh one this process runs on.
    static STACK: std::sync::OnceLock<Option<(usize, usize)>> = std::sync::OnceLock::new();
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let Some((low, high)) = FRESH_STACK.get().copied().or_else(|| *STACK.get_or_init(own_stack)) else {
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
