//! vrpm: run each server's package manager, then re-unify.
//! See: man/vrpm.8; the original: vserver-reference.md §1.11 (rpm --root
//! from the host; here the package manager runs inside each server, so its
//! scripts act there).

use crate::applet::{self, Applet};
use crate::error::{Error, Result};
use crate::guest::{self, Guest};
use crate::{guest::lifecycle, guest::unify};
use argh::FromArgs;

/// Run each named server's package manager (rpm or dpkg) with the arguments after --, inside the server.
#[derive(FromArgs)]
#[argh(example = "vrpm web mail -- --install /root/pkgs/tool.deb\nvrpm --unify ALL -- -Uvh /tmp/update.rpm")]
pub struct Args {
    /// afterwards let the servers' identical files share disk blocks (the first server is the reference)
    #[argh(switch)]
    pub unify: bool,
    /// servers, or ALL for every server
    #[argh(positional)]
    pub servers: Vec<String>,
}

pub const APPLET: Applet = Applet {
    name: "vrpm",
    summary: "run each server's package manager, then re-unify",
    aliases: &[],
    runs_command: false,
    short_lived: false,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    // The package manager's arguments follow `--` and are not ours to parse.
    let (ours, theirs) = match argv.iter().position(|a| *a == "--") {
        Some(i) => (&argv[..i], Some(&argv[i + 1..])),
        None => (argv, None),
    };
    applet::entry(&APPLET, name, ours, |args, name| run(args, name, theirs))
}

fn run(args: Args, name: &str, pm_args: Option<&[&str]>) -> Result<i32> {
    let Some(pm_args) = pm_args.filter(|a| !a.is_empty()) else {
        return Err(Error::usage("give the package manager's arguments after --"));
    };
    let servers = match args.servers.as_slice() {
        [] => return Err(Error::usage("no server given")),
        [all] if all == "ALL" => guest::all()?,
        names => names.iter().map(|n| Guest::existing(n)).collect::<Result<Vec<_>>>()?,
    };
    let mut failed = Vec::new();
    for g in &servers {
        println!("Updating server {}", g.name);
        let pm = g.package_manager()?;
        let command: Vec<String> = std::iter::once(pm).chain(pm_args.iter().copied()).map(String::from).collect();
        if lifecycle::exec(name, g, &command, None)? != 0 {
            failed.push(g.name.as_str());
        }
    }
    if args.unify {
        if let Some((reference, rest)) = servers.split_first() {
            println!("Unification");
            for g in rest {
                let out = unify::unify(reference, g, &[], false, |_, _| {})?;
                println!("{}", out.summary(&g.name, &reference.name, false));
            }
        }
    }
    if failed.is_empty() {
        Ok(0)
    } else {
        Err(Error::failed(
            "update servers",
            format!("the package manager failed in {}", failed.join(", ")),
        ))
    }
}
