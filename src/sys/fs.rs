//! Files and mounts: extended attributes, mount_setattr, idmapped mounts
//! (open_tree, move_mount), openat2 with its resolution limits, the mount id (statx), FIEMAP and
//! FIDEDUPERANGE.

use super::{check, cstr};
use nix::errno::Errno;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

pub fn setxattr(path: &Path, name: &str, value: &[u8]) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let (p, n) = (cstr(path.as_os_str().as_bytes())?, cstr(name.as_bytes())?);
    // SAFETY: both strings are NUL-terminated; value is valid for its length.
    check(unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) } as libc::c_long).map(drop)
}

/// The value of an extended attribute; Ok(None) when it is not set.
pub fn getxattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>, Errno> {
    use std::os::unix::ffi::OsStrExt;
    let (p, n) = (cstr(path.as_os_str().as_bytes())?, cstr(name.as_bytes())?);
    let mut buf = vec![0u8; 256];
    // SAFETY: strings are NUL-terminated; buf is writable for its length.
    let r = unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if r < 0 {
        return match Errno::last() {
            Errno::ENODATA => Ok(None),
            e => Err(e),
        };
    }
    buf.truncate(r as usize);
    Ok(Some(buf))
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 1;

/// mount_setattr(2) on `path` and, with `recursive`, every mount below it:
/// one system call for a whole tree of mounts.
pub fn mount_setattr(path: &Path, recursive: bool, set: u64, clear: u64) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let p = cstr(path.as_os_str().as_bytes())?;
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: p is NUL-terminated; attr is a valid mount_attr of the size passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            p.as_ptr(),
            flags,
            &attr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// mount_setattr's "idmap this mount through attr.userns_fd".
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
/// open_tree(2): a detached copy of the mount (and with AT_RECURSIVE, of
/// every mount below), rather than the mount itself.
const OPEN_TREE_CLONE: libc::c_uint = 1;
/// move_mount(2): the source, then the target, is the descriptor itself.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// A detached copy of the mounts directory `dir` shows (recursively, as
/// `mount --rbind` copies them), idmapped through user namespace `userns`
/// (mount_setattr(2), "ID-mapped mounts"): a file of uid N on disk is
/// owned by the namespace's id N. Attach it with [`move_mount_onto`];
/// dropped unattached, it is unmounted. EINVAL when a file system of the
/// tree takes no idmapped mounts.
pub fn idmapped_clone(dir: &impl AsRawFd, userns: &impl AsRawFd) -> Result<OwnedFd, Errno> {
    let empty = c"";
    // SAFETY: `empty` is NUL-terminated; dir is a descriptor of ours.
    let tree = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dir.as_raw_fd(),
            empty.as_ptr(),
            OPEN_TREE_CLONE | libc::AT_RECURSIVE as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint | libc::O_CLOEXEC as libc::c_uint,
        )
    })?;
    // SAFETY: open_tree returned a new descriptor, which is ours alone.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    // Private too: a copy of a shared mount (systemd makes / shared) stays
    // in the host's peer group, and pivot_root refuses a shared root.
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: `empty` is NUL-terminated; attr is a valid mount_attr of the size passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(tree)
}

/// Attaches the detached mount `tree` ([`idmapped_clone`]) on the
/// directory `dir`, in this process's mount namespace (move_mount(2)).
pub fn move_mount_onto(tree: &impl AsRawFd, dir: &impl AsRawFd) -> Result<(), Errno> {
    let empty = c"";
    // SAFETY: `empty` is NUL-terminated; both descriptors are ours.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            dir.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// openat2's resolution limits (linux/openat2.h), for [`openat2`].
pub use libc::{RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV};

/// The id of the mount that `fd` is on (statx's STATX_MNT_ID, Linux 5.8):
/// unlike st_dev it tells a bind mount from the file system it shows.
pub fn mount_id(fd: &impl AsRawFd) -> Result<u64, Errno> {
    let mut st = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // The system call itself: glibc's statx() is a weak symbol that a
    // static link can leave unresolved (a call to address 0).
    // SAFETY: "" with AT_EMPTY_PATH names fd itself; st is a statx buffer
    // (256 bytes, the kernel's struct statx) the kernel fills in.
    check(unsafe {
        libc::syscall(
            libc::SYS_statx,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            st.as_mut_ptr(),
        )
    })?;
    // SAFETY: zeroed, then filled in by a successful statx.
    let st = unsafe { st.assume_init() };
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Errno::ENOSYS);
    }
    Ok(st.stx_mnt_id)
}

/// openat2(2) (through nix): opens `path` below `dir` with the given
/// resolution limits (RESOLVE_* bits), close-on-exec.
pub fn openat2(dir: &impl AsRawFd, path: &Path, flags: i32, mode: u32, resolve: u64) -> Result<OwnedFd, Errno> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let how = OpenHow::new()
        .flags(OFlag::from_bits_retain(flags | libc::O_CLOEXEC))
        .mode(nix::sys::stat::Mode::from_bits_retain(mode))
        .resolve(ResolveFlag::from_bits_retain(resolve));
    let fd = nix::fcntl::openat2(dir.as_raw_fd(), path, how)?;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One extent of a file, as FIEMAP reports it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extent {
    pub logical: u64,
    pub length: u64,
    pub flags: u32,
}

pub const FIEMAP_EXTENT_LAST: u32 = 0x1;
pub const FIEMAP_EXTENT_SHARED: u32 = 0x2000;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

const FIEMAP_BATCH: usize = 32;

#[repr(C)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [FiemapExtent; FIEMAP_BATCH],
}

/// _IOWR('f', 11, struct fiemap): the header is 32 bytes.
const FS_IOC_FIEMAP: libc::Ioctl = 0xC020_660Bu32 as libc::Ioctl;

/// The extents of `fd` from byte `start` on, at most a batch of them (the
/// last one carries FIEMAP_EXTENT_LAST).
pub fn fiemap(fd: &impl AsRawFd, start: u64) -> Result<Vec<Extent>, Errno> {
    let mut map = Fiemap {
        start,
        length: u64::MAX - start,
        flags: 0,
        mapped_extents: 0,
        extent_count: FIEMAP_BATCH as u32,
        reserved: 0,
        extents: [FiemapExtent::default(); FIEMAP_BATCH],
    };
    // SAFETY: map is a struct fiemap followed by room for extent_count
    // extents, which is all the kernel writes.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FIEMAP, &mut map as *mut Fiemap) } as libc::c_long)?;
    let n = (map.mapped_extents as usize).min(FIEMAP_BATCH);
    Ok(map.extents[..n]
        .iter()
        .map(|e| Extent {
            logical: e.logical,
            length: e.length,
            flags: e.flags,
        })
        .collect())
}

#[repr(C)]
struct DedupeRange {
    src_offset: u64,
    src_length: u64,
    dest_count: u16,
    reserved1: u16,
    reserved2: u32,
    dest_fd: i64,
    dest_offset: u64,
    bytes_deduped: u64,
    status: i32,
    reserved: u32,
}

/// _IOWR(0x94, 54, struct file_dedupe_range): the header is 24 bytes.
const FIDEDUPERANGE: libc::Ioctl = 0xC018_9436u32 as libc::Ioctl;
pub const FILE_DEDUPE_RANGE_DIFFERS: i32 = 1;

/// Makes `len` bytes of `dst` at `offset` share the extents of the same
/// bytes of `src`, if the kernel finds them identical (it compares them
/// under lock). Some(bytes shared), or None when the contents differ.
pub fn dedupe_range(src: &impl AsRawFd, dst: &impl AsRawFd, offset: u64, len: u64) -> Result<Option<u64>, Errno> {
    let mut r = DedupeRange {
        src_offset: offset,
        src_length: len,
        dest_count: 1,
        reserved1: 0,
        reserved2: 0,
        dest_fd: i64::from(dst.as_raw_fd()),
        dest_offset: offset,
        bytes_deduped: 0,
        status: 0,
        reserved: 0,
    };
    // SAFETY: r is a file_dedupe_range with exactly dest_count (1)
    // file_dedupe_range_info records after its header, as the kernel reads
    // and writes them.
    check(unsafe { libc::ioctl(src.as_raw_fd(), FIDEDUPERANGE, &mut r as *mut DedupeRange) } as libc::c_long)?;
    match r.status {
        0 => Ok(Some(r.bytes_deduped)),
        FILE_DEDUPE_RANGE_DIFFERS => Ok(None),
        e if e < 0 => Err(Errno::from_raw(-e)),
        _ => Err(Errno::EINVAL),
    }
}

/// The inode flag that makes a file immutable (ioctl_iflags(2)).
pub const FS_IMMUTABLE_FL: libc::c_int = 0x10;

/// The inode's flags (FS_IOC_GETFLAGS; ioctl_iflags(2): the kernel
/// passes an int whatever the ioctl's name says).
pub fn inode_flags(fd: &impl AsRawFd) -> Result<libc::c_int, Errno> {
    let mut flags: libc::c_int = 0;
    // SAFETY: the kernel writes one int at the pointer.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } as libc::c_long)?;
    Ok(flags)
}

/// Sets the inode's flags (FS_IOC_SETFLAGS; CAP_LINUX_IMMUTABLE for the
/// immutable one).
pub fn set_inode_flags(fd: &impl AsRawFd, flags: libc::c_int) -> Result<(), Errno> {
    // SAFETY: the kernel reads one int at the pointer.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) } as libc::c_long).map(drop)
}

/// fsetxattr(2) of `name` to `value` on the open file `fd`.
pub fn fsetxattr(fd: &impl AsRawFd, name: &str, value: &[u8]) -> Result<(), Errno> {
    let n = cstr(name.as_bytes())?;
    // SAFETY: n is NUL-terminated; value is valid for its length.
    check(unsafe { libc::fsetxattr(fd.as_raw_fd(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) } as libc::c_long).map(drop)
}

/// Makes a new link `name` in directory `dir` to the open file `fd`
/// (linkat(2) with AT_EMPTY_PATH: CAP_DAC_READ_SEARCH).
pub fn link_fd(fd: &impl AsRawFd, dir: &impl AsRawFd, name: &std::ffi::OsStr) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let n = cstr(name.as_bytes())?;
    let empty = c"";
    // SAFETY: both names are NUL-terminated; the descriptors are ours.
    check(unsafe { libc::linkat(fd.as_raw_fd(), empty.as_ptr(), dir.as_raw_fd(), n.as_ptr(), libc::AT_EMPTY_PATH) } as libc::c_long)
        .map(drop)
}
