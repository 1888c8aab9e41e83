//! vsbox's minimal init: PID 1 of a new context unless `fakeinit` makes
//! the command itself PID 1. It starts the command, passes on the signals
//! a supervisor sends, reaps every orphan, and ends with the command's
//! status — whereupon the kernel ends whatever else is left in the PID
//! namespace.

use crate::context::exec;
use crate::sys;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
/// Passes TERM, HUP, USR1 and USR2 on to `child` from now on; with
/// `outside_only` (a vsbox process inside a context: PID 1 of a fresh
/// one, or the relay of a joined command), only those a supervisor
/// outside the context sends — a package script's `kill -HUP 1` inside
/// must not reach the command. INT and QUIT are ignored: the terminal
/// sends them to the command's group directly.
/// The signals a vsbox process passes on to the command it waits for.
const FORWARDED: [Signal; 4] = [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2];

/// For a vsbox process that stays inside a context as the parent of what
/// it runs (see [`relay`]), before it spawns that: the forwarded signals
/// get their handlers (passing on nothing until [`forward_to`] names the
/// child), and every other signal whose default would end or stop the
/// relay — sent from inside (a command's `kill -ALRM $PPID`), it would
/// orphan the command — is blocked, for good: one sigprocmask(2), not a
/// handler each, and every one of them, the C library's real-time ones
/// too (32–34, whose default also ends a process). [`relay`] reads and
/// drops what arrives, so that queued real-time signals do not pile up
/// against the sender's RLIMIT_SIGPENDING. The command does not inherit
/// that mask: sys::Spawn empties it in the child (a shell whose SIGCHLD
/// is blocked would wait for its jobs for ever). A real fault still ends
/// the relay (the kernel unblocks a synchronous SIGSEGV,
/// force_sig_info_to_task).
pub fn relay_signals(outside_only: bool) {
    let _ = sys::forward_signals(Pid::from_raw(0), &FORWARDED, outside_only);
    let forwarded = FORWARDED.iter().fold(0, |m, &s| m | sys::mask_bit(s as i32));
    let _ = sys::set_mask_raw(!forwarded);
}

/// For PID 1 of a new PID namespace, before it spawns the command: only
/// the forwarded signals get handlers (passing on those a supervisor
/// outside sends, see [`relay_signals`]). The others need none: the
/// kernel drops every signal sent to a PID namespace's init whose
/// disposition is the default, from inside and, SIGKILL and SIGSTOP
/// excepted, from outside too (SIGNAL_UNKILLABLE; sig_task_ignored in
/// kernel/signal.c). So the child that starts the command (std's
/// posix_spawn for chcontext's init) has four handlers to reset, not
/// sixty.
pub fn init_signals() {
    let _ = sys::forward_signals(Pid::from_raw(0), &FORWARDED, true);
    // No other handler is installed: vsbox skips the Rust runtime's
    // start-up (src/main.rs), whose SIGSEGV and SIGBUS handlers a guest's
    // `kill -SEGV 1` would reach (the kernel drops it now; a real fault
    // still ends PID 1).
    let _ = nix::sys::signal::SigSet::empty().thread_set_mask();
}

/// Passes the forwarded signals on to `child` from now on.
pub fn forward_to(child: Pid) {
    sys::forward_to(child);
}

pub fn forward_signals_to(child: Pid, outside_only: bool) {
    let _ = sys::forward_signals(
        child,
        &[Signal::SIGTERM, Signal::SIGHUP, Signal::SIGUSR1, Signal::SIGUSR2],
        outside_only,
    );
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        let _ = sys::set_ignored(sig, true);
    }
}

/// Runs `command` under this process acting as init; returns its status.
pub fn run(applet: &str, command: &[String]) -> i32 {
    // std spawns with posix_spawn (a vfork-style clone): no copy of this
    // process's page tables, which is most of what starting a command costs.
    init_signals();
    let child = match std::process::Command::new(&command[0]).args(&command[1..]).spawn() {
        Ok(c) => Pid::from_raw(c.id() as i32),
        Err(e) => return exec::report_failure(applet, &command[0], &e),
    };
    forward_to(child);
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
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null");
    let null = null.as_ref().map(std::os::fd::AsRawFd::as_raw_fd).ok();
    let spawned = sys::Spawn::new(&command[0], command, &guest_env("/root", None))
        .map_err(std::io::Error::from)
        .and_then(|c| {
            let out = if quiet { null } else { None };
            // init waits for its signals with them blocked; the guest's
            // services must not inherit that mask (they could not be
            // stopped with TERM).
            c.stdio([null, out, out]).spawn(|| {
                exec::reset_signals_fully();
                Ok(())
            })
        });
    match spawned {
        Ok(pid) => Some(pid),
        Err(e) => {
            eprintln!("vsbox init: cannot run {}: {e}", command[0]);
            None
        }
    }
}

/// The vsbox process that stays inside a context as the parent of what
/// it runs there (`vserver exec`, `enter` …): waits for `child` and gives
/// its status, reaping orphans meanwhile (it is their subreaper). With
/// `client` (a pidfd of the vsbox outside that waits for it),
/// it ends `child` and every descendant of it when the client ends, however
/// it ends — a killed `vserver exec` leaves nothing running.
///
/// With `initctl` (PID 1 of a fresh context of a sysvinit guest) it
/// reads and drops the requests on the guest's control channel: package
/// scripts' `init u` then returns at once, and no service is started.
pub fn relay(child: Pid, client: Option<std::os::fd::OwnedFd>, initctl: Option<std::os::fd::OwnedFd>) -> i32 {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    // SIGCHLD, and whatever else relay_signals blocked: read and dropped.
    let signals = match sys::block_raw(sys::mask_bit(libc::SIGCHLD)).and_then(sys::signalfd_raw) {
        Ok(fd) => fd,
        Err(_) => return reap_until(child),
    };
    loop {
        // First of all: the child may have ended before SIGCHLD was
        // blocked, and then no signal is left to read.
        loop {
            match waitpid(None::<Pid>, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(ws @ (WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, ..))) if pid == child => return exec::status_code(ws),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        fds.extend(initctl.iter().map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN)));
        fds.extend(client.iter().map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN)));
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);
        if client.is_some() && ready[ready.len() - 1] {
            end_descendants(child);
            return 128 + libc::SIGKILL;
        }
        if let Some(ctl) = initctl.as_ref().filter(|_| ready[1]) {
            crate::context::initctl::drain(ctl);
            continue;
        }
        // Drained: a reaped child was found above, the rest is dropped.
        let mut drained = [0u8; 16 * 128];
        while nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&signals), &mut drained).is_ok_and(|n| n > 0) {}
    }
}

/// Ends `child` and, as their subreaper, every process below this one:
/// each orphan comes back to us as a child, and is killed in turn, until
/// none is left.
fn end_descendants(child: Pid) {
    let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
    let me = nix::unistd::getpid().as_raw();
    loop {
        for pid in children_of(me) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        match waitpid(None::<Pid>, None) {
            Err(nix::errno::Errno::ECHILD) => return,
            _ => continue,
        }
    }
}

/// The processes whose parent is `parent`, from /proc (this process's
/// PID namespace).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| {
            crate::sys::read_text(format!("/proc/{pid}/stat")).is_ok_and(|st| {
                // Field 4, after the command in parentheses.
                st.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<i32>().ok())
                    == Some(parent)
            })
        })
        .collect()
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
/// start` returns. From then on it reaps orphans, until a signal asks it
/// to stop or restart (see [`meaning`]): it runs `shutdown`, then ends,
/// and the kernel ends whatever is left in the guest. Asked to restart, it writes
/// [`REBOOTING`] on `host` first, for the host's `vsbox-watch` to start the
/// guest afresh once it has ended; with nobody reading there any more, it
/// restarts the services in place.
pub fn guest(startup: Option<Vec<String>>, shutdown: Option<Vec<String>>, host: std::os::fd::OwnedFd) -> ! {
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use nix::sys::wait::WaitPidFlag;
    use std::os::fd::AsFd;
    let _ = nix::unistd::setsid();
    sys::set_title("vsbox-init");
    // Every signal with a meaning in some init convention is taken here,
    // through the signalfd; those without one in this guest's are dropped.
    let rt = sys::sigrtmin();
    let set = sys::sigset(
        &[
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGPWR,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGWINCH,
        ],
        &[rt + RT_HALT, rt + RT_POWEROFF, rt + RT_REBOOT],
    );
    let _ = set.thread_block();
    let convention = Convention::of_guest();
    // Standing in for sysvinit, it serves sysvinit's control channel.
    let initctl = (convention == Convention::SysV).then(crate::context::initctl::open).flatten();
    // An anchor of the guest's own unix namespace: made there by its
    // supervisor (as every unix socket of the guest), it lets a supervisor
    // that adopts the guest after the one before was killed find that
    // namespace (kernel/unixscope.rs, anchored_namespace). Kept for life.
    let _anchor = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    );
    // A gone reader on `host` must give EPIPE, not end PID 1.
    let _ = sys::set_ignored(Signal::SIGPIPE, true);
    // Not for the guest's processes.
    let _ = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&host),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
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
        sys::release_unused_stack();
        // Nobody reads our output from now on.
        if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
            for fd in 0..3 {
                let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd);
            }
        }
    };
    // The boot and run-level records, before the rc scripts run (as
    // sysvinit writes them), so `runlevel` answers "N 3" from then on.
    crate::context::utmp::boot(b'3');
    let mut starting = startup.as_deref().and_then(|c| spawn_in_guest(c, false));
    if starting.is_none() {
        report(&mut reported, if startup.is_some() { 127 } else { 0 });
    }
    let mut stopping: Option<Pid> = None;
    // A restart asked for during start-up waits for its end, as on a
    // machine that is still booting.
    let mut restart_pending = false;
    // The guest's ceiling is this process's own bounding set.
    let may_boot = crate::sys::read_text("/proc/self/status")
        .ok()
        .and_then(|st| crate::kernel::caps::from_status(&st, "CapBnd:"))
        .is_some_and(|b| b & crate::kernel::caps::bit(crate::kernel::caps::SYS_BOOT) != 0);
    loop {
        let mut fds: Vec<libc::pollfd> = std::iter::once(signals.as_fd())
            .chain(initctl.iter().map(|c| c.as_fd()))
            .map(|fd| libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // Each wake-up maps in code around what runs (the kernel's fault-
        // around, 64 KiB a fault) and may run deeper on the stack: given
        // back before sleeping again, the code by the call that sleeps.
        if reported {
            sys::release_unused_stack();
        }
        if sys::poll_released(&mut fds, reported).is_err() {
            continue;
        }
        let ready: Vec<bool> = fds.iter().map(|f| f.revents != 0).collect();
        drop(fds);
        let requested = initctl.is_some() && ready[1];
        let mut event = None;
        if let Some(ctl) = initctl.as_ref().filter(|_| requested) {
            let levels = crate::context::initctl::drain(ctl);
            event = levels.iter().rev().find_map(|&l| run_level_meaning(l, may_boot));
            if !may_boot && levels.iter().any(|l| matches!(l, b'0' | b'6')) {
                // Said where the guest's admin looks: its own system log.
                crate::syslog::log(
                    crate::syslog::Level::Notice,
                    "vsbox-init",
                    "run level 0 or 6 requested: ignored, the server may not reboot itself (no CAP_SYS_BOOT in S_CAPS); use vreboot or vhalt",
                );
            }
        } else if let Ok(Some(info)) = signals.read_signal() {
            // A sender in an outer PID namespace (the host: vserver stop,
            // vkill) shows as pid 0.
            let sender = if info.ssi_pid == 0 { Sender::Host } else { Sender::Guest };
            event = meaning(convention, info.ssi_signo as i32, sender, may_boot);
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
                crate::context::utmp::run_level(b'0', b'3');
                stopping = shutdown.as_deref().and_then(|c| spawn_in_guest(c, true));
                if stopping.is_none() {
                    std::process::exit(0);
                }
            }
            _ => {}
        }
        if restart_now && stopping.is_none() {
            crate::context::utmp::run_level(b'6', b'3');
            if nix::unistd::write(&host, &[REBOOTING]) == Ok(1) {
                // Ends like a stop; the host starts the guest again.
                stopping = shutdown.as_deref().and_then(|c| spawn_in_guest(c, true));
                if stopping.is_none() {
                    std::process::exit(0);
                }
            } else {
                // Same context, same addresses, services started afresh.
                restart(shutdown.as_deref());
                crate::context::utmp::boot(b'3');
                starting = startup.as_deref().and_then(|c| spawn_in_guest(c, true));
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Child,
    Restart,
    Stop,
}

/// vreboot's and vhalt's channel to vsbox's init: systemd's real-time
/// signals (systemd.special(7), "SIGRTMIN+3 halt, +4 poweroff, +5
/// reboot"), which no init convention uses for a reload, so no package
/// script sends them by accident.
pub const RT_HALT: i32 = 3;
pub const RT_POWEROFF: i32 = 4;
pub const RT_REBOOT: i32 = 5;

/// The init convention vsbox's init keeps for signals sent from inside the
/// guest: that of the init it stands in for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    /// sysvinit (init(8): HUP re-reads inittab, USR1 reopens /run/initctl,
    /// WINCH is a keyboard request, INT is Ctrl-Alt-Del, PWR a power
    /// failure, TERM re-executes init) — and systemd, runit and the rest,
    /// for which HUP and USR1 are reloads too.
    SysV,
    /// busybox init (init/init.c: TERM reboots, USR1 halts, USR2 powers
    /// off, INT is Ctrl-Alt-Del, HUP re-reads inittab).
    Busybox,
}

impl Convention {
    /// The guest's (looked up inside it): busybox's when its /sbin/init is
    /// busybox, or it has busybox's rcS and no sysvinit rc.
    pub fn of_guest() -> Convention {
        let init_is_busybox = std::fs::canonicalize("/sbin/init").is_ok_and(|p| p.file_name().is_some_and(|n| n == "busybox"));
        let busybox_rc = !std::path::Path::new("/etc/init.d/rc").exists() && std::path::Path::new("/etc/init.d/rcS").exists();
        if init_is_busybox || busybox_rc {
            Convention::Busybox
        } else {
            Convention::SysV
        }
    }
}

/// Who sent a signal to the guest's init.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// A process outside the guest's PID namespace (vserver stop, vkill).
    Host,
    Guest,
}

/// What signal `signo` asks of the guest's init, if anything. From the
/// host, TERM, INT and PWR stop the guest (SPEC §5 stop). From anyone,
/// SIGRTMIN+5 restarts it and +3/+4 stop it ([`RT_REBOOT`]: vreboot,
/// vhalt). From inside, HUP, USR1 and WINCH never do anything (package
/// scripts send them to reload or reopen: SPEC §6); the convention's
/// reboot and halt signals act only when the guest's ceiling keeps
/// CAP_SYS_BOOT (`may_boot`), as reboot(2) would.
pub(crate) fn meaning(convention: Convention, signo: i32, sender: Sender, may_boot: bool) -> Option<Event> {
    use Signal::*;
    let rt = signo - sys::sigrtmin();
    if rt == RT_REBOOT {
        return Some(Event::Restart);
    }
    if rt == RT_HALT || rt == RT_POWEROFF {
        return Some(Event::Stop);
    }
    let sig = Signal::try_from(signo).ok()?;
    if sig == SIGCHLD {
        return Some(Event::Child);
    }
    match (sender, convention, sig) {
        (Sender::Host, _, SIGTERM | SIGINT | SIGPWR) => Some(Event::Stop),
        (Sender::Host, ..) => None,
        (Sender::Guest, ..) if !may_boot => None,
        (Sender::Guest, Convention::SysV, SIGINT) => Some(Event::Restart),
        (Sender::Guest, Convention::SysV, SIGPWR) => Some(Event::Stop),
        (Sender::Guest, Convention::Busybox, SIGTERM | SIGINT) => Some(Event::Restart),
        (Sender::Guest, Convention::Busybox, SIGUSR1 | SIGUSR2) => Some(Event::Stop),
        (Sender::Guest, ..) => None,
    }
}

/// What the reboot(2) call `n` asks of the guest, and the errno it gets
/// (0, EPERM, EINVAL), for the guest's supervisor to answer it with. It
/// acts on the guest only, and only for a caller holding CAP_SYS_BOOT in
/// the guest's own user namespace `guest_userns` (a /proc/PID/ns/user; not
/// in one it made itself); others get EPERM, as the kernel would have
/// answered them.
pub(crate) fn reboot_request(n: &sys::SeccompNotif, guest_userns: &std::path::Path) -> (i32, Option<Event>) {
    const RESTART: u32 = 0x0123_4567;
    const RESTART2: u32 = 0xA1B2_C3D4;
    const HALT: u32 = 0xCDEF_0123;
    const POWER_OFF: u32 = 0x4321_FEDC;
    const CAD_ON: u32 = 0x89AB_CDEF;
    const CAD_OFF: u32 = 0;
    let status = crate::sys::read_text(format!("/proc/{}/status", n.pid)).unwrap_or_default();
    let ours = std::fs::read_link(format!("/proc/{}/ns/user", n.pid)).ok() == std::fs::read_link(guest_userns).ok();
    let may = ours
        && crate::kernel::caps::from_status(&status, "CapEff:")
            .is_some_and(|e| e & crate::kernel::caps::bit(crate::kernel::caps::SYS_BOOT) != 0);
    if !may {
        return (libc::EPERM, None);
    }
    match n.args[2] as u32 {
        RESTART | RESTART2 => (0, Some(Event::Restart)),
        HALT | POWER_OFF => (0, Some(Event::Stop)),
        CAD_ON | CAD_OFF => (0, None),
        _ => (libc::EINVAL, None),
    }
}

/// What a request for run level `level` on /run/initctl (`telinit`,
/// sysvinit's `shutdown`, `reboot`, `halt`) asks of the guest: 0 stops it
/// and 6 restarts it, for a guest whose ceiling keeps CAP_SYS_BOOT (as
/// for reboot(2)); the rest (other levels, `telinit u`/`q`) needs nothing.
pub(crate) fn run_level_meaning(level: u8, may_boot: bool) -> Option<Event> {
    match level {
        b'0' if may_boot => Some(Event::Stop),
        b'6' if may_boot => Some(Event::Restart),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_level_requests() {
        assert_eq!(run_level_meaning(b'0', true), Some(Event::Stop));
        assert_eq!(run_level_meaning(b'6', true), Some(Event::Restart));
        for l in [b'0', b'6'] {
            assert_eq!(run_level_meaning(l, false), None);
        }
        for l in [b'U', b'Q', b'2', b'3', b'S'] {
            assert_eq!(run_level_meaning(l, true), None);
        }
    }

    fn m(c: Convention, sig: Signal, from: Sender, may_boot: bool) -> Option<Event> {
        meaning(c, sig as i32, from, may_boot)
    }

    #[test]
    fn reload_and_reopen_signals_from_inside_never_act() {
        for c in [Convention::SysV, Convention::Busybox] {
            for may_boot in [false, true] {
                for sig in [Signal::SIGHUP, Signal::SIGWINCH] {
                    assert_eq!(m(c, sig, Sender::Guest, may_boot), None, "{c:?} {sig:?}");
                }
            }
            assert_eq!(m(c, Signal::SIGUSR1, Sender::Guest, false), None);
        }
        assert_eq!(m(Convention::SysV, Signal::SIGUSR1, Sender::Guest, true), None);
        assert_eq!(m(Convention::SysV, Signal::SIGTERM, Sender::Guest, true), None);
    }

    #[test]
    fn the_hosts_stop_and_the_rt_channel() {
        for c in [Convention::SysV, Convention::Busybox] {
            for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGPWR] {
                assert_eq!(m(c, sig, Sender::Host, false), Some(Event::Stop));
            }
            assert_eq!(m(c, Signal::SIGHUP, Sender::Host, true), None);
            for from in [Sender::Host, Sender::Guest] {
                let rt = sys::sigrtmin();
                assert_eq!(meaning(c, rt + RT_REBOOT, from, false), Some(Event::Restart));
                assert_eq!(meaning(c, rt + RT_HALT, from, false), Some(Event::Stop));
                assert_eq!(meaning(c, rt + RT_POWEROFF, from, false), Some(Event::Stop));
            }
            assert_eq!(m(c, Signal::SIGCHLD, Sender::Guest, false), Some(Event::Child));
        }
    }

    #[test]
    fn each_conventions_own_reboot_and_halt_need_cap_sys_boot() {
        let b = Convention::Busybox;
        assert_eq!(m(b, Signal::SIGTERM, Sender::Guest, true), Some(Event::Restart));
        assert_eq!(m(b, Signal::SIGUSR1, Sender::Guest, true), Some(Event::Stop));
        assert_eq!(m(b, Signal::SIGUSR2, Sender::Guest, true), Some(Event::Stop));
        assert_eq!(m(b, Signal::SIGTERM, Sender::Guest, false), None);
        assert_eq!(m(Convention::SysV, Signal::SIGINT, Sender::Guest, true), Some(Event::Restart));
        assert_eq!(m(Convention::SysV, Signal::SIGPWR, Sender::Guest, true), Some(Event::Stop));
        assert_eq!(m(Convention::SysV, Signal::SIGINT, Sender::Guest, false), None);
    }
}
