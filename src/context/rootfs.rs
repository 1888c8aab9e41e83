//! The guest's file system view (SPEC §6), set up inside its new mount
//! namespace: the tree becomes `/` by pivot_root and the host's tree is
//! detached *first*, so every path used afterwards — including symlinks
//! the guest's root planted — resolves inside the guest. Then a private
//! /proc (dangerous parts masked or read-only), a read-only /sys, a
//! minimal /dev with its own devpts instance, a fresh /run, and
//! /etc/mtab.

use crate::error::{Context, Error, Result};
use crate::kernel::userns::Namespace;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{lstat, makedev, mknod, Mode, SFlag};
use std::fs;
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

/// Files under /proc that leak host secrets or control the host: hidden
/// behind /dev/null.
const PROC_MASKED: &[&str] = &[
    "/proc/kcore",
    "/proc/kallsyms",
    "/proc/sysrq-trigger",
    "/proc/timer_list",
    "/proc/keys",
    "/proc/kmsg",
];
/// Directories under /proc that reach host-wide settings: read-only.
const PROC_READONLY: &[&str] = &["/proc/sys", "/proc/irq", "/proc/bus", "/proc/fs", "/proc/acpi", "/proc/scsi"];

fn flags() -> MsFlags {
    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
}

/// A guest's tree mounted idmapped through its user namespace, detached
/// until [`pivot_into`] attaches it: a file of uid 0 on disk is its
/// root's, which is a host uid of its own ([`Namespace::root_uid`]).
#[derive(Debug)]
pub struct MappedTree {
    tree: OwnedFd,
    root_uid: u32,
}

/// The tree at `root` (with every mount below it) idmapped through `ns`,
/// made before the context's first process so that a file system that
/// takes no idmapped mounts is known in time (None) for the identity map.
pub fn map_tree(root: &Path, ns: &Namespace) -> Result<Option<MappedTree>> {
    let dir = open_tree_dir(root)?;
    match crate::sys::idmapped_clone(&dir, &ns.fd) {
        Ok(tree) => Ok(Some(MappedTree {
            tree,
            root_uid: ns.root_uid,
        })),
        Err(nix::errno::Errno::EINVAL) => Ok(None),
        Err(e) => Err(Error::sys(format!("mount the guest tree {} idmapped", root.display()), e)),
    }
}

fn open_tree_dir(root: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        root,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(crate::sys::adopt_fd)
    .ctx(|| format!("open the guest tree {}", root.display()))
}

/// Makes `root` the root of this (new, private) mount namespace and
/// detaches everything else. With `mapped`, it is that idmapped copy of
/// the tree that becomes the root, and what vsbox makes in it from then on
/// (/dev, /run and their files, directories it lacks, /etc/mtab) is made
/// as the guest's root: see [`make_as`].
pub fn pivot_into(root: &Path, mapped: Option<&MappedTree>) -> Result<()> {
    // Nothing mounted here may propagate back to the host, or in from it.
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).ctx(|| "make / private")?;
    let dir = open_tree_dir(root)?;
    let via = format!("/proc/self/fd/{}", dir.as_raw_fd());
    // A bind mount onto itself makes the tree a mount point pivot_root accepts.
    match mapped {
        None => mount(
            Some(via.as_str()),
            via.as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind-mount {}", root.display()))?,
        Some(m) => crate::sys::move_mount_onto(&m.tree, &dir).ctx(|| format!("mount the idmapped {}", root.display()))?,
    }
    drop(dir);
    std::env::set_current_dir(root).ctx(|| format!("enter {}", root.display()))?;
    // pivot_root(".", "."): the old root ends up stacked on the new one,
    // from where it is detached at once.
    nix::unistd::pivot_root(".", ".").ctx(|| format!("pivot_root into {}", root.display()))?;
    umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach the host's tree")?;
    std::env::set_current_dir("/").ctx(|| "chdir /")?;
    match mapped {
        Some(m) => make_as(m.root_uid),
        None => Ok(()),
    }
}

/// From now on this process makes files as host uid and gid `id` (the
/// guest's root), keeping its capabilities: files it makes through the
/// idmapped tree are uid 0's on disk, and the tmpfs mounts, device nodes
/// and directories it makes belong to the guest's root — host uid 0 is
/// not mapped in the guest's namespace, so what it made would be
/// nobody's there, and guest root could not write /run. The kernel takes
/// the file-system capabilities out of the effective set when fsuid
/// leaves 0 (capabilities(7), "Effect of user ID changes on
/// capabilities"); they come back from the permitted set.
fn make_as(id: u32) -> Result<()> {
    crate::context::exec::keeping_tie(|| {
        nix::unistd::setfsgid(nix::unistd::Gid::from_raw(id));
        nix::unistd::setfsuid(nix::unistd::Uid::from_raw(id));
        let mut sets = crate::sys::capget().ctx(|| "read this process's capabilities")?;
        sets.effective = sets.permitted;
        crate::sys::capset(sets).ctx(|| "keep the capabilities to set up the guest's tree")
    })
}

/// `path` must be a real directory of the guest (made if missing): a
/// symlink there is refused rather than followed, even though it could
/// only point inside the guest by now.
fn guest_dir(path: &str, mode: u32) -> Result<()> {
    match lstat(path) {
        Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => Ok(()),
        Ok(_) => Err(Error::failed(
            format!("guest's {path}"),
            "it is not a directory (a symlink or a file); refusing to mount on it",
        )),
        Err(nix::errno::Errno::ENOENT) => {
            fs::create_dir(path).ctx(|| format!("create the guest's {path}"))?;
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).ctx(|| format!("chmod {path}"))
        }
        Err(e) => Err(Error::sys(format!("lstat the guest's {path}"), e)),
    }
}

/// Mounts /proc, /sys and /dev of the guest (after [`pivot_into`]).
pub fn populate() -> Result<()> {
    guest_dir("/proc", 0o555)?;
    guest_dir("/sys", 0o555)?;
    guest_dir("/dev", 0o755)?;
    dev()?;
    proc()?;
    mount(Some("sysfs"), "/sys", Some("sysfs"), flags() | MsFlags::MS_RDONLY, None::<&str>).ctx(|| "mount /sys read-only")?;
    run()?;
    mtab()
}

/// A fresh tmpfs on /run at every start, as a booted system has (FHS 3.0
/// §3.15: "cleared at the beginning of the boot process"): pid files,
/// utmp and locks of the last boot do not survive it. /run/lock is
/// writable by all, sticky, as Debian's.
fn run() -> Result<()> {
    guest_dir("/run", 0o755)?;
    mount(
        Some("tmpfs"),
        "/run",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755,size=10%"),
    )
    .ctx(|| "mount /run")?;
    fs::create_dir("/run/lock").ctx(|| "create /run/lock")?;
    fs::set_permissions("/run/lock", fs::Permissions::from_mode(0o1777)).ctx(|| "chmod /run/lock")?;
    // Where glibc looks for utmp (_PATH_UTMP) and daemons put pid files:
    // a tree without /var/run gets the link a Debian system has.
    if Path::new("/var").is_dir() && fs::symlink_metadata("/var/run").is_err() {
        symlink("/run", "/var/run").ctx(|| "link /var/run to /run")?;
    }
    Ok(())
}

fn proc() -> Result<()> {
    mount(Some("proc"), "/proc", Some("proc"), flags(), None::<&str>).ctx(|| "mount /proc")?;
    for p in PROC_MASKED {
        if Path::new(p).exists() {
            mount(Some("/dev/null"), *p, None::<&str>, MsFlags::MS_BIND, None::<&str>).ctx(|| format!("mask {p}"))?;
        }
    }
    for p in PROC_READONLY {
        if Path::new(p).is_dir() {
            mount(Some(*p), *p, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>).ctx(|| format!("bind {p}"))?;
            crate::sys::mount_setattr(Path::new(p), true, crate::sys::MOUNT_ATTR_RDONLY, 0).ctx(|| format!("make {p} read-only"))?;
        }
    }
    Ok(())
}

fn dev() -> Result<()> {
    mount(
        Some("tmpfs"),
        "/dev",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=755,size=1024k"),
    )
    .ctx(|| "mount /dev")?;
    for &(name, major, minor) in crate::kernel::devices::MINIMAL {
        let p = format!("/dev/{name}");
        mknod(
            p.as_str(),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major.into(), minor.into()),
        )
        .ctx(|| format!("create {p}"))?;
        // mknod honours the umask; the nodes must be usable by everyone.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).ctx(|| format!("chmod {p}"))?;
    }
    for d in ["/dev/pts", "/dev/shm"] {
        fs::create_dir(d).ctx(|| format!("create {d}"))?;
    }
    fs::set_permissions("/dev/shm", fs::Permissions::from_mode(0o1777)).ctx(|| "chmod /dev/shm")?;
    mount(
        Some("shm"),
        "/dev/shm",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .ctx(|| "mount /dev/shm")?;
    // A devpts instance of the guest's own: it sees only its own terminals.
    mount(
        Some("devpts"),
        "/dev/pts",
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .ctx(|| "mount /dev/pts")?;
    for (link, target) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, link).ctx(|| format!("create {link}"))?;
    }
    Ok(())
}

/// /etc/mtab is a link to /proc/mounts, as tools expect.
fn mtab() -> Result<()> {
    if !Path::new("/etc").is_dir() {
        return Ok(());
    }
    if fs::read_link("/etc/mtab")
        .is_ok_and(|t| t == Path::new("/proc/mounts") || t == Path::new("../proc/self/mounts") || t == Path::new("/proc/self/mounts"))
    {
        return Ok(());
    }
    match fs::symlink_metadata("/etc/mtab") {
        Ok(m) if m.is_dir() => return Err(Error::failed("the guest's /etc/mtab", "it is a directory")),
        Ok(_) => fs::remove_file("/etc/mtab").ctx(|| "replace /etc/mtab")?,
        Err(_) => {}
    }
    symlink("/proc/mounts", "/etc/mtab").ctx(|| "link /etc/mtab to /proc/mounts")
}
