//! vtop's screens (man/vtop.8; the original ran top in the spectator
//! context): a summary line per context, then the busiest processes.
//!
//! A screen: `vtop: N processes in M contexts`, a table of CTX, VSERVER,
//! PROC, %CPU, RSS and MEMLIM (its MEM_LIMIT, `-` for none) per context, then PID, CTX, VSERVER, %CPU, RSS, TIME
//! and COMMAND of the busiest processes, by CPU share then RSS. %CPU is the
//! share of one CPU, in tenths, used since the previous screen (since boot
//! for the first); RSS is vserver-stat's human size.
//!
//! On a terminal, keys are read one at a time without echo; `q` or the end
//! of input quits.

use crate::admin::proctable::{self, Names, Proc, Want};
use crate::admin::report;
use crate::error::{Context, Error, Result};
use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg, Termios};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// `-d SECONDS` (decimals allowed) as milliseconds: above 0, below an hour.
pub fn parse_delay(s: &str) -> Result<u64> {
    report::parse_millis(s)
        .filter(|ms| (1..3_600_000).contains(ms))
        .ok_or_else(|| Error::usage(format!("bad delay '{s}': a number of seconds above 0")))
}

/// Successive screens: each one's CPU shares are counted since the one
/// before.
pub struct Top {
    /// pid → (start, CPU ticks) at the previous screen.
    prev: HashMap<u32, (u64, u64)>,
    /// When the previous screen was read; None before the first.
    last: Option<Instant>,
}

impl Default for Top {
    fn default() -> Self {
        Self::new()
    }
}

impl Top {
    pub fn new() -> Top {
        proctable::see_every_context();
        Top {
            prev: HashMap::new(),
            last: None,
        }
    }

    /// Reads the process table and returns the next screen, with at most
    /// `lines` processes.
    pub fn next_screen(&mut self, lines: usize) -> String {
        let names = Names::load();
        let procs = proctable::scan(Want::default(), &names);
        let elapsed = match self.last {
            None => proctable::uptime_ms(),
            Some(t) => t.elapsed().as_millis() as u64,
        };
        let text = screen(&self.prev, &procs, &names, &report::memory_limits(&names), elapsed, lines);
        self.prev = procs.iter().map(|p| (p.pid, (p.start, p.utime + p.stime))).collect();
        self.last = Some(Instant::now());
        text
    }
}

/// One screen: CPU shares (per mille) since the previous sample `prev`
/// (pid → (start, CPU ticks)), `elapsed_ms` ago.
/// `limits`: each context's memory limit ([`report::memory_limits`]).
pub fn screen(
    prev: &HashMap<u32, (u64, u64)>,
    procs: &[Proc],
    names: &Names,
    limits: &BTreeMap<u32, u64>,
    elapsed_ms: u64,
    lines: usize,
) -> String {
    let hz = proctable::ticks();
    let page = proctable::page_size();
    let cpu = |p: &Proc| {
        let used = p.utime + p.stime;
        // A new process, or a pid reused by another one, is counted from
        // this screen on.
        let before = prev.get(&p.pid).filter(|(start, _)| *start == p.start).map_or(used, |(_, u)| *u);
        used.saturating_sub(before) * 1000 / hz * 1000 / elapsed_ms.max(1)
    };
    let mut out = String::new();
    let mut ctx: BTreeMap<u32, (u32, u64, u64)> = Default::default();
    for p in procs {
        let e = ctx.entry(p.xid).or_default();
        e.0 += 1;
        e.1 += cpu(p);
        e.2 += p.rss * page;
    }
    out.push_str(&format!(
        "vtop: {} processes in {} contexts\n\nCTX   VSERVER          PROC   %CPU     RSS  MEMLIM\n",
        procs.len(),
        ctx.len()
    ));
    for (x, (n, c, rss)) in &ctx {
        out.push_str(&format!(
            "{x:<5} {:<15} {n:>5} {:>6} {:>7} {:>7}\n",
            names.of(*x),
            report::tenths(*c),
            report::human(*rss),
            report::limit(limits, *x)
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

/// Standard input's terminal without line editing and echo, so that one
/// key press is read at once; restored when dropped.
pub struct Keys {
    saved: Termios,
}

impl Keys {
    pub fn new() -> Result<Keys> {
        let saved = tcgetattr(std::io::stdin()).ctx(|| "read the terminal settings")?;
        let mut raw = saved.clone();
        raw.local_flags.remove(LocalFlags::ICANON | LocalFlags::ECHO);
        tcsetattr(std::io::stdin(), SetArg::TCSANOW, &raw).ctx(|| "set the terminal")?;
        Ok(Keys { saved })
    }

    /// Waits up to `ms` milliseconds for a key: true if it is `q` or the
    /// input ended.
    pub fn quit_within(&self, ms: u64) -> bool {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let stdin = std::io::stdin();
        let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&stdin), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(ms as i32).unwrap_or(PollTimeout::MAX);
        if poll(&mut fds, ms).is_ok_and(|n| n > 0) {
            let mut b = [0u8; 1];
            return nix::unistd::read(0, &mut b).is_ok_and(|n| n == 0) || b[0] == b'q';
        }
        false
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays() {
        assert_eq!(parse_delay("2").unwrap(), 2000);
        assert_eq!(parse_delay("0.2").unwrap(), 200);
        assert_eq!(parse_delay("0.001").unwrap(), 1);
        for bad in ["0", "0.0004", "3600", "-1", "x", ""] {
            let e = parse_delay(bad).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Usage, "{bad}");
            assert_eq!(e.msg, format!("bad delay '{bad}': a number of seconds above 0"));
        }
    }

    #[test]
    fn a_screen_since_the_previous_one() {
        let hz = proctable::ticks();
        let page = proctable::page_size();
        let p = |pid, xid, ticks, rss_bytes: u64, comm: &str| Proc {
            pid,
            xid,
            utime: ticks,
            start: 7,
            rss: rss_bytes / page,
            comm: comm.into(),
            ..Default::default()
        };
        // Over 2 s: pid 10 used half a CPU, pid 11 nothing, and pid 12 is
        // another process than before (another start), counted from now;
        // the busiest first, equal ones by RSS.
        let procs = [
            p(10, 40000, 5 * hz, 1 << 20, "busy"),
            p(11, 40000, 4 * hz, 3 << 20, "idle"),
            p(12, 0, 2 * hz, 2 << 20, "new"),
        ];
        let prev: HashMap<u32, (u64, u64)> = [(10, (7, 4 * hz)), (11, (7, 4 * hz)), (12, (6, 0))].into();
        let limits: BTreeMap<u32, u64> = [(40000, 64 << 20)].into();
        let s = screen(&prev, &procs, &Names::default(), &limits, 2000, 2);
        assert_eq!(
            s,
            "vtop: 3 processes in 2 contexts\n\n\
             CTX   VSERVER          PROC   %CPU     RSS  MEMLIM\n\
             0     MAIN                1    0.0      2M       -\n\
             40000                     2   50.0      4M     64M\n\
             \n\
             PID   CTX VSERVER %CPU RSS TIME COMMAND\n \
              10 40000         50.0  1M 0:05 busy\n \
              11 40000          0.0  3M 0:04 idle\n"
        );
    }
}
