//! rebootmgr: serve /dev/reboot in virtual servers, restarting or stopping
//! each on its own request.
//! See: man/rebootmgr.8; the original: vserver-reference.md §1.12.
//!
//! A single-threaded loop: every second it (re)creates the socket of each
//! running server (a restarted server has a new /dev), and it answers
//! exactly `reboot\n` and `halt\n`; anything else is logged and dropped,
//! and a flood of connections is cut off.

use crate::applet::{self, Applet};
use crate::error::Result;
use crate::guest::{self, Guest};
use crate::reboot::{self, Request};
use argh::FromArgs;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::collections::HashMap;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Serve /dev/reboot in virtual servers and restart or stop them on request.
#[derive(FromArgs)]
#[argh(example = "rebootmgr\nrebootmgr web mail")]
pub struct Args {
    /// the servers to serve (default: every server with a configuration)
    #[argh(positional)]
    pub names: Vec<String>,
}

pub const APPLET: Applet = Applet {
    name: "rebootmgr",
    summary: "serve /dev/reboot in virtual servers and restart or stop them on request",
    aliases: &[],
    runs_command: false,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

struct Served {
    listener: UnixListener,
    init: u32,
}

struct Conn {
    name: String,
    stream: UnixStream,
    data: Vec<u8>,
    until: Instant,
}

/// The running server's init (host pid).
fn init_of(g: &Guest, reg: &crate::context::Registry) -> Option<u32> {
    let (_, dir) = g.running(reg)?;
    crate::vserver::init_pid(&dir)
}

fn act(g: &Guest, init: u32, req: Request, busy: &mut HashMap<String, std::process::Child>) {
    if busy.get_mut(&g.name).is_some_and(|c| c.try_wait().ok().flatten().is_none()) {
        eprintln!("rebootmgr: {} is busy; request ignored", g.name);
        return;
    }
    let ours = std::fs::read_to_string(format!("/proc/{init}/comm")).is_ok_and(|c| c.trim() == "vsbox-init");
    if req == Request::Reboot && ours {
        eprintln!("rebootmgr: reboot vserver {}", g.name);
        let _ = crate::sys::kill_raw(nix::unistd::Pid::from_raw(init as i32), crate::sys::sigrtmin() + crate::init::RT_REBOOT);
        return;
    }
    let action = if req == Request::Reboot { "restart" } else { "stop" };
    eprintln!("rebootmgr: {action} vserver {}", g.name);
    use std::os::unix::process::CommandExt;
    match std::process::Command::new("/proc/self/exe").arg0("vserver").args([g.name.as_str(), action]).stdin(std::process::Stdio::null()).spawn() {
        Ok(child) => {
            busy.insert(g.name.clone(), child);
        }
        Err(e) => eprintln!("rebootmgr: cannot run vserver {} {action}: {e}", g.name),
    }
}

fn run(args: Args, _name: &str) -> Result<i32> {
    for n in &args.names {
        guest::check_name(n)?;
    }
    let mut served: HashMap<String, Served> = HashMap::new();
    let mut conns: Vec<Conn> = Vec::new();
    let mut busy: HashMap<String, std::process::Child> = HashMap::new();
    let mut refreshed = Instant::now() - Duration::from_secs(10);
    loop {
        if refreshed.elapsed() >= Duration::from_secs(1) {
            refreshed = Instant::now();
            let guests: Vec<Guest> = if args.names.is_empty() { guest::all()? } else { args.names.iter().map(|n| Guest::new(n)).collect::<Result<_>>()? };
            let reg = crate::context::Registry::open()?;
            let mut seen = Vec::new();
            for g in &guests {
                let Some(init) = init_of(g, &reg) else { continue };
                seen.push(g.name.clone());
                if served.get(&g.name).is_some_and(|s| s.init == init) {
                    continue;
                }
                match reboot::listen_in(init) {
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
        let names: Vec<String> = served.keys().cloned().collect();
        let mut fds: Vec<PollFd> = names.iter().map(|n| PollFd::new(served[n].listener.as_fd(), PollFlags::POLLIN)).collect();
        fds.extend(conns.iter().map(|c| PollFd::new(c.stream.as_fd(), PollFlags::POLLIN)));
        let _ = poll(&mut fds, PollTimeout::from(500u16));
        let ready: Vec<bool> = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty())).collect();
        drop(fds);
        for (i, n) in names.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            while let Ok((stream, _)) = served[n].listener.accept() {
                let _ = stream.set_nonblocking(true);
                conns.push(Conn { name: n.clone(), stream, data: Vec::new(), until: Instant::now() + Duration::from_secs(2) });
            }
        }
        let limit = 2 * served.len().max(1) + 4;
        if conns.len() > limit {
            eprintln!("rebootmgr: {} connections open: overloaded, closing them all", conns.len());
            conns.clear();
            continue;
        }
        let mut keep = Vec::with_capacity(conns.len());
        for mut c in conns.drain(..) {
            let mut buf = [0u8; 100];
            let finished = match c.stream.read(&mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    c.data.extend_from_slice(&buf[..n]);
                    c.data.len() > 99 || c.data.ends_with(b"\n")
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
