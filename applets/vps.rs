//! vps: ps with two more columns, CTX and VSERVER.
//! See: man/vps.8; the original: vserver-reference.md §1.6.
//!
//! Native: reads /proc itself. Accepts the option sets admins type —
//! `vps`, `vps ax`, `vps aux`, `vps -ef`, `vps -e -o pid,ctx,vserver,comm`
//! — and always shows every process of every context.

use crate::applet::{self, Applet};
use crate::error::{Error, Result};
use crate::kill;
use crate::proctable::{self, Names, Proc, Want};
use crate::report;
use argh::FromArgs;

/// Show every process of every context, with its context and server name.
#[derive(FromArgs)]
#[argh(
    note = "ps options: ax, aux, -e, -ef, -f, -o COL,… (pid vpid ppid ctx vserver user uid stat tty time vsz rss ni pcpu pmem comm args)."
)]
#[argh(example = "vps aux\nvps -e -o pid,vpid,ctx,vserver,comm\nvps --xid web")]
pub struct Args {
    /// only this context (number or server name)
    #[argh(option)]
    pub xid: Option<String>,
    /// JSON for scripts
    #[argh(switch)]
    pub json: bool,
    /// ps-style options
    #[argh(positional, greedy)]
    pub ps: Vec<String>,
}

pub const APPLET: Applet = Applet {
    name: "vps",
    summary: "show every process of every context, with its context and server name",
    aliases: &[],
    runs_command: false,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    // Our long options first; everything else is ps's, behind "--".
    let (mut ours, mut ps) = (Vec::new(), Vec::new());
    let mut it = argv.iter().copied();
    while let Some(a) = it.next() {
        match a {
            "--xid" => match it.next() {
                Some(v) => ours.extend([a, v]),
                // argh names the option that lacks its value.
                None => return applet::entry(&APPLET, name, &[a], run),
            },
            "--json" | "--help" => ours.push(a),
            "--" => {}
            _ => ps.push(a),
        }
    }
    ours.push("--");
    ours.extend(ps);
    applet::entry(&APPLET, name, &ours, run)
}

#[derive(Clone, Copy, PartialEq)]
enum Col {
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

fn col(name: &str) -> Result<(Col, &'static str)> {
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

/// A ps option letter `opt` this vps does not know, met in argument `arg`.
fn unsupported(opt: &str, arg: &str) -> Error {
    if opt == arg {
        Error::usage(format!("unsupported ps option '{opt}'"))
    } else {
        Error::usage(format!("unsupported ps option '{opt}' in '{arg}'"))
    }
}

/// The columns the ps options ask for.
fn columns(ps: &[String]) -> Result<Vec<(Col, &'static str)>> {
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
    if !custom.is_empty() {
        return Ok(custom);
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
    names.iter().map(|n| col(n)).collect()
}

/// `now`: milliseconds since boot; `mem`: bytes of memory.
fn cell(c: Col, p: &Proc, names: &Names, users: &std::collections::HashMap<u32, String>, now: u64, mem: u64, full: bool) -> String {
    let hz = proctable::ticks();
    match c {
        Col::Pid => p.pid.to_string(),
        Col::Vpid => p.vpid.to_string(),
        Col::Ppid => p.ppid.to_string(),
        Col::Ctx => p.xid.to_string(),
        Col::Vserver => names.of(p.xid).to_owned(),
        Col::User => users.get(&p.uid).cloned().unwrap_or_else(|| p.uid.to_string()),
        Col::Uid => {
            if full {
                users.get(&p.uid).cloned().unwrap_or_else(|| p.uid.to_string())
            } else {
                p.uid.to_string()
            }
        }
        Col::Stat => report::stat(p),
        Col::Tty => proctable::tty_name(p.tty),
        Col::Time => report::cpu_time(p.utime + p.stime, full),
        Col::Vsz => (p.vsz / 1024).to_string(),
        Col::Rss => (p.rss * proctable::page_size() / 1024).to_string(),
        Col::Ni => p.nice.to_string(),
        Col::Pcpu => {
            let life = now.saturating_sub(p.start * 1000 / hz);
            report::tenths(((p.utime + p.stime) * 1000 / hz * 1000).checked_div(life).unwrap_or(0))
        }
        Col::Pmem => report::tenths((p.rss * proctable::page_size() * 1000).checked_div(mem).unwrap_or(0)),
        Col::Start => {
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let t = (wall.saturating_sub(now) + p.start * 1000 / hz) / 1000;
            format!("{:02}:{:02}", (t / 3600) % 24, (t / 60) % 60)
        }
        Col::Comm => p.comm.clone(),
        Col::Args => p.args.clone(),
    }
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |k| k * 1024)
}

fn run(args: Args, _name: &str) -> Result<i32> {
    let cols = columns(&args.ps)?;
    let names = Names::load();
    let only = args.xid.as_deref().map(|x| kill::parse_context(x, &names)).transpose()?;
    let want = Want {
        vpid: args.json || cols.iter().any(|(c, _)| *c == Col::Vpid),
        args: true,
        uid: args.json || cols.iter().any(|(c, _)| matches!(c, Col::User | Col::Uid)),
    };
    let mut procs = proctable::scan(want);
    if let Some(x) = only {
        procs.retain(|p| p.xid == x);
    }
    if args.json {
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
                p.rss * proctable::page_size(),
                p.utime + p.stime,
                report::json_str(&p.comm),
                report::json_str(&p.args)
            ));
        }
        out.push_str("\n]\n");
        print!("{out}");
        return Ok(0);
    }
    let users = proctable::user_names();
    let (now, mem) = (proctable::uptime_ms(), mem_total());
    let full = args.ps.iter().any(|a| a.starts_with('-') && a.contains('f'));
    let mut rows = vec![cols.iter().map(|(_, h)| (*h).to_owned()).collect::<Vec<_>>()];
    for p in &procs {
        rows.push(cols.iter().map(|(c, _)| cell(*c, p, &names, &users, now, mem, full)).collect());
    }
    let right: Vec<bool> = cols
        .iter()
        .map(|(c, _)| {
            matches!(
                c,
                Col::Pid | Col::Vpid | Col::Ppid | Col::Ctx | Col::Vsz | Col::Rss | Col::Ni | Col::Pcpu | Col::Pmem
            )
        })
        .collect();
    print!("{}", report::table(&rows, &right));
    Ok(0)
}
