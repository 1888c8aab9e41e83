//! Security contexts: ids, flags, and the registry of live contexts.
//!
//! On a stock kernel a context N is the cgroup v2 directory `vsbox/…/N`
//! (nested contexts sit inside their parent's directory) plus the
//! namespaces of the processes in it. Everything here is read back from
//! the kernel — cgroup membership, the directory's `trusted.vsbox.*`
//! extended attributes (which only host root can change) — so no vsbox
//! process has to stay alive for the registry to be right.

pub mod exec;
pub mod init;
pub mod initctl;
pub mod launch;
pub mod limits;
pub mod plan;
pub mod record;
pub mod rootfs;
pub mod tty;
pub mod users;
pub mod utmp;

/// Extended attribute on a context's cgroup naming the virtual server it
/// runs (the path of its NAME.conf); none for a plain context.
pub const XATTR_GUEST: &str = "trusted.vsbox.guest";

/// Extended attribute on a guest's context naming its supervisor's control
/// socket (guest/supervisor.rs), which every process that joins the
/// context hands its unix socket filter to.
pub const XATTR_SUPERVISOR: &str = "trusted.vsbox.supervisor";
/// On a guest's context directory: its init is restarting at the guest's
/// own request (reboot(2)); set by its supervisor as it passes the request
/// on, gone with the directory.
pub const XATTR_RESTARTING: &str = "trusted.vsbox.restarting";

/// On a started guest's context directory: the inode of its init's
/// status pipe (decimal), the only descriptor a supervisor adopting the
/// guest will take as that pipe (guest/supervisor.rs).
pub const XATTR_STATUS_PIPE: &str = "trusted.vsbox.statuspipe";

/// On a context directory: when a supervisor adopted the guest after the
/// one before it was killed (seconds since the epoch): its processes
/// older than that make no unix sockets (their filter's listener died).
pub const XATTR_ADOPTED: &str = "trusted.vsbox.adopted";

use crate::abi;
use crate::error::{Context, Error, Result};
use crate::kernel::cgroup::{self, Layout};
use crate::sys;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const HOST: u32 = abi::VX_ID_HOST;
pub const SPECTATOR: u32 = abi::VX_ID_SPECTATOR;

/// Extended attribute holding a context's flags, as text ("lock,private").
pub const XATTR_FLAGS: &str = "trusted.vsbox.flags";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Host,
    Spectator,
    Static,
    Dynamic,
}

pub fn kind(xid: u32) -> Option<Kind> {
    match xid {
        abi::VX_ID_HOST => Some(Kind::Host),
        abi::VX_ID_SPECTATOR => Some(Kind::Spectator),
        abi::VX_STATIC_MIN..=abi::VX_STATIC_MAX => Some(Kind::Static),
        abi::VX_DYNAMIC_MIN..=abi::VX_DYNAMIC_MAX => Some(Kind::Dynamic),
        _ => None,
    }
}

/// Parses a context id given on the command line or in a configuration.
pub fn parse_xid(s: &str) -> Result<u32> {
    match s.parse::<u32>() {
        Ok(n) if kind(n).is_some() => Ok(n),
        _ => Err(Error::usage(format!(
            "bad context id '{s}': expected a number from 0 to {}",
            abi::VX_DYNAMIC_MAX
        ))),
    }
}

/// The flags SPEC §6 defines, by name.
pub const FLAGS: &[(&str, u32)] = &[
    ("lock", abi::VXF_LOCK),
    ("sched", abi::VXF_SCHED),
    ("nproc", abi::VXF_NPROC),
    ("private", abi::VXF_PRIVATE),
    ("fakeinit", abi::VXF_FAKEINIT),
];

/// Parses flag names; several may be given separated by commas.
pub fn parse_flags<S: AsRef<str>>(names: &[S]) -> Result<u32> {
    let mut bits = 0;
    for list in names {
        for name in list.as_ref().split(',').filter(|n| !n.is_empty()) {
            let name = name.trim();
            bits |= FLAGS
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, b)| *b)
                .ok_or_else(|| Error::usage(format!("unknown flag '{name}' (known: lock, sched, nproc, private, fakeinit)")))?;
        }
    }
    Ok(bits)
}

pub fn flag_names(bits: u32) -> String {
    FLAGS
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(",")
}

/// The context a cgroup v2 path (as /proc/PID/cgroup shows it to the
/// host) belongs to: its deepest numeric component under /vsbox.
pub fn xid_of_cgroup_path(path: &str) -> u32 {
    let Some(rest) = path.strip_prefix("/vsbox/") else {
        return HOST;
    };
    rest.rsplit('/')
        .filter_map(|c| c.parse::<u32>().ok())
        .find(|n| kind(*n).is_some())
        .unwrap_or(HOST)
}

/// The context of process `pid`, read from the kernel's cgroup records.
pub fn xid_of_pid(pid: u32) -> Result<u32> {
    let f = format!("/proc/{pid}/cgroup");
    let text = fs::read_to_string(&f).ctx(|| format!("read {f}"))?;
    Ok(cgroup::v2_path(&text).map(|p| xid_of_cgroup_path(&p)).unwrap_or(HOST))
}

/// Flags recorded on a context's directory.
pub fn flags_of(dir: &Path) -> u32 {
    match sys::getxattr(dir, XATTR_FLAGS) {
        Ok(Some(v)) => parse_flags(&[String::from_utf8_lossy(&v)]).unwrap_or(0),
        _ => 0,
    }
}

pub fn record_flags(dir: &Path, flags: u32) -> Result<()> {
    sys::setxattr(dir, XATTR_FLAGS, flag_names(flags).as_bytes()).ctx(|| format!("record flags on {}", dir.display()))
}

/// Set by `vservers` for the servers it starts, once it has swept the
/// stale contexts ([`Registry::sweep`]): each start then need not sweep
/// again (a getxattr of every context on the host: with 500 servers,
/// 125,000 over a fleet's start). `vserver NAME start` takes it out of
/// its environment, so what it starts does not inherit it.
pub const SWEPT: &str = "VSBOX_SWEPT";

/// Live contexts: the numbered directories under `vsbox/`.
pub struct Registry {
    pub layout: Layout,
}

impl Registry {
    pub fn open() -> Result<Registry> {
        Ok(Registry { layout: Layout::detect()? })
    }

    /// The directory of context `xid`, wherever it is nested.
    pub fn find(&self, xid: u32) -> Option<PathBuf> {
        let name = xid.to_string();
        cgroup::find_dir(&self.layout.base(), &|d| d.file_name().is_some_and(|n| n == name.as_str()))
    }

    /// Every context with its directory, outermost first.
    pub fn list(&self) -> Vec<(u32, PathBuf)> {
        cgroup::subtree(&self.layout.base())
            .into_iter()
            .filter_map(|d| Some((d.file_name()?.to_str()?.parse::<u32>().ok()?, d)))
            .collect()
    }

    /// The context this process is in, and its directory (None for the host).
    pub fn current(&self) -> Result<Option<(u32, PathBuf)>> {
        let own = self.layout.own_dir()?;
        let Some(rel) = self.layout.relative(&own) else { return Ok(None) };
        let xid = xid_of_cgroup_path(&format!("/{}", rel.display()));
        if xid == HOST {
            return Ok(None);
        }
        let mut dir = own.as_path();
        while dir.file_name().is_some_and(|n| n != xid.to_string().as_str()) {
            dir = dir.parent().unwrap_or(dir);
        }
        Ok(Some((xid, dir.to_path_buf())))
    }

    /// Removes the stale contexts ([`cgroup::sweep`]); the directories
    /// left.
    pub fn sweep(&self) -> Vec<PathBuf> {
        cgroup::sweep(&self.layout, &self.layout.base())
    }

    /// Creates the directory of a new context inside `parent`. With `want`
    /// the id is that one (fails if it is taken anywhere); otherwise it is
    /// the next free dynamic id after the last one handed out, so a freed
    /// id is not reused until the range wraps. Stale contexts are swept
    /// first, unless the caller's caller just did (`swept`, see [`SWEPT`]).
    pub fn create(&self, parent: &Path, want: Option<u32>, rundir: &Path, swept: bool) -> Result<(u32, PathBuf)> {
        if parent == self.layout.base() {
            cgroup::create(parent)?;
        }
        let left = match (swept, want) {
            (false, _) => self.sweep(),
            (true, Some(_)) => cgroup::subtree(&self.layout.base()),
            // A dynamic id is looked for in a listing made under the lock.
            (true, None) => Vec::new(),
        };
        let taken = |dirs: &[PathBuf], xid: u32| {
            let name = xid.to_string();
            dirs.iter().any(|d| d.file_name().is_some_and(|n| n == name.as_str()))
        };
        if let Some(xid) = want {
            if taken(&left, xid) {
                return Err(Error::failed(format!("create context {xid}"), "it exists already"));
            }
            let dir = parent.join(xid.to_string());
            if !cgroup::create(&dir)? {
                return Err(Error::failed(format!("create context {xid}"), "it exists already"));
            }
            return Ok((xid, dir));
        }
        let mut counter = Counter::open(rundir)?;
        let span = abi::VX_DYNAMIC_MAX - abi::VX_DYNAMIC_MIN + 1;
        let start = counter.next;
        // Listed again under the lock, which every dynamic id is made
        // under: none made since the sweep is missed. Once, not per id.
        let listed = cgroup::subtree(&self.layout.base());
        for i in 0..span {
            let xid = abi::VX_DYNAMIC_MIN + (start - abi::VX_DYNAMIC_MIN + i) % span;
            // Nor one the kernel patch has (a user's, made with vserver(2)).
            if taken(&listed, xid) || crate::kernel::native::exists(xid) {
                continue;
            }
            let dir = parent.join(xid.to_string());
            if cgroup::create(&dir)? {
                counter.store(if xid == abi::VX_DYNAMIC_MAX { abi::VX_DYNAMIC_MIN } else { xid + 1 })?;
                return Ok((xid, dir));
            }
        }
        Err(Error::failed("allocate a context id", "every dynamic id is in use"))
    }
}

/// The rotating dynamic-id counter, `RUNDIR/xid.next`, under flock.
struct Counter {
    file: nix::fcntl::Flock<fs::File>,
    next: u32,
}

impl Counter {
    fn open(rundir: &Path) -> Result<Counter> {
        fs::create_dir_all(rundir).ctx(|| format!("create {}", rundir.display()))?;
        let path = rundir.join("xid.next");
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))?;
        let mut file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .ctx(|| format!("lock {}", path.display()))?;
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let next = text
            .trim()
            .parse()
            .ok()
            .filter(|n| kind(*n) == Some(Kind::Dynamic))
            .unwrap_or(abi::VX_DYNAMIC_MIN);
        Ok(Counter { file, next })
    }

    fn store(&mut self, next: u32) -> Result<()> {
        // Fixed width, so rewriting in place needs no truncate.
        std::os::unix::fs::FileExt::write_all_at(&*self.file, format!("{next:<5}\n").as_bytes(), 0).ctx(|| "update the context id counter")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_ranges() {
        assert_eq!(kind(0), Some(Kind::Host));
        assert_eq!(kind(1), Some(Kind::Spectator));
        assert_eq!(kind(2), Some(Kind::Static));
        assert_eq!(kind(49151), Some(Kind::Static));
        assert_eq!(kind(49152), Some(Kind::Dynamic));
        assert_eq!(kind(65535), Some(Kind::Dynamic));
        assert_eq!(kind(65536), None);
        assert!(parse_xid("70000").is_err());
        assert!(parse_xid("-1").is_err());
        assert!(parse_xid("x").is_err());
        assert_eq!(parse_xid("42").unwrap(), 42);
    }

    #[test]
    fn flags_round_trip() {
        let bits = parse_flags(&["lock,private", "fakeinit"]).unwrap();
        assert_eq!(bits, abi::VXF_LOCK | abi::VXF_PRIVATE | abi::VXF_FAKEINIT);
        assert_eq!(flag_names(bits), "lock,private,fakeinit");
        assert_eq!(parse_flags(&[flag_names(bits)]).unwrap(), bits);
        assert!(parse_flags(&["hideinfo"]).is_err());
        assert!(parse_flags(&["lock,bogus"]).is_err());
    }

    #[test]
    fn xid_from_cgroup_paths() {
        assert_eq!(xid_of_cgroup_path("/"), HOST);
        assert_eq!(xid_of_cgroup_path("/user.slice/x"), HOST);
        assert_eq!(xid_of_cgroup_path("/vsbox/49152"), 49152);
        assert_eq!(xid_of_cgroup_path("/vsbox/5/7"), 7);
        assert_eq!(xid_of_cgroup_path("/vsbox/5/vsbox-bind.33"), 5);
        assert_eq!(xid_of_cgroup_path("/vsbox/1"), SPECTATOR);
        assert_eq!(xid_of_cgroup_path("/vsboxes/5"), HOST);
    }
}
