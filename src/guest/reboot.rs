//! Guests restarting or stopping themselves: the `/dev/reboot` protocol
//! of the original (`reboot\n` or `halt\n` on a Unix stream socket that
//! rebootmgr serves from the host), and the fallback without rebootmgr:
//! signals to vsbox's init, PID 1 of the guest (SIGRTMIN+5 restarts the
//! guest, SIGRTMIN+3 stops it: systemd's convention, which no init uses
//! for a reload; see init::meaning).

use crate::error::{Context, Error, Result};
use crate::{context::init, sys};
use std::io::Write;
use std::path::Path;

pub const SOCKET: &str = "/dev/reboot";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Reboot,
    Halt,
}

impl Request {
    pub fn line(self) -> &'static [u8] {
        match self {
            Request::Reboot => b"reboot\n",
            Request::Halt => b"halt\n",
        }
    }

    /// What a guest sent, if it is exactly one request.
    pub fn parse(data: &[u8]) -> Option<Request> {
        match data {
            b"reboot\n" => Some(Request::Reboot),
            b"halt\n" => Some(Request::Halt),
            _ => None,
        }
    }
}

/// Inside a guest: asks rebootmgr through `socket`, or without it, vsbox's
/// init. Refuses when PID 1 is anything else — on the host it would be the
/// host's own init.
pub fn ask(req: Request, socket: &Path) -> Result<&'static str> {
    match std::os::unix::net::UnixStream::connect(socket) {
        Ok(mut s) => {
            s.write_all(req.line()).ctx(|| format!("write to {}", socket.display()))?;
            return Ok("rebootmgr");
        }
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused) => {}
        Err(e) => return Err(Error::io(format!("connect {}", socket.display()), &e)),
    }
    let comm = crate::sys::read_text("/proc/1/comm").unwrap_or_default();
    if comm.trim() != "vsbox-init" {
        return Err(Error::failed(
            "ask for a restart",
            format!(
                "no rebootmgr at {} and PID 1 is not vsbox's init ({}): not inside a vsbox server?",
                socket.display(),
                comm.trim()
            ),
        ));
    }
    let n = if req == Request::Reboot { init::RT_REBOOT } else { init::RT_HALT };
    sys::kill_raw(nix::unistd::Pid::from_raw(1), sys::sigrtmin() + n).ctx(|| "signal the server's init")?;
    Ok("init")
}

/// Creates the listening socket `/dev/reboot` of the guest whose init is
/// `init`, from inside the guest's mount namespace: every path resolves
/// in the guest, whatever its root planted there.
pub fn listen_in(init: u32) -> Result<std::os::unix::net::UnixListener> {
    use nix::sched::{setns, CloneFlags};
    use std::os::unix::fs::PermissionsExt;
    let host = std::fs::File::open("/proc/self/ns/mnt").ctx(|| "open /proc/self/ns/mnt")?;
    let guest = std::fs::File::open(format!("/proc/{init}/ns/mnt")).ctx(|| format!("open /proc/{init}/ns/mnt"))?;
    let root = crate::kernel::userns::root_uid_of(init)?;
    setns(&guest, CloneFlags::CLONE_NEWNS).ctx(|| "enter the server's mount namespace")?;
    let made = (|| {
        match std::fs::symlink_metadata(SOCKET) {
            Ok(m) if m.is_dir() => return Err(Error::failed(format!("the server's {SOCKET}"), "it is a directory")),
            Ok(_) => std::fs::remove_file(SOCKET).ctx(|| format!("remove the server's old {SOCKET}"))?,
            Err(_) => {}
        }
        let l = std::os::unix::net::UnixListener::bind(SOCKET).ctx(|| format!("create the server's {SOCKET}"))?;
        std::fs::set_permissions(SOCKET, std::fs::Permissions::from_mode(0o600)).ctx(|| format!("chmod the server's {SOCKET}"))?;
        // The guest's root may be a host uid of its own (userns.rs), to
        // whom a socket of host root's would be nobody's.
        if let Some(root) = root.filter(|r| *r != 0) {
            std::os::unix::fs::lchown(SOCKET, Some(root), Some(root)).ctx(|| format!("chown the server's {SOCKET}"))?;
        }
        l.set_nonblocking(true).ctx(|| "make the socket non-blocking")?;
        Ok(l)
    })();
    // Back home; staying in a server's mount namespace is not an option.
    if let Err(e) = setns(&host, CloneFlags::CLONE_NEWNS) {
        eprintln!("rebootmgr: cannot return to the host's mount namespace: {}", e.desc());
        std::process::exit(1);
    }
    let _ = std::env::set_current_dir("/");
    made
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_requests() {
        assert_eq!(Request::parse(b"reboot\n"), Some(Request::Reboot));
        assert_eq!(Request::parse(b"halt\n"), Some(Request::Halt));
        for junk in [&b"reboot"[..], b"halt\nhalt\n", b"REBOOT\n", b"", b"\xff\xfe"] {
            assert_eq!(Request::parse(junk), None);
        }
    }
}
