//! Reading a guest tree from the host, safely: every directory is opened
//! relative to its parent's descriptor with O_NOFOLLOW, so a symlink the
//! guest's root planted is never followed, only seen as a symlink; files
//! are opened the same way and checked to be the regular file that was
//! listed. The walk stays on the file system it started on and keeps few
//! descriptors open however deep or wide the tree is.

use crate::error::{Context, Result};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// A regular file met on the walk: its path relative to the root, its
/// status, an open read-only descriptor, and its directory's.
pub struct Found<'a> {
    pub rel: &'a Path,
    pub stat: &'a FileStat,
    pub file: &'a File,
    pub dir: &'a OwnedFd,
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// Opens `root` itself as the walk's first directory.
fn open_root(root: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(root, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map(crate::sys::adopt_fd)
        .ctx(|| format!("open directory {}", root.display()))
}

/// Calls `visit` for every regular file below `root` whose relative path
/// `enter` lets the walk reach (it is asked for each directory; "" is the
/// root). Entries that vanish or change while being looked at are skipped.
pub fn files(root: &Path, enter: &dyn Fn(&Path) -> bool, visit: &mut dyn FnMut(Found) -> Result<()>) -> Result<()> {
    files_and_dirs(root, enter, &mut |_, _| Ok(()), visit)
}

/// As [`files`], and calls `visit_dir` with each directory entered (its
/// relative path and open descriptor), before its files.
pub fn files_and_dirs(
    root: &Path,
    enter: &dyn Fn(&Path) -> bool,
    visit_dir: &mut dyn FnMut(&Path, &OwnedFd) -> Result<()>,
    visit: &mut dyn FnMut(Found) -> Result<()>,
) -> Result<()> {
    let top = open_root(root)?;
    let dev = fstat(top.as_raw_fd()).ctx(|| format!("stat {}", root.display()))?.st_dev;
    // Directories still to read, each with its parent's descriptor (the
    // root, already open, has none) and its path relative to the root.
    let mut todo: Vec<(Option<Rc<OwnedFd>>, PathBuf)> = vec![(None, PathBuf::new())];
    let mut top = Some(top);
    while let Some((parent, rel)) = todo.pop() {
        if !enter(&rel) {
            continue;
        }
        let opened = match &parent {
            None => top.take(),
            Some(p) => open_below(p, rel.file_name().unwrap_or_default(), OFlag::O_DIRECTORY),
        };
        let Some(dir) = opened else { continue };
        visit_dir(&rel, &dir)?;
        let listing = nix::dir::Dir::from_fd(nix::unistd::dup(dir.as_raw_fd()).ctx(|| "dup")?)
            .ctx(|| format!("read directory {}", root.join(&rel).display()))?;
        let dir = Rc::new(dir);
        let mut names = Vec::new();
        for e in listing.into_iter().flatten() {
            let name = std::ffi::OsStr::from_bytes(e.file_name().to_bytes());
            if name != "." && name != ".." {
                names.push(name.to_owned());
            }
        }
        for name in names {
            let Ok(st) = fstatat(Some(dir.as_raw_fd()), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            if st.st_dev != dev {
                continue; // another file system mounted here
            }
            let child = rel.join(&name);
            match kind(&st) {
                SFlag::S_IFDIR => todo.push((Some(dir.clone()), child)),
                SFlag::S_IFREG => {
                    let Some(fd) = open_below(&dir, name.as_os_str(), OFlag::empty()) else {
                        continue;
                    };
                    let file = File::from(fd);
                    match fstat(file.as_raw_fd()) {
                        Ok(now) if now.st_ino == st.st_ino && now.st_dev == st.st_dev && kind(&now) == SFlag::S_IFREG => visit(Found {
                            rel: &child,
                            stat: &now,
                            file: &file,
                            dir: &dir,
                        })?,
                        _ => continue,
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Opens `name` in directory `dir` without following a symlink and
/// without blocking on a FIFO swapped in; None if that fails.
fn open_below(dir: &impl AsFd, name: &std::ffi::OsStr, extra: OFlag) -> Option<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC | extra;
    nix::fcntl::openat(Some(dir.as_fd().as_raw_fd()), name, flags, Mode::empty())
        .ok()
        .map(crate::sys::adopt_fd)
}

/// Removes the directory `root` and everything in it, as `rm -r` would,
/// but never following a symlink (each entry is removed with unlinkat
/// relative to its directory's descriptor, and directories are opened
/// with O_NOFOLLOW) and never crossing into another mount: a directory on
/// another mount than `root`'s (a bind mount of the same file system too,
/// told by its mount id) stops the removal with an error. Callers check
/// for mounts first, so this only catches one made meanwhile. Gives the
/// number of entries removed.
pub fn remove_tree(root: &Path) -> Result<u64> {
    let (parent, name) = match (root.parent(), root.file_name()) {
        (Some(p), Some(n)) => (p, n),
        _ => {
            return Err(crate::error::Error::failed(
                format!("remove {}", root.display()),
                "not a directory below another",
            ))
        }
    };
    let parent = open_root(if parent.as_os_str().is_empty() { Path::new(".") } else { parent })?;
    let top = open_below(&parent, name, OFlag::O_DIRECTORY)
        .ok_or_else(|| crate::error::Error::failed(format!("open {}", root.display()), "not a directory (a symlink?)"))?;
    let mount = crate::sys::mount_id(&top).ctx(|| format!("find the mount of {}", root.display()))?;
    let mut removed = 0;
    remove_in(top, root, mount, &mut removed)?;
    nix::unistd::unlinkat(Some(parent.as_raw_fd()), name, nix::unistd::UnlinkatFlags::RemoveDir)
        .ctx(|| format!("remove {}", root.display()))?;
    Ok(removed + 1)
}

/// Removes everything in directory `top` (shown as `at`), which is on
/// mount `mount`. Depth first without recursion and without a descriptor
/// per level — a guest's root may have planted a tree thousands of levels
/// deep: only the current directory is open, and going up re-opens ".."
/// and checks it is the directory it came from (device and inode).
fn remove_in(top: OwnedFd, at: &Path, mount: u64, removed: &mut u64) -> Result<()> {
    use nix::unistd::{unlinkat, UnlinkatFlags};
    let list = |dir: &OwnedFd, at: &Path| -> Result<Vec<std::ffi::OsString>> {
        let listing =
            nix::dir::Dir::from_fd(nix::unistd::dup(dir.as_raw_fd()).ctx(|| "dup")?).ctx(|| format!("read directory {}", at.display()))?;
        Ok(listing
            .into_iter()
            .flatten()
            .map(|e| std::ffi::OsStr::from_bytes(e.file_name().to_bytes()).to_owned())
            .filter(|n| n != "." && n != "..")
            .collect())
    };
    let id = |fd: &OwnedFd, at: &Path| {
        fstat(fd.as_raw_fd())
            .map(|st| (st.st_dev, st.st_ino))
            .ctx(|| format!("stat {}", at.display()))
    };
    let mut path = at.to_path_buf();
    let mut cur = top;
    // Per level below `top`'s parent: the directory's identity and the
    // names in it still to remove.
    let mut levels = vec![(id(&cur, &path)?, list(&cur, &path)?)];
    while let Some((_, names)) = levels.last_mut() {
        let Some(name) = names.pop() else {
            levels.pop();
            let Some(((dev, ino), _)) = levels.last() else { break };
            let parent = nix::fcntl::openat(
                Some(cur.as_raw_fd()),
                "..",
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map(crate::sys::adopt_fd)
            .ctx(|| format!("open the directory above {}", path.display()))?;
            let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
            path.pop();
            if id(&parent, &path)? != (*dev, *ino) {
                return Err(crate::error::Error::failed(
                    format!("remove {}", path.display()),
                    "it changed while being removed",
                ));
            }
            cur = parent;
            unlinkat(Some(cur.as_raw_fd()), name.as_os_str(), UnlinkatFlags::RemoveDir)
                .ctx(|| format!("remove {}", path.join(&name).display()))?;
            *removed += 1;
            continue;
        };
        let child_path = path.join(&name);
        let st = match fstatat(Some(cur.as_raw_fd()), name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(crate::error::Error::sys(format!("stat {}", child_path.display()), e)),
        };
        if kind(&st) != SFlag::S_IFDIR {
            unlinkat(Some(cur.as_raw_fd()), name.as_os_str(), UnlinkatFlags::NoRemoveDir)
                .ctx(|| format!("remove {}", child_path.display()))?;
            *removed += 1;
            continue;
        }
        let child = open_below(&cur, name.as_os_str(), OFlag::O_DIRECTORY)
            .ok_or_else(|| crate::error::Error::failed(format!("open {}", child_path.display()), "it changed while being removed"))?;
        let on = crate::sys::mount_id(&child).ctx(|| format!("find the mount of {}", child_path.display()))?;
        if on != mount {
            return Err(crate::error::Error::failed(
                format!("remove {}", child_path.display()),
                "another file system is mounted there (not crossed)",
            ));
        }
        path = child_path;
        let level = (id(&child, &path)?, list(&child, &path)?);
        cur = child;
        levels.push(level);
    }
    Ok(())
}
