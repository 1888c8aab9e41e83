//! vpstree: the process tree, each process with its context.
//! See: man/vpstree.8; the original: vserver-reference.md §1.6 (which ran
//! pstree without any context column).

use crate::admin::proctable::{Names, Want};
use crate::admin::{ps, report};
use crate::applet::{self, Applet};
use crate::error::Result;
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

pub const APPLET: Applet = Applet {
    name: "vpstree",
    summary: "show the process tree with each process's context",
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
    let want = Want {
        vpid: true,
        args: args.args,
        uid: false,
    };
    let procs = ps::processes(want, args.xid.as_deref(), &names)?;
    print!("{}", report::tree_text(&procs, &names, args.args));
    Ok(0)
}
