//! A guest's abstract unix socket names (those starting with a NUL byte)
//! belong to the network namespace, which guests share with the host.
//! A guest's processes make every unix socket through their supervisor
//! ([`answer`], for the listener of seccomp::supervised_listener), which
//! makes it in a network namespace of the guest's own that holds nothing
//! else: the names they bind and connect to are theirs alone, both ways —
//! no host process reaches a guest's listener by its name, and no guest
//! reaches the host's. (A Landlock domain scoped for abstract sockets,
//! Linux 6.12, would stop connects only, not a name bound first taking
//! the host's clients, and would part the guest's init from the processes
//! that enter it later, which can join no domain.)

use crate::error::{Context, Result};
use crate::sys;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// Why this kernel cannot give a guest its own abstract socket names,
/// for `start`, `exec` and `enter` to refuse with; None when it can. The
/// supervisor hands sockets over with SECCOMP_IOCTL_NOTIF_ADDFD and its
/// SEND flag (Linux 5.14).
pub fn missing() -> Option<String> {
    let release = nix::sys::utsname::uname().ok()?.release().to_string_lossy().into_owned();
    let mut v = release.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok());
    let (major, minor) = (v.next()?, v.next()?);
    ((major, minor) < (5, 14)).then(|| {
        format!("this kernel ({release}) cannot hand sockets to a process (seccomp ADDFD with SEND, Linux 5.14), which the server's unix sockets need")
    })
}

/// Answers a notified socket(2) or socketpair(2) of a unix socket
/// ([`Supervised::Socket`](crate::kernel::seccomp::Supervised),
/// `SocketPair`): the socket (or pair) is made here, in this process's
/// network namespace — the guest's own — with the caller's type and
/// protocol, and put into the caller's descriptor table (seccomp ADDFD);
/// the kernel's own errors go back as they are. A pair's numbers are
/// written to the caller's memory, which only a process the supervisor
/// may give up on should touch (supervisor.rs).
pub fn answer_socket(listener: &OwnedFd, n: &sys::SeccompNotif) {
    use crate::kernel::seccomp::{supervised_call, Supervised};
    let a = |i: usize| n.args[i] as i32;
    let pair_at = (supervised_call(n) == Supervised::SocketPair).then_some(n.args[3]);
    make(listener, n, [a(0), a(1), a(2)], pair_at)
}

/// Makes the socket, or pair, of (domain, type, protocol) and hands it to
/// the caller of `n`; a pair's numbers go to `pair_at` in its memory.
fn make(listener: &OwnedFd, n: &sys::SeccompNotif, [domain, ty, protocol]: [i32; 3], pair_at: Option<u64>) {
    let cloexec = ty & libc::SOCK_CLOEXEC != 0;
    let answered = match pair_at {
        None => sys::socket_as_asked(domain, ty, protocol)
            .and_then(|s| sys::seccomp_addfd(listener, n.id, s.as_raw_fd(), cloexec, true))
            .map(drop),
        // The caller's memory through /proc/PID/mem, opened before the
        // call is checked to be still waiting: the descriptor holds that
        // process's memory even should the pid be reused. Where the numbers
        // go must be writable before any descriptor is put into the caller
        // (it cannot be taken back): its 8 bytes are read and written back.
        Some(at) => caller_memory(listener, n).and_then(|mem| {
            let mut sv = [0u8; 8];
            mem.read_exact_at(&mut sv, at)
                .and_then(|()| mem.write_all_at(&sv, at))
                .map_err(|_| nix::errno::Errno::EFAULT)?;
            let (a, b) = sys::socketpair_as_asked(domain, ty, protocol)?;
            let x = sys::seccomp_addfd(listener, n.id, a.as_raw_fd(), cloexec, false)?;
            let y = sys::seccomp_addfd(listener, n.id, b.as_raw_fd(), cloexec, false)?;
            sv[..4].copy_from_slice(&x.to_le_bytes());
            sv[4..].copy_from_slice(&y.to_le_bytes());
            mem.write_all_at(&sv, at).map_err(|_| nix::errno::Errno::EFAULT)?;
            sys::seccomp_answer(listener, n.id, 0)
        }),
    };
    if let Err(e) = answered {
        let _ = sys::seccomp_answer(listener, n.id, e as i32);
    }
}

/// Where a guest's raw and packet sockets are made (see [`answer_raw`]).
pub struct RawScope<'a> {
    /// The host's network namespace.
    pub net: &'a std::fs::File,
    /// The guest's cgroup (v2), whose programs (the address lock) apply
    /// to what is made from inside it.
    pub cgroup: &'a std::path::Path,
    /// (st_dev, st_ino) of the guest's user namespace: the one its
    /// processes' capabilities count in. A caller in any other (one it
    /// made itself, where it holds every capability) gets nothing.
    pub userns: (u64, u64),
}

/// The (st_dev, st_ino) of a namespace file such as /proc/PID/ns/user.
pub fn ns_id(path: &str) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Answers a notified socket(2) of a raw or packet socket
/// ([`Supervised::RawSocket`](crate::kernel::seccomp::Supervised)): for a
/// caller in the guest's own user namespace that holds CAP_NET_RAW there
/// (its effective set, /proc/PID/status), a child of this process makes
/// it in the host's network namespace from inside the guest's cgroup, so
/// that the guest's address lock applies to it as to any socket the guest
/// makes, binds a raw IPv4 or IPv6 socket of a locked guest to its first
/// address of that family (its source, as the lock wants it), and puts it
/// into the caller. Otherwise EPERM, as the kernel would answer.
pub fn answer_raw(listener: &OwnedFd, n: &sys::SeccompNotif, scope: &RawScope) {
    let own_ns = ns_id(&format!("/proc/{}/ns/user", n.pid)) == Some(scope.userns);
    let held = crate::sys::read_text(format!("/proc/{}/status", n.pid))
        .ok()
        .and_then(|s| crate::kernel::caps::from_status(&s, "CapEff:"))
        .is_some_and(|eff| eff & crate::kernel::caps::bit(crate::kernel::caps::NET_RAW) != 0);
    // What was read must have been the caller's (seccomp_unotify(2)); a
    // caller waiting in socket(2) changes neither namespace nor set.
    if !own_ns || !held || !sys::seccomp_id_valid(listener, n.id) {
        let _ = sys::seccomp_answer(listener, n.id, libc::EPERM);
        return;
    }
    let (domain, ty, protocol) = (n.args[0] as i32, n.args[1] as i32, n.args[2] as i32);
    let procs = scope.cgroup.join("cgroup.procs");
    let source = locked_source(scope.cgroup, domain, ty);
    let errno = |e: std::io::Error| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
    match sys::fork() {
        Ok(sys::Forked::Child) => {
            let made = nix::sched::setns(scope.net, nix::sched::CloneFlags::CLONE_NEWNET)
                .and_then(|()| std::fs::write(&procs, "0").map_err(errno))
                .and_then(|()| sys::socket_as_asked(domain, ty, protocol))
                .and_then(|s| match source {
                    Some(a) => nix::sys::socket::bind(s.as_raw_fd(), &a).map(|()| s),
                    None => Ok(s),
                })
                .and_then(|s| sys::seccomp_addfd(listener, n.id, s.as_raw_fd(), ty & libc::SOCK_CLOEXEC != 0, true));
            if let Err(e) = made {
                let _ = sys::seccomp_answer(listener, n.id, e as i32);
            }
            std::process::exit(0)
        }
        Ok(sys::Forked::Parent(pid)) => {
            // A child killed before it answered leaves the caller waiting.
            if !matches!(nix::sys::wait::waitpid(pid, None), Ok(nix::sys::wait::WaitStatus::Exited(_, 0))) {
                let _ = sys::seccomp_answer(listener, n.id, libc::EPERM);
            }
        }
        Err(e) => {
            let _ = sys::seccomp_answer(listener, n.id, e as i32);
        }
    }
}

/// For a raw socket of `domain` made for a guest locked to addresses
/// (netlock.rs, its cgroup's record): its first address of that family,
/// to bind to, as chbind's lock binds what connects or sends unbound.
fn locked_source(cgroup: &std::path::Path, domain: i32, ty: i32) -> Option<nix::sys::socket::SockaddrStorage> {
    use nix::sys::socket::SockaddrStorage;
    if ty & 0xf != libc::SOCK_RAW {
        return None;
    }
    let v = sys::getxattr(cgroup, crate::kernel::netlock::XATTR_IP).ok().flatten()?;
    let text = String::from_utf8_lossy(&v).into_owned();
    let mut addrs = text.split_whitespace().filter_map(|a| a.parse::<std::net::IpAddr>().ok());
    match domain {
        libc::AF_INET => addrs.find_map(|a| match a {
            std::net::IpAddr::V4(v4) => Some(SockaddrStorage::from(std::net::SocketAddrV4::new(v4, 0))),
            _ => None,
        }),
        libc::AF_INET6 => addrs.find_map(|a| match a {
            std::net::IpAddr::V6(v6) => Some(SockaddrStorage::from(std::net::SocketAddrV6::new(v6, 0, 0, 0))),
            _ => None,
        }),
        _ => None,
    }
}

/// The memory of the process waiting on call `n`, opened and then checked
/// to be that process's (seccomp_unotify(2): the pid may be reused once it
/// has gone).
pub(crate) fn caller_memory(listener: &OwnedFd, n: &sys::SeccompNotif) -> std::result::Result<std::fs::File, nix::errno::Errno> {
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/proc/{}/mem", n.pid))
        .map_err(|e| e.raw_os_error().map_or(nix::errno::Errno::ESRCH, nix::errno::Errno::from_raw))?;
    if !sys::seccomp_id_valid(listener, n.id) {
        return Err(nix::errno::Errno::ESRCH);
    }
    Ok(mem)
}

/// Makes a new network namespace — a guest's own abstract unix socket
/// namespace, with nothing else in it — and gives it, leaving this
/// process back in `host`. Its unix tuning follows the host's
/// (net.unix.max_dgram_qlen: syslog's queue) where the host's differs
/// from a new namespace's: each namespace that has its /proc/sys entry
/// looked up adds a dentry of that name, which every later lookup of it
/// compares (proc_sys_compare), so with 500 servers each start's lookup
/// walked past the other 499.
pub fn new_namespace(host: &std::fs::File) -> Result<std::fs::File> {
    use nix::sched::{setns, unshare, CloneFlags};
    /// A new network namespace's net.unix.max_dgram_qlen
    /// (net/unix/af_unix.c, unix_net_init).
    const NEW_QLEN: &str = "10";
    let qlen = crate::sys::read_text("/proc/sys/net/unix/max_dgram_qlen")
        .ok()
        .filter(|q| q.trim() != NEW_QLEN);
    unshare(CloneFlags::CLONE_NEWNET).ctx(|| "make a network namespace for the server's unix sockets")?;
    if let Some(q) = qlen {
        let _ = std::fs::write("/proc/sys/net/unix/max_dgram_qlen", q);
    }
    let ns = std::fs::File::open("/proc/self/ns/net").ctx(|| "open /proc/self/ns/net");
    // Should this fail, the caller must not go on: what it makes from now
    // on would be in the guest's namespace.
    setns(host, CloneFlags::CLONE_NEWNET).ctx(|| "go back to the host's network namespace")?;
    ns
}

/// The network namespace of the unix socket the guest's init `pid` keeps
/// as its anchor (context/init.rs): made by the supervisor in the guest's
/// own namespace, it names that namespace (SIOCGSKNS) to a supervisor that
/// adopts the guest after the one before was killed. Its descriptors are
/// taken with pidfd_getfd(2); a socket in the host's namespace (one the
/// guest could have put there) is no anchor. None without one.
pub fn anchored_namespace(pidfd: &OwnedFd, pid: nix::unistd::Pid) -> Option<OwnedFd> {
    let host = ns_id("/proc/self/ns/net")?;
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    for e in dir.flatten() {
        let is_socket = std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
        let Some(n) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()).filter(|_| is_socket) else {
            continue;
        };
        let Ok(sock) = sys::pidfd_getfd(pidfd, n) else { continue };
        let Ok(net) = sys::socket_netns(&sock) else { continue };
        if nix::sys::stat::fstat(net.as_raw_fd()).is_ok_and(|st| (st.st_dev, st.st_ino) != host) {
            return Some(net);
        }
    }
    None
}

/// Whether two namespace descriptors name the same namespace.
pub fn same_namespace(a: &impl AsRawFd, b: &impl AsRawFd) -> bool {
    let id = |f: &dyn AsRawFd| nix::sys::stat::fstat(f.as_raw_fd()).ok().map(|st| (st.st_dev, st.st_ino));
    id(a).is_some() && id(a) == id(b)
}

/// The one message on a connection to a guest's supervisor from a process
/// entering the guest: this byte, with its supervised listener.
pub const LISTENER: u8 = b'L';

/// Sends the supervised `listener` over `conn` to the guest's supervisor
/// (and closes this copy: the process must not answer its own calls).
pub fn hand_over(conn: &OwnedFd, listener: OwnedFd) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let fds = [listener.as_raw_fd()];
    sendmsg::<()>(
        conn.as_raw_fd(),
        &[std::io::IoSlice::new(&[LISTENER])],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .ctx(|| "hand the socket filter to the server's supervisor")
    .map(drop)
}
