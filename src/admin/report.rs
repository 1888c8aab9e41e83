//! Summaries and formats shared by vps, vpstree, vtop and vserver-stat:
//! vserver-stat's sizes and times, ps's TIME and STAT, the process tree,
//! aligned tables and JSON strings.

use crate::admin::proctable::{self, Names, Proc};
use std::collections::BTreeMap;

/// One active context, summed over its processes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CtxStat {
    pub xid: u32,
    pub procs: u32,
    pub vsz: u64,
    /// Bytes.
    pub rss: u64,
    /// Clock ticks.
    pub utime: u64,
    pub stime: u64,
    /// Earliest start, clock ticks since boot.
    pub start: u64,
}

pub fn by_context(procs: &[Proc]) -> Vec<CtxStat> {
    let page = proctable::page_size();
    let mut m: BTreeMap<u32, CtxStat> = BTreeMap::new();
    for p in procs {
        let s = m.entry(p.xid).or_insert(CtxStat {
            xid: p.xid,
            start: u64::MAX,
            ..Default::default()
        });
        s.procs += 1;
        s.vsz += p.vsz;
        s.rss += p.rss * page;
        s.utime += p.utime;
        s.stime += p.stime;
        s.start = s.start.min(p.start);
    }
    m.into_values().collect()
}

/// Each live context's memory limit in bytes (MEM_LIMIT, read from its
/// cgroups), of those `names` lists; contexts without one are left out,
/// and so is everything where the cgroups cannot be read (inside a
/// server).
pub fn memory_limits(names: &Names) -> BTreeMap<u32, u64> {
    let Ok(layout) = crate::kernel::cgroup::Layout::detect() else {
        return BTreeMap::new();
    };
    names
        .contexts()
        .iter()
        .filter_map(|(xid, dir)| Some((*xid, crate::kernel::resources::memory_limit(&layout, dir)?)))
        .collect()
}

/// A memory limit for a table: vserver-stat's size, `-` for none.
pub fn limit(limits: &BTreeMap<u32, u64>, xid: u32) -> String {
    limits.get(&xid).map_or_else(|| "-".to_owned(), |&n| human(n))
}

/// vserver-stat's sizes: divided by 1024 until below 1000, with one
/// truncated decimal when it is not zero, and a unit letter.
pub fn human(bytes: u64) -> String {
    let units = ["", "K", "M", "G", "T", "P"];
    let (mut v, mut rem, mut u) = (bytes, 0u64, 0);
    while v >= 1000 && u + 1 < units.len() {
        rem = v % 1024;
        v /= 1024;
        u += 1;
    }
    let tenth = rem * 10 / 1024;
    if u > 0 && tenth > 0 && v < 100 {
        format!("{v}.{tenth}{}", units[u])
    } else {
        format!("{v}{}", units[u])
    }
}

/// vserver-stat's times, from milliseconds: `MmSSsCC` under an hour,
/// `HhMMmSS` under a day, `DdHHhMM` under 1000 days, else `YyDDdHH`.
pub fn duration(ms: u64) -> String {
    let (cs, s) = ((ms / 10) % 100, ms / 1000);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if h == 0 {
        format!("{m}m{:02}s{cs:02}", s % 60)
    } else if d == 0 {
        format!("{h}h{:02}m{:02}", m % 60, s % 60)
    } else if d < 1000 {
        format!("{d}d{:02}h{:02}", h % 24, m % 60)
    } else {
        format!("{}y{:02}d{:02}", d / 365, d % 365, h % 24)
    }
}

/// ps's TIME: `M:SS`, or `HH:MM:SS` with `long`.
pub fn cpu_time(ticks: u64, long: bool) -> String {
    let s = ticks / proctable::ticks();
    if long {
        format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// ps's STAT: state, then `<`/`N` for niceness, `s` session leader,
/// `l` threads, `+` foreground.
pub fn stat(p: &Proc) -> String {
    let mut s = p.state.to_string();
    if p.nice < 0 {
        s.push('<');
    } else if p.nice > 0 {
        s.push('N');
    }
    if p.pid == p.session {
        s.push('s');
    }
    if p.threads > 1 {
        s.push('l');
    }
    if p.tpgid > 0 && p.tpgid as u32 == p.pgrp {
        s.push('+');
    }
    s
}

/// `12.5` (seconds) as 12500 milliseconds; None if it is not a number.
pub fn parse_millis(s: &str) -> Option<u64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: String = frac.chars().chain("000".chars()).take(3).collect();
    int.parse::<u64>().unwrap_or(0).checked_mul(1000)?.checked_add(ms.parse().ok()?)
}

/// A per-mille value as `12.3`.
pub fn tenths(permille: u64) -> String {
    format!("{}.{}", permille / 10, permille % 10)
}

pub use crate::json::str as json_str;

/// Lines of a process tree: (depth, process), children by pid.
pub fn tree(procs: &[Proc]) -> Vec<(usize, &Proc)> {
    let pids: std::collections::HashSet<u32> = procs.iter().map(|p| p.pid).collect();
    let mut kids: BTreeMap<u32, Vec<&Proc>> = BTreeMap::new();
    let mut roots = Vec::new();
    for p in procs {
        if p.ppid != 0 && p.ppid != p.pid && pids.contains(&p.ppid) {
            kids.entry(p.ppid).or_default().push(p);
        } else {
            roots.push(p);
        }
    }
    let mut out = Vec::new();
    let mut stack: Vec<(usize, &Proc)> = roots.into_iter().rev().map(|p| (0, p)).collect();
    while let Some((d, p)) = stack.pop() {
        out.push((d, p));
        if let Some(ch) = kids.get(&p.pid) {
            stack.extend(ch.iter().rev().map(|c| (d + 1, *c)));
        }
    }
    out
}

/// vpstree's lines: each process indented two spaces per level, as
/// `COMMAND(PID) [CTX NAME]`, with ` =VPID` after the PID when its own PID
/// namespace numbers it differently, and only the number for a context
/// without a name. `args`: the command line instead of the command's name.
pub fn tree_text(procs: &[Proc], names: &Names, args: bool) -> String {
    let mut out = String::new();
    for (depth, p) in tree(procs) {
        let what = if args { &p.args } else { &p.comm };
        let ctx = match names.of(p.xid) {
            "" => p.xid.to_string(),
            n => format!("{} {n}", p.xid),
        };
        let vpid = if p.vpid != p.pid { format!(" ={}", p.vpid) } else { String::new() };
        out.push_str(&format!("{}{what}({}{vpid}) [{ctx}]\n", "  ".repeat(depth), p.pid));
    }
    out
}

/// Aligned text columns: the last column is left unpadded.
pub fn table(rows: &[Vec<String>], right: &[bool]) -> String {
    let n = rows.first().map_or(0, Vec::len);
    let mut w = vec![0; n];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            if i + 1 == n {
                line.push_str(c);
            } else if right.get(i).copied().unwrap_or(false) {
                line.push_str(&format!("{c:>w$}", w = w[i]));
            } else {
                line.push_str(&format!("{c:<w$}", w = w[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The name column of vserver-stat: `root server`, `monitoring server`,
/// the guest's name, or nothing.
pub fn stat_name(names: &Names, xid: u32) -> String {
    match xid {
        0 => "root server".to_owned(),
        1 => "monitoring server".to_owned(),
        x => names.of(x).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_the_original() {
        assert_eq!(human(512), "512");
        assert_eq!(human(999), "999");
        assert_eq!(human(1024 * 1024), "1M");
        assert_eq!(human(1536 * 1024), "1.5M");
        assert_eq!(human(256 * 1024 * 1024), "256M");
        assert_eq!(human(1200 * 1024 * 1024), "1.1G");
    }

    #[test]
    fn fixed_point() {
        assert_eq!(parse_millis("12.5"), Some(12500));
        assert_eq!(parse_millis("0.2"), Some(200));
        assert_eq!(parse_millis("3"), Some(3000));
        assert_eq!(parse_millis("1.23456"), Some(1234));
        assert_eq!(parse_millis("x"), None);
        assert_eq!(parse_millis("."), None);
        assert_eq!(parse_millis("-1"), None);
        assert_eq!(tenths(1234), "123.4");
        assert_eq!(tenths(5), "0.5");
    }

    #[test]
    fn durations_like_the_original() {
        assert_eq!(duration(61_230), "1m01s23");
        assert_eq!(duration(3_723_000), "1h02m03");
        assert_eq!(duration(93_780_000), "1d02h03");
        assert_eq!(duration(0), "0m00s00");
    }

    #[test]
    fn trees_and_tables() {
        let p = |pid, ppid| Proc {
            pid,
            ppid,
            ..Default::default()
        };
        let procs = vec![p(1, 0), p(2, 1), p(3, 2), p(4, 1), p(9, 77)];
        let t: Vec<(usize, u32)> = tree(&procs).iter().map(|(d, p)| (*d, p.pid)).collect();
        assert_eq!(t, vec![(0, 1), (1, 2), (2, 3), (1, 4), (0, 9)]);
        let s = table(&[vec!["PID".into(), "CMD".into()], vec!["1".into(), "init".into()]], &[true]);
        assert_eq!(s, "PID CMD\n  1 init\n");
        assert_eq!(json_str("a\"b\n"), "\"a\\\"b\\u000a\"");
    }

    #[test]
    fn tree_lines() {
        let p = |pid, ppid, vpid, xid, comm: &str| Proc {
            pid,
            ppid,
            vpid,
            xid,
            comm: comm.into(),
            args: format!("/sbin/{comm} -x"),
            ..Default::default()
        };
        let procs = vec![
            p(1, 0, 1, 0, "init"),
            p(50, 1, 1, 40000, "vsbox-init"),
            p(51, 50, 2, 40000, "sleep"),
        ];
        let names = Names::default();
        assert_eq!(
            tree_text(&procs, &names, false),
            "init(1) [0 MAIN]\n  vsbox-init(50 =1) [40000]\n    sleep(51 =2) [40000]\n"
        );
        assert!(tree_text(&procs, &names, true).starts_with("/sbin/init -x(1) [0 MAIN]\n"));
    }
}
