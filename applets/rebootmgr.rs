//! rebootmgr: serve /dev/reboot in virtual servers, restarting or stopping
//! each on its own request.
//! See: man/rebootmgr.8; the original: vserver-reference.md §1.12.
//!
//! The server is guest::rebootmgr's: a single-threaded loop that every
//! second (re)creates the socket of each running server and answers
//! exactly `reboot\n` and `halt\n`; anything else is logged and dropped,
//! and a flood of connections is cut off.

use crate::applet::{self, Applet};
use crate::error::Result;
use crate::guest::rebootmgr;
use argh::FromArgs;

/// Serve /dev/reboot in virtual servers and restart or stop them on request.
#[derive(FromArgs)]
#[argh(example = "rebootmgr\nrebootmgr web mail")]
pub struct Args {
    /// the servers to serve (default: every server with a configuration)
    #[argh(positional)]
    pub names: Vec<String>,
}

pub const APPLET: Applet = Applet {
    name: "rebootmgr",
    summary: "serve /dev/reboot in virtual servers and restart or stop them on request",
    aliases: &[],
    runs_command: false,
    short_lived: false,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn run(args: Args, _name: &str) -> Result<i32> {
    match rebootmgr::serve(&args.names)? {}
}
