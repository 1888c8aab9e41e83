//! vtop: a live view of the busiest processes with their context, and one
//! summary line per context.
//! See: man/vtop.8; the original ran top in the spectator context.
//! The screens and the terminal's keys are admin::top's.

use crate::admin::top;
use crate::applet::{self, Applet};
use crate::error::{Error, Result};
use argh::FromArgs;
use std::io::{IsTerminal, Write};

/// Show the busiest processes live, with their context, and a line per context.
#[derive(FromArgs)]
#[argh(example = "vtop\nvtop -b -n 2 -d 0.5")]
pub struct Args {
    /// batch mode: plain text, no terminal control, for scripts
    #[argh(switch, short = 'b')]
    pub batch: bool,
    /// stop after this many screens
    #[argh(option, short = 'n')]
    pub iterations: Option<u32>,
    /// seconds between screens (default 2; decimals allowed)
    #[argh(option, short = 'd', default = "String::from(\"2\")")]
    pub delay: String,
    /// how many processes to list (default 20)
    #[argh(option, default = "20")]
    pub lines: usize,
}

pub const APPLET: Applet = Applet {
    name: "vtop",
    summary: "show the busiest processes live, with their context",
    aliases: &[],
    runs_command: false,
    short_lived: true,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn run(args: Args, _name: &str) -> Result<i32> {
    let delay_ms = top::parse_delay(&args.delay)?;
    if args.iterations == Some(0) {
        return Err(Error::usage("bad -n '0': at least 1 screen"));
    }
    let interactive = !args.batch && std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let keys = if interactive { Some(top::Keys::new()?) } else { None };
    let mut screens = top::Top::new();
    let mut count = 0;
    loop {
        let text = screens.next_screen(args.lines);
        let mut stdout = std::io::stdout();
        let _ = if interactive {
            write!(stdout, "\x1b[H\x1b[2J{text}(q quits)")
        } else {
            writeln!(stdout, "{text}")
        };
        let _ = stdout.flush();
        count += 1;
        if args.iterations.is_some_and(|n| count >= n) {
            break;
        }
        match &keys {
            Some(k) if k.quit_within(delay_ms) => break,
            Some(_) => {}
            None => std::thread::sleep(std::time::Duration::from_millis(delay_ms)),
        }
    }
    if let Some(k) = keys {
        drop(k);
        println!();
    }
    Ok(0)
}
