//! A guest's own init (`S_FLAGS=fakeinit`), seen from the host: asking it
//! to shut down the way it understands, and telling when its start-up and
//! its shutdown have finished (SPEC §5: `start` returns once start-up has
//! finished; `stop` runs the guest's shutdown).
//!
//! Everything in the guest is reached through `/proc/PID/root` of its init
//! with openat2(RESOLVE_IN_ROOT): the guest's /run is a tmpfs of its own
//! mount namespace, and its root may have planted symlinks.

use crate::sys;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// sysvinit's control FIFO (initreq.h), now and before Debian moved it.
const INITCTL: &[&str] = &["run/initctl", "dev/initctl"];

/// How the guest's init was asked to shut down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// sysvinit: a request for run level 0 on its control FIFO (what
    /// `telinit 0` writes): it runs its rc 0 scripts.
    RunLevel0,
    /// systemd: SIGRTMIN+4, poweroff (systemd(1)).
    Systemd,
    /// busybox init: SIGUSR2, poweroff (its shutdown actions run).
    Busybox,
    /// Any other init: SIGTERM.
    Term,
}

/// Opens `path` inside the root of process `pid`, never outside it.
fn open_in_root(pid: u32, path: &str, flags: i32) -> Option<OwnedFd> {
    let root = std::fs::File::open(format!("/proc/{pid}/root")).ok()?;
    sys::openat2(
        &root,
        Path::new(path),
        flags | libc::O_CLOEXEC | libc::O_NOCTTY,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    )
    .ok()
}

fn write_initctl(pid: u32, request: &[u8]) -> bool {
    INITCTL.iter().any(|p| {
        // Non-blocking: a FIFO without a reader fails (ENXIO) at once.
        let Some(fd) = open_in_root(pid, p, libc::O_WRONLY | libc::O_NONBLOCK) else {
            return false;
        };
        let fifo = nix::sys::stat::fstat(fd.as_raw_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
        fifo && nix::unistd::write(&fd, request) == Ok(request.len())
    })
}

/// Asks the guest's init, host pid `init`, to shut the guest down in its
/// own convention; falls back to SIGTERM.
pub fn ask_to_stop(init: u32) -> Asked {
    let pid = Pid::from_raw(init as i32);
    if write_initctl(init, &crate::context::initctl::run_level_request(b'0')) {
        return Asked::RunLevel0;
    }
    let comm = crate::sys::read_text(format!("/proc/{init}/comm")).unwrap_or_default();
    if comm.trim() == "systemd" {
        let _ = sys::kill_raw(pid, sys::sigrtmin() + 4);
        return Asked::Systemd;
    }
    let exe = std::fs::read_link(format!("/proc/{init}/exe")).unwrap_or_default();
    if exe.file_name().is_some_and(|n| n == "busybox") {
        let _ = nix::sys::signal::kill(pid, Signal::SIGUSR2);
        return Asked::Busybox;
    }
    let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
    Asked::Term
}

/// The current run level in the guest's utmp ('N' before any), if its
/// init keeps one.
pub fn run_level(init: u32) -> Option<u8> {
    use std::io::Read;
    let fd = ["var/run/utmp", "run/utmp"]
        .iter()
        .find_map(|p| open_in_root(init, p, libc::O_RDONLY | libc::O_NOFOLLOW))?;
    let mut data = Vec::new();
    std::fs::File::from(fd).take(1 << 20).read_to_end(&mut data).ok()?;
    crate::context::utmp::current_run_level(&data)
}

/// Whether one of `pids` runs a run-level script of the guest
/// (/etc/init.d/rc, rcS, /etc/rc.d/rc, rc.sysinit), directly or through
/// its interpreter.
fn rc_running(pids: &[u32]) -> bool {
    pids.iter().any(|pid| {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        cmdline.split(|&b| b == 0).take(2).any(is_rc_script)
    })
}

/// A run-level script's path, as the first or second word of a command line.
fn is_rc_script(arg: &[u8]) -> bool {
    const RC: &[&[u8]] = &[
        b"/etc/init.d/rc",
        b"/etc/init.d/rcS",
        b"/etc/rc.d/rc",
        b"/etc/rc.d/rc.sysinit",
        b"/etc/rc",
    ];
    RC.contains(&arg)
}

/// Waits until the start-up of the guest whose init is `init` (context
/// cgroup `dir`) has finished: with a sysvinit-style init (an inittab
/// naming a default run level), until utmp shows a normal run level
/// (1–5) and no rc script runs any more; with another init, until no rc
/// script runs (after one has run, or half a second went by without).
/// Gives up after `limit`; false then, or when the init has ended.
pub fn wait_started(dir: &Path, init: u32, limit: Duration) -> bool {
    let begun = Instant::now();
    let sysv = open_in_root(init, "etc/inittab", libc::O_RDONLY)
        .and_then(|fd| {
            use std::io::Read;
            let mut s = String::new();
            std::fs::File::from(fd).take(1 << 20).read_to_string(&mut s).ok().map(|_| s)
        })
        .is_some_and(|t| t.lines().any(|l| l.split(':').nth(2) == Some("initdefault")));
    let mut seen_rc = false;
    // sysvinit writes the new run level into utmp a moment before it forks
    // that level's rc: the state must hold for a while to count.
    let mut done_since: Option<Instant> = None;
    while begun.elapsed() < limit {
        let Ok(pids) = crate::kernel::cgroup::procs(dir) else {
            return false;
        };
        if !pids.contains(&init) {
            return false;
        }
        let rc = rc_running(&pids);
        seen_rc |= rc;
        let done = if sysv {
            !rc && run_level(init).is_some_and(|l| (b'1'..=b'5').contains(&l))
        } else {
            !rc && (seen_rc || begun.elapsed() > Duration::from_millis(500))
        };
        done_since = if done { done_since.or(Some(Instant::now())) } else { None };
        if done_since.is_some_and(|t| t.elapsed() >= Duration::from_millis(100)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// After [`ask_to_stop`]: waits until the guest has shut down — its
/// context empty, or only its init left once the shutdown ran (an init
/// whose final reboot(2) the guest may not make stays on alone: sysvinit
/// in run level 0 or 6, or any init alone for 300 ms) — or `grace` ran
/// out. True when it shut down by itself.
pub fn wait_stopped(dir: &Path, init: u32, asked: Asked, grace: Duration) -> bool {
    let begun = Instant::now();
    let mut alone_since: Option<Instant> = None;
    let mut seen_rc = false;
    while begun.elapsed() < grace {
        if !crate::kernel::cgroup::populated(dir) {
            return true;
        }
        let pids = crate::kernel::cgroup::procs(dir).unwrap_or_default();
        seen_rc |= rc_running(&pids);
        let alone = pids == [init];
        let alone_for = |ms| alone_since.is_some_and(|t: Instant| t.elapsed() >= Duration::from_millis(ms));
        let finished = match asked {
            // sysvinit writes run level 0 a moment before it forks rc 0:
            // done once that rc has come and gone, or after a second alone
            // (an rc too quick to be seen).
            Asked::RunLevel0 => alone && run_level(init).is_some_and(|l| l == b'0' || l == b'6') && (seen_rc || alone_for(1000)),
            _ => alone && alone_for(300),
        };
        if finished {
            return true;
        }
        alone_since = if alone { alone_since.or(Some(Instant::now())) } else { None };
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rc_scripts_are_recognised() {
        assert!(is_rc_script(b"/etc/init.d/rc"));
        assert!(is_rc_script(b"/etc/init.d/rcS"));
        assert!(!is_rc_script(b"/etc/init.d/rcK"));
        assert!(!is_rc_script(b"/bin/sh"));
    }
}
