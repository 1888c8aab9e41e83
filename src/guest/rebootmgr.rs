//! rebootmgr's server: the host side of the `/dev/reboot` protocol
//! (reboot.rs; man/rebootmgr.8; the original: vserver-reference.md §1.12).
//!
//! A single-threaded loop. Every second it (re)creates the socket of each
//! running server (a restarted server has a new /dev, so a new init pid
//! means a new socket). A request is read until its newline, 100 bytes or
//! 2 s, and only exactly `reboot\n` or `halt\n` is acted on; anything else
//! is logged and dropped. More than 2 open connections per served server
//! (plus 4) is a flood: all of them are closed. A server whose `vserver
//! restart` or `stop` still runs is busy and its requests are ignored.
//!
//! Log lines go to stderr, each starting with `rebootmgr: `.

use crate::error::Result;
use crate::guest::reboot::{self, Request};
use crate::guest::{self, Guest};
use crate::kernel::native;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Child;
use std::time::{Duration, Instant};

/// How often the served servers are looked for again.
const REFRESH: Duration = Duration::from_secs(1);
/// How long a connection may take to send its request.
const PATIENCE: Duration = Duration::from_secs(2);
/// The longest request read: longer ones are invalid.
const MAX_REQUEST: usize = 100;

struct Served {
    listener: UnixListener,
    init: Init,
}

/// A running server's init, as the host knows it.
#[derive(Clone, Copy, PartialEq)]
struct Init {
    /// Its host pid.
    pid: u32,
    /// Its context.
    xid: u32,
    /// vsbox's own init (which restarts the server itself on a signal).
    ours: bool,
}

struct Conn {
    name: String,
    stream: UnixStream,
    data: Vec<u8>,
    until: Instant,
}

/// Whether `data` is all a client will get to say: a full line, or too
/// much for any request.
fn complete(data: &[u8]) -> bool {
    data.len() >= MAX_REQUEST || data.ends_with(b"\n")
}

/// The most connections open at once while `served` servers are served.
fn flood_limit(served: usize) -> usize {
    2 * served.max(1) + 4
}

/// The running server's init. On the patched kernel, whose host is blind
/// to its guests, the spectator looks (native.rs).
fn init_of(g: &Guest, reg: &crate::context::Registry) -> Option<Init> {
    let (xid, dir) = g.running(reg)?;
    let seen = native::spectate(|| {
        let Some(pid) = guest::lifecycle::init_pid(&dir) else {
            return String::new();
        };
        let ours = crate::sys::read_text(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "vsbox-init");
        format!("{pid} {}", u8::from(ours))
    })
    .map_err(|e| eprintln!("rebootmgr: {}: cannot find its init: {e}", g.name))
    .ok()?;
    let (pid, ours) = seen.split_once(' ')?;
    Some(Init {
        pid: pid.parse().ok()?,
        xid,
        ours: ours == "1",
    })
}

/// The listening `/dev/reboot` of the server whose init is `init`, made
/// (reboot.rs) here or by the spectator, who hands it over.
fn listen(init: u32) -> Result<UnixListener> {
    let (_, mut fds) = native::spectate_fds("create the server's /dev/reboot", || {
        reboot::listen_in(init)
            .map(|l| (String::new(), vec![l.into()]))
            .map_err(|e| e.to_string())
    })?;
    let fd = fds
        .pop()
        .ok_or_else(|| crate::error::Error::failed("create the server's /dev/reboot", "no socket came back"))?;
    Ok(UnixListener::from(fd))
}

/// Carries out `req` for server `g`, whose init is `init`: vsbox's init
/// restarts the guest itself on a signal; any other init is restarted or
/// stopped by `vserver NAME restart|stop`, run in the background.
fn act(g: &Guest, init: Init, req: Request, busy: &mut HashMap<String, Child>) {
    if busy.get_mut(&g.name).is_some_and(|c| c.try_wait().ok().flatten().is_none()) {
        eprintln!("rebootmgr: {} is busy; request ignored", g.name);
        return;
    }
    if req == Request::Reboot && init.ours {
        eprintln!("rebootmgr: reboot vserver {}", g.name);
        // From inside its context on the patched kernel.
        let sent = native::within(init.xid, || {
            let sig = crate::sys::sigrtmin() + crate::context::init::RT_REBOOT;
            match crate::sys::kill_raw(nix::unistd::Pid::from_raw(init.pid as i32), sig) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("rebootmgr: {}: cannot signal its init: {}", g.name, e.desc());
                    1
                }
            }
        });
        if let Err(e) = sent {
            eprintln!("rebootmgr: {}: cannot signal its init: {e}", g.name);
        }
        return;
    }
    let action = if req == Request::Reboot { "restart" } else { "stop" };
    eprintln!("rebootmgr: {action} vserver {}", g.name);
    use std::os::unix::process::CommandExt;
    match std::process::Command::new("/proc/self/exe")
        .arg0("vserver")
        .args([g.name.as_str(), action])
        .stdin(std::process::Stdio::null())
        .spawn()
    {
        Ok(child) => {
            busy.insert(g.name.clone(), child);
        }
        Err(e) => eprintln!("rebootmgr: cannot run vserver {} {action}: {e}", g.name),
    }
}

/// Serves `/dev/reboot` in the servers `names` (every server with a
/// configuration when empty) until an error: a bad name (usage), or a
/// configuration directory or context registry that cannot be read.
pub fn serve(names: &[String]) -> Result<Infallible> {
    for n in names {
        guest::check_name(n)?;
    }
    let mut served: HashMap<String, Served> = HashMap::new();
    let mut conns: Vec<Conn> = Vec::new();
    let mut busy: HashMap<String, Child> = HashMap::new();
    let mut refreshed = Instant::now() - Duration::from_secs(10);
    loop {
        if refreshed.elapsed() >= REFRESH {
            refreshed = Instant::now();
            let guests: Vec<Guest> = if names.is_empty() {
                guest::all()?
            } else {
                names.iter().map(|n| Guest::new(n)).collect::<Result<_>>()?
            };
            let reg = crate::context::Registry::open()?;
            let mut seen = Vec::new();
            for g in &guests {
                let Some(init) = init_of(g, &reg) else { continue };
                seen.push(g.name.clone());
                if served.get(&g.name).is_some_and(|s| s.init == init) {
                    continue;
                }
                match listen(init.pid) {
                    Ok(listener) => {
                        eprintln!("rebootmgr: serving {}", g.name);
                        served.insert(g.name.clone(), Served { listener, init });
                    }
                    Err(e) => eprintln!("rebootmgr: {}: {e}", g.name),
                }
            }
            served.retain(|n, _| seen.contains(n));
            busy.retain(|_, c| c.try_wait().ok().flatten().is_none());
        }
        // Wait for a connection, a request, or the next refresh.
        let listening: Vec<String> = served.keys().cloned().collect();
        let mut fds: Vec<PollFd> = listening
            .iter()
            .map(|n| PollFd::new(served[n].listener.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.extend(conns.iter().map(|c| PollFd::new(c.stream.as_fd(), PollFlags::POLLIN)));
        let _ = poll(&mut fds, PollTimeout::from(500u16));
        let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);
        for (i, n) in listening.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            while let Ok((stream, _)) = served[n].listener.accept() {
                let _ = stream.set_nonblocking(true);
                conns.push(Conn {
                    name: n.clone(),
                    stream,
                    data: Vec::new(),
                    until: Instant::now() + PATIENCE,
                });
            }
        }
        if conns.len() > flood_limit(served.len()) {
            eprintln!("rebootmgr: {} connections open: overloaded, closing them all", conns.len());
            conns.clear();
            continue;
        }
        let mut keep = Vec::with_capacity(conns.len());
        for mut c in conns.drain(..) {
            let mut buf = [0u8; MAX_REQUEST];
            let finished = match c.stream.read(&mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    c.data.extend_from_slice(&buf[..n]);
                    complete(&c.data)
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Instant::now() > c.until,
                Err(_) => true,
            };
            if !finished {
                keep.push(c);
                continue;
            }
            match (Request::parse(&c.data), served.get(&c.name)) {
                (Some(req), Some(s)) => {
                    let g = Guest::new(&c.name)?;
                    act(&g, s.init, req, &mut busy);
                }
                _ => eprintln!("rebootmgr: invalid request from vserver {}", c.name),
            }
        }
        conns = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_ends_at_its_newline_or_its_size() {
        assert!(complete(b"reboot\n"));
        assert!(complete(b"halt\nhalt\n"));
        assert!(!complete(b"reb"));
        assert!(!complete(b""));
        assert!(!complete(&[b'x'; 99]));
        assert!(complete(&[b'x'; 100]));
    }

    #[test]
    fn a_flood_is_a_few_connections_per_server() {
        assert_eq!(flood_limit(0), 6);
        assert_eq!(flood_limit(1), 6);
        assert_eq!(flood_limit(3), 10);
    }
}
