//! A running guest's supervisor: the host process `vsbox-watch NAME` that
//! `vserver start` leaves behind. It lives in a network namespace of the
//! guest's own that holds only the guest's unix sockets, and answers the
//! supervised calls (kernel/seccomp.rs, `supervised_listener`) of every
//! process in the guest: each unix socket they make is made there
//! (kernel/unixscope.rs), so the abstract names they bind and connect to
//! are the guest's alone, both ways; a reboot(2) asks the guest's init to
//! restart or stop, as vreboot does. When the init ends it cleans up
//! (lifecycle.rs, `watch`).
//!
//! Processes that enter the guest later (exec, enter, suexec, service)
//! connect to it at `RUNDIR/NAME.sock` (root's only) before they enter,
//! and hand over their listener as their plan installs it; `start` names
//! the init over a link of its own. Should the supervisor die, the
//! guest's unix socket calls fail (ENOSYS) rather than reach the host's.

use crate::context::init;
use crate::error::{Context, Error, Result};
use crate::guest::Guest;
use crate::kernel::native;
use crate::kernel::unixscope::{self, Answered};
use crate::paths;
use crate::sys;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
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
                "its supervisor (vsbox-watch {}, {}) is not running — started by an older vsbox, or killed: restart the server",
                g.name,
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

/// Leaves a supervisor on the host for the guest's context `dir`, named
/// `title`, in a network namespace of the guest's own: it serves the
/// context's processes ([`serve`]) until the init `start` names over the
/// returned link ends — and, when that init has a status pipe, until the
/// context is empty — then removes the control socket it was bound to
/// (unless something bound another there meanwhile) and runs `then`,
/// back in the host's network namespace, with whether the init asked to
/// be restarted (its REBOOTING byte). Gives that link and a connection for
/// the context's first process to hand its filter over.
///
/// On the patched kernel, whose host is blind to its guests, the serving
/// half is a child that joins the kernel's context `xid` (see [`serve`])
/// and tells how it ended by its exit code; `then` runs in the host's.
pub fn spawn(
    g: &Guest,
    dir: &Path,
    userns: Option<&OwnedFd>,
    xid: u32,
    title: &str,
    then: impl FnOnce(bool),
) -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::unix::fs::MetadataExt;
    let ctl = bind(g, dir)?;
    let path = socket_path(g);
    let ctl_ino = std::fs::metadata(&path)
        .map(|m| m.ino())
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
    crate::kernel::process::detached(title, vec![ctl, theirs], |mut fds| {
        let (Some(link), Some(ctl)) = (fds.pop(), fds.pop()) else { return };
        let ended = if native::available() {
            let host_half = nix::unistd::getpid();
            match sys::fork() {
                Ok(sys::Forked::Child) => {
                    // One supervisor: killing the `vsbox-watch NAME` the
                    // host sees ends the half it cannot see too (the
                    // patch lets this signal cross into the context).
                    let tied = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
                    if tied.is_err() || nix::unistd::getppid() != host_half {
                        std::process::exit(NOT_SERVED);
                    }
                    let ended = serve_until_ended(ctl, link, dir, userns, Some(xid));
                    std::process::exit(match ended {
                        Ok(Some(false)) => SERVED,
                        Ok(Some(true)) => SERVED_REBOOT,
                        Ok(None) => NOT_SERVED,
                        Err(e) => {
                            crate::syslog::log(crate::syslog::Level::Err, title, &format!("server {}: {e}", g.name));
                            NOT_SERVED
                        }
                    })
                }
                Ok(sys::Forked::Parent(child)) => {
                    drop((ctl, link));
                    sys::release_own_text();
                    sys::release_unused_stack();
                    match sys::wait_for(child) {
                        SERVED => Some(false),
                        SERVED_REBOOT => Some(true),
                        _ => None,
                    }
                }
                Err(_) => None,
            }
        } else {
            serve_until_ended(ctl, link, dir, userns, None).unwrap_or_else(|e| {
                crate::syslog::log(crate::syslog::Level::Err, title, &format!("server {}: {e}", g.name));
                None
            })
        };
        // Before `then`, which may start the guest again and bind a new
        // socket there (whose inode could be this one's number again).
        if std::fs::metadata(&path).is_ok_and(|m| m.ino() == ctl_ino) {
            let _ = std::fs::remove_file(&path);
        }
        if let Some(reboot) = ended {
            then(reboot);
        }
    })
    .ctx(|| format!("start the supervisor of server {}", g.name))?;
    Ok((link, connect(g)?))
}

/// The serving half's exit codes.
const SERVED: i32 = 0;
const SERVED_REBOOT: i32 = 1;
const NOT_SERVED: i32 = 2;

/// Serves in the guest's own network namespace until the init ends; with
/// its status pipe, waits for the context to empty and gives whether it
/// asked to be restarted. None when `start` gave up before naming an
/// init; Err without a namespace (then nothing takes the first process's
/// filter, and it does not start).
fn serve_until_ended(
    ctl: OwnedFd,
    link: OwnedFd,
    dir: &Path,
    userns: (u64, u64),
    native: Option<u32>,
) -> std::result::Result<Option<bool>, String> {
    let host = unixscope::own_namespace().map_err(|e| e.to_string())?;
    let raw = unixscope::RawScope {
        net: &host,
        cgroup: dir,
        userns,
    };
    let init = serve(ctl, link, &raw, native);
    let _ = unixscope::leave_namespace(&host);
    let Some(init) = init else { return Ok(None) };
    if init.status.is_none() {
        return Ok(Some(false)); // a fresh context's PID 1
    }
    // The init's end is certain to be seen (a cgroup's last notification
    // may be lost when it is removed at once); the kernel has ended the
    // rest of its PID namespace by then, so every writer has ended: the
    // byte is there, or EOF.
    crate::kernel::cgroup::wait_empty(dir, None);
    Ok(Some(init.rebooting.unwrap_or_else(|| read_rebooting(&init, dir))))
}

/// For a fresh context (`exec` or `enter` into a stopped guest):
/// `vsbox-sockets NAME`, serving it as `vsbox-watch` serves a running
/// guest (at the same control socket, for what enters the fresh context
/// meanwhile) until its PID 1 ends.
pub fn fresh(g: &Guest, dir: &Path, userns: Option<&OwnedFd>, xid: u32) -> Result<(OwnedFd, OwnedFd)> {
    spawn(g, dir, userns, xid, &format!("vsbox-sockets {}", g.name), drop)
}

/// One message and its descriptors; None at the end of the stream. Room
/// for as many as one message can carry (SCM_MAX_FD, 253), so none is
/// ever installed here and then lost to a cut-off control message.
fn receive(fd: &OwnedFd) -> Option<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = [0u8; 16];
    let mut space = nix::cmsg_space!([RawFd; 253]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(fd.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).ok()?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(got) = c {
            fds.extend(got.into_iter().map(sys::adopt_fd));
        }
    }
    let n = msg.bytes;
    (n > 0).then(|| (buf[..n].to_vec(), fds))
}

/// Serves the guest in this process (already in the guest's own network
/// namespace: unixscope::own_namespace) until its init ends, and gives
/// it; None when `start` gave up (closed `link`) before naming an init.
/// `ctl` is the bound control socket. With `native` (the context's id), it
/// joins the kernel's context as the first listener comes:
/// the guest's first process has made it by then, so that process, the
/// guest's init, is the one the kernel names (`initpid:`).
pub fn serve(ctl: OwnedFd, link: OwnedFd, raw: &unixscope::RawScope, mut native: Option<u32>) -> Option<Init> {
    use nix::sys::socket::{accept4, getsockopt, listen, sockopt::PeerCredentials, Backlog, SockFlag};
    // Small, and the guest's unix sockets fail without it: never the OOM
    // killer's choice (proc(5), oom_score_adj).
    let _ = std::fs::write("/proc/self/oom_score_adj", "-1000");
    // It only waits from now on: give back what starting it used.
    sys::release_own_text();
    sys::release_unused_stack();
    let _ = listen(&ctl, Backlog::new(64).unwrap_or(Backlog::MAXCONN));
    let mut link = Some(link);
    let mut init: Option<Init> = None;
    let mut conns: Vec<OwnedFd> = Vec::new();
    let mut listeners: Vec<OwnedFd> = Vec::new();
    loop {
        let mut fds = vec![PollFd::new(ctl.as_fd(), PollFlags::POLLIN)];
        fds.extend(link.iter().map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN)));
        fds.extend(init.iter().map(|i| PollFd::new(i.pidfd.as_fd(), PollFlags::POLLIN)));
        // The init's status pipe, until it has said whether it restarts;
        // only once `start` has closed the link: until then its first
        // byte, the end of start-up, is `start`'s.
        let status = init
            .as_ref()
            .filter(|i| i.rebooting.is_none() && link.is_none())
            .and_then(|i| i.status.as_ref());
        let watch_status = status.is_some();
        fds.extend(status.map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN)));
        fds.extend(conns.iter().map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN)));
        fds.extend(listeners.iter().map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN)));
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let ready: Vec<PollFlags> = fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect();
        drop(fds);
        let mut at = 1;
        let link_ready = link.is_some() && !ready[at].is_empty();
        at += usize::from(link.is_some());
        let init_ended = init.is_some() && !ready[at].is_empty();
        at += usize::from(init.is_some());
        if watch_status {
            if !ready[at].is_empty() {
                if let Some(i) = init.as_mut() {
                    i.rebooting = Some(read_rebooting(i, raw.cgroup));
                }
            }
            at += 1;
        }
        if init_ended {
            return init;
        }
        let (conn_ready, listener_ready) = ready[at..].split_at(conns.len());
        if link_ready {
            match link.as_ref().and_then(receive) {
                Some((msg, mut got)) if msg.len() == 5 && msg[0] == INIT && !got.is_empty() && init.is_none() => {
                    let pid = Pid::from_raw(i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]));
                    let status = (got.len() == 2).then(|| got.pop()).flatten();
                    if let Some(pidfd) = got.pop() {
                        init = Some(Init {
                            pid,
                            pidfd,
                            status,
                            rebooting: None,
                        });
                    }
                }
                _ if init.is_none() => return None,
                _ => link = None,
            }
        }
        // Then the calls waiting, one on each ready listener.
        for i in (0..listeners.len()).rev() {
            let r = listener_ready[i];
            // POLLHUP: no process uses its filter any more.
            let done = if r.contains(PollFlags::POLLIN) {
                !answer(&listeners[i], init.as_ref(), raw)
            } else {
                !r.is_empty()
            };
            if done {
                listeners.remove(i);
            }
        }
        for i in (0..conns.len()).rev() {
            if conn_ready[i].is_empty() {
                continue;
            }
            let c = conns.remove(i);
            if let Some((msg, mut got)) = receive(&c) {
                if let Some(l) = got.pop().filter(|l| msg == [unixscope::LISTENER] && is_listener(l)) {
                    // Its callers cannot be seen from the host's context.
                    if let Some(xid) = native.take() {
                        if let Err(e) = native::join(xid) {
                            crate::syslog::log(crate::syslog::Level::Err, "vsbox-watch", &e.to_string());
                        }
                    }
                    listeners.push(l);
                }
            }
        }
        if !ready[0].is_empty() {
            if let Ok(fd) = accept4(ctl.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
                let c = sys::adopt_fd(fd);
                // Only root's processes hand over their filters.
                if getsockopt(&c, PeerCredentials).is_ok_and(|p| p.uid() == 0) {
                    conns.push(c);
                }
            }
        }
    }
}

/// Reads the init's status byte: whether it is restarting (EOF: it is
/// not). Until the server is up again, a command entering it waits for it
/// (lifecycle.rs) instead of taking the stopped server over.
fn read_rebooting(i: &Init, cgroup: &Path) -> bool {
    let mut b = [0u8; 1];
    let rebooting = i
        .status
        .as_ref()
        .is_some_and(|s| nix::unistd::read(s.as_raw_fd(), &mut b) == Ok(1) && b[0] == init::REBOOTING);
    if rebooting {
        let _ = sys::setxattr(cgroup, crate::context::XATTR_RESTARTING, b"1");
    }
    rebooting
}

/// Whether `fd` is a seccomp listener (what a process entering the guest
/// hands over; anything else would be polled for ever).
fn is_listener(fd: &OwnedFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).is_ok_and(|l| l.as_os_str() == "anon_inode:seccomp notify")
}

/// Answers the call waiting on `listener`: a unix socket, a raw or packet
/// socket, or a reboot(2), which asks the init to restart or stop as
/// vreboot and vhalt do. False when the listener is of no more use.
fn answer(listener: &OwnedFd, init: Option<&Init>, raw: &unixscope::RawScope) -> bool {
    use crate::kernel::seccomp::{supervised_call, Supervised};
    let n = match unixscope::answer(listener) {
        Ok(Answered::Other(n)) if supervised_call(&n) == Supervised::RawSocket => {
            unixscope::answer_raw(listener, &n, raw);
            return true;
        }
        Ok(Answered::Other(n)) if supervised_call(&n) == Supervised::Sysinfo => {
            // The layout, read once (mountinfo) for all the calls.
            static LAYOUT: std::sync::OnceLock<Option<crate::kernel::cgroup::Layout>> = std::sync::OnceLock::new();
            match LAYOUT.get_or_init(|| crate::kernel::cgroup::Layout::detect().ok()) {
                Some(layout) => crate::kernel::sysinfo::answer(listener, &n, layout, raw.cgroup, init.map(|i| i.pid.as_raw() as u32)),
                None => {
                    let _ = sys::seccomp_answer(listener, n.id, libc::ENOSYS);
                }
            }
            return true;
        }
        Ok(Answered::Other(n)) => n,
        Ok(Answered::Done) => return true,
        // The caller went away meanwhile (ENOENT), or a signal.
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::EINTR) => return true,
        Err(_) => return false,
    };
    let reboot = supervised_call(&n) == Supervised::Reboot;
    let Some(i) = init.filter(|_| reboot) else {
        // No init named yet: the guest is starting.
        let _ = sys::seccomp_answer(listener, n.id, if reboot { libc::EBUSY } else { libc::ENOSYS });
        return true;
    };
    let (errno, event) = init::reboot_request(&n, &PathBuf::from(format!("/proc/{}/ns/user", i.pid)));
    let _ = sys::seccomp_answer(listener, n.id, errno);
    let rt = match event {
        Some(init::Event::Restart) => init::RT_REBOOT,
        Some(init::Event::Stop) => init::RT_HALT,
        _ => return true,
    };
    let _ = sys::kill_raw(i.pid, sys::sigrtmin() + rt);
    true
}
