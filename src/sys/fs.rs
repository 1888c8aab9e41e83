//! Files and mounts: extended attributes, mount_setattr, idmapped mounts
//! (open_tree, move_mount), openat2 with its resolution limits, the mount id (statx), FIEMAP and
//! FIDEDUPERANGE.

use super::{check, cstr};
use nix::errno::Errno;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// Takes an exclusive flock(2) on `fd` without waiting (EWOULDBLOCK when
/// another open file holds one). Unlike nix's `Flock`, nothing unlocks it
/// on drop: it goes with the open file, to every process sharing it, until
/// the last descriptor of that file closes.
pub fn flock_exclusive_nb(fd: &impl AsRawFd) -> Result<(), Errno> {
    // SAFETY: flock takes a descriptor and flags, nothing else.
    check(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } as libc::c_long).map(drop)
}

pub fn setxattr(path: &Path, name: &str, value: &[u8]) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let (p, n) = (cstr(path.as_os_str().as_bytes())?, cstr(name.as_bytes())?);
    // SAFETY: both strings are NUL-terminated; value is valid for its length.
    check(unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) } as libc::c_long).map(drop)
}

/// removexattr(2) of `name` on `path`.
pub fn removexattr(path: &Path, name: &str) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let (p, n) = (cstr(path.as_os_str().as_bytes())?, cstr(name.as_bytes())?);
    // SAFETY: both strings are NUL-terminated.
    check(unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) } as libc::c_long).map(drop)
}

/// The value of an extended attribute; Ok(None) when it is not set.
pub fn getxattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>, Errno> {
    use std::os::unix::ffi::OsStrExt;
    let (p, n) = (cstr(path.as_os_str().as_bytes())?, cstr(name.as_bytes())?);
    // SAFETY: strings are NUL-terminated; buf is writable for its length.
    xattr_value(|buf| unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) as libc::c_long })
}

/// getxattrat(2) (Linux 6.13; x86_64 number 464, include/uapi/asm-generic
/// and arch/x86/entry/syscalls/syscall_64.tbl): `name` of the file `rel`
/// below the directory `dir`, found by a walk from `dir` alone (a context
/// directory's attribute without the walk down /sys/fs/cgroup/… each
/// time). Ok(None) when it is not set; ENOSYS on older kernels.
pub fn getxattr_at(dir: &impl AsRawFd, rel: &std::ffi::OsStr, name: &str) -> Result<Option<Vec<u8>>, Errno> {
    use std::os::unix::ffi::OsStrExt;
    #[repr(C)]
    struct XattrArgs {
        value: u64,
        size: u32,
        flags: u32,
    }
    let (p, n) = (cstr(rel.as_bytes())?, cstr(name.as_bytes())?);
    xattr_value(|buf| {
        let args = XattrArgs {
            value: buf.as_mut_ptr() as u64,
            size: buf.len() as u32,
            flags: 0,
        };
        // SAFETY: strings are NUL-terminated; args points at buf, writable
        // for the size it gives; the kernel reads the 16-byte args.
        unsafe {
            libc::syscall(
                464,
                dir.as_raw_fd(),
                p.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
                n.as_ptr(),
                &args,
                std::mem::size_of::<XattrArgs>(),
            )
        }
    })
}

/// An attribute's value through `get` (a getxattr call into the buffer
/// it is given): into a buffer on the stack first — most lookups find
/// nothing (ENODATA) and allocate nothing — and for a longer value (a long
/// configuration path as a guest's tag) into one as large as a value can
/// be. Ok(None) when it is not set, or was removed meanwhile.
fn xattr_value(get: impl Fn(&mut [u8]) -> libc::c_long) -> Result<Option<Vec<u8>>, Errno> {
    let mut small = [0u8; 256];
    let mut big = Vec::new();
    let buf: &mut [u8] = match check(get(&mut small)) {
        Ok(len) => return Ok(Some(small[..len as usize].to_vec())),
        Err(Errno::ERANGE) => {
            big.resize(65536, 0);
            &mut big
        }
        Err(Errno::ENODATA) => return Ok(None),
        Err(e) => return Err(e),
    };
    match check(get(buf)) {
        Ok(len) => {
            big.truncate(len as usize);
            Ok(Some(big))
        }
        Err(Errno::ENODATA) => Ok(None),
        Err(e) => Err(e),
    }
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 1;
pub const MOUNT_ATTR_NOSUID: u64 = 2;
pub const MOUNT_ATTR_NODEV: u64 = 4;
pub const MOUNT_ATTR_NOEXEC: u64 = 8;

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
    let tree = open_tree_clone(
        dir.as_raw_fd(),
        c"",
        libc::AT_RECURSIVE as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint,
    )?;
    set_on_tree(&tree, true, MOUNT_ATTR_IDMAP, userns.as_raw_fd() as u64)?;
    Ok(tree)
}

/// A detached copy of the mount of the file or directory `fd` is (an
/// O_PATH descriptor will do) alone, bound as `mount --bind` binds it,
/// private, with the mount attributes `set` (MOUNT_ATTR_*). Attach it with
/// [`move_mount_onto`]; dropped unattached, it is unmounted.
pub fn clone_mount(fd: &impl AsRawFd, set: u64) -> Result<OwnedFd, Errno> {
    let tree = open_tree_clone(fd.as_raw_fd(), c"", libc::AT_EMPTY_PATH as libc::c_uint)?;
    set_on_tree(&tree, false, set, 0)?;
    Ok(tree)
}

/// open_tree(2) with OPEN_TREE_CLONE and `flags`, close-on-exec.
fn open_tree_clone(dir: libc::c_int, path: &std::ffi::CStr, flags: libc::c_uint) -> Result<OwnedFd, Errno> {
    // SAFETY: path is NUL-terminated; dir is a descriptor of ours.
    let tree = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dir,
            path.as_ptr(),
            OPEN_TREE_CLONE | flags | libc::O_CLOEXEC as libc::c_uint,
        )
    })?;
    // SAFETY: open_tree returned a new descriptor, which is ours alone.
    Ok(unsafe { OwnedFd::from_raw_fd(tree as i32) })
}

/// mount_setattr(2) on a detached tree: attributes `set`, and private
/// too — a copy of a shared mount (systemd makes / shared) stays in the
/// host's peer group, and pivot_root refuses a shared root.
fn set_on_tree(tree: &OwnedFd, recursive: bool, set: u64, userns_fd: u64) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: 0,
        propagation: libc::MS_PRIVATE,
        userns_fd,
    };
    let flags = libc::AT_EMPTY_PATH | if recursive { libc::AT_RECURSIVE } else { 0 };
    // SAFETY: "" is NUL-terminated; attr is a valid mount_attr of the size passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// Attaches the detached mount `tree` ([`idmapped_clone`],
/// [`clone_mount`]) on the directory or file `dir`, in this process's
/// mount namespace (move_mount(2)).
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

/// Whether the open file `fd` has the extended attribute `name`.
pub fn fgetxattr_exists(fd: &impl AsRawFd, name: &str) -> bool {
    let Ok(n) = cstr(name.as_bytes()) else { return false };
    // SAFETY: n is NUL-terminated; a null buffer of size 0 asks only for
    // the value's size.
    unsafe { libc::fgetxattr(fd.as_raw_fd(), n.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

/// fremovexattr(2) of `name` on the open file `fd`.
pub fn fremovexattr(fd: &impl AsRawFd, name: &str) -> Result<(), Errno> {
    let n = cstr(name.as_bytes())?;
    // SAFETY: n is NUL-terminated.
    check(unsafe { libc::fremovexattr(fd.as_raw_fd(), n.as_ptr()) } as libc::c_long).map(drop)
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

// btrfs's ioctls (include/uapi/linux/btrfs.h): subvolumes and qgroups.
const BTRFS_IOCTL_MAGIC: u64 = 0x94;

/// _IOC(dir, 0x94, nr, size) as the kernel's ioctl.h encodes it.
const fn btrfs_ioc(dir: u64, nr: u64, size: usize) -> libc::Ioctl {
    ((dir << 30) | ((size as u64) << 16) | (BTRFS_IOCTL_MAGIC << 8) | nr) as libc::Ioctl
}
const IOC_W: u64 = 1;
const IOC_R: u64 = 2;

#[repr(C)]
struct BtrfsVolArgs {
    fd: i64,
    name: [u8; 4088],
}

#[repr(C)]
struct BtrfsInoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

#[repr(C)]
struct BtrfsQuotaCtlArgs {
    cmd: u64,
    status: u64,
}

#[repr(C)]
struct BtrfsQgroupCreateArgs {
    create: u64,
    qgroupid: u64,
}

#[repr(C)]
struct BtrfsQgroupLimitArgs {
    qgroupid: u64,
    flags: u64,
    max_rfer: u64,
    max_excl: u64,
    rsv_rfer: u64,
    rsv_excl: u64,
}

#[repr(C)]
struct BtrfsFsInfoArgs {
    max_id: u64,
    num_devices: u64,
    fsid: [u8; 16],
    rest: [u8; 1024 - 32],
}

/// Creates subvolume `name` in the btrfs directory `dir`
/// (BTRFS_IOC_SUBVOL_CREATE).
pub fn btrfs_subvol_create(dir: &impl AsRawFd, name: &std::ffi::OsStr) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    let n = name.as_bytes();
    if n.is_empty() || n.len() >= 4088 || n.contains(&0) || n.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    let mut args = BtrfsVolArgs { fd: 0, name: [0; 4088] };
    args.name[..n.len()].copy_from_slice(n);
    // SAFETY: the kernel reads the 4096-byte structure at the pointer,
    // whose name is NUL-terminated (zeroed past it).
    check(unsafe { libc::ioctl(dir.as_raw_fd(), btrfs_ioc(IOC_W, 14, std::mem::size_of::<BtrfsVolArgs>()), &args) } as libc::c_long)
        .map(drop)
}

/// The id of the subvolume the open file `fd` is in (BTRFS_IOC_INO_LOOKUP
/// of the subvolume's root, objectid 256).
pub fn btrfs_subvol_id(fd: &impl AsRawFd) -> Result<u64, Errno> {
    let mut args = BtrfsInoLookupArgs {
        treeid: 0,
        objectid: 256,
        name: [0; 4080],
    };
    // SAFETY: the kernel reads and fills in the 4096-byte structure.
    check(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            btrfs_ioc(IOC_W | IOC_R, 18, std::mem::size_of::<BtrfsInoLookupArgs>()),
            &mut args,
        )
    } as libc::c_long)?;
    Ok(args.treeid)
}

/// Enables quota accounting on the btrfs that `fd` is on
/// (BTRFS_IOC_QUOTA_CTL, BTRFS_QUOTA_CTL_ENABLE; nothing when it is).
pub fn btrfs_quota_enable(fd: &impl AsRawFd) -> Result<(), Errno> {
    let mut args = BtrfsQuotaCtlArgs { cmd: 1, status: 0 };
    // SAFETY: the kernel reads and fills in the 16-byte structure.
    check(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            btrfs_ioc(IOC_W | IOC_R, 40, std::mem::size_of::<BtrfsQuotaCtlArgs>()),
            &mut args,
        )
    } as libc::c_long)
    .map(drop)
}

/// Waits for a quota rescan of the btrfs `fd` is on to finish
/// (BTRFS_IOC_QUOTA_RESCAN_WAIT; at once when none runs).
pub fn btrfs_quota_rescan_wait(fd: &impl AsRawFd) -> Result<(), Errno> {
    // SAFETY: an ioctl without an argument.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), btrfs_ioc(0, 46, 0)) } as libc::c_long).map(drop)
}

/// Commits the btrfs `fd` is on and wakes its transaction thread, which
/// wakes the cleaner of deleted subvolumes (BTRFS_IOC_SYNC).
pub fn btrfs_sync(fd: &impl AsRawFd) -> Result<(), Errno> {
    // SAFETY: an ioctl without an argument.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), btrfs_ioc(0, 8, 0)) } as libc::c_long).map(drop)
}

#[repr(C)]
struct BtrfsSubvolWait {
    subvolid: u64,
    mode: u32,
    count: u32,
}

/// Waits until btrfs has cleaned up the deleted subvolume `id`
/// (BTRFS_IOC_SUBVOL_SYNC_WAIT, BTRFS_SUBVOL_SYNC_WAIT_FOR_ONE; Linux
/// 6.9): ENOENT when it is gone already.
pub fn btrfs_subvol_sync_wait(fd: &impl AsRawFd, id: u64) -> Result<(), Errno> {
    let args = BtrfsSubvolWait {
        subvolid: id,
        mode: 0,
        count: 0,
    };
    // SAFETY: the kernel reads the 16-byte structure.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), btrfs_ioc(IOC_W, 65, std::mem::size_of::<BtrfsSubvolWait>()), &args) } as libc::c_long)
        .map(drop)
}

/// Removes qgroup `qgroupid` (BTRFS_IOC_QGROUP_CREATE with create = 0).
pub fn btrfs_qgroup_destroy(fd: &impl AsRawFd, qgroupid: u64) -> Result<(), Errno> {
    let args = BtrfsQgroupCreateArgs { create: 0, qgroupid };
    // SAFETY: the kernel reads the 16-byte structure.
    check(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            btrfs_ioc(IOC_W, 42, std::mem::size_of::<BtrfsQgroupCreateArgs>()),
            &args,
        )
    } as libc::c_long)
    .map(drop)
}

/// Sets the referenced-bytes limit of qgroup `qgroupid` (level 0: the
/// subvolume's id); None lifts it (BTRFS_IOC_QGROUP_LIMIT with
/// BTRFS_QGROUP_LIMIT_MAX_RFER).
pub fn btrfs_qgroup_limit(fd: &impl AsRawFd, qgroupid: u64, max_rfer: Option<u64>) -> Result<(), Errno> {
    let args = BtrfsQgroupLimitArgs {
        qgroupid,
        flags: 1,
        max_rfer: max_rfer.unwrap_or(u64::MAX),
        max_excl: 0,
        rsv_rfer: 0,
        rsv_excl: 0,
    };
    // SAFETY: the kernel reads the 48-byte structure (its header says
    // _IOR, but the kernel copies from the pointer).
    check(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            btrfs_ioc(IOC_R, 43, std::mem::size_of::<BtrfsQgroupLimitArgs>()),
            &args,
        )
    } as libc::c_long)
    .map(drop)
}

/// The file system id of the btrfs `fd` is on (BTRFS_IOC_FS_INFO), as
/// /sys/fs/btrfs names it: 8-4-4-4-12 hex digits.
pub fn btrfs_fsid(fd: &impl AsRawFd) -> Result<String, Errno> {
    let mut args = BtrfsFsInfoArgs {
        max_id: 0,
        num_devices: 0,
        fsid: [0; 16],
        rest: [0; 1024 - 32],
    };
    // SAFETY: the kernel fills in the 1024-byte structure.
    check(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            btrfs_ioc(IOC_R, 31, std::mem::size_of::<BtrfsFsInfoArgs>()),
            &mut args,
        )
    } as libc::c_long)?;
    let h: Vec<String> = args.fsid.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        h[..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..].concat()
    ))
}

/// struct fsxattr (include/uapi/linux/fs.h).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FsXattr {
    pub xflags: u32,
    pub extsize: u32,
    pub nextents: u32,
    pub projid: u32,
    pub cowextsize: u32,
    pad: [u8; 8],
}

/// FS_XFLAG_PROJINHERIT: what is created in the directory gets its
/// project id.
pub const FS_XFLAG_PROJINHERIT: u32 = 0x200;

/// The open file's extended attributes: flags and project id
/// (FS_IOC_FSGETXATTR, _IOR('X', 31, struct fsxattr)).
pub fn fs_getxattr(fd: &impl AsRawFd) -> Result<FsXattr, Errno> {
    let mut x = FsXattr::default();
    // SAFETY: the kernel fills in the 28-byte structure.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), 0x801C_581F_u32 as libc::Ioctl, &mut x) } as libc::c_long)?;
    Ok(x)
}

/// Sets them (FS_IOC_FSSETXATTR, _IOW('X', 32, struct fsxattr)); a new
/// project id only from the initial user namespace.
pub fn fs_setxattr(fd: &impl AsRawFd, x: &FsXattr) -> Result<(), Errno> {
    // SAFETY: the kernel reads the 28-byte structure.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), 0x401C_5820_u32 as libc::Ioctl, x) } as libc::c_long).map(drop)
}

/// struct if_dqblk (include/uapi/linux/quota.h): limits in 1 KiB blocks
/// and inodes, use in bytes and inodes.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct DqBlk {
    pub bhardlimit: u64,
    pub bsoftlimit: u64,
    pub curspace: u64,
    pub ihardlimit: u64,
    pub isoftlimit: u64,
    pub curinodes: u64,
    pub btime: u64,
    pub itime: u64,
    pub valid: u32,
}

/// QIF_BLIMITS | QIF_ILIMITS: which fields of a DqBlk to set.
pub const QIF_LIMITS: u32 = 1 | 4;
const PRJQUOTA: u32 = 2;
const Q_GETINFO: u32 = 0x80_0005;
const Q_GETQUOTA: u32 = 0x80_0007;
const Q_SETQUOTA: u32 = 0x80_0008;
const SYS_QUOTACTL_FD: libc::c_long = 443;

fn quotactl_fd(fd: &impl AsRawFd, cmd: u32, id: u32, addr: *mut libc::c_void) -> Result<(), Errno> {
    // SAFETY: quotactl_fd(2) with a command whose structure `addr` points
    // to (or null), as the callers below pair them.
    check(unsafe { libc::syscall(SYS_QUOTACTL_FD, fd.as_raw_fd(), (cmd << 8) | PRJQUOTA, id, addr) }).map(drop)
}

/// Whether project quotas are on for the file system `fd` is on
/// (Q_GETINFO): ENOSYS without kernel quota support, ESRCH when they are
/// off.
pub fn project_quota_on(fd: &impl AsRawFd) -> Result<(), Errno> {
    let mut info = [0u64; 3]; // struct if_dqinfo: 24 bytes
    quotactl_fd(fd, Q_GETINFO, 0, info.as_mut_ptr().cast())
}

/// Project `id`'s quota on the file system `fd` is on (Q_GETQUOTA).
pub fn project_quota(fd: &impl AsRawFd, id: u32) -> Result<DqBlk, Errno> {
    let mut q = DqBlk::default();
    quotactl_fd(fd, Q_GETQUOTA, id, (&mut q as *mut DqBlk).cast())?;
    Ok(q)
}

/// Sets project `id`'s limits (Q_SETQUOTA with `q.valid`).
pub fn set_project_quota(fd: &impl AsRawFd, id: u32, q: &DqBlk) -> Result<(), Errno> {
    let mut q = *q;
    quotactl_fd(fd, Q_SETQUOTA, id, (&mut q as *mut DqBlk).cast())
}

/// A small kernel-generated text file (/proc, cgroupfs) read whole: into a
/// 4 KiB buffer from the start, where `fs::read_to_string`, finding a size
/// of 0, probes with 32-byte reads and grows (mountinfo took eight reads,
/// each making the kernel find its place in the mount list again), and
/// without the fstat(2) for a size hint such files do not give.
/// Errors: open(2)'s and read(2)'s; InvalidData for text that is not UTF-8.
pub fn read_text(path: impl AsRef<Path>) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    // Read on the stack: a heap buffer of 4 KiB is an mmap and munmap.
    let (mut chunk, mut buf) = ([0u8; 4096], Vec::new());
    loop {
        match f.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
