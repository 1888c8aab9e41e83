//! Each context's own user namespace, so that guest root's per-user kernel
//! accounting is the guest's and not host root's.
//!
//! Without one, guest root *is* the host's uid 0, and the kernel keeps
//! two kinds of per-user limits:
//! - counters per user namespace and uid (kernel/ucount.c: inotify
//!   instances and watches, fanotify groups and marks, POSIX message-queue
//!   bytes, pending signals, locked shared memory, the namespace counts),
//!   which the kernel also charges to a namespace's *creator's* uid in the
//!   parent (inc_ucount walks up to `ns->ucounts`);
//! - counters per host uid (`struct user_struct`: epoll watches, pipe
//!   buffer pages, descriptors in flight on unix sockets), whatever the
//!   namespace.
//!
//! A guest holding all 128 inotify instances of uid 0 left host root, and
//! every other guest's root, without one. So the namespace is created by a
//! process whose uid is the context's own host uid ([`owner_uid`], from a
//! range reserved for vsbox), which takes the first kind; and a guest's
//! root *is* that uid on the host ([`Map::OwnRoot`]), which takes the
//! second. Its files still belong to uid 0 on disk, as before (ownership,
//! `ls -l` on the host, setuid programs, file capabilities): the guest's
//! tree is an idmapped mount through the same namespace (rootfs.rs), and
//! the file systems vsbox mounts for it (/dev, /run) belong to its root.
//! Where the tree's file system cannot be idmapped, and for chcontext's
//! contexts (which see the host's tree), the map is the identity
//! ([`Map::Identity`]): the first kind is still the context's own.
//!
//! Of the reserved range, a context's namespace maps only its own root's
//! uid (as its 0), so no guest can become another's root or host uid 0.
//!
//! The namespace is joined last, after everything that needs the host's
//! privileges (mounts, device nodes, the cgroup seal), and before the
//! capability ceiling is applied. Capabilities then count in the guest's
//! namespace: those that act on its own files and processes (chown, DAC,
//! setuid, kill, chroot, setfcap) work as before; binding ports below 1024
//! on the shared network stack is granted to the guest's root by a cgroup
//! bind program ([`attach_low_ports`]); raw and packet sockets (ping) are
//! made by the guest's supervisor for a caller holding CAP_NET_RAW
//! (unixscope.rs, `answer_raw`); capabilities that count only in the
//! initial namespace ([`HOST_ONLY`]) would be lost, so a context granted
//! one of them keeps sharing the host's namespace (SPEC §6 keeps what
//! S_CAPS grants; vserver.conf(5) says so).

use crate::error::{Context, Error, Result};
use crate::kernel::bpf;
use crate::kernel::caps::bit;
use crate::sys::{self, Forked};
use nix::sched::CloneFlags;
use nix::unistd::{Gid, Uid};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// First host uid (and gid) of the range vsbox reserves for the owners of
/// contexts' user namespaces: context N's is `UID_BASE + N` (ids are below
/// 65536). No file is ever owned by these ids; they only carry counters.
pub const UID_BASE: u32 = 0x7FF0_0000;

/// One past the last id of the reserved range.
const UID_END: u32 = UID_BASE + 0x1_0000;

/// The host uid that owns context `xid`'s user namespace.
pub fn owner_uid(xid: u32) -> u32 {
    UID_BASE + (xid & 0xFFFF)
}

/// The uid a host uid stands for inside its context: a context's root
/// ([`Map::OwnRoot`]) is 0 there; any other uid is itself.
pub fn guest_uid(host_uid: u32) -> u32 {
    if (UID_BASE..UID_END).contains(&host_uid) {
        0
    } else {
        host_uid
    }
}

/// How a context's user namespace maps its ids to the host's (uid_map and
/// gid_map alike; user_namespaces(7)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Map {
    /// Every id is itself but the reserved range, which is not mapped.
    Identity,
    /// Id 0 is the owner's id on the host; the rest as [`Map::Identity`].
    OwnRoot,
}

impl Map {
    /// The text to write to /proc/PID/uid_map (and gid_map) for a
    /// namespace owned by `owner`: at most three lines of "inside outside
    /// count" (the kernel takes up to 340).
    pub fn text(self, owner: u32) -> String {
        let rest = format!("{UID_END} {UID_END} {}\n", u32::MAX - UID_END);
        match self {
            Map::Identity => format!("0 0 {UID_BASE}\n{rest}"),
            Map::OwnRoot => format!("0 {owner} 1\n1 1 {}\n{rest}", UID_BASE - 1),
        }
    }
}

/// A context's own user namespace, made by [`create`].
#[derive(Debug)]
pub struct Namespace {
    /// A descriptor of it, to join ([`enter`]) or to idmap a mount with.
    pub fd: OwnedFd,
    /// The host uid (and gid) of its root: 0 with [`Map::Identity`].
    pub root_uid: u32,
}

/// Capabilities whose checks the kernel makes in the initial user
/// namespace for what a guest would use them for: network administration
/// (the network namespace is the host's), device nodes,
/// mounts and namespaces, modules, raw I/O, the clock, scheduling and
/// resource overrides, the immutable bit, locked memory, IPC ownership,
/// audit, syslog, BPF, perf, alarms, suspend.
pub const HOST_ONLY: u64 = bit(9) // LINUX_IMMUTABLE
    | bit(11) // NET_BROADCAST
    | bit(12) // NET_ADMIN
    | bit(14) // IPC_LOCK
    | bit(15) // IPC_OWNER
    | bit(16) // SYS_MODULE
    | bit(17) // SYS_RAWIO
    | bit(20) // SYS_PACCT
    | bit(21) // SYS_ADMIN
    | bit(23) // SYS_NICE
    | bit(24) // SYS_RESOURCE
    | bit(25) // SYS_TIME
    | bit(26) // SYS_TTY_CONFIG
    | bit(27) // MKNOD
    | bit(30) // AUDIT_CONTROL
    | bit(32) // MAC_OVERRIDE
    | bit(33) // MAC_ADMIN
    | bit(34) // SYSLOG
    | bit(35) // WAKE_ALARM
    | bit(36) // BLOCK_SUSPEND
    | bit(37) // AUDIT_READ
    | bit(38) // PERFMON
    | bit(39) // BPF
    | bit(40); // CHECKPOINT_RESTORE

/// Whether a context whose capability ceiling is `ceiling` gets its own
/// user namespace: when it keeps no capability of [`HOST_ONLY`].
pub fn wanted(ceiling: u64) -> bool {
    ceiling & HOST_ONLY == 0
}

/// Per-context values of the namespace's own limits (/proc/sys/user/*
/// inside it); None keeps the host's per-user limit, which applies to the
/// context's owner uid anyway (a context's value can only lower it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// max_inotify_instances (vserver.conf INOTIFY_INSTANCES).
    pub inotify_instances: Option<u32>,
    /// max_inotify_watches (INOTIFY_WATCHES).
    pub inotify_watches: Option<u32>,
}

/// Creates a user namespace owned by host uid `owner` with `map` for its
/// uids and gids, and `limits` set in it. A short-lived child does the
/// unshare as `owner` (the kernel records the creator's euid as the
/// owner) while this process, root in the parent namespace, writes the
/// maps.
pub fn create(owner: u32, map: Map, limits: &Limits) -> Result<Namespace> {
    let text = map.text(owner);
    let fd = if *limits == Limits::default() {
        create_plain(owner, &text)
    } else {
        create_with_limits(owner, &text, limits)
    }?;
    let root_uid = if map == Map::OwnRoot { owner } else { 0 };
    Ok(Namespace { fd, root_uid })
}

/// [`create`] without limits to set: the child need not live on, so it
/// costs a vfork (the launch path).
fn create_plain(owner: u32, map: &str) -> Result<OwnedFd> {
    let what = || format!("create a user namespace owned by host uid {owner}");
    let pid = sys::vfork_unshare_user(owner).ctx(what)?;
    let outcome = map_and_open(pid, map);
    let _ = nix::sys::wait::waitpid(pid, None);
    outcome
}

/// Writes `map` as the uid and gid map of the user namespace of `pid`
/// (which made it and has not been reaped), and opens that namespace.
fn map_and_open(pid: nix::unistd::Pid, map: &str) -> Result<OwnedFd> {
    for file in ["uid_map", "gid_map"] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, map).ctx(|| format!("write {path}"))?;
    }
    let path = format!("/proc/{pid}/ns/user");
    std::fs::File::open(&path).map(OwnedFd::from).ctx(|| format!("open {path}"))
}

/// [`create`] with limits: a forked child stays until, as root of the new
/// namespace, it has written them.
fn create_with_limits(owner: u32, map: &str, limits: &Limits) -> Result<OwnedFd> {
    use nix::unistd::{pipe2, read, write};
    let what = || format!("create a user namespace owned by host uid {owner}");
    let (up_r, up_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe")?;
    let (go_r, go_w) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe")?;
    match sys::fork().ctx(what)? {
        Forked::Child => {
            drop((up_r, go_w));
            let ok = child(owner, limits, &up_w, &go_r);
            std::process::exit(if ok { 0 } else { 1 })
        }
        Forked::Parent(pid) => {
            drop((up_w, go_r));
            let outcome = (|| {
                let mut b = [0u8; 1];
                if read(up_r.as_raw_fd(), &mut b) != Ok(1) {
                    return Err(Error::failed(what(), "the child could not unshare its user namespace"));
                }
                let ns = map_and_open(pid, map)?;
                write(&go_w, b"g").ctx(what)?;
                if read(up_r.as_raw_fd(), &mut b) != Ok(1) {
                    return Err(Error::failed(what(), "the child could not set the namespace's limits"));
                }
                Ok(ns)
            })();
            drop(go_w);
            let _ = nix::sys::wait::waitpid(pid, None);
            outcome
        }
    }
}

/// The child's half of [`create`]; false on any failure.
fn child(owner: u32, limits: &Limits, up: &OwnedFd, go: &OwnedFd) -> bool {
    use nix::unistd::{read, setgroups, setresgid, setresuid, write};
    let (uid, gid) = (Uid::from_raw(owner), Gid::from_raw(owner));
    if setgroups(&[]).is_err() || setresgid(gid, gid, gid).is_err() || setresuid(uid, uid, uid).is_err() {
        return false;
    }
    if nix::sched::unshare(CloneFlags::CLONE_NEWUSER).is_err() || write(up, b"u") != Ok(1) {
        return false;
    }
    let mut b = [0u8; 1];
    if read(go.as_raw_fd(), &mut b) != Ok(1) {
        return false;
    }
    // Root of the new namespace (uid 0 is mapped now), which may set its
    // limits: kernel/ucount.c set_permissions.
    let (root, rootg) = (Uid::from_raw(0), Gid::from_raw(0));
    if setresgid(rootg, rootg, rootg).is_err() || setresuid(root, root, root).is_err() {
        return false;
    }
    for (file, value) in [
        ("max_inotify_instances", limits.inotify_instances),
        ("max_inotify_watches", limits.inotify_watches),
    ] {
        if let Some(v) = value {
            if std::fs::write(format!("/proc/sys/user/{file}"), v.to_string()).is_err() {
                return false;
            }
        }
    }
    write(up, b"d") == Ok(1)
}

/// Joins user namespace `ns`: the caller, root of the host, becomes root
/// of the namespace (uid and gid 0 there, no supplementary groups) with
/// every capability there and none in the host's — the last namespace a
/// context's process joins. Host uid 0 is not mapped in a namespace of
/// [`Map::OwnRoot`], so the ids are set anew, which the namespace's
/// CAP_SETUID and CAP_SETGID allow.
pub fn enter(ns: &OwnedFd) -> Result<()> {
    use nix::unistd::{setgroups, setresgid, setresuid};
    nix::sched::setns(ns, CloneFlags::CLONE_NEWUSER).ctx(|| "join the context's user namespace")?;
    let (root, rootg) = (Uid::from_raw(0), Gid::from_raw(0));
    setgroups(&[]).ctx(|| "clear the groups in the context's user namespace")?;
    setresgid(rootg, rootg, rootg).ctx(|| "become gid 0 of the context's user namespace")?;
    setresuid(root, root, root).ctx(|| "become root of the context's user namespace")
}

/// A descriptor of `pid`'s user namespace when it differs from ours.
pub fn of_process(pid: u32) -> Result<Option<OwnedFd>> {
    use std::os::unix::fs::MetadataExt;
    let path = format!("/proc/{pid}/ns/user");
    let theirs = std::fs::File::open(&path).ctx(|| format!("open {path}"))?;
    let ours = std::fs::metadata("/proc/self/ns/user").ctx(|| "stat /proc/self/ns/user")?;
    let st = theirs.metadata().ctx(|| format!("stat {path}"))?;
    Ok(((st.ino(), st.dev()) != (ours.ino(), ours.dev())).then(|| OwnedFd::from(theirs)))
}

/// For `pid` in a user namespace other than ours: the host uid its root
/// is (from /proc/PID/uid_map, "0 HOST COUNT"); None when it shares ours.
pub fn root_uid_of(pid: u32) -> Result<Option<u32>> {
    if of_process(pid)?.is_none() {
        return Ok(None);
    }
    let path = format!("/proc/{pid}/uid_map");
    let map = std::fs::read_to_string(&path).ctx(|| format!("read {path}"))?;
    Ok(map.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some("0")).then(|| f.next()?.parse().ok()).flatten()
    }))
}

/// bpf_get_current_uid_gid(): the caller's real uid (low word) and gid,
/// as the initial user namespace sees them.
const HELPER_GET_CURRENT_UID_GID: i32 = 15;
/// A cgroup bind program's verdict "allow, and skip the
/// CAP_NET_BIND_SERVICE check" (BPF_RET_BIND_NO_CAP_NET_BIND_SERVICE | 1).
const ALLOW_LOW_PORT: i32 = 3;

/// Lets the root of a context in its own user namespace bind ports below
/// 1024 on the host's network stack (whose owner is the host's namespace,
/// where guest root holds no capability): a cgroup bind program that
/// tells the kernel to skip that check for host uid `root_uid` (the
/// namespace's root, [`Namespace::root_uid`]). Other users keep the usual
/// rule; address locks (chbind, IPROOT) still apply.
pub fn attach_low_ports(dir: &Path, root_uid: u32) -> Result<()> {
    let mut a = bpf::Asm::new();
    let plain = a.label();
    a.call(HELPER_GET_CURRENT_UID_GID)
        .jne32(bpf::R0, root_uid, plain)
        .ret(ALLOW_LOW_PORT)
        .bind(plain)
        .ret(1);
    let code = a.finish();
    for (name, attach) in [
        ("vsbox_lowport4", bpf::ATTACH_INET4_BIND),
        ("vsbox_lowport6", bpf::ATTACH_INET6_BIND),
    ] {
        let fd = bpf::load(name, bpf::PROG_TYPE_CGROUP_SOCK_ADDR, attach, &code)?;
        bpf::attach(dir, &fd, attach)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_in_the_reserved_range() {
        assert_eq!(owner_uid(0), UID_BASE);
        assert_eq!(owner_uid(65535), UID_BASE + 65535);
        assert!(owner_uid(65535) < i32::MAX as u32);
    }

    #[test]
    fn maps_leave_out_the_reserved_range_and_give_root_its_own_uid() {
        let k = owner_uid(7);
        assert_eq!(Map::Identity.text(k), "0 0 2146435072\n2146500608 2146500608 2148466687\n");
        assert_eq!(
            Map::OwnRoot.text(k),
            format!("0 {k} 1\n1 1 2146435071\n2146500608 2146500608 2148466687\n")
        );
        // The last id mapped is 4294967294 ((uid_t)-1 never is).
        assert_eq!(2146500608u64 + 2148466687 - 1, 4294967294);
        assert_eq!(guest_uid(k), 0);
        assert_eq!(guest_uid(UID_BASE - 1), UID_BASE - 1);
        assert_eq!(guest_uid(65534), 65534);
    }

    #[test]
    fn the_default_ceiling_gets_a_namespace_and_host_capabilities_do_not() {
        let default = crate::kernel::caps::SECURE_KEEP | bit(crate::kernel::caps::SYS_BOOT);
        assert!(wanted(default));
        for host_only in [12, 27, 21] {
            assert!(!wanted(default | bit(host_only)), "{host_only}");
        }
    }
}
