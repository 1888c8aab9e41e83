//! Unification: identical files of servers share their disk blocks, so
//! many servers of one distribution take its disk space about once.
//!
//! The original hard-linked files between servers and made them immutable
//! (with a kernel flag that still let a package update unlink them). vsbox
//! asks the kernel to deduplicate instead (FIDEDUPERANGE): it compares the
//! two files under lock and, where they are identical, lets the server's
//! file share the reference's blocks. Each file stays its own inode, and
//! sharing is copy-on-write: a server writing to a unified file, or a
//! package update replacing it, changes only that server's copy. So no
//! server can change another's files, and nothing breaks updates. It needs
//! a file system that shares blocks (btrfs; xfs with reflink).
//!
//! On a file system that shares no blocks (ext4) and the kernel patch
//! (kernel/), vsbox unifies as the original did: the server's file
//! becomes a hard link to the reference's, made immutable and given the
//! patch's iunlink attribute (`trusted.vserver.iunlink`), so no server can
//! write, truncate, chmod or chown it, yet a package update inside a
//! server replaces its own link the way package managers do (dpkg links
//! the old file as a backup and renames the new one over it; rpm renames
//! over it) or unlinks it, and the other servers' links stay. Files are linked only with the same owner, group
//! and mode, and only between stopped servers (a process holding a file
//! open for writing would otherwise write to every server's copy).
//!
//! Only the directories packages install programs and libraries into are
//! unified, never configuration or data (/etc, /var, /home, …).

use crate::error::{Context, Error, Result};
use crate::guest::extents;
use crate::guest::Guest;
use crate::sys;
use nix::errno::Errno;
use std::fs::File;
use std::io::Read;
use std::path::{Component, Path};

/// The patch's iunlink attribute (kernel/patches, iunlink.c).
pub const IUNLINK_XATTR: &str = "trusted.vserver.iunlink";

/// How the files of a server come to share the reference's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    /// FIDEDUPERANGE: the same blocks, each file its own inode.
    Extents,
    /// Hard links, immutable and iunlink (the kernel patch).
    Links,
}

/// Replaces the file `f` of a server by a link to the reference's `src`
/// (an identical file of the same owner and mode), which ends immutable
/// and iunlink: see the module's documentation. The reference is marked
/// first, so a file system that cannot keep the marks (no inode flags or
/// no trusted attributes: EOPNOTSUPP, ENOTTY) gets no link, never a file
/// two servers share and either may write.
fn link_one(src: &File, f: &crate::guest::walk::Found) -> std::result::Result<(), Errno> {
    let name = f.rel.file_name().ok_or(Errno::EINVAL)?;
    let flags = sys::inode_flags(src)?;
    // An immutable file takes no new attribute: it is mutable a moment,
    // with every server stopped.
    if flags & sys::FS_IMMUTABLE_FL != 0 {
        sys::set_inode_flags(src, flags & !sys::FS_IMMUTABLE_FL)?;
    }
    let had_mark = sys::fgetxattr_exists(src, IUNLINK_XATTR);
    let marked = sys::fsetxattr(src, IUNLINK_XATTR, b"1").and_then(|()| sys::set_inode_flags(src, flags | sys::FS_IMMUTABLE_FL));
    if let Err(e) = marked {
        let _ = sys::set_inode_flags(src, flags & !sys::FS_IMMUTABLE_FL);
        if !had_mark {
            let _ = sys::fremovexattr(src, IUNLINK_XATTR);
        }
        let _ = sys::set_inode_flags(src, flags);
        return Err(e);
    }
    // Immutable and iunlink, it still takes a link (the patch's vfs_link).
    let tmp = std::ffi::OsString::from(format!(".vunify-{}.tmp", std::process::id()));
    let dir = Some(std::os::fd::AsRawFd::as_raw_fd(f.dir));
    sys::link_fd(src, f.dir, &tmp)?;
    // Over the server's own file, an iunlink one of an earlier run
    // included.
    let moved = nix::fcntl::renameat(dir, tmp.as_os_str(), dir, name);
    // Only the link made here goes; a name the server had is its own.
    if moved.is_err() {
        let _ = nix::unistd::unlinkat(dir, tmp.as_os_str(), nix::unistd::UnlinkatFlags::NoRemoveDir);
    }
    moved
}

/// Top-level directories whose files are unified.
pub const DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "opt"];

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Files now sharing the reference's blocks (or, with `dry_run`, that would).
    pub files: u64,
    pub bytes: u64,
    /// Files at the same path whose contents differ.
    pub differ: u64,
    /// Files the kernel would not share (immutable, append-only, …).
    pub skipped: u64,
}

impl Outcome {
    /// One line for server `name` unified with `reference`.
    pub fn summary(&self, name: &str, reference: &str, dry_run: bool) -> String {
        format!(
            "{name}: {} {} files, {:.1} MiB with {reference} ({} differ, {} left alone)",
            if dry_run { "would share" } else { "shares" },
            self.files,
            self.bytes as f64 / 1048576.0,
            self.differ,
            self.skipped
        )
    }
}

/// Whether the walk enters directory `rel` of a server.
fn unified(rel: &Path, exclude: &[std::path::PathBuf]) -> bool {
    match rel.components().next() {
        None => true,
        Some(Component::Normal(top)) => DIRS.iter().any(|d| top == *d) && !exclude.iter().any(|x| rel.starts_with(x)),
        _ => false,
    }
}

/// Opens `rel` in `root` read-only, refusing any symlink on the way and
/// any other file system: the reference server's tree is its root's too.
fn open_in(root: &File, rel: &Path) -> Option<File> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    sys::openat2(
        root,
        rel,
        flags,
        0,
        sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_XDEV | sys::RESOLVE_BENEATH,
    )
    .ok()
    .map(File::from)
}

fn same_contents(a: &File, b: &File) -> std::io::Result<bool> {
    let (mut a, mut b) = (a, b);
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = a.read(&mut x)?;
        let mut got = 0;
        while got < n {
            let m = b.read(&mut y[got..n])?;
            if m == 0 {
                return Ok(false);
            }
            got += m;
        }
        if x[..n] != y[..n] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(b.read(&mut y[..1])? == 0);
        }
    }
}

/// Makes the files of `g` share the blocks of the identical files of
/// `reference` (or, with `dry_run`, counts which would). `exclude`: paths
/// relative to the servers' roots to leave alone.
pub fn unify(
    reference: &Guest,
    g: &Guest,
    exclude: &[std::path::PathBuf],
    dry_run: bool,
    mut each: impl FnMut(&Path, u64),
) -> Result<Outcome> {
    if reference.root == g.root {
        return Err(Error::usage(format!("server {} is the reference itself", g.name)));
    }
    reference.check_tree()?;
    g.check_tree()?;
    let ref_root = File::open(&reference.root).ctx(|| format!("open {}", reference.root.display()))?;
    let mut out = Outcome::default();
    let mut method = Method::Extents;
    crate::guest::walk::files(&g.root, &|rel| unified(rel, exclude), &mut |f| {
        let size = f.stat.st_size as u64;
        if size == 0 || f.stat.st_blocks == 0 {
            return Ok(());
        }
        let Some(src) = open_in(&ref_root, f.rel) else { return Ok(()) };
        let Ok(src_stat) = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&src)) else {
            return Ok(());
        };
        let regular = src_stat.st_mode & libc::S_IFMT == libc::S_IFREG;
        if !regular || src_stat.st_size as u64 != size || (src_stat.st_ino, src_stat.st_dev) == (f.stat.st_ino, f.stat.st_dev) {
            return Ok(());
        }
        // Already sharing everything (an earlier run): nothing to compare.
        if method == Method::Extents && extents::unshared_bytes(f.file, f.stat.st_blocks as u64 * 512) == 0 {
            return Ok(());
        }
        let mut link = method == Method::Links;
        let mut shared = None;
        if dry_run {
            shared = same_contents(&src, f.file)
                .ctx(|| format!("compare {}", f.rel.display()))?
                .then_some(size);
        } else if !link {
            match extents::share(&src, f.file, size) {
                Ok(s) => shared = s,
                Err(Errno::EPERM | Errno::ETXTBSY | Errno::EBUSY) => {
                    out.skipped += 1;
                    return Ok(());
                }
                Err(e @ (Errno::EOPNOTSUPP | Errno::EXDEV | Errno::ENOTTY)) if out.files == 0 => {
                    if crate::kernel::patch_version().is_none() {
                        return Err(Error::failed(
                            format!("share blocks between servers {} and {}", reference.name, g.name),
                            format!(
                                "{} (their file system must share blocks: btrfs, or xfs with reflink; or run vsbox's kernel patch, which unifies with hard links)",
                                e.desc()
                            ),
                        ));
                    }
                    stopped(reference, g)?;
                    (method, link) = (Method::Links, true);
                }
                // EINVAL and the like: this file's extents cannot be shared
                // (e.g. data inline in its metadata); others may.
                Err(_) => {
                    out.skipped += 1;
                    return Ok(());
                }
            }
        }
        if link {
            let linked = by_link(&src, &src_stat, &f)
                .map_err(|e| Error::failed(format!("unify server {} with {}", g.name, reference.name), e.to_string()))?;
            match linked {
                Some(linked) => shared = linked,
                None => {
                    out.skipped += 1;
                    return Ok(());
                }
            }
        }
        // Data kept inline in the file system's metadata (small files on
        // btrfs) compares equal, yet has no blocks to share.
        if method == Method::Extents && shared.is_some() && !dry_run && !extents::any_shared(f.file) {
            out.skipped += 1;
            return Ok(());
        }
        match shared {
            Some(n) => {
                out.files += 1;
                out.bytes += n;
                each(f.rel, n);
            }
            None => out.differ += 1,
        }
        Ok(())
    })?;
    Ok(out)
}

/// Hard-link unification of the server's file `f` with the reference's
/// `src`: Some(Some(size)) linked, Some(None) when the contents differ,
/// None when it is left alone (another owner or mode, or the link failed:
/// an immutable file of the admin's, say).
fn by_link(src: &File, src_stat: &nix::sys::stat::FileStat, f: &crate::guest::walk::Found) -> Result<Option<Option<u64>>> {
    if !same_contents(src, f.file).ctx(|| format!("compare {}", f.rel.display()))? {
        return Ok(Some(None));
    }
    let same_meta = (src_stat.st_mode, src_stat.st_uid, src_stat.st_gid) == (f.stat.st_mode, f.stat.st_uid, f.stat.st_gid);
    if !same_meta {
        return Ok(None);
    }
    match link_one(src, f) {
        Ok(()) => Ok(Some(Some(f.stat.st_size as u64))),
        Err(e @ (Errno::EOPNOTSUPP | Errno::ENOTTY)) => Err(Error::failed(
            format!("unify {} with hard links", f.rel.display()),
            format!(
                "{} (the file system cannot keep a unified file immutable and iunlink: use ext4, or btrfs or xfs with reflink)",
                e.desc()
            ),
        )),
        Err(_) => Ok(None),
    }
}

/// Hard-link unification only between stopped servers.
fn stopped(reference: &Guest, g: &Guest) -> Result<()> {
    let reg = crate::context::Registry::open()?;
    for s in [reference, g] {
        if s.running(&reg).is_some() {
            return Err(Error::failed(
                format!("unify server {} with {}", g.name, reference.name),
                format!(
                    "server {} is running: hard-link unification (no shared blocks here) needs the servers stopped",
                    s.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn only_program_and_library_directories() {
        let none: Vec<PathBuf> = Vec::new();
        assert!(unified(Path::new(""), &none));
        assert!(unified(Path::new("usr/lib/x86_64-linux-gnu"), &none));
        assert!(unified(Path::new("bin"), &none));
        for no in ["etc", "var/lib", "home/u", "root", "tmp", "usrx", "dev"] {
            assert!(!unified(Path::new(no), &none), "{no}");
        }
        let doc = vec![PathBuf::from("usr/share/doc")];
        assert!(!unified(Path::new("usr/share/doc/bash"), &doc));
        assert!(unified(Path::new("usr/share/man"), &doc));
    }
}
