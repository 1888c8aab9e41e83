//! vunify: identical files of servers share their disk blocks.
//! See: man/vunify.8, src/unify.rs; the original: vserver-reference.md
//! §1.10 (hard links and immutable flags; here kernel deduplication).

use crate::applet::{self, Applet};
use crate::error::{Error, Result};
use crate::guest::unify;
use crate::guest::Guest;
use argh::FromArgs;

/// Let the servers' files that are identical to the reference server's share its disk blocks.
#[derive(FromArgs)]
pub struct Args {
    /// only show what would be shared
    #[argh(switch, short = 'n')]
    pub dry_run: bool,
    /// name every file shared
    #[argh(switch, short = 'v')]
    pub verbose: bool,
    /// a directory (relative to the servers' roots, e.g. usr/share/doc) to leave alone; repeatable
    #[argh(option)]
    pub exclude: Vec<String>,
    /// the reference server, then the servers to unify with it
    #[argh(positional)]
    pub servers: Vec<String>,
}

pub const APPLET: Applet = Applet {
    name: "vunify",
    summary: "let identical files of servers share their disk blocks",
    aliases: &[],
    runs_command: false,
    short_lived: true,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn run(args: Args, _name: &str) -> Result<i32> {
    let (reference, servers) = match args.servers.split_first() {
        Some((r, s)) if !s.is_empty() => (Guest::existing(r)?, s),
        _ => return Err(Error::usage("give the reference server and at least one server to unify with it")),
    };
    let servers: Vec<Guest> = servers.iter().map(|s| Guest::existing(s)).collect::<Result<_>>()?;
    let exclude = args
        .exclude
        .iter()
        .map(|x| crate::guest::tree::clean(std::path::Path::new(x)).map_err(|e| Error::usage(format!("--exclude: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    for g in &servers {
        let out = unify::unify(&reference, g, &exclude, args.dry_run, |rel, _| {
            if args.verbose {
                println!("{}: /{}", g.name, rel.display());
            }
        })?;
        println!("{}", out.summary(&g.name, &reference.name, args.dry_run));
    }
    Ok(0)
}
