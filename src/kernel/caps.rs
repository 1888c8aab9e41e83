//! Capabilities: names, the vserver "secure" ceiling, and lowering the
//! ceiling of the current process irreversibly (bounding set, inheritable
//! and ambient sets). Masks are 64-bit and every capability up to the
//! running kernel's cap_last_cap is covered, so capabilities added after
//! 2002 are not silently kept.

use crate::error::{Context, Error, Result};
use crate::sys;

/// Capability names by number (linux/capability.h).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub const CHOWN: u32 = 0;
pub const DAC_READ_SEARCH: u32 = 2;
pub const KILL: u32 = 5;
pub const SETPCAP: u32 = 8;
pub const NET_BIND_SERVICE: u32 = 10;
pub const NET_RAW: u32 = 13;
pub const SYS_CHROOT: u32 = 18;
pub const SYS_PTRACE: u32 = 19;
pub const SYS_ADMIN: u32 = 21;
pub const SYS_BOOT: u32 = 22;

pub const fn bit(cap: u32) -> u64 {
    1u64 << cap
}

/// What `--secure` keeps, and the default ceiling of a guest: root still
/// owns files and processes, changes identities, binds ports below 1024
/// and may chroot (the guest's root is a pivot_root, so chroot cannot
/// climb out). Everything else — network and device configuration, mounts,
/// modules, raw I/O, clock, reboot, tracing foreign processes, BPF,
/// immutable bits and every capability this list does not know — is
/// dropped. An allow-list, so new kernel capabilities are dropped too.
/// Not CAP_DAC_READ_SEARCH: with it, open_by_handle_at() opens any inode
/// of a file system by its handle, past a chroot's or a guest's root (the
/// "shocker" escape); CAP_DAC_OVERRIDE already reads what root may.
pub const SECURE_KEEP: u64 = bit(CHOWN)
    | bit(1) // DAC_OVERRIDE
    | bit(3) // FOWNER
    | bit(4) // FSETID
    | bit(KILL)
    | bit(6) // SETGID
    | bit(7) // SETUID
    | bit(NET_BIND_SERVICE)
    | bit(SYS_CHROOT)
    | bit(28) // LEASE
    | bit(29) // AUDIT_WRITE
    | bit(31); // SETFCAP

/// Name of capability `cap` (`CAP_N` for numbers newer than this table).
pub fn name(cap: u32) -> String {
    NAMES
        .get(cap as usize)
        .map(|s| (*s).to_owned())
        .unwrap_or_else(|| format!("CAP_{cap}"))
}

/// Parses `CAP_NET_RAW`, `NET_RAW`, `net_raw` or a number.
pub fn parse(s: &str) -> Result<u32> {
    let upper = s.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") { upper } else { format!("CAP_{upper}") };
    if let Some(i) = NAMES.iter().position(|n| *n == full) {
        return Ok(i as u32);
    }
    if let Ok(n) = s.parse::<u32>() {
        if n < 64 {
            return Ok(n);
        }
    }
    Err(Error::usage(format!("unknown capability '{s}'")))
}

/// The highest capability number the running kernel knows.
pub fn last_cap() -> u32 {
    crate::sys::read_text("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NAMES.len() as u32 - 1)
}

/// A requested change of the ceiling: `--secure`, `--cap X`, `--cap !X`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub secure: bool,
    pub keep: u64,
    pub drop: u64,
}

impl Request {
    /// Parses the values of repeated `--cap` options.
    pub fn new(secure: bool, caps: &[String]) -> Result<Self> {
        let mut r = Request { secure, keep: 0, drop: 0 };
        for c in caps {
            match c.strip_prefix('!') {
                Some(name) => r.drop |= bit(parse(name)?),
                None => r.keep |= bit(parse(c)?),
            }
        }
        Ok(r)
    }

    /// Whether the request leaves every ceiling as it is.
    pub fn is_empty(&self) -> bool {
        !self.secure && self.drop == 0
    }

    /// The ceiling that results from `current`: never more than it.
    pub fn apply_to(&self, current: u64) -> u64 {
        let mut ceiling = if self.secure {
            current & (SECURE_KEEP | self.keep)
        } else {
            current
        };
        ceiling &= !self.drop;
        ceiling
    }
}

/// The current bounding set.
pub fn bounding() -> Result<u64> {
    read_set(sys::capbset_read).ctx(|| "read the bounding set")
}

/// The current ambient set.
pub fn ambient() -> Result<u64> {
    read_set(sys::ambient_is_set).ctx(|| "read the ambient set")
}

/// A capability set read one capability at a time, up to the first the
/// kernel does not know (EINVAL): that is cap_last_cap without reading
/// /proc, on the launch path of every context.
fn read_set(read: fn(u32) -> std::result::Result<bool, nix::errno::Errno>) -> std::result::Result<u64, nix::errno::Errno> {
    let mut set = 0;
    for cap in 0..64 {
        match read(cap) {
            Ok(true) => set |= bit(cap),
            Ok(false) => {}
            Err(nix::errno::Errno::EINVAL) if cap > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(set)
}

/// Lowers this process's ceiling to `keep`, for good: drops the rest from
/// the bounding set (so no later execve, not even of a setuid-root
/// program, can regain them), clears the ambient set and removes them from
/// the inheritable, permitted and effective sets.
pub fn limit_to(keep: u64) -> Result<()> {
    limit_from(bounding()?, keep)
}

/// [`limit_to`] for a caller that has just read the bounding set `bset`.
pub fn limit_from(bset: u64, keep: u64) -> Result<()> {
    // Lower the bounding set while CAP_SETPCAP is still effective.
    for cap in 0..64 {
        if bset & bit(cap) != 0 && keep & bit(cap) == 0 {
            sys::capbset_drop(cap).ctx(|| format!("drop {} from the bounding set", name(cap)))?;
        }
    }
    sys::ambient_clear_all().ctx(|| "clear the ambient capability set")?;
    let mut sets = sys::capget().ctx(|| "read capabilities")?;
    sets.inheritable &= keep;
    sets.permitted &= keep;
    sets.effective &= keep;
    sys::capset(sets).ctx(|| "lower capabilities")
}

/// The table `reducecap --show` prints: one row per capability the kernel
/// knows, with an X in each set that holds it.
pub fn show() -> Result<String> {
    let sets = sys::capget().ctx(|| "read capabilities")?;
    let (bnd, amb) = (bounding()?, ambient()?);
    let mut out = format!(
        "{:>24} {:>9} {:>9} {:>11} {:>8} {:>7}\n",
        "Capability", "Effective", "Permitted", "Inheritable", "Bounding", "Ambient"
    );
    let mark = |set: u64, cap: u32| if set & bit(cap) != 0 { "X" } else { "-" };
    for cap in 0..=last_cap().min(63) {
        out.push_str(&format!(
            "{:>24} {:>9} {:>9} {:>11} {:>8} {:>7}\n",
            name(cap),
            mark(sets.effective, cap),
            mark(sets.permitted, cap),
            mark(sets.inheritable, cap),
            mark(bnd, cap),
            mark(amb, cap)
        ));
    }
    Ok(out)
}

/// Reads a `CapBnd:`-style hex mask from a /proc/PID/status text.
pub fn from_status(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_in_every_spelling() {
        assert_eq!(parse("CAP_NET_RAW").unwrap(), 13);
        assert_eq!(parse("NET_RAW").unwrap(), 13);
        assert_eq!(parse("net_raw").unwrap(), 13);
        assert_eq!(parse("cap_checkpoint_restore").unwrap(), 40);
        assert_eq!(parse("7").unwrap(), 7);
        assert!(parse("CAP_FLY").is_err());
        assert!(parse("").is_err());
        assert!(parse("64").is_err());
    }

    #[test]
    fn secure_is_an_allow_list() {
        let r = Request::new(true, &[]).unwrap();
        let all = u64::MAX >> 23; // 41 capabilities
        let c = r.apply_to(all);
        assert_eq!(c, SECURE_KEEP);
        for dangerous in [DAC_READ_SEARCH, 12, 13, 16, 17, 19, 21, 22, 25, 27, 9, 39, 40, 38] {
            assert_eq!(c & bit(dangerous), 0, "{} kept", name(dangerous));
        }
    }

    #[test]
    fn cap_readds_and_bang_removes() {
        let r = Request::new(true, &["NET_RAW".into(), "!CAP_CHOWN".into()]).unwrap();
        let c = r.apply_to(u64::MAX);
        assert_ne!(c & bit(13), 0);
        assert_eq!(c & bit(CHOWN), 0);
        // Never more than the current ceiling.
        assert_eq!(r.apply_to(bit(CHOWN)), 0);
        assert!(Request::new(false, &["!bogus".into()]).is_err());
    }

    #[test]
    fn reads_status_masks() {
        let s = "Name:\tx\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n";
        assert_eq!(from_status(s, "CapBnd:"), Some(0x1ff_ffff_ffff));
        assert_eq!(from_status(s, "CapInh:"), None);
    }
}
