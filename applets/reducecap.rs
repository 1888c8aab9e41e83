//! reducecap: lower the capability ceiling of a command, for good.
//! See: man/reducecap.8; the original: vserver-reference.md §1.3.
//!
//! The original's per-capability options were broken and its mask was 32
//! bits; here `--cap` keeps or removes any capability the kernel knows and
//! `--secure` is an allow-list, so capabilities newer than the list are
//! dropped too.

use crate::applet::{self, Applet};
use crate::context::exec;
use crate::error::{Error, Result};
use crate::kernel::caps;
use argh::FromArgs;

/// Lower the capability ceiling of a command and its descendants, irreversibly.
#[derive(FromArgs)]
#[argh(example = "reducecap --secure --cap NET_RAW -- /usr/sbin/httpd")]
pub struct Args {
    /// remove every capability that lets root reconfigure or take over the host
    #[argh(switch)]
    pub secure: bool,
    /// keep (CAP) or remove (!CAP) a capability; repeatable
    #[argh(option)]
    pub cap: Vec<String>,
    /// print the resulting capability sets instead of running a command
    #[argh(switch)]
    pub show: bool,
    /// the command and its arguments
    #[argh(positional, greedy)]
    pub command: Vec<String>,
}

pub const APPLET: Applet = Applet {
    name: "reducecap",
    summary: "lower the capability ceiling of a command, irreversibly",
    aliases: &[],
    runs_command: true,
    short_lived: true,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn run(args: Args, name: &str) -> Result<i32> {
    let req = caps::Request::new(args.secure, &args.cap)?;
    match (args.show, args.command.is_empty()) {
        (true, false) => {
            return Err(Error::usage(format!(
                "unexpected command '{}': --show prints the sets and runs nothing",
                args.command[0]
            )))
        }
        (false, true) => return Err(Error::usage("no command given")),
        _ => {}
    }
    if !req.is_empty() {
        caps::limit_to(req.apply_to(caps::bounding()?))?;
    }
    if args.show {
        print!("{}", caps::show()?);
        return Ok(0);
    }
    Ok(exec::exec(name, &args.command))
}
