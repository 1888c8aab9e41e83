//! A virtual server: a name, a configuration file `CONFDIR/NAME.conf`, a
//! tree `ROOTDIR/NAME`, an optional hook script `CONFDIR/NAME.sh`, and —
//! while it runs — a context whose cgroup carries the configuration's
//! path in the `trusted.vsbox.guest` attribute. That attribute is how any
//! vsbox process finds the running guest again.

pub mod archive;
pub mod builder;
pub mod config;
pub mod delete;
pub mod extents;
pub mod fakeinit;
pub mod fleet;
pub mod identity;
pub mod lifecycle;
pub mod quota;
pub mod reboot;
pub mod rebootmgr;
pub mod resolv;
pub mod settings;
pub mod supervisor;

pub mod tree;
pub mod unify;
pub mod walk;

use crate::context::Registry;
use crate::error::{Context, Error, Result};
use crate::guest::config::Config;
use crate::kernel::cgroup::{self, Layout};
use crate::paths;
use std::fs;
use std::path::{Path, PathBuf};

/// Set for hooks: the server whose lock their caller holds.
pub const LOCK_HELD: &str = "VSBOX_LOCK_HELD";

pub use crate::context::XATTR_GUEST;
pub const XATTR_ALIASES: &str = "trusted.vsbox.aliases";
/// On RUNDIR/NAME.lock: the server's running context as its start
/// recorded it, a path a line: its cgroup v2 directory
/// (`/sys/fs/cgroup/unified/vsbox/49152`), then where each v1 controller's
/// directory of it is or would be.
pub const XATTR_CONTEXT: &str = "trusted.vsbox.context";
/// [`XATTR_CONTEXT`] once the server's last context has been cleaned up:
/// this, then the server's tag ([`Guest::tag`]).
const NO_CONTEXT: &str = "-\n";

/// The lock on making a server's context ([`Guest::making`]): an open
/// file description's record lock (fcntl F_OFD_SETLKW) on the first byte
/// of RUNDIR/NAME.lock, which does not meet the flock [`Guest::lock`]
/// holds on the same file. Released when dropped; a forked child that
/// keeps a copy of the descriptor must forget it, since the lock is the
/// open file description's.
pub struct Making {
    file: fs::File,
}

impl Making {
    fn set(&self, kind: libc::c_short, wait: bool) -> nix::Result<()> {
        use std::os::fd::AsRawFd;
        // l_pid 0, as an open file description's lock must have it.
        let l = libc::flock {
            l_type: kind,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 1,
            l_pid: 0,
        };
        let arg = || match wait {
            true => nix::fcntl::FcntlArg::F_OFD_SETLKW(&l),
            false => nix::fcntl::FcntlArg::F_OFD_SETLK(&l),
        };
        loop {
            match nix::fcntl::fcntl(self.file.as_raw_fd(), arg()) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => return r.map(drop),
            }
        }
    }
}

impl Drop for Making {
    fn drop(&mut self) {
        let _ = self.set(libc::F_UNLCK as libc::c_short, false);
    }
}

/// A server's running context as its start recorded it.
pub struct Recorded {
    pub xid: u32,
    /// Its cgroup v2 directory.
    pub dir: PathBuf,
    /// Its v1 controller directories.
    pub v1: Vec<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Guest {
    pub name: String,
    pub conf: PathBuf,
    pub root: PathBuf,
    pub hook: PathBuf,
}

/// Guest names become file names and host names: letters, digits, `.`,
/// `_` and `-`, not starting with a dot or a dash.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "bad server name '{name}': up to 64 letters, digits, '.', '_' and '-', not starting with '.' or '-'"
        )))
    }
}

/// The tags ([`Guest::tag`]) of the servers that run now: every
/// context's tag read once, for a whole fleet (`vservers`), where asking
/// each server in turn would read every context's once per server.
pub fn running_tags() -> Result<std::collections::HashSet<Vec<u8>>> {
    let reg = Registry::open()?;
    Ok(cgroup::subtree_xattr(&reg.layout.base(), XATTR_GUEST)
        .into_iter()
        .filter_map(|(d, v)| v.filter(|_| cgroup::populated(&d)))
        .collect())
}

impl Guest {
    pub fn new(name: &str) -> Result<Guest> {
        check_name(name)?;
        let confdir = paths::confdir();
        Ok(Guest {
            name: name.to_owned(),
            conf: config::path_of(&confdir, name),
            root: paths::rootdir().join(name),
            hook: confdir.join(format!("{name}.sh")),
        })
    }

    /// The guest must exist: a configuration file or a tree.
    pub fn existing(name: &str) -> Result<Guest> {
        let g = Guest::new(name)?;
        if !g.conf.exists() && !g.root.exists() {
            return Err(Error::usage(format!(
                "unknown server '{name}': no {} and no {}",
                g.conf.display(),
                g.root.display()
            )));
        }
        Ok(g)
    }

    /// Its configuration; a guest without a file gets the defaults.
    pub fn config(&self) -> Result<Config> {
        if self.conf.exists() {
            config::load(&self.conf)
        } else {
            Ok(Config::default())
        }
    }

    /// Identifies the guest's context: the configuration's path.
    pub fn tag(&self) -> String {
        self.conf.display().to_string()
    }

    /// The guest's context directory, if one exists (running or a leftover).
    pub fn context_dir(&self, layout: &Layout) -> Option<PathBuf> {
        self.contexts(layout).into_iter().next()
    }

    /// The running context: (xid, directory). A populated one is looked
    /// for, not the first found: an empty one left by a killed client may
    /// still be there until the next sweep.
    pub fn running(&self, reg: &Registry) -> Option<(u32, PathBuf)> {
        Self::running_among(self.running_contexts(&reg.layout))
    }

    /// Its running context's directory as its start recorded it (see
    /// [`Guest::recorded`]); else every context directory of it
    /// ([`Guest::contexts`]). A few calls instead of a getxattr of every
    /// context on the host: a command entering one server of 500 no
    /// longer reads 500 tags.
    pub fn running_contexts(&self, layout: &Layout) -> Vec<PathBuf> {
        match self.recorded() {
            Some(r) => vec![r.dir],
            None => self.contexts(layout),
        }
    }

    /// Its running context as its start recorded it ([`XATTR_CONTEXT`]),
    /// when that still holds: the first path is a cgroup2 directory that
    /// carries the server's tag and has processes; of the others, its v1
    /// controllers' places, those that exist are cgroup v1 directories at
    /// the same place below their hierarchy's vsbox base (and are its v1
    /// directories, as the layout would find them), one for each v1
    /// hierarchy one of its processes is in there. Otherwise None, and the caller looks
    /// through the contexts as before (a server started by an older vsbox
    /// has no record; a file system without trusted xattrs keeps none).
    pub fn recorded(&self) -> Option<Recorded> {
        use nix::sys::statfs::{statfs, FsType, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
        use std::path::Component;
        let text = crate::sys::getxattr(&self.lock_path(), XATTR_CONTEXT).ok().flatten()?;
        let mut lines = std::str::from_utf8(&text).ok()?.lines().map(PathBuf::from);
        let dir = lines.next()?;
        let xid = dir.file_name()?.to_str()?.parse().ok()?;
        // Its place in each hierarchy: from the vsbox base down (what a
        // process's /proc/PID/cgroup lines say, "/vsbox/49152").
        let text = dir.to_str()?;
        let place = &text[text.find(&format!("/{}/", cgroup::BASE))?..];
        let on = |d: &Path, fs: FsType| {
            d.is_absolute()
                && d.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
                && d.to_str().is_some_and(|t| t.ends_with(place))
                && statfs(d).is_ok_and(|s| s.filesystem_type() == fs)
        };
        if !on(&dir, CGROUP2_SUPER_MAGIC) {
            return None;
        }
        // Where its v1 directories are, made or not: those that exist, as
        // Target::open finds them through the layout.
        let mut v1 = Vec::new();
        for d in lines {
            match statfs(&d) {
                Err(nix::errno::Errno::ENOENT) => {}
                _ if on(&d, CGROUP_SUPER_MAGIC) => v1.push(d),
                _ => return None,
            }
        }
        if !self.owns(&dir) {
            return None;
        }
        // Complete: a process of the context is in as many of the v1
        // controllers' hierarchies at that place as there are directories
        // (fewer while a live `set` moves its processes into a new one:
        // then the way through the layout).
        let pid = *cgroup::procs(&dir).ok()?.first()?;
        let own = crate::sys::read_text(format!("/proc/{pid}/cgroup")).ok()?;
        let joined = own
            .lines()
            .filter_map(|l| l.split_once(':')?.1.split_once(':'))
            .filter(|(ctrls, path)| *path == place && ctrls.split(',').any(|c| cgroup::CONTROLLERS.contains(&c)))
            .count();
        let distinct: std::collections::HashSet<&PathBuf> = v1.iter().collect();
        (joined == v1.len() && distinct.len() == v1.len()).then_some(Recorded { xid, dir, v1 })
    }

    /// What its record says: Some(None) when this server's last context
    /// was cleaned up ([`NO_CONTEXT`] with its tag); Some(the cgroup v2
    /// directory) it names, a context directly below the layout's vsbox
    /// base as `new_context` makes them (it may be gone, or another's
    /// now). None without a record, or with one that says anything else.
    fn recorded_dir(&self, layout: &Layout) -> Option<Option<PathBuf>> {
        let text = crate::sys::getxattr(&self.lock_path(), XATTR_CONTEXT).ok().flatten()?;
        if let Some(tag) = text.strip_prefix(NO_CONTEXT.as_bytes()) {
            return (tag == self.tag().as_bytes()).then_some(None);
        }
        let first = text.split(|&b| b == b'\n').next()?;
        let dir = PathBuf::from(std::str::from_utf8(first).ok()?);
        let numbered = dir.file_name()?.to_str()?.parse::<u32>().is_ok();
        (numbered && dir.parent() == Some(layout.base().as_path())).then_some(Some(dir))
    }

    /// Notes in its record that context `dir`, the one recorded, has been
    /// cleaned up (its directories removed, with the lock held): the next
    /// start or stop need not look through every context. A record that
    /// names another context is left as it is.
    pub fn record_ended(&self, layout: &Layout, dir: &Path) {
        if self.recorded_dir(layout).flatten().as_deref() == Some(dir) {
            let no_context = format!("{NO_CONTEXT}{}", self.tag());
            let _ = crate::sys::setxattr(&self.lock_path(), XATTR_CONTEXT, no_context.as_bytes());
        }
    }

    /// Records the server's context for [`Guest::recorded`] and
    /// [`Guest::contexts`]: its cgroup v2 directory, then where each v1
    /// controller's directory of it is or would be; [`XATTR_CONTEXT`] on
    /// its lock file, with [`Guest::making`] held. No new file (an inode a
    /// start on ext4, whose allocator then searches past recently deleted
    /// ones), nothing left when the server is deleted with its lock file.
    /// Should the attribute not be written (a file system without trusted
    /// xattrs), an older one is removed; an error when that fails too,
    /// since the older one would hide the new context, and when no record
    /// can be kept while another context of the server runs (found by
    /// every context's tag).
    pub fn record_context(&self, layout: &Layout, dirs: &[PathBuf]) -> Result<()> {
        let text: Vec<&[u8]> = dirs.iter().map(|d| d.as_os_str().as_encoded_bytes()).collect();
        let lock = self.lock_path();
        if crate::sys::setxattr(&lock, XATTR_CONTEXT, &text.join(&b'\n')).is_ok() {
            return Ok(());
        }
        if let Some(other) = self.tagged(layout).into_iter().find(|d| cgroup::populated(d)) {
            return Err(self.running_already(&other));
        }
        match crate::sys::removexattr(&lock, XATTR_CONTEXT) {
            // No lock file: `delete` took it while this start waited.
            Ok(()) | Err(nix::errno::Errno::ENODATA | nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::sys(format!("remove the old context record of {}", lock.display()), e)),
        }
    }

    /// RUNDIR/NAME.lock.
    fn lock_path(&self) -> PathBuf {
        paths::rundir().join(format!("{}.lock", self.name))
    }

    /// [`Guest::running`] among `dirs`, the server's context directories
    /// as [`Guest::contexts`] gave them.
    pub fn running_among(dirs: Vec<PathBuf>) -> Option<(u32, PathBuf)> {
        // The tag first (one call each), then populated(), which reads a file.
        let dir = dirs.into_iter().find(|d| cgroup::populated(d))?;
        let xid = dir.file_name()?.to_str()?.parse().ok()?;
        Some((xid, dir))
    }

    /// The context directories of this server that matter to a start or
    /// stop: a running one, and one left by a killed client until it is
    /// cleaned up.
    ///
    /// Its record ([`XATTR_CONTEXT`]) answers when it can: every context
    /// of a server is made, and cleaned up, under [`Guest::making`], and
    /// recorded before it is tagged (lifecycle.rs, `new_context`), which
    /// refuses while the one recorded before has processes, so an older
    /// one has none. So a
    /// start or stop reads one context's tag, not every context's (with
    /// 500 servers, 500 getxattrat fewer):
    /// - the record says this server's last context was cleaned up: none;
    /// - it names a context that carries this server's tag: that one.
    ///
    /// Otherwise every context with its tag: no record (a file system
    /// without trusted xattrs; a server started by a vsbox before the
    /// record), or one naming a context that is gone or another's (a
    /// fresh context its client removed; a clean-up cut short), or one
    /// not written by vsbox. Its one record is in its RUNDIR: a server
    /// run with two run directories is not known to the other's.
    pub fn contexts(&self, layout: &Layout) -> Vec<PathBuf> {
        match self.recorded_dir(layout) {
            Some(None) => Vec::new(),
            Some(Some(dir)) if self.owns(&dir) => vec![dir],
            _ => self.tagged(layout),
        }
    }

    /// Every context that carries this server's tag: a getxattr each of
    /// all contexts on the host.
    fn tagged(&self, layout: &Layout) -> Vec<PathBuf> {
        let tag = self.tag();
        cgroup::subtree_xattr(&layout.base(), XATTR_GUEST)
            .into_iter()
            .filter(|(_, v)| v.as_deref() == Some(tag.as_bytes()))
            .map(|(d, _)| d)
            .collect()
    }

    /// The context its record names, when that carries this server's tag
    /// (with processes or without: a clean-up cut short).
    pub fn recorded_ours(&self, layout: &Layout) -> Option<PathBuf> {
        self.recorded_dir(layout).flatten().filter(|d| self.owns(d))
    }

    /// Whether context `dir` carries this server's tag ([`XATTR_GUEST`]).
    fn owns(&self, dir: &Path) -> bool {
        crate::sys::getxattr(dir, XATTR_GUEST).is_ok_and(|t| t.as_deref() == Some(self.tag().as_bytes()))
    }

    /// The error of a context made while context `dir` of the server runs.
    pub fn running_already(&self, dir: &Path) -> Error {
        Error::failed(
            format!("server {}", self.name),
            format!("it is running already (in {})", dir.display()),
        )
    }

    /// The server's own low-level package manager: dpkg where its
    /// database is, else rpm, else whichever of the two it has.
    pub fn package_manager(&self) -> Result<&'static str> {
        let tree = crate::guest::tree::Tree::open(&self.root)?;
        let has = |paths: &[&str]| paths.iter().any(|p| tree.has_file(Path::new(p)));
        let (dpkg, rpm) = (has(&["usr/bin/dpkg", "bin/dpkg"]), has(&["usr/bin/rpm", "bin/rpm"]));
        if dpkg && has(&["var/lib/dpkg/status"]) {
            return Ok("dpkg");
        }
        if rpm || dpkg {
            return Ok(if rpm { "rpm" } else { "dpkg" });
        }
        Err(Error::failed(
            format!("find the package manager of server {}", self.name),
            "it has neither rpm nor dpkg",
        ))
    }

    /// The tree, which must be a real directory.
    pub fn check_tree(&self) -> Result<()> {
        match fs::symlink_metadata(&self.root) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::failed(
                format!("server {}", self.name),
                format!("{} is not a directory", self.root.display()),
            )),
            Err(e) => Err(Error::io(format!("server {}: {}", self.name, self.root.display()), &e)),
        }
    }

    /// The lock, unless a caller up the process tree holds it: a hook
    /// running `vserver NAME exec` must not wait for its own `start`.
    pub fn lock_unless_held(&self) -> Result<Option<nix::fcntl::Flock<fs::File>>> {
        if std::env::var_os(LOCK_HELD).is_some_and(|n| n == self.name.as_str()) {
            return Ok(None);
        }
        self.lock().map(Some)
    }

    /// Serialises start, stop and build of this guest: the lock is held
    /// until the returned value is dropped. Refused at once in a hook of
    /// this guest, whose caller holds it: waiting would never end.
    pub fn lock(&self) -> Result<nix::fcntl::Flock<fs::File>> {
        if std::env::var_os(LOCK_HELD).is_some_and(|n| n == self.name.as_str()) {
            return Err(Error::failed(
                format!("server {}", self.name),
                "a hook of it cannot start, stop, restart, build or delete it: the command that runs the hook holds its lock",
            ));
        }
        let (path, f) = self.open_lock_file()?;
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .ctx(|| format!("lock {}", path.display()))
    }

    /// RUNDIR/NAME.lock opened (made, with RUNDIR, when missing).
    fn open_lock_file(&self) -> Result<(PathBuf, fs::File)> {
        let dir = paths::rundir();
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let path = self.lock_path();
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))?;
        Ok((path, f))
    }

    /// Held while a context of the server is made, until its first
    /// process is in it, and while one is cleaned up ([`Making`]), also by
    /// a command that skipped [`lock`] because its caller holds it (a
    /// hook's): a command a pre-start hook leaves running then waits until
    /// the start's context runs, and joins it, rather than make a second
    /// one beside it. A start takes it after its pre-start hook, well
    /// after its look for a running context: `new_context`'s look at the
    /// context recorded covers what was made in between.
    ///
    /// [`lock`]: Guest::lock
    pub fn making(&self) -> Result<Making> {
        let (path, file) = self.open_lock_file()?;
        let m = Making { file };
        m.set(libc::F_WRLCK as libc::c_short, true)
            .ctx(|| format!("lock {} to make a context", path.display()))?;
        Ok(m)
    }

    /// Runs `NAME.sh PHASE NAME` if it exists and is executable.
    pub fn hook(&self, phase: &str) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = fs::metadata(&self.hook) else { return Ok(()) };
        if meta.permissions().mode() & 0o111 == 0 {
            return Ok(());
        }
        let st = std::process::Command::new(&self.hook)
            .args([phase, &self.name])
            .env(LOCK_HELD, &self.name)
            .status()
            .map_err(|e| Error::io(format!("run {} {phase}", self.hook.display()), &e))?;
        if st.success() {
            Ok(())
        } else {
            Err(Error::failed(
                format!("{} {phase} {}", self.hook.display(), self.name),
                format!("it failed ({st})"),
            ))
        }
    }
}

/// Every guest with a configuration file, by name.
pub fn all() -> Result<Vec<Guest>> {
    let dir = paths::confdir();
    let mut out = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(format!("read {}", dir.display()), &e)),
    };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(name) = n.strip_suffix(".conf") {
            if check_name(name).is_ok() {
                out.push(Guest::new(name)?);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web", "web-1", "a.b_c", "X9"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "-x", ".hidden", "a/b", "a b", "ä", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
