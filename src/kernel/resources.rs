//! A context's share of the machine: memory, swap, CPU and the cgroup
//! files behind them (vserver.conf(5): MEM_LIMIT, SWAP_LIMIT, CPU_WEIGHT,
//! CPU_LIMIT, CPUSET, CGROUP; the seed's "Global limits" and
//! "Scheduler").
//!
//! Every setting is kept in cgroup v2's terms (Documentation/admin-guide/
//! cgroup-v2.rst) and written as such where the controller is on v2; where
//! it is on v1 (a hybrid layout) it is translated, or refused when v1 has
//! no equivalent: memory.max → memory.limit_in_bytes; memory.swap.max →
//! memory.memsw.limit_in_bytes (v1 limits memory and swap together, so
//! it is their sum, and needs a memory limit); cpu.weight → cpu.shares
//! (weight 100 is 1024 shares, linearly, as systemd maps them);
//! cpu.max → cpu.cfs_quota_us and cpu.cfs_period_us; cpuset.*, pids.max
//! and hugetlb.SIZE.max → their v1 namesakes.

use crate::error::{Context, Error, Result};
use crate::kernel::cgroup::{self, Layout};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The period of CPU_LIMIT's bandwidth control, in µs (the kernel's
/// default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;

/// The settings, as cgroup v2 file → value ("max" for no limit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    pub files: BTreeMap<String, String>,
}

/// The cgroup v2 files CGROUP= may set: the writable limits of the
/// controllers vsbox can give a context (cgroup-v2.rst). hugetlb's are
/// `hugetlb.<size>.max` and `.rsvd.max`, checked by shape.
const V2_FILES: &[&str] = &[
    "memory.min",
    "memory.low",
    "memory.high",
    "memory.max",
    "memory.swap.high",
    "memory.swap.max",
    "memory.zswap.max",
    "memory.oom.group",
    "cpu.weight",
    "cpu.weight.nice",
    "cpu.max",
    "cpu.max.burst",
    "cpu.idle",
    "cpu.uclamp.min",
    "cpu.uclamp.max",
    "cpuset.cpus",
    "cpuset.mems",
    "io.weight",
    "io.latency",
    "io.bfq.weight",
    "pids.max",
    "rdma.max",
    "misc.max",
];

/// Whether `file` is a cgroup v2 file CGROUP= may set.
fn known_v2_file(file: &str) -> bool {
    if V2_FILES.contains(&file) {
        return true;
    }
    let mut parts = file.split('.');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("hugetlb"), Some(size), Some("max"), None, None) | (Some("hugetlb"), Some(size), Some("rsvd"), Some("max"), None)
            if size.ends_with("B") && size.len() > 2
    )
}

/// The controller a v2 file belongs to (its name's first part).
pub fn controller_of(file: &str) -> &str {
    file.split('.').next().unwrap_or(file)
}

/// A size: bytes, or with a K, M, G or T suffix (powers of 1024, as
/// ulimit and systemd read them); `max`, `unlimited` or empty: no limit.
/// Gives None for no limit.
pub fn parse_size(v: &str) -> std::result::Result<Option<u64>, String> {
    let t = v.trim();
    if t.is_empty() || t == "max" || t == "unlimited" {
        return Ok(None);
    }
    let (digits, shift) = match t.as_bytes()[t.len() - 1].to_ascii_uppercase() {
        b'K' => (&t[..t.len() - 1], 10),
        b'M' => (&t[..t.len() - 1], 20),
        b'G' => (&t[..t.len() - 1], 30),
        b'T' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let bad = || format!("'{t}' is not a size (a number of bytes, with K, M, G or T for KiB, MiB, GiB, TiB; or max)");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // Beyond 1 EiB the kernel reads "no limit" (its page counters), so
    // such a number would mean max without saying so.
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{t}' is too large (at most 1048576T; max for none)"))?;
    n.checked_mul(1 << shift)
        .filter(|&n| n <= 1 << 60)
        .map(Some)
        .ok_or_else(|| format!("'{t}' is too large (at most 1048576T; max for none)"))
}

/// A size for people: 64M, 1.5G, 512K, 100.
pub fn show_size(n: u64) -> String {
    for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
        if n >= 1 << shift {
            let v = n as f64 / (1u64 << shift) as f64;
            return if n.is_multiple_of(1 << shift) {
                format!("{}{unit}", n >> shift)
            } else {
                format!("{v:.1}{unit}")
            };
        }
    }
    n.to_string()
}

/// CPU_LIMIT: cores, `0.5` or `2` (at least 0.01, at most 1024); empty
/// or `max`: none. Gives cpu.max's value.
fn parse_cpu_limit(v: &str) -> std::result::Result<String, String> {
    let t = v.trim();
    if t.is_empty() || t == "max" {
        return Ok(format!("max {CPU_PERIOD_US}"));
    }
    let bad = || format!("CPU_LIMIT: '{t}' is not a number of CPUs (e.g. 0.5 or 2, at least 0.01)");
    // Digits and one point: no sign, exponent, inf or nan.
    if !t.bytes().all(|b| b.is_ascii_digit() || b == b'.') || t.matches('.').count() > 1 {
        return Err(bad());
    }
    let cores: f64 = t.parse().map_err(|_| bad())?;
    if !cores.is_finite() || !(0.01..=1024.0).contains(&cores) {
        return Err(bad());
    }
    let quota = (cores * CPU_PERIOD_US as f64).round() as u64;
    Ok(format!("{quota} {CPU_PERIOD_US}"))
}

/// CPUSET: CPU numbers and ranges, `0-1,3`, each range ascending.
/// Gives the list as cpuset.cpus takes it.
pub fn parse_cpu_list(v: &str) -> std::result::Result<String, String> {
    let t = v.trim();
    let mut parts = Vec::new();
    for p in t.split(',').map(str::trim) {
        let bad = || format!("'{t}' is not a CPU list (numbers and ranges such as 0-1,3)");
        let (a, b) = match p.split_once('-') {
            Some((a, b)) => (
                a.trim().parse::<u32>().map_err(|_| bad())?,
                b.trim().parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let n = p.parse::<u32>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if a > b {
            return Err(format!("'{p}' is a descending range (write {b}-{a})"));
        }
        if b >= 8192 {
            return Err(format!("CPU {b} is beyond any machine's (at most 8191)"));
        }
        parts.push(if a == b { a.to_string() } else { format!("{a}-{b}") });
    }
    Ok(parts.join(","))
}

/// cgroup v1's cpu.shares for v2's cpu.weight: weight 100 (the default)
/// is 1024 shares, linearly, within v1's 2–262144.
pub fn shares_of_weight(weight: u64) -> u64 {
    ((weight * 1024 + 50) / 100).clamp(2, 262_144)
}

/// v2's cpu.weight for v1's cpu.shares (the inverse, within 1–10000).
pub fn weight_of_shares(shares: u64) -> u64 {
    ((shares * 100 + 512) / 1024).clamp(1, 10_000)
}

/// The cgroup files that keys of their own set (so not CGROUP=).
const OWN_KEYS: [(&str, &str); 5] = [
    ("memory.max", "MEM_LIMIT"),
    ("memory.swap.max", "SWAP_LIMIT"),
    ("cpu.max", "CPU_LIMIT"),
    ("cpu.weight", "CPU_WEIGHT"),
    ("cpuset.cpus", "CPUSET"),
];

impl Resources {
    /// Takes one configuration key (MEM_LIMIT, SWAP_LIMIT, CPU_WEIGHT,
    /// CPU_LIMIT, CPUSET, CGROUP); false when `key` is none of them. An
    /// empty value lifts the limit. Errors say what is wrong with `v`.
    pub fn set_key(&mut self, key: &str, v: &str) -> std::result::Result<bool, String> {
        let size = |what: &str| -> std::result::Result<String, String> {
            Ok(parse_size(v)
                .map_err(|e| format!("{what}: {e}"))?
                .map_or("max".to_owned(), |n| n.to_string()))
        };
        match key {
            "MEM_LIMIT" => {
                let v = size(key)?;
                if v.parse::<u64>().is_ok_and(|n| n < 1 << 20) {
                    return Err(format!(
                        "MEM_LIMIT: '{}' is too small (at least 1M; a server's init alone needs some)",
                        v.trim()
                    ));
                }
                self.put("memory.max", v)
            }
            "SWAP_LIMIT" => self.put("memory.swap.max", size(key)?),
            "CPU_WEIGHT" => {
                let w = match v.trim() {
                    "" => 100,
                    t => match t.parse::<u64>() {
                        Ok(n) if (1..=10_000).contains(&n) && t.bytes().all(|b| b.is_ascii_digit()) => n,
                        _ => {
                            return Err(format!(
                                "CPU_WEIGHT: '{t}' is not a weight from 1 to 10000 (100 is the default share)"
                            ))
                        }
                    },
                };
                self.put("cpu.weight", w.to_string());
            }
            "CPU_LIMIT" => self.put("cpu.max", parse_cpu_limit(v)?),
            "CPUSET" => match v.trim() {
                "" => {
                    self.files.remove("cpuset.cpus");
                }
                t => self.put("cpuset.cpus", parse_cpu_list(t).map_err(|e| format!("CPUSET: {e}"))?),
            },
            "CGROUP" => {
                // Every word checked before any is taken.
                let mut seen: Vec<(&str, &str)> = Vec::new();
                for w in v.split_whitespace() {
                    let Some((file, value)) = w.split_once('=') else {
                        return Err(format!("CGROUP: expected file=value, found '{w}'"));
                    };
                    if let Some((_, key)) = OWN_KEYS.iter().find(|(f, _)| *f == file) {
                        return Err(format!("CGROUP: {file} is set by {key}: use that"));
                    }
                    if seen.iter().any(|(f, _)| *f == file) {
                        return Err(format!("CGROUP: {file} is given twice"));
                    }
                    if !known_v2_file(file) {
                        return Err(format!(
                            "CGROUP: '{file}' is no cgroup v2 limit vsbox knows (e.g. memory.high, pids.max, io.weight; see vserver.conf(5))"
                        ));
                    }
                    if value.is_empty() || value.chars().any(|c| c.is_control()) {
                        return Err(format!("CGROUP: '{w}' has no value"));
                    }
                    // One word each (so no io.max, whose value has
                    // spaces); the kernel checks the value at start.
                    seen.push((file, value));
                }
                for (file, value) in seen {
                    self.put(file, value.to_owned());
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn put(&mut self, file: &str, value: String) {
        self.files.insert(file.to_owned(), value);
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The controllers these settings need.
    pub fn controllers(&self) -> Vec<&str> {
        let mut c: Vec<&str> = self.files.keys().map(|f| controller_of(f)).collect();
        c.dedup();
        c
    }

    /// The memory limit in bytes, if any.
    pub fn mem_limit(&self) -> Option<u64> {
        self.files.get("memory.max").and_then(|v| v.parse().ok())
    }

    /// Whether these settings can be made on this machine, checked before
    /// any cgroup is made: each controller's files on its layout (v1 has
    /// no equivalent for some, and needs MEM_LIMIT for SWAP_LIMIT), and
    /// CPUSET within the CPUs it has. Errors say which setting.
    pub fn check(&self, layout: &Layout) -> std::result::Result<(), String> {
        for c in self.controllers() {
            if !layout.v2_has(c) && layout.v1_mount(c).is_some() {
                self.v1_writes(c)?;
            }
        }
        if let Some(want) = self.files.get("cpuset.cpus") {
            // The CPUs this machine has online, as a list such as `0-1`.
            let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
            if let Some(have) = cpus_of(online.trim()).filter(|h| !h.is_empty()) {
                if let Some(cpu) = cpus_of(want).unwrap_or_default().into_iter().find(|c| !have.contains(c)) {
                    return Err(format!("CPUSET: this machine has no CPU {cpu} (it has {})", online.trim()));
                }
            }
        }
        Ok(())
    }

    /// What to write for `controller` where it is on cgroup v1: (file,
    /// value) in order, or why v1 cannot do it.
    pub fn v1_writes(&self, controller: &str) -> std::result::Result<Vec<(String, String)>, String> {
        let mut out = Vec::new();
        let v1_size = |v: &str| if v == "max" { "-1".to_owned() } else { v.to_owned() };
        for (file, value) in self.files.iter().filter(|(f, _)| controller_of(f) == controller) {
            match file.as_str() {
                "memory.max" => {}
                "memory.swap.max" => {
                    let Some(mem) = self.files.get("memory.max").filter(|m| *m != "max" || value == "max") else {
                        return Err(
                            "SWAP_LIMIT needs MEM_LIMIT where memory is on cgroup v1, which limits memory and swap together".into(),
                        );
                    };
                    let memsw = match (mem.parse::<u64>(), value.parse::<u64>()) {
                        (Ok(m), Ok(s)) => m.saturating_add(s).to_string(),
                        _ => "-1".to_owned(),
                    };
                    // memsw may never be below the memory limit
                    // (memcontrol.c, EINVAL): `apply` sets memsw first
                    // where the new limit is above the current memsw.
                    out.push(("memory.limit_in_bytes".to_owned(), v1_size(mem)));
                    out.push(("memory.memsw.limit_in_bytes".to_owned(), memsw));
                }
                "cpu.weight" => {
                    let w: u64 = value.parse().map_err(|_| format!("cpu.weight: '{value}' is not a number"))?;
                    out.push(("cpu.shares".to_owned(), shares_of_weight(w).to_string()));
                }
                "cpu.max" => {
                    let mut it = value.split_whitespace();
                    let (quota, period) = (it.next().unwrap_or("max"), it.next().unwrap_or("100000"));
                    out.push(("cpu.cfs_period_us".to_owned(), period.to_owned()));
                    out.push(("cpu.cfs_quota_us".to_owned(), v1_size(quota)));
                }
                "cpuset.cpus" | "cpuset.mems" | "pids.max" => out.push((file.clone(), value.clone())),
                f if f.starts_with("hugetlb.") && f.ends_with(".max") && !f.contains(".rsvd.") => {
                    out.push((f.replace(".max", ".limit_in_bytes"), v1_size(value)));
                }
                f => return Err(format!("{f} has no equivalent where its controller is on cgroup v1")),
            }
        }
        // The memory limit alone (with SWAP_LIMIT it is set above).
        if let (Some(mem), None) = (
            self.files.get("memory.max").filter(|_| controller == "memory"),
            self.files.get("memory.swap.max"),
        ) {
            out.insert(0, ("memory.limit_in_bytes".to_owned(), v1_size(mem)));
        }
        Ok(out)
    }
}

/// Configures the context at v2 directory `dir` with `res`: each
/// controller's files in `dir` where v2 has it, else in its v1 directory
/// (made, with a v1 cpuset's cpus and mems filled in from its parent, as
/// v1 requires before it takes a process). Gives the v1 directories, which
/// the context's processes must join. On an error (a value the kernel
/// refuses: a CPU the machine lacks) the v1 directories it made are gone.
pub fn apply(layout: &Layout, dir: &Path, res: &Resources) -> Result<Vec<PathBuf>> {
    let mut v1 = Vec::new();
    let mut made = Vec::new();
    let done = (|| {
        for controller in res.controllers() {
            let on_v2 = layout.v2_has(controller);
            let existed = layout.v1_dir(controller, dir).is_some_and(|d| d.is_dir());
            let Some(d) = cgroup::controller_dir(layout, dir, controller)? else {
                continue;
            };
            if !on_v2 && !existed {
                made.push(d.clone());
            }
            if on_v2 {
                for (file, value) in res.files.iter().filter(|(f, _)| controller_of(f) == controller) {
                    write(&d, file, &lifted(&d, file, value, "cpuset.cpus.effective")?)?;
                }
            } else {
                if controller == "cpuset" {
                    fill_v1_cpuset(layout, &d)?;
                }
                let writes = res
                    .v1_writes(controller)
                    .map_err(|why| Error::failed(format!("limit {}", dir.display()), why))?;
                for (i, (file, value)) in writes.iter().enumerate() {
                    let value = lifted(&d, file, value, "cpuset.cpus")?;
                    match write(&d, file, &value) {
                        // A memory limit above the current memsw one: that
                        // first (the next write), never a moment without
                        // either (a lowered limit is set before memsw).
                        Err(e) if file == "memory.limit_in_bytes" && e.errno == Some(nix::errno::Errno::EINVAL) => {
                            let Some((f2, v2)) = writes.get(i + 1).filter(|(f2, _)| f2 == "memory.memsw.limit_in_bytes") else {
                                return Err(e);
                            };
                            write(&d, f2, v2)?;
                            write(&d, file, &value)?;
                        }
                        r => r?,
                    }
                }
                v1.push(d);
            }
        }
        Ok(())
    })();
    match done {
        Ok(()) => {
            record_others(dir, res);
            Ok(v1)
        }
        Err(e) => {
            for d in made {
                cgroup::try_remove(&d);
            }
            Err(e)
        }
    }
}

/// Extended attribute of a context's v2 directory: the CGROUP= files set
/// in it and their values (`file=value` words), which [`live`] cannot
/// read back in v2's terms.
const XATTR_CGROUP: &str = "trusted.vsbox.cgroup";

/// Adds `res`'s CGROUP= files to those recorded on `dir` (best effort:
/// what fails to be recorded is only not shown).
fn record_others(dir: &Path, res: &Resources) {
    if res.files.keys().all(|f| READ_BACK.contains(&f.as_str())) {
        return;
    }
    let mut all = others_recorded(dir);
    for (f, v) in res.files.iter().filter(|(f, _)| !READ_BACK.contains(&f.as_str())) {
        all.insert(f.clone(), v.clone());
    }
    if !all.is_empty() {
        let words: Vec<String> = all.iter().map(|(f, v)| format!("{f}={v}")).collect();
        let _ = crate::sys::setxattr(dir, XATTR_CGROUP, words.join(" ").as_bytes());
    }
}

fn others_recorded(dir: &Path) -> std::collections::BTreeMap<String, String> {
    let v = crate::sys::getxattr(dir, XATTR_CGROUP).ok().flatten().unwrap_or_default();
    String::from_utf8_lossy(&v)
        .split_whitespace()
        .filter_map(|w| w.split_once('=').map(|(f, v)| (f.to_owned(), v.to_owned())))
        .collect()
}

/// The current values of the files [`apply`] would write for `res` in the
/// context at `dir` (those that exist now), to put back should it fail.
pub fn snapshot(layout: &Layout, dir: &Path, res: &Resources) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for controller in res.controllers() {
        let (d, files): (Option<PathBuf>, Vec<String>) = if layout.v2_has(controller) {
            (
                Some(dir.to_path_buf()),
                res.files.keys().filter(|f| controller_of(f) == controller).cloned().collect(),
            )
        } else {
            let files = res.v1_writes(controller).unwrap_or_default().into_iter().map(|(f, _)| f).collect();
            (layout.v1_dir(controller, dir).filter(|d| d.is_dir()), files)
        };
        let Some(d) = d else { continue };
        for f in files {
            if let Ok(v) = std::fs::read_to_string(d.join(&f)) {
                out.push((d.join(&f), v.trim().to_owned()));
            }
        }
    }
    out
}

/// Puts back what [`snapshot`] read, twice over, so that values whose
/// order matters (v1's memory and memsw limits) settle; errors ignored.
pub fn restore(saved: &[(PathBuf, String)]) {
    for _ in 0..2 {
        for (path, value) in saved {
            let _ = std::fs::write(path, if value.is_empty() { "\n" } else { value });
        }
    }
}

/// `value` for `file` in group `d`, but for a lifted cpuset (empty
/// cpuset.cpus) its parent's CPUs, read from `parent_file`: an empty one
/// is refused while the group has processes (ENOSPC on v2; v1 wants CPUs).
fn lifted(d: &Path, file: &str, value: &str, parent_file: &str) -> Result<String> {
    if file != "cpuset.cpus" || !value.is_empty() {
        return Ok(value.to_owned());
    }
    let parent = d.parent().unwrap_or(d).join(parent_file);
    Ok(std::fs::read_to_string(&parent)
        .ctx(|| format!("read {}", parent.display()))?
        .trim()
        .to_owned())
}

/// Writes one cgroup file, with an error that names the setting.
fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    if !path.exists() {
        return Err(Error::failed(
            format!("set {file}={value}"),
            format!(
                "{} has no such file (is the controller enabled, and does this kernel have it?)",
                dir.display()
            ),
        ));
    }
    // An empty value as a line: a write of no bytes reaches no cgroup file
    // (v2's cpuset.cpus takes "" as "the parent's").
    let text = if value.is_empty() { "\n" } else { value };
    match std::fs::write(&path, text) {
        // v1 refuses a memory limit it cannot reclaim down to.
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) && file.starts_with("memory.") => {
            let used = read_u64(&dir.join("memory.usage_in_bytes")).or_else(|| read_u64(&dir.join("memory.current")));
            Err(Error::failed(
                format!("set {file}={value} in {}", dir.display()),
                format!(
                    "below what the server uses now ({}), which could not be reclaimed",
                    used.map_or_else(|| "?".to_owned(), show_size)
                ),
            ))
        }
        r => r.ctx(|| format!("set {file}={value} in {}", dir.display())),
    }
}

/// The numbers of a CPU list (`0-1,3`); None if it is not one.
fn cpus_of(list: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for p in list.split(',').filter(|p| !p.is_empty()) {
        let (a, b): (u32, u32) = match p.split_once('-') {
            Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
            None => (p.parse().ok()?, p.parse().ok()?),
        };
        out.extend(a..=b.min(a.saturating_add(8192)));
    }
    Some(out)
}

/// A v1 cpuset directory takes processes only once its cpus and mems are
/// set: each level from the mount down gets its parent's where empty.
fn fill_v1_cpuset(layout: &Layout, d: &Path) -> Result<()> {
    let Some(mount) = layout.v1_mount("cpuset") else { return Ok(()) };
    let mut chain: Vec<&Path> = d.ancestors().take_while(|a| a.starts_with(mount) && *a != mount).collect();
    chain.reverse();
    for at in chain {
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let own = std::fs::read_to_string(at.join(f)).unwrap_or_default();
            if own.trim().is_empty() {
                let parent = at.parent().unwrap_or(mount);
                let from = std::fs::read_to_string(parent.join(f)).ctx(|| format!("read {}", parent.join(f).display()))?;
                std::fs::write(at.join(f), from.trim()).ctx(|| format!("set {} in {}", f, at.display()))?;
            }
        }
    }
    Ok(())
}

/// What a context uses now, read from its cgroups (either layout); None
/// where a controller is absent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Memory in use, bytes.
    pub memory: Option<u64>,
    /// Its memory limit, bytes (None: none).
    pub memory_limit: Option<u64>,
    /// Processes killed by the OOM killer for want of memory in it.
    pub oom_kills: Option<u64>,
    /// CPU time used, µs.
    pub cpu_usec: Option<u64>,
    /// Processes (and threads) counted by the pids controller.
    pub tasks: Option<u64>,
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn keyed(p: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(p)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The memory limit in force for the context at v2 directory `dir`, in
/// bytes (either layout); None when it has none.
pub fn memory_limit(layout: &Layout, dir: &Path) -> Option<u64> {
    if layout.v2_has("memory") {
        // "max" does not parse: no limit.
        read_u64(&dir.join("memory.max"))
    } else {
        // v1 says "no limit" with a huge page-aligned number.
        let d = layout.v1_dir("memory", dir)?;
        read_u64(&d.join("memory.limit_in_bytes")).filter(|&n| n < 1 << 62)
    }
}

/// The use of the context at v2 directory `dir`.
pub fn usage(layout: &Layout, dir: &Path) -> Usage {
    let at = |controller: &str| -> Option<PathBuf> {
        if layout.v2_has(controller) {
            Some(dir.to_path_buf())
        } else {
            layout.v1_dir(controller, dir).filter(|d| d.is_dir())
        }
    };
    let mut u = Usage::default();
    if let Some(d) = at("memory") {
        if layout.v2_has("memory") {
            u.memory = read_u64(&d.join("memory.current"));
            u.oom_kills = keyed(&d.join("memory.events"), "oom_kill");
        } else {
            u.memory = read_u64(&d.join("memory.usage_in_bytes"));
            u.oom_kills = keyed(&d.join("memory.oom_control"), "oom_kill");
        }
        u.memory_limit = memory_limit(layout, dir);
    }
    // Every v2 group counts its CPU time, with or without the controller.
    u.cpu_usec = keyed(&dir.join("cpu.stat"), "usage_usec");
    if let Some(d) = at("pids") {
        u.tasks = read_u64(&d.join("pids.current"));
    }
    u
}

/// The files [`live`] reads back; other CGROUP= files are known only from
/// the configuration.
pub const READ_BACK: [&str; 5] = ["memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "cpuset.cpus"];

/// The memory and CPU settings in force for the running context at v2
/// directory `dir`, read back from its cgroups (either layout), in v2's
/// terms, and the CGROUP= files vsbox set there; defaults (no limit,
/// weight 100, every CPU) are left out.
pub fn live(layout: &Layout, dir: &Path) -> Resources {
    let mut r = Resources {
        files: others_recorded(dir),
    };
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).ok().map(|s| s.trim().to_owned());
    // v1 says "no limit" with a huge page-aligned number.
    let v1_size = |v: Option<String>| v.and_then(|v| v.parse::<u64>().ok()).filter(|&n| n < 1 << 62);
    if layout.v2_has("memory") {
        for f in ["memory.max", "memory.swap.max"] {
            if let Some(v) = read(dir, f).filter(|v| v != "max") {
                r.put(f, v);
            }
        }
    } else if let Some(d) = layout.v1_dir("memory", dir).filter(|d| d.is_dir()) {
        let mem = v1_size(read(&d, "memory.limit_in_bytes"));
        if let Some(m) = mem {
            r.put("memory.max", m.to_string());
            if let Some(both) = v1_size(read(&d, "memory.memsw.limit_in_bytes")) {
                r.put("memory.swap.max", both.saturating_sub(m).to_string());
            }
        }
    }
    if layout.v2_has("cpu") {
        if let Some(v) = read(dir, "cpu.max").filter(|v| !v.starts_with("max")) {
            r.put("cpu.max", v);
        }
        if let Some(v) = read(dir, "cpu.weight").filter(|v| v != "100") {
            r.put("cpu.weight", v);
        }
    } else if let Some(d) = layout.v1_dir("cpu", dir).filter(|d| d.is_dir()) {
        if let (Some(q), Some(p)) = (read(&d, "cpu.cfs_quota_us"), read(&d, "cpu.cfs_period_us")) {
            if q != "-1" {
                r.put("cpu.max", format!("{q} {p}"));
            }
        }
        if let Some(w) = read(&d, "cpu.shares")
            .and_then(|v| v.parse().ok())
            .map(weight_of_shares)
            .filter(|&w| w != 100)
        {
            r.put("cpu.weight", w.to_string());
        }
    }
    let cpuset = if layout.v2_has("cpuset") {
        Some(dir.to_path_buf())
    } else {
        layout.v1_dir("cpuset", dir).filter(|d| d.is_dir())
    };
    if let Some(v) = cpuset.and_then(|d| read(&d, "cpuset.cpus")).filter(|v| !v.is_empty()) {
        r.put("cpuset.cpus", v);
    }
    r
}

/// `vserver NAME status`'s lines on memory and CPU: the settings, and
/// with `usage` (a running server) what it uses now.
pub fn describe(res: &Resources, usage: Option<&Usage>) -> String {
    let mut out = String::new();
    let limit = res.files.get("memory.max").filter(|v| *v != "max").and_then(|v| v.parse().ok());
    let limit_text = limit.map_or_else(|| "no limit".to_owned(), |n| format!("limit {}", show_size(n)));
    match usage.and_then(|u| u.memory) {
        Some(used) => {
            let oom = usage.and_then(|u| u.oom_kills).unwrap_or(0);
            out += &format!(
                "memory: {} used, {limit_text}; {oom} processes killed for want of memory\n",
                show_size(used)
            );
        }
        None if limit.is_some() => out += &format!("memory: {limit_text}\n"),
        None => {}
    }
    if let Some(v) = res.files.get("memory.swap.max") {
        let shown = v
            .parse()
            .map_or_else(|_| "no limit".to_owned(), |n: u64| format!("limit {}", show_size(n)));
        out += &format!("swap: {shown}\n");
    }
    let mut cpu = Vec::new();
    if let Some(us) = usage.and_then(|u| u.cpu_usec) {
        cpu.push(format!("{:.2} s used", us as f64 / 1e6));
    }
    if let Some((quota, period)) = res.files.get("cpu.max").and_then(|v| v.split_once(' ')) {
        if let (Ok(q), Ok(p)) = (quota.parse::<f64>(), period.parse::<f64>()) {
            cpu.push(format!("at most {} CPUs", q / p));
        }
    }
    if let Some(w) = res.files.get("cpu.weight") {
        cpu.push(format!("weight {w}"));
    }
    if let Some(l) = res.files.get("cpuset.cpus") {
        cpu.push(format!("on CPUs {l}"));
    }
    if !cpu.is_empty() {
        out += &format!("cpu: {}\n", cpu.join(", "));
    }
    let other: Vec<String> = res
        .files
        .iter()
        .filter(|(f, _)| !READ_BACK.contains(&f.as_str()))
        .map(|(f, v)| format!("{f}={v}"))
        .collect();
    if !other.is_empty() {
        out += &format!("cgroup: {}\n", other.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Ok(Some(64 << 20)));
        assert_eq!(parse_size("1g"), Ok(Some(1 << 30)));
        assert_eq!(parse_size("4096"), Ok(Some(4096)));
        assert_eq!(parse_size("max"), Ok(None));
        assert_eq!(parse_size(""), Ok(None));
        for bad in ["lots", "-1", "1.5G", "M", "99999999999T", "+5M", "18446744073709551615", "9000000T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_size("1048576T"), Ok(Some(1 << 60)));
        assert_eq!(show_size(64 << 20), "64M");
        assert_eq!(show_size(3 << 29), "1.5G");
        assert_eq!(show_size(100), "100");
    }

    #[test]
    fn the_smallest_memory_limit_and_swap_without_one_on_v1() {
        let mut r = Resources::default();
        assert!(r.set_key("CPU_LIMIT", "1.5").is_ok() && r.set_key("MEM_LIMIT", "1M").is_ok());
        // v1: SWAP_LIMIT with MEM_LIMIT lifted is refused, not dropped.
        let mut r = Resources::default();
        r.set_key("SWAP_LIMIT", "100M").unwrap();
        r.set_key("MEM_LIMIT", "").unwrap();
        assert!(r.v1_writes("memory").is_err());
        r.set_key("SWAP_LIMIT", "").unwrap();
        let none = |f: &str| (f.to_owned(), "-1".to_owned());
        assert_eq!(
            r.v1_writes("memory").unwrap(),
            vec![none("memory.limit_in_bytes"), none("memory.memsw.limit_in_bytes")]
        );
        assert_eq!(cpus_of("0-2,5"), Some(vec![0, 1, 2, 5]));
    }

    #[test]
    fn weights_and_shares_map_monotonically() {
        assert_eq!(shares_of_weight(100), 1024);
        assert_eq!(weight_of_shares(1024), 100);
        assert_eq!(shares_of_weight(1), 10);
        assert_eq!(shares_of_weight(10_000), 102_400);
        let mut last = 0;
        for w in 1..=10_000 {
            let s = shares_of_weight(w);
            assert!(s >= last, "weight {w}");
            last = s;
            assert_eq!(weight_of_shares(s), w, "weight {w} → {s} shares");
        }
    }

    #[test]
    fn keys_become_v2_files() {
        let mut r = Resources::default();
        assert_eq!(r.set_key("MEM_LIMIT", "64M"), Ok(true));
        assert_eq!(r.set_key("CPU_LIMIT", "0.5"), Ok(true));
        assert_eq!(r.set_key("CPU_WEIGHT", "400"), Ok(true));
        assert_eq!(r.set_key("CPUSET", "0-1, 3"), Ok(true));
        assert_eq!(r.set_key("CGROUP", "pids.max=50 memory.high=48M"), Ok(true));
        assert_eq!(r.set_key("S_NICE", "1"), Ok(false));
        assert_eq!(r.files["memory.max"], (64u64 << 20).to_string());
        assert_eq!(r.files["cpu.max"], "50000 100000");
        assert_eq!(r.files["cpu.weight"], "400");
        assert_eq!(r.files["cpuset.cpus"], "0-1,3");
        assert_eq!(r.files["pids.max"], "50");
        assert_eq!(r.controllers(), ["cpu", "cpuset", "memory", "pids"]);
        assert_eq!(r.mem_limit(), Some(64 << 20));
        r.set_key("MEM_LIMIT", "").unwrap();
        assert_eq!(r.files["memory.max"], "max");
        r.set_key("CPU_LIMIT", "max").unwrap();
        assert_eq!(r.files["cpu.max"], "max 100000");
    }

    #[test]
    fn malformed_values_are_refused() {
        let mut r = Resources::default();
        for (k, v) in [
            ("MEM_LIMIT", "lots"),
            ("SWAP_LIMIT", "1.5x"),
            ("CPU_LIMIT", "-1"),
            ("CPU_LIMIT", "0"),
            ("CPU_LIMIT", "nan"),
            ("CPU_WEIGHT", "0"),
            ("CPU_WEIGHT", "10001"),
            ("CPUSET", "9-3"),
            ("CPUSET", "0,,1"),
            ("CPUSET", "a"),
            ("CGROUP", "memory.bogus=1"),
            ("CGROUP", "pids.max"),
            ("CGROUP", "cgroup.procs=1"),
            ("CGROUP", "../../etc/passwd=x"),
            // What would be misread.
            ("MEM_LIMIT", "512K"),
            ("MEM_LIMIT", "0"),
            ("CPU_WEIGHT", "+5"),
            ("CPU_LIMIT", "1e3"),
            ("CPU_LIMIT", "inf"),
            ("CPU_LIMIT", "+1"),
            ("CGROUP", "pids.max=5 pids.max=6"),
            ("CGROUP", "memory.max=1G"),
            ("CGROUP", "cpuset.cpus=0"),
        ] {
            assert!(r.set_key(k, v).is_err(), "{k}={v}");
        }
        assert!(r.is_empty(), "nothing taken: {r:?}");
        assert!(Resources::default().set_key("CGROUP", "hugetlb.2MB.max=1G").is_ok());
    }

    #[test]
    fn v1_translation() {
        let mut r = Resources::default();
        r.set_key("MEM_LIMIT", "64M").unwrap();
        assert_eq!(
            r.v1_writes("memory").unwrap(),
            [("memory.limit_in_bytes".to_owned(), (64u64 << 20).to_string())]
        );
        r.set_key("SWAP_LIMIT", "16M").unwrap();
        let w = r.v1_writes("memory").unwrap();
        assert_eq!(w[0], ("memory.limit_in_bytes".to_owned(), (64u64 << 20).to_string()));
        assert_eq!(w[1], ("memory.memsw.limit_in_bytes".to_owned(), (80u64 << 20).to_string()));
        r.set_key("CPU_WEIGHT", "400").unwrap();
        r.set_key("CPU_LIMIT", "1.5").unwrap();
        let w = r.v1_writes("cpu").unwrap();
        assert!(w.contains(&("cpu.shares".to_owned(), "4096".to_owned())), "{w:?}");
        assert!(w.contains(&("cpu.cfs_quota_us".to_owned(), "150000".to_owned())), "{w:?}");
        let mut swap_only = Resources::default();
        swap_only.set_key("SWAP_LIMIT", "16M").unwrap();
        assert!(swap_only.v1_writes("memory").is_err());
        let mut high = Resources::default();
        high.set_key("CGROUP", "memory.high=1G").unwrap();
        assert!(high.v1_writes("memory").unwrap_err().contains("memory.high"));
    }
}
