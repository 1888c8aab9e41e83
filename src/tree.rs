//! Writing into a guest tree from the host, safely. The guest's root owns
//! its tree and may plant symlinks (so may a template archive): every path
//! is resolved with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so a
//! symlink — absolute or with `..` — resolves inside the tree, and the last
//! component is always created or changed with *at calls that never follow
//! it. Nothing outside the tree can be reached.

use crate::error::{Context, Error, Result};
use crate::sys::{self, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

pub struct Tree {
    root: OwnedFd,
    path: PathBuf,
}

/// Ownership, permissions and time of a created entry.
#[derive(Clone, Copy, Debug, Default)]
pub struct Meta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
}

/// A path inside the tree as plain components: no root, no `.`, no `..`.
pub fn clean(rel: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::failed(format!("path '{}'", rel.display()), "it climbs out with '..'"))
            }
        }
    }
    Ok(out)
}

impl Tree {
    pub fn open(root: &Path) -> Result<Tree> {
        let fd = nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ctx(|| format!("open the tree {}", root.display()))?;
        Ok(Tree {
            root: sys::adopt_fd(fd),
            path: root.to_path_buf(),
        })
    }

    /// Whether `rel` (resolved inside the tree) is a regular file.
    pub fn has_file(&self, rel: &Path) -> bool {
        sys::openat2(&self.root, rel, libc::O_PATH, 0, sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS)
            .ok()
            .and_then(|fd| nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).ok())
            .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
    }

    /// The contents of `rel` (resolved inside the tree) if it is a regular
    /// file; None if it is missing or anything else (a FIFO or device
    /// planted there is neither waited on nor read). A file of more than
    /// `max` bytes is an error.
    pub fn read_file(&self, rel: &Path, max: u64) -> Result<Option<Vec<u8>>> {
        use std::io::Read;
        let rel = clean(rel)?;
        let fd = match sys::openat2(
            &self.root,
            &rel,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP | Errno::ENXIO) => return Ok(None),
            Err(e) => return Err(Error::sys(format!("open {}", self.shown(&rel)), e)),
        };
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).ctx(|| format!("stat {}", self.shown(&rel)))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(None);
        }
        if st.st_size as u64 > max {
            return Err(Error::failed(
                format!("read {}", self.shown(&rel)),
                format!("it is larger than {max} bytes"),
            ));
        }
        let mut data = Vec::new();
        File::from(fd)
            .take(max)
            .read_to_end(&mut data)
            .ctx(|| format!("read {}", self.shown(&rel)))?;
        Ok(Some(data))
    }

    fn shown(&self, rel: &Path) -> String {
        self.path.join(rel).display().to_string()
    }

    /// Opens directory `rel` (resolved inside the tree), making missing
    /// components on the way.
    fn dir(&self, rel: &Path) -> Result<OwnedFd> {
        let open = |p: &Path| {
            sys::openat2(
                &self.root,
                p,
                libc::O_PATH | libc::O_DIRECTORY,
                0,
                RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
            )
        };
        match open(rel) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::sys(format!("open {}", self.shown(rel)), e)),
        }
        let mut at = PathBuf::new();
        let mut fd = open(Path::new(".")).ctx(|| format!("open {}", self.path.display()))?;
        for c in rel.components() {
            at.push(c);
            match nix::sys::stat::mkdirat(Some(fd.as_raw_fd()), c.as_os_str(), Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(Error::sys(format!("create {}", self.shown(&at)), e)),
            }
            fd = open(&at).ctx(|| format!("open {}", self.shown(&at)))?;
        }
        Ok(fd)
    }

    /// The directory holding `rel`, and `rel`'s last component.
    fn parent_of<'a>(&self, rel: &'a Path) -> Result<(OwnedFd, &'a OsStr)> {
        let name = rel
            .file_name()
            .ok_or_else(|| Error::failed(format!("path '{}'", rel.display()), "it names no entry"))?;
        Ok((self.dir(rel.parent().unwrap_or(Path::new("")))?, name))
    }

    /// Removes whatever non-directory sits at `name` in `dir`.
    fn clear(dir: &OwnedFd, name: &OsStr) {
        let _ = nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    }

    fn finish(&self, dir: &OwnedFd, name: &OsStr, rel: &Path, m: Meta, symlink: bool) -> Result<()> {
        let flags = AtFlags::AT_SYMLINK_NOFOLLOW;
        nix::unistd::fchownat(Some(dir.as_raw_fd()), name, Some(m.uid.into()), Some(m.gid.into()), flags)
            .ctx(|| format!("chown {}", self.shown(rel)))?;
        if !symlink {
            // Through a descriptor: fchmodat would follow a symlink.
            let fd = sys::openat2(
                dir,
                Path::new(name),
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
                RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
            )
            .ctx(|| format!("open {}", self.shown(rel)))?;
            let via = format!("/proc/self/fd/{}", fd.as_raw_fd());
            nix::sys::stat::fchmodat(
                None,
                via.as_str(),
                Mode::from_bits_truncate(m.mode & 0o7777),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .ctx(|| format!("chmod {}", self.shown(rel)))?;
        }
        let t = nix::sys::time::TimeSpec::new(m.mtime, 0);
        nix::sys::stat::utimensat(Some(dir.as_raw_fd()), name, &t, &t, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
            .ctx(|| format!("set the time of {}", self.shown(rel)))
    }

    pub fn create_dir(&self, rel: &Path, m: Meta) -> Result<()> {
        let rel = clean(rel)?;
        if rel.as_os_str().is_empty() {
            return Ok(()); // the root itself
        }
        let (dir, name) = self.parent_of(&rel)?;
        match nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o700)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys(format!("create {}", self.shown(&rel)), e)),
        }
        // An existing non-directory (a symlink, say) is replaced.
        if sys::openat2(
            &dir,
            Path::new(name),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
            RESOLVE_IN_ROOT,
        )
        .is_err()
        {
            Self::clear(&dir, name);
            nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o700))
                .ctx(|| format!("create {}", self.shown(&rel)))?;
        }
        self.finish(&dir, name, &rel, m, false)
    }

    /// Creates (replacing) a regular file and calls `fill` to write it.
    pub fn create_file(&self, rel: &Path, m: Meta, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
        let rel = clean(rel)?;
        let (dir, name) = self.parent_of(&rel)?;
        Self::clear(&dir, name);
        let fd = nix::fcntl::openat(
            Some(dir.as_raw_fd()),
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .ctx(|| format!("create {}", self.shown(&rel)))?;
        let mut f = File::from(sys::adopt_fd(fd));
        fill(&mut f)?;
        drop(f);
        self.finish(&dir, name, &rel, m, false)
    }

    pub fn symlink(&self, target: &Path, rel: &Path, m: Meta) -> Result<()> {
        let rel = clean(rel)?;
        let (dir, name) = self.parent_of(&rel)?;
        Self::clear(&dir, name);
        nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), name).ctx(|| format!("create the link {}", self.shown(&rel)))?;
        self.finish(&dir, name, &rel, m, true)
    }

    /// A hard link to `existing`, which must be a file of the tree.
    pub fn hard_link(&self, existing: &Path, rel: &Path) -> Result<()> {
        let (existing, rel) = (clean(existing)?, clean(rel)?);
        let src = sys::openat2(
            &self.root,
            &existing,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        )
        .ctx(|| format!("open {}", self.shown(&existing)))?;
        let (dir, name) = self.parent_of(&rel)?;
        Self::clear(&dir, name);
        let name = Path::new(name);
        nix::unistd::linkat(
            Some(src.as_raw_fd()),
            Path::new(""),
            Some(dir.as_raw_fd()),
            name,
            AtFlags::AT_EMPTY_PATH,
        )
        .or_else(|_| {
            // The same through /proc where "" is refused.
            let via = format!("/proc/self/fd/{}", src.as_raw_fd());
            nix::unistd::linkat(None, Path::new(&via), Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_FOLLOW)
        })
        .ctx(|| format!("link {}", self.shown(&rel)))
    }

    pub fn fifo(&self, rel: &Path, m: Meta) -> Result<()> {
        let rel = clean(rel)?;
        let (dir, name) = self.parent_of(&rel)?;
        Self::clear(&dir, name);
        nix::sys::stat::mknodat(
            Some(dir.as_raw_fd()),
            name,
            nix::sys::stat::SFlag::S_IFIFO,
            Mode::from_bits_truncate(0o600),
            0,
        )
        .ctx(|| format!("create {}", self.shown(&rel)))?;
        self.finish(&dir, name, &rel, m, false)
    }
}
