//! sysinfo(2) as a guest sees it: its own memory limit and use, its own
//! uptime and process count — what busybox's `free`, `uptime` and
//! `nproc`-like tools print — answered by its supervisor through the
//! seccomp user notification its filter sends the call to (seccomp.rs),
//! as LXD intercepts it. The rest (loads, swap without SWAP_LIMIT, shared
//! and buffer memory) is the host's.

use crate::kernel::cgroup::{self, Layout};
use crate::kernel::resources;
use crate::sys;
use nix::errno::Errno;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The guest's view: the host's sysinfo with the guest's memory (its
/// limit as total, what it leaves as free), uptime (its init's age) and
/// processes. `host` is sysinfo(2) here; `init_age` in seconds.
pub fn guest_view(
    host: &libc::sysinfo,
    usage: &resources::Usage,
    swap_limit: Option<u64>,
    init_age: Option<i64>,
    procs: Option<u64>,
) -> libc::sysinfo {
    let mut s = *host;
    let unit = u64::from(s.mem_unit.max(1));
    let host_total = s.totalram * unit;
    if let Some(limit) = usage.memory_limit.filter(|&l| l < host_total) {
        let used = usage.memory.unwrap_or(0).min(limit);
        let host_free = s.freeram * unit;
        s.totalram = (limit / unit) as _;
        s.freeram = ((limit - used).min(host_free) / unit) as _;
        s.bufferram = 0;
        s.sharedram = 0;
    }
    if let Some(swap) = swap_limit {
        let host_swap = s.totalswap * unit;
        let swap = swap.min(host_swap);
        s.totalswap = (swap / unit) as _;
        s.freeswap = s.freeswap.min(s.totalswap);
    }
    if let Some(age) = init_age {
        s.uptime = (age.max(0) as u64).min(s.uptime) as _;
    }
    if let Some(n) = procs {
        s.procs = n.min(u64::from(u16::MAX)) as u16;
    }
    s
}

/// The age in seconds of process `pid` (its start time, field 22 of
/// /proc/PID/stat, against the host's uptime).
fn age_of(pid: u32, host_uptime: i64) -> Option<i64> {
    let stat = crate::sys::read_text(format!("/proc/{pid}/stat")).ok()?;
    let start: u64 = stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as u64;
    Some(host_uptime - (start / hz.max(1)) as i64)
}

/// Answers the sysinfo(2) call `n` of a process of the guest whose v2
/// cgroup is `dir` and whose init is `init`: writes the guest's view into
/// the caller's buffer (through its memory, opened and checked to be the
/// caller's first), or fails the call with EFAULT where the buffer is not
/// writable.
///
/// The view is computed at most every [`FRESH`] and reused meanwhile: the
/// supervisor answering runs outside the guest's CPU limit, and a guest
/// calling sysinfo in a loop must not make it read its cgroups flat out.
pub fn answer(listener: &OwnedFd, n: &sys::SeccompNotif, layout: &Layout, dir: &Path, init: Option<u32>) {
    let answered = (|| -> Result<(), Errno> {
        let mem = crate::kernel::unixscope::caller_memory(listener, n)?;
        let view = cached_view(layout, dir, init)?;
        mem.write_all_at(&view, n.args[0]).map_err(|_| Errno::EFAULT)?;
        sys::seccomp_answer(listener, n.id, 0)
    })();
    if let Err(e) = answered {
        let _ = sys::seccomp_answer(listener, n.id, e as i32);
    }
}

/// `s` as the x86_64 kernel writes struct sysinfo to a caller
/// (include/uapi/linux/sysinfo.h: 112 bytes, no trailing padding field
/// on 64-bit), padding zeroed.
fn kernel_layout(s: &libc::sysinfo) -> Vec<u8> {
    let mut b = Vec::with_capacity(112);
    b.extend_from_slice(&(s.uptime as i64).to_le_bytes());
    for v in [
        s.loads[0],
        s.loads[1],
        s.loads[2],
        s.totalram,
        s.freeram,
        s.sharedram,
        s.bufferram,
        s.totalswap,
        s.freeswap,
    ] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&s.procs.to_le_bytes());
    b.extend_from_slice(&[0; 6]); // pad, and alignment
    b.extend_from_slice(&s.totalhigh.to_le_bytes());
    b.extend_from_slice(&s.freehigh.to_le_bytes());
    b.extend_from_slice(&s.mem_unit.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b
}

/// How long a computed view is answered with.
pub const FRESH: std::time::Duration = std::time::Duration::from_millis(100);

/// The view in the kernel's layout, computed anew when older than [`FRESH`]
/// (a supervisor serves one guest).
fn cached_view(layout: &Layout, dir: &Path, init: Option<u32>) -> Result<Vec<u8>, Errno> {
    use std::sync::Mutex;
    static LAST: Mutex<Option<(std::time::Instant, Vec<u8>)>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, view)) = last.as_ref().filter(|(at, _)| at.elapsed() < FRESH) {
        return Ok(view.clone());
    }
    let host = sys::sysinfo()?;
    let usage = resources::usage(layout, dir);
    let swap = resources::live(layout, dir)
        .files
        .get("memory.swap.max")
        .and_then(|v| v.parse().ok());
    let procs = cgroup_tasks(dir);
    let view = kernel_layout(&guest_view(
        &host,
        &usage,
        swap,
        init.and_then(|p| age_of(p, host.uptime as i64)),
        procs,
    ));
    *last = Some((std::time::Instant::now(), view.clone()));
    Ok(view)
}

/// The processes of the cgroup at `dir` and those below it.
fn cgroup_tasks(dir: &Path) -> Option<u64> {
    let mut n = cgroup::procs(dir).ok()?.len() as u64;
    for e in std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    {
        n += cgroup_tasks(&e.path()).unwrap_or(0);
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> libc::sysinfo {
        let mut s = sys::sysinfo().unwrap();
        s.uptime = 100_000;
        s.totalram = 8 << 30;
        s.freeram = 6 << 30;
        s.bufferram = 1 << 20;
        s.totalswap = 1 << 30;
        s.freeswap = 1 << 30;
        s.procs = 300;
        s.mem_unit = 1;
        s.totalhigh = 0;
        s.freehigh = 0;
        s
    }

    #[test]
    fn a_limited_guest_sees_its_limit_as_its_memory() {
        let u = resources::Usage {
            memory: Some(16 << 20),
            memory_limit: Some(64 << 20),
            ..Default::default()
        };
        let v = guest_view(&host(), &u, Some(0), Some(42), Some(3));
        assert_eq!((v.totalram, v.freeram, v.bufferram), (64 << 20, 48 << 20, 0));
        assert_eq!((v.totalswap, v.freeswap), (0, 0));
        assert_eq!((v.uptime, v.procs), (42, 3));
        // No limit (or one above the host's memory): the host's memory.
        let v = guest_view(&host(), &resources::Usage::default(), None, None, None);
        assert_eq!((v.totalram, v.freeram, v.uptime, v.procs), (8 << 30, 6 << 30, 100_000, 300));
        // Units other than bytes.
        let mut h = host();
        h.mem_unit = 4096;
        h.totalram = (8 << 30) / 4096;
        h.freeram = (6 << 30) / 4096;
        let v = guest_view(&h, &u, None, None, None);
        assert_eq!(v.totalram * 4096, 64 << 20);
        let b = kernel_layout(&v);
        assert_eq!(b.len(), 112);
        assert_eq!(&b[32..40], &v.totalram.to_le_bytes());
        assert_eq!(&b[104..108], &4096u32.to_le_bytes());
    }
}
