//! Messages of vsbox's detached processes (vsbox-watch), which have no
//! terminal: to the system log through /dev/log, best effort (a system
//! without a log daemon simply loses them).

use std::os::unix::net::UnixDatagram;

const FACILITY_DAEMON: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Err = 3,
    Notice = 5,
}

/// One message in the traditional format (`<PRI>TAG[PID]: MSG`) that
/// syslog daemons and journald read from /dev/log.
fn line(level: Level, tag: &str, pid: u32, msg: &str) -> String {
    let msg: String = msg.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    format!("<{}>{tag}[{pid}]: {msg}", FACILITY_DAEMON * 8 + level as u8)
}

pub fn log(level: Level, tag: &str, msg: &str) {
    if let Ok(sock) = UnixDatagram::unbound() {
        let _ = sock.send_to(line(level, tag, std::process::id(), msg).as_bytes(), "/dev/log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_priority_tag_and_pid() {
        assert_eq!(line(Level::Err, "vsbox-watch", 42, "x failed"), "<27>vsbox-watch[42]: x failed");
        assert_eq!(line(Level::Notice, "t", 1, "a\nb"), "<29>t[1]: a b");
    }
}
