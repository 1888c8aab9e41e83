//! vtop: a live view of the busiest processes with their context, and one
//! summary line per context.
//! See: man/vtop.8; the original ran top in the spectator context.

use crate::applet::{self, Applet};
use crate::error::{Context, Error, Result};
use crate::proctable::{self, Names, Proc, Want};
use crate::report;
use argh::FromArgs;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};

/// Show the busiest processes live, with their context, and a line per context.
#[derive(FromArgs)]
#[argh(example = "vtop\nvtop -b -n 2 -d 0.5")]
pub struct Args {
    /// batch mode: plain text, no terminal control, for scripts
    #[argh(switch, short = 'b')]
    pub batch: bool,
    /// stop after this many screens
    #[argh(option, short = 'n')]
    pub iterations: Option<u32>,
    /// seconds between screens (default 2; decimals allowed)
    #[argh(option, short = 'd', default = "String::from(\"2\")")]
    pub delay: String,
    /// how many processes to list (default 20)
    #[argh(option, default = "20")]
    pub lines: usize,
}

pub const APPLET: Applet = Applet {
    name: "vtop",
    summary: "show the busiest processes live, with their context",
    aliases: &[],
    runs_command: false,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

/// One screen: CPU shares (per mille) since the previous sample,
/// `elapsed_ms` ago.
fn screen(prev: &HashMap<u32, (u64, u64)>, procs: &[Proc], names: &Names, elapsed_ms: u64, lines: usize) -> String {
    let hz = proctable::ticks();
    let page = proctable::page_size();
    let cpu = |p: &Proc| {
        let used = p.utime + p.stime;
        let before = prev.get(&p.pid).filter(|(start, _)| *start == p.start).map_or(used, |(_, u)| *u);
        used.saturating_sub(before) * 1000 / hz * 1000 / elapsed_ms.max(1)
    };
    let mut out = String::new();
    let mut ctx: std::collections::BTreeMap<u32, (u32, u64, u64)> = Default::default();
    for p in procs {
        let e = ctx.entry(p.xid).or_default();
        e.0 += 1;
        e.1 += cpu(p);
        e.2 += p.rss * page;
    }
    out.push_str(&format!(
        "vtop: {} processes in {} contexts\n\nCTX   VSERVER          PROC   %CPU     RSS\n",
        procs.len(),
        ctx.len()
    ));
    for (x, (n, c, rss)) in &ctx {
        out.push_str(&format!(
            "{x:<5} {:<15} {n:>5} {:>6} {:>7}\n",
            names.of(*x),
            report::tenths(*c),
            report::human(*rss)
        ));
    }
    let mut busy: Vec<(&Proc, u64)> = procs.iter().map(|p| (p, cpu(p))).collect();
    busy.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.rss.cmp(&a.0.rss)));
    let mut rows = vec![["PID", "CTX", "VSERVER", "%CPU", "RSS", "TIME", "COMMAND"]
        .map(String::from)
        .to_vec()];
    for (p, c) in busy.into_iter().take(lines) {
        rows.push(vec![
            p.pid.to_string(),
            p.xid.to_string(),
            names.of(p.xid).to_owned(),
            report::tenths(c),
            report::human(p.rss * page),
            report::cpu_time(p.utime + p.stime, false),
            p.comm.clone(),
        ]);
    }
    out.push('\n');
    out.push_str(&report::table(&rows, &[true, true, false, true, true, true]));
    out
}

fn run(args: Args, _name: &str) -> Result<i32> {
    let delay_ms = report::parse_millis(&args.delay)
        .filter(|ms| (1..3_600_000).contains(ms))
        .ok_or_else(|| Error::usage(format!("bad delay '{}': a number of seconds above 0", args.delay)))?;
    if args.iterations == Some(0) {
        return Err(Error::usage("bad -n '0': at least 1 screen"));
    }
    let interactive = !args.batch && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let saved = if interactive {
        let t = nix::sys::termios::tcgetattr(std::io::stdin()).ctx(|| "read the terminal settings")?;
        let mut raw = t.clone();
        raw.local_flags
            .remove(nix::sys::termios::LocalFlags::ICANON | nix::sys::termios::LocalFlags::ECHO);
        nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &raw).ctx(|| "set the terminal")?;
        Some(t)
    } else {
        None
    };
    let mut prev: HashMap<u32, (u64, u64)> = HashMap::new();
    let mut last = std::time::Instant::now();
    let mut first = true;
    let mut count = 0;
    let outcome = loop {
        let procs = proctable::scan(Want::default());
        let names = Names::load();
        let elapsed = if first {
            proctable::uptime_ms()
        } else {
            last.elapsed().as_millis() as u64
        };
        let text = screen(&prev, &procs, &names, elapsed, args.lines);
        prev = procs.iter().map(|p| (p.pid, (p.start, p.utime + p.stime))).collect();
        last = std::time::Instant::now();
        first = false;
        let mut stdout = std::io::stdout();
        let _ = if interactive {
            write!(stdout, "\x1b[H\x1b[2J{text}(q quits)")
        } else {
            writeln!(stdout, "{text}")
        };
        let _ = stdout.flush();
        count += 1;
        if args.iterations.is_some_and(|n| count >= n) {
            break Ok(0);
        }
        if interactive {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            let stdin = std::io::stdin();
            let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&stdin), PollFlags::POLLIN)];
            let ms = PollTimeout::try_from(delay_ms as i32).unwrap_or(PollTimeout::MAX);
            if poll(&mut fds, ms).is_ok_and(|n| n > 0) {
                let mut b = [0u8; 1];
                if nix::unistd::read(0, &mut b).is_ok_and(|n| n == 0) || b[0] == b'q' {
                    break Ok(0);
                }
            }
        } else {
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        }
    };
    if let Some(t) = saved {
        let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &t);
        println!();
    }
    outcome
}
