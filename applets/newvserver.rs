//! newvserver: create a virtual server, asking for what it needs.
//! See: man/newvserver.8; the original: vserver-reference.md §1.15.
//!
//! On a terminal it asks for each value not given as an option, shows the
//! default in brackets, and asks again after a bad answer; otherwise (or
//! with --yes) it takes the options and the defaults.

use crate::applet::{self, Applet};
use crate::error::{Error, Result};
use crate::guest::builder::{self, Method};
use crate::guest::config;
use crate::guest::{self, Guest};
use argh::FromArgs;
use std::io::{BufRead, IsTerminal, Write};

/// Create a virtual server, asking for its name, address, host name and build method.
#[derive(FromArgs)]
#[argh(example = "newvserver\nnewvserver --name web --ip 127.0.0.2 --method busybox --yes")]
pub struct Args {
    /// the server's name
    #[argh(option)]
    pub name: Option<String>,
    /// its address(es), IPROOT syntax: [DEV:]ADDR[/MASK] …; "" for none
    #[argh(option)]
    pub ip: Option<String>,
    /// the device that gets the addresses as aliases (IPROOTDEV)
    #[argh(option)]
    pub dev: Option<String>,
    /// its host name (default: its name)
    #[argh(option)]
    pub hostname: Option<String>,
    /// build method: busybox (when a static busybox exists), copy, skeleton, template, debootstrap
    #[argh(option)]
    pub method: Option<String>,
    /// the archive for -m template
    #[argh(option)]
    pub file: Option<String>,
    /// the suite for -m debootstrap
    #[argh(option)]
    pub suite: Option<String>,
    /// start it with the host (ONBOOT=yes)
    #[argh(switch)]
    pub onboot: bool,
    /// ask nothing: take the options and the defaults
    #[argh(switch, short = 'y')]
    pub yes: bool,
}

pub const APPLET: Applet = Applet {
    name: "newvserver",
    summary: "create a virtual server, asking for what it needs",
    aliases: &[],
    runs_command: false,
    short_lived: false,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

/// Asks until `check` accepts the answer (or takes the given value).
struct Asker {
    interactive: bool,
    input: std::io::StdinLock<'static>,
}

impl Asker {
    fn ask<T>(&mut self, question: &str, given: Option<String>, default: &str, check: impl Fn(&str) -> Result<T>) -> Result<T> {
        if let Some(v) = given {
            return check(&v);
        }
        if !self.interactive {
            return check(default);
        }
        loop {
            print!("{question} [{default}]: ");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            if self.input.read_line(&mut line).map_err(|e| Error::io("read the answer", &e))? == 0 {
                return Err(Error::usage("no answer (end of input)"));
            }
            let answer = line.trim();
            match check(if answer.is_empty() { default } else { answer }) {
                Ok(v) => return Ok(v),
                Err(e) => println!("  {e}"),
            }
        }
    }
}

fn run(args: Args, _name: &str) -> Result<i32> {
    let interactive = !args.yes && std::io::stdin().is_terminal();
    let mut a = Asker {
        interactive,
        input: std::io::stdin().lock(),
    };
    if !interactive && args.name.is_none() {
        return Err(Error::usage("--name is needed when nothing can be asked"));
    }
    let name = a.ask("Name of the new server", args.name.clone(), "", |n| {
        guest::check_name(n)?;
        let g = Guest::new(n)?;
        if g.conf.exists() || g.root.exists() {
            return Err(Error::usage(format!("a server '{n}' exists already")));
        }
        Ok(g)
    })?;
    let iproot = a.ask("Address(es), [DEV:]ADDR[/MASK], empty for none", args.ip.clone(), "", |v| {
        config::parse(std::path::Path::new("answer"), &format!("IPROOT=\"{v}\"\n"))
            .map(|_| v.to_owned())
            .map_err(|e| Error::usage(e.msg.trim_start_matches("answer:1: ").to_owned()))
    })?;
    let dev = if iproot.is_empty() {
        String::new()
    } else {
        a.ask("Device for the aliases (IPROOTDEV), empty for none", args.dev.clone(), "", |v| {
            if v.is_empty() || nix::net::if_::if_nametoindex(v).is_ok() {
                Ok(v.to_owned())
            } else {
                Err(Error::usage(format!("no network device '{v}'")))
            }
        })?
    };
    let hostname = a.ask("Host name", args.hostname.clone(), &name.name, |v| {
        config::parse(std::path::Path::new("answer"), &format!("S_HOSTNAME={v}\n"))
            .map(|_| v.to_owned())
            .map_err(|_| Error::usage(format!("'{v}' is not a host name")))
    })?;
    let default_method = if std::path::Path::new("/bin/busybox").exists() {
        "busybox"
    } else {
        "copy"
    };
    let (file, suite) = (args.file.clone(), args.suite.clone());
    let method = a.ask(
        "Build method (copy, skeleton, busybox, template, debootstrap)",
        args.method.clone(),
        default_method,
        |m| {
            if m == "template" && file.is_none() {
                return Ok(Method::Template(std::path::PathBuf::new())); // the archive is asked for next
            }
            Method::new(
                m,
                file.as_deref(),
                suite.as_deref().or((m == "debootstrap").then_some("bookworm")),
                None,
            )
        },
    )?;
    let method = match method {
        Method::Template(_) if args.file.is_none() => {
            let f = a.ask("Template archive (T.tar, T.tar.gz, T.tar.zst)", None, "", |f| {
                if std::path::Path::new(f).is_file() {
                    Ok(f.to_owned())
                } else {
                    Err(Error::usage(format!("no file '{f}'")))
                }
            })?;
            Method::Template(f.into())
        }
        m => m,
    };
    let onboot = args.onboot
        || a.ask("Start it with the host (ONBOOT)", None, "no", |v| match v {
            "yes" | "y" => Ok(true),
            "no" | "n" => Ok(false),
            _ => Err(Error::usage("yes or no")),
        })?;
    // The configuration first: the build names the guest in its /etc/hosts
    // and /etc/hostname from it.
    std::fs::write(&name.conf, config::template_with(&name.name, &iproot, &dev, &hostname, onboot))
        .map_err(|e| Error::io(format!("write {}", name.conf.display()), &e))?;
    if let Err(e) = builder::build(&name, &method, false) {
        let _ = std::fs::remove_file(&name.conf);
        return Err(e);
    }
    println!(
        "Server {} is ready: {} and {}. Start it with: vserver {} start",
        name.name,
        name.root.display(),
        name.conf.display(),
        name.name
    );
    Ok(0)
}
