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
    reap_until(child)
}

/// Reaps every child (orphans included) until `child` ends; its status.
pub fn reap_until(child: Pid) -> i32 {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(ws @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, ..))) if pid == child => return exec::status_code(ws),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 1,
        }
    }
}

/// The environment commands get inside a guest: nothing of the host's but
/// the terminal type.
pub fn guest_env(home: &str, user: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![
        (
            "PATH".to_owned(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        ),
        ("HOME".to_owned(), home.to_owned()),
    ];
    if let Ok(term) = std::env::var("TERM") {
        env.push(("TERM".to_owned(), term));
    }
    if let Some(u) = user {
        env.push(("USER".to_owned(), u.to_owned()));
        env.push(("LOGNAME".to_owned(), u.to_owned()));
    }
    env
}

fn spawn_in_guest(command: &[String], quiet: bool) -> Option<Pid> {
    let mut c = std::process::Command::new(&command[0]);
    c.args(&command[1..])
        .env_clear()
        .envs(guest_env("/root", None))
        .stdin(std::process::Stdio::null());
    // init waits for its signals with them blocked; the guest's services
    // must not inherit that mask (they could not be stopped with TERM).
    sys::before_exec(&mut c, || {
        exec::reset_signals();
        Ok(())
    });
    if quiet {
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    }
    match c.spawn() {
        Ok(child) => Some(Pid::from_raw(child.id() as i32)),
        Err(e) => {
            eprintln!("vsbox init: cannot run {}: {e}", command[0]);
            None
        }
    }
}

/// For a process that joined a running guest: waits for `child` while
/// answering the reboot(2) calls of its descendants (which it alone can
/// see) by asking the guest's init, PID 1 here, to restart or stop.
pub fn serve_reboots_until(child: Pid, listener: std::os::fd::OwnedFd) -> i32 {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::signal::SigSet;
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use std::os::fd::AsFd;
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    let _ = set.thread_block();
    let Ok(signals) = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC) else {
        return reap_until(child);
    };
    loop {
        let mut fds = [
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
        ];
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let asked = fds[1].revents().is_some_and(|r| !r.is_empty());
        if asked {
            let sig = match answer_reboot(&listener) {
                Some(Event::Restart) => Some(Signal::SIGHUP),
                Some(Event::Stop) => Some(Signal::SIGINT),
                _ => None,
            };
            if let Some(sig) = sig {
                let _ = nix::sys::signal::kill(Pid::from_raw(1), sig);
            }
            continue;
        }
        let _ = signals.read_signal();
        loop {
            match waitpid(None::<Pid>, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(ws @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, ..))) if pid == child => return exec::status_code(ws),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// Runs the shutdown, then ends every other process of the guest (kill
/// -1 from PID 1 reaches all of its PID namespace) and reaps them.
fn restart(shutdown: Option<&[String]>) {
    if let Some(pid) = shutdown.and_then(|c| spawn_in_guest(c, true)) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            match waitpid(None::<Pid>, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(ws) if ws.pid() == Some(pid) => break,
                Ok(WaitStatus::StillAlive) => std::thread::sleep(std::time::Duration::from_millis(20)),
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    let _ = nix::sys::signal::kill(Pid::from_raw(-1), Signal::SIGKILL);
    while waitpid(None::<Pid>, None).is_ok() {}
}

/// Written by the guest's init on `host` when it ends to be started
/// again (after the start-up status byte).
pub const REBOOTING: u8 = b'R';

/// PID 1 of a running guest. Runs `startup` (the guest's rc scripts) and
/// reports its exit code as one byte on `host`: that is when `vserver
/// start` returns. From then on it reaps orphans, until SIGTERM (or
/// SIGPWR, SIGINT) asks it to stop: it runs `shutdown`, then ends, and the
/// kernel ends whatever is left in the guest. Asked to restart, it writes
/// [`REBOOTING`] on `host` first, for the host's `vsbox-watch` to start the
/// guest afresh once it has ended; with nobody reading there any more, it
/// restarts the services in place.
pub fn guest(
    startup: Option<Vec<String>>,
    shutdown: Option<Vec<String>>,
    host: std::os::fd::OwnedFd,
    reboot: Option<std::os::fd::OwnedFd>,
) -> ! {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::signal::SigSet;
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use nix::sys::wait::WaitPidFlag;
    use std::os::fd::AsFd;
    let _ = nix::unistd::setsid();
    sys::set_title("vsbox-init");
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGPWR,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        set.add(s);
    }
    let _ = set.thread_block();
    // A gone reader on `host` must give EPIPE, not end PID 1.
    let _ = sys::set_ignored(Signal::SIGPIPE, true);
    // Neither descriptor is for the guest's processes.
    for fd in std::iter::once(&host).chain(reboot.as_ref()) {
        let _ = nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
    let Ok(signals) = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC) else {
        eprintln!("vsbox init: cannot create a signalfd");
        std::process::exit(1)
    };
    let mut reported = false;
    let report = |reported: &mut bool, code: i32| {
        if std::mem::replace(reported, true) {
            return;
        }
        let _ = nix::unistd::write(&host, &[code.clamp(0, 255) as u8]);
        // From now on this process only waits: give back what set-up used.
        sys::release_own_text();
        // Nobody reads our output from now on.
        if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
            for fd in 0..3 {
                let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd);
            }
        }
    };
    let mut starting = startup.as_deref().and_then(|c| spawn_in_guest(c, false));
    if starting.is_none() {
        report(&mut reported, if startup.is_some() { 127 } else { 0 });
    }
    let mut stopping: Option<Pid> = None;
    // A restart asked for during start-up waits for its end, as on a
    // machine that is still booting.
    let mut restart_pending = false;
    // The guest's ceiling is this process's own bounding set.
    let may_boot = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|st| crate::caps::from_status(&st, "CapBnd:"))
        .is_some_and(|b| b & crate::caps::bit(crate::caps::SYS_BOOT) != 0);
    loop {
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        if let Some(l) = &reboot {
            fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let rebooting = fds.get(1).is_some_and(|f| f.revents().is_some_and(|r| !r.is_empty()));
        drop(fds);
        let mut event = None;
        if rebooting {
            event = reboot.as_ref().and_then(answer_reboot);
        } else if let Ok(Some(info)) = signals.read_signal() {
            // A sender in an outer PID namespace (the host: vserver stop,
            // vkill) shows as pid 0; inside the guest, TERM is what
            // busybox's reboot sends, USR1 and USR2 its halt and poweroff.
            // They count only in a guest whose ceiling keeps CAP_SYS_BOOT.
            let from_guest = info.ssi_pid != 0;
            event = Signal::try_from(info.ssi_signo as i32).ok().and_then(|s| match s {
                Signal::SIGCHLD => Some(Event::Child),
                // HUP (vreboot): restart in place.
                Signal::SIGHUP => Some(Event::Restart),
                Signal::SIGTERM | Signal::SIGUSR1 | Signal::SIGUSR2 if from_guest && !may_boot => None,
                Signal::SIGTERM if from_guest => Some(Event::Restart),
                _ => Some(Event::Stop),
            });
        }
        let mut restart_now = false;
        match event {
            Some(Event::Child) => loop {
                match waitpid(None::<Pid>, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(ws) => {
                        let pid = ws.pid();
                        if pid.is_some() && pid == starting {
                            starting = None;
                            report(&mut reported, exec::status_code(ws));
                            restart_now = std::mem::take(&mut restart_pending);
                        }
                        if pid.is_some() && pid == stopping {
                            std::process::exit(0);
                        }
                    }
                }
            },
            Some(Event::Restart) if starting.is_some() => restart_pending = true,
            Some(Event::Restart) => restart_now = true,
            Some(Event::Stop) if stopping.is_none() => {
                stopping = shutdown.as_deref().and_then(|c| spawn_in_guest(c, true));
                if stopping.is_none() {
                    std::process::exit(0);
                }
            }
            _ => {}
        }
        if restart_now && stopping.is_none() {
            if nix::unistd::write(&host, &[REBOOTING]) == Ok(1) {
                // Ends like a stop; the host starts the guest again.
                stopping = shutdown.as_deref().and_then(|c| spawn_in_guest(c, true));
                if stopping.is_none() {
                    std::process::exit(0);
                }
            } else {
                // Same context, same addresses, services started afresh.
                restart(shutdown.as_deref());
                starting = startup.as_deref().and_then(|c| spawn_in_guest(c, true));
            }
        }
    }
}

pub(crate) enum Event {
    Child,
    Restart,
    Stop,
}

/// Answers a reboot(2) made in the guest. It acts on the guest only, and
/// only for a caller holding CAP_SYS_BOOT in the guest's own user
/// namespace (not in one it made itself); others get EPERM, as the kernel
/// would have answered them.
pub(crate) fn answer_reboot(listener: &std::os::fd::OwnedFd) -> Option<Event> {
    const RESTART: u32 = 0x0123_4567;
    const RESTART2: u32 = 0xA1B2_C3D4;
    const HALT: u32 = 0xCDEF_0123;
    const POWER_OFF: u32 = 0x4321_FEDC;
    const CAD_ON: u32 = 0x89AB_CDEF;
    const CAD_OFF: u32 = 0;
    let n = sys::seccomp_recv(listener).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", n.pid)).unwrap_or_default();
    let ours = std::fs::read_link(format!("/proc/{}/ns/user", n.pid)).ok() == std::fs::read_link("/proc/self/ns/user").ok();
    let may = ours && crate::caps::from_status(&status, "CapEff:").is_some_and(|e| e & crate::caps::bit(crate::caps::SYS_BOOT) != 0);
    if !may {
        let _ = sys::seccomp_answer(listener, n.id, libc::EPERM);
        return None;
    }
    let (errno, event) = match n.args[2] as u32 {
        RESTART | RESTART2 => (0, Some(Event::Restart)),
        HALT | POWER_OFF => (0, Some(Event::Stop)),
        CAD_ON | CAD_OFF => (0, None),
        _ => (libc::EINVAL, None),
    };
    let _ = sys::seccomp_answer(listener, n.id, errno);
    event
}
