//! Running a COMMAND: execvp with the chroot(1)/env(1) exit codes, and
//! turning wait statuses into exit codes.

use crate::applet::{EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND};
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};

/// Gives the command the signal state a fresh program expects: nothing
/// blocked, and the signals vsbox handles or ignores for itself back to
/// their default — but those its caller ignored stay ignored, as through
/// nohup(1) or env(1) (`nohup vserver NAME exec daemon` keeps SIGHUP
/// ignored). See [`reset_signals_fully`] for a booted guest's services.
pub fn reset_signals() {
    reset(true)
}

/// As [`reset_signals`], every signal to its default: what a guest's
/// init, and the services it starts, get, whoever started the guest.
/// What the caller ignored is forgotten, for what this process runs too.
pub fn reset_signals_fully() {
    crate::sys::forget_inherited_ignored();
    reset(false)
}

fn reset(keep_inherited: bool) {
    if !keep_inherited {
        for sig in nix::sys::signal::Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
            let _ = crate::sys::set_ignored(sig, false);
        }
    }
    for sig in [
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGCHLD,
        Signal::SIGPIPE,
        Signal::SIGTTOU,
        Signal::SIGTTIN,
    ] {
        let _ = crate::sys::set_ignored(sig, keep_inherited && crate::sys::inherited_ignored(sig));
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Replaces this process with `command` (looked up in PATH). Returns only
/// on failure: prints why and gives 127 (not found) or 126.
pub fn exec(applet: &str, command: &[String]) -> i32 {
    let Some(program) = command.first() else {
        eprintln!("{applet}: no command given");
        return crate::applet::EXIT_USAGE;
    };
    let args: Result<Vec<CString>, _> = command.iter().map(|a| CString::new(a.as_bytes())).collect();
    let Ok(args) = args else {
        eprintln!("{applet}: cannot run '{program}': an argument contains a NUL byte");
        return EXIT_NOT_EXECUTABLE;
    };
    reset_signals();
    let err = nix::unistd::execvp(&args[0], &args).err().unwrap_or(Errno::EINVAL);
    eprintln!("{applet}: cannot run '{program}': {}", err.desc());
    cannot_run_code(err)
}

/// The exit code for a command that could not be run (chroot(1), env(1)):
/// 127 when it was not found, 126 otherwise.
fn cannot_run_code(err: Errno) -> i32 {
    match err {
        Errno::ENOENT | Errno::ENOTDIR => EXIT_NOT_FOUND,
        _ => EXIT_NOT_EXECUTABLE,
    }
}

/// Prints why `program` could not be started and gives 127 or 126.
pub fn report_failure(applet: &str, program: &str, e: &std::io::Error) -> i32 {
    eprintln!(
        "{applet}: cannot run '{program}': {}",
        e.raw_os_error()
            .map(|n| Errno::from_raw(n).desc().to_owned())
            .unwrap_or_else(|| e.to_string())
    );
    cannot_run_code(e.raw_os_error().map_or(Errno::EINVAL, Errno::from_raw))
}

/// Like [`exec`], with exactly the environment `env`; PATH from `env` is
/// used to find the command.
pub fn exec_env(applet: &str, command: &[String], env: &[(String, String)]) -> i32 {
    for (k, _) in std::env::vars_os() {
        std::env::remove_var(k);
    }
    for (k, v) in env {
        std::env::set_var(k, v);
    }
    exec(applet, command)
}

pub use crate::sys::{status_code, wait_for};

/// A pidfd on the client (`vserver exec`, `enter`, `chcontext --ctx`…)
/// that what it starts inside a context holds: the command must not
/// outlive its client, whatever ends the client — SIGKILL included. A
/// pidfd works across PID namespaces and becomes readable at the end.
pub struct Lifeline(OwnedFd);

impl Lifeline {
    /// In the client, before it forks: a pidfd on itself (close-on-exec).
    pub fn of_this_process() -> crate::error::Result<Lifeline> {
        use crate::error::Context;
        crate::sys::pidfd_open(nix::unistd::getpid())
            .map(Lifeline)
            .ctx(|| "open a pidfd on this process")
    }

    pub fn fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// In the client's child, for a process that dies with the client: the
/// parent-death signal SIGKILL, and an exit at once if the client, whose
/// lifeline is `fd`, has gone already. (A credential change disarms it:
/// commit_creds in kernel/cred.c.)
pub fn tie_once(fd: std::os::fd::RawFd) {
    LIFELINE.store(fd, std::sync::atomic::Ordering::Relaxed);
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if client_gone(fd) {
        std::process::exit(1);
    }
}

/// The lifeline [`tie_once`] was given, while this process still has it
/// open (until it closes its inherited descriptors).
static LIFELINE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// After a change of credentials (joining a user namespace), which clears
/// the parent-death signal: arms `sig` again, and exits if the client
/// ended meanwhile.
pub fn tie_again(sig: nix::sys::signal::Signal) {
    let _ = nix::sys::prctl::set_pdeathsig(sig);
    let fd = LIFELINE.load(std::sync::atomic::Ordering::Relaxed);
    if fd >= 0 && client_gone(fd) {
        std::process::exit(1);
    }
}

/// Runs `change`, a change of credentials (fsuid, a user namespace), and
/// arms the parent-death signal again if there was one ([`tie_again`]):
/// commit_creds clears it (kernel/cred.c).
pub fn keeping_tie(change: impl FnOnce() -> crate::error::Result<()>) -> crate::error::Result<()> {
    let pdeath = nix::sys::prctl::get_pdeathsig().ok().flatten();
    change()?;
    if let Some(sig) = pdeath {
        tie_again(sig);
    }
    Ok(())
}

/// Whether the process behind pidfd `fd` has ended.
fn client_gone(fd: std::os::fd::RawFd) -> bool {
    let mut p = [nix::poll::PollFd::new(crate::sys::borrow_fd(fd), nix::poll::PollFlags::POLLIN)];
    nix::poll::poll(&mut p, nix::poll::PollTimeout::ZERO).is_ok_and(|n| n > 0)
}

/// For a child that a vsbox process inside the context spawns (in
/// sys::Spawn's last steps, after any change of user): it dies with that process,
/// `parent`, and at once if `parent` has ended already.
pub fn tie_to_parent(parent: nix::unistd::Pid) -> std::io::Result<()> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
    if nix::unistd::getppid() != parent {
        return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}
