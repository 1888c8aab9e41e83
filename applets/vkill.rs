//! vkill: signal processes in their own context.
//! See: man/vkill.8; the original: vserver-reference.md §1.7.
//!
//! Every PID is checked before anything is signalled: a bad signal, an
//! unknown context or a PID that is not there changes nothing.

use crate::admin::kill;
use crate::admin::proctable::Names;
use crate::applet::{self, Applet};
use crate::error::Result;
use argh::FromArgs;

/// Signal processes in their own security context.
#[derive(FromArgs)]
#[argh(example = "vkill --xid web -s KILL 42\nvkill --xid 49152")]
pub struct Args {
    /// the context (number or server name); PIDs are then as it numbers
    /// them, and without PIDs every process of it is signalled
    #[argh(option)]
    pub xid: Option<String>,
    /// the signal: a name (TERM, SIGKILL) or a number; default TERM
    #[argh(option, short = 's')]
    pub signal: Option<String>,
    /// process ids
    #[argh(positional)]
    pub pids: Vec<String>,
}

pub const APPLET: Applet = Applet {
    name: "vkill",
    summary: "signal processes in their own security context",
    aliases: &[],
    runs_command: false,
    short_lived: true,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn run(args: Args, _name: &str) -> Result<i32> {
    let sig = kill::parse_signal(args.signal.as_deref().unwrap_or("TERM"))?;
    let names = Names::load();
    let xid = args.xid.as_deref().map(|x| kill::parse_context(x, &names)).transpose()?;
    kill::send(xid, &args.pids, sig)?;
    Ok(0)
}
