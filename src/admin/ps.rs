//! vps's ps options, columns and output (SPEC §7; man/vps.8; the original:
//! vserver-reference.md §1.6, which ran procps's ps with CTX and VSERVER
//! added).
//!
//! Options: the sets admins type — BSD `ax`, `aux`, `axw`; UNIX `-e`, `-A`,
//! `-ef`, `-f`; and `-o COL,…` (or `o COL,…`, `-oCOL,…`) with procps's
//! column names and aliases (`COL=HEADER` is accepted, the header ignored).
//! Every process of every context is always shown, so `a`, `x`, `-e` and
//! `-A` change nothing. Anything else is a usage error (exit 2).
//!
//! Columns: as procps prints them — VSZ and RSS in KiB, %CPU as CPU time
//! over lifetime and %MEM as RSS over MemTotal, both in tenths; TIME
//! `M:SS`, or `HH:MM:SS` with a UNIX `-f`; STIME `HH:MM` (UTC); numbers
//! right-aligned, the last column unpadded.
//!
//! JSON (`--json`): an array with one object per process, each on its own
//! line: pid, vpid, ppid, ctx, vserver, uid, stat, tty, vsz (bytes), rss
//! (bytes), time_ticks (clock ticks of user + system time), comm, args.

use crate::admin::kill;
use crate::admin::proctable::{self, Names, Proc, Want};
use crate::admin::report;
use crate::error::{Error, Result};
use std::collections::HashMap;

/// A column vps can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Col {
    Pid,
    Vpid,
    Ppid,
    Ctx,
    Vserver,
    User,
    Uid,
    Stat,
    Tty,
    Time,
    Vsz,
    Rss,
    Ni,
    Pcpu,
    Pmem,
    Start,
    Comm,
    Args,
}

impl Col {
    /// Numbers, right-aligned as ps aligns them.
    fn right(self) -> bool {
        matches!(
            self,
            Col::Pid | Col::Vpid | Col::Ppid | Col::Ctx | Col::Vsz | Col::Rss | Col::Ni | Col::Pcpu | Col::Pmem
        )
    }
}

/// A column by its procps name or alias, with its header.
pub fn col(name: &str) -> Result<(Col, &'static str)> {
    Ok(match name {
        "pid" => (Col::Pid, "PID"),
        "vpid" => (Col::Vpid, "VPID"),
        "ppid" => (Col::Ppid, "PPID"),
        "ctx" | "xid" => (Col::Ctx, "CTX"),
        "vserver" => (Col::Vserver, "VSERVER"),
        "user" => (Col::User, "USER"),
        "uid" => (Col::Uid, "UID"),
        "stat" | "s" => (Col::Stat, "STAT"),
        "tty" | "tt" => (Col::Tty, "TTY"),
        "time" => (Col::Time, "TIME"),
        "vsz" => (Col::Vsz, "VSZ"),
        "rss" => (Col::Rss, "RSS"),
        "ni" | "nice" => (Col::Ni, "NI"),
        "pcpu" | "%cpu" => (Col::Pcpu, "%CPU"),
        "pmem" | "%mem" => (Col::Pmem, "%MEM"),
        "start" | "stime" => (Col::Start, "STIME"),
        "comm" => (Col::Comm, "COMMAND"),
        "args" | "cmd" | "command" => (Col::Args, "COMMAND"),
        other => return Err(Error::usage(format!("unknown column '{other}'"))),
    })
}

/// vps's own options before ps's, which go behind `--`, so that argh takes
/// `-ef` or `aux` as positionals: `--xid V`, `--json` and `--help` are
/// vps's, everything else is ps's. A `--xid` without its value comes back
/// alone, so that argh names the option that lacks it.
pub fn argh_order<'a>(argv: &[&'a str]) -> Vec<&'a str> {
    let (mut ours, mut ps) = (Vec::new(), Vec::new());
    let mut it = argv.iter().copied();
    while let Some(a) = it.next() {
        match a {
            "--xid" => match it.next() {
                Some(v) => ours.extend([a, v]),
                None => return vec![a],
            },
            "--json" | "--help" => ours.push(a),
            "--" => {}
            _ => ps.push(a),
        }
    }
    ours.push("--");
    ours.extend(ps);
    ours
}

/// A ps option letter `opt` this vps does not know, met in argument `arg`.
fn unsupported(opt: &str, arg: &str) -> Error {
    if opt == arg {
        Error::usage(format!("unsupported ps option '{opt}'"))
    } else {
        Error::usage(format!("unsupported ps option '{opt}' in '{arg}'"))
    }
}

/// What the ps options ask for.
#[derive(Debug, PartialEq, Eq)]
pub struct Ps {
    /// Columns with their headers, in order.
    pub cols: Vec<(Col, &'static str)>,
    /// A UNIX option with an `f` (`-f`, `-ef`): UID as a name and TIME as
    /// `HH:MM:SS`, as `ps -f` prints them.
    pub full: bool,
}

impl Ps {
    /// Parses ps's options (SPEC §7): the columns asked for with `-o`, else
    /// those of `u` (BSD user format), `-f` (UNIX full format) or the plain
    /// default, each with CTX and VSERVER after PID.
    pub fn parse(ps: &[String]) -> Result<Ps> {
        let mut custom = Vec::new();
        let (mut full, mut bsd_u) = (false, false);
        let mut it = ps.iter();
        while let Some(a) = it.next() {
            if a == "-o" || a == "o" {
                let list = it.next().ok_or_else(|| Error::usage(format!("'{a}' needs a column list")))?;
                for c in list.split(',').filter(|c| !c.is_empty()) {
                    custom.push(col(c.split('=').next().unwrap_or(c))?);
                }
            } else if let Some(list) = a.strip_prefix("-o") {
                for c in list.split(',').filter(|c| !c.is_empty()) {
                    custom.push(col(c)?);
                }
            } else if a.starts_with("--") {
                return Err(Error::usage(format!("unsupported option '{a}'")));
            } else if let Some(flags) = a.strip_prefix('-') {
                for f in flags.chars() {
                    match f {
                        'e' | 'A' | 'a' | 'x' => {}
                        'f' => full = true,
                        other => return Err(unsupported(&format!("-{other}"), a)),
                    }
                }
            } else {
                for f in a.chars() {
                    match f {
                        'a' | 'x' | 'w' => {}
                        'u' => bsd_u = true,
                        other => return Err(unsupported(&other.to_string(), a)),
                    }
                }
            }
        }
        // Any dash argument with an `f` in it, as vps has always read it.
        let full_names = ps.iter().any(|a| a.starts_with('-') && a.contains('f'));
        if !custom.is_empty() {
            return Ok(Ps {
                cols: custom,
                full: full_names,
            });
        }
        let names: &[&str] = if bsd_u {
            &[
                "user", "pid", "ctx", "vserver", "pcpu", "pmem", "vsz", "rss", "tty", "stat", "start", "time", "args",
            ]
        } else if full {
            &["uid", "pid", "ppid", "ctx", "vserver", "start", "tty", "time", "args"]
        } else {
            &["pid", "ctx", "vserver", "tty", "stat", "time", "args"]
        };
        Ok(Ps {
            cols: names.iter().map(|n| col(n)).collect::<Result<_>>()?,
            full: full_names,
        })
    }

    /// What the process table must read for these columns, or for JSON.
    pub fn want(&self, json: bool) -> Want {
        Want {
            vpid: json || self.cols.iter().any(|(c, _)| *c == Col::Vpid),
            args: true,
            uid: json || self.cols.iter().any(|(c, _)| matches!(c, Col::User | Col::Uid)),
        }
    }

    /// The table: a header line, then a line per process.
    pub fn table(&self, procs: &[Proc], names: &Names, host: &Host) -> String {
        let mut rows = vec![self.cols.iter().map(|(_, h)| (*h).to_owned()).collect::<Vec<_>>()];
        for p in procs {
            rows.push(self.cols.iter().map(|(c, _)| self.cell(*c, p, names, host)).collect());
        }
        let right: Vec<bool> = self.cols.iter().map(|(c, _)| c.right()).collect();
        report::table(&rows, &right)
    }

    fn cell(&self, c: Col, p: &Proc, names: &Names, host: &Host) -> String {
        let hz = host.hz;
        let user = || host.users.get(&p.uid).cloned().unwrap_or_else(|| p.uid.to_string());
        match c {
            Col::Pid => p.pid.to_string(),
            Col::Vpid => p.vpid.to_string(),
            Col::Ppid => p.ppid.to_string(),
            Col::Ctx => p.xid.to_string(),
            Col::Vserver => names.of(p.xid).to_owned(),
            Col::User => user(),
            Col::Uid if self.full => user(),
            Col::Uid => p.uid.to_string(),
            Col::Stat => report::stat(p),
            Col::Tty => proctable::tty_name(p.tty),
            Col::Time => report::cpu_time(p.utime + p.stime, self.full),
            Col::Vsz => (p.vsz / 1024).to_string(),
            Col::Rss => (p.rss * host.page / 1024).to_string(),
            Col::Ni => p.nice.to_string(),
            Col::Pcpu => {
                let life = host.uptime_ms.saturating_sub(p.start * 1000 / hz);
                report::tenths(((p.utime + p.stime) * 1000 / hz * 1000).checked_div(life).unwrap_or(0))
            }
            Col::Pmem => report::tenths((p.rss * host.page * 1000).checked_div(host.mem).unwrap_or(0)),
            Col::Start => {
                let t = (host.wall_ms.saturating_sub(host.uptime_ms) + p.start * 1000 / hz) / 1000;
                format!("{:02}:{:02}", (t / 3600) % 24, (t / 60) % 60)
            }
            Col::Comm => p.comm.clone(),
            Col::Args => p.args.clone(),
        }
    }
}

/// The host's facts the columns are computed from.
pub struct Host {
    /// Clock ticks per second.
    pub hz: u64,
    /// Bytes per page.
    pub page: u64,
    /// Milliseconds since boot.
    pub uptime_ms: u64,
    /// Milliseconds since the epoch.
    pub wall_ms: u64,
    /// MemTotal, bytes.
    pub mem: u64,
    /// User names by uid, from the host's /etc/passwd.
    pub users: HashMap<u32, String>,
}

impl Host {
    pub fn read() -> Host {
        Host {
            hz: proctable::ticks(),
            page: proctable::page_size(),
            uptime_ms: proctable::uptime_ms(),
            wall_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            mem: proctable::mem_total(),
            users: proctable::user_names(),
        }
    }
}

/// The processes of every context, or of the one `xid` names (a number or
/// a server's name; an unknown one is a usage error).
pub fn processes(want: Want, xid: Option<&str>, names: &Names) -> Result<Vec<Proc>> {
    let only = xid.map(|x| kill::parse_context(x, names)).transpose()?;
    proctable::see_every_context();
    let mut procs = proctable::scan(want, names);
    if let Some(x) = only {
        procs.retain(|p| p.xid == x);
    }
    Ok(procs)
}

/// `--json`: see the module's documentation; `page` is bytes per page.
pub fn json(procs: &[Proc], names: &Names, page: u64) -> String {
    let mut out = String::from("[");
    for (i, p) in procs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "\n{{\"pid\":{},\"vpid\":{},\"ppid\":{},\"ctx\":{},\"vserver\":{},\"uid\":{},\"stat\":{},\"tty\":{},\"vsz\":{},\"rss\":{},\"time_ticks\":{},\"comm\":{},\"args\":{}}}",
            p.pid,
            p.vpid,
            p.ppid,
            p.xid,
            report::json_str(names.of(p.xid)),
            p.uid,
            report::json_str(&report::stat(p)),
            report::json_str(&proctable::tty_name(p.tty)),
            p.vsz,
            p.rss * page,
            p.utime + p.stime,
            report::json_str(&p.comm),
            report::json_str(&p.args)
        ));
    }
    out.push_str("\n]\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Ps> {
        Ps::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    fn headers(args: &[&str]) -> Vec<&'static str> {
        parse(args).unwrap().cols.into_iter().map(|(_, h)| h).collect()
    }

    #[test]
    fn the_option_sets_admins_type() {
        let plain = ["PID", "CTX", "VSERVER", "TTY", "STAT", "TIME", "COMMAND"];
        assert_eq!(headers(&[]), plain);
        assert_eq!(headers(&["ax"]), plain);
        assert_eq!(headers(&["-e"]), plain);
        assert_eq!(headers(&["-A"]), plain);
        assert_eq!(
            headers(&["aux"]),
            ["USER", "PID", "CTX", "VSERVER", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "STIME", "TIME", "COMMAND"]
        );
        assert_eq!(
            headers(&["-ef"]),
            ["UID", "PID", "PPID", "CTX", "VSERVER", "STIME", "TTY", "TIME", "COMMAND"]
        );
        assert!(parse(&["-ef"]).unwrap().full);
        assert!(!parse(&["aux"]).unwrap().full);
        assert_eq!(
            headers(&["-e", "-o", "pid,vpid,ctx,vserver,comm"]),
            ["PID", "VPID", "CTX", "VSERVER", "COMMAND"]
        );
        assert_eq!(headers(&["o", "xid,%cpu=CPU,cmd"]), ["CTX", "%CPU", "COMMAND"]);
        assert_eq!(headers(&["-opid,nice"]), ["PID", "NI"]);
        // -o wins over the formats; a dash argument with f still means full.
        let p = parse(&["-f", "-o", "uid,time"]).unwrap();
        assert_eq!(p.cols, [(Col::Uid, "UID"), (Col::Time, "TIME")]);
        assert!(p.full);
    }

    #[test]
    fn bad_options_are_usage_errors() {
        for (args, msg) in [
            (&["-o", "bogus"][..], "unknown column 'bogus'"),
            (&["-o"], "'-o' needs a column list"),
            (&["o"], "'o' needs a column list"),
            (&["--sort"], "unsupported option '--sort'"),
            (&["-L"], "unsupported ps option '-L'"),
            (&["-eL"], "unsupported ps option '-L' in '-eL'"),
            (&["auxf"], "unsupported ps option 'f' in 'auxf'"),
        ] {
            let e = parse(args).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Usage, "{args:?}");
            assert!(e.to_string().contains(msg), "{args:?}: {e}");
        }
    }

    #[test]
    fn vps_options_go_before_ps_options() {
        assert_eq!(argh_order(&["aux"]), ["--", "aux"]);
        assert_eq!(
            argh_order(&["-ef", "--xid", "web", "--json", "--", "-o", "pid"]),
            ["--xid", "web", "--json", "--", "-ef", "-o", "pid"]
        );
        assert_eq!(argh_order(&["-e", "--xid"]), ["--xid"]);
        assert_eq!(argh_order(&["--help"]), ["--help", "--"]);
    }

    fn host() -> Host {
        Host {
            hz: 100,
            page: 4096,
            uptime_ms: 1_000_000,
            // 1970-01-02 00:16:40 UTC, so that boot was at 00:00:00.
            wall_ms: 86_400_000 + 1_000_000,
            mem: 1 << 30,
            users: [(0, "root".to_owned())].into(),
        }
    }

    fn proc(pid: u32, uid: u32) -> Proc {
        Proc {
            pid,
            vpid: 1,
            ppid: 1,
            xid: 40000,
            uid,
            state: 'S',
            session: pid,
            // 25 s of CPU over a life of 500 s: 5.0 %.
            utime: 2000,
            stime: 500,
            start: 50_000,
            vsz: 10 << 20,
            rss: 256,
            comm: "sleep".into(),
            args: "sleep 60".into(),
            ..Default::default()
        }
    }

    #[test]
    fn columns_as_ps_prints_them() {
        let names = Names::default();
        let procs = [proc(7, 0), proc(12345, 1000)];
        let aux = parse(&["aux"]).unwrap().table(&procs, &names, &host());
        assert_eq!(
            aux,
            "USER   PID   CTX VSERVER %CPU %MEM   VSZ  RSS TTY STAT STIME TIME COMMAND\n\
             root     7 40000          5.0  0.0 10240 1024 ?   Ss   00:08 0:25 sleep 60\n\
             1000 12345 40000          5.0  0.0 10240 1024 ?   Ss   00:08 0:25 sleep 60\n"
        );
        let ef = parse(&["-ef"]).unwrap().table(&procs[1..], &names, &host());
        assert_eq!(
            ef,
            "UID    PID PPID   CTX VSERVER STIME TTY TIME     COMMAND\n\
             1000 12345    1 40000         00:08 ?   00:00:25 sleep 60\n"
        );
    }

    #[test]
    fn json_one_object_a_line() {
        let names = Names::default();
        assert_eq!(json(&[], &names, 4096), "[\n]\n");
        let mut p = proc(7, 0);
        p.args = "echo \"hi\"".into();
        assert_eq!(
            json(&[p], &names, 4096),
            "[\n{\"pid\":7,\"vpid\":1,\"ppid\":1,\"ctx\":40000,\"vserver\":\"\",\"uid\":0,\"stat\":\"Ss\",\"tty\":\"?\",\
             \"vsz\":10485760,\"rss\":1048576,\"time_ticks\":2500,\"comm\":\"sleep\",\"args\":\"echo \\\"hi\\\"\"}\n]\n"
        );
    }
}
