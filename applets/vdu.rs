//! vdu: what a guest's tree really costs on disk.
//! See: man/vdu.8; the original: vserver-reference.md §1.9 (it summed
//! st_size of single-link files; this counts allocated blocks, less those
//! shared with other files, which is what unification saves).

use crate::applet::{self, Applet};
use crate::error::{Error, Result};
use crate::guest::extents;
use argh::FromArgs;

/// Show the disk space each tree really uses: files with one link, less blocks shared with other files.
#[derive(FromArgs)]
pub struct Args {
    /// directories to measure
    #[argh(positional)]
    pub paths: Vec<String>,
}

pub const APPLET: Applet = Applet {
    name: "vdu",
    summary: "show the disk space a tree really uses, not counting shared files",
    aliases: &[],
    runs_command: false,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn run(args: Args, _name: &str) -> Result<i32> {
    if args.paths.is_empty() {
        return Err(Error::usage("no directory given"));
    }
    for p in &args.paths {
        let bytes = extents::tree_cost(std::path::Path::new(p))?;
        println!("{p}\t{}K", bytes >> 10);
    }
    Ok(0)
}
