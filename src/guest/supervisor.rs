//! The running guests' supervisor: one host process, `vsbox-watch`, for
//! every guest of a run directory (RUNDIR), started by the first `start`
//! that needs it and gone when no guest is left — no host process per
//! guest. For each guest it keeps a network namespace of the guest's own
//! that holds only the guest's unix sockets, and answers the supervised
//! calls (kernel/seccomp.rs, `supervised_listener`) of every process in
//! the guest: each unix socket they make is made there
//! (kernel/unixscope.rs), so the abstract names they bind and connect to
//! are the guest's alone, both ways; a reboot(2) asks the guest's init to
//! restart or stop, as vreboot does. When an init ends, a process of its
//! own (`vsbox-cleanup NAME`) cleans up and restarts
//! (lifecycle.rs, `after_end`), and the watcher forgets the guest.
//!
//! `start` hands a guest over at RUNDIR/vsbox-watch.sock (root's only,
//! under RUNDIR/vsbox-watch.lock, which the watcher takes too as it ends,
//! so nothing is handed to a watcher going away). Processes that enter
//! the guest later (exec, enter, suexec, service) connect to it at
//! `RUNDIR/NAME.sock` (root's only) before they enter, and hand over
//! their listener as their plan installs it; `start` names the init over
//! a link of its own. Should the watcher die, the guests run on, but the
//! kernel forgets their listeners: their unix socket calls fail (ENOSYS)
//! rather than reach the host's.

use crate::context::init;
use crate::error::{Context, Error, Result};
use crate::guest::Guest;
use crate::kernel::native;
use crate::kernel::unixscope;
use crate::paths;
use crate::sys;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// `start`'s message on its link: this byte, the init's pid (4 bytes,
/// little-endian, the host's numbering), and its pidfd and the read end
/// of its status pipe.
const INIT: u8 = b'I';

/// The guest's control socket, `RUNDIR/NAME.sock`.
pub fn socket_path(g: &Guest) -> PathBuf {
    paths::rundir().join(format!("{}.sock", g.name))
}

/// Binds the guest's control socket (replacing a stale one), for `start`
/// to hand to the supervisor before the guest's first process exists, and
/// names it on the context `dir` (context::XATTR_SUPERVISOR) for whatever
/// joins the context later (vserver's exec and enter, chcontext --ctx).
pub fn bind(g: &Guest, dir: &Path) -> Result<OwnedFd> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(g);
    let rundir = paths::rundir();
    std::fs::create_dir_all(&rundir).ctx(|| format!("create {}", rundir.display()))?;
    let _ = std::fs::remove_file(&path);
    // Root's alone from the start: no window with the umask's mode.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let bound = std::os::unix::net::UnixListener::bind(&path);
    nix::sys::stat::umask(old);
    let l = bound.ctx(|| format!("bind {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).ctx(|| format!("chmod {}", path.display()))?;
    // Absolute: a joiner may run with another working directory.
    let path = std::path::absolute(&path).ctx(|| format!("resolve {}", path.display()))?;
    sys::setxattr(dir, crate::context::XATTR_SUPERVISOR, path.as_os_str().as_encoded_bytes())
        .ctx(|| format!("record the supervisor on {}", dir.display()))?;
    Ok(OwnedFd::from(l))
}

/// A connection to the running guest's supervisor, for a process about to
/// enter the guest (its plan's `supervisor`).
pub fn connect(g: &Guest) -> Result<OwnedFd> {
    let path = socket_path(g);
    match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => Ok(OwnedFd::from(s)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ECONNREFUSED)) => Err(Error::failed(
            format!("enter server {}", g.name),
            format!(
                "its supervisor (vsbox-watch, {}) is not running — killed, or the server was started by an older vsbox: `vservers status` starts it again",
                path.display()
            ),
        )),
        Err(e) => Err(e).ctx(|| format!("connect to {}", path.display())),
    }
}

/// `start`, once the guest's first process (its init) exists: names it to
/// the supervisor over `link`, with the read end of its status pipe (a
/// fresh context has none).
pub fn announce_init(link: &OwnedFd, pid: Pid, pidfd: &OwnedFd, status: Option<&OwnedFd>) -> Result<()> {
    let mut msg = [INIT, 0, 0, 0, 0];
    msg[1..].copy_from_slice(&pid.as_raw().to_le_bytes());
    let mut fds = vec![pidfd.as_raw_fd()];
    fds.extend(status.map(|s| s.as_raw_fd()));
    sendmsg::<()>(
        link.as_raw_fd(),
        &[std::io::IoSlice::new(&msg)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .ctx(|| "name the server's init to its supervisor")
    .map(drop)
}

/// The guest's init, as `start` named it.
pub struct Init {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    /// The read end of the init's status pipe (its REBOOTING byte); a
    /// fresh context's PID 1 has none.
    pub status: Option<OwnedFd>,
    /// What its status pipe said once it said it: whether it is restarting.
    pub rebooting: Option<bool>,
}

/// What the watcher does for a guest once its init has ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// A started guest (`vserver start`): clean up after it as `stop`
    /// would, and start it again if it asked to restart
    /// (lifecycle.rs, `after_end`).
    Boot,
    /// A fresh context of `exec` or `enter` in a stopped guest: the
    /// client that made it removes it; the watcher only stops serving it.
    Fresh,
}

/// The watcher's socket in RUNDIR (SOCK_SEQPACKET, root's only): one
/// registration a connection.
const WATCH_SOCKET: &str = "vsbox-watch.sock";
/// Held (flock) by whoever connects to the watcher, from connecting until
/// the watcher has answered, and by the watcher as it ends: no guest is
/// handed to a watcher that is going away.
const WATCH_LOCK: &str = "vsbox-watch.lock";
/// Room for a registration: five paths of up to PATH_MAX bytes and some
/// numbers; a longer one arrives cut (SOCK_SEQPACKET) and is refused.
const REGISTRATION_ROOM: usize = 5 * 4096 + 128;
/// The running watcher's pid, for the administrator (and the tests).
pub const WATCH_PID: &str = "vsbox-watch.pid";

/// A guest as `start` (or a fresh context) hands it to the watcher, with
/// three descriptors: its bound control socket, the watcher's end of
/// `start`'s link, and its unix namespace.
#[derive(Debug, PartialEq)]
struct Registration {
    watched: Watched,
    /// (st_dev, st_ino) of the user namespace the guest's capabilities
    /// count in.
    userns: (u64, u64),
}

/// A guest as the watcher knows it, from its registration (or adoption)
/// until after its clean-up.
#[derive(Debug, PartialEq)]
struct Watched {
    kind: Kind,
    guest: Guest,
    /// The context's cgroup (v2, or the v1 name=vsbox one).
    dir: PathBuf,
    /// The inode of `dir` and the control socket's [`stamp`]: what the
    /// watcher removes or cleans up must still be what it was handed, not
    /// a restarted guest's.
    dir_ino: u64,
    ctl_stamp: u64,
    xid: u32,
}

impl Registration {
    /// NUL-separated fields: paths hold any byte but NUL.
    fn encode(&self) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        let w = &self.watched;
        let g = &w.guest;
        let kind: &[u8] = match w.kind {
            Kind::Boot => b"boot",
            Kind::Fresh => b"fresh",
        };
        let numbers = [w.dir_ino, w.ctl_stamp, u64::from(w.xid), self.userns.0, self.userns.1].map(|n| n.to_string());
        let mut fields: Vec<&[u8]> = vec![
            kind,
            g.name.as_bytes(),
            g.conf.as_os_str().as_bytes(),
            g.root.as_os_str().as_bytes(),
            g.hook.as_os_str().as_bytes(),
            w.dir.as_os_str().as_bytes(),
        ];
        fields.extend(numbers.iter().map(|n| n.as_bytes()));
        fields.join(&0u8)
    }

    fn decode(b: &[u8]) -> Option<Registration> {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let f: Vec<&[u8]> = b.split(|&c| c == 0).collect();
        let [kind, name, conf, root, hook, dir, dir_ino, ctl_stamp, xid, ns_dev, ns_ino] = f[..] else {
            return None;
        };
        let path = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
        let n = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
        Some(Registration {
            watched: Watched {
                kind: match kind {
                    b"boot" => Kind::Boot,
                    b"fresh" => Kind::Fresh,
                    _ => return None,
                },
                guest: Guest {
                    name: String::from_utf8(name.to_vec()).ok()?,
                    conf: path(conf),
                    root: path(root),
                    hook: path(hook),
                },
                dir: path(dir),
                dir_ino: n(dir_ino)?,
                ctl_stamp: n(ctl_stamp)?,
                xid: u32::try_from(n(xid)?).ok()?,
            },
            userns: (n(ns_dev)?, n(ns_ino)?),
        })
    }
}

/// Hands the guest's context `dir` to the watcher (starting it if none
/// runs), with a network namespace of the guest's own for its unix
/// sockets: from now on it serves the context's processes ([`Served`])
/// until the init `start` names over the returned link ends — and, when
/// that init has a status pipe, until the context is empty — then
/// removes the control socket it was bound to (unless something bound
/// another there meanwhile), and for [`Kind::Boot`] cleans up and
/// restarts as the init asked (its REBOOTING byte). Gives that link and a
/// connection for the context's first process to hand its filter over.
pub fn spawn(g: &Guest, dir: &Path, userns: Option<&OwnedFd>, xid: u32, kind: Kind) -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::unix::fs::MetadataExt;
    let dir_ino = std::fs::metadata(dir).map(|m| m.ino()).ctx(|| format!("stat {}", dir.display()))?;
    let ctl = bind(g, dir)?;
    let path = socket_path(g);
    let ctl_stamp = std::fs::metadata(&path)
        .map(|m| stamp(&m))
        .ctx(|| format!("stat {}", path.display()))?;
    let (link, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC).ctx(|| "socketpair")?;
    // The user namespace the guest's capabilities count in: its own, or
    // the host's (this process's).
    let userns = match userns {
        Some(fd) => nix::sys::stat::fstat(fd.as_raw_fd())
            .map(|st| (st.st_dev, st.st_ino))
            .ctx(|| "stat the server's user namespace")?,
        None => unixscope::ns_id("/proc/self/ns/user").ok_or_else(|| Error::failed("stat /proc/self/ns/user", "it is missing"))?,
    };
    let reg = Registration {
        watched: Watched {
            kind,
            guest: g.clone(),
            dir: dir.to_owned(),
            dir_ino,
            ctl_stamp,
            xid,
        },
        userns,
    };
    // Its own unix namespace, made here: many starts at once make theirs
    // side by side.
    let host = std::fs::File::open("/proc/self/ns/net").ctx(|| "open /proc/self/ns/net")?;
    let net = unixscope::new_namespace(&host)?;
    let what = format!("hand server {} to vsbox-watch", g.name);
    if let Err(e) = ask(
        &paths::rundir(),
        &what,
        &reg.encode(),
        &[ctl.as_raw_fd(), theirs.as_raw_fd(), net.as_raw_fd()],
        false,
    ) {
        drop(ctl);
        remove_socket(g, ctl_stamp);
        return Err(e);
    }
    Ok((link, connect(g)?))
}

/// Sends one message (a registration, or [`PING`]) to the watcher of
/// `rundir`, starting one first if none answers, and with `wait` waits for
/// its answer; `what` names the errors. A registration does not wait: the
/// watcher only takes it in, and many starts at once would queue behind
/// each other's answers.
fn ask(rundir: &Path, what: &str, msg: &[u8], fds: &[RawFd], wait: bool) -> Result<()> {
    use nix::sys::socket::{recv, ControlMessage};
    std::fs::create_dir_all(rundir).ctx(|| format!("create {}", rundir.display()))?;
    let _lock = watch_lock(rundir, false)?.ok_or_else(|| Error::failed("lock the watcher", "busy"))?;
    let conn = match connect_watcher(rundir) {
        Ok(c) => c,
        Err(_) => {
            start_watcher(rundir)?;
            connect_watcher(rundir).ctx(|| format!("connect to {}", rundir.join(WATCH_SOCKET).display()))?
        }
    };
    // A watcher busy for longer than this is stuck: better an error than
    // every start hanging behind the lock.
    let _ = nix::sys::socket::setsockopt(
        &conn,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(30, 0),
    );
    sendmsg::<()>(
        conn.as_raw_fd(),
        &[std::io::IoSlice::new(msg)],
        &[ControlMessage::ScmRights(fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .ctx(|| what.to_owned())?;
    if !wait {
        // Sent before the lock goes: a watcher ending looks at its
        // backlog under the lock, so the message is taken, by it or (when
        // it has gone meanwhile) by none, the connection refused.
        return Ok(());
    }
    let mut reply = [0u8; 1024];
    let n = recv(conn.as_raw_fd(), &mut reply, MsgFlags::empty()).ctx(|| "read vsbox-watch's answer")?;
    match reply[..n].split_first() {
        Some((b'A', _)) => Ok(()),
        Some((b'E', why)) => Err(Error::failed(what, String::from_utf8_lossy(why))),
        _ => Err(Error::failed(what, "it ended without an answer")),
    }
}

/// The watcher's lock, taken (blocking), or tried (None when held).
fn watch_lock(rundir: &Path, nonblocking: bool) -> Result<Option<nix::fcntl::Flock<std::fs::File>>> {
    use nix::fcntl::{Flock, FlockArg};
    let path = rundir.join(WATCH_LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("open {}", path.display()))?;
    let arg = if nonblocking {
        FlockArg::LockExclusiveNonblock
    } else {
        FlockArg::LockExclusive
    };
    match Flock::lock(f, arg) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) if nonblocking => Ok(None),
        Err((_, e)) => Err(e).ctx(|| format!("lock {}", path.display())),
    }
}

fn connect_watcher(rundir: &Path) -> nix::Result<OwnedFd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let s = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)?;
    connect(s.as_raw_fd(), &UnixAddr::new(&rundir.join(WATCH_SOCKET))?)?;
    Ok(s)
}

/// Binds the watcher's socket (replacing a stale one; the caller holds
/// the lock) and leaves `vsbox-watch` on the host listening on it.
fn start_watcher(rundir: &Path) -> Result<()> {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    use std::os::unix::fs::MetadataExt;
    let path = rundir.join(WATCH_SOCKET);
    let _ = std::fs::remove_file(&path);
    let s = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).ctx(|| "socket")?;
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    let bound = UnixAddr::new(&path).and_then(|a| bind(s.as_raw_fd(), &a));
    nix::sys::stat::umask(old);
    bound.ctx(|| format!("bind {}", path.display()))?;
    listen(&s, Backlog::new(128).unwrap_or(Backlog::MAXCONN)).ctx(|| format!("listen on {}", path.display()))?;
    let ino = std::fs::metadata(&path)
        .map(|m| m.ino())
        .ctx(|| format!("stat {}", path.display()))?;
    let rundir = rundir.to_owned();
    crate::kernel::process::detached("vsbox-watch", vec![s], move |mut fds| {
        if let Some(listener) = fds.pop() {
            Watcher::run(listener, rundir, ino);
        }
    })
    .ctx(|| "start vsbox-watch")
}
/// One message of at most `room` bytes and its descriptors; None at the
/// end of the stream. Room
/// for as many as one message can carry (SCM_MAX_FD, 253), so none is
/// ever installed here and then lost to a cut-off control message.
fn receive(fd: &OwnedFd, room: usize) -> Option<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; room];
    let mut space = nix::cmsg_space!([RawFd; 253]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(fd.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).ok()?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(got) = c {
            fds.extend(got.into_iter().map(sys::adopt_fd));
        }
    }
    // A message cut to `room` (a datagram's rest is lost), or whose
    // descriptors did not all fit (out of descriptors), is no message.
    let n = msg.bytes;
    (n > 0 && !msg.flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)).then(|| (buf[..n].to_vec(), fds))
}

/// One guest the watcher serves.
struct Served {
    watched: Watched,
    userns: (u64, u64),
    /// The guest's own network namespace, holding only its unix sockets.
    net: std::fs::File,
    /// The bound control socket, RUNDIR/NAME.sock.
    ctl: OwnedFd,
    /// `start`'s link, until it has named the init and closed it.
    link: Option<OwnedFd>,
    init: Option<Init>,
    /// Connections to the control socket, each to hand over a listener.
    conns: Vec<OwnedFd>,
    /// The supervised listeners of the guest's processes.
    listeners: Vec<OwnedFd>,
    /// Answers under way in children of the watcher ([`Served::apart`]).
    apart: Vec<Apart>,
    /// Its listeners are not watched while [`MAX_APART`] answers are under
    /// way: one guest's calls wait for its own, not for the others'.
    paused: bool,
}

/// An answer given in a child of the watcher.
struct Apart {
    pid: Pid,
    pidfd: OwnedFd,
    /// The call, and its listener (a copy): refused with EFAULT should the
    /// child be given up.
    id: u64,
    listener: OwnedFd,
    deadline: std::time::Instant,
    given_up: bool,
}

/// How many answers of one guest may be under way in children at once.
const MAX_APART: usize = 4;

/// The epoll key of the watcher's own socket, and of the connections to
/// it; every other key is a guest's (Watcher::guests).
const WATCH_KEY: u64 = u64::MAX;
const PENDING_KEY: u64 = u64::MAX - 1;

/// What each of `fds` has ready now (poll(2), not waiting; nothing
/// should poll fail).
fn ready_now<'a>(fds: impl IntoIterator<Item = std::os::fd::BorrowedFd<'a>>) -> Vec<PollFlags> {
    let mut fds: Vec<PollFd> = fds.into_iter().map(|fd| PollFd::new(fd, PollFlags::POLLIN)).collect();
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect(),
        Err(_) => vec![PollFlags::empty(); fds.len()],
    }
}

/// Watches `fd` for input, under `key`.
fn watch(ep: &Epoll, fd: std::os::fd::BorrowedFd, key: u64) {
    let _ = ep.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, key));
}

/// Stops watching `fd`: before it is closed, or handed to another process
/// (a descriptor of the same file elsewhere would keep it in the set).
fn unwatch(ep: &Epoll, fd: std::os::fd::BorrowedFd) {
    let _ = ep.delete(fd);
}

/// What a polled descriptor of a [`Served`] guest is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum What {
    Ctl,
    Link,
    Init,
    Status,
    Conn(usize),
    Listener(usize),
    Apart(usize),
}

/// `vsbox-watch`: one process on the host serving every running guest of
/// its RUNDIR, gone when none is left.
struct Watcher {
    /// The host's network namespace, where the watcher is between answers.
    host: std::fs::File,
    /// Its RUNDIR, absolute.
    rundir: PathBuf,
    /// What it waits on: each guest's descriptors under the guest's key
    /// (its descriptors in [`Served::polled`], no others), its socket and
    /// the connections to it. A wake-up costs what is ready, not what is
    /// watched.
    ep: Epoll,
    guests: std::collections::HashMap<u64, Served>,
    next_key: u64,
    pending: Vec<OwnedFd>,
}

impl Watcher {
    /// Serves until no guest is left and no registration waits; then
    /// removes its socket (if it is still the one `ino` names) and ends.
    fn run(listener: OwnedFd, rundir: PathBuf, ino: u64) {
        // What the command that started it was told for itself (a hook's
        // lock, a reboot's context id, a fleet's sweep) is not the
        // watcher's: its clean-ups take each server's lock anew.
        for k in [crate::guest::LOCK_HELD, crate::guest::lifecycle::START_AGAIN, crate::context::SWEPT] {
            std::env::remove_var(k);
        }
        // Small, and the guests' unix sockets fail without it: never the
        // OOM killer's choice (proc(5), oom_score_adj).
        let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
        // Some descriptors for each guest (its socket, init, namespace and
        // a listener a process): as many as root may have, not the soft
        // limit of whatever started it.
        raise_nofile();
        let Ok(host) = std::fs::File::open("/proc/self/ns/net") else {
            return;
        };
        let pid_file = rundir.join(WATCH_PID);
        let _ = std::fs::write(&pid_file, format!("{}\n", std::process::id()));
        let _ = layout();
        // It only waits from now on: give back what starting it used.
        sys::release_own_text();
        sys::release_unused_stack();
        let Ok(ep) = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) else {
            return;
        };
        watch(&ep, listener.as_fd(), WATCH_KEY);
        let mut w = Watcher {
            host,
            rundir: std::path::absolute(&rundir).unwrap_or_else(|_| rundir.clone()),
            ep,
            guests: std::collections::HashMap::new(),
            next_key: 0,
            pending: Vec::new(),
        };
        // Before the first answer: what a killed watcher served.
        w.adopt();
        loop {
            let idle = w.guests.is_empty() && w.pending.is_empty();
            if idle && w.may_end(&listener, &rundir, ino) {
                if std::fs::read_to_string(&pid_file).is_ok_and(|p| p.trim() == std::process::id().to_string()) {
                    let _ = std::fs::remove_file(&pid_file);
                }
                return;
            }
            // Idle, it looks again shortly: a `start` held the lock. With
            // answers under way apart, often enough to give up on them.
            let apart = w.guests.values().any(|s| !s.apart.is_empty());
            let timeout = match (idle, apart) {
                (true, _) => PollTimeout::from(20u8),
                (false, true) => PollTimeout::from(100u8),
                (false, false) => PollTimeout::NONE,
            };
            let mut events = [EpollEvent::empty(); 64];
            let Ok(n) = w.ep.wait(&mut events, timeout) else { continue };
            let mut keys: Vec<u64> = events[..n].iter().map(|e| e.data()).collect();
            keys.sort_unstable();
            keys.dedup();
            w.handle(&listener, &keys);
            if apart {
                let now = std::time::Instant::now();
                w.guests.values_mut().for_each(|s| s.expire(now));
            }
        }
    }

    /// Whether it may end now: it holds the lock, and no `start` waits in
    /// its socket's backlog; then its socket is gone already.
    fn may_end(&self, listener: &OwnedFd, rundir: &Path, ino: u64) -> bool {
        use std::os::unix::fs::MetadataExt;
        let lock = match watch_lock(rundir, true) {
            Ok(Some(l)) => Some(l),
            Ok(None) => return false,
            // RUNDIR is gone: nobody can hand it anything any more.
            Err(_) => None,
        };
        if !ready_now([listener.as_fd()])[0].is_empty() {
            return false;
        }
        let path = rundir.join(WATCH_SOCKET);
        if std::fs::metadata(&path).is_ok_and(|m| m.ino() == ino) {
            let _ = std::fs::remove_file(&path);
        }
        drop(lock);
        true
    }

    /// Handles the keys epoll found ready: a guest's are looked at with
    /// poll(2) over its few descriptors, then handled ([`Served::step`]).
    fn handle(&mut self, listener: &OwnedFd, keys: &[u64]) {
        use nix::sys::socket::{accept4, SockFlag};
        for &key in keys.iter().filter(|&&k| k != WATCH_KEY && k != PENDING_KEY) {
            let Some(s) = self.guests.get_mut(&key) else { continue };
            let (whats, fds): (Vec<What>, Vec<_>) = s.polled().into_iter().unzip();
            let ready: Vec<(What, PollFlags)> = whats.into_iter().zip(ready_now(fds)).filter(|(_, r)| !r.is_empty()).collect();
            if s.step(&ready, &self.host, &self.ep, key) {
                for (_, fd) in s.polled() {
                    unwatch(&self.ep, fd);
                }
                s.end_apart();
                if let Some(s) = self.guests.remove(&key) {
                    self.finish(s);
                }
            }
        }
        let mut got = Vec::new();
        if keys.contains(&PENDING_KEY) {
            let ready = ready_now(self.pending.iter().map(|p| p.as_fd()));
            for i in (0..ready.len()).rev().filter(|&i| !ready[i].is_empty()) {
                let conn = self.pending.remove(i);
                unwatch(&self.ep, conn.as_fd());
                got.push(conn);
            }
        }
        let registered = !got.is_empty();
        for conn in got {
            self.register(conn);
        }
        if registered {
            // Taking a guest runs code that serving it does not: not kept
            // mapped (the answers' code faults back in, and stays).
            sys::release_own_text();
        }
        if keys.contains(&WATCH_KEY) {
            if let Ok(fd) = accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                let c = sys::adopt_fd(fd);
                if peer_is_root(&c) {
                    watch(&self.ep, c.as_fd(), PENDING_KEY);
                    self.pending.push(c);
                }
            }
        }
    }

    /// Serves `s` from now on: its descriptors are watched under a key of
    /// its own.
    fn serve(&mut self, s: Served) {
        let key = self.next_key;
        self.next_key += 1;
        for (_, fd) in s.polled() {
            watch(&self.ep, fd, key);
        }
        self.guests.insert(key, s);
    }

    /// Takes the registration waiting on `conn` and answers it: `A`, or
    /// `E` and why not.
    fn register(&mut self, conn: OwnedFd) {
        let answer = match receive(&conn, REGISTRATION_ROOM) {
            Some((msg, fds)) if msg == PING && fds.is_empty() => {
                // A live watcher may have dropped a guest too (start could
                // not name its init to it): looked for again.
                self.adopt();
                Ok(())
            }
            Some((msg, fds)) => match (Registration::decode(&msg), <[OwnedFd; 3]>::try_from(fds)) {
                (Some(reg), Ok([ctl, link, net])) => {
                    self.add(reg, ctl, link, net);
                    Ok(())
                }
                _ => Err("a malformed registration".to_owned()),
            },
            None => return,
        };
        let reply = match answer {
            Ok(()) => b"A".to_vec(),
            Err(why) => [b"E".as_slice(), why.as_bytes()].concat(),
        };
        let _ = nix::sys::socket::send(conn.as_raw_fd(), &reply, MsgFlags::MSG_NOSIGNAL);
    }

    /// Serves a registered guest: its control socket (bound and listening),
    /// `start`'s link and its unix namespace (made by `start`:
    /// many starts make theirs at once, not one after another here).
    fn add(&mut self, reg: Registration, ctl: OwnedFd, link: OwnedFd, net: OwnedFd) {
        self.serve(Served::new(reg.watched, reg.userns, net.into(), ctl, Some(link), None))
    }

    /// A guest's init has ended (or `start` gave up before naming one):
    /// the watcher forgets it ([`Watched::clean_up`]).
    fn finish(&self, s: Served) {
        let Served { watched, init, .. } = s;
        match (init, claim(&watched.dir)) {
            (Some(Init { status, rebooting, .. }), Some(claimed)) => watched.clean_up(claimed, status, rebooting),
            // `start` gave up (it removes what it made), or `stop` removed
            // the context already.
            _ => watched.forget(),
        }
    }
}

/// Makes sure a watcher runs for this RUNDIR and has adopted every running
/// guest no watcher serves (after one was killed): for `vservers`, and for
/// a command that found its guest's supervisor gone. When none runs and
/// nothing is to adopt, the watcher started for this ends at once.
pub fn revive() -> Result<()> {
    ask(&paths::rundir(), "start vsbox-watch", PING, &[], true)
}

/// A message that only asks for an answer: the watcher answers once it
/// has adopted what it found.
const PING: &[u8] = b"ping";

impl Watcher {
    /// Adopts the guests of its RUNDIR that run without a watcher: a killed
    /// one's. They keep their network namespace (found by the socket their
    /// init keeps in it for this; on the patched kernel, which keeps the
    /// host from taking it, a fresh one), their init is watched again (its
    /// pidfd, and its status pipe reopened through /proc), and new
    /// processes entering them are served; what
    /// their processes made before keeps working, but the kernel has
    /// forgotten the old listeners, so those processes' own new unix
    /// sockets fail (ENOSYS). A guest that ended meanwhile is cleaned up.
    fn adopt(&mut self) {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::MetadataExt;
        let rundir = self.rundir.clone();
        let Ok(reg) = crate::context::Registry::open() else { return };
        for (dir, tag) in crate::kernel::cgroup::subtree_xattr(&reg.layout.base(), crate::context::XATTR_GUEST) {
            let (Some(tag), Ok(Some(sock))) = (tag, sys::getxattr(&dir, crate::context::XATTR_SUPERVISOR)) else {
                continue;
            };
            let sock = PathBuf::from(std::ffi::OsStr::from_bytes(&sock));
            let Some(name) = sock.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".sock")) else {
                continue;
            };
            // Ours: this RUNDIR's, of this configuration directory, and
            // served by nobody.
            let Ok(guest) = Guest::new(name) else { continue };
            if sock.parent() != Some(rundir.as_path())
                || guest.tag().as_bytes() != tag.as_slice()
                || std::os::unix::net::UnixStream::connect(&sock).is_ok()
            {
                continue;
            }
            let (Ok(dir_ino), Some(xid)) = (
                std::fs::metadata(&dir).map(|m| m.ino()),
                dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok()),
            ) else {
                continue;
            };
            let kind = match sys::getxattr(&dir, crate::kernel::cgroup::XATTR_OWNER) {
                Ok(Some(_)) => Kind::Fresh,
                _ => Kind::Boot,
            };
            let name = guest.name.clone();
            // The socket a killed watcher left, until one is bound anew.
            let ctl_stamp = std::fs::metadata(&sock).map(|m| stamp(&m)).unwrap_or(0);
            let watched = Watched {
                kind,
                guest,
                dir,
                dir_ino,
                ctl_stamp,
                xid,
            };
            if let Err(why) = self.adopt_one(watched) {
                crate::syslog::log(crate::syslog::Level::Err, "vsbox-watch", &format!("adopt server {name}: {why}"));
            }
        }
    }

    fn adopt_one(&mut self, mut watched: Watched) -> std::result::Result<(), String> {
        let dir = &watched.dir;
        let found = native::spectate_fds("look for the init", || {
            // PID 1 of a namespace one below ours (not one a guest made
            // inside), still in the context once we hold its pidfd (not a
            // process that took its pid meanwhile).
            let depth = |status: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .map(|v| v.split_whitespace().count())
            };
            let own = crate::sys::read_text("/proc/self/status").ok().and_then(|s| depth(&s));
            let leader = crate::context::launch::leader(dir)
                .filter(|l| l.is_init && own.is_some() && depth(&l.status) == own.map(|d| d + 1))
                .ok_or("it has no init")?;
            let pid = Pid::from_raw(leader.pid as i32);
            let pidfd = sys::pidfd_open(pid).map_err(|e| format!("pidfd_open: {}", e.desc()))?;
            if !crate::kernel::cgroup::procs(dir).is_ok_and(|p| p.contains(&leader.pid)) {
                return Err("its init has just ended".into());
            }
            let userns = unixscope::ns_id(&format!("/proc/{pid}/ns/user")).ok_or("its user namespace is gone")?;
            let ino = sys::getxattr(dir, crate::context::XATTR_STATUS_PIPE).ok().flatten();
            let status = ino
                .and_then(|i| String::from_utf8(i).ok()?.parse().ok())
                .and_then(|i| status_pipe(pid, i));
            let net = unixscope::anchored_namespace(&pidfd, pid);
            let text = format!(
                "{pid} {} {} {} {}",
                userns.0,
                userns.1,
                u8::from(status.is_some()),
                u8::from(net.is_some())
            );
            let mut fds = vec![pidfd];
            fds.extend(status);
            fds.extend(net);
            Ok((text, fds))
        });
        let (text, mut fds) = match found {
            Ok(f) => f,
            Err(_) if !crate::kernel::cgroup::populated(dir) => {
                // It ended while nobody watched: cleaned up as then, unless
                // a clean-up is under way already (it holds the claim).
                let Some(claimed) = claim(dir) else { return Ok(()) };
                // Its supervisor had read that it was restarting.
                let restarting = sys::getxattr(dir, crate::context::XATTR_RESTARTING).is_ok_and(|v| v.is_some());
                watched.clean_up(claimed, None, Some(restarting));
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        };
        let n: Vec<u64> = text.split(' ').filter_map(|w| w.parse().ok()).collect();
        let (&[pid, ns_dev, ns_ino, has_status, has_net], Some(pidfd)) = (&n[..], (!fds.is_empty()).then(|| fds.remove(0))) else {
            return Err("the init's look came back malformed".into());
        };
        let status = (has_status == 1).then(|| fds.remove(0));
        let net = match (has_net == 1).then(|| fds.remove(0)) {
            Some(net) if !self.guests.values().any(|s| unixscope::same_namespace(&s.net, &net)) => std::fs::File::from(net),
            // None found (a fakeinit guest's, or the patched kernel's,
            // where the host may not take its init's descriptors): a fresh
            // one; what the guest made before and what enters it now then
            // share no names.
            _ => unixscope::new_namespace(&self.host).map_err(|e| {
                if nix::sched::setns(&self.host, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                    std::process::exit(1); // stuck in the guest's namespace
                }
                e.to_string()
            })?,
        };
        // What `status` tells: processes older than this make no unix
        // sockets any more.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let _ = sys::setxattr(dir, crate::context::XATTR_ADOPTED, now.to_string().as_bytes());
        // Bound anew (listening already, as `start` binds it).
        let ctl = bind(&watched.guest, dir).map_err(|e| e.to_string())?;
        watched.ctl_stamp = std::fs::metadata(socket_path(&watched.guest))
            .map(|m| stamp(&m))
            .map_err(|e| e.to_string())?;
        let init = Init {
            pid: Pid::from_raw(pid as i32),
            pidfd,
            status,
            rebooting: None,
        };
        self.serve(Served::new(watched, (ns_dev, ns_ino), net, ctl, None, Some(init)));
        Ok(())
    }
}

/// The read end of the init's status pipe (its descriptor 3, where vsbox's
/// init keeps it; a fakeinit guest's init has closed it), opened anew
/// through /proc: a pipe, or nothing.
fn status_pipe(pid: Pid, ino: u64) -> Option<OwnedFd> {
    use nix::fcntl::{open, OFlag};
    use nix::sys::stat::{fstat, Mode, SFlag};
    let fd = format!("/proc/{pid}/fd/3");
    // The pipe `start` made, none the guest put there (a fakeinit guest's
    // own init has closed it).
    if !std::fs::read_link(&fd).is_ok_and(|l| l.as_os_str() == format!("pipe:[{ino}]").as_str()) {
        return None;
    }
    // Never blocking: not on open (a FIFO's), nor on a read the guest
    // could make wait for ever, which would stall every guest.
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY;
    let f = sys::adopt_fd(open(fd.as_str(), flags, Mode::empty()).ok()?);
    let st = fstat(f.as_raw_fd()).ok()?;
    (SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFIFO && st.st_ino == ino).then_some(f)
}

/// The context directory `dir`, opened and locked (flock, not waiting):
/// whoever cleans up after a guest holds it, so that a watcher adopting
/// meanwhile leaves the context to it. None when it is held already, or
/// gone.
fn claim(dir: &Path) -> Option<OwnedFd> {
    let f = OwnedFd::from(std::fs::File::open(dir).ok()?);
    sys::flock_exclusive_nb(&f).ok().map(|()| f)
}

/// A guest the watcher no longer serves.
impl Watched {
    /// Removes its control socket.
    fn forget(&self) {
        remove_socket(&self.guest, self.ctl_stamp);
    }

    /// For a started guest, whose init ended: once its context is empty,
    /// in a process of its own (`vsbox-cleanup NAME`, holding `claim`, the
    /// context's lock), reads whether it asked to restart (`rebooting`, or
    /// its status pipe), forgets it and runs lifecycle.rs's `after_end`. A
    /// fresh context is only forgotten.
    fn clean_up(self, claim: OwnedFd, status: Option<OwnedFd>, rebooting: Option<bool>) {
        if self.kind == Kind::Fresh {
            return self.forget();
        }
        let title = format!("vsbox-cleanup {}", self.guest.name);
        let name = self.guest.name.clone();
        let mut keep = vec![claim];
        keep.extend(status);
        let done = crate::kernel::process::detached(&title, keep, move |mut fds| {
            let status = (fds.len() > 1).then(|| fds.pop()).flatten();
            // The init's end is certain to be seen (a cgroup's last
            // notification may be lost when it is removed at once); the
            // kernel has ended the rest of its PID namespace by then, so
            // every writer has ended: the byte is there, or EOF.
            crate::kernel::cgroup::wait_empty(&self.dir, None);
            let reboot = rebooting.unwrap_or_else(|| status.and_then(|s| read_rebooting(&s, &self.dir)).unwrap_or(false));
            // Before the restart, which binds a new socket there (whose
            // inode could be this one's number again).
            self.forget();
            crate::guest::lifecycle::after_end(&self.guest, &self.dir, self.dir_ino, self.xid, reboot);
        });
        if let Err(e) = done {
            crate::syslog::log(
                crate::syslog::Level::Err,
                "vsbox-watch",
                &format!("clean up after server {name}: {}", e.desc()),
            );
        }
    }
}

/// Raises this process's descriptor limit to the most it may have:
/// fs.nr_open, as root.
fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let most = crate::sys::read_text("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let hard = most.map_or(hard, |m| m.max(hard));
        if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
            let _ = getrlimit(Resource::RLIMIT_NOFILE).map(|(_, h)| setrlimit(Resource::RLIMIT_NOFILE, h, h));
        }
    }
}

/// Removes the guest's control socket if it is still the one bound for it
/// (inode `ino`).
fn remove_socket(g: &Guest, ino: u64) {
    let path = socket_path(g);
    if std::fs::metadata(&path).is_ok_and(|m| stamp(&m) == ino) {
        let _ = std::fs::remove_file(&path);
    }
}

/// Removes the guest's control socket if nothing listens there (its
/// watcher was killed): for `stop`, under the guest's lock.
pub fn remove_unserved_socket(g: &Guest) {
    let path = socket_path(g);
    let refused = std::os::unix::net::UnixStream::connect(&path)
        .err()
        .is_some_and(|e| e.raw_os_error() == Some(libc::ECONNREFUSED));
    if refused {
        let _ = std::fs::remove_file(&path);
    }
}

/// What tells one socket file from another bound at the same path later:
/// its inode number with its change time (a file system gives a freed
/// inode's number to the next file made, as a restarted guest's socket).
fn stamp(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let ctime = (m.ctime() as u64).wrapping_mul(1_000_000_000).wrapping_add(m.ctime_nsec() as u64);
    m.ino().wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ctime
}

/// Only root's processes register guests or hand over their filters.
fn peer_is_root(c: &OwnedFd) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    getsockopt(c, PeerCredentials).is_ok_and(|p| p.uid() == 0)
}

/// The cgroup layout (mountinfo), read once for all the sysinfo calls.
fn layout() -> Option<&'static crate::kernel::cgroup::Layout> {
    static LAYOUT: std::sync::OnceLock<Option<crate::kernel::cgroup::Layout>> = std::sync::OnceLock::new();
    LAYOUT.get_or_init(|| crate::kernel::cgroup::Layout::detect().ok()).as_ref()
}

impl Served {
    fn new(watched: Watched, userns: (u64, u64), net: std::fs::File, ctl: OwnedFd, link: Option<OwnedFd>, init: Option<Init>) -> Served {
        Served {
            watched,
            userns,
            net,
            ctl,
            link,
            init,
            conns: Vec::new(),
            listeners: Vec::new(),
            apart: Vec::new(),
            paused: false,
        }
    }

    /// The context's id on the patched kernel, whose host (context 0)
    /// cannot see the guest's processes: what needs to see them (a
    /// caller's memory and status, signalling its init) is answered from
    /// a child that joins the context.
    fn native(&self) -> Option<u32> {
        native::available().then_some(self.watched.xid)
    }

    /// Its descriptors to poll, and what each is.
    fn polled(&self) -> Vec<(What, std::os::fd::BorrowedFd<'_>)> {
        let mut v = vec![(What::Ctl, self.ctl.as_fd())];
        v.extend(self.link.iter().map(|l| (What::Link, l.as_fd())));
        if let Some(i) = &self.init {
            v.push((What::Init, i.pidfd.as_fd()));
            // The init's status pipe, until it has said whether it
            // restarts; only once `start` has closed the link: until then
            // its first byte, the end of start-up, is `start`'s.
            if let Some(s) = i.status.as_ref().filter(|_| i.rebooting.is_none() && self.link.is_none()) {
                v.push((What::Status, s.as_fd()));
            }
        }
        v.extend(self.conns.iter().enumerate().map(|(j, c)| (What::Conn(j), c.as_fd())));
        if !self.paused {
            v.extend(self.listeners.iter().enumerate().map(|(j, l)| (What::Listener(j), l.as_fd())));
        }
        v.extend(self.apart.iter().enumerate().map(|(j, a)| (What::Apart(j), a.pidfd.as_fd())));
        v
    }

    /// Handles what was ready; true when the guest has ended: its init
    /// ended, or `start` gave up (closed its link) before naming one. What
    /// it watches changes with it: `ep` holds [`polled`](Self::polled)
    /// under `key`.
    fn step(&mut self, ready: &[(What, PollFlags)], host: &std::fs::File, ep: &Epoll, key: u64) -> bool {
        let is_ready = |w: What| ready.iter().any(|(x, _)| *x == w);
        if is_ready(What::Status) {
            if let Some(i) = self.init.as_mut() {
                i.rebooting = match i.status.as_ref() {
                    Some(s) => read_rebooting(s, &self.watched.dir),
                    None => Some(false),
                };
                if let (Some(s), Some(_)) = (&i.status, i.rebooting) {
                    unwatch(ep, s.as_fd());
                }
            }
        }
        if is_ready(What::Init) {
            return true;
        }
        if is_ready(What::Link) {
            match self.link.as_ref().and_then(|l| receive(l, 16)) {
                Some((msg, mut got)) if msg.len() == 5 && msg[0] == INIT && !got.is_empty() && self.init.is_none() => {
                    let pid = Pid::from_raw(i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]));
                    let status = (got.len() == 2).then(|| got.pop()).flatten();
                    if let Some(pidfd) = got.pop() {
                        watch(ep, pidfd.as_fd(), key);
                        self.init = Some(Init {
                            pid,
                            pidfd,
                            status,
                            rebooting: None,
                        });
                    }
                }
                _ if self.init.is_none() => return true,
                _ => {
                    if let Some(l) = self.link.take() {
                        unwatch(ep, l.as_fd());
                    }
                    // Start-up is over: the status pipe is the watcher's.
                    if let Some(s) = self.init.as_ref().filter(|i| i.rebooting.is_none()).and_then(|i| i.status.as_ref()) {
                        watch(ep, s.as_fd(), key);
                    }
                }
            }
        }
        // Answers given apart that have ended; from the last, so removing
        // one keeps the others' indices.
        for (what, _) in ready.iter().rev() {
            let What::Apart(j) = *what else { continue };
            let a = self.apart.remove(j);
            unwatch(ep, a.pidfd.as_fd());
            let _ = nix::sys::wait::waitpid(a.pid, None);
        }
        // The calls waiting, one on each ready listener.
        for (what, r) in ready.iter().rev() {
            let What::Listener(j) = *what else { continue };
            // POLLHUP: no process uses its filter any more.
            let done = if r.contains(PollFlags::POLLIN) {
                match self.answer(&self.listeners[j], host) {
                    Answered::Here => false,
                    Answered::Apart(a) => {
                        watch(ep, a.pidfd.as_fd(), key);
                        self.apart.push(a);
                        false
                    }
                    Answered::Gone => true,
                }
            } else {
                true
            };
            if done {
                if !self.paused {
                    unwatch(ep, self.listeners[j].as_fd());
                }
                self.listeners.remove(j);
            }
        }
        self.pace(ep, key);
        for (what, _) in ready.iter().rev() {
            let What::Conn(j) = *what else { continue };
            let c = self.conns.remove(j);
            unwatch(ep, c.as_fd());
            if let Some((msg, mut got)) = receive(&c, 16) {
                if let Some(l) = got.pop().filter(|l| msg == [unixscope::LISTENER] && sys::is_seccomp_listener(l)) {
                    if !self.paused {
                        watch(ep, l.as_fd(), key);
                    }
                    self.listeners.push(l);
                }
            }
        }
        if is_ready(What::Ctl) {
            use nix::sys::socket::{accept4, SockFlag};
            if let Ok(fd) = accept4(self.ctl.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                let c = sys::adopt_fd(fd);
                if peer_is_root(&c) {
                    watch(ep, c.as_fd(), key);
                    self.conns.push(c);
                }
            }
        }
        false
    }

    /// Pauses its listeners while [`MAX_APART`] answers are under way, and
    /// watches them again once fewer are.
    fn pace(&mut self, ep: &Epoll, key: u64) {
        let busy = self.apart.len() >= MAX_APART;
        if busy != self.paused {
            for l in &self.listeners {
                match busy {
                    true => unwatch(ep, l.as_fd()),
                    false => watch(ep, l.as_fd(), key),
                }
            }
            self.paused = busy;
        }
    }

    /// Gives up the answers under way past their time: the child killed,
    /// the call refused (EFAULT); the child is reaped when it has ended.
    fn expire(&mut self, now: std::time::Instant) {
        for a in self.apart.iter_mut().filter(|a| !a.given_up && a.deadline <= now) {
            let _ = nix::sys::signal::kill(a.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = sys::seccomp_answer(&a.listener, a.id, libc::EFAULT);
            a.given_up = true;
        }
    }

    /// Ends the answers under way (the guest has ended).
    fn end_apart(&mut self) {
        for a in self.apart.drain(..) {
            let _ = nix::sys::signal::kill(a.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(a.pid, None);
        }
    }

    /// Answers the call waiting on `listener`. A unix socket(2) is made
    /// here, in the guest's own network namespace: it needs neither the
    /// caller's memory nor sight of it. Everything else is answered
    /// [`apart`](Self::apart).
    fn answer(&self, listener: &OwnedFd, host: &std::fs::File) -> Answered {
        use crate::kernel::seccomp::{supervised_call, Supervised};
        use nix::sched::{setns, CloneFlags};
        let n = match sys::seccomp_recv(listener) {
            Ok(n) => n,
            // The caller went away meanwhile (ENOENT), or a signal.
            Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EINTR) => return Answered::Here,
            Err(_) => return Answered::Gone,
        };
        if supervised_call(&n) != Supervised::Socket {
            return self.apart(listener, &n, host).map_or(Answered::Here, Answered::Apart);
        }
        // Never a socket of the host's namespace for the guest.
        if setns(&self.net, CloneFlags::CLONE_NEWNET).is_err() {
            let _ = sys::seccomp_answer(listener, n.id, libc::ENOSYS);
            return Answered::Here;
        }
        unixscope::answer_socket(listener, &n);
        if setns(host, CloneFlags::CLONE_NEWNET).is_err() {
            // Stuck in a guest's namespace, it could serve nobody right.
            std::process::exit(1);
        }
        Answered::Here
    }

    /// Answers call `n` from a child, which the watcher does not wait for:
    /// what it does may wait on the guest (the caller's memory can be a
    /// FUSE file's or userfaultfd's pages, or slow to reach while the
    /// guest churns its mappings), and the one watcher of every guest must
    /// never wait on one. The child works in the guest's cgroups (its CPU,
    /// memory and process limits pay for it), on the patched kernel in its
    /// context too (to see the caller and signal its init), and is given
    /// up after [`APART_LIMIT`] (killed, the call refused with EFAULT).
    fn apart(&self, listener: &OwnedFd, n: &sys::SeccompNotif, host: &std::fs::File) -> Option<Apart> {
        use nix::sys::signal::Signal;
        let copy = match listener.try_clone() {
            Ok(c) => c,
            Err(e) => {
                let _ = sys::seccomp_answer(listener, n.id, e.raw_os_error().unwrap_or(libc::EMFILE));
                return None;
            }
        };
        match sys::fork() {
            Ok(sys::Forked::Child) => {
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                // Charged to the guest; at its process limit, refused as a
                // fork there would be.
                if std::fs::write(self.watched.dir.join("cgroup.procs"), "0").is_err() {
                    let _ = sys::seccomp_answer(listener, n.id, libc::EAGAIN);
                    std::process::exit(1);
                }
                if let Some(layout) = layout() {
                    for d in layout.v1_places(&self.watched.dir) {
                        let _ = std::fs::write(d.join("cgroup.procs"), "0");
                    }
                }
                if let Some(Err(e)) = self.native().map(native::join) {
                    crate::syslog::log(
                        crate::syslog::Level::Err,
                        "vsbox-watch",
                        &format!("server {}: {e}", self.watched.guest.name),
                    );
                    let _ = sys::seccomp_answer(listener, n.id, libc::ENOSYS);
                    std::process::exit(1);
                }
                let raw = unixscope::RawScope {
                    net: host,
                    cgroup: &self.watched.dir,
                    userns: self.userns,
                };
                dispatch(listener, n, &self.net, self.init.as_ref(), &raw);
                std::process::exit(0)
            }
            Ok(sys::Forked::Parent(child)) => match sys::pidfd_open(child) {
                Ok(pidfd) => Some(Apart {
                    pid: child,
                    pidfd,
                    id: n.id,
                    listener: copy,
                    deadline: std::time::Instant::now() + APART_LIMIT,
                    given_up: false,
                }),
                Err(_) => {
                    // Not to be watched: waited for here (it answers alone).
                    let _ = nix::sys::wait::waitpid(child, None);
                    None
                }
            },
            Err(e) => {
                let _ = sys::seccomp_answer(listener, n.id, e as i32);
                None
            }
        }
    }
}

/// What became of a call on a listener.
enum Answered {
    /// Answered (or its caller gone).
    Here,
    /// Under way in a child.
    Apart(Apart),
    /// The listener is of no more use.
    Gone,
}

/// How long an answer given [`apart`](Served::apart) may take.
const APART_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the init's status byte: whether it is restarting (EOF: it is
/// not). Until the server is up again, a command entering it waits for it
/// (lifecycle.rs) instead of taking the stopped server over.
///
/// None when nothing is there yet (EAGAIN: an adopted guest's pipe is
/// read without blocking).
fn read_rebooting(status: &OwnedFd, cgroup: &Path) -> Option<bool> {
    let mut b = [0u8; 1];
    let rebooting = match nix::unistd::read(status.as_raw_fd(), &mut b) {
        Ok(1) => b[0] == init::REBOOTING,
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return None,
        _ => false,
    };
    if rebooting {
        let _ = sys::setxattr(cgroup, crate::context::XATTR_RESTARTING, b"1");
    }
    Some(rebooting)
}

/// Answers supervised call `n` (not a unix socket(2)): a socketpair(2)
/// (made in the guest's network namespace `net`), a raw or packet socket,
/// sysinfo(2), or a reboot(2), which asks the init to restart or stop as
/// vreboot and vhalt do. In a child of the watcher (see `apart`).
fn dispatch(listener: &OwnedFd, n: &sys::SeccompNotif, net: &std::fs::File, init: Option<&Init>, raw: &unixscope::RawScope) {
    use crate::kernel::seccomp::{supervised_call, Supervised};
    match supervised_call(n) {
        Supervised::Socket | Supervised::SocketPair => match nix::sched::setns(net, nix::sched::CloneFlags::CLONE_NEWNET) {
            Ok(()) => unixscope::answer_socket(listener, n),
            Err(_) => {
                let _ = sys::seccomp_answer(listener, n.id, libc::ENOSYS);
            }
        },
        Supervised::RawSocket => unixscope::answer_raw(listener, n, raw),
        Supervised::Sysinfo => match layout() {
            Some(layout) => crate::kernel::sysinfo::answer(listener, n, layout, raw.cgroup, init.map(|i| i.pid.as_raw() as u32)),
            None => {
                let _ = sys::seccomp_answer(listener, n.id, libc::ENOSYS);
            }
        },
        Supervised::Reboot | Supervised::Other => {
            let reboot = supervised_call(n) == Supervised::Reboot;
            let Some(i) = init.filter(|_| reboot) else {
                // No init named yet: the guest is starting.
                let _ = sys::seccomp_answer(listener, n.id, if reboot { libc::EBUSY } else { libc::ENOSYS });
                return;
            };
            let (errno, event) = init::reboot_request(n, &PathBuf::from(format!("/proc/{}/ns/user", i.pid)));
            let _ = sys::seccomp_answer(listener, n.id, errno);
            let rt = match event {
                Some(init::Event::Restart) => init::RT_REBOOT,
                Some(init::Event::Stop) => init::RT_HALT,
                _ => return,
            };
            let _ = sys::pidfd_send_signal(&i.pidfd, sys::sigrtmin() + rt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, conf: &str) -> Registration {
        Registration {
            watched: Watched {
                kind: Kind::Boot,
                guest: Guest {
                    name: name.to_owned(),
                    conf: PathBuf::from(conf),
                    root: PathBuf::from("/vservers/a b"),
                    hook: PathBuf::from("/etc/vservers/a\n.sh"),
                },
                dir: PathBuf::from("/sys/fs/cgroup/vsbox/42"),
                dir_ino: 7,
                ctl_stamp: u64::MAX,
                xid: 42,
            },
            userns: (3, 4026531837),
        }
    }

    #[test]
    fn a_registration_reads_back_as_it_was_written() {
        for r in [sample("a", "/etc/vservers/a.conf"), sample("x.y_z-1", "/\u{e9}t\u{e9}/x.conf")] {
            assert_eq!(Registration::decode(&r.encode()), Some(r));
        }
        let mut fresh = sample("f", "/c");
        fresh.watched.kind = Kind::Fresh;
        assert_eq!(Registration::decode(&fresh.encode()), Some(fresh));
    }

    #[test]
    fn a_malformed_registration_is_refused() {
        let good = sample("a", "/etc/vservers/a.conf").encode();
        let cut = &good[..good.len() - 3];
        let extra = [good.as_slice(), b"\x001"].concat();
        let kind = [b"halt".as_slice(), &good[4..]].concat();
        let number = String::from_utf8_lossy(&good).replace("\x0042\x00", "\x00-1\x00");
        for bad in [&b""[..], b"boot", cut, &extra, &kind, number.as_bytes()] {
            // `cut` still parses when the last number is only shorter.
            let got = Registration::decode(bad);
            assert!(got.is_none() || bad == cut, "{:?} -> {got:?}", String::from_utf8_lossy(bad));
        }
        assert_ne!(Registration::decode(cut), Some(sample("a", "/etc/vservers/a.conf")));
    }
}
