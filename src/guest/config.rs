//! `/etc/vservers/NAME.conf`: the original's shell-style `KEY=value` file,
//! read by vsbox (never run by a shell). Every problem is reported as
//! `FILE:LINE: what is wrong` before anything on the system changes.

use crate::context;
use crate::error::{Error, Result};
use crate::kernel::caps;
use crate::kernel::netlock;
use nix::sys::resource::Resource;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// One IPROOT entry: `[DEV:]ADDR[/MASK]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpRoot {
    pub dev: Option<String>,
    pub addr: IpAddr,
    pub prefix: Option<u8>,
}

pub use crate::context::limits::{Limit, UNLIMITED};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub iproot: Vec<IpRoot>,
    pub iprootdev: Option<String>,
    pub iprootmask: Option<u8>,
    pub iprootbcast: Option<IpAddr>,
    /// The server's own 127.0.0.1 on the host (IPROOT_LBACK); None: from
    /// the context id.
    pub lback: Option<std::net::Ipv4Addr>,
    pub onboot: bool,
    /// Capabilities kept in addition to the default guest ceiling.
    pub caps: u64,
    pub context: Option<u32>,
    pub hostname: Option<String>,
    /// None: leave it; Some(""): empty (`none`).
    pub domainname: Option<String>,
    pub nice: Option<i32>,
    pub flags: u32,
    pub ulimits: Vec<Limit>,
    /// Devices allowed besides the minimal /dev (DEVICES).
    pub devices: Vec<crate::kernel::devices::Device>,
    /// Limits of the guest's own user namespace (INOTIFY_INSTANCES,
    /// INOTIFY_WATCHES).
    pub userns_limits: crate::kernel::userns::Limits,
    /// Its share of memory and CPU (MEM_LIMIT, SWAP_LIMIT, CPU_WEIGHT,
    /// CPU_LIMIT, CPUSET, CGROUP), in cgroup v2's terms.
    pub resources: crate::kernel::resources::Resources,
    /// Its disk quota (DISK_LIMIT, DISK_INODES).
    pub disk: crate::guest::quota::DiskLimit,
}

impl Config {
    /// The addresses the guest is locked to (none: not bound).
    pub fn addresses(&self) -> Result<netlock::AddrSet> {
        let mut set = netlock::AddrSet::default();
        for ip in &self.iproot {
            set.push(ip.addr)?;
        }
        if let Some(std::net::IpAddr::V4(b)) = self.iprootbcast {
            set.bcast.push(b);
        }
        Ok(set)
    }
}

const KEYS: &[&str] = &[
    "IPROOT",
    "IPROOTDEV",
    "IPROOTMASK",
    "IPROOTBCAST",
    "IPROOT_LBACK",
    "ONBOOT",
    "S_CAPS",
    "S_CONTEXT",
    "S_DOMAINNAME",
    "S_HOSTNAME",
    "S_NICE",
    "S_FLAGS",
    "ULIMIT",
    "DEVICES",
    "INOTIFY_INSTANCES",
    "INOTIFY_WATCHES",
    "MEM_LIMIT",
    "SWAP_LIMIT",
    "CPU_WEIGHT",
    "CPU_LIMIT",
    "CPUSET",
    "CGROUP",
    "DISK_LIMIT",
    "DISK_INODES",
];

/// The keys `vserver NAME set` changes on a running server: the last of
/// [`KEYS`], from MEM_LIMIT on.
pub const LIVE_KEYS: &[&str] = KEYS.split_at(KEYS.len() - 8).1;

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read(path).map_err(|e| Error::io(format!("read {}", path.display()), &e))?;
    let text = String::from_utf8(text).map_err(|_| Error::failed(path.display(), "not valid UTF-8"))?;
    parse(path, &text)
}

pub fn parse(path: &Path, text: &str) -> Result<Config> {
    let mut cfg = Config::default();
    for (i, line) in text.lines().enumerate() {
        let at = |msg: String| Error::failed(format!("{}:{}", path.display(), i + 1), msg);
        let Some((key, value)) = split_line(line).map_err(at)? else {
            continue;
        };
        apply(&mut cfg, &key, &value).map_err(at)?;
    }
    // The inotify limits are those of the server's own user namespace,
    // which a capability that counts only in the host's rules out; so
    // are the disk quota's: in the host's, its root could take its files
    // out of their project (chattr -P, file_setattr) or switch btrfs
    // quotas off.
    let host_only = cfg.caps & crate::kernel::userns::HOST_ONLY;
    let needs_own = [
        (cfg.disk.is_set(), "DISK_LIMIT and DISK_INODES"),
        (cfg.userns_limits != Default::default(), "INOTIFY_INSTANCES and INOTIFY_WATCHES"),
    ];
    if let Some((_, keys)) = needs_own.iter().find(|(set, _)| *set && host_only != 0) {
        let names: Vec<String> = (0..64)
            .filter(|c| host_only & crate::kernel::caps::bit(*c) != 0)
            .map(crate::kernel::caps::name)
            .collect();
        return Err(Error::failed(
            path.display(),
            format!(
                "{keys} need the server's own user namespace, which S_CAPS rules out ({} counts only in the host's)",
                names.join(" ")
            ),
        ));
    }
    // With the host's CAP_SYS_ADMIN its root could mount its cgroups (or
    // remount them writable) and lift every limit set there.
    if !cfg.resources.is_empty() && cfg.caps & crate::kernel::caps::bit(crate::kernel::caps::SYS_ADMIN) != 0 {
        return Err(Error::failed(
            path.display(),
            "MEM_LIMIT, SWAP_LIMIT, CPU_WEIGHT, CPU_LIMIT, CPUSET and CGROUP cannot hold a server whose S_CAPS grants CAP_SYS_ADMIN: its root could mount its cgroups and lift them",
        ));
    }
    Ok(cfg)
}

/// `KEY=value`, `KEY="value"`, `KEY='value'`, optional `export`, and a
/// trailing `# comment`; None for blank and comment lines.
fn split_line(line: &str) -> std::result::Result<Option<(String, String)>, String> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') {
        return Ok(None);
    }
    let t = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
    let Some((key, rest)) = t.split_once('=') else {
        return Err(format!("expected KEY=value, found '{t}'"));
    };
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("'{key}' is not a variable name"));
    }
    let (value, tail) = unquote(rest)?;
    let tail = tail.trim_start();
    if !tail.is_empty() && !tail.starts_with('#') {
        return Err(format!(
            "unexpected text after the value of {key}: '{tail}' (quote values with spaces)"
        ));
    }
    Ok(Some((key.to_owned(), value)))
}

/// The trailing `# comment` of an assignment line, if it has one.
pub fn trailing_comment(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let t = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
    if t.starts_with('#') {
        return None;
    }
    let (_, rest) = t.split_once('=')?;
    let (_, tail) = unquote(rest).ok()?;
    let tail = tail.trim_start();
    tail.starts_with('#').then_some(tail)
}

/// Splits a shell word off `s`: the value and what follows it.
fn unquote(s: &str) -> std::result::Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            ' ' | '\t' => return Ok((out, &s[i..])),
            '"' => {
                chars.next();
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, e @ ('"' | '\\' | '$' | '`'))) => out.push(e),
                            Some((_, e)) => {
                                out.push('\\');
                                out.push(e);
                            }
                            None => return Err("unterminated \"".into()),
                        },
                        Some((_, '$' | '`')) => return Err("substitutions ($, `) are not supported: vsbox does not run a shell".into()),
                        Some((_, c)) => out.push(c),
                        None => return Err("unterminated \"".into()),
                    }
                }
            }
            '\'' => {
                chars.next();
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => out.push(c),
                        None => return Err("unterminated '".into()),
                    }
                }
            }
            '$' | '`' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => {
                return Err(format!("'{c}' is not allowed in a value: vsbox does not run a shell"));
            }
            _ => {
                out.push(c);
                chars.next();
            }
        }
    }
    Ok((out, ""))
}

fn words(v: &str) -> impl Iterator<Item = &str> {
    v.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty())
}

fn apply(cfg: &mut Config, key: &str, v: &str) -> std::result::Result<(), String> {
    match key {
        "IPROOT" => {
            cfg.iproot.clear();
            for w in words(v) {
                let (dev, addr) = match w.split_once(':') {
                    Some((d, a)) if !d.is_empty() && !a.contains(':') && !d.contains('.') => (Some(d.to_owned()), a),
                    _ => (None, w),
                };
                let (addr, prefix) = netlock::parse_addr(addr).map_err(|e| e.msg)?;
                if addr.is_unspecified() {
                    continue; // 0.0.0.0: not bound
                }
                cfg.iproot.push(IpRoot { dev, addr, prefix });
            }
            if cfg.iproot.len() > netlock::MAX_ADDRS {
                return Err(format!("IPROOT: at most {} addresses", netlock::MAX_ADDRS));
            }
        }
        "IPROOTDEV" => cfg.iprootdev = Some(v.trim().to_owned()).filter(|s| !s.is_empty()),
        "IPROOTMASK" => {
            cfg.iprootmask = if v.trim().is_empty() {
                None
            } else {
                Some(
                    netlock::parse_addr(&format!("0.0.0.0/{}", v.trim()))
                        .map_err(|_| format!("IPROOTMASK: bad mask '{v}'"))?
                        .1
                        .unwrap_or(32),
                )
            }
        }
        "IPROOTBCAST" => {
            cfg.iprootbcast = if v.trim().is_empty() {
                None
            } else {
                Some(v.trim().parse().map_err(|_| format!("IPROOTBCAST: bad address '{v}'"))?)
            }
        }
        "IPROOT_LBACK" => {
            cfg.lback = match v.trim() {
                "" => None,
                w => match w.parse() {
                    Ok(a) if netlock::valid_lback(a) => Some(a),
                    _ => {
                        return Err(format!(
                            "IPROOT_LBACK: '{w}' is not a loopback address of its own (127.0.0.2 to 127.255.255.254)"
                        ))
                    }
                },
            }
        }
        "ONBOOT" => {
            cfg.onboot = match v.trim() {
                "yes" | "YES" | "1" | "true" => true,
                "no" | "NO" | "0" | "false" | "" => false,
                other => return Err(format!("ONBOOT: expected yes or no, found '{other}'")),
            }
        }
        "S_CAPS" => {
            cfg.caps = 0;
            for w in words(v) {
                cfg.caps |= caps::bit(caps::parse(w).map_err(|e| format!("S_CAPS: {}", e.msg))?);
            }
        }
        "S_CONTEXT" => {
            cfg.context = if v.trim().is_empty() {
                None
            } else {
                let n = context::parse_xid(v.trim()).map_err(|e| format!("S_CONTEXT: {}", e.msg))?;
                if context::kind(n) != Some(context::Kind::Static) {
                    return Err(format!("S_CONTEXT: {n} is not a static context id (2 to 49151)"));
                }
                Some(n)
            }
        }
        "S_HOSTNAME" => {
            let h = v.trim();
            if let Some(why) = host_name_fault(h).filter(|_| !h.is_empty()) {
                return Err(format!("S_HOSTNAME: {why}"));
            }
            cfg.hostname = Some(h.to_owned()).filter(|s| !s.is_empty());
        }
        "S_DOMAINNAME" => {
            let d = v.trim();
            if d.len() > 64 {
                return Err(format!("S_DOMAINNAME: '{d}' is too long"));
            }
            cfg.domainname = match d {
                "" => None,
                "none" => Some(String::new()),
                d => Some(d.to_owned()),
            }
        }
        "S_NICE" => {
            cfg.nice = if v.trim().is_empty() {
                None
            } else {
                match v.trim().parse::<i32>() {
                    Ok(n) if (-20..=19).contains(&n) => Some(n),
                    _ => return Err(format!("S_NICE: expected a niceness from -20 to 19, found '{v}'")),
                }
            }
        }
        "S_FLAGS" => cfg.flags = context::parse_flags(&words(v).collect::<Vec<_>>()).map_err(|e| format!("S_FLAGS: {}", e.msg))?,
        "ULIMIT" => cfg.ulimits = parse_ulimit(v)?,
        "DEVICES" => {
            // Entries of two words each: `c 10:200 c 10:229`.
            let w: Vec<&str> = words(v).collect();
            cfg.devices = w
                .chunks(2)
                .map(|pair| pair.join(" ").parse().map_err(|e| format!("DEVICES: {e}")))
                .collect::<std::result::Result<_, _>>()?;
        }
        "INOTIFY_INSTANCES" => cfg.userns_limits.inotify_instances = count(key, v)?,
        "INOTIFY_WATCHES" => cfg.userns_limits.inotify_watches = count(key, v)?,
        "DISK_LIMIT" => cfg.disk.space = crate::kernel::resources::parse_size(v).map_err(|e| format!("DISK_LIMIT: {e}"))?,
        "DISK_INODES" => cfg.disk.inodes = count(key, v)?.map(u64::from),
        other => {
            if !cfg.resources.set_key(other, v)? {
                return Err(format!("unknown key '{other}' (known: {})", KEYS.join(" ")));
            }
        }
    }
    Ok(())
}

/// Checks one `KEY=value` as the configuration file would take it (the
/// message without FILE:LINE).
pub fn check_value(key: &str, v: &str) -> std::result::Result<(), String> {
    apply(&mut Config::default(), key, v)
}

/// Why `h` is no host name, if it is not one: it goes into the UTS name
/// (at most 64 bytes, utsname(2)) and into /etc/hosts, as labels of
/// letters, digits, '-' and '_' joined by dots, none starting with '-'
/// (RFC 1123 §2.1; a leading '-' would also read as an option to
/// `hostname`).
pub fn host_name_fault(h: &str) -> Option<String> {
    if h.len() > 64 {
        return Some(format!("'{h}' is too long (at most 64 bytes)"));
    }
    let label = |l: &str| !l.is_empty() && !l.starts_with('-') && l.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    (!h.split('.').all(label)).then(|| format!("'{h}' is not a host name (letters, digits, '-', '_' and dots; no label starts with '-')"))
}

/// A positive count (empty: unset), for the per-guest kernel limits.
fn count(key: &str, v: &str) -> std::result::Result<Option<u32>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    match v.parse::<u32>() {
        Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(Some(n)),
        _ => Err(format!("{key}: expected a count from 1 to {}, found '{v}'", i32::MAX)),
    }
}

/// The shell's `ulimit` options: `-H`/`-S` choose the hard or soft limit
/// (both by default), then `-X VALUE` pairs; sizes in KiB as bash has them.
pub fn parse_ulimit(v: &str) -> std::result::Result<Vec<Limit>, String> {
    let mut out = Vec::new();
    let (mut hard, mut soft) = (true, true);
    let mut it = v.split_whitespace().peekable();
    while let Some(w) = it.next() {
        let opt = w
            .strip_prefix('-')
            .filter(|o| !o.is_empty())
            .ok_or_else(|| format!("ULIMIT: expected an option, found '{w}'"))?;
        for (n, c) in opt.chars().enumerate() {
            match c {
                'H' => (hard, soft) = (true, false),
                'S' => (hard, soft) = (false, true),
                _ => {
                    let (resource, scale) = ulimit_resource(c).ok_or_else(|| format!("ULIMIT: unknown option -{c}"))?;
                    if n + 1 != opt.len() {
                        return Err(format!("ULIMIT: -{c} takes a value"));
                    }
                    let val = it.next().ok_or_else(|| format!("ULIMIT: -{c} needs a value"))?;
                    let value = match val {
                        "unlimited" => UNLIMITED,
                        n => n
                            .parse::<u64>()
                            .ok()
                            .and_then(|n| n.checked_mul(scale))
                            .ok_or_else(|| format!("ULIMIT: -{c}: bad value '{n}'"))?,
                    };
                    out.push(Limit {
                        resource,
                        soft: soft.then_some(value),
                        hard: hard.then_some(value),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn ulimit_resource(c: char) -> Option<(Resource, u64)> {
    Some(match c {
        'c' => (Resource::RLIMIT_CORE, 1024),
        'd' => (Resource::RLIMIT_DATA, 1024),
        'f' => (Resource::RLIMIT_FSIZE, 1024),
        'l' => (Resource::RLIMIT_MEMLOCK, 1024),
        'm' => (Resource::RLIMIT_RSS, 1024),
        's' => (Resource::RLIMIT_STACK, 1024),
        'v' => (Resource::RLIMIT_AS, 1024),
        'n' => (Resource::RLIMIT_NOFILE, 1),
        'u' => (Resource::RLIMIT_NPROC, 1),
        't' => (Resource::RLIMIT_CPU, 1),
        'x' => (Resource::RLIMIT_LOCKS, 1),
        'i' => (Resource::RLIMIT_SIGPENDING, 1),
        'q' => (Resource::RLIMIT_MSGQUEUE, 1),
        'e' => (Resource::RLIMIT_NICE, 1),
        'r' => (Resource::RLIMIT_RTPRIO, 1),
        _ => return None,
    })
}

/// The commented file `vserver NAME build` writes when none exists.
pub fn template(name: &str) -> String {
    format!(
        "# Configuration of the virtual server {name} (see vserver.conf(5)).\n\
         # Read by vsbox, never by a shell: KEY=value, KEY=\"value with spaces\".\n\
         \n\
         # Addresses the server is locked to: [DEV:]ADDR[/MASK] ...; empty: not bound.\n\
         IPROOT=\n\
         # Device on which start adds (and stop removes) the addresses as aliases.\n\
         IPROOTDEV=\n\
         IPROOTMASK=\n\
         IPROOTBCAST=\n\
         # The server's own 127.0.0.1, on the host; empty: 127.250.X.Y from the context id.\n\
         IPROOT_LBACK=\n\
         # Start with the host (vservers start).\n\
         ONBOOT=no\n\
         # Capabilities kept in addition to the default ceiling, e.g. \"CAP_NET_RAW\".\n\
         S_CAPS=\n\
         # Static context id (2-49151); empty: a dynamic one.\n\
         S_CONTEXT=\n\
         S_HOSTNAME={name}\n\
         # NIS domain name; none: empty.\n\
         S_DOMAINNAME=\n\
         # Niceness every process of the server is held at (-20..19).\n\
         S_NICE=\n\
         # Flags: lock sched nproc private fakeinit. nproc: ULIMIT's -u counts\n\
         # the server's processes as a whole (its cgroup's pids.max).\n\
         S_FLAGS=nproc\n\
         # Options of the shell's ulimit; the seed's default: at most 1000 processes.\n\
         ULIMIT=\"-H -u 1000\"\n\
         # Devices besides the minimal /dev, e.g. \"c 10:200\" (/dev/net/tun).\n\
         DEVICES=\n\
         \n\
         # Its share of the machine (vserver NAME set changes them while it runs).\n\
         # Memory (RAM and page cache), K/M/G/T: MEM_LIMIT=1G\n\
         #MEM_LIMIT=\n\
         # Swap besides that: SWAP_LIMIT=512M\n\
         #SWAP_LIMIT=\n\
         # Share of busy CPUs against other servers, 1-10000 (100): CPU_WEIGHT=200\n\
         #CPU_WEIGHT=\n\
         # At most this many CPUs' time: CPU_LIMIT=0.5\n\
         #CPU_LIMIT=\n\
         # Only these CPUs: CPUSET=0-1\n\
         #CPUSET=\n\
         # Any other cgroup v2 limit: CGROUP=\"pids.max=500 hugetlb.2MB.max=0\"\n\
         #CGROUP=\n\
         # Disk space of its tree (a btrfs qgroup or an ext4/xfs project quota): DISK_LIMIT=10G\n\
         #DISK_LIMIT=\n\
         # Files of its tree (ext4, xfs): DISK_INODES=100000\n\
         #DISK_INODES=\n"
    )
}

/// The commented file with the answers of newvserver filled in.
pub fn template_with(name: &str, iproot: &str, dev: &str, hostname: &str, onboot: bool) -> String {
    template(name)
        .replace("\nIPROOT=\n", &format!("\nIPROOT=\"{iproot}\"\n"))
        .replace("\nIPROOTDEV=\n", &format!("\nIPROOTDEV={dev}\n"))
        .replace(&format!("\nS_HOSTNAME={name}\n"), &format!("\nS_HOSTNAME={hostname}\n"))
        .replace("\nONBOOT=no\n", if onboot { "\nONBOOT=yes\n" } else { "\nONBOOT=no\n" })
}

/// Where a guest's configuration lives.
pub fn path_of(confdir: &Path, name: &str) -> PathBuf {
    confdir.join(format!("{name}.conf"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config> {
        parse(Path::new("/etc/vservers/t.conf"), text)
    }

    #[test]
    fn inotify_limits_with_a_host_only_capability_are_refused() {
        let e = parse(Path::new("g.conf"), "INOTIFY_INSTANCES=5\nS_CAPS=CAP_MKNOD\n").unwrap_err();
        assert!(
            e.msg.contains("S_CAPS rules out (CAP_MKNOD counts only in the host's)"),
            "{}",
            e.msg
        );
        for caps in ["CAP_SYS_BOOT", "CAP_NET_RAW"] {
            assert!(parse(Path::new("g.conf"), &format!("INOTIFY_INSTANCES=5\nS_CAPS={caps}\n")).is_ok());
        }
    }

    #[test]
    fn filled_template_parses_to_the_answers() {
        let c = p(&template_with("web", "127.0.0.9/8", "lo", "www", true)).unwrap();
        assert_eq!(c.iproot[0].addr, "127.0.0.9".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(
            (c.iprootdev.as_deref(), c.hostname.as_deref(), c.onboot),
            (Some("lo"), Some("www"), true)
        );
    }

    #[test]
    fn host_names() {
        for good in ["web", "web.example.org", "a_b-c", "x1"] {
            assert_eq!(host_name_fault(good), None, "{good}");
        }
        for bad in ["-x", "a..b", "a b", "web.-x", "a/b", ""] {
            assert!(host_name_fault(bad).is_some(), "{bad}");
        }
        assert!(host_name_fault(&"a".repeat(65)).unwrap().contains("too long"));
    }

    #[test]
    fn a_disk_quota_needs_the_servers_own_user_namespace() {
        assert!(p("DISK_LIMIT=1G\nS_CAPS=CAP_NET_RAW\n").is_ok());
        let e = p("S_CAPS=CAP_MKNOD\nDISK_LIMIT=1G\n").unwrap_err();
        assert!(e.msg.contains("own user namespace"), "{e:?}");
    }

    #[test]
    fn the_templates_resource_examples_parse() {
        let t = template("web");
        let examples: Vec<&str> = t
            .lines()
            .filter_map(|l| l.strip_prefix("# ")?.rsplit_once(": ").map(|(_, e)| e))
            .filter(|e| LIVE_KEYS.iter().any(|k| e.starts_with(&format!("{k}="))))
            .collect();
        assert_eq!(examples.len(), 8, "{examples:?}");
        let c = p(&examples.join("\n")).unwrap();
        assert_eq!(c.resources.mem_limit(), Some(1 << 30));
        assert_eq!(c.resources.files.len(), 7);
        assert_eq!(c.disk.space, Some(10 << 30));
        assert_eq!(c.disk.inodes, Some(100_000));
        assert!(p(&t).unwrap().resources.is_empty());
    }

    #[test]
    fn template_parses_to_defaults() {
        let c = p(&template("web")).unwrap();
        assert_eq!(c.hostname.as_deref(), Some("web"));
        assert!(c.iproot.is_empty() && !c.onboot);
        // The seed's default: 1000 processes at most, counted over the guest.
        assert_eq!(c.flags, crate::abi::VXF_NPROC);
        assert_eq!(
            c.ulimits,
            vec![Limit {
                resource: Resource::RLIMIT_NPROC,
                soft: None,
                hard: Some(1000)
            }]
        );
    }

    #[test]
    fn every_key() {
        let c = p("# a guest\nIPROOT=\"eth0:10.0.0.5/24 127.0.0.9\"\nIPROOTDEV=lo\nIPROOTMASK=255.255.255.0\nIPROOTBCAST=10.0.0.255\nONBOOT=yes # start it\nS_CAPS='CAP_NET_RAW SYS_TIME'\nS_CONTEXT=1234\nS_HOSTNAME=web\nS_DOMAINNAME=none\nS_NICE=5\nS_FLAGS=\"lock nproc\"\nIPROOT_LBACK=127.9.8.7\nULIMIT=\"-H -u 1000 -S -n 64\"\nDEVICES=\"c 10:200, b 7:*\"\n").unwrap();
        assert_eq!(c.devices.len(), 2);
        assert_eq!(c.devices[1], "b 7:*".parse().unwrap());
        assert_eq!(c.iproot.len(), 2);
        assert_eq!(
            c.iproot[0],
            IpRoot {
                dev: Some("eth0".into()),
                addr: "10.0.0.5".parse().unwrap(),
                prefix: Some(24)
            }
        );
        assert_eq!(c.iproot[1].dev, None);
        assert_eq!(c.iprootdev.as_deref(), Some("lo"));
        assert_eq!(c.iprootmask, Some(24));
        assert_eq!(c.lback, Some(std::net::Ipv4Addr::new(127, 9, 8, 7)));
        assert!(c.onboot);
        assert_eq!(c.caps, caps::bit(13) | caps::bit(25));
        assert_eq!(c.context, Some(1234));
        assert_eq!(c.domainname.as_deref(), Some(""));
        assert_eq!(c.nice, Some(5));
        assert_eq!(c.flags, crate::abi::VXF_LOCK | crate::abi::VXF_NPROC);
        assert_eq!(
            c.ulimits,
            vec![
                Limit {
                    resource: Resource::RLIMIT_NPROC,
                    soft: None,
                    hard: Some(1000)
                },
                Limit {
                    resource: Resource::RLIMIT_NOFILE,
                    soft: Some(64),
                    hard: None
                },
            ]
        );
    }

    #[test]
    fn unbound_and_ipv6() {
        assert!(p("IPROOT=0.0.0.0\n").unwrap().iproot.is_empty());
        assert!(p("IPROOT=\n").unwrap().iproot.is_empty());
        let c = p("IPROOT=\"::1 fe80::1/64\"\n").unwrap();
        assert_eq!(c.iproot.len(), 2);
        assert!(c.iproot.iter().all(|i| i.dev.is_none()));
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("ONBOOT=yes\nBOGUS=1\n", ":2: unknown key 'BOGUS'"),
            ("DEVICES=\"c 10:200 x\"\n", ":1: DEVICES: expected"),
            ("IPROOT=10.0.0.300\n", ":1: bad address '10.0.0.300'"),
            ("IPROOT_LBACK=127.0.0.1\n", ":1: IPROOT_LBACK: '127.0.0.1' is not"),
            ("\nIPROOT_LBACK=10.0.0.1\n", ":2: IPROOT_LBACK: '10.0.0.1' is not"),
            ("\n\nS_CAPS=CAP_FLY\n", ":3: S_CAPS: unknown capability 'CAP_FLY'"),
            ("S_FLAGS=wobble\n", ":1: S_FLAGS: unknown flag 'wobble'"),
            ("S_CONTEXT=50000\n", ":1: S_CONTEXT: 50000 is not a static context id"),
            ("S_NICE=30\n", ":1: S_NICE"),
            ("ONBOOT=maybe\n", ":1: ONBOOT"),
            ("just words\n", ":1: expected KEY=value"),
            ("S_HOSTNAME=$(rm -rf /)\n", ":1: '$' is not allowed"),
            ("S_HOSTNAME=\"$(id)\"\n", ":1: substitutions"),
            ("S_HOSTNAME=\"open\n", ":1: unterminated"),
            ("S_HOSTNAME=a b\n", ":1: unexpected text"),
            ("S_HOSTNAME=\"a#b\"\n", ":1: S_HOSTNAME: 'a#b' is not a host name"),
            ("S_HOSTNAME=web..example\n", ":1: S_HOSTNAME: 'web..example' is not a host name"),
            ("S_HOSTNAME=\"we\tb\"\n", ":1: S_HOSTNAME:"),
            ("ULIMIT=\"-u\"\n", ":1: ULIMIT: -u needs a value"),
            ("ULIMIT=\"-Z 5\"\n", ":1: ULIMIT: unknown option -Z"),
            ("ULIMIT=\"-n lots\"\n", ":1: ULIMIT: -n: bad value 'lots'"),
        ];
        for (text, want) in cases {
            let e = p(text).unwrap_err().msg;
            assert!(e.starts_with("/etc/vservers/t.conf:"), "{e}");
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn ulimit_units_follow_bash() {
        let l = parse_ulimit("-v 1024 -n unlimited").unwrap();
        assert_eq!(
            l[0],
            Limit {
                resource: Resource::RLIMIT_AS,
                soft: Some(1 << 20),
                hard: Some(1 << 20)
            }
        );
        assert_eq!(l[1].soft, Some(UNLIMITED));
    }
}
