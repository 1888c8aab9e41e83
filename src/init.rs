//! vsbox's minimal init: PID 1 of a new context unless `fakeinit` makes
//! the command itself PID 1. It starts the command, passes on the signals
//! a supervisor sends, reaps every orphan, and ends with the command's
//! status — whereupon the kernel ends whatever else is left in the PID
//! namespace.

use crate::exec;
use crate::sys;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::sync::atomic::{AtomicI32, Ordering};

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        if let Ok(sig) = Signal::try_from(sig) {
            // kill(2) is async-signal-safe.
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
        }
    }
}

/// Forwards TERM, HUP, USR1 and USR2 to `child` from now on. INT and QUIT
/// are ignored: the terminal sends them to the command's group directly.
pub fn forward_signals_to(child: Pid) {
    CHILD.store(child.as_raw(), Ordering::Relaxed);
    for sig in [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2] {
        let _ = sys::set_handler(sig, forward);
    }
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        let _ = sys::set_ignored(sig, true);
    }
}

/// Runs `command` under this process acting as init; returns its status.
pub fn run(applet: &str, command: &[String]) -> i32 {
    // std spawns with posix_spawn (a vfork-style clone): no copy of this
    // process's page tables, which is most of what starting a command costs.
    let child = match std::process::Command::new(&command[0]).args(&command[1..]).spawn() {
        Ok(c) => Pid::from_raw(c.id() as i32),
        Err(e) => return exec::report_failure(applet, &command[0], &e),
    };
    forward_signals_to(child);
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(ws @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, ..))) if pid == child => return exec::status_code(ws),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 1,
        }
    }
}
