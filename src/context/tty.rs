//! The host side of `vserver enter`: receive the master of the guest's new
//! terminal and relay between it and ours, in raw mode, passing on window
//! size changes.

use crate::error::{Context, Error, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use std::io::IsTerminal;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

static RESIZED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    RESIZED.store(true, Ordering::Relaxed);
}

fn receive_master(sock: &OwnedFd) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg =
        recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).ctx(|| "receive the server's terminal")?;
    for c in msg.cmsgs().ctx(|| "read the control message")? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                return Ok(crate::sys::adopt_fd(fd));
            }
        }
    }
    Err(Error::failed("enter the server", "it did not hand over a terminal"))
}

/// Relays until the guest's terminal closes.
pub fn relay_from(sock: &OwnedFd) -> Result<()> {
    let master = receive_master(sock)?;
    let stdin = std::io::stdin();
    let saved = if stdin.is_terminal() {
        let t = tcgetattr(&stdin).ctx(|| "read the terminal settings")?;
        let mut raw = t.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ctx(|| "set the terminal to raw mode")?;
        let _ = crate::sys::copy_winsize(0, master.as_raw_fd());
        let _ = crate::sys::set_handler(nix::sys::signal::Signal::SIGWINCH, on_winch);
        Some(t)
    } else {
        None
    };
    let outcome = pump(&master);
    if let Some(t) = saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &t);
    }
    outcome
}

fn pump(master: &OwnedFd) -> Result<()> {
    let mut buf = [0u8; 8192];
    let mut stdin_open = true;
    let stdin = std::io::stdin();
    loop {
        if RESIZED.swap(false, Ordering::Relaxed) {
            let _ = crate::sys::copy_winsize(0, master.as_raw_fd());
        }
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("poll", e)),
        }
        let master_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let stdin_ready = stdin_open && fds[1].revents().is_some_and(|r| !r.is_empty());
        if master_ready {
            match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => return Ok(()), // the shell's side closed
                Ok(n) => write_all(1, &buf[..n])?,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(e) => return Err(Error::sys("read the server's terminal", e)),
            }
        }
        if stdin_ready {
            match nix::unistd::read(0, &mut buf) {
                Ok(0) => {
                    // End of input: pass on an end-of-file to the shell.
                    stdin_open = false;
                    let _ = write_all(master.as_raw_fd(), &[4]);
                }
                Ok(n) => write_all(master.as_raw_fd(), &buf[..n])?,
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}

fn write_all(fd: i32, mut data: &[u8]) -> Result<()> {
    // SAFETY-free: BorrowedFd for the write via nix.
    let f = unsafe_free_borrow(fd);
    while !data.is_empty() {
        match nix::unistd::write(f, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
            Err(e) => return Err(Error::sys("write", e)),
        }
    }
    Ok(())
}

fn unsafe_free_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    crate::sys::borrow_fd(fd)
}
