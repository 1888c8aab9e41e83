//! Putting a command into a security context: the process choreography of
//! chcontext (and later of `vserver start`).
//!
//! ```text
//!   caller P ── creates the context's cgroup, unshares the PID namespace
//!   │           for its child, waits, removes the cgroup at the end
//!   └── C  (PID 1 in the new namespaces) joins the cgroup, unshares mount,
//!       UTS, IPC and cgroup namespaces, mounts /proc, sets the names, then
//!       makes everything irreversible: seccomp, then the capability ceiling
//!       └── COMMAND (PID 2 under vsbox's init, or PID 1 with fakeinit)
//! ```
//! The cgroup namespace is rooted at the context's directory, so even a
//! root that keeps CAP_SYS_ADMIN cannot move itself out of its context.

use crate::abi;
use crate::context::exec;
use crate::context::init;
use crate::context::plan::{Confinement, Namespaces, Plan, Root};
use crate::context::rootfs;
use crate::context::{self, Registry};
use crate::error::{Context, Error, Result};
use crate::kernel::caps;
use crate::kernel::cgroup;
use crate::kernel::native;
use crate::kernel::ns;
use crate::kernel::resources::{self, Resources};
use crate::kernel::seccomp::Policy;
use crate::kernel::userns;
use crate::paths;
use crate::sys::{self, Forked};
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What chcontext was asked for.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub xid: Option<u32>,
    pub flags: u32,
    pub caps: caps::Request,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub disconnect: bool,
    pub silent: bool,
}

/// How long the caller waits for a finished context's processes to leave
/// its cgroup before giving up on removing it.
const EMPTY_TIMEOUT: Duration = Duration::from_secs(5);

fn privileged() -> bool {
    Uid::effective().is_root() && sys::capget().is_ok_and(|c| c.effective & caps::bit(caps::SYS_ADMIN) != 0)
}

/// Runs `command` as chcontext does; returns its exit status.
pub fn chcontext(applet: &str, spec: &Spec, command: &[String]) -> Result<i32> {
    if !privileged() {
        if spec.xid.is_some() {
            return Err(Error::failed("--ctx", "only root in the host context may choose a context"));
        }
        return unprivileged(applet, spec, command);
    }
    let reg = Registry::open()?;
    let current = reg.current()?;
    match spec.xid {
        Some(xid) if current.is_some() => Err(Error::failed(
            format!("--ctx {xid}"),
            "only root in the host context may choose a context",
        )),
        Some(context::HOST) => Err(Error::failed("--ctx 0", "context 0 is the host; a process cannot enter it")),
        Some(context::SPECTATOR) => spectator(applet, &reg, spec, command),
        Some(xid) => match reg.find(xid) {
            Some(dir) if cgroup::populated(&dir) => join(applet, &reg, xid, &dir, spec, command),
            Some(stale) => {
                cgroup::remove(&stale, Some(Duration::ZERO))?;
                create(applet, &reg, None, spec, command)
            }
            None => create(applet, &reg, None, spec, command),
        },
        None => create(applet, &reg, current, spec, command),
    }
}

/// Removes a context's cgroups when dropped (in the process that owns it).
pub(crate) struct Owned {
    pub dirs: Vec<PathBuf>,
}

impl Drop for Owned {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            if let Err(e) = cgroup::remove(d, Some(EMPTY_TIMEOUT)) {
                eprintln!("vsbox: warning: {e}");
            }
        }
    }
}

fn announce(spec: &Spec, what: &str) {
    if !spec.silent {
        eprintln!("New security context is {what}");
    }
}

/// With --disconnect the caller returns at once; its child carries on in a
/// new session and owns the context from then on. Ok(true) in the caller.
fn detach(spec: &Spec) -> Result<bool> {
    if !spec.disconnect {
        return Ok(false);
    }
    match sys::fork().ctx(|| "fork")? {
        Forked::Parent(_) => Ok(true),
        Forked::Child => {
            nix::unistd::setsid().ctx(|| "start a new session")?;
            Ok(false)
        }
    }
}

/// The entry point's error path for a forked child, which cannot return
/// to it: exits with the command's status, or with 125 (SPEC §1) after
/// printing why setting up or starting it failed. Never returns.
pub(crate) fn finish_child(applet: &str, setup: Result<()>, run: impl FnOnce() -> Result<i32>) -> ! {
    match setup.and_then(|()| run()) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("{applet}: {e}");
            std::process::exit(crate::applet::EXIT_CANNOT_RUN)
        }
    }
}

/// The parent's half: wait for the context's first process, passing on
/// the signals a supervisor sends to us.
pub(crate) fn supervise(child: nix::unistd::Pid) -> i32 {
    init::forward_signals_to(child, false);
    exec::wait_for(child)
}

fn create(applet: &str, reg: &Registry, current: Option<(u32, PathBuf)>, spec: &Spec, command: &[String]) -> Result<i32> {
    if let Some((cur, dir)) = &current {
        if context::flags_of(dir) & abi::VXF_LOCK != 0 {
            return Err(Error::failed(
                "create a context",
                format!("context {cur} has the lock flag: no new contexts inside it"),
            ));
        }
    }
    if current.is_some() {
        reg.layout.unseal()?;
    }
    let nested = current.is_some();
    let parent = current.map(|c| c.1).unwrap_or_else(|| reg.layout.base());
    let (xid, dir) = reg.create(&parent, spec.xid, &paths::rundir(), false)?;
    let mut owned = Owned { dirs: vec![dir.clone()] };
    if spec.flags != 0 {
        context::record_flags(&dir, spec.flags)?;
    }
    owned
        .dirs
        .extend(resource_dirs(reg, &dir, spec.flags, None, &Resources::default())?);
    if detach(spec)? {
        std::mem::forget(owned); // the detached child removes them
        return Ok(0);
    }
    cgroup::record_owner(&dir)?;
    // What the request leaves of a full set bounds the ceiling; no need to
    // read the bounding set (forty prctl calls) on every launch for it.
    // No guest tree: the context sees the host's, whose files its root
    // must own as the host's root does (the identity map).
    let userns = own_user_namespace(&dir, xid, spec.caps.apply_to(u64::MAX), &Default::default(), None)?;
    announce(spec, &xid.to_string());
    let cgroup_dir = open_dir(&dir)?;
    match sys::fork_into(&cgroup_dir, CloneFlags::CLONE_NEWPID).ctx(|| format!("start a process in {}", dir.display()))? {
        Forked::Parent(child) => Ok(supervise(child)),
        Forked::Child => {
            let tied = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).ctx(|| "set the parent-death signal");
            let plan = Plan {
                cgroups: owned.dirs[1..].to_vec(),
                seal: Some(&reg.layout),
                userns: userns.as_ref().map(|o| &o.ns.fd),
                // The kernel's context of the same id, made by the command's
                // process (this one stays the host's; the kernel lets it
                // signal its child). A context inside a guest's stays in
                // the guest's: the kernel numbers nested ones itself.
                native: (!nested).then_some(spec.flags),
                ..first_process(spec, CloneFlags::CLONE_NEWCGROUP)
            };
            std::mem::forget(owned);
            let setup = tied.and_then(|_| plan.apply());
            finish_child(applet, setup, || Ok(run_as_first(spec, applet, command)))
        }
    }
}

/// The plan of the first process of a new context (PID 1 of its PID
/// namespace): the rest of its namespaces, its own /proc, its names, then
/// the irreversible restrictions.
fn first_process(spec: &Spec, extra_ns: CloneFlags) -> Plan<'_> {
    Plan {
        namespaces: Namespaces::Create(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | extra_ns),
        root: Root::Private { proc: true },
        hostname: spec.hostname.clone(),
        domainname: domain_name(spec),
        confinement: Some(Confinement {
            policy: Policy {
                lock: spec.flags & abi::VXF_LOCK != 0,
                spectator: false,
                no_reboot: false,
                net_lock: false,
                no_new_userns: false,
            },
            ceiling: spec.caps.clone(),
            within: u64::MAX,
        }),
        ..Plan::default()
    }
}

/// chcontext's --domainname, `none` meaning an empty one.
fn domain_name(spec: &Spec) -> Option<String> {
    spec.domainname
        .as_deref()
        .map(|d| if d == "none" { String::new() } else { d.to_owned() })
}

/// A new context's own user namespace, and for a guest its tree mapped
/// through it.
pub(crate) struct OwnUserns {
    pub ns: userns::Namespace,
    pub tree: Option<rootfs::MappedTree>,
}

/// The user namespace of new context `xid` (cgroup `dir`), when its
/// capability ceiling `ceiling` lets it have one ([`userns::wanted`]):
/// owned by the context's own host uid, so that its root's per-user
/// kernel counters are its own; its root may bind ports below 1024.
/// With a guest's `tree`, its root is that host uid too
/// ([`userns::Map::OwnRoot`]) and the tree comes idmapped through the
/// namespace — unless a file system of the tree takes no idmapped mounts,
/// when the map is the identity, as for chcontext's contexts over the
/// host's tree.
pub(crate) fn own_user_namespace(
    dir: &Path,
    xid: u32,
    ceiling: u64,
    limits: &userns::Limits,
    tree: Option<&Path>,
) -> Result<Option<OwnUserns>> {
    if !userns::wanted(ceiling) {
        return Ok(None);
    }
    let owner = userns::owner_uid(xid);
    let mapped = match tree {
        Some(path) => {
            let ns = userns::create(owner, userns::Map::OwnRoot, limits)?;
            rootfs::map_tree(path, &ns)?.map(|t| OwnUserns { ns, tree: Some(t) })
        }
        None => None,
    };
    let own = match mapped {
        Some(own) => own,
        None => OwnUserns {
            ns: userns::create(owner, userns::Map::Identity, limits)?,
            tree: None,
        },
    };
    // What CAP_NET_BIND_SERVICE gave its root on the host's stack, and only
    // when its ceiling keeps that capability.
    if ceiling & caps::bit(caps::NET_BIND_SERVICE) != 0 {
        userns::attach_low_ports(dir, own.ns.root_uid)?;
    }
    Ok(Some(own))
}

/// PID 1 runs the command: as vsbox's init, or itself with `fakeinit`.
fn run_as_first(spec: &Spec, applet: &str, command: &[String]) -> i32 {
    if spec.flags & abi::VXF_FAKEINIT != 0 {
        exec::exec(applet, command)
    } else {
        init::run(applet, command)
    }
}

/// The v1 (or v2-controller) directories that the `sched` and `nproc`
/// flags and the resource settings `res` need, created and configured;
/// returned for joining and removal.
pub(crate) fn resource_dirs(reg: &Registry, dir: &Path, flags: u32, nproc: Option<u64>, res: &Resources) -> Result<Vec<PathBuf>> {
    let mut extra = Vec::new();
    // sched: a cgroup of the cpu controller makes the whole context one
    // scheduling entity with the weight of one process.
    if flags & abi::VXF_SCHED != 0 {
        if let Some(d) = cgroup::controller_dir(&reg.layout, dir, "cpu")? {
            extra.push(d);
        }
    }
    // nproc: the process limit (RLIMIT_NPROC) counts the context as a whole.
    if flags & abi::VXF_NPROC != 0 {
        let soft = match nproc {
            Some(n) => n,
            None => {
                nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NPROC)
                    .ctx(|| "read RLIMIT_NPROC")?
                    .0
            }
        };
        if let Some(d) = cgroup::controller_dir(&reg.layout, dir, "pids")? {
            let max = if soft == libc::RLIM_INFINITY {
                "max".to_owned()
            } else {
                soft.to_string()
            };
            std::fs::write(d.join("pids.max"), &max).ctx(|| format!("set {}/pids.max to {max}", d.display()))?;
            if d != dir {
                extra.push(d);
            }
        }
    }
    match resources::apply(&reg.layout, dir, res) {
        Ok(v1) => extra.extend(v1),
        Err(e) => {
            for d in extra.iter().filter(|d| *d != dir) {
                cgroup::try_remove(d);
            }
            return Err(e);
        }
    }
    extra.retain(|d| d != dir);
    extra.sort();
    extra.dedup();
    Ok(extra)
}

pub(crate) fn open_dir(dir: &Path) -> Result<std::fs::File> {
    std::fs::File::open(dir).ctx(|| format!("open {}", dir.display()))
}

/// A running context, ready to be joined: everything read from its init.
pub struct Target {
    pub flags: u32,
    /// Its capability ceiling: its init's bounding set.
    pub ceiling: u64,
    handles: ns::Handles,
    /// Its user namespace, when it has its own: joined last, in
    /// [`restrict`].
    pub userns: Option<OwnedFd>,
    /// Its v1 controller directories (its v2 one is `cgroup`).
    v1: Vec<PathBuf>,
    cgroup: std::fs::File,
    /// Locked to its addresses (its cgroup holds a network lock).
    pub net_lock: bool,
    /// A guest's context: the path of its supervisor's control socket
    /// (None for one started without, by an older vsbox).
    supervisor: Option<Option<PathBuf>>,
    xid: u32,
    dir: PathBuf,
}

impl Target {
    /// The plan of a process joining this context: its namespaces (user
    /// namespace included, last) and its ceiling, lowered further by
    /// `ceiling`. A guest's joiner adds the connection to its supervisor
    /// ([`Target::connect_supervisor`]). Its mount namespace was sealed
    /// when the context was made.
    /// `guest`: a server's, which in the host's user namespace makes none
    /// of its own (seccomp.rs, NO_USERNS).
    pub(crate) fn join_plan(&self, ceiling: caps::Request, no_reboot: bool, guest: bool) -> Plan<'_> {
        Plan {
            namespaces: Namespaces::Join(self),
            userns: self.userns.as_ref(),
            confinement: Some(Confinement {
                policy: Policy {
                    lock: self.flags & abi::VXF_LOCK != 0,
                    spectator: false,
                    no_reboot,
                    net_lock: self.net_lock,
                    no_new_userns: guest && self.userns.is_none(),
                },
                ceiling,
                within: self.ceiling,
            }),
            ..Plan::default()
        }
    }

    pub(crate) fn open(layout: &cgroup::Layout, xid: u32, dir: &Path) -> Result<Target> {
        Self::open_with(xid, dir, layout.v1_dirs(dir))
    }

    /// As [`Target::open`], with its v1 controller directories given (as
    /// its start recorded them) instead of found through the layout.
    pub(crate) fn open_with(xid: u32, dir: &Path, v1: Vec<PathBuf>) -> Result<Target> {
        let flags = context::flags_of(dir);
        if flags & abi::VXF_PRIVATE != 0 {
            return Err(Error::failed(
                format!("join context {xid}"),
                "it is private (flag 'private'): nobody may join it",
            ));
        }
        let (status, handles, userns) = look_into(dir, xid)?;
        let ceiling = caps::from_status(&status, "CapBnd:")
            .ok_or_else(|| Error::failed(format!("read the ceiling of context {xid}"), "no CapBnd line"))?;
        Ok(Target {
            flags,
            ceiling,
            userns,
            handles,
            v1,
            cgroup: open_dir(dir)?,
            net_lock: crate::sys::getxattr(dir, crate::kernel::netlock::XATTR_IP).ok().flatten().is_some(),
            supervisor: crate::sys::getxattr(dir, context::XATTR_GUEST).ok().flatten().map(|_| {
                crate::sys::getxattr(dir, context::XATTR_SUPERVISOR)
                    .ok()
                    .flatten()
                    .map(|p| PathBuf::from(String::from_utf8_lossy(&p).into_owned()))
            }),
            xid,
            dir: dir.to_owned(),
        })
    }

    /// For a process about to join a guest's context, before it forks: a
    /// connection to the guest's supervisor, which takes its filter (the
    /// plan's `supervisor`); None for a plain context. A guest whose
    /// supervisor is gone is not joined: its unix sockets would be the
    /// host's.
    pub(crate) fn connect_supervisor(&self) -> Result<Option<OwnedFd>> {
        let refuse = |why: String| Err(Error::failed(format!("join context {}", self.xid), why));
        match &self.supervisor {
            None => Ok(None),
            Some(None) => refuse("its server was started without a supervisor (by an older vsbox): restart the server".into()),
            Some(Some(path)) => match std::os::unix::net::UnixStream::connect(path) {
                Ok(s) => Ok(Some(OwnedFd::from(s))),
                Err(e) => refuse(format!(
                    "its supervisor ({}) is not running ({}) — it was killed: restart the server",
                    path.display(),
                    e.raw_os_error()
                        .map_or_else(|| e.to_string(), |n| nix::errno::Errno::from_raw(n).desc().to_owned())
                )),
            },
        }
    }

    /// A child born in the context's cgroup and PID namespace (the caller
    /// only points its next child's PID namespace there). None when the
    /// context is ending: its init has died, and a PID namespace without
    /// its init takes no new process (alloc_pid() fails with ENOMEM,
    /// kernel/pid.c); then our own PID namespace is the next child's again,
    /// and the context has been given a moment to empty.
    pub(crate) fn fork(&self) -> Result<Option<Forked>> {
        self.handles
            .join(CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWCGROUP | CloneFlags::CLONE_NEWNS)?;
        match sys::fork_into(&self.cgroup, CloneFlags::empty()) {
            Ok(f) => Ok(Some(f)),
            Err(nix::errno::Errno::ENOMEM) => {
                let own = std::fs::File::open("/proc/self/ns/pid").ctx(|| "open /proc/self/ns/pid")?;
                nix::sched::setns(own, CloneFlags::CLONE_NEWPID).ctx(|| "rejoin our own PID namespace")?;
                self.ending();
                Ok(None)
            }
            Err(e) => Err(Error::sys("start a process in the context", e)),
        }
    }

    /// Whether the context is ending: it empties within a moment (a
    /// killed `exec`'s fresh context dies with its init, which may leave
    /// its supervisor or its namespaces gone before its last process).
    pub(crate) fn ending(&self) -> bool {
        cgroup::wait_empty(&self.dir, Some(Duration::from_secs(2)))
    }

    /// In that child: the kernel's context (while it still holds the
    /// host's CAP_SYS_ADMIN; nothing when there is none), the context's
    /// other cgroups and its namespaces (the mount namespace last: it
    /// changes the root).
    pub(crate) fn enter(&self) -> Result<()> {
        native::join(self.xid)?;
        for d in &self.v1 {
            cgroup::enter(d)?;
        }
        self.handles.join(CloneFlags::CLONE_NEWPID)
    }
}

/// A context's leader's status, namespaces and user namespace (when not
/// ours). On the patched kernel the host is blind to its guests, and this
/// process stays the host's (its own child, which joins, it may still
/// signal): a spectator child looks and hands them over.
fn look_into(dir: &Path, xid: u32) -> Result<(String, ns::Handles, Option<OwnedFd>)> {
    let what = format!("join context {xid}");
    let (text, mut fds) = native::spectate_fds(&what, || {
        // A context's first process may be in its cgroup before it has
        // made its namespaces, pivoted and joined its user namespace:
        // joined then, a command would run in the host's. Its filter, the
        // last of those steps (plan.rs), tells it is done; a start under
        // way is waited for, a moment.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let l = loop {
            let l = leader(dir).ok_or_else(|| "it has no processes left".to_owned())?;
            if set_up(&l.status) {
                break l;
            }
            if std::time::Instant::now() > until {
                return Err("it is still being set up; try again".to_owned());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let handles = ns::Handles::open(l.pid).map_err(|e| e.to_string())?;
        let userns = userns::of_process(l.pid).map_err(|e| e.to_string())?;
        let mut fds: Vec<OwnedFd> = handles.list.into_iter().map(|(_, _, fd)| fd).collect();
        let own = userns.is_some();
        fds.extend(userns);
        Ok((format!("{}\n{}", u8::from(own), l.status), fds))
    })?;
    let garbled = || Error::failed(&what, "the spectator's answer is garbled");
    let (own, status) = text.split_once('\n').ok_or_else(garbled)?;
    let userns = if own == "1" { fds.pop() } else { None };
    let handles = ns::Handles::from_fds(fds).ok_or_else(garbled)?;
    Ok((status.to_owned(), handles, userns))
}

/// Whether a context's process, by its /proc status, has finished the
/// set-up of its context: every context's plan installs a seccomp filter
/// after its namespaces, root and user namespace (plan.rs), so a process
/// without one is its first, still setting up.
fn set_up(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .is_some_and(|v| v.trim() == "2")
}

fn join(applet: &str, reg: &Registry, xid: u32, dir: &Path, spec: &Spec, command: &[String]) -> Result<i32> {
    let target = Target::open(&reg.layout, xid, dir)?;
    let cwd = std::env::current_dir().ok();
    if detach(spec)? {
        return Ok(0);
    }
    announce(spec, &xid.to_string());
    let lifeline = exec::Lifeline::of_this_process()?;
    let supervisor = target.connect_supervisor()?;
    let forked = target
        .fork()?
        .ok_or_else(|| Error::failed(format!("join context {xid}"), "it is ending (its init has ended)"))?;
    match forked {
        Forked::Parent(child) => Ok(supervise(child)),
        Forked::Child => {
            // The command dies with us, however we end (its descriptor
            // closes on exec).
            exec::tie_once(lifeline.fd());
            let plan = Plan {
                cwd,
                hostname: spec.hostname.clone(),
                domainname: domain_name(spec),
                supervisor,
                ..target.join_plan(spec.caps.clone(), false, false)
            };
            finish_child(applet, plan.apply(), || Ok(exec::exec(applet, command)))
        }
    }
}

/// The process that stands for a context: its init (PID 1 of its PID
/// namespace), or any member when it has none.
pub(crate) fn context_leader(dir: &Path) -> Option<u32> {
    leader(dir).map(|l| l.pid)
}

/// A context's leader (see [`context_leader`]) and its /proc status.
pub(crate) struct Leader {
    pub pid: u32,
    pub is_init: bool,
    pub status: String,
}

pub(crate) fn leader(dir: &Path) -> Option<Leader> {
    let mut first = None;
    for pid in cgroup::procs(dir).ok()? {
        let Ok(status) = crate::sys::read_text(format!("/proc/{pid}/status")) else {
            continue;
        };
        let is_init = ns_init(&status);
        let l = Leader { pid, is_init, status };
        if is_init {
            return Some(l);
        }
        first.get_or_insert(l);
    }
    first
}

/// Whether a /proc status is that of PID 1 of its PID namespace.
fn ns_init(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().last())
        == Some("1")
}

/// Context 1: stays in the host's namespaces, so it sees every process,
/// but a seccomp filter refuses every way to signal or trace one, and
/// CAP_SYS_PTRACE leaves its ceiling.
fn spectator(applet: &str, reg: &Registry, spec: &Spec, command: &[String]) -> Result<i32> {
    let base = reg.layout.base();
    cgroup::create(&base)?;
    let dir = base.join(context::SPECTATOR.to_string());
    cgroup::create(&dir)?;
    if detach(spec)? {
        return Ok(0);
    }
    announce(spec, "1");
    let cgroup_dir = open_dir(&dir)?;
    let child = match sys::fork_into(&cgroup_dir, CloneFlags::empty()).ctx(|| format!("start a process in {}", dir.display()))? {
        Forked::Parent(child) => child,
        Forked::Child => {
            // The kernel's spectator too, for the command (this process
            // stays the host's; the kernel lets it signal its child).
            if let Err(e) = native::join(context::SPECTATOR) {
                finish_child(applet, Err(e), || Ok(0));
            }
            // It shares the host's mounts: nothing to seal there.
            let plan = Plan {
                hostname: spec.hostname.clone(),
                domainname: domain_name(spec),
                confinement: Some(Confinement {
                    policy: Policy {
                        lock: spec.flags & abi::VXF_LOCK != 0,
                        spectator: true,
                        no_reboot: false,
                        net_lock: false,
                        no_new_userns: false,
                    },
                    ceiling: spec.caps.clone(),
                    within: !caps::bit(caps::SYS_PTRACE),
                }),
                ..Plan::default()
            };
            finish_child(applet, plan.apply(), || Ok(exec::exec(applet, command)))
        }
    };
    let code = supervise(child);
    cgroup::try_remove(&dir);
    Ok(code)
}

/// A context for a user without privileges: a user namespace that maps
/// only their own uid and gid, so they keep exactly the rights they had.
/// It has no cgroup of its own, so it is not numbered in the registry.
fn unprivileged(applet: &str, spec: &Spec, command: &[String]) -> Result<i32> {
    let (uid, gid) = (Uid::current().as_raw(), Gid::current().as_raw());
    if detach(spec)? {
        return Ok(0);
    }
    // On the patched kernel any user gets a context of the kernel's.
    match native::create_dynamic(spec.flags)? {
        Some(xid) => announce(spec, &xid.to_string()),
        None => announce(spec, &format!("unnumbered (unprivileged, uid {uid})")),
    }
    ns::create(CloneFlags::CLONE_NEWUSER)?;
    ns::map_own_ids(uid, gid)?;
    ns::create(CloneFlags::CLONE_NEWPID)?;
    match sys::fork().ctx(|| "fork")? {
        Forked::Parent(child) => Ok(supervise(child)),
        Forked::Child => {
            // Its user cannot write the cgroup mounts: nothing to seal.
            let setup = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .ctx(|| "set the parent-death signal")
                .and_then(|_| first_process(spec, CloneFlags::empty()).apply());
            finish_child(applet, setup, || Ok(run_as_first(spec, applet, command)))
        }
    }
}
