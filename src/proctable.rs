//! The process table, read straight from /proc (no ps, no procps), with
//! each process's security context and guest name: what vps, vpstree,
//! vtop, vkill and vserver-stat show. Files are read into one reused
//! buffer and parsed in place; the costlier ones (status for the PID in
//! the guest, cmdline) only when asked for.

use crate::context::{self, Registry};
use crate::guest;
use std::collections::HashMap;
use std::io::Read;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub pgrp: u32,
    pub session: u32,
    pub tpgid: i32,
    pub state: char,
    pub comm: String,
    pub uid: u32,
    pub tty: u32,
    pub nice: i32,
    pub threads: u32,
    /// CPU time in clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Start, in clock ticks since boot.
    pub start: u64,
    pub vsz: u64,
    /// Resident pages.
    pub rss: u64,
    /// PID as its own (innermost) PID namespace numbers it.
    pub vpid: u32,
    pub xid: u32,
    /// The command line; `[comm]` for kernel threads.
    pub args: String,
}

/// What to read beyond /proc/PID/stat and the cgroup.
#[derive(Clone, Copy, Debug, Default)]
pub struct Want {
    pub vpid: bool,
    pub args: bool,
}

fn read_into(path: &str, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    std::fs::File::open(path).and_then(|mut f| f.read_to_end(buf)).is_ok()
}

/// Parses /proc/PID/stat text into `p`.
pub fn parse_stat(text: &[u8], p: &mut Proc) -> bool {
    let (Some(open), Some(close)) = (memchr::memchr(b'(', text), memchr::memrchr(b')', text)) else {
        return false;
    };
    p.comm = String::from_utf8_lossy(&text[open + 1..close]).into_owned();
    let mut f = text[close + 1..].split(|&b| b == b' ').filter(|s| !s.is_empty());
    let mut next = || f.next().unwrap_or(b"0");
    let num = |s: &[u8]| std::str::from_utf8(s).ok().and_then(|s| s.trim().parse::<i64>().ok()).unwrap_or(0);
    p.state = next().first().map_or('?', |&c| c as char);
    p.ppid = num(next()) as u32;
    p.pgrp = num(next()) as u32;
    p.session = num(next()) as u32;
    p.tty = num(next()) as u32;
    p.tpgid = num(next()) as i32;
    for _ in 0..5 {
        next(); // flags, minflt, cminflt, majflt, cmajflt
    }
    p.utime = num(next()) as u64;
    p.stime = num(next()) as u64;
    next(); // cutime
    next(); // cstime
    next(); // priority
    p.nice = num(next()) as i32;
    p.threads = num(next()) as u32;
    next(); // itrealvalue
    p.start = num(next()) as u64;
    p.vsz = num(next()) as u64;
    p.rss = num(next()) as u64;
    true
}

/// The last number of a `NSpid:` line of /proc/PID/status.
pub fn parse_vpid(status: &[u8]) -> Option<u32> {
    let at = memchr::memmem::find(status, b"\nNSpid:")?;
    let line = &status[at + 7..];
    let line = &line[..memchr::memchr(b'\n', line).unwrap_or(line.len())];
    std::str::from_utf8(line).ok()?.split_whitespace().last()?.parse().ok()
}

/// Every process now, with its context.
pub fn scan(want: Want) -> Vec<Proc> {
    let mut out = Vec::with_capacity(512);
    let Ok(rd) = std::fs::read_dir("/proc") else { return out };
    let mut buf = Vec::with_capacity(4096);
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let mut p = Proc {
            pid,
            vpid: pid,
            ..Default::default()
        };
        if !read_into(&format!("/proc/{pid}/stat"), &mut buf) || !parse_stat(&buf, &mut p) {
            continue; // gone meanwhile
        }
        if let Ok(m) = std::fs::metadata(format!("/proc/{pid}")) {
            p.uid = std::os::unix::fs::MetadataExt::uid(&m);
        }
        if read_into(&format!("/proc/{pid}/cgroup"), &mut buf) {
            p.xid = crate::cgroup::v2_path(&String::from_utf8_lossy(&buf)).map_or(0, |c| context::xid_of_cgroup_path(&c));
        }
        if want.vpid && read_into(&format!("/proc/{pid}/status"), &mut buf) {
            p.vpid = parse_vpid(&buf).unwrap_or(pid);
        }
        if want.args {
            p.args = if read_into(&format!("/proc/{pid}/cmdline"), &mut buf) && !buf.is_empty() {
                let trimmed = buf.strip_suffix(b"\0").unwrap_or(&buf);
                String::from_utf8_lossy(trimmed).replace('\0', " ")
            } else {
                format!("[{}]", p.comm)
            };
        }
        out.push(p);
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// Context id → name: `MAIN`, `ALL_PROCS`, the guest's name, or "" for a
/// context of chcontext's.
pub struct Names {
    map: HashMap<u32, String>,
}

impl Names {
    pub fn load() -> Names {
        let mut map = HashMap::new();
        if let Ok(reg) = Registry::open() {
            for (xid, dir) in reg.list() {
                if let Ok(Some(tag)) = crate::sys::getxattr(&dir, guest::XATTR_GUEST) {
                    let tag = String::from_utf8_lossy(&tag).into_owned();
                    let name = tag.rsplit('/').next().unwrap_or(&tag).trim_end_matches(".conf").to_owned();
                    map.insert(xid, name);
                }
            }
        }
        Names { map }
    }

    pub fn of(&self, xid: u32) -> &str {
        match xid {
            context::HOST => "MAIN",
            context::SPECTATOR => "ALL_PROCS",
            x => self.map.get(&x).map_or("", String::as_str),
        }
    }

    /// The context of guest `name`, if it runs.
    pub fn xid_of(&self, name: &str) -> Option<u32> {
        self.map.iter().find(|(_, n)| *n == name).map(|(x, _)| *x)
    }
}

/// Clock ticks per second.
pub fn ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100, |t| t as u64)
}

pub fn page_size() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |t| t as u64)
}

/// Seconds since boot.
pub fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|u| u.parse().ok()))
        .unwrap_or(0.0)
}

/// The terminal a tty_nr stands for, as ps names it.
pub fn tty_name(tty: u32) -> String {
    let (major, minor) = ((tty >> 8) & 0xfff, (tty & 0xff) | ((tty >> 12) & 0xfff00));
    match major {
        0 => "?".to_owned(),
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        _ => format!("{major}:{minor}"),
    }
}

/// User names from the host's /etc/passwd.
pub fn user_names() -> HashMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, (*f.first()?).to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let text = b"4242 (a (weird) name) S 1 4242 4242 34816 4300 4194560 10 0 0 0 150 25 0 0 20 0 3 0 123456 9000000 512 18446744073709551615\n";
        let mut p = Proc::default();
        assert!(parse_stat(text, &mut p));
        assert_eq!(p.comm, "a (weird) name");
        assert_eq!(
            (p.state, p.ppid, p.pgrp, p.session, p.tty, p.tpgid),
            ('S', 1, 4242, 4242, 34816, 4300)
        );
        assert_eq!(
            (p.utime, p.stime, p.nice, p.threads, p.start, p.vsz, p.rss),
            (150, 25, 0, 3, 123456, 9000000, 512)
        );
        assert!(!parse_stat(b"garbage", &mut p));
    }

    #[test]
    fn vpid_is_the_innermost() {
        assert_eq!(parse_vpid(b"Name:\tx\nNSpid:\t4242\t7\t2\nNSpgid:\t1\n"), Some(2));
        assert_eq!(parse_vpid(b"Name:\tx\n"), None);
    }

    #[test]
    fn tty_names() {
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name((136 << 8) | 3), "pts/3");
        assert_eq!(tty_name((4 << 8) | 1), "tty1");
        assert_eq!(tty_name((4 << 8) | 65), "ttyS1");
    }

    #[test]
    fn scan_sees_itself() {
        let me = std::process::id();
        let all = scan(Want { vpid: true, args: true });
        let p = all.iter().find(|p| p.pid == me).expect("this process");
        assert!(p.args.contains("proctable") || !p.args.is_empty());
        assert!(p.threads >= 1);
    }
}
