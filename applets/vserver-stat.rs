//! vserver-stat: one line per active context.
//! See: man/vserver-stat.8; the original: vserver-reference.md §1.8 (the
//! util-vserver format; RSS in bytes, not pages).

use crate::admin::proctable::{self, Names, Want};
use crate::admin::report;
use crate::applet::{self, Applet};
use crate::error::Result;
use argh::FromArgs;

/// Show one line per active context: processes, memory, CPU time, uptime.
#[derive(FromArgs)]
pub struct Args {
    /// JSON for scripts
    #[argh(switch)]
    pub json: bool,
    /// a MEMLIM column (MEM_LIMIT in force) after RSS
    #[argh(switch, short = 'm')]
    pub memory_limit: bool,
}

pub const APPLET: Applet = Applet {
    name: "vserver-stat",
    summary: "show one line per active context",
    aliases: &[],
    runs_command: false,
    short_lived: true,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn run(args: Args, _name: &str) -> Result<i32> {
    let names = Names::load();
    proctable::see_every_context();
    let stats = report::by_context(&proctable::scan(Want::default(), &names));
    let hz = proctable::ticks();
    let now_ticks = proctable::uptime_ms() * hz / 1000;
    let ms = |ticks: u64| ticks * 1000 / hz;
    let limits = if args.memory_limit || args.json {
        report::memory_limits(&names)
    } else {
        Default::default()
    };
    if args.json {
        let rows: Vec<String> = stats
            .iter()
            .map(|s| {
                format!(
                    "{{\"ctx\":{},\"proc\":{},\"vsz\":{},\"rss\":{},\"mem_limit\":{},\"user_ms\":{},\"sys_ms\":{},\"uptime_ms\":{},\"name\":{}}}",
                    s.xid,
                    s.procs,
                    s.vsz,
                    s.rss,
                    crate::json::num(limits.get(&s.xid).copied()),
                    ms(s.utime),
                    ms(s.stime),
                    ms(now_ticks.saturating_sub(s.start)),
                    report::json_str(&report::stat_name(&names, s.xid))
                )
            })
            .collect();
        println!("[{}]", rows.join(",\n "));
        return Ok(0);
    }
    // The column is asked for: SPEC §7 fixes the default line, which
    // scripts read by position.
    let memlim = |text: String| if args.memory_limit { format!(" {text:>6}") } else { String::new() };
    let mut out = format!(
        "CTX   PROC    VSZ    RSS{}  userTIME   sysTIME    UPTIME NAME\n",
        memlim("MEMLIM".to_owned())
    );
    for s in &stats {
        out.push_str(&format!(
            "{:<5}{:>5} {:>6} {:>6}{} {:>9} {:>9} {:>9} {}\n",
            s.xid,
            s.procs,
            report::human(s.vsz),
            report::human(s.rss),
            memlim(report::limit(&limits, s.xid)),
            report::duration(ms(s.utime)),
            report::duration(ms(s.stime)),
            report::duration(ms(now_ticks.saturating_sub(s.start))),
            report::stat_name(&names, s.xid)
        ));
    }
    print!("{out}");
    Ok(0)
}
