//! vreboot, vhalt: restart or stop the virtual server they run in.
//! See: man/vreboot.8; the original: vserver-reference.md §1.12.
//!
//! One applet, two names. Through rebootmgr's /dev/reboot when it listens;
//! otherwise by asking vsbox's init (PID 1 of the server) directly. The
//! host and the other servers are never affected.

use crate::applet::{self, Applet};
use crate::error::Result;
use crate::guest::reboot::{self, Request};
use argh::FromArgs;

/// Restart (vreboot) or stop (vhalt) the virtual server this runs in.
#[derive(FromArgs)]
pub struct Args {
    /// rebootmgr's socket (default /dev/reboot)
    #[argh(option, default = "String::from(reboot::SOCKET)")]
    pub socket: String,
}

pub const APPLET: Applet = Applet {
    name: "vreboot",
    summary: "restart (vreboot) or stop (vhalt) the virtual server this runs in",
    aliases: &["vhalt"],
    runs_command: false,
    short_lived: true,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn run(args: Args, name: &str) -> Result<i32> {
    let req = if name.contains("halt") { Request::Halt } else { Request::Reboot };
    reboot::ask(req, std::path::Path::new(&args.socket))?;
    Ok(0)
}
