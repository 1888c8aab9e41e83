//! vserver: build, start, stop, enter and run commands in virtual servers.
//! See: man/vserver.8, man/vserver.conf.5; the original:
//! vserver-reference.md §1.4–1.5.
//!
//! `vserver NAME COMMAND [ARGS…]`; each command parses its own options.
//! The commands that run something in the server (exec, suexec, service,
//! enter) follow the chroot(1) exit codes; the others exit 1 on failure.

use crate::applet::{self, Applet};
use crate::error::{Error, Result};
use crate::guest::builder::{self, Method};
use crate::guest::lifecycle;
use crate::guest::settings;
use crate::guest::Guest;
use argh::FromArgs;
use std::io::IsTerminal;

/// Manage virtual servers: build, start, stop, enter and run commands in them.
#[derive(FromArgs)]
#[argh(
    note = "Commands: build [-m METHOD] [--force], start, stop, restart, running, status [--json], set [--save] KEY=VALUE…, enter, exec CMD [ARGS…], suexec USER CMD [ARGS…], service SVC start|stop|restart|status, delete [--force]."
)]
#[argh(example = "vserver web build -m busybox\nvserver web start\nvserver web exec ps ax")]
pub struct Args {
    /// the server's name
    #[argh(positional)]
    pub name: String,
    /// what to do
    #[argh(positional)]
    pub command: String,
    /// the command's arguments
    #[argh(positional, greedy)]
    pub args: Vec<String>,
}

/// Build the server's tree.
#[derive(FromArgs)]
struct Build {
    /// build method: copy (the default), skeleton, busybox, template, debootstrap
    #[argh(option, short = 'm', default = "String::from(\"copy\")")]
    method: String,
    /// the archive for -m template: T.tar, T.tar.gz or T.tar.zst
    #[argh(option)]
    file: Option<String>,
    /// the Debian suite for -m debootstrap (e.g. bookworm)
    #[argh(option)]
    suite: Option<String>,
    /// the mirror for -m debootstrap
    #[argh(option)]
    mirror: Option<String>,
    /// replace an existing tree
    #[argh(switch)]
    force: bool,
}

pub const APPLET: Applet = Applet {
    name: "vserver",
    summary: "build, start, stop, enter and run commands in virtual servers",
    aliases: &[],
    runs_command: false,
    short_lived: false,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    // Everything after NAME COMMAND belongs to the command, options too.
    if argv.len() > 2 && !argv[..2].iter().any(|a| a.starts_with('-')) {
        let mut v = argv[..2].to_vec();
        v.push("--");
        v.extend_from_slice(&argv[2..]);
        return applet::entry(&APPLET, name, &v, run);
    }
    applet::entry(&APPLET, name, argv, run)
}

/// Errors of the commands that run something exit 125, as chroot(1).
fn command_status(r: Result<i32>) -> Result<i32> {
    r.map_err(Error::cannot_run)
}

fn run(args: Args, name: &str) -> Result<i32> {
    let rest: Vec<&str> = args.args.iter().map(String::as_str).collect();
    let no_args = |what: &str| match rest.first() {
        None => Ok(()),
        Some(a) => Err(Error::usage(format!("unexpected argument '{a}': {what} takes none"))),
    };
    match args.command.as_str() {
        "build" => {
            let b = Build::from_args(&[name, &args.name, "build"], &rest).map_err(|e| {
                if e.status.is_ok() {
                    print!("{}", e.output);
                    Error::usage("")
                } else {
                    Error::usage(e.output.lines().next().unwrap_or("bad arguments").to_owned())
                }
            });
            let b = match b {
                Ok(b) => b,
                Err(e) if e.msg.is_empty() => return Ok(0),
                Err(e) => return Err(e),
            };
            let method = Method::new(&b.method, b.file.as_deref(), b.suite.as_deref(), b.mirror.as_deref())?;
            builder::build(&Guest::new(&args.name)?, &method, b.force)?;
            Ok(0)
        }
        "start" => {
            no_args("start")?;
            lifecycle::start(name, &Guest::existing(&args.name)?)?;
            Ok(0)
        }
        "stop" => {
            no_args("stop")?;
            lifecycle::stop(&Guest::existing(&args.name)?)?;
            Ok(0)
        }
        "restart" => {
            no_args("restart")?;
            lifecycle::restart(name, &Guest::existing(&args.name)?)?;
            Ok(0)
        }
        "running" => {
            no_args("running")?;
            let running = lifecycle::is_running(&Guest::existing(&args.name)?)?;
            println!("Server {} is {}", args.name, if running { "running" } else { "not running" });
            Ok(if running { 0 } else { 1 })
        }
        "status" => {
            let json = match rest.as_slice() {
                [] => false,
                ["--json"] => true,
                [a, ..] => return Err(Error::usage(format!("unexpected argument '{a}': status takes only --json"))),
            };
            let g = Guest::existing(&args.name)?;
            let (running, text) = if json {
                lifecycle::status_json(&g)?
            } else {
                lifecycle::status(&g)?
            };
            print!("{text}");
            Ok(if running { 0 } else { 1 })
        }
        "set" => {
            let save = args.args.iter().any(|a| a == "--save");
            let assignments: Vec<String> = args.args.iter().filter(|a| *a != "--save").cloned().collect();
            if let Some(opt) = assignments.iter().find(|a| a.starts_with('-')) {
                return Err(Error::usage(format!("unknown option '{opt}': set takes --save")));
            }
            let changes = settings::parse_assignments(&assignments)?;
            let g = Guest::existing(&args.name)?;
            let done = settings::set(&g, &changes, save)?;
            let what: Vec<String> = changes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let how = match (done.applied, done.saved) {
                (true, true) => "now and in its configuration",
                // A disk limit is the file system's: it stays after a stop,
                // until the next start sets the configured one.
                (true, false) => "until its next start (add --save to keep it)",
                _ => "in its configuration, for its next start",
            };
            println!("Server {}: {} {how}", g.name, what.join(" "));
            Ok(0)
        }
        "exec" => {
            if rest.is_empty() {
                return Err(Error::usage("exec needs a command"));
            }
            let g = Guest::existing(&args.name)?;
            command_status(lifecycle::exec(name, &g, &args.args, None))
        }
        "suexec" => {
            if rest.len() < 2 {
                return Err(Error::usage("suexec needs a user and a command"));
            }
            let g = Guest::existing(&args.name)?;
            command_status(lifecycle::exec(name, &g, &args.args[1..], Some(&args.args[0])))
        }
        "service" => {
            let [svc, action] = rest.as_slice() else {
                return Err(match rest.get(2) {
                    Some(extra) => Error::usage(format!("unexpected argument '{extra}': service takes a service and an action")),
                    None => Error::usage("service needs a service and an action (start, stop, restart, status)"),
                });
            };
            if svc.is_empty() || svc.contains('/') || svc.starts_with('.') {
                return Err(Error::usage(format!("bad service name '{svc}'")));
            }
            let g = Guest::existing(&args.name)?;
            let command = vec![format!("/etc/init.d/{svc}"), (*action).to_owned()];
            command_status(lifecycle::exec(name, &g, &command, None))
        }
        "enter" => {
            no_args("enter")?;
            let g = Guest::existing(&args.name)?;
            command_status(lifecycle::enter(name, &g))
        }
        "delete" => {
            let mut force = false;
            for a in &rest {
                match *a {
                    "--force" | "-f" => force = true,
                    other => return Err(Error::usage(format!("unexpected argument '{other}': delete takes only --force"))),
                }
            }
            let g = Guest::existing(&args.name)?;
            let ask = !force;
            if ask && !std::io::stdin().is_terminal() {
                return Err(Error::usage(format!(
                    "delete asks before it removes server {}, and there is no terminal to ask on: add --force",
                    g.name
                )));
            }
            let confirm = |files: &[std::path::PathBuf]| -> Result<bool> {
                if !ask {
                    return Ok(true);
                }
                let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                eprint!(
                    "Delete server {} for good: {} and its runtime state? [y/N] ",
                    g.name,
                    list.join(", ")
                );
                let mut answer = String::new();
                std::io::stdin()
                    .read_line(&mut answer)
                    .map_err(|e| Error::io("read the answer", &e))?;
                Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes"))
            };
            match crate::guest::delete::delete(&g, confirm)? {
                Some(d) => {
                    let list: Vec<String> = d.files.iter().map(|f| f.display().to_string()).collect();
                    println!("Server {} deleted: {} ({} entries of its tree)", g.name, list.join(", "), d.entries);
                    Ok(0)
                }
                None => Err(Error::failed(
                    format!("delete server {}", g.name),
                    "not confirmed; nothing was deleted",
                )),
            }
        }
        other => Err(Error::usage(format!(
            "unknown command '{other}' (build, start, stop, restart, running, status, set, enter, exec, suexec, service, delete)"
        ))),
    }
}
