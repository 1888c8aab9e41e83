//! cgroups, found from /proc/self/mountinfo: pure v2 (most distributions)
//! or hybrid (v1 controllers beside a v2 hierarchy, as on this project's
//! machines). Contexts live in the v2 hierarchy under `vsbox/` — that is
//! where their identity and their cgroup-BPF programs are; the v1
//! controllers a flag needs (`cpu` for `sched`, `pids` for `nproc`) get a
//! directory at the same relative path.

use crate::error::{Context, Error, Result};
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The directory under the v2 root that holds every context.
pub const BASE: &str = "vsbox";

/// The controllers vsbox uses besides the v2 hierarchy's own: `cpu` (the
/// `sched` flag, CPU_WEIGHT, CPU_LIMIT), `pids` (`nproc`), `memory`
/// (MEM_LIMIT, SWAP_LIMIT), `cpuset` (CPUSET) and `hugetlb` (CGROUP=),
/// under v1 where they are mounted there (a hybrid layout), in the v2
/// directory otherwise.
pub const CONTROLLERS: [&str; 5] = ["cpu", "pids", "memory", "cpuset", "hugetlb"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The file system's device, `MAJOR:MINOR`.
    pub dev: String,
    /// The mount's root inside its filesystem, as mountinfo shows it.
    pub root: String,
    pub point: PathBuf,
    pub fstype: String,
    pub superopts: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // At most \377: a byte.
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1] <= b'3' && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                dev: (*l.get(2)?).to_owned(),
                root: unescape(l.get(3)?),
                point: PathBuf::from(unescape(l.get(4)?)),
                fstype: (*r.first()?).to_owned(),
                superopts: r.get(2).map(|s| (*s).to_owned()).unwrap_or_default(),
            })
        })
        .collect()
}

#[derive(Clone, Debug)]
pub struct Layout {
    /// The v2 hierarchy: /sys/fs/cgroup (pure) or /sys/fs/cgroup/unified (hybrid).
    pub v2: PathBuf,
    /// mountinfo's root field of the v2 mount ("/" unless in a cgroup namespace).
    pub v2_root: String,
    /// v1 hierarchies: (controller, mount point).
    pub v1: Vec<(String, PathBuf)>,
    /// Every cgroup and cgroup2 mount point.
    pub mounts: Vec<PathBuf>,
    /// A mount point that holds all of them and nothing else, if any.
    pub holder: Option<PathBuf>,
}

impl Layout {
    pub fn detect() -> Result<Layout> {
        let text = crate::sys::read_text("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
        Self::from_mounts(&parse_mountinfo(&text))
    }

    pub fn from_mounts(mounts: &[Mount]) -> Result<Layout> {
        let v2 = mounts
            .iter()
            .find(|m| m.fstype == "cgroup2")
            .ok_or_else(|| Error::failed("find the cgroup v2 hierarchy", "no cgroup2 mount in /proc/self/mountinfo"))?;
        let mut v1 = Vec::new();
        for m in mounts.iter().filter(|m| m.fstype == "cgroup") {
            for opt in m.superopts.split(',') {
                if [
                    "cpu", "pids", "memory", "cpuacct", "cpuset", "freezer", "blkio", "devices", "hugetlb",
                ]
                .contains(&opt)
                {
                    v1.push((opt.to_owned(), m.point.clone()));
                }
            }
        }
        let points: Vec<PathBuf> = mounts
            .iter()
            .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
            .map(|m| m.point.clone())
            .collect();
        let holder = Self::holder(mounts, &points);
        Ok(Layout {
            v2: v2.point.clone(),
            v2_root: v2.root.clone(),
            v1,
            mounts: points,
            holder,
        })
    }

    /// The deepest mount point at or above every cgroup mount, provided
    /// that nothing but cgroup mounts lies below it.
    fn holder(mounts: &[Mount], points: &[PathBuf]) -> Option<PathBuf> {
        let first = points.first()?;
        let top = first.ancestors().find(|a| points.iter().all(|p| p.starts_with(a)))?;
        let is_mount = mounts.iter().any(|m| m.point == top);
        let only_cgroups = mounts
            .iter()
            .filter(|m| m.point.starts_with(top) && m.point != top)
            .all(|m| points.contains(&m.point));
        (is_mount && only_cgroups && top != Path::new("/")).then(|| top.to_path_buf())
    }

    /// `<v2>/vsbox`.
    pub fn base(&self) -> PathBuf {
        self.v2.join(BASE)
    }

    /// Whether the v2 hierarchy offers `controller` (pure v2 layouts).
    pub fn v2_has(&self, controller: &str) -> bool {
        crate::sys::read_text(self.v2.join("cgroup.controllers")).is_ok_and(|s| s.split_whitespace().any(|c| c == controller))
    }

    /// The mount point of a v1 controller, when that controller is v1.
    pub fn v1_mount(&self, controller: &str) -> Option<&Path> {
        self.v1.iter().find(|(c, _)| c == controller).map(|(_, p)| p.as_path())
    }

    /// The v1 directory that mirrors a v2 directory, for `controller`.
    pub fn v1_dir(&self, controller: &str, v2_dir: &Path) -> Option<PathBuf> {
        let rel = v2_dir.strip_prefix(&self.v2).ok()?;
        Some(self.v1_mount(controller)?.join(rel))
    }

    /// Where the v1 directories of [`CONTROLLERS`] that mirror `v2_dir`
    /// are or would be, one for each of those controllers that is v1.
    pub fn v1_places(&self, v2_dir: &Path) -> Vec<PathBuf> {
        CONTROLLERS.iter().filter_map(|c| self.v1_dir(c, v2_dir)).collect()
    }

    /// Those of [`Layout::v1_places`] that exist: a context's v1
    /// directories, which its processes join.
    pub fn v1_dirs(&self, v2_dir: &Path) -> Vec<PathBuf> {
        self.v1_places(v2_dir).into_iter().filter(|d| d.is_dir()).collect()
    }

    /// This process's own v2 cgroup directory. Inside a cgroup namespace the
    /// path in /proc/self/cgroup is relative to a root the mount does not
    /// show; then the context tree under `vsbox/` is searched for our pid.
    pub fn own_dir(&self) -> Result<PathBuf> {
        let text = crate::sys::read_text("/proc/self/cgroup").ctx(|| "read /proc/self/cgroup")?;
        let path = v2_path(&text).ok_or_else(|| Error::failed("read /proc/self/cgroup", "no cgroup v2 entry"))?;
        if let Some(rel) = relative_to(&path, &self.v2_root) {
            return Ok(self.v2.join(rel));
        }
        let me = std::process::id();
        find_dir(&self.base(), &|d| procs(d).is_ok_and(|p| p.contains(&me)))
            .ok_or_else(|| Error::failed("find this process's cgroup", "it is in a cgroup namespace outside vsbox's contexts"))
    }

    /// Relative path (from the v2 root) of a directory of this layout.
    pub fn relative<'a>(&self, dir: &'a Path) -> Option<&'a Path> {
        dir.strip_prefix(&self.v2).ok()
    }
}

impl Layout {
    /// Makes every cgroup mount of this mount namespace read-only, so a
    /// root without CAP_SYS_ADMIN cannot move itself out of its cgroup
    /// (the cgroup namespace alone stops that only on `nsdelegate` mounts).
    pub fn seal(&self) -> Result<()> {
        self.seal_roots().iter().try_for_each(|m| {
            crate::sys::mount_setattr(m, true, crate::sys::MOUNT_ATTR_RDONLY, 0).ctx(|| format!("make {} read-only", m.display()))
        })
    }

    /// Where to seal: the mount that holds every cgroup mount (the tmpfs at
    /// /sys/fs/cgroup of a hybrid layout, the cgroup2 mount of a pure one),
    /// so one recursive call does it; each cgroup mount otherwise.
    fn seal_roots(&self) -> Vec<PathBuf> {
        match &self.holder {
            Some(h) => vec![h.clone()],
            None => self.mounts.clone(),
        }
    }

    /// Inside a context the cgroup mounts are sealed; vsbox itself (with
    /// CAP_SYS_ADMIN) then moves into a private mount namespace where they
    /// are writable, to create a nested context or lock.
    pub fn unseal(&self) -> Result<()> {
        use nix::sys::statvfs::{statvfs, FsFlags};
        if !statvfs(&self.v2).is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY)) {
            return Ok(());
        }
        crate::kernel::ns::create(nix::sched::CloneFlags::CLONE_NEWNS)?;
        crate::kernel::ns::isolate_mounts()?;
        self.seal_roots().iter().try_for_each(|m| {
            crate::sys::mount_setattr(m, true, 0, crate::sys::MOUNT_ATTR_RDONLY).ctx(|| format!("make {} writable", m.display()))
        })
    }
}

/// The "0::PATH" entry of a /proc/PID/cgroup text.
pub fn v2_path(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end_matches(" (deleted)").to_owned())
}

/// `path` below `root` (both absolute cgroup paths), without the leading '/'.
fn relative_to(path: &str, root: &str) -> Option<String> {
    if root == "/" {
        return Some(path.trim_start_matches('/').to_owned());
    }
    if root.starts_with("/..") {
        return None;
    }
    let rest = path.strip_prefix(root)?;
    (rest.is_empty() || rest.starts_with('/')).then(|| rest.trim_start_matches('/').to_owned())
}

/// Depth-first search for a directory below `dir` (itself included).
pub fn find_dir(dir: &Path, pred: &dyn Fn(&Path) -> bool) -> Option<PathBuf> {
    if !dir.is_dir() {
        return None;
    }
    if pred(dir) {
        return Some(dir.to_path_buf());
    }
    subtree(dir).into_iter().find(|d| pred(d))
}

/// Each directory of [`subtree`] with its extended attribute `name` (None
/// where it has none or it cannot be read): read relative to `dir` where
/// the kernel has getxattrat(2), sparing each a walk down the whole path.
pub fn subtree_xattr(dir: &Path, name: &str) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let subs = subtree(dir);
    if subs.is_empty() {
        return Vec::new();
    }
    let base = fs::File::open(dir).ok();
    let mut at = base.is_some();
    subs.into_iter()
        .map(|d| {
            let rel = match d.parent() {
                Some(p) if p == dir => d.file_name().map(std::ffi::OsStr::to_owned),
                _ => d.strip_prefix(dir).ok().map(|r| r.as_os_str().to_owned()),
            };
            let value = match (&base, rel) {
                (Some(b), Some(rel)) if at => match crate::sys::getxattr_at(b, &rel, name) {
                    Ok(v) => v,
                    // An older kernel (ENOSYS), or a filter that refuses the
                    // new call (EPERM): the path call, from now on, if it works.
                    Err(_) => {
                        let v = crate::sys::getxattr(&d, name);
                        at = v.is_err();
                        v.ok().flatten()
                    }
                },
                _ => crate::sys::getxattr(&d, name).ok().flatten(),
            };
            (d, value)
        })
        .collect()
}

/// The cgroup directories below `dir`, every level, each before those
/// below it (each level sorted). A level is read further only where a
/// cgroup v2 `cgroup.stat` counts more descendants than its directories:
/// with contexts one level deep, as a host of many servers has them, one
/// directory read for all (each of hundreds of contexts is not opened).
pub fn subtree(dir: &Path) -> Vec<PathBuf> {
    // The count before the listing: a directory made in between is then
    // listed but not counted, which only sends the walk further down.
    let descendants = crate::sys::read_text(dir.join("cgroup.stat")).ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("nr_descendants ")?.trim().parse::<usize>().ok())
    });
    if descendants == Some(0) {
        return Vec::new();
    }
    let Ok(rd) = fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<std::ffi::OsString> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name())
        .collect();
    // By the names' bytes: Path's order compares component by component.
    names.sort_unstable();
    let subs: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    if descendants.is_some_and(|n| n <= subs.len()) {
        return subs;
    }
    let mut out = Vec::with_capacity(subs.len());
    for d in subs {
        let below = subtree(&d);
        out.push(d);
        out.extend(below);
    }
    out
}

/// The pids in a cgroup (as this process's pid namespace numbers them).
pub fn procs(dir: &Path) -> Result<Vec<u32>> {
    let f = dir.join("cgroup.procs");
    let text = crate::sys::read_text(&f).ctx(|| format!("read {}", f.display()))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Whether the cgroup or one below it still has processes.
pub fn populated(dir: &Path) -> bool {
    match crate::sys::read_text(dir.join("cgroup.events")) {
        Ok(ev) => ev.lines().any(|l| l == "populated 1"),
        // v1 has no cgroup.events.
        Err(_) => procs(dir).is_ok_and(|p| !p.is_empty()),
    }
}

/// Moves the calling process into `dir`.
pub fn enter(dir: &Path) -> Result<()> {
    let f = dir.join("cgroup.procs");
    fs::write(&f, "0").ctx(|| format!("move into cgroup {}", dir.display()))
}

/// Creates `dir`; Ok(false) if it existed already.
pub fn create(dir: &Path) -> Result<bool> {
    let mut tries = 0;
    loop {
        match fs::create_dir(dir) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            // The `vsbox` base goes with the last context, which another
            // vsbox may just have ended: make it again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 10 => {
                match dir.parent().filter(|p| p.file_name().is_some_and(|n| n == BASE)) {
                    Some(base) => {
                        let _ = fs::create_dir(base);
                        tries += 1;
                    }
                    None => return Err(Error::io(format!("create cgroup {}", dir.display()), &e)),
                }
            }
            Err(e) => return Err(Error::io(format!("create cgroup {}", dir.display()), &e)),
        }
    }
}

/// Waits up to `timeout` (None: for ever) until no process is left in
/// `dir` (or `dir` is gone), asleep in poll(2) on cgroup.events.
pub fn wait_empty(dir: &Path, timeout: Option<Duration>) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let start = Instant::now();
    let events = fs::File::open(dir.join("cgroup.events")).ok();
    loop {
        // Reading through the polled descriptor re-arms its notification.
        let busy = match &events {
            Some(f) => events_populated(f),
            None => populated(dir),
        };
        if !busy {
            return true;
        }
        let left = match timeout {
            Some(t) => match t.checked_sub(start.elapsed()) {
                Some(l) => l,
                None => return false,
            },
            None => Duration::from_secs(3600),
        };
        // cgroup.events signals POLLPRI on change (the long slice only
        // guards against a missed wake-up); v1 dirs have no such file, so
        // short sleeps there.
        match &events {
            Some(f) => {
                let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLPRI)];
                let ms = left.min(Duration::from_secs(600)).as_millis() as i32;
                let _ = poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX));
            }
            None => std::thread::sleep(left.min(Duration::from_millis(20))),
        }
    }
}

/// `populated` from an open cgroup.events; false once the cgroup is gone.
fn events_populated(f: &fs::File) -> bool {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 128];
    match f.read_at(&mut buf, 0) {
        Ok(n) => buf[..n].split(|&b| b == b'\n').any(|l| l == b"populated 1"),
        Err(_) => false,
    }
}

/// Removes a cgroup once its last process has gone (waiting up to
/// `timeout`), then its `vsbox` parent if that is now empty.
pub fn remove(dir: &Path, timeout: Option<Duration>) -> Result<()> {
    wait_empty(dir, timeout);
    remove_below(dir);
    let mut tries = 0;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
            // Exiting tasks leave the cgroup a moment after they are reaped.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(Error::io(format!("remove cgroup {}", dir.display()), &e)),
        }
    }
    remove_empty_parents(dir);
    Ok(())
}

/// Removes `dir` now if it is empty; otherwise leaves a small detached
/// process that waits (asleep in poll) for its last process to go and
/// removes it then, so nothing outlives what ran in it.
pub fn remove_when_empty(dir: &Path) {
    if !populated(dir) {
        if let Err(e) = remove(dir, Some(Duration::from_millis(100))) {
            eprintln!("vsbox: warning: {e}");
        }
        return;
    }
    let title = format!("vsbox-reaper {}", dir.display());
    if let Err(e) = crate::kernel::process::detached(&title, Vec::new(), |_| {
        wait_empty(dir, None);
        let _ = remove(dir, Some(Duration::from_secs(1)));
    }) {
        eprintln!("vsbox: warning: cannot wait for {} to empty: {}", dir.display(), e.desc());
    }
}

/// Extended attribute naming the vsbox process that removes a directory
/// when it empties (chbind's lock directories carry it in their name).
pub const XATTR_OWNER: &str = "trusted.vsbox.owner";

/// Records this process as the owner of `dir`: its pid, and its PID
/// namespace, without which the pid means nothing to a sweeper elsewhere
/// (a context made inside a context has pids of its own).
pub fn record_owner(dir: &Path) -> Result<()> {
    let value = format!("{} {}", std::process::id(), own_pid_ns().unwrap_or(0));
    crate::sys::setxattr(dir, XATTR_OWNER, value.as_bytes()).ctx(|| format!("record the owner of {}", dir.display()))
}

fn own_pid_ns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

/// The pid of the process that owns context `dir` (a fresh context's
/// `exec`, which removes it when its command ends), alive or not: None
/// when it has none, or one recorded from another PID namespace.
pub fn owner_of(dir: &Path) -> Option<i32> {
    match crate::sys::getxattr(dir, XATTR_OWNER).ok().flatten() {
        Some(v) => owner_in(&v, own_pid_ns()),
        None => lock_owner(dir),
    }
}

/// The pid of an owner attribute's value, when recorded in `own_ns`,
/// this process's PID namespace.
fn owner_in(v: &[u8], own_ns: Option<u64>) -> Option<i32> {
    let v = String::from_utf8_lossy(v);
    let mut parts = v.split_whitespace();
    let pid = parts.next()?.parse().ok()?;
    match parts.next().and_then(|n| n.parse::<u64>().ok()) {
        Some(ns) if Some(ns) != own_ns => None,
        _ => Some(pid),
    }
}

/// chbind's lock directories carry their owner in their name.
fn lock_owner(dir: &Path) -> Option<i32> {
    dir.file_name()?.to_str()?.strip_prefix("vsbox-bind.")?.parse().ok()
}

/// Whether `dir` has a recorded owner that has ended (in this PID
/// namespace; a pid reused since counts as alive, which errs on the side
/// of the directory being in use).
pub fn owner_gone(dir: &Path) -> bool {
    owner_of(dir).is_some_and(|pid| !alive(pid))
}

fn alive(pid: i32) -> bool {
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Removes, below `dir`, the empty context and lock directories whose
/// owner is gone (it was killed before it could clean up), with their v1
/// counterparts. Directories without an owner are left alone: they may be
/// a moment old. Returns the directories left, in [`subtree`]'s order.
pub fn sweep(layout: &Layout, dir: &Path) -> Vec<PathBuf> {
    let own_ns = own_pid_ns();
    let mut left = Vec::new();
    // Those below first: a directory empties of them before its own turn.
    for (sub, owner) in subtree_xattr(dir, XATTR_OWNER).into_iter().rev() {
        let gone = match owner {
            Some(v) => owner_in(&v, own_ns).is_some_and(|pid| !alive(pid)),
            None => lock_owner(&sub).is_some_and(|pid| !alive(pid)),
        };
        if gone && !populated(&sub) {
            remove_below(&sub);
            // With the v1 base when it was the last there: nothing else
            // would remove it (a launch makes only the v2 one).
            for d in layout.v1_dirs(&sub) {
                if fs::remove_dir(&d).is_ok() {
                    remove_empty_parents(&d);
                }
            }
            if fs::remove_dir(&sub).is_ok() {
                // With what remove_below took from under it.
                left.retain(|d: &PathBuf| !d.starts_with(&sub));
                continue;
            }
        }
        left.push(sub);
    }
    left.reverse();
    left
}

/// Removes the empty directories below `dir`, deepest first: those a
/// process of the context made and could not remove, being killed with it
/// (chbind's lock directory, named by a pid of the context's own).
fn remove_below(dir: &Path) {
    for sub in subtree(dir).into_iter().rev() {
        let _ = fs::remove_dir(sub);
    }
}

/// Removes `dir` if it is empty now; no waiting.
pub fn try_remove(dir: &Path) {
    if fs::remove_dir(dir).is_ok() {
        remove_empty_parents(dir);
    }
}

/// Walks up from a removed directory, removing parents that are now empty,
/// up to and including the `vsbox` base, so that nothing of vsbox stays
/// when no context runs (parent contexts that still have processes or
/// children refuse, which ends the walk).
fn remove_empty_parents(dir: &Path) {
    for parent in dir.ancestors().skip(1) {
        if !parent.components().any(|c| c.as_os_str() == BASE) || fs::remove_dir(parent).is_err() {
            break;
        }
        if parent.file_name().is_some_and(|n| n == BASE) {
            break;
        }
    }
}

/// The directory that gives `controller` to the context at v2 directory
/// `dir`: `dir` itself where v2 offers the controller (enabled on the way
/// down from the root), or the mirrored v1 directory (created).
pub fn controller_dir(layout: &Layout, dir: &Path, controller: &str) -> Result<Option<PathBuf>> {
    if layout.v2_has(controller) {
        // Enable it in every ancestor, root first.
        let mut chain: Vec<&Path> = dir.ancestors().skip(1).take_while(|a| a.starts_with(&layout.v2)).collect();
        chain.reverse();
        for at in chain {
            let f = at.join("cgroup.subtree_control");
            let enabled = crate::sys::read_text(&f).is_ok_and(|s| s.split_whitespace().any(|c| c == controller));
            if !enabled {
                fs::write(&f, format!("+{controller}")).ctx(|| format!("enable the {controller} controller in {}", at.display()))?;
            }
        }
        return Ok(Some(dir.to_path_buf()));
    }
    match layout.v1_dir(controller, dir) {
        Some(d) => {
            fs::create_dir_all(&d).ctx(|| format!("create cgroup {}", d.display()))?;
            Ok(Some(d))
        }
        None => Err(Error::failed(
            format!("use the {controller} controller"),
            "this system has no such cgroup controller",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subtree_is_read_level_by_level_unless_its_stat_says_one_is_all() {
        let t = std::env::temp_dir().join(format!("vsbox-subtree-{}", std::process::id()));
        for d in ["a/x", "b"] {
            fs::create_dir_all(t.join(d)).unwrap();
        }
        let names = |v: Vec<PathBuf>| -> Vec<String> { v.iter().map(|p| p.strip_prefix(&t).unwrap().display().to_string()).collect() };
        assert_eq!(names(subtree(&t)), ["a", "a/x", "b"]);
        // cgroup v2's count of descendants says there is no deeper level.
        fs::write(t.join("cgroup.stat"), "nr_descendants 2\nnr_dying_descendants 0\n").unwrap();
        assert_eq!(names(subtree(&t)), ["a", "b"]);
        fs::write(t.join("cgroup.stat"), "nr_descendants 3\n").unwrap();
        assert_eq!(names(subtree(&t)), ["a", "a/x", "b"]);
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn an_owner_counts_only_in_its_own_pid_namespace() {
        assert_eq!(owner_in(b"42 4026531836", Some(4026531836)), Some(42));
        assert_eq!(owner_in(b"42 4026531836", Some(7)), None);
        assert_eq!(owner_in(b"42", Some(7)), Some(42));
        assert_eq!(owner_in(b"x", None), None);
        assert_eq!(lock_owner(Path::new("/sys/fs/cgroup/vsbox/vsbox-bind.77")), Some(77));
    }

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const PURE: &str = "\
25 22 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn finds_both_layouts() {
        let h = Layout::from_mounts(&parse_mountinfo(HYBRID)).unwrap();
        assert_eq!(h.v2, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(h.v1_mount("pids"), Some(Path::new("/sys/fs/cgroup/pids")));
        assert_eq!(h.v1_mount("memory"), None);
        assert_eq!(h.holder.as_deref(), Some(Path::new("/sys/fs/cgroup")));
        assert_eq!(
            h.v1_dir("cpu", Path::new("/sys/fs/cgroup/unified/vsbox/7")),
            Some(PathBuf::from("/sys/fs/cgroup/cpu/vsbox/7"))
        );
        let p = Layout::from_mounts(&parse_mountinfo(PURE)).unwrap();
        assert_eq!(p.v2, Path::new("/sys/fs/cgroup"));
        assert!(p.v1.is_empty());
        assert_eq!(p.holder.as_deref(), Some(Path::new("/sys/fs/cgroup")));
        assert!(Layout::from_mounts(&[]).is_err());
    }

    #[test]
    fn unescapes_mount_points() {
        let m = parse_mountinfo("1 2 0:1 / /a\\040b rw - cgroup2 none rw\n");
        assert_eq!(m[0].point, Path::new("/a b"));
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_to("/vsbox/5", "/").as_deref(), Some("vsbox/5"));
        assert_eq!(relative_to("/vsbox/5", "/vsbox").as_deref(), Some("5"));
        assert_eq!(relative_to("/vsboxx/5", "/vsbox"), None);
        assert_eq!(relative_to("/", "/../.."), None);
        assert_eq!(v2_path("1:cpu:/\n0::/vsbox/9\n").as_deref(), Some("/vsbox/9"));
    }
}
