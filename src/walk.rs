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
/// status, and an open read-only descriptor.
pub struct Found<'a> {
    pub rel: &'a Path,
    pub stat: &'a FileStat,
    pub file: &'a File,
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
