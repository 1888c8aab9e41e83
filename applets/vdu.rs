//! vdu: what a guest's tree really costs on disk.
//! See: man/vdu.8; the original: vserver-reference.md §1.9 (it summed
//! st_size of single-link files; this counts allocated blocks, less those
//! shared with other files, which is what unification saves).

use crate::applet::{self, Applet};
use crate::error::{Error, Result};
use crate::guest::{extents, quota};
use argh::FromArgs;

/// Show the disk space each tree really uses: files with one link, less blocks shared with other files.
#[derive(FromArgs)]
pub struct Args {
    /// a third field for a server root with a disk limit: its quota's use against it
    #[argh(switch, short = 'q')]
    pub quota: bool,
    /// directories to measure
    #[argh(positional)]
    pub paths: Vec<String>,
}

pub const APPLET: Applet = Applet {
    name: "vdu",
    summary: "show the disk space a tree really uses, not counting shared files",
    aliases: &[],
    runs_command: false,
    short_lived: true,
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
        let path = std::path::Path::new(p);
        let bytes = extents::tree_cost(path)?;
        // Asked for: util-vserver's line has two fields, which scripts read.
        let quota = if args.quota { quota_text(path) } else { String::new() };
        println!("{p}\t{}K{quota}", bytes >> 10);
    }
    Ok(0)
}

/// A server root's disk quota, as a third field: `quota: USEDK of LIMITK`
/// (what the file system charges it, shared blocks included) and `, I of
/// J inodes`; nothing where no limit is set.
fn quota_text(path: &std::path::Path) -> String {
    let Some(u) = quota::usage(path).filter(|u| u.limit.is_some() || u.inode_limit.is_some()) else {
        return String::new();
    };
    let mut out = format!("\tquota: {}K", u.bytes >> 10);
    if let Some(limit) = u.limit {
        out += &format!(" of {}K", limit >> 10);
    }
    if let (Some(i), Some(j)) = (u.inodes, u.inode_limit) {
        out += &format!(", {i} of {j} inodes");
    }
    out
}
