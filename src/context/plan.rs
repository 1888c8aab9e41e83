//! How a process is put into a context: a [`Plan`] describes it, and
//! [`Plan::apply`] carries it out — in one place, in one order — in the
//! process that then runs the command (a child born in the context's
//! cgroup and, for a new context, as PID 1 of its PID namespace).
//! chcontext (new, join, spectator, unprivileged), chbind and vserver
//! (start, exec, enter, suexec, service) only build plans. This is also
//! where the kernel patch's native calls plug in.
//!
//! The order, and why:
//!
//! 1. the v1 controller cgroups (the v2 one was given at clone time);
//! 2. for a guest or a new context, its context id, read from
//!    /proc/self/cgroup before the cgroup namespace hides the path, and on
//!    the patched kernel the kernel's context of that id
//!    (kernel/native.rs), made while this process still holds the host's
//!    CAP_SYS_ADMIN;
//! 3. namespaces, created or joined — the mount namespace last of the
//!    joined ones, since it changes the root;
//! 4. the root: kept, a private copy of the mounts (with a /proc of the
//!    new PID namespace), or the guest's tree by pivot_root with its own
//!    /proc (lxcfs's files over it where lxcfs runs), /sys, /dev and /run;
//! 5. the guest's context record on /run/vsbox;
//! 6. the working directory;
//! 7. host and domain names;
//! 8. resource limits and niceness (raising a hard limit needs the host's
//!    CAP_SYS_RESOURCE, which step 10 gives up);
//! 9. (no step of its own: the supervised calls are part of step 11's
//!    filter, one filter rather than two, since the kernel's cost of
//!    installing one is most of a joined command's beyond nsenter's);
//! 10. the cgroup seal (read-only cgroup mounts) and then the context's
//!     own user namespace — the last steps that need the host's privileges;
//! 11. the seccomp policy — for a guest with the supervised calls in the
//!     same filter (installed while CAP_SYS_ADMIN is there, in the guest's
//!     user namespace where it has one, without no_new_privs, so setuid
//!     programs keep working), whose listener goes to the guest's
//!     supervisor at once: it answers the unix socket calls (and reboot)
//!     of every process below, this one's included — and the capability
//!     ceiling, for good;
//! 12. standard input, output and errors where asked, then the descriptors
//!     the command is to find at 3, 4, …; every other one is closed.

use crate::context::launch::Target;
use crate::context::{exec, limits, record, rootfs};
use crate::error::{Context, Result};
use crate::kernel::seccomp::{self, Policy};
use crate::kernel::{caps, cgroup, lxcfs, native, ns, unixscope};
use nix::sched::CloneFlags;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// The namespaces of the process (step 3).
pub enum Namespaces<'a> {
    /// The caller's (spectator, chbind's network lock alone).
    Keep,
    /// New ones of these kinds (the PID namespace is made at clone time).
    Create(CloneFlags),
    /// Those of a running context, but its PID namespace (given at fork).
    Join(&'a Target),
}

/// The root and mounts of the process (step 4).
pub enum Root<'a> {
    /// The caller's, and its mounts.
    Keep,
    /// A private copy of the caller's mounts, with a fresh /proc when
    /// `proc` (a new PID namespace's).
    Private { proc: bool },
    /// A guest's tree as `/`, by pivot_root, with /proc, /sys, /dev and a
    /// fresh /run (rootfs.rs), and its context record naming it `name`;
    /// `mapped` is the tree idmapped through the context's user namespace,
    /// whose root then owns what vsbox makes there; `lxcfs` is the
    /// host's, whose /proc files are bound over the guest's
    /// (kernel/lxcfs.rs).
    Guest {
        tree: &'a Path,
        name: &'a str,
        mapped: Option<&'a rootfs::MappedTree>,
        lxcfs: Option<lxcfs::Lxcfs>,
    },
}

/// What is locked for good (step 12).
pub struct Confinement {
    pub policy: seccomp::Policy,
    pub ceiling: caps::Request,
    /// The ceiling may not go above this (a joined context's own).
    pub within: u64,
}

/// A context's setup, step by step (see the module's documentation).
pub struct Plan<'a> {
    pub cgroups: Vec<PathBuf>,
    pub namespaces: Namespaces<'a>,
    pub root: Root<'a>,
    pub cwd: Option<PathBuf>,
    pub hostname: Option<String>,
    /// Some(""): an empty NIS domain name.
    pub domainname: Option<String>,
    pub limits: &'a [limits::Limit],
    pub nice: Option<i32>,
    /// A connection to the guest's supervisor (guest/supervisor.rs), which
    /// gets the listener of the filter with the supervised calls (step 11).
    pub supervisor: Option<OwnedFd>,
    /// With a supervisor: it answers reboot(2) too.
    pub supervised_reboot: bool,
    pub seal: Option<&'a cgroup::Layout>,
    /// For a new context (a guest's or chcontext's): make the kernel's
    /// context of its id with these flags (VXF_*; nothing on a stock
    /// kernel).
    pub native: Option<u32>,
    pub userns: Option<&'a OwnedFd>,
    pub confinement: Option<Confinement>,
    /// Standard input from /dev/null, and output and errors to this
    /// descriptor (a guest's start-up output pipe).
    pub output: Option<RawFd>,
    /// Placed at 3, 4, … in this order; everything else above 2 closes.
    /// None leaves the descriptors as they are (their close-on-exec flags
    /// decide).
    pub keep: Option<Vec<RawFd>>,
}

impl Default for Plan<'_> {
    fn default() -> Self {
        Plan {
            cgroups: Vec::new(),
            namespaces: Namespaces::Keep,
            root: Root::Keep,
            cwd: None,
            hostname: None,
            domainname: None,
            limits: &[],
            nice: None,
            supervised_reboot: false,
            supervisor: None,
            seal: None,
            native: None,
            userns: None,
            confinement: None,
            output: None,
            keep: None,
        }
    }
}

impl Plan<'_> {
    /// Carries the plan out in this process, in the order of the module's
    /// documentation. Errors name the step that failed; the caller exits
    /// with 125 (SPEC §1) through the entry point's error path.
    pub fn apply(self) -> Result<()> {
        for d in &self.cgroups {
            cgroup::enter(d)?;
        }
        let xid = match (&self.root, self.native) {
            // The kernel's context needs the id only where the patch is.
            (Root::Guest { .. }, _) => Some(record::own_xid()?),
            (_, Some(_)) if native::available() => Some(record::own_xid()?),
            _ => None,
        };
        if let (Some(flags), Some(xid)) = (self.native, xid) {
            native::enter(xid, flags)?;
        }
        match self.namespaces {
            Namespaces::Keep => {}
            Namespaces::Create(flags) => ns::create(flags)?,
            Namespaces::Join(target) => target.enter()?,
        }
        match self.root {
            Root::Keep => {}
            Root::Private { proc } => {
                ns::isolate_mounts()?;
                if proc {
                    ns::mount_proc("/proc")?;
                }
            }
            Root::Guest {
                tree,
                name,
                mapped,
                lxcfs: host_lxcfs,
            } => {
                // Taken from the host's tree, which the pivot leaves behind.
                let from_lxcfs = match host_lxcfs {
                    Some(l) => lxcfs::clone_files(&l)?,
                    None => Vec::new(),
                };
                rootfs::pivot_into(tree, mapped)?;
                rootfs::populate()?;
                lxcfs::attach(from_lxcfs)?;
                record::expose_context(xid.unwrap_or(crate::context::HOST), name)?;
            }
        }
        if let Some(cwd) = &self.cwd {
            // Best effort, as a shell does: the directory may not exist there.
            let _ = std::env::set_current_dir(cwd);
        }
        if let Some(h) = &self.hostname {
            nix::unistd::sethostname(h).ctx(|| format!("set the host name to '{h}'"))?;
        }
        if let Some(d) = &self.domainname {
            crate::sys::setdomainname(d).ctx(|| format!("set the NIS domain name to '{d}'"))?;
        }
        limits::apply(self.limits, self.nice)?;
        let conn = self.supervisor;
        let supervised = conn.as_ref().map(|conn| (conn, self.supervised_reboot));
        if let Some(c) = &self.confinement {
            restrict(c.policy, &c.ceiling, c.within, self.seal, self.userns, supervised)?;
        } else {
            if let Some((conn, reboot)) = supervised {
                unixscope::hand_over(conn, seccomp::supervised_listener(reboot)?)?;
            }
            if let Some(layout) = self.seal {
                layout.seal()?;
            }
        }
        // Closed before the descriptors are placed (which closes the rest).
        drop(conn);
        if let Some(out) = self.output {
            let null = std::fs::File::open("/dev/null").ctx(|| "open /dev/null")?;
            nix::unistd::dup2(null.as_raw_fd(), 0).ctx(|| "redirect stdin")?;
            nix::unistd::dup2(out, 1).ctx(|| "redirect stdout")?;
            nix::unistd::dup2(out, 2).ctx(|| "redirect stderr")?;
        }
        if let Some(keep) = self.keep {
            place_fds(&keep)?;
        }
        Ok(())
    }
}

/// The last steps into a context, each irreversible, in this order since
/// each needs CAP_SYS_ADMIN that the last may take away:
/// - the cgroup mounts of the context's mount namespace become read-only,
///   so a root without CAP_SYS_ADMIN, now or after a later drop, cannot
///   move itself out of its cgroup (the cgroup namespace alone stops that
///   only on `nsdelegate` mounts);
/// - the seccomp filter (see seccomp.rs: file handles, terminals, and the
///   lock's and the spectator's refusals) — with `supervised`, the same
///   filter also hands the supervised calls (unix sockets, sysinfo, and
///   reboot when asked) to its listener, which goes over the connection
///   to the guest's supervisor at once;
/// - the capability ceiling: what `req` leaves of this process's own
///   ceiling within `within` (a joined context's ceiling, or all).
fn restrict(
    policy: Policy,
    req: &caps::Request,
    within: u64,
    seal: Option<&cgroup::Layout>,
    userns: Option<&std::os::fd::OwnedFd>,
    supervised: Option<(&OwnedFd, bool)>,
) -> Result<()> {
    if let Some(layout) = seal {
        layout.seal()?;
    }
    // Last of what needs the host's privileges; it gives a full set of
    // capabilities in the namespace, which the ceiling then lowers.
    if let Some(ns) = userns {
        exec::keeping_tie(|| crate::kernel::userns::enter(ns))?;
    }
    let filter = || match supervised {
        Some((conn, reboot)) => unixscope::hand_over(conn, seccomp::install_supervised(policy, reboot)?),
        None => seccomp::install(policy),
    };
    // A request that lowers nothing needs no look at the bounding set
    // (forty prctl calls), nor at the ambient set when the inheritable
    // set, which holds it (capabilities(7)), is empty.
    if req.is_empty() && within == u64::MAX && crate::sys::capget().is_ok_and(|c| c.inheritable == 0) {
        return filter();
    }
    // Joining a user namespace sets the bounding set full and the ambient
    // set empty (set_cred_user_ns in kernel/user_namespace.c), and the
    // permitted set full too: that one capget(2) tells, not forty prctl.
    let current = match userns {
        Some(_) => crate::sys::capget().ctx(|| "read capabilities")?.permitted,
        None => caps::bounding()?,
    };
    let target = req.apply_to(current & within);
    filter()?;
    // No further system calls when it is the ceiling already.
    if current == target && (userns.is_some() || caps::ambient()? == 0) {
        return Ok(());
    }
    caps::limit_from(current, target)
}

/// Places `fds` at 3, 4, … (through copies above 10, so none overwrites
/// another) and closes every other descriptor above stderr.
fn place_fds(fds: &[RawFd]) -> Result<()> {
    let mut high = Vec::with_capacity(fds.len());
    for &fd in fds {
        high.push(nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10)).ctx(|| "copy a descriptor")?);
    }
    for (i, h) in high.iter().enumerate() {
        nix::unistd::dup2(*h, 3 + i as i32).ctx(|| "keep a descriptor")?;
    }
    crate::sys::close_from(3 + fds.len() as u32).ctx(|| "close inherited descriptors")
}
