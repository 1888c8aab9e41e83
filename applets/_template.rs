//! NAME: one line saying what it does.
//! See: man/NAME.8; the original: ../shared/reference/vserver-reference.md.
//!
//! Copy this file to applets/NAME.rs, write man/NAME.8, and fill in Args,
//! APPLET and run. build.rs picks the file up; keep the shape.

use crate::applet::{self, Applet};
use crate::error::Result;
use argh::FromArgs;

/// One line saying what it does (same as APPLET.summary).
#[derive(FromArgs)]
pub struct Args {
    /// an option
    #[argh(switch)]
    pub verbose: bool,
}

pub const APPLET: Applet = Applet {
    name: "NAME",
    summary: "one line saying what it does",
    aliases: &[],
    runs_command: false,
    short_lived: false,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn run(args: Args, _name: &str) -> Result<i32> {
    let _ = args.verbose;
    Ok(0)
}
