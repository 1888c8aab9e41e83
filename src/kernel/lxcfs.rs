//! lxcfs (linuxcontainers.org/lxcfs; Debian package `lxcfs`): a FUSE file
//! system on the host whose proc/meminfo, cpuinfo, stat, … answer each
//! reader with the figures of its own cgroups. When it runs, a guest's
//! /proc files of that name are bound from it, as LXC's hook does
//! (share/lxc/config/common.conf.d/00-lxcfs.conf), so procps `free` and
//! `top` tell the guest's truth; busybox's tools use sysinfo(2), which
//! the supervisor answers (kernel/sysinfo.rs), and busybox's `free` reads
//! /proc/meminfo's cache figures too. Without it /proc is the host's, and
//! `vserver NAME status` says so.
//!
//! Only root's lxcfs is trusted: any user may mount a FUSE file system of
//! subtype lxcfs, and its files would be what every guest reads. Its
//! files are opened without following a symlink or leaving the mount.

use crate::error::{Context, Error, Result};
use crate::kernel::cgroup::{parse_mountinfo, Mount};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// The /proc files bound from lxcfs, those of them its version has.
pub const PROC_FILES: [&str; 7] = ["meminfo", "cpuinfo", "stat", "uptime", "loadavg", "diskstats", "swaps"];

/// The file system type of lxcfs's mount in mountinfo.
const FSTYPE: &str = "fuse.lxcfs";

/// lxcfs as mounted on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lxcfs {
    pub at: PathBuf,
    /// Its device, `MAJOR:MINOR`: a guest's binds from another one are
    /// from an lxcfs that has stopped (or restarted) since.
    pub dev: String,
}

/// The lxcfs mounts in the mount table `mounts` that may be root's: of
/// the whole file system, mounted for uid and gid 0 (FUSE's user_id and
/// group_id super options, which an unprivileged mounter cannot set to
/// root's).
pub fn candidates(mounts: &[Mount]) -> Vec<Lxcfs> {
    mounts
        .iter()
        .filter(|m| {
            let opts: Vec<&str> = m.superopts.split(',').collect();
            m.fstype == FSTYPE && m.root == "/" && opts.contains(&"user_id=0") && opts.contains(&"group_id=0")
        })
        .map(|m| Lxcfs {
            at: m.point.clone(),
            dev: m.dev.clone(),
        })
        .collect()
}

/// Root's lxcfs on this host (/var/lib/lxcfs as Debian starts it), when
/// it runs and answers; None otherwise. On the patched kernel it cannot
/// see a guest's processes (the host is blind to its guests) and would
/// answer with the host's figures, so it is not used there. A hung lxcfs
/// daemon hangs this call (as it hangs every reader of its files).
pub fn running() -> Option<Lxcfs> {
    if crate::kernel::native::available() {
        return None;
    }
    let text = std::fs::read("/proc/self/mountinfo").ok()?;
    // A daemon that died leaves its mount behind, answering ENOTCONN.
    candidates(&parse_mountinfo(&String::from_utf8_lossy(&text)))
        .into_iter()
        .find(|l| open_file(l, "meminfo").is_ok_and(|f| f.is_some()))
}

/// lxcfs's proc/NAME, opened O_PATH beneath its mount point without
/// following a symlink or crossing into another mount; None when this
/// version has no such file. Err for anything but a regular file.
fn open_file(l: &Lxcfs, name: &str) -> Result<Option<OwnedFd>> {
    use crate::sys::{RESOLVE_BENEATH, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV};
    let what = || format!("open {}/proc/{name}", l.at.display());
    let dir = nix::fcntl::open(
        &l.at,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map(crate::sys::adopt_fd)
    .ctx(what)?;
    let path = Path::new("proc").join(name);
    let f = match crate::sys::openat2(
        &dir,
        &path,
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(f) => f,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(Error::sys(what(), e)),
    };
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&f)).ctx(what)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Error::failed(what(), "not a regular file"));
    }
    Ok(Some(f))
}

/// Detached bind mounts (read-only, nosuid, nodev, noexec) of lxcfs's
/// /proc files, with their names, taken before the guest's pivot_root
/// leaves the host's tree behind; [`attach`] puts them over the guest's
/// /proc.
pub fn clone_files(l: &Lxcfs) -> Result<Vec<(&'static str, OwnedFd)>> {
    use crate::sys::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
    let attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
    let mut out = Vec::new();
    for name in PROC_FILES {
        if let Some(f) = open_file(l, name)? {
            let tree = crate::sys::clone_mount(&f, attrs).ctx(|| format!("bind-mount {}/proc/{name}", l.at.display()))?;
            out.push((name, tree));
        }
    }
    Ok(out)
}

/// Mounts `files` ([`clone_files`]) over /proc/NAME of this mount
/// namespace.
pub fn attach(files: Vec<(&'static str, OwnedFd)>) -> Result<()> {
    for (name, tree) in files {
        let target = format!("/proc/{name}");
        let f = nix::fcntl::open(
            target.as_str(),
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map(crate::sys::adopt_fd)
        .ctx(|| format!("open {target}"))?;
        crate::sys::move_mount_onto(&tree, &f).ctx(|| format!("mount lxcfs's {name} on {target}"))?;
    }
    Ok(())
}

/// Where a server's /proc files come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proc {
    /// Running, these files bound from the lxcfs running now.
    Bound(Vec<String>),
    /// Running, these files bound from an lxcfs that has stopped or
    /// restarted since: reading them fails (ENOTCONN).
    Stale(Vec<String>),
    /// Running without lxcfs's files; `now`: lxcfs runs now (started
    /// after the server).
    Host { now: bool },
    /// Not running; whether it would get lxcfs's files.
    WhenRunning { lxcfs: bool },
}

impl Proc {
    /// A running server's, from its mountinfo text and the host's lxcfs
    /// now.
    pub fn of_running(mountinfo: &str, host: Option<&Lxcfs>) -> Proc {
        let mounts = parse_mountinfo(mountinfo);
        let bound: Vec<&Mount> = mounts
            .iter()
            .filter(|m| m.fstype == FSTYPE && m.point.parent() == Some(Path::new("/proc")))
            .collect();
        let names = || {
            bound
                .iter()
                .filter_map(|m| Some(m.point.file_name()?.to_string_lossy().into_owned()))
                .collect()
        };
        match host {
            _ if bound.is_empty() => Proc::Host { now: host.is_some() },
            Some(l) if bound.iter().all(|m| m.dev == l.dev) => Proc::Bound(names()),
            _ => Proc::Stale(names()),
        }
    }

    /// For `status --json`: "bound", "stale", "host", "host, lxcfs since"
    /// or "lxcfs when running".
    pub fn json_name(&self) -> &'static str {
        match self {
            Proc::Bound(_) => "bound",
            Proc::Stale(_) => "stale",
            Proc::Host { now: true } => "host, lxcfs since",
            Proc::Host { now: false } | Proc::WhenRunning { lxcfs: false } => "host",
            Proc::WhenRunning { lxcfs: true } => "lxcfs when running",
        }
    }

    /// `status`'s `/proc:` line (`patched`: on the patched kernel, where
    /// lxcfs is not used).
    pub fn describe(&self, patched: bool) -> String {
        let all = PROC_FILES.join(", ");
        let why = if patched {
            "lxcfs cannot see a server's processes on the patched kernel"
        } else {
            "no lxcfs runs on the host"
        };
        let host = format!(
            "the host's ({why}; sysinfo(2) answers the server's own memory, uptime and processes, but free's used and cache columns count the host's cache)"
        );
        match self {
            Proc::Bound(f) => format!("/proc: {} from lxcfs\n", f.join(", ")),
            Proc::Stale(f) => format!(
                "/proc: {} from an lxcfs that has stopped since the server started: they cannot be read; restart the server\n",
                f.join(", ")
            ),
            Proc::Host { now: true } => format!("/proc: {all} are the host's (lxcfs started after the server: restart it to use lxcfs)\n"),
            Proc::Host { now: false } => format!("/proc: {all} are {host}\n"),
            Proc::WhenRunning { lxcfs: true } => format!("/proc: {all} from lxcfs, when running\n"),
            Proc::WhenRunning { lxcfs: false } => format!("/proc: {all} will be {host}\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:40 / /home/eve/fake rw,nosuid,nodev - fuse.lxcfs lxcfs rw,user_id=1000,group_id=1000,allow_other
44 22 0:41 / /var/lib/lxcfs rw,nosuid,nodev,relatime shared:20 - fuse.lxcfs lxcfs rw,user_id=0,group_id=0,allow_other
45 22 0:41 /proc/meminfo /srv/x rw - fuse.lxcfs lxcfs rw,user_id=0,group_id=0
";

    #[test]
    fn only_roots_whole_lxcfs_mount_is_a_candidate() {
        let l = Lxcfs {
            at: PathBuf::from("/var/lib/lxcfs"),
            dev: "0:41".into(),
        };
        assert_eq!(candidates(&parse_mountinfo(TABLE)), vec![l]);
        // A user's FUSE mount of subtype lxcfs alone: none.
        assert_eq!(candidates(&parse_mountinfo(&TABLE[..TABLE.find("44 ").unwrap()])), vec![]);
    }

    #[test]
    fn a_servers_proc_files_are_told_from_its_mountinfo() {
        let host = Lxcfs {
            at: PathBuf::from("/var/lib/lxcfs"),
            dev: "0:41".into(),
        };
        let guest = "\
29 1 0:50 / / rw - ext4 /dev/sda1 rw
30 29 0:5 / /proc rw - proc proc rw
31 30 0:41 /proc/meminfo /proc/meminfo ro,nosuid,nodev,noexec - fuse.lxcfs lxcfs rw,user_id=0,group_id=0
32 30 0:41 /proc/uptime /proc/uptime ro,nosuid,nodev,noexec - fuse.lxcfs lxcfs rw,user_id=0,group_id=0
";
        let files = vec!["meminfo".to_owned(), "uptime".to_owned()];
        assert_eq!(Proc::of_running(guest, Some(&host)), Proc::Bound(files.clone()));
        // lxcfs restarted (another device), or stopped.
        let other = Lxcfs {
            dev: "0:60".into(),
            ..host.clone()
        };
        assert_eq!(Proc::of_running(guest, Some(&other)), Proc::Stale(files.clone()));
        assert_eq!(Proc::of_running(guest, None), Proc::Stale(files));
        // Without binds: the host's, lxcfs running now or not.
        let plain = &guest[..guest.find("31 ").unwrap()];
        assert_eq!(Proc::of_running(plain, Some(&host)), Proc::Host { now: true });
        assert_eq!(Proc::of_running(plain, None), Proc::Host { now: false });
    }

    #[test]
    fn status_lines() {
        assert_eq!(
            Proc::Bound(vec!["meminfo".into(), "stat".into()]).describe(false),
            "/proc: meminfo, stat from lxcfs\n"
        );
        assert!(Proc::Stale(vec!["meminfo".into()]).describe(false).contains("restart the server"));
        assert!(Proc::Host { now: true }.describe(false).contains("lxcfs started after the server"));
        let none = Proc::Host { now: false }.describe(false);
        assert!(none.starts_with("/proc: meminfo, cpuinfo, stat, uptime, loadavg, diskstats, swaps are the host's (no lxcfs runs"));
        assert!(Proc::WhenRunning { lxcfs: false }.describe(true).contains("on the patched kernel"));
        assert_eq!(Proc::Stale(vec![]).json_name(), "stale");
    }
}
