//! Running virtual servers: start, stop, exec and friends (SPEC §5, §6).
//!
//! ```text
//!   vserver start ── checks the configuration, creates the context's
//!   │                cgroup, adds IP aliases, attaches the address lock
//!   └── PID 1 of the guest: namespaces, pivot_root into the tree, /proc,
//!       /sys, /dev, names, limits, the irreversible restrictions, then
//!       vsbox's init runs the guest's rc scripts; `start` returns when
//!       they have finished. The guest's init is inside the guest; on
//!       the host stays only `vsbox-watch NAME`, asleep until the init
//!       ends (the guest halted or rebooted itself), to clean up then
//!       and, for a reboot, start the guest again.
//! ```
//! `stop` finds the context again from the kernel (the cgroup's
//! `trusted.vsbox.guest` attribute), asks the init to shut down, ends
//! whatever is left, and removes what `start` set up.

use crate::context::launch::{self, Owned};
use crate::context::plan::{Confinement, Namespaces, Plan, Root};
use crate::context::{self, Registry};
use crate::error::{Context, Error, Result};
use crate::guest::config::Config;
use crate::guest::{self, supervisor, Guest};
use crate::kernel::caps;
use crate::kernel::cgroup;
use crate::kernel::native;
use crate::kernel::netlock;
use crate::kernel::resources;
use crate::kernel::rtnetlink::{self, Alias};
use crate::kernel::seccomp::Policy;
use crate::kernel::userns;
use crate::paths;
use crate::sys::{self, Forked};
use crate::{abi, context::exec, context::init, context::users};
use nix::sched::CloneFlags;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long `stop` lets the guest's shutdown run before ending it.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long `start` waits for a fakeinit guest's own init to finish its
/// start-up before it returns anyway, with a warning.
pub const FAKEINIT_START_LIMIT: Duration = Duration::from_secs(120);

/// The guest's start-up and shutdown, in the forms distributions use.
const RC: &[(&str, &[&str], &[&str])] = &[("/etc/init.d/rc", &["3"], &["0"]), ("/etc/rc.d/rc", &["3"], &["0"])];
const BUSYBOX_RC: (&str, &str) = ("/etc/init.d/rcS", "/etc/init.d/rcK");

/// (start-up, shutdown) commands of the guest, looked up inside it.
fn rc_commands() -> (Option<Vec<String>>, Option<Vec<String>>) {
    let cmd = |p: &str, a: &[&str]| Some(std::iter::once(p).chain(a.iter().copied()).map(String::from).collect());
    for (script, up, down) in RC {
        if Path::new(script).is_file() {
            return (cmd(script, up), cmd(script, down));
        }
    }
    let (up, down) = BUSYBOX_RC;
    (
        Path::new(up).is_file().then(|| cmd(up, &[])).flatten(),
        Path::new(down).is_file().then(|| cmd(down, &[])).flatten(),
    )
}

/// The capability ceiling of a guest: the default vserver set plus S_CAPS.
pub fn guest_ceiling(cfg: &Config) -> caps::Request {
    let keep = caps::SECURE_KEEP | cfg.caps;
    caps::Request {
        secure: false,
        keep: 0,
        drop: !keep,
    }
}

/// The flags of the kernel's context of a guest (kernel/native.rs): its
/// own but `private`, which vsbox keeps to itself — `stop` and the
/// supervisor must reach in, and its own joins refuse it already.
fn native_flags(cfg: &Config) -> u32 {
    cfg.flags & !abi::VXF_PRIVATE
}

fn nproc_limit(cfg: &Config) -> Option<u64> {
    cfg.ulimits
        .iter()
        .filter(|l| l.resource == nix::sys::resource::Resource::RLIMIT_NPROC)
        .find_map(|l| l.hard.or(l.soft))
}

/// What the first process of a new guest context does once it is set up.
enum Then<'a> {
    /// `start`: vsbox's init with the rc scripts (or /sbin/init with
    /// fakeinit); the status pipe tells the caller when start-up is done.
    Boot { output: OwnedFd, status: OwnedFd },
    /// `exec` in a guest that is not running: just this.
    Run(Payload<'a>),
}

/// What runs inside the guest for exec, suexec, service and enter.
pub enum Payload<'a> {
    Command {
        command: &'a [String],
        user: Option<&'a str>,
    },
    /// A login shell of root on a new terminal of the guest, whose master
    /// side goes back over this socket.
    Shell(OwnedFd),
}

/// In the first process of a new guest context (PID 1). Never returns.
/// `supervisor` is a connection to what answers its unix socket calls
/// (supervisor.rs, `vsbox-watch`), which serves the fresh context of an
/// `exec` as it serves a started guest.
fn first_process(
    applet: &str,
    g: &Guest,
    cfg: &Config,
    v1_dirs: &[PathBuf],
    userns: Option<launch::OwnUserns>,
    supervisor: OwnedFd,
    then: Then,
) -> ! {
    let mut plan = new_context_plan(g, cfg, v1_dirs, userns.as_ref(), crate::kernel::lxcfs::running());
    plan.supervisor = Some(supervisor);
    match then {
        Then::Boot { output, status } => {
            // Its supervisor answers reboot(2) too, for vsbox's init, which
            // stands for the guest's.
            plan.supervised_reboot = cfg.flags & abi::VXF_FAKEINIT == 0;
            // stdout and stderr go to the caller through the output pipe,
            // the status pipe becomes fd 3 (the listener 4), nothing else
            // stays open; the originals close with the rest, so they must
            // not be dropped afterwards.
            let (output, status) = (std::mem::ManuallyDrop::new(output), std::mem::ManuallyDrop::new(status));
            plan.output = Some(output.as_raw_fd());
            plan.keep = Some(vec![status.as_raw_fd()]);
            match plan.apply() {
                Err(e) => launch::finish_child(applet, Err(e), || Ok(0)),
                Ok(()) => launch::finish_child(applet, Ok(()), || {
                    let status = sys::adopt_fd(3); // made the status pipe above
                    if cfg.flags & abi::VXF_FAKEINIT != 0 {
                        drop(status); // closed by exec anyway; its end tells `start` we are up
                                      // The guest's own init starts as a booted one does,
                                      // whatever `vserver start`'s caller ignored.
                        exec::reset_signals_fully();
                        Ok(exec::exec_env(applet, &["/sbin/init".to_owned()], &init::guest_env("/root", None)))
                    } else {
                        let (up, down) = rc_commands();
                        // Set-up's frames stay behind on the old stack,
                        // given back (init memory per guest).
                        sys::run_on_fresh_stack(Box::new(move || init::guest(up, down, status)))
                    }
                }),
            }
        }
        Then::Run(payload) => {
            plan.keep = Some(match &payload {
                Payload::Shell(sock) => vec![sock.as_raw_fd()],
                Payload::Command { .. } => Vec::new(),
            });
            launch::finish_child(applet, plan.apply(), || run_payload(applet, payload, true, false))
        }
    }
}

/// The plan of a guest's new context (start, or exec and enter when it
/// is not running), in its first process: PID 1 of its PID namespace.
/// `lxcfs`: the host's, whose /proc files the guest gets.
fn new_context_plan<'a>(
    g: &'a Guest,
    cfg: &'a Config,
    v1_dirs: &[PathBuf],
    userns: Option<&'a launch::OwnUserns>,
    lxcfs: Option<crate::kernel::lxcfs::Lxcfs>,
) -> Plan<'a> {
    Plan {
        cgroups: v1_dirs.to_vec(),
        namespaces: Namespaces::Create(
            CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWCGROUP,
        ),
        root: Root::Guest {
            tree: &g.root,
            name: &g.name,
            // Its root owns uid 0's files through an idmapped tree.
            mapped: userns.and_then(|o| o.tree.as_ref()),
            lxcfs,
        },
        hostname: Some(cfg.hostname.clone().unwrap_or_else(|| g.name.clone())),
        domainname: cfg.domainname.clone(),
        limits: &cfg.ulimits,
        nice: cfg.nice,
        // The cgroup mounts went with the host's tree: nothing to seal.
        userns: userns.map(|o| &o.ns.fd),
        native: Some(native_flags(cfg)),
        confinement: Some(Confinement {
            policy: Policy {
                lock: cfg.flags & abi::VXF_LOCK != 0,
                spectator: false,
                no_reboot: false,
                net_lock: !cfg.iproot.is_empty(),
                no_new_userns: userns.is_none(),
            },
            ceiling: guest_ceiling(cfg),
            within: u64::MAX,
        }),
        ..Plan::default()
    }
}

/// Runs the payload (its descriptors already placed by its plan: the
/// terminal socket first, then the client's lifeline when `client`).
fn run_payload(applet: &str, payload: Payload, as_init: bool, client: bool) -> Result<i32> {
    let mut next = 3;
    // None of them is for the command: close-on-exec again (dup2 cleared it).
    let mut take = |wanted: bool| {
        wanted.then(|| {
            next += 1;
            let _ = nix::fcntl::fcntl(next - 1, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
            sys::adopt_fd(next - 1)
        })
    };
    match payload {
        Payload::Command { command, user } => {
            let client = take(client);
            run_as(applet, command, user, as_init, client)
        }
        Payload::Shell(sock) => {
            // The socket is descriptor 3 now; its original is closed already.
            std::mem::forget(sock);
            let (sock, client) = (take(true), take(client));
            shell_on_new_tty(applet, sock.expect("placed at 3"), client)
        }
    }
}

/// Inside the guest: a new pseudo-terminal of its own devpts, its master
/// sent to vsbox outside, root's login shell on its slave. A shell that
/// cannot be run gives 127 (not found) or 126, as exec's command does.
fn shell_on_new_tty(applet: &str, sock: OwnedFd, client: Option<OwnedFd>) -> Result<i32> {
    use nix::fcntl::OFlag;
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).ctx(|| "open the server's /dev/ptmx")?;
    nix::pty::grantpt(&master).ctx(|| "grantpt")?;
    nix::pty::unlockpt(&master).ctx(|| "unlockpt")?;
    let name = nix::pty::ptsname_r(&master).ctx(|| "ptsname")?;
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&name)
        .ctx(|| format!("open {name}"))?;
    let fds = [master.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[std::io::IoSlice::new(b"m")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| "hand the terminal to vsbox")?;
    drop(master);
    drop(sock);
    let root = users::lookup_here("root").ok();
    let shell = root.as_ref().map_or("/bin/sh".to_owned(), |u| u.shell.clone());
    let home = root.as_ref().map_or("/root".to_owned(), |u| u.home.clone());
    let _ = std::env::set_current_dir(&home).or_else(|_| std::env::set_current_dir("/"));
    let base = shell.rsplit('/').next().unwrap_or("sh").to_owned();
    let c = sys::Spawn::new(&shell, &[format!("-{base}")], &init::guest_env(&home, Some("root")))
        .ctx(|| format!("run {shell}"))?
        .stdio([Some(slave.as_raw_fd()); 3]);
    // The shell leads a new session whose controlling terminal is the new one.
    let me = nix::unistd::getpid();
    let last = move || {
        nix::unistd::setsid().map_err(std::io::Error::from)?;
        sys::set_controlling_tty(0).map_err(std::io::Error::from)?;
        exec::tie_to_parent(me)?;
        // Like a terminal's hang-up rather than SIGKILL: the shell passes
        // it on to its jobs before it goes.
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGHUP).map_err(std::io::Error::from)
    };
    let _ = nix::sys::prctl::set_child_subreaper(true);
    sys::set_title("vsbox-enter");
    init::relay_signals(true);
    let pid = match c.spawn(last) {
        Ok(pid) => pid,
        Err(e) => return Ok(exec::report_failure(applet, &shell, &e)),
    };
    drop(slave);
    Ok(init::relay(pid, client, None))
}

/// Runs `command` inside the guest (already entered), as `user` if given;
/// under vsbox's init when `as_init` (PID 1 of a fresh context), or as the
/// child of this process, which stays its relay (see [`init::relay`]),
/// when a `client` lifeline is given.
fn run_as(applet: &str, command: &[String], user: Option<&str>, as_init: bool, client: Option<OwnedFd>) -> Result<i32> {
    let who = user.map(users::lookup_here).transpose()?;
    let env = init::guest_env(
        who.as_ref().map_or("/root", |u| u.home.as_str()),
        who.as_ref().map(|u| u.name.as_str()),
    );
    let _ = std::env::set_current_dir(who.as_ref().map_or("/", |u| u.home.as_str())).or_else(|_| std::env::set_current_dir("/"));
    if as_init || client.is_some() {
        // A fresh context: vsbox's init stays PID 1 and runs the command as
        // its child, which becomes the user. Or a joined process: it stays
        // the parent, to end them all should its client end.
        // Named for what it is, not with the host's binary path and
        // command line: PID 1 of a fresh context as the running guest's
        // init is, the relay of a joined command as vsbox-exec.
        sys::set_title(if as_init { "vsbox-init" } else { "vsbox-exec" });
        let c = sys::Spawn::new(&command[0], command, &env);
        // The command dies with this process (killed, say, by guest
        // root): it must not outlive the client, whose own end
        // init::relay handles.
        let me = nix::unistd::getpid();
        let who_then = who.clone();
        let last = move || {
            if let Some(u) = &who_then {
                users::become_user(u).map_err(|e| std::io::Error::from_raw_os_error(e.errno.map_or(libc::EPERM, |n| n as i32)))?;
            }
            exec::tie_to_parent(me)
        };
        if as_init {
            init::init_signals();
        } else {
            init::relay_signals(true);
        }
        if !as_init {
            let _ = nix::sys::prctl::set_child_subreaper(true);
        }
        // PID 1 of a fresh context of a sysvinit guest answers its control
        // channel, as the running guest's init does.
        let initctl = (as_init && init::Convention::of_guest() == init::Convention::SysV)
            .then(crate::context::initctl::open)
            .flatten();
        return Ok(match c.map_err(std::io::Error::from).and_then(|c| c.spawn(last)) {
            Ok(pid) => {
                init::forward_to(pid);
                init::relay(pid, client, initctl)
            }
            Err(e) => exec::report_failure(applet, &command[0], &e),
        });
    }
    if let Some(u) = &who {
        users::become_user(u)?;
    }
    Ok(exec::exec_env(applet, command, &env))
}

/// Addresses to add as aliases: IPROOT entries with a device (their own
/// `DEV:` or IPROOTDEV).
fn aliases(cfg: &Config) -> Vec<Alias> {
    cfg.iproot
        .iter()
        .filter_map(|ip| {
            let dev = ip.dev.clone().or_else(|| cfg.iprootdev.clone())?;
            let prefix = ip.prefix.or(cfg.iprootmask).unwrap_or(if ip.addr.is_ipv4() { 32 } else { 128 });
            Some(Alias {
                dev,
                addr: ip.addr,
                prefix,
                broadcast: cfg.iprootbcast.filter(|b| b.is_ipv4() == ip.addr.is_ipv4()),
            })
        })
        .collect()
}

/// Adds the aliases and records on the context which ones were added
/// (an address that was there already is not ours to remove).
fn add_aliases(cfg: &Config, dir: &Path) -> Result<()> {
    let mut added: Vec<String> = Vec::new();
    for a in aliases(cfg) {
        let outcome = rtnetlink::add(&a).and_then(|ours| {
            if ours {
                added.push(a.to_string());
            }
            sys::setxattr(dir, guest::XATTR_ALIASES, added.join(",").as_bytes()).ctx(|| format!("record aliases on {}", dir.display()))
        });
        if let Err(e) = outcome {
            remove_aliases(dir);
            return Err(e);
        }
    }
    Ok(())
}

fn remove_aliases(dir: &Path) {
    let Ok(Some(v)) = sys::getxattr(dir, guest::XATTR_ALIASES) else {
        return;
    };
    for a in String::from_utf8_lossy(&v).split(',').filter_map(|s| s.parse::<Alias>().ok()) {
        if let Err(e) = rtnetlink::remove(&a) {
            eprintln!("vserver: warning: {e}");
        }
    }
}

/// Removes what `start` set up for context `dir` of server `g`, which has
/// no processes left (the caller holds the server's lock), and notes it
/// in the server's record; under [`Guest::making`], so a command a hook
/// left running makes no context in between (nor had one half made).
pub(crate) fn clean_up(reg: &Registry, g: &Guest, dir: &Path) -> Result<()> {
    let _making = g.making()?;
    // (Ending processes leave it in a moment, as a removal would wait.)
    if cgroup::populated(dir) && !cgroup::wait_empty(dir, Some(Duration::from_secs(2))) {
        return Err(Error::failed(
            format!("clean up after server {}", g.name),
            format!("{} has processes (a command entered it meanwhile)", dir.display()),
        ));
    }
    clean_up_making(reg, g, dir)
}

/// [`clean_up`], with [`Guest::making`] held by the caller.
fn clean_up_making(reg: &Registry, g: &Guest, dir: &Path) -> Result<()> {
    remove_aliases(dir);
    for d in reg.layout.v1_dirs(dir) {
        cgroup::remove(&d, Some(Duration::from_secs(2)))?;
    }
    cgroup::remove(dir, Some(Duration::from_secs(2)))?;
    g.record_ended(&reg.layout, dir);
    Ok(())
}

/// Ends every process of a context (and of contexts inside it).
fn kill_all(dir: &Path) {
    if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    // Kernels before 5.14: signal until nothing is left.
    for _ in 0..100 {
        let mut any = false;
        if let Some(d) = cgroup::find_dir(dir, &|d| cgroup::procs(d).is_ok_and(|p| !p.is_empty())) {
            for pid in cgroup::procs(&d).unwrap_or_default() {
                any = true;
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            }
        }
        if !any {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The guest's init (host pid); None when it has none.
pub fn init_pid(dir: &Path) -> Option<u32> {
    launch::leader(dir).filter(|l| l.is_init).map(|l| l.pid)
}

/// Creates the context of a guest: cgroup, flags, identity, resource
/// controllers, the address lock and its own user namespace (when its
/// ceiling allows: see userns.rs). The directories are removed when the
/// returned value is dropped, unless it is forgotten.
fn new_context(
    reg: &Registry,
    g: &Guest,
    cfg: &Config,
    again: Option<u32>,
    swept: bool,
) -> Result<(u32, Owned, Option<launch::OwnUserns>)> {
    // What this machine's cgroups cannot do is the configuration's error,
    // found before anything is made.
    cfg.resources
        .check(&reg.layout)
        .map_err(|why| Error::failed(g.conf.display(), why))?;
    let base = reg.layout.base();
    // A restarted guest keeps its dynamic id while nobody has taken it.
    let (xid, dir) = match (cfg.context, again) {
        (None, Some(xid)) => reg
            .create(&base, Some(xid), &paths::rundir(), swept)
            .or_else(|_| reg.create(&base, None, &paths::rundir(), swept))?,
        (want, _) => reg.create(&base, want, &paths::rundir(), swept)?,
    };
    let mut owned = Owned { dirs: vec![dir.clone()] };
    // Recorded before it is tagged: a tagged context of the server is the
    // recorded one or an older one without processes (Guest::contexts).
    // Its v1 directories to be: those a live `set` makes later too.
    let mut recorded = vec![dir.clone()];
    recorded.extend(reg.layout.v1_places(&dir));
    // The context recorded before: running, it was made since the caller
    // looked (by a command a pre-start hook left running, which does not
    // take the lock its caller holds), and is the server running already;
    // empty (a clean-up cut short), the new record would hide it from
    // every later look, and nothing would remove it.
    if let Some(before) = g.recorded_ours(&reg.layout) {
        if cgroup::populated(&before) {
            return Err(g.running_already(&before));
        }
        clean_up_making(reg, g, &before)?;
    }
    g.record_context(&reg.layout, &recorded)?;
    sys::setxattr(&dir, guest::XATTR_GUEST, g.tag().as_bytes()).ctx(|| format!("record the server on {}", dir.display()))?;
    if cfg.flags != 0 {
        context::record_flags(&dir, cfg.flags)?;
    }
    owned
        .dirs
        .extend(launch::resource_dirs(reg, &dir, cfg.flags, nproc_limit(cfg), &cfg.resources)?);
    crate::kernel::devices::limit_cgroup(&dir, &cfg.devices)?;
    let mut addrs = cfg.addresses()?;
    if !addrs.is_empty() {
        if addrs.wants_lback() {
            let lb = cfg.lback.unwrap_or_else(|| netlock::lback_for_xid(xid));
            let refuse = |why: String| Err(Error::failed(format!("start server {}", g.name), why));
            if addrs.v4.contains(&lb) {
                return refuse(format!("its loopback address {lb} is one of its IPROOT addresses (IPROOT_LBACK)"));
            }
            // Another context's loopback, or an address another is locked
            // to: its services would be taken over on those ports.
            let locked_to = |d: &Path| {
                sys::getxattr(d, netlock::XATTR_IP).ok().flatten().is_some_and(|v| {
                    String::from_utf8_lossy(&v)
                        .split_whitespace()
                        .any(|a| a.parse::<std::net::Ipv4Addr>().ok() == Some(lb))
                })
            };
            if let Some((other, _)) = reg
                .list()
                .into_iter()
                .find(|(x, d)| *x != xid && (netlock::lback_of(d) == Some(lb) || locked_to(d)))
            {
                return refuse(format!("its loopback address {lb} is taken by context {other} (IPROOT_LBACK)"));
            }
            addrs.lback = Some(lb);
        }
        netlock::lock_cgroup(&reg.layout, &dir, &addrs)?;
    }
    let userns = launch::own_user_namespace(&dir, xid, caps::SECURE_KEEP | cfg.caps, &cfg.userns_limits, Some(&g.root))?;
    Ok((xid, owned, userns))
}

/// `vserver NAME start`.
pub fn start(applet: &str, g: &Guest) -> Result<()> {
    let again: Option<u32> = std::env::var(START_AGAIN).ok().and_then(|v| v.parse().ok());
    let swept = std::env::var_os(context::SWEPT).is_some();
    // A reboot's start, run by the server's clean-up (see after_end),
    // which holds the server's lock: in the same context again.
    let _lock = match again {
        Some(_) => g.lock_unless_held()?,
        None => Some(g.lock()?),
    };
    // Meant for this process alone: not for the watcher it may start, nor
    // for what that runs later (a hook's `vserver start` of another server).
    for k in [START_AGAIN, context::SWEPT, crate::guest::LOCK_HELD] {
        std::env::remove_var(k);
    }
    start_locked(applet, g, again, swept)
}

/// The context id a reboot's `vserver NAME start` takes again; set by the
/// clean-up that runs it (with the server's lock held: crate::guest's
/// LOCK_HELD).
pub(crate) const START_AGAIN: &str = "VSBOX_START_AGAIN";

/// `vserver NAME restart`: stop (when running) and start again, in the
/// same context when its id is dynamic and still free.
pub fn restart(applet: &str, g: &Guest) -> Result<()> {
    let xid = match g.running(&Registry::open()?) {
        Some(_) => Some(stop(g)?),
        None => None,
    };
    start_as(applet, g, xid)
}

fn start_as(applet: &str, g: &Guest, again: Option<u32>) -> Result<()> {
    let _lock = g.lock()?;
    start_locked(applet, g, again, false)
}

/// What vsbox runs inside a guest (its init, the process that joins it
/// for exec and enter) is the host's binary, with the host's environment:
/// guest root must not open it through /proc/PID/exe (to rewrite the
/// host's vsbox once nothing runs it), nor read /proc/PID/environ.
fn hide_from_guest() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).ctx(|| "make this process non-dumpable")
}

/// `start`, with the guest's lock held by the caller.
fn start_locked(applet: &str, g: &Guest, again: Option<u32>, swept: bool) -> Result<()> {
    let cfg = g.config()?;
    g.check_tree()?;
    let reg = Registry::open()?;
    // One look for both: a running context, and stale ones to clean up.
    let found = g.contexts(&reg.layout);
    if found.iter().any(|d| cgroup::populated(d)) {
        return Err(Error::failed(format!("start server {}", g.name), "it is running already"));
    }
    for stale in &found {
        clean_up(&reg, g, stale)?;
    }
    // Its disk quota as configured (a stale one lifted), before it runs;
    // without DISK_* keys, util-vserver's dlimits/ if it has them.
    let disk = match cfg.disk.is_set() {
        true => cfg.disk,
        false => crate::guest::quota::from_util_vserver(&g.conf.with_extension(""), &g.root)?.unwrap_or_default(),
    };
    crate::guest::quota::apply(&g.name, &g.root, &disk)?;
    g.hook("pre-start")?;
    hide_from_guest()?;
    if let Some(why) = crate::kernel::unixscope::missing() {
        return Err(Error::failed(format!("start server {}", g.name), why));
    }
    // Until the init is in the new context: a command the hook left
    // running (it skips the lock held here) waits, then joins this one;
    // one that made a context first makes this start refuse (the record's
    // check in new_context).
    let making = g.making()?;
    let (xid, owned, userns) = new_context(&reg, g, &cfg, again, swept)?;
    let dir = owned.dirs[0].clone();
    if let Err(e) = add_aliases(&cfg, &dir) {
        drop(owned);
        return Err(e);
    }
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe")?;
    let (st_r, st_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe")?;
    // For a supervisor that adopts the guest later (supervisor.rs); without
    // the record, a reboot then restarts in place.
    if let Ok(st) = nix::sys::stat::fstat(st_r.as_raw_fd()) {
        let _ = sys::setxattr(&dir, context::XATTR_STATUS_PIPE, st.st_ino.to_string().as_bytes());
    }
    // The supervisor first: from its filter on, the guest's first process
    // needs it for every unix socket. `vsbox-watch` (supervisor.rs) answers
    // the guest's unix socket calls and reboot(2) until the init ends — the
    // guest halted or rebooted itself, or its init died — and then
    // [`after_end`] runs.
    let (link, conn) = match supervisor::spawn(g, &dir, userns.as_ref().map(|o| &o.ns.fd), xid, supervisor::Kind::Boot) {
        Ok(l) => l,
        Err(e) => {
            remove_aliases(&dir);
            drop(owned);
            return Err(e);
        }
    };
    let cgroup_dir = launch::open_dir(&dir)?;
    match sys::fork_into(&cgroup_dir, CloneFlags::CLONE_NEWPID).ctx(|| format!("start a process in {}", dir.display()))? {
        Forked::Child => {
            // The lock is the parent's to release (its copy closes with the
            // other inherited descriptors).
            std::mem::forget(making);
            drop((out_r, st_r, link));
            let v1 = owned.dirs[1..].to_vec();
            std::mem::forget(owned);
            first_process(
                applet,
                g,
                &cfg,
                &v1,
                userns,
                conn,
                Then::Boot {
                    output: out_w,
                    status: st_w,
                },
            )
        }
        Forked::Parent(child) => {
            drop((out_w, st_w, conn, making));
            if let Err(e) = sys::pidfd_open(child)
                .ctx(|| "pidfd_open")
                .and_then(|pidfd| supervisor::announce_init(&link, child, &pidfd, Some(&st_r)))
            {
                eprintln!("{applet}: warning: {e}: nothing will clean up after {} if it halts itself", g.name);
            }
            let mut started = relay_start_up(out_r, &st_r, child);
            if started == Some(0) && cfg.flags & abi::VXF_FAKEINIT != 0 {
                // The guest's own init is running; its start-up is not done
                // before its rc scripts are.
                // It reads the guest's processes: from inside its context
                // on the patched kernel.
                let up = native::within(xid, || {
                    i32::from(!crate::guest::fakeinit::wait_started(
                        &dir,
                        child.as_raw() as u32,
                        FAKEINIT_START_LIMIT,
                    ))
                });
                if !matches!(up, Ok(0)) {
                    if cgroup::procs(&dir).is_ok_and(|p| p.contains(&(child.as_raw() as u32))) {
                        eprintln!(
                            "{applet}: warning: the start-up of {} has not finished after {} s; not waiting longer",
                            g.name,
                            FAKEINIT_START_LIMIT.as_secs()
                        );
                    } else {
                        started = None;
                    }
                }
            }
            // Start-up is over: the init's status pipe is its supervisor's
            // from now on (supervisor.rs, serve).
            drop(link);
            match started {
                Some(code) => {
                    std::mem::forget(owned); // the guest runs on; `stop` removes it
                    if code != 0 {
                        eprintln!("{applet}: warning: the start-up scripts of {} exited with status {code}", g.name);
                    }
                    g.hook("post-start")
                }
                None => {
                    let _ = exec::wait_for(child);
                    kill_all(&dir);
                    remove_aliases(&dir);
                    drop(owned);
                    Err(Error::failed(format!("start server {}", g.name), "its init ended during start-up"))
                }
            }
        }
    }
}

/// After a started guest's init has ended and its context is empty (in
/// `vsbox-cleanup NAME`, which the watcher leaves for it): removes what
/// `start` set up and runs the post-stop hook, as `stop` would, and for a
/// reboot (the init's byte on its status pipe) starts the guest again in
/// the same context. It takes the guest's lock first, and acts only on
/// the very directory `start` made (inode `ino`), so a `stop` under way or
/// a later start is never disturbed.
pub(crate) fn after_end(g: &Guest, dir: &Path, ino: u64, xid: u32, reboot: bool) {
    use crate::syslog::{log, Level};
    use std::os::unix::fs::MetadataExt;
    let tag = "vsbox-watch";
    let same = || std::fs::metadata(dir).is_ok_and(|m| m.ino() == ino);
    if !same() {
        return; // `stop` removed it, or `start` failed
    }
    // Held until the guest is up again: a `stop` meanwhile waits and then
    // stops the restarted guest.
    let Ok(_lock) = g.lock() else { return };
    if !same() || cgroup::populated(dir) {
        return;
    }
    if let Err(e) = Registry::open().and_then(|reg| clean_up(&reg, g, dir)) {
        return log(Level::Err, tag, &format!("clean up after server {}: {e}", g.name));
    }
    if let Err(e) = g.hook("post-stop") {
        log(Level::Err, tag, &e.to_string());
    }
    if !reboot {
        return log(Level::Notice, tag, &format!("server {} has stopped; cleaned up", g.name));
    }
    // `vserver NAME start` in a fresh process image, not from this one:
    // the server's new init is forked from the start, and this process,
    // forked from vsbox-watch, carries the watcher's heap, which the init
    // would keep (a rebooted server's init was three times the size of a
    // started one's).
    use std::os::unix::process::CommandExt;
    let started = std::process::Command::new("/proc/self/exe")
        .arg0("vserver")
        .args([g.name.as_str(), "start"])
        .env(crate::guest::LOCK_HELD, &g.name)
        .env(START_AGAIN, xid.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .output();
    match started {
        Ok(o) if o.status.success() => log(Level::Notice, tag, &format!("server {} restarted", g.name)),
        Ok(o) => {
            let why = String::from_utf8_lossy(&o.stderr);
            let why = why.lines().last().unwrap_or("it failed");
            log(Level::Err, tag, &format!("server {} stopped to restart, but: {why}", g.name));
        }
        Err(e) => log(
            Level::Err,
            tag,
            &format!("server {} stopped to restart, but: run vserver: {e}", g.name),
        ),
    }
}

/// Copies the guest's start-up output to our stdout until the status pipe
/// reports the end of start-up: Some(exit code of the rc scripts), or
/// None if the guest's first process died first.
fn relay_start_up(out: OwnedFd, status: &OwnedFd, child: nix::unistd::Pid) -> Option<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::io::Write;
    let mut buf = [0u8; 4096];
    let mut out_open = true;
    loop {
        let mut fds = vec![PollFd::new(status.as_fd_ref(), PollFlags::POLLIN)];
        if out_open {
            fds.push(PollFd::new(out.as_fd_ref(), PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let out_ready = out_open && fds[1].revents().is_some_and(|r| !r.is_empty());
        let status_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        if out_ready {
            match nix::unistd::read(out.as_raw_fd(), &mut buf) {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => {
                    let _ = std::io::stdout().write_all(&buf[..n]);
                    let _ = std::io::stdout().flush();
                }
            }
            continue; // drain output before looking at the status
        }
        if status_ready {
            let mut b = [0u8; 1];
            return match nix::unistd::read(status.as_raw_fd(), &mut b) {
                Ok(1) => Some(i32::from(b[0])),
                // End without a byte: fakeinit's exec closed it, or PID 1 died.
                _ => {
                    for _ in 0..20 {
                        if let Ok(nix::sys::wait::WaitStatus::Exited(..) | nix::sys::wait::WaitStatus::Signaled(..)) =
                            nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
                        {
                            return None;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Some(0)
                }
            };
        }
    }
}

trait AsFdRef {
    fn as_fd_ref(&self) -> std::os::fd::BorrowedFd<'_>;
}
impl AsFdRef for OwnedFd {
    fn as_fd_ref(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self)
    }
}

/// `vserver NAME stop`; gives the id of the context it ended.
pub fn stop(g: &Guest) -> Result<u32> {
    let _lock = g.lock()?;
    let reg = Registry::open()?;
    let Some(dir) = g.context_dir(&reg.layout) else {
        return Err(Error::failed(format!("stop server {}", g.name), "it is not running"));
    };
    let was_running = cgroup::populated(&dir);
    let xid = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()).unwrap_or(0);
    if was_running {
        g.hook("pre-stop")?;
        // The host is blind to its guests on the patched kernel: what
        // signals and reads the guest's processes joins its context.
        native::within(xid, || {
            stop_processes(&dir);
            0
        })?;
    }
    clean_up(&reg, g, &dir)?;
    // Its control socket, should no watcher have been there to remove it.
    supervisor::remove_unserved_socket(g);
    if was_running {
        g.hook("post-stop")?;
    }
    Ok(xid)
}

/// Asks the guest's init to stop, as it understands, and ends what is
/// left after the grace period.
fn stop_processes(dir: &Path) {
    let fakeinit = context::flags_of(dir) & abi::VXF_FAKEINIT != 0;
    let stopped = match init_pid(dir) {
        // The guest's own init, asked the way it understands.
        Some(pid) if fakeinit => {
            let asked = crate::guest::fakeinit::ask_to_stop(pid);
            crate::guest::fakeinit::wait_stopped(dir, pid, asked, STOP_GRACE)
        }
        Some(pid) => {
            // vsbox's init: TERM from the host means stop.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM);
            cgroup::wait_empty(dir, Some(STOP_GRACE))
        }
        None => false,
    };
    if !stopped || cgroup::populated(dir) {
        kill_all(dir);
        cgroup::wait_empty(dir, Some(Duration::from_secs(5)));
    }
}

/// `vserver NAME exec|suexec|service …`: in the running guest, or in a
/// fresh context of it (no services) when it is not running.
pub fn exec(applet: &str, g: &Guest, command: &[String], user: Option<&str>) -> Result<i32> {
    sys::alloc::short_lived();
    let (child, owned) = spawn_in(applet, g, Payload::Command { command, user })?;
    let code = launch::supervise(child);
    drop(owned);
    Ok(code)
}

/// `vserver NAME enter`: root's login shell on a new terminal of the
/// guest. The caller's terminal never enters the guest: the guest side
/// hands vsbox the master of its new terminal, and vsbox relays.
pub fn enter(applet: &str, g: &Guest) -> Result<i32> {
    sys::alloc::short_lived();
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).ctx(|| "socketpair")?;
    let (child, owned) = spawn_in(applet, g, Payload::Shell(theirs))?;
    let relayed = crate::context::tty::relay_from(&ours);
    let code = exec::wait_for(child);
    drop(owned);
    relayed?;
    Ok(code)
}

/// Starts the payload in the guest: joins the running context, or makes
/// a fresh one (returned, so it is removed when dropped). In the calling
/// process only the child's pid comes back.
fn spawn_in(applet: &str, g: &Guest, payload: Payload) -> Result<(nix::unistd::Pid, Option<Owned>)> {
    let cfg = g.config()?;
    g.check_tree()?;
    hide_from_guest()?;
    if let Some(why) = crate::kernel::unixscope::missing() {
        return Err(Error::failed(format!("enter server {}", g.name), why));
    }
    // The server's context as its start recorded it: joined without the
    // cgroup layout (mountinfo, 34 us) or a look at the other contexts.
    // Not one restarting, nor a fresh context (it has an owner, whose end
    // ends it): those take the way below.
    let mut payload = payload;
    if let Some(rec) = g.recorded().filter(|r| !restarting(&r.dir) && cgroup::owner_of(&r.dir).is_none()) {
        if let Ok(target) = launch::Target::open_with(rec.xid, &rec.dir, rec.v1) {
            match join(applet, target, &cfg, payload)? {
                Ok(child) => return Ok((child, None)),
                Err(p) => payload = p,
            }
        }
    }
    let reg = Registry::open()?;
    // One reading of the contexts for both, unless it waited.
    let found = wait_for_restart(g, &reg);
    let payload = match joinable(g, &reg, found)? {
        Some(target) => match join(applet, target, &cfg, payload)? {
            Ok(child) => return Ok((child, None)),
            Err(payload) => payload,
        },
        None => payload,
    };
    // Not running (or its context ending): a start, stop or reboot may be
    // under way; wait for it and look again, and hold the lock until our
    // process is in its context, so a start meanwhile sees the server in
    // use.
    wait_for_restart(g, &reg);
    let lock = g.lock_unless_held()?;
    // Also when a hook's caller holds the lock: see Guest::making.
    let making = g.making()?;
    if let Some(target) = joinable(g, &reg, None)? {
        drop((making, lock));
        return match join(applet, target, &cfg, payload)? {
            Ok(child) => Ok((child, None)),
            Err(_) => Err(ending(g)),
        };
    }
    let (xid, owned, userns) = new_context(&reg, g, &cfg, None, false)?;
    // This process removes the context when the payload ends; should it be
    // killed first, the next launch's sweep does (cgroup::sweep).
    cgroup::record_owner(&owned.dirs[0])?;
    let cgroup_dir = launch::open_dir(&owned.dirs[0])?;
    let lifeline = exec::Lifeline::of_this_process()?;
    let (link, conn) = supervisor::spawn(g, &owned.dirs[0], userns.as_ref().map(|o| &o.ns.fd), xid, supervisor::Kind::Fresh)?;
    match sys::fork_into(&cgroup_dir, CloneFlags::CLONE_NEWPID).ctx(|| "start a process in the server")? {
        Forked::Child => {
            // PID 1 of the fresh context dies with the client, and the
            // kernel then ends everything in its PID namespace.
            exec::tie_once(lifeline.fd());
            // Unlocking here would unlock for the parent too; the copy of
            // the descriptor closes with the others before the payload runs.
            std::mem::forget(lock);
            std::mem::forget(making);
            let v1 = owned.dirs[1..].to_vec();
            std::mem::forget(owned);
            drop(link);
            first_process(applet, g, &cfg, &v1, userns, conn, Then::Run(payload))
        }
        Forked::Parent(child) => {
            drop(conn);
            sys::pidfd_open(child)
                .ctx(|| "pidfd_open")
                .and_then(|pidfd| supervisor::announce_init(&link, child, &pidfd, None))?;
            Ok((child, Some(owned)))
        }
    }
}

/// The error of a command that found the server's context ending (and
/// not emptying within a moment).
fn ending(g: &Guest) -> Error {
    Error::failed(format!("enter server {}", g.name), "its context is ending; try again")
}

/// A server that rebooted itself is down for a moment, from its old
/// context's end until its supervisor has started it again; a command
/// entering it then waits for that (up to RESTART_WAIT), since a fresh
/// context of its own would make the restart fail ("running already").
/// The server's context directories when it did not wait (as read).
fn wait_for_restart(g: &Guest, reg: &Registry) -> Option<Vec<PathBuf>> {
    let dirs = g.running_contexts(&reg.layout);
    if !dirs.first().is_some_and(|d| restarting(d)) {
        return Some(dirs);
    }
    let end = std::time::Instant::now() + RESTART_WAIT;
    while std::time::Instant::now() < end {
        let dir = g.context_dir(&reg.layout);
        if dir.as_ref().is_some_and(|d| cgroup::populated(d) && !restarting(d)) {
            return None; // up again (read again by the caller)
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Whether context `dir` is between a reboot's end and its new start.
fn restarting(dir: &Path) -> bool {
    sys::getxattr(dir, context::XATTR_RESTARTING).ok().flatten().is_some()
}

/// How long a command entering a restarting server waits for it.
const RESTART_WAIT: Duration = Duration::from_secs(10);

/// The guest's running context, opened for joining, unless it is going
/// away: the fresh context of a killed `exec` dies with its PID 1, whose
/// namespaces may be gone already; it is waited for, a moment, and then
/// counts as not running. `found`: the server's context directories,
/// when just read.
fn joinable(g: &Guest, reg: &Registry, found: Option<Vec<PathBuf>>) -> Result<Option<launch::Target>> {
    let running = match found {
        Some(dirs) => Guest::running_among(dirs),
        None => g.running(reg),
    };
    let Some((xid, dir)) = running else { return Ok(None) };
    // Only a fresh context has an owner, its `exec`, and its PID 1 dies
    // with it: once the owner has gone, a process let in now would be
    // killed with the rest a moment later (exit 137, the command unrun).
    if cgroup::owner_gone(&dir) {
        return match cgroup::wait_empty(&dir, Some(Duration::from_secs(2))) {
            true => Ok(None),
            false => Err(ending(g)),
        };
    }
    match launch::Target::open(&reg.layout, xid, &dir) {
        Ok(t) => Ok(Some(t)),
        Err(_) if cgroup::wait_empty(&dir, Some(Duration::from_secs(2))) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Forks a process into the running guest for `payload`; the guest's
/// supervisor takes the process's filter. Gives the payload back when the
/// context turned out to be ending (a killed `exec`'s fresh one).
fn join<'a>(
    applet: &str,
    target: launch::Target,
    cfg: &Config,
    payload: Payload<'a>,
) -> Result<std::result::Result<nix::unistd::Pid, Payload<'a>>> {
    let lifeline = exec::Lifeline::of_this_process()?;
    // A killed supervisor's guest is adopted by a new one, once.
    let conn = match target.connect_supervisor() {
        Err(_) if supervisor::revive().is_ok() => target.connect_supervisor(),
        conn => conn,
    };
    let conn = match conn {
        Ok(conn) => conn,
        Err(_) if target.ending() => return Ok(Err(payload)),
        Err(e) => return Err(e),
    };
    let Some(forked) = target.fork()? else {
        return Ok(Err(payload));
    };
    match forked {
        Forked::Parent(child) => Ok(Ok(child)),
        Forked::Child => {
            // A guest that may reboot itself: the supervisor answers the
            // reboot(2) of what runs below (its filter, unlike the init's,
            // is theirs). Otherwise reboot(2) just fails.
            let may_reboot = target.ceiling & caps::bit(caps::SYS_BOOT) != 0;
            let mut keep: Vec<i32> = match &payload {
                Payload::Shell(sock) => vec![sock.as_raw_fd()],
                Payload::Command { .. } => Vec::new(),
            };
            // The lifeline: this process stays the command's parent and
            // ends it, and all below it, when the client ends, however it
            // ends.
            keep.push(lifeline.fd());
            let plan = Plan {
                cwd: Some(PathBuf::from("/")),
                limits: &cfg.ulimits,
                nice: cfg.nice,
                supervised_reboot: may_reboot,
                supervisor: conn,
                keep: Some(keep),
                ..target.join_plan(caps::Request::default(), !may_reboot, true)
            };
            match plan.apply() {
                Err(e) => launch::finish_child(applet, Err(e), || Ok(0)),
                Ok(()) => launch::finish_child(applet, Ok(()), || run_payload(applet, payload, false, true)),
            }
        }
    }
}

/// Whether the server runs (`vserver NAME running`): its configuration
/// is not read, so a slip made in it while the server runs does not
/// make it look stopped.
pub fn is_running(g: &Guest) -> Result<bool> {
    Ok(g.running(&Registry::open()?).is_some())
}

/// `status` of a running server whose configuration does not parse: what
/// is known without it, and the error (a stopped one's is the error).
fn status_unconfigured(g: &Guest, err: Error, json: bool) -> Result<(bool, String)> {
    let reg = Registry::open()?;
    let Some((xid, dir)) = g.running(&reg) else { return Err(err) };
    let procs = count_procs(&dir);
    let err = err.to_string();
    Ok((
        true,
        if json {
            use crate::json;
            let text = json::object(&[
                ("name", json::str(&g.name)),
                ("running", "true".to_owned()),
                ("context", xid.to_string()),
                ("processes", procs.to_string()),
                ("config_error", json::str(&err)),
            ]);
            format!("{text}\n")
        } else {
            format!(
                "Server {} is running\ncontext: {xid}\nprocesses: {procs}\nconfiguration: {err} (start, exec and set read it: fix it)\n",
                g.name
            )
        },
    ))
}

/// One line per fact, for `vserver NAME status`.
pub fn status(g: &Guest) -> Result<(bool, String)> {
    let cfg = match g.config() {
        Ok(c) => c,
        Err(e) => return status_unconfigured(g, e, false),
    };
    let reg = Registry::open()?;
    let addrs = cfg.addresses()?;
    let addrs = if addrs.is_empty() {
        "none (not bound)".to_owned()
    } else {
        addrs.to_string()
    };
    Ok(match g.running(&reg) {
        Some((xid, dir)) => {
            let procs = count_procs(&dir);
            // Read from its leader's /proc files: as the spectator on the
            // patched kernel, whose host is blind to its guests.
            let own = native::spectate(|| {
                launch::leader(&dir)
                    .and_then(|l| userns::root_uid_of(l.pid).ok())
                    .flatten()
                    .map_or_else(String::new, |root| root.to_string())
            })
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .map(|root| (xid, root));
            let lback = match netlock::lback_of(&dir) {
                Some(lb) => format!("loopback: {lb} (its 127.0.0.1)\n"),
                None => String::new(),
            };
            let adopted = sys::getxattr(&dir, context::XATTR_ADOPTED).ok().flatten();
            let sockets = if supervisor::connect(g).is_err() {
                format!(
                    "NOT SUPERVISED: vsbox-watch is gone; `vserver {} exec` or `vservers` starts it again",
                    g.name
                )
            } else if let Some(when) = adopted.and_then(|w| String::from_utf8(w).ok()?.parse::<u64>().ok()) {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                format!(
                    "its own abstract names (made by vsbox-watch), but what ran {} s ago, when a new vsbox-watch took over from a killed one, and what it starts since make none, nor sysinfo(2) or reboot(2) (ENOSYS): restart the server to mend them",
                    now.saturating_sub(when)
                )
            } else {
                "its own abstract names (made by vsbox-watch)".to_owned()
            };
            (
                true,
                format!(
                    "Server {} is running\ncontext: {xid}\nprocesses: {procs}\n{}{}{}addresses: {addrs}\n{lback}user namespace: {}\nunix sockets: {sockets}\n",
                    g.name,
                    resources::describe(&live_resources(&reg, &dir, &cfg), Some(&resources::usage(&reg.layout, &dir))),
                    disk_text(g, &cfg),
                    proc_text(Some(&dir)),
                    userns_text(&cfg, own),
                ),
            )
        }
        None => {
            let set = cfg.addresses()?;
            let lback = match (set.wants_lback(), cfg.lback, cfg.context) {
                (false, ..) => String::new(),
                (true, Some(lb), _) => format!("loopback: {lb} (its 127.0.0.1)\n"),
                (true, None, Some(xid)) => format!("loopback: {} (its 127.0.0.1)\n", netlock::lback_for_xid(xid)),
                (true, None, None) => "loopback: 127.250.X.Y from its context id (its 127.0.0.1)\n".to_owned(),
            };
            (
                false,
                format!(
                    "Server {} is not running\n{}{}{}addresses: {addrs}\n{lback}user namespace: {}\n",
                    g.name,
                    resources::describe(&cfg.resources, None),
                    disk_text(g, &cfg),
                    proc_text(None),
                    userns_text(&cfg, None)
                ),
            )
        }
    })
}

/// Where the server's /proc/meminfo and the others come from: a running
/// one's (context directory `dir`) read from its leader's mountinfo, as
/// the spectator on the patched kernel; None: unknown (its leader has
/// gone).
fn proc_source(running: Option<&Path>) -> Option<crate::kernel::lxcfs::Proc> {
    use crate::kernel::lxcfs::{self, Proc};
    let host = lxcfs::running();
    let Some(dir) = running else {
        return Some(Proc::WhenRunning { lxcfs: host.is_some() });
    };
    let text = native::spectate(|| {
        launch::leader(dir)
            .and_then(|l| std::fs::read(format!("/proc/{}/mountinfo", l.pid)).ok())
            .map_or_else(String::new, |t| String::from_utf8_lossy(&t).into_owned())
    })
    .ok()
    .filter(|t| !t.is_empty())?;
    Some(Proc::of_running(&text, host.as_ref()))
}

/// `status`'s `/proc:` line (`running`: the context's directory).
fn proc_text(running: Option<&Path>) -> String {
    proc_source(running).map_or_else(String::new, |p| p.describe(native::available()))
}

/// Whether the guest has (or, not running, will have) its own user
/// namespace, for `status`; `own` is the running guest's context id when
/// it has one.
fn userns_text(cfg: &Config, own: Option<(u32, u32)>) -> String {
    if let Some((xid, root)) = own {
        let owner = userns::owner_uid(xid);
        return if root == owner {
            format!("own (its root is host uid {owner}, which every per-user kernel limit is charged to)")
        } else {
            format!(
                "own, but its root is host uid {root}: a file system in its tree takes no idmapped mounts; \
                 the per-namespace limits (inotify, message queues, pending signals) are charged to host uid {owner}, \
                 the per-uid ones (epoll watches, pipe pages, descriptors in flight) are shared with host root"
            )
        };
    }
    let host_only = cfg.caps & userns::HOST_ONLY;
    if host_only == 0 {
        return "own, when running".to_owned();
    }
    let names: Vec<String> = (0..64).filter(|c| host_only & caps::bit(*c) != 0).map(caps::name).collect();
    format!("the host's (S_CAPS grants {}, which counts only there)", names.join(" "))
}

/// `vserver NAME status --json`: one object with the server's name,
/// whether it runs, its context and process count, its addresses, and each
/// limit next to its use (bytes, µs; null where none): `memory` {used,
/// limit, oom_kills}, `swap_limit`, `cpu` {used_usec, limit_cpus, weight,
/// cpus}, `disk` {used, limit, inodes, inode_limit}, `cgroup` {file:
/// value}, and `proc`: where its /proc/meminfo and the others come from
/// ([`crate::kernel::lxcfs::Proc::json_name`]; null: unknown). A running
/// server's limits are those in force.
pub fn status_json(g: &Guest) -> Result<(bool, String)> {
    use crate::json;
    let cfg = match g.config() {
        Ok(c) => c,
        Err(e) => return status_unconfigured(g, e, true),
    };
    let reg = Registry::open()?;
    cfg.addresses()?;
    let addr_list: Vec<String> = cfg.iproot.iter().map(|ip| json::str(&ip.addr.to_string())).collect();
    let running = g.running(&reg);
    let (res, usage) = match &running {
        Some((_, dir)) => (live_resources(&reg, dir, &cfg), Some(resources::usage(&reg.layout, dir))),
        None => (cfg.resources.clone(), None),
    };
    let u = usage.clone().unwrap_or_default();
    let file = |f: &str| res.files.get(f).filter(|v| !v.starts_with("max"));
    let limit_cpus = file("cpu.max").and_then(|v| {
        let (q, p) = v.split_once(' ')?;
        Some(format!("{}", q.parse::<f64>().ok()? / p.parse::<f64>().ok()?))
    });
    let disk = crate::guest::quota::usage(&g.root);
    let other: Vec<(&str, String)> = res
        .files
        .iter()
        .filter(|(f, _)| !resources::READ_BACK.contains(&f.as_str()))
        .map(|(f, v)| (f.as_str(), json::str(v)))
        .collect();
    let text = json::object(&[
        ("name", json::str(&g.name)),
        ("running", running.is_some().to_string()),
        ("context", json::num(running.as_ref().map(|(x, _)| u64::from(*x)))),
        ("processes", json::num(running.as_ref().map(|(_, d)| count_procs(d) as u64))),
        ("addresses", format!("[{}]", addr_list.join(","))),
        (
            "memory",
            json::object(&[
                ("used", json::num(u.memory)),
                ("limit", json::num(file("memory.max").and_then(|v| v.parse().ok()))),
                ("oom_kills", json::num(u.oom_kills)),
            ]),
        ),
        ("swap_limit", json::num(file("memory.swap.max").and_then(|v| v.parse().ok()))),
        (
            "cpu",
            json::object(&[
                ("used_usec", json::num(u.cpu_usec)),
                ("limit_cpus", limit_cpus.unwrap_or_else(|| "null".to_owned())),
                ("weight", json::num(file("cpu.weight").and_then(|v| v.parse().ok()).or(Some(100)))),
                ("cpus", file("cpuset.cpus").map_or_else(|| "null".to_owned(), |c| json::str(c))),
            ]),
        ),
        (
            "disk",
            json::object(&[
                ("used", json::num(disk.map(|d| d.bytes))),
                ("limit", json::num(disk.and_then(|d| d.limit).or(cfg.disk.space))),
                ("inodes", json::num(disk.and_then(|d| d.inodes))),
                ("inode_limit", json::num(disk.and_then(|d| d.inode_limit).or(cfg.disk.inodes))),
            ]),
        ),
        ("cgroup", json::object(&other)),
        (
            "proc",
            proc_source(running.as_ref().map(|(_, d)| d.as_path())).map_or_else(|| "null".to_owned(), |p| json::str(p.json_name())),
        ),
    ]);
    Ok((running.is_some(), format!("{text}\n")))
}

/// `status`'s disk line: what the tree uses against its quota, or the
/// configured limit (none: no line).
fn disk_text(g: &Guest, cfg: &Config) -> String {
    use resources::show_size;
    match crate::guest::quota::usage(&g.root) {
        Some(u) => format!(
            "disk: {} used, {}\n",
            show_size(u.bytes),
            u.limit.map_or_else(|| "no limit".to_owned(), |l| format!("limit {}", show_size(l)))
        ),
        None => match cfg.disk.space {
            Some(l) => format!("disk: limit {}\n", show_size(l)),
            None => String::new(),
        },
    }
}

/// A running server's settings in force (`vserver NAME set` may have
/// changed them), with its configuration's other CGROUP= files.
fn live_resources(reg: &Registry, dir: &Path, cfg: &Config) -> resources::Resources {
    let mut r = resources::live(&reg.layout, dir);
    for (f, v) in &cfg.resources.files {
        if !resources::READ_BACK.contains(&f.as_str()) {
            r.files.entry(f.clone()).or_insert_with(|| v.clone());
        }
    }
    r
}

fn count_procs(dir: &Path) -> usize {
    let mut n = cgroup::procs(dir).map(|p| p.len()).unwrap_or(0);
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            n += count_procs(&e.path());
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest() -> Guest {
        Guest {
            name: "web".to_owned(),
            conf: PathBuf::from("/etc/vservers/web.conf"),
            root: PathBuf::from("/vservers/web"),
            hook: PathBuf::from("/etc/vservers/web.sh"),
        }
    }

    #[test]
    fn a_guests_new_context_is_planned_from_its_configuration() {
        let g = guest();
        let cfg = crate::guest::config::parse(Path::new("web.conf"), "S_FLAGS=lock\nS_HOSTNAME=www\nULIMIT=\"-H -n 512\"\n").unwrap();
        let plan = new_context_plan(&g, &cfg, &[], None, None);
        let c = plan.confinement.as_ref().expect("confined");
        assert!(c.policy.lock && !c.policy.spectator && !c.policy.no_reboot);
        let ceiling = c.ceiling.apply_to(u64::MAX);
        assert_eq!(ceiling & caps::bit(caps::DAC_READ_SEARCH), 0, "no open_by_handle_at past the root");
        assert_eq!(ceiling & caps::bit(caps::SYS_BOOT), 0);
        assert_ne!(ceiling & caps::bit(caps::NET_BIND_SERVICE), 0);
        assert!(matches!(plan.namespaces, Namespaces::Create(f) if f.contains(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWCGROUP)));
        assert!(matches!(plan.root, Root::Guest { name: "web", .. }));
        assert_eq!(plan.hostname.as_deref(), Some("www"));
        assert_eq!(plan.limits.len(), 1);
        assert!(plan.seal.is_none());
        // Without S_HOSTNAME the guest's name.
        let cfg = crate::guest::config::parse(Path::new("web.conf"), "S_CAPS=CAP_SYS_BOOT\n").unwrap();
        let plan = new_context_plan(&g, &cfg, &[], None, None);
        assert_eq!(plan.hostname.as_deref(), Some("web"));
        let c = plan.confinement.as_ref().unwrap();
        assert!(!c.policy.lock);
        assert_ne!(c.ceiling.apply_to(u64::MAX) & caps::bit(caps::SYS_BOOT), 0);
    }
}
