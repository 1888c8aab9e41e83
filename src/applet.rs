//! The applet contract: every `applets/NAME.rs` exports
//! `pub const APPLET: Applet` and a `fn main(name, argv) -> i32` that hands
//! its argh struct and its `run` to [`entry`]. Only [`entry`] prints fatal
//! errors and chooses exit codes, so every applet behaves the same.

use crate::error::{Error, Kind, Result};

pub struct Applet {
    pub name: &'static str,
    /// One line, as in `vsbox --help` and the man page's NAME section.
    pub summary: &'static str,
    /// Other names that run the same applet (`run` may look at the name).
    pub aliases: &'static [&'static str],
    /// True for applets that run a COMMAND: their own failures exit 125.
    pub runs_command: bool,
    /// True for applets that fork nothing that outlives them or their
    /// command (no guest's init, no watcher of their own): they allocate
    /// from dlmalloc, which keeps what is freed (sys/alloc.rs).
    pub short_lived: bool,
    pub main: fn(name: &str, argv: &[&str]) -> i32,
}

impl Applet {
    pub fn answers_to(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// Exit codes of SPEC §1.
pub const EXIT_FAILURE: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_CANNOT_RUN: i32 = 125;
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
pub const EXIT_NOT_FOUND: i32 = 127;

/// Parses `argv` (without the program name) into `A`, runs it, and turns
/// the outcome into an exit status.
pub fn entry<A: argh::FromArgs>(applet: &Applet, name: &str, argv: &[&str], run: impl FnOnce(A, &str) -> Result<i32>) -> i32 {
    let args = match A::from_args(&[name], argv) {
        Ok(a) => a,
        Err(early) => {
            if early.status.is_ok() {
                print!("{}", early.output);
                return 0;
            }
            // argh adds a "Run … --help" line; SPEC wants one line.
            // One line: argh lists what is missing on the lines after a
            // heading that ends in ':' ("Required positional arguments not
            // provided:\n    action").
            let mut lines = early.output.lines().map(str::trim).filter(|l| !l.is_empty());
            let first = lines.next().unwrap_or("bad arguments");
            let rest: Vec<&str> = if first.ends_with(':') { lines.collect() } else { Vec::new() };
            let msg = if rest.is_empty() {
                first.to_owned()
            } else {
                format!("{first} {}", rest.join(", "))
            };
            eprintln!("{name}: {msg} (see '{name} --help')");
            return EXIT_USAGE;
        }
    };
    match run(args, name) {
        Ok(code) => code,
        Err(e) => report(applet, name, &e),
    }
}

/// Prints `name: message` and returns the exit code for `e`.
pub fn report(applet: &Applet, name: &str, e: &Error) -> i32 {
    eprintln!("{name}: {e}");
    match e.kind {
        Kind::Usage => EXIT_USAGE,
        Kind::Failure if applet.runs_command => EXIT_CANNOT_RUN,
        Kind::CannotRun => EXIT_CANNOT_RUN,
        Kind::Failure => EXIT_FAILURE,
    }
}
