//! sysvinit's control channel, /run/initctl (initreq.h): the FIFO through
//! which `telinit`, `shutdown`, `reboot` and package scripts (`init u` in
//! sysvinit-core's postinst) talk to init. vsbox's init stands in for
//! sysvinit in a guest, so it serves the channel: without a reader, every
//! `telinit` hangs until its 3-second alarm, and the postinst retries
//! eight times.

use std::os::fd::OwnedFd;

pub const PATH: &str = "/run/initctl";
const MAGIC: i32 = 0x0309_1969;
const CMD_RUNLVL: i32 = 1;
/// sizeof(struct init_request).
pub const REQUEST: usize = 384;

/// A request to change to run level `level` (what `telinit LEVEL`
/// writes: magic, cmd, runlevel, sleeptime, then 368 bytes of data).
pub fn run_level_request(level: u8) -> [u8; REQUEST] {
    let mut r = [0u8; REQUEST];
    r[0..4].copy_from_slice(&MAGIC.to_ne_bytes());
    r[4..8].copy_from_slice(&CMD_RUNLVL.to_ne_bytes());
    r[8..12].copy_from_slice(&i32::from(level).to_ne_bytes());
    r
}

/// The run level a request asks for ('0'–'6', 'S', or 'U'/'Q' to
/// re-execute or re-examine init), if it is a well-formed run-level
/// request; anything else (power events, environment settings,
/// garbage) is None.
pub fn parse(req: &[u8]) -> Option<u8> {
    let word = |at: usize| Some(i32::from_ne_bytes(req.get(at..at + 4)?.try_into().ok()?));
    if req.len() != REQUEST || word(0)? != MAGIC || word(4)? != CMD_RUNLVL {
        return None;
    }
    u8::try_from(word(8)?).ok().map(|c| c.to_ascii_uppercase())
}

/// Makes the guest's /run/initctl (a FIFO, 0600; /run is a fresh tmpfs)
/// and opens it for reading. Read and write, so that it never reports
/// end-of-file when a writer goes; non-blocking, for draining.
pub fn open() -> Option<OwnedFd> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    match nix::unistd::mkfifo(PATH, Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(_) => return None,
    }
    let fd = nix::fcntl::open(
        PATH,
        OFlag::O_RDWR | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
    .ok()?;
    let fd = crate::sys::adopt_fd(fd);
    // Only a FIFO of our making is a control channel.
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFIFO).then_some(fd)
}

/// Reads every request waiting on the channel; the run levels asked for.
pub fn drain(fd: &OwnedFd) -> Vec<u8> {
    let mut levels = Vec::new();
    let mut buf = [0u8; REQUEST];
    // A FIFO write of 384 bytes (< PIPE_BUF) arrives whole.
    while let Ok(n) = nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(fd), &mut buf) {
        if n == 0 {
            break;
        }
        levels.extend(parse(&buf[..n]));
    }
    levels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telinits_requests_round_trip() {
        let r = run_level_request(b'0');
        assert_eq!(i32::from_ne_bytes(r[0..4].try_into().unwrap()), 0x0309_1969);
        assert_eq!(parse(&r), Some(b'0'));
        assert_eq!(parse(&run_level_request(b'u')), Some(b'U'));
    }

    #[test]
    fn garbage_is_no_request() {
        assert_eq!(parse(&[0u8; REQUEST]), None);
        assert_eq!(parse(&run_level_request(b'6')[..100]), None);
        let mut power = run_level_request(b'0');
        power[4] = 2; // INIT_CMD_POWERFAIL
        assert_eq!(parse(&power), None);
    }
}
