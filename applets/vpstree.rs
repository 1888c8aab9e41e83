//! vpstree: the process tree, each process with its context.
//! See: man/vpstree.8; the original: vserver-reference.md §1.6 (which ran
//! pstree without any context column).

use crate::applet::{self, Applet};
use crate::error::Result;
use crate::kill;
use crate::proctable::{self, Names, Want};
use crate::report;
use argh::FromArgs;

/// Show the process tree with each process's context and server.
#[derive(FromArgs)]
#[argh(example = "vpstree\nvpstree --xid web")]
pub struct Args {
    /// only this context's processes (number or server name)
    #[argh(option)]
    pub xid: Option<String>,
    /// show full command lines instead of command names
    #[argh(switch, short = 'a')]
    pub args: bool,
}

pub const APPLET: Applet = Applet { name: "vpstree", summary: "show the process tree with each process's context", aliases: &[], runs_command: false, main };

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn run(args: Args, _name: &str) -> Result<i32> {
    let names = Names::load();
    let only = args.xid.as_deref().map(|x| kill::parse_context(x, &names)).transpose()?;
    let mut procs = proctable::scan(Want { vpid: true, args: args.args, uid: false });
    if let Some(x) = only {
        procs.retain(|p| p.xid == x);
    }
    let mut out = String::new();
    for (depth, p) in report::tree(&procs) {
        let what = if args.args { &p.args } else { &p.comm };
        let ctx = match names.of(p.xid) {
            "" => p.xid.to_string(),
            n => format!("{} {n}", p.xid),
        };
        let vpid = if p.vpid != p.pid { format!(" ={}", p.vpid) } else { String::new() };
        out.push_str(&format!("{}{what}({}{vpid}) [{ctx}]\n", "  ".repeat(depth), p.pid));
    }
    print!("{out}");
    Ok(0)
}
