//! vservers: start, stop, restart the servers marked ONBOOT=yes; status of
//! all. What the host's boot and shutdown call (dist/ has a systemd unit
//! and a SysV script).
//! See: man/vservers.8; the original: vserver-reference.md §1.14.

use crate::applet::{self, Applet};
use crate::error::{Error, Result};
use crate::guest;
use crate::guest::fleet;
use crate::guest::lifecycle;
use argh::FromArgs;

/// Start, stop or restart every server with ONBOOT=yes; show all servers.
#[derive(FromArgs)]
#[argh(example = "vservers start\nvservers status")]
pub struct Args {
    /// start, stop, restart or status
    #[argh(positional)]
    pub action: String,
    /// how many servers to start or stop at once (default: the number of CPUs plus one)
    #[argh(option, short = 'j')]
    pub jobs: Option<usize>,
}

pub const APPLET: Applet = Applet {
    name: "vservers",
    summary: "start, stop or restart every server with ONBOOT=yes",
    aliases: &[],
    runs_command: false,
    short_lived: false,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn act(action: &str, jobs: usize) -> Result<bool> {
    let (mut guests, bad) = fleet::onboot()?;
    let running = guest::running_tags()?;
    let runs = |g: &guest::Guest| running.contains(g.tag().as_bytes());
    if action == "stop" {
        guests.retain(runs);
        guests.reverse();
    } else {
        guests.retain(|g| !runs(g));
    }
    let outcomes = fleet::run(&guests, action, jobs)?;
    let done = outcomes.iter().filter(|o| o.ok).count();
    for o in bad.iter().chain(&outcomes) {
        let mark = if o.ok { "ok" } else { "FAILED" };
        println!("{}: {mark}", o.name);
        for line in o.output.lines() {
            println!("  {line}");
        }
    }
    let failed = bad.len() + outcomes.len() - done;
    let verb = if action == "stop" { "stopped" } else { "started" };
    println!("{done} {verb}, {failed} failed");
    Ok(failed == 0)
}

fn run(args: Args, _name: &str) -> Result<i32> {
    let jobs = args
        .jobs
        // Plus one: a start waits part of its time (for its first process
        // and the watcher), which another start's work then fills.
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()) + 1);
    if jobs == 0 {
        return Err(Error::usage("bad --jobs '0': start or stop at least 1 server at once"));
    }
    // A killed watcher's servers are picked up again first (and any that
    // halted meanwhile cleaned up).
    if matches!(args.action.as_str(), "start" | "stop" | "restart" | "status") {
        if let Err(e) = guest::supervisor::revive() {
            eprintln!("vservers: warning: {e}");
        }
    }
    let ok = match args.action.as_str() {
        "start" => act("start", jobs)?,
        "stop" => act("stop", jobs)?,
        "restart" => act("stop", jobs)? & act("start", jobs)?,
        "status" => {
            let mut rows = vec![["NAME", "ONBOOT", "STATE", "CTX", "PROCS", "ADDRESSES"].map(String::from).to_vec()];
            for g in guest::all()? {
                let onboot = g
                    .config()
                    .map_or("?".to_owned(), |c| if c.onboot { "yes" } else { "no" }.to_owned());
                let (running, text) = lifecycle::status(&g).unwrap_or((false, String::new()));
                let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("-").to_owned();
                rows.push(vec![
                    g.name.clone(),
                    onboot,
                    if running { "running" } else { "stopped" }.to_owned(),
                    field("context: "),
                    field("processes: "),
                    field("addresses: "),
                ]);
            }
            print!("{}", crate::admin::report::table(&rows, &[false, false, false, true, true]));
            true
        }
        other => return Err(Error::usage(format!("unknown action '{other}' (start, stop, restart, status)"))),
    };
    Ok(if ok { 0 } else { 1 })
}
