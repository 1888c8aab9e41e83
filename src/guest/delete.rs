//! `vserver NAME delete`: removing a guest for good (util-vserver's
//! `vserver NAME delete`, LXC's lxc-destroy): its tree, NAME.conf, its
//! hook script and its runtime state (the lock file, a context left over).
//!
//! The tree is the guest root's to fill: it may hold symlinks to anything
//! on the host, and an administrator may have mounted something inside it.
//! So nothing is followed ([`walk::remove_tree`]) and nothing is deleted at
//! all while a mount is inside the tree: the refusal names it.

use crate::context::Registry;
use crate::error::{Context, Error, Result};
use crate::guest::walk;
use crate::guest::Guest;
use crate::kernel::cgroup;
use crate::paths;
use std::path::{Path, PathBuf};

/// What was deleted, for the report.
pub struct Deleted {
    pub entries: u64,
    pub files: Vec<PathBuf>,
}

/// Mount points at `root` or below it, in this process's mount namespace.
pub fn mounts_in(root: &Path) -> Result<Vec<PathBuf>> {
    let text = crate::sys::read_text("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo")?;
    Ok(cgroup::parse_mountinfo(&text)
        .into_iter()
        .map(|m| m.point)
        .filter(|p| p.starts_with(root))
        .collect())
}

/// Ok when nothing is mounted at the tree `root` or below it; else why
/// not, naming the mount.
pub fn unmounted(root: &Path) -> std::result::Result<(), String> {
    // The tree's real path, as mountinfo shows mount points.
    let real = std::fs::canonicalize(root).map_err(|e| format!("resolve {}: {e}", root.display()))?;
    match mounts_in(&real).map_err(|e| e.msg)?.first() {
        None => Ok(()),
        Some(m) if *m == real => Err(format!("{} is a mount point; unmount it first", m.display())),
        Some(m) => Err(format!("{} is mounted inside its tree; unmount it first", m.display())),
    }
}

/// Deletes the guest `g` once `confirm` (given what will go) says yes;
/// refused, with nothing changed, while it runs or while anything is
/// mounted in its tree. Ok(None) when `confirm` says no.
pub fn delete(g: &Guest, confirm: impl FnOnce(&[PathBuf]) -> Result<bool>) -> Result<Option<Deleted>> {
    let what = || format!("delete server {}", g.name);
    let _lock = g.lock()?;
    let reg = Registry::open()?;
    if g.running(&reg).is_some() {
        return Err(Error::failed(what(), "it is running (stop it first)"));
    }
    let tree = match std::fs::symlink_metadata(&g.root) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            return Err(Error::failed(
                what(),
                format!("{} is not a directory (not followed; remove it yourself)", g.root.display()),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(Error::io(format!("{}: {}", what(), g.root.display()), &e)),
    };
    if tree {
        unmounted(&g.root).map_err(|why| Error::failed(what(), format!("{why} (nothing was deleted)")))?;
    }
    let mut files: Vec<PathBuf> = Vec::new();
    if tree {
        files.push(g.root.clone());
    }
    for f in [&g.conf, &g.hook] {
        if std::fs::symlink_metadata(f).is_ok() {
            files.push(f.clone());
        }
    }
    if !confirm(&files)? {
        return Ok(None);
    }
    // A subvolume's qgroup goes with it (read before the tree goes).
    let subvol = if tree { crate::guest::quota::subvolume_id(&g.root) } else { None };
    let entries = if tree { walk::remove_tree(&g.root)? } else { 0 };
    if let Some((id, parent)) = subvol {
        crate::guest::quota::remove_qgroup(&parent, id)?;
    }
    for f in [&g.conf, &g.hook] {
        match std::fs::remove_file(f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(format!("remove {}", f.display()), &e)),
            _ => {}
        }
    }
    // Runtime state: a context left over by a crash, and the lock file
    // (removed last, still held: a start waiting on it finds no server).
    if let Some(stale) = g.context_dir(&reg.layout) {
        crate::guest::lifecycle::clean_up(&reg, g, &stale)?;
    }
    let lock = paths::rundir().join(format!("{}.lock", g.name));
    let _ = std::fs::remove_file(lock);
    Ok(Some(Deleted { entries, files }))
}
