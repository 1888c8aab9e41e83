//! The process table, read straight from /proc (no ps, no procps), with
//! each process's security context and guest name: what vps, vpstree,
//! vtop, vkill and vserver-stat show. Files are read into one reused
//! buffer and parsed in place; the costlier ones (status for the PID in
//! the guest, cmdline) only when asked for.

use crate::context::{self, Registry};
use crate::guest;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};

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
    /// The owner (from the /proc/PID directory).
    pub uid: bool,
}

/// A reused read buffer: `data` stays initialized (zeroed once, when it
/// grows), `len` is what the last read filled.
#[derive(Default)]
struct Buf {
    data: Vec<u8>,
    len: usize,
}

impl std::ops::Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

/// Reads `rel` below the directory `dir` (/proc's, mostly) into `buf`.
fn read_at(dir: &OwnedFd, rel: &str, buf: &mut Buf) -> bool {
    read_at_to(dir, rel, buf, false)
}

/// [`read_at`]; with `to_end`, reads until read(2) gives 0 (a file that
/// hands out less than asked before its end, as cgroup.procs does).
fn read_at_to(dir: &OwnedFd, rel: &str, buf: &mut Buf, to_end: bool) -> bool {
    buf.len = 0;
    let Ok(fd) = nix::fcntl::openat(Some(dir.as_raw_fd()), rel, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) else {
        return false;
    };
    let fd = crate::sys::adopt_fd(fd);
    // Plain read(2)s: /proc files report no size, so read_to_end's
    // fstat and lseek would only cost system calls. A read that leaves
    // room is the whole file: proc's and cgroup's files (seq_file, and
    // cmdline's page loop) fill what they are given, so no read for the
    // end of the file.
    loop {
        if buf.data.len() - buf.len < 1024 {
            let grown = (buf.data.len() * 2).max(4096);
            buf.data.resize(grown, 0);
        }
        let room = buf.data.len() - buf.len;
        match nix::unistd::read(fd.as_raw_fd(), &mut buf.data[buf.len..]) {
            Ok(0) => return true,
            Ok(n) if n < room && !to_end => {
                buf.len += n;
                return true;
            }
            Ok(n) => buf.len += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return buf.len > 0,
        }
    }
}

/// The processes of every live context, pid → context, from the
/// cgroup.procs of each directory of the contexts' tree (a context's own,
/// and those below it, such as chbind's lock directories, which count as
/// the context above them): one read per directory rather than a file
/// per process, relative to the base directory `base` (no walk down the
/// whole path each). Read to the end: cgroup.procs hands out about a
/// page a read. Zombies are not listed there; the caller asks /proc for
/// them.
fn members(base: &std::path::Path, dirs: &[std::path::PathBuf]) -> HashMap<u32, u32> {
    let mut map = HashMap::new();
    let base_fd = nix::fcntl::open(base, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .ok()
        .map(crate::sys::adopt_fd);
    let mut buf = Buf::default();
    for dir in dirs {
        let Some(xid) = dir.ancestors().find_map(|d| d.file_name()?.to_str()?.parse::<u32>().ok()) else {
            continue;
        };
        let file = dir.join("cgroup.procs");
        let read = match (&base_fd, file.strip_prefix(base).ok().and_then(|r| r.to_str())) {
            (Some(b), Some(rel)) => read_at_to(b, rel, &mut buf, true),
            // (Every directory is below it: subtree's.)
            _ => false,
        };
        if !read {
            continue;
        }
        for pid in buf
            .split(|&b| b == b'\n')
            .filter_map(|l| std::str::from_utf8(l).ok()?.parse::<u32>().ok())
        {
            map.insert(pid, xid);
        }
    }
    map
}

/// The PID namespace a process is in, as `pid:[INODE]`.
fn pid_ns(proc_fd: &OwnedFd, pid: u32) -> Option<std::ffi::OsString> {
    nix::fcntl::readlinkat(Some(proc_fd.as_raw_fd()), format!("{pid}/ns/pid").as_str()).ok()
}

/// Every context has a PID namespace of its own: PID namespace → context,
/// from one member of each context's cgroup. (Cheaper to look up than
/// /proc/PID/cgroup, which renders a path per hierarchy.) For the
/// processes [`members`] did not see: those started since.
fn contexts_by_pid_ns(proc_fd: &OwnedFd, list: &[(u32, std::path::PathBuf)]) -> HashMap<std::ffi::OsString, u32> {
    let mut map = HashMap::new();
    for (xid, dir) in list {
        if *xid == context::SPECTATOR {
            continue; // it lives in the host's PID namespace
        }
        if let Some(ns) = crate::context::launch::context_leader(dir).and_then(|p| pid_ns(proc_fd, p)) {
            map.insert(ns, *xid);
        }
    }
    map
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

/// The context of a `s_context: N` line of /proc/PID/status (the kernel
/// patch's; vserver-reference.md §2.2).
pub fn parse_s_context(status: &[u8]) -> Option<u32> {
    let at = memchr::memmem::find(status, b"\ns_context: ")?;
    let line = &status[at + 12..];
    let line = &line[..memchr::memchr(b'\n', line).unwrap_or(line.len())];
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

/// For the viewers (vps, vpstree, vtop, vserver-stat), before they scan:
/// on the patched kernel, where the host is blind to its guests, this
/// process becomes the spectator (context 1), which sees every context's
/// processes and may signal none (kernel/README.md). Irreversible; nothing
/// on a stock kernel, or without the privilege, or inside a guest.
pub fn see_every_context() {
    if crate::kernel::patch_version().is_some() && crate::context::record::own_context().is_none() {
        let _ = crate::sys::vserver(crate::abi::VCMD_ctx_migrate, crate::abi::VX_ID_SPECTATOR, 0);
    }
}

/// What every scanning thread shares.
struct Scan<'a> {
    proc_fd: &'a OwnedFd,
    /// pid → context, read at the start ([`members`]).
    members: &'a HashMap<u32, u32>,
    /// The contexts' tree could be listed (not inside a guest).
    listed: bool,
    /// PID namespace → context, made when a process not in `members`
    /// needs it ([`contexts_by_pid_ns`]).
    by_ns: &'a std::sync::OnceLock<HashMap<std::ffi::OsString, u32>>,
    list: &'a [(u32, std::path::PathBuf)],
    /// /proc's own PID namespace (`pid:[INODE]`).
    top_ns: Option<&'a std::ffi::OsStr>,
    spectators: bool,
    /// The context whose PID namespace /proc shows: the host's, or inside
    /// a guest the guest's own.
    own: u32,
    want: Want,
    /// The kernel patch is there: a process it keeps in a context of its
    /// own says so in its status.
    native: bool,
}

impl Scan<'_> {
    fn read(&self, pids: &[u32]) -> Vec<Proc> {
        let (proc_fd, spectators, want, own, native) = (self.proc_fd, self.spectators, self.want, self.own, self.native);
        let mut out = Vec::with_capacity(pids.len());
        let mut buf = Buf::default();
        for &pid in pids {
            let mut p = Proc {
                pid,
                vpid: pid,
                ..Default::default()
            };
            if !read_at(proc_fd, &format!("{pid}/stat"), &mut buf) || !parse_stat(&buf, &mut p) {
                continue; // gone meanwhile
            }
            if want.uid {
                if let Ok(st) = nix::sys::stat::fstatat(Some(proc_fd.as_raw_fd()), pid.to_string().as_str(), nix::fcntl::AtFlags::empty()) {
                    // A guest's root is a host uid of its own: root, as before.
                    p.uid = crate::kernel::userns::guest_uid(st.st_uid);
                }
            }
            // A context's member (listed after the pids, so none is missed);
            // inside a guest, where the contexts cannot be listed, by the
            // PID namespace: ours, or a context's; else the cgroup decides.
            let known = self.members.get(&pid).copied().or_else(|| {
                // A zombie is in no cgroup.procs: its parent's context.
                if p.state == 'Z' {
                    if let Some(&x) = self.members.get(&p.ppid) {
                        return Some(x);
                    }
                }
                // The others, where the contexts were listed, are the host's.
                if self.listed {
                    return Some(own);
                }
                let ns = pid_ns(proc_fd, pid)?;
                if self.top_ns == Some(ns.as_os_str()) {
                    return Some(own);
                }
                self.by_ns.get_or_init(|| contexts_by_pid_ns(proc_fd, self.list)).get(&ns).copied()
            });
            p.xid = known.unwrap_or(own);
            // A namespace of no context's (a process that made its own, inside
            // a guest), or a spectator in the host's: the cgroup decides.
            // Inside a guest its cgroup namespace shows its own cgroup as "/".
            let ask_cgroup = known.is_none() || (p.xid == context::HOST && spectators);
            if ask_cgroup && read_at(proc_fd, &format!("{pid}/cgroup"), &mut buf) {
                p.xid = match crate::kernel::cgroup::v2_path(&String::from_utf8_lossy(&buf)).map_or(0, |c| context::xid_of_cgroup_path(&c))
                {
                    context::HOST => own,
                    x => x,
                };
            }
            let with_native = native && p.xid == own;
            if (want.vpid || with_native) && read_at(proc_fd, &format!("{pid}/status"), &mut buf) {
                if want.vpid {
                    p.vpid = parse_vpid(&buf).unwrap_or(pid);
                }
                // The patch's own contexts (made by vserver(2) itself).
                if let Some(x) = parse_s_context(&buf).filter(|&x| with_native && x > context::SPECTATOR) {
                    p.xid = x;
                }
            }
            if want.args {
                p.args = if read_at(proc_fd, &format!("{pid}/cmdline"), &mut buf) && !buf.is_empty() {
                    let trimmed = buf.strip_suffix(b"\0").unwrap_or(&buf);
                    String::from_utf8_lossy(trimmed).replace('\0', " ")
                } else {
                    format!("[{}]", p.comm)
                };
            }
            out.push(p);
        }
        out
    }
}

/// Every process now, with its context; `names` lists the contexts.
pub fn scan(want: Want, names: &Names) -> Vec<Proc> {
    let mut out = Vec::with_capacity(512);
    let Ok(proc_fd) = nix::fcntl::open("/proc", OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty()) else {
        return out;
    };
    let proc_fd = crate::sys::adopt_fd(proc_fd);
    // The pids first, then the contexts' members: a process that forked
    // before the first is in the second.
    let Ok(rd) = std::fs::read_dir("/proc") else { return out };
    let pids: Vec<u32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .collect();
    let list = &names.contexts;
    // The contexts' tree as it is now, after the pids: one started since
    // `names` was loaded is in it.
    let base = names.base.as_deref();
    let dirs = base.map(crate::kernel::cgroup::subtree).unwrap_or_default();
    let members = base.map(|b| members(b, &dirs)).unwrap_or_default();
    let listed = !dirs.is_empty();
    // /proc's own PID namespace: the host's, or inside a guest the guest's.
    let own = crate::context::record::own_context().map_or(context::HOST, |(xid, _)| xid);
    // (Ours: /proc/1's link may be out of reach, its process not dumpable.)
    let top_ns = std::fs::read_link("/proc/self/ns/pid")
        .or_else(|_| std::fs::read_link("/proc/1/ns/pid"))
        .ok()
        .map(std::path::PathBuf::into_os_string);
    // The spectator shares the host's PID namespace; only its cgroup tells.
    let spectators = list.iter().any(|(x, _)| *x == context::SPECTATOR);
    let by_ns = std::sync::OnceLock::new();
    // The kernel renders each process's files on demand; with thousands of
    // processes that is most of the time, so read with one thread per core
    // (vps and friends never fork, so threads are safe here).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let chunk = pids.len().div_ceil(threads).max(256);
    let ctx = Scan {
        proc_fd: &proc_fd,
        members: &members,
        listed,
        by_ns: &by_ns,
        list,
        top_ns: top_ns.as_deref(),
        spectators,
        own,
        want,
        native: crate::kernel::patch_version().is_some(),
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = pids.chunks(chunk).map(|part| s.spawn(|| ctx.read(part))).collect();
        for h in handles {
            out.extend(h.join().unwrap_or_default());
        }
    });
    out.sort_by_key(|p| p.pid);
    out
}

/// Context id → name: `MAIN`, `ALL_PROCS`, the guest's name, or "" for a
/// context of chcontext's. Inside a guest: its own name. With the
/// contexts' directories, listed once for [`scan`] too, and their base
/// (None where the contexts cannot be listed: inside a guest).
#[derive(Default)]
pub struct Names {
    map: HashMap<u32, String>,
    contexts: Vec<(u32, std::path::PathBuf)>,
    base: Option<std::path::PathBuf>,
}

impl Names {
    pub fn load() -> Names {
        let mut map = HashMap::new();
        let mut contexts = Vec::new();
        // Registry::list's contexts, each with its tag read relative to
        // the base (getxattrat), not down the whole path.
        let base = Registry::open().map(|r| r.layout.base()).ok();
        let tagged = base
            .as_deref()
            .map(|b| crate::kernel::cgroup::subtree_xattr(b, guest::XATTR_GUEST))
            .unwrap_or_default();
        for (dir, tag) in tagged {
            let Some(xid) = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(tag) = tag {
                let tag = String::from_utf8_lossy(&tag).into_owned();
                let name = tag.rsplit('/').next().unwrap_or(&tag).trim_end_matches(".conf").to_owned();
                map.insert(xid, name);
            }
            contexts.push((xid, dir));
        }
        // Inside a guest the registry is out of sight; its own name is not.
        if let Some((xid, name)) = crate::context::record::own_context() {
            map.entry(xid).or_insert(name);
        }
        Names { map, contexts, base }
    }

    /// The live contexts and their cgroup v2 directories.
    pub fn contexts(&self) -> &[(u32, std::path::PathBuf)] {
        &self.contexts
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

/// Milliseconds since boot: CLOCK_BOOTTIME, the clock /proc/PID/stat's
/// start times count on. Not /proc/uptime, which inside a server is
/// lxcfs's (the server's own uptime) where lxcfs runs.
pub fn uptime_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).map_or(0, |t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
}

/// MemTotal of /proc/meminfo, in bytes; 0 if it cannot be read.
pub fn mem_total() -> u64 {
    crate::sys::read_text("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |k| k * 1024)
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
    crate::context::users::names_by_uid(&std::fs::read_to_string("/etc/passwd").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patchs_context_line() {
        assert_eq!(parse_s_context(b"Name:\tsh\ns_context: 900\nctxflags: none\n"), Some(900));
        assert_eq!(parse_s_context(b"Name:\tsh\nVxID: 900\n"), None);
        assert_eq!(parse_s_context(b"Name:\tsh\ns_context: x\n"), None);
    }

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
        let all = scan(
            Want {
                vpid: true,
                args: true,
                uid: true,
            },
            &Names::load(),
        );
        let p = all.iter().find(|p| p.pid == me).expect("this process");
        assert!(p.args.contains("proctable") || !p.args.is_empty());
        assert!(p.threads >= 1);
    }
}
