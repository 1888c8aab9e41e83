//! vps: ps with two more columns, CTX and VSERVER.
//! See: man/vps.8; the original: vserver-reference.md §1.6.
//!
//! Native: reads /proc itself. Accepts the option sets admins type —
//! `vps`, `vps ax`, `vps aux`, `vps -ef`, `vps -e -o pid,ctx,vserver,comm`
//! — and always shows every process of every context. The options,
//! columns and JSON are admin::ps's.

use crate::admin::proctable::{self, Names};
use crate::admin::ps::{self, Host, Ps};
use crate::applet::{self, Applet};
use crate::error::Result;
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
    short_lived: true,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    // Our long options first; everything else is ps's, behind "--".
    applet::entry(&APPLET, name, &ps::argh_order(argv), run)
}

fn run(args: Args, _name: &str) -> Result<i32> {
    let opts = Ps::parse(&args.ps)?;
    let names = Names::load();
    let procs = ps::processes(opts.want(args.json), args.xid.as_deref(), &names)?;
    if args.json {
        print!("{}", ps::json(&procs, &names, proctable::page_size()));
    } else {
        print!("{}", opts.table(&procs, &names, &Host::read()));
    }
    Ok(0)
}
