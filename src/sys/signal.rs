//! Signal dispositions: plain and SA_SIGINFO handlers (forwarding to a
//! child), real-time signal numbers and sets.

use super::check;
use nix::errno::Errno;
use nix::unistd::Pid;

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
/// One this process was started with ignored stays ignored (nohup's
/// SIGHUP reaches neither it nor the command).
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
    for &sig in signals.iter().filter(|&&s| !inherited_ignored(s)) {
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
/// base of systemd's and vsbox's SIGRTMIN+N conventions — whatever C
/// library vsbox itself is linked with (musl's own SIGRTMIN is 35), so
/// that SIGRTMIN+4 is the 38 a systemd guest understands.
pub fn sigrtmin() -> libc::c_int {
    34
}

/// kill(2) with any signal number, real-time ones included.
pub fn kill_raw(pid: Pid, sig: libc::c_int) -> Result<(), Errno> {
    // SAFETY: plain integers.
    check(unsafe { libc::kill(pid.as_raw(), sig) } as libc::c_long).map(drop)
}

/// pidfd_send_signal(2) with any signal number: the process `pidfd` names,
/// never another that took its pid meanwhile.
pub fn pidfd_send_signal(pidfd: &std::os::fd::OwnedFd, sig: libc::c_int) -> Result<(), Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: a pidfd, a signal number, no siginfo (NULL), no flags.
    check(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
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

/// The signals (1–31) this process was started with ignored, a bit each
/// (bit N-1 for signal N): SIG_IGN survives execve(2), and is how nohup
/// hands over SIGHUP and a shell its background jobs' SIGINT and SIGQUIT.
static INHERITED_IGNORED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Notes which signals this process was started with ignored, before it
/// changes any, so the commands it runs get them ignored again (see
/// [`inherited_ignored`]), of the [`NOTED`] ones. SIGPIPE is not among
/// them: vsbox ignores it for itself from the start ([`super::start`]),
/// and the commands it runs get the default. Nor is SIGCHLD, whose
/// ignoring makes the kernel reap children at once (wait(2) then finds
/// none): vsbox waits for its children, and so do the commands it runs.
pub fn record_inherited_ignored() {
    let mut bits = 0u32;
    for sig in NOTED {
        // SAFETY: a query only (no new action); `old` is a valid, zeroed
        // sigaction the kernel fills in.
        let ignored = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
        };
        if ignored {
            bits |= 1 << (sig - 1);
        }
    }
    INHERITED_IGNORED.store(bits, std::sync::atomic::Ordering::Relaxed);
    let _ = set_ignored(nix::sys::signal::Signal::SIGCHLD, false);
}

/// The signals whose inherited SIG_IGN is noted: those vsbox handles or
/// sets for itself and gives back to the commands it runs
/// (context/exec.rs, [`forward_signals`]). The others it leaves alone, so
/// an inherited SIG_IGN passes through execve(2) untouched.
const NOTED: [libc::c_int; 8] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGTERM,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Forgets which signals this process was started with ignored: from now
/// on it and what it runs reset them all (a guest's init).
pub fn forget_inherited_ignored() {
    INHERITED_IGNORED.store(0, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `sig` was ignored when this process started (as
/// [`record_inherited_ignored`] found it).
pub fn inherited_ignored(sig: nix::sys::signal::Signal) -> bool {
    INHERITED_IGNORED.load(std::sync::atomic::Ordering::Relaxed) & (1 << (sig as i32 - 1)) != 0
}

pub fn set_ignored(sig: nix::sys::signal::Signal, ignore: bool) -> Result<(), Errno> {
    use nix::sys::signal::{signal, SigHandler};
    let h = if ignore { SigHandler::SigIgn } else { SigHandler::SigDfl };
    // SAFETY: SIG_IGN and SIG_DFL are not functions; nothing can be unsound.
    unsafe { signal(sig, h) }.map(drop)
}

/// Sets the calling thread's blocked signals to `mask`, a bit per signal
/// (bit N-1 for signal N), as the kernel takes it: the real-time signals
/// the C library keeps for itself (32–34 with musl) included, which
/// sigprocmask(3) and sigfillset(3) leave out.
pub fn set_mask_raw(mask: u64) -> Result<(), Errno> {
    // SAFETY: an 8-byte mask, the kernel's sigset size; no old mask asked.
    check(unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &mask as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    })
    .map(drop)
}

/// Adds `more` to the calling thread's blocked signals (as
/// [`set_mask_raw`] takes them); the whole mask now blocked.
pub fn block_raw(more: u64) -> Result<u64, Errno> {
    let mut old = 0u64;
    // SAFETY: 8-byte masks, the kernel's sigset size; it reads `more` and
    // writes the previous mask into `old`.
    check(unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            &more as *const u64,
            &mut old as *mut u64,
            8usize,
        )
    })?;
    Ok(old | more)
}

/// A non-blocking, close-on-exec signalfd(2) for the signals of `mask`
/// (as [`set_mask_raw`] takes them), which the caller has blocked.
pub fn signalfd_raw(mask: u64) -> Result<std::os::fd::OwnedFd, Errno> {
    // SAFETY: a new descriptor (-1) for an 8-byte mask; flags only.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_signalfd4,
            -1,
            &mask as *const u64,
            8usize,
            libc::SFD_CLOEXEC | libc::SFD_NONBLOCK,
        )
    })?;
    Ok(super::adopt_fd(fd as std::os::fd::RawFd))
}

/// The bit of signal `sig` in a raw mask.
pub fn mask_bit(sig: libc::c_int) -> u64 {
    1u64 << (sig - 1)
}
