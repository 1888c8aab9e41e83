//! Acting on many guests at once (`vservers`): which guests, in which
//! order, and running each one's `vserver NAME ACTION` as a child process
//! of this very binary — several at a time, since guests are independent —
//! with each one's output kept together.

use crate::error::{Context, Result};
use crate::guest::{self, Guest};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};

/// The outcome for one guest: its name, whether it worked, what it said.
pub struct Outcome {
    pub name: String,
    pub ok: bool,
    pub output: String,
}

/// Guests with `ONBOOT=yes`, by name; guests whose configuration does not
/// parse are reported as failures rather than skipped silently.
pub fn onboot() -> Result<(Vec<Guest>, Vec<Outcome>)> {
    let (mut yes, mut bad) = (Vec::new(), Vec::new());
    for g in guest::all()? {
        match g.config() {
            Ok(c) if c.onboot => yes.push(g),
            Ok(_) => {}
            Err(e) => bad.push(Outcome {
                name: g.name.clone(),
                ok: false,
                output: format!("{e}\n"),
            }),
        }
    }
    Ok((yes, bad))
}

/// One `vserver NAME ACTION` under way: its pidfd, and its output
/// (standard output and error on one pipe, in the order written) read as
/// it comes, until its end or the process's.
struct Running {
    index: usize,
    child: Child,
    pidfd: OwnedFd,
    output: Option<std::fs::File>,
    text: Vec<u8>,
}

fn spawn(index: usize, name: &str, action: &str, swept: bool) -> Result<Running> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe")?;
    nix::fcntl::fcntl(r.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK)).ctx(|| "fcntl")?;
    let w2 = w.try_clone().ctx(|| "dup")?;
    let mut cmd = Command::new("/proc/self/exe");
    if swept {
        cmd.env(crate::context::SWEPT, "1");
    }
    let mut child = cmd
        .arg0("vserver")
        .args([name, action])
        .stdin(Stdio::null())
        .stdout(w)
        .stderr(w2)
        .spawn()
        .ctx(|| format!("run vserver {name} {action}"))?;
    let pidfd = match crate::sys::pidfd_open(nix::unistd::Pid::from_raw(child.id() as i32)) {
        Ok(fd) => fd,
        Err(e) => {
            // Not left to run on unwatched while reported as failed.
            let _ = child.kill();
            let _ = child.wait();
            return Err(crate::error::Error::sys(format!("watch vserver {name} {action} (pidfd_open)"), e));
        }
    };
    Ok(Running {
        index,
        child,
        pidfd,
        output: Some(r.into()),
        text: Vec::new(),
    })
}

/// Reads what `r` has written so far; its end of the pipe is closed at
/// the end of its output.
fn drain(r: &mut Running) {
    use std::io::Read;
    let mut buf = [0u8; 4096];
    while let Some(out) = r.output.as_mut() {
        match out.read(&mut buf) {
            Ok(0) => r.output = None,
            Ok(n) => r.text.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return, // nothing more for now
        }
    }
}

/// Runs `vserver NAME action` for each guest, at most `jobs` at a time;
/// the outcomes in the guests' order. Whichever ends first makes room for
/// the next, so one slow server does not hold up the others' places; a
/// process it leaves holding its output (a hook's daemon) holds up
/// nothing. Stale contexts are swept once before starts, not by each.
pub fn run(guests: &[Guest], action: &str, jobs: usize) -> Result<Vec<Outcome>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let swept = action == "start" && !guests.is_empty() && crate::context::Registry::open().map(|r| r.sweep()).is_ok();
    let mut out: Vec<Option<Outcome>> = guests.iter().map(|_| None).collect();
    let failed = |i: usize, why: String| Outcome {
        name: guests[i].name.clone(),
        ok: false,
        output: why + "\n",
    };
    let mut running: Vec<Running> = Vec::new();
    // The read ends of those that ended, kept until the end: a daemon a
    // hook left with its output gets no SIGPIPE meanwhile (what it writes
    // is lost).
    let mut ended_output = Vec::new();
    let mut next = 0;
    while next < guests.len() || !running.is_empty() {
        while running.len() < jobs.max(1) && next < guests.len() {
            match spawn(next, &guests[next].name, action, swept) {
                Ok(r) => running.push(r),
                Err(e) => out[next] = Some(failed(next, e.to_string())),
            }
            next += 1;
        }
        if running.is_empty() {
            continue;
        }
        // (index in `running`, whether it is the pidfd) of each polled.
        let mut which = Vec::new();
        let ready: Vec<bool> = {
            let mut fds = Vec::new();
            for (j, r) in running.iter().enumerate() {
                fds.push(PollFd::new(r.pidfd.as_fd(), PollFlags::POLLIN));
                which.push((j, true));
                if let Some(o) = &r.output {
                    fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
                    which.push((j, false));
                }
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => fds.iter().map(|f| f.revents().is_some_and(|e| !e.is_empty())).collect(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(crate::error::Error::sys("poll the servers' output", e)),
            }
        };
        let mut ended = vec![false; running.len()];
        for (&(j, pidfd), _) in which.iter().zip(&ready).filter(|(_, &r)| r) {
            drain(&mut running[j]);
            ended[j] |= pidfd;
        }
        for j in (0..running.len()).rev().filter(|&j| ended[j]) {
            let mut r = running.remove(j);
            ended_output.extend(r.output.take());
            let i = r.index;
            out[i] = Some(match r.child.wait() {
                Ok(status) => Outcome {
                    name: guests[i].name.clone(),
                    ok: status.success(),
                    output: String::from_utf8_lossy(&r.text).into_owned(),
                },
                Err(e) => failed(i, format!("wait for vserver {}: {e}", guests[i].name)),
            });
        }
    }
    Ok(out.into_iter().flatten().collect())
}
