//! A server's disk quota (vserver.conf(5): DISK_LIMIT, DISK_INODES; the
//! seed's "Per context disk quota", util-vserver's vdlimit), with the
//! backend the server's file system offers:
//! - btrfs: the server's root is a subvolume (`vserver build` makes it
//!   one there), limited by its qgroup (0/ID) in referenced bytes; quota
//!   accounting is enabled on the file system the first time. btrfs has
//!   no inode limits.
//! - ext4 and xfs: a project quota (ext4(5), xfs_quota(8)): the server's
//!   tree gets a project id of its own (0x10000 and up), inherited by what
//!   is created in it (FS_XFLAG_PROJINHERIT; its root cannot change it
//!   from its user namespace), limited in bytes and inodes by
//!   quotactl_fd(2); needs the file system made with project quotas
//!   (mkfs.ext4 -O quota,project; xfs mounted with prjquota) and a kernel
//!   with quota support. ext4's statfs then reports the limit, so `df /`
//!   inside shows it.
//!
//! Anything else is one clear error.

use crate::error::{Context, Error, Result};
use crate::sys;
use std::fs::File;
use std::path::Path;

const BTRFS_SUPER_MAGIC: i64 = 0x9123_683e;
const EXT4_SUPER_MAGIC: i64 = 0xef53;
const XFS_SUPER_MAGIC: i64 = 0x5846_5342;

/// The first project id vsbox gives a server (below: the admin's own).
const FIRST_PROJECT: u32 = 0x10000;

/// DISK_LIMIT and DISK_INODES: the most bytes and files (inodes) the
/// server's tree may hold; None: no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskLimit {
    pub space: Option<u64>,
    pub inodes: Option<u64>,
}

impl DiskLimit {
    pub fn is_set(&self) -> bool {
        self.space.is_some() || self.inodes.is_some()
    }
}

/// A tree's use against its limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskUse {
    pub bytes: u64,
    pub limit: Option<u64>,
    pub inodes: Option<u64>,
    pub inode_limit: Option<u64>,
}

fn fs_type(root: &File) -> Result<i64> {
    nix::sys::statfs::fstatfs(root)
        .map(|s| s.filesystem_type().0 as i64)
        .ctx(|| "statfs the server's tree")
}

/// Makes `name` in directory `parent` the way a server's root should be
/// on its file system: a btrfs subvolume (so it can have a quota of its
/// own), elsewhere a plain directory (mode 0755).
pub fn make_root(parent: &Path, name: &std::ffi::OsStr) -> Result<()> {
    let p = File::open(parent).ctx(|| format!("open {}", parent.display()))?;
    let at = parent.join(name);
    if fs_type(&p)? == BTRFS_SUPER_MAGIC {
        sys::btrfs_subvol_create(&p, name).ctx(|| format!("create the btrfs subvolume {}", at.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o755)).ctx(|| format!("chmod {}", at.display()))
    } else {
        std::fs::create_dir(&at).ctx(|| format!("create {}", at.display()))
    }
}

/// Whether the open directory is the root of a btrfs subvolume.
fn is_subvolume(root: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    root.metadata().is_ok_and(|m| m.ino() == 256)
}

/// Sets (or, with nothing set, lifts) server `name`'s quota on its tree
/// `root`. Errors name the tree and what its file system lacks.
pub fn apply(name: &str, root: &Path, limit: &DiskLimit) -> Result<()> {
    let what = || format!("limit the disk space of server {name}");
    let dir = File::open(root).ctx(|| format!("open {}", root.display()))?;
    if fs_type(&dir)? == BTRFS_SUPER_MAGIC {
        if limit.inodes.is_some() {
            return Err(Error::failed(
                what(),
                "btrfs has no inode limits (DISK_INODES); use DISK_LIMIT alone",
            ));
        }
        if !is_subvolume(&dir) {
            if !limit.is_set() {
                return Ok(());
            }
            return Err(Error::failed(
                what(),
                format!(
                    "{} is a plain directory of its btrfs, not a subvolume (build the server again, or move its files into `btrfs subvolume create {}`)",
                    root.display(),
                    root.display()
                ),
            ));
        }
        let id = sys::btrfs_subvol_id(&dir).ctx(|| format!("find the subvolume of {}", root.display()))?;
        if limit.space.is_some() {
            // What is written but not yet on disk is counted once it is:
            // on disk first, so the count starts right.
            nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)).ctx(|| format!("sync the file system of {}", root.display()))?;
            if !quota_enabled(&dir) {
                sys::btrfs_quota_enable(&dir).ctx(|| format!("enable quotas on the btrfs of {}", root.display()))?;
            }
            // Enabling counts what is there already: the limit holds once
            // that is done (seconds for a server's tree).
            sys::btrfs_quota_rescan_wait(&dir).ctx(|| format!("wait for the quota rescan of {}", root.display()))?;
        } else if !quota_enabled(&dir) {
            return Ok(());
        }
        // Through the parent's subvolume: the ioctl's transaction reserves
        // space in the subvolume its descriptor is on, which in a server
        // over its limit fails with EDQUOT — and the limit could then be
        // neither raised nor lifted.
        let parent = File::open(root.join("..")).ctx(|| format!("open the parent of {}", root.display()))?;
        return sys::btrfs_qgroup_limit(&parent, id, limit.space).ctx(|| format!("set the limit of qgroup 0/{id} ({})", root.display()));
    }
    let t = fs_type(&dir)?;
    if t == EXT4_SUPER_MAGIC || t == XFS_SUPER_MAGIC {
        return apply_project(root, &dir, limit, what);
    }
    if !limit.is_set() {
        return Ok(());
    }
    Err(Error::failed(
        what(),
        format!(
            "{} is on a file system vsbox cannot limit (btrfs, with the server's root a subvolume; ext4 or xfs with project quotas)",
            root.display()
        ),
    ))
}

/// The project-quota backend (ext4, xfs): the tree gets its project id
/// (kept, or the next free one above the other servers'), inherited by
/// what is created in it; quotactl(2) sets the limits. Without limits and
/// without a project id of its own, nothing is done.
fn apply_project(root: &Path, dir: &File, limit: &DiskLimit, what: impl Fn() -> String) -> Result<()> {
    let own = sys::fs_getxattr(dir)
        .ctx(|| format!("read the project id of {}", root.display()))?
        .projid;
    if own == 0 && !limit.is_set() {
        return Ok(());
    }
    if let Err(e) = sys::project_quota_on(dir) {
        return Err(Error::failed(
            what(),
            format!(
                "{} has no project quotas ({}: ext4 needs to be made with -O quota,project and a kernel with quota support, xfs to be mounted with prjquota)",
                root.display(),
                e.desc()
            ),
        ));
    }
    // Chosen and given under a lock on the directory of the servers'
    // trees: two servers starting at once get two ids.
    let parent = root.parent().unwrap_or(root);
    let _lock = File::open(parent)
        .and_then(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| e.into()))
        .ctx(|| format!("lock {}", parent.display()))?;
    let own = if own == 0 {
        sys::fs_getxattr(dir).map_or(0, |x| x.projid)
    } else {
        own
    };
    let id = if own != 0 { own } else { free_project_id(root) };
    if own != id || sys::fs_getxattr(dir).is_ok_and(|x| x.xflags & sys::FS_XFLAG_PROJINHERIT == 0) {
        set_project(root, id)?;
    }
    let kib = |b: u64| b.div_ceil(1024);
    let q = sys::DqBlk {
        bhardlimit: limit.space.map_or(0, kib),
        bsoftlimit: limit.space.map_or(0, kib),
        ihardlimit: limit.inodes.unwrap_or(0),
        isoftlimit: limit.inodes.unwrap_or(0),
        valid: sys::QIF_LIMITS,
        ..Default::default()
    };
    sys::set_project_quota(dir, id, &q).ctx(|| format!("set the quota of project {id} ({})", root.display()))
}

/// One above the highest project id of the trees beside `root` (other
/// servers'), at least [`FIRST_PROJECT`].
fn free_project_id(root: &Path) -> u32 {
    let mut id = FIRST_PROJECT;
    if let Some(Ok(rd)) = root.parent().map(std::fs::read_dir) {
        for e in rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            if let Ok(x) = File::open(e.path()).and_then(|f| sys::fs_getxattr(&f).map_err(std::io::Error::from)) {
                id = id.max(x.projid.saturating_add(1));
            }
        }
    }
    id
}

/// Gives every directory and regular file of the tree project `id`, the
/// directories inheriting it (others — symlinks, devices — take no
/// project id; the walk follows no symlink, walk.rs).
fn set_project(root: &Path, id: u32) -> Result<()> {
    crate::guest::walk::files_and_dirs(
        root,
        &|_| true,
        &mut |rel, d| set_projid(d, id, true).ctx(|| format!("set project {id} on {}", root.join(rel).display())),
        // A file the kernel refuses (immutable, unified) keeps its id.
        &mut |f| {
            let _ = set_projid(f.file, id, false);
            Ok(())
        },
    )
}

fn set_projid(fd: &impl std::os::fd::AsRawFd, id: u32, inherit: bool) -> std::result::Result<(), nix::errno::Errno> {
    let mut x = sys::fs_getxattr(fd)?;
    x.projid = id;
    if inherit {
        x.xflags |= sys::FS_XFLAG_PROJINHERIT;
    }
    sys::fs_setxattr(fd, &x)
}

/// util-vserver's disk limits, for servers moved from it: the entries
/// `DIR/dlimits/N/` (DIR: CONFDIR/NAME) with `directory` (the tree),
/// `space_total` (KiB) and `inodes_total`, as vdlimit(8) keeps them; the
/// entry whose directory is `root`, or the only one. On btrfs, which has
/// no inode limits, `inodes_total` is left out. None without entries;
/// an error names the file that does not read.
pub fn from_util_vserver(dir: &Path, root: &Path) -> Result<Option<DiskLimit>> {
    let base = dir.join("dlimits");
    let Ok(rd) = std::fs::read_dir(&base) else { return Ok(None) };
    let mut entries: Vec<std::path::PathBuf> = rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    entries.sort();
    let read = |p: &Path| -> Result<Option<String>> {
        match std::fs::read_to_string(p) {
            Ok(t) => Ok(Some(t.trim().to_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("read {}", p.display()), &e)),
        }
    };
    let mut chosen = None;
    for e in &entries {
        let d = read(&e.join("directory"))?;
        if d.as_deref().map(Path::new) == Some(root) || (entries.len() == 1 && chosen.is_none()) {
            chosen = Some(e.clone());
        }
    }
    let Some(e) = chosen else { return Ok(None) };
    let number = |f: &str| -> Result<Option<u64>> {
        let p = e.join(f);
        match read(&p)? {
            None => Ok(None),
            Some(t) => t
                .parse::<u64>()
                .map(Some)
                .map_err(|_| Error::failed(p.display(), format!("'{t}' is not a number"))),
        }
    };
    let btrfs = File::open(root).ok().and_then(|f| fs_type(&f).ok()) == Some(BTRFS_SUPER_MAGIC);
    Ok(Some(DiskLimit {
        space: number("space_total")?.map(|kib| kib.saturating_mul(1024)),
        inodes: if btrfs { None } else { number("inodes_total")? },
    }))
}

/// Whether quota accounting is on for the btrfs `dir` is on.
fn quota_enabled(dir: &File) -> bool {
    sys::btrfs_fsid(dir).is_ok_and(|fsid| Path::new(&format!("/sys/fs/btrfs/{fsid}/qgroups")).is_dir())
}

/// What the server's tree at `root` uses against its quota; None without
/// one (or on a file system without quota accounting).
pub fn usage(root: &Path) -> Option<DiskUse> {
    let dir = File::open(root).ok()?;
    let t = fs_type(&dir).ok()?;
    if t == EXT4_SUPER_MAGIC || t == XFS_SUPER_MAGIC {
        let id = sys::fs_getxattr(&dir).ok()?.projid;
        // A directory below the server's root inherits its project: only
        // the root, whose parent's project differs, counts as the server.
        let parent = File::open(root.join("..")).ok()?;
        if id == 0 || sys::fs_getxattr(&parent).ok()?.projid == id {
            return None;
        }
        let q = sys::project_quota(&dir, id).ok()?;
        let limit = |n: u64| (n != 0).then_some(n);
        return Some(DiskUse {
            bytes: q.curspace,
            limit: limit(q.bhardlimit * 1024),
            inodes: Some(q.curinodes),
            inode_limit: limit(q.ihardlimit),
        });
    }
    if t != BTRFS_SUPER_MAGIC || !is_subvolume(&dir) {
        return None;
    }
    let id = sys::btrfs_subvol_id(&dir).ok()?;
    let fsid = sys::btrfs_fsid(&dir).ok()?;
    let q = format!("/sys/fs/btrfs/{fsid}/qgroups/0_{id}");
    let read = |f: &str| std::fs::read_to_string(format!("{q}/{f}")).ok()?.trim().parse::<u64>().ok();
    Some(DiskUse {
        bytes: read("referenced")?,
        limit: read("max_referenced").filter(|&n| n != 0 && n != u64::MAX),
        inodes: None,
        inode_limit: None,
    })
}

/// Before server `name`'s tree at `root` goes: nothing to do. After it
/// went (`id`: its subvolume's, read before), its qgroup goes too, once
/// btrfs has cleaned the subvolume up (it then refuses with EBUSY no
/// more; at most a few seconds).
pub fn subvolume_id(root: &Path) -> Option<(u64, File)> {
    let dir = File::open(root).ok()?;
    if fs_type(&dir).ok()? != BTRFS_SUPER_MAGIC || !is_subvolume(&dir) {
        return None;
    }
    let parent = File::open(root.parent()?).ok()?;
    Some((sys::btrfs_subvol_id(&dir).ok()?, parent))
}

/// Removes qgroup 0/`id` of a deleted subvolume, through `parent` (a
/// directory of the same btrfs), waiting up to 5 s for btrfs to clean
/// the subvolume up; a file system without quotas has nothing to remove.
pub fn remove_qgroup(parent: &File, id: u64) -> Result<()> {
    if !quota_enabled(parent) {
        return Ok(());
    }
    // The subvolume's blocks go in the background; its qgroup has use
    // (EBUSY) until then. Older kernels lack the wait (ENOTTY): polled.
    let _ = sys::btrfs_sync(parent);
    let _ = sys::btrfs_subvol_sync_wait(parent, id);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let _ = sys::btrfs_sync(parent);
        match sys::btrfs_qgroup_destroy(parent, id) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(nix::errno::Errno::EBUSY) if std::time::Instant::now() < end => std::thread::sleep(std::time::Duration::from_millis(100)),
            Err(e) => return Err(e).ctx(|| format!("remove qgroup 0/{id}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn util_vserver_dlimits_are_read() {
        let d = std::env::temp_dir().join(format!("vsbox-dlimits-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        assert_eq!(from_util_vserver(&d, Path::new("/vservers/web")).unwrap(), None);
        for (n, dir, space) in [("0", "/vservers/other", "1"), ("1", "/vservers/web", "20480")] {
            let e = d.join("dlimits").join(n);
            std::fs::create_dir_all(&e).unwrap();
            std::fs::write(e.join("directory"), format!("{dir}\n")).unwrap();
            std::fs::write(e.join("space_total"), format!("{space}\n")).unwrap();
            std::fs::write(e.join("inodes_total"), "1000\n").unwrap();
            std::fs::write(e.join("reserved"), "5\n").unwrap();
        }
        let l = from_util_vserver(&d, Path::new("/vservers/web")).unwrap().unwrap();
        assert_eq!((l.space, l.inodes), (Some(20 << 20), Some(1000)));
        // Two entries, none for this tree: none.
        assert_eq!(from_util_vserver(&d, Path::new("/vservers/none")).unwrap(), None);
        std::fs::write(d.join("dlimits/1/space_total"), "lots\n").unwrap();
        let e = from_util_vserver(&d, Path::new("/vservers/web")).unwrap_err();
        assert!(e.to_string().contains("space_total"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
