//! chcontext: run a command in a new or existing security context.
//! See: man/chcontext.8; the original: vserver-reference.md §1.1.
//!
//! Unlike the original, the "New security context is N" line goes to
//! stderr (so it never mixes into the command's output), flags and
//! capabilities that are unknown are errors rather than warnings, and a
//! user without privileges gets a context too, through a user namespace.

use crate::applet::{self, Applet};
use crate::context;
use crate::context::launch::{self, Spec};
use crate::error::{Error, Result};
use crate::kernel::caps;
use argh::FromArgs;

/// Run a command in a new or existing security context.
#[derive(FromArgs)]
#[argh(note = "CAP is CAP_NET_RAW, NET_RAW or !CAP_X (remove). Flags: lock, sched, nproc, private, fakeinit.")]
#[argh(example = "chcontext --hostname test --secure /bin/sh")]
pub struct Args {
    /// context id: root in the host context only; 1 is the spectator,
    /// an existing id joins that context, a free one creates it
    #[argh(option, long = "ctx")]
    pub ctx: Option<String>,
    /// keep (CAP) or remove (!CAP) a capability; repeatable
    #[argh(option)]
    pub cap: Vec<String>,
    /// remove every capability that lets root reconfigure or take over the host
    #[argh(switch)]
    pub secure: bool,
    /// context flag; repeatable, or comma-separated
    #[argh(option)]
    pub flag: Vec<String>,
    /// host name inside the new context
    #[argh(option)]
    pub hostname: Option<String>,
    /// NIS domain name inside the new context ("none" for empty)
    #[argh(option)]
    pub domainname: Option<String>,
    /// run in the background, in a new session, and return at once
    #[argh(switch)]
    pub disconnect: bool,
    /// do not print the new context's number
    #[argh(switch)]
    pub silent: bool,
    /// the command and its arguments
    #[argh(positional, greedy)]
    pub command: Vec<String>,
}

pub const APPLET: Applet = Applet {
    name: "chcontext",
    summary: "run a command in a new or existing security context",
    aliases: &[],
    runs_command: true,
    short_lived: true,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn run(args: Args, name: &str) -> Result<i32> {
    if args.command.is_empty() {
        return Err(Error::usage("no command given"));
    }
    if let Some(why) = args.hostname.as_deref().and_then(crate::guest::config::host_name_fault) {
        return Err(Error::usage(format!("--hostname: {why}")));
    }
    let spec = Spec {
        xid: args.ctx.as_deref().map(context::parse_xid).transpose()?,
        flags: context::parse_flags(&args.flag)?,
        caps: caps::Request::new(args.secure, &args.cap)?,
        hostname: args.hostname,
        domainname: args.domainname,
        disconnect: args.disconnect,
        silent: args.silent,
    };
    launch::chcontext(name, &spec, &args.command)
}
