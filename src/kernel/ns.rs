//! Namespaces: creating, joining, and the few mounts a fresh PID and mount
//! namespace needs.

use crate::error::{Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use std::fs;
use std::os::fd::OwnedFd;

pub fn create(flags: CloneFlags) -> Result<()> {
    unshare(flags).ctx(|| format!("create namespaces ({})", describe(flags)))
}

fn describe(flags: CloneFlags) -> String {
    let names = [
        (CloneFlags::CLONE_NEWUSER, "user"),
        (CloneFlags::CLONE_NEWPID, "pid"),
        (CloneFlags::CLONE_NEWNS, "mount"),
        (CloneFlags::CLONE_NEWUTS, "uts"),
        (CloneFlags::CLONE_NEWIPC, "ipc"),
        (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
        (CloneFlags::CLONE_NEWNET, "net"),
    ];
    names
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The namespace files of a process, opened so they can be joined later.
pub struct Handles {
    pub list: Vec<(CloneFlags, &'static str, OwnedFd)>,
}

/// Order matters when joining: the mount namespace last, since it changes
/// our root and so where later /proc paths would resolve.
const JOIN_ORDER: &[(CloneFlags, &str)] = &[
    (CloneFlags::CLONE_NEWPID, "pid"),
    (CloneFlags::CLONE_NEWIPC, "ipc"),
    (CloneFlags::CLONE_NEWUTS, "uts"),
    (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
    (CloneFlags::CLONE_NEWNS, "mnt"),
];

impl Handles {
    pub fn open(pid: u32) -> Result<Handles> {
        let mut list = Vec::new();
        for &(flag, name) in JOIN_ORDER {
            let path = format!("/proc/{pid}/ns/{name}");
            let f = fs::File::open(&path).ctx(|| format!("open {path}"))?;
            list.push((flag, name, OwnedFd::from(f)));
        }
        Ok(Handles { list })
    }

    /// Handles from descriptors [`Handles::open`] made, in the same order
    /// (passed from another process). None when their number is wrong.
    pub fn from_fds(fds: Vec<OwnedFd>) -> Option<Handles> {
        (fds.len() == JOIN_ORDER.len()).then(|| Handles {
            list: JOIN_ORDER.iter().zip(fds).map(|(&(flag, name), fd)| (flag, name, fd)).collect(),
        })
    }

    /// Joins every namespace except those in `skip`.
    pub fn join(&self, skip: CloneFlags) -> Result<()> {
        for (flag, name, fd) in &self.list {
            if !skip.contains(*flag) {
                setns(fd, *flag).ctx(|| format!("join {name} namespace"))?;
            }
        }
        Ok(())
    }
}

/// After unshare(CLONE_NEWUSER): map only our own uid and gid, so an
/// unprivileged user stays exactly who they were.
pub fn map_own_ids(uid: u32, gid: u32) -> Result<()> {
    fs::write("/proc/self/setgroups", "deny").ctx(|| "write /proc/self/setgroups")?;
    fs::write("/proc/self/uid_map", format!("{uid} {uid} 1")).ctx(|| "write /proc/self/uid_map")?;
    fs::write("/proc/self/gid_map", format!("{gid} {gid} 1")).ctx(|| "write /proc/self/gid_map")
}

/// Mount events stop at this namespace's border going out; the host's
/// still come in.
pub fn isolate_mounts() -> Result<()> {
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>).ctx(|| "make / a slave mount")
}

/// A /proc that shows this PID namespace.
pub fn mount_proc(target: &str) -> Result<()> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), target, Some("proc"), flags, None::<&str>).ctx(|| format!("mount proc on {target}"))
}
