//! The multi-call front door: argv[0]'s basename picks the applet;
//! `vsbox APPLET ARGS…` does the same; `vsbox --list|--install|--help|
//! --version` are handled here.

use crate::applet::{Applet, EXIT_FAILURE, EXIT_USAGE};
use crate::applets;
use std::ffi::OsString;
use std::path::Path;

pub fn find(name: &str) -> Option<&'static Applet> {
    applets::ALL.iter().copied().find(|a| a.answers_to(name))
}

pub fn main(argv: Vec<OsString>) -> i32 {
    // Before any applet changes a disposition: what the caller ignored
    // stays ignored for the commands vsbox runs (context/exec.rs).
    crate::sys::record_inherited_ignored();
    end_quietly_on_lost_output();
    let mut args = Vec::with_capacity(argv.len());
    for a in argv {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(bad) => {
                eprintln!("vsbox: argument {bad:?} is not valid UTF-8");
                return EXIT_USAGE;
            }
        }
    }
    let argv0 = args.first().map(String::as_str).unwrap_or("vsbox");
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    if let Some(applet) = find(base) {
        return run(applet, base, &args[1..]);
    }
    multiplexer(&args[1..])
}

/// print!/println! panic when standard output cannot be written (`vps ax
/// | head` once head has gone, a full disk): instead, a reader that went
/// away ends vsbox as it ends a C program, by SIGPIPE (which vsbox
/// ignores for itself: its own pipes give EPIPE), and any other error is
/// one line on stderr and exit status 1. Other panics keep the default
/// report.
fn end_quietly_on_lost_output() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if let Some(why) = msg.strip_prefix("failed printing to stdout: ") {
            if why.ends_with("(os error 32)") {
                let _ = crate::sys::set_ignored(nix::sys::signal::Signal::SIGPIPE, false);
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGPIPE);
            }
            let line = format!("vsbox: cannot write its output: {why}\n");
            let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
            crate::sys::exit_now(EXIT_FAILURE);
        }
        default(info)
    }));
}

fn run(applet: &Applet, name: &str, args: &[String]) -> i32 {
    if applet.short_lived {
        crate::sys::alloc::short_lived();
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    (applet.main)(name, &argv)
}

fn multiplexer(args: &[String]) -> i32 {
    let Some(first) = args.first() else {
        eprint!("{}", help());
        return EXIT_USAGE;
    };
    // --list, --help and --version take nothing more.
    let bare = matches!(first.as_str(), "--list" | "-l" | "--help" | "-h" | "--version" | "-V");
    if let (Some(extra), true) = (args.get(1), bare) {
        eprintln!("vsbox: {first}: unexpected argument '{extra}'");
        return EXIT_USAGE;
    }
    match first.as_str() {
        "--list" | "-l" => {
            for name in names() {
                println!("{name}");
            }
            0
        }
        "--help" | "-h" => {
            print!("{}", help());
            0
        }
        "--version" | "-V" => {
            println!(
                "vsbox {} (kernel ABI {:#010x}, {})",
                env!("CARGO_PKG_VERSION"),
                crate::abi::VCI_VERSION,
                crate::kernel::describe()
            );
            0
        }
        "--install" => install(&args[1..]),
        name if !name.starts_with('-') => match find(name) {
            Some(applet) => run(applet, name, &args[1..]),
            None => {
                eprintln!("vsbox: unknown applet '{name}' (see 'vsbox --list')");
                EXIT_USAGE
            }
        },
        opt => {
            eprintln!("vsbox: unknown option '{opt}' (see 'vsbox --help')");
            EXIT_USAGE
        }
    }
}

/// Every name, aliases included, sorted.
fn names() -> Vec<&'static str> {
    let mut v: Vec<&str> = applets::ALL
        .iter()
        .flat_map(|a| std::iter::once(a.name).chain(a.aliases.iter().copied()))
        .collect();
    v.sort_unstable();
    v
}

fn help() -> String {
    let mut s = String::from(
        "Usage: vsbox APPLET [ARGS…]   or   APPLET [ARGS…] through a link named APPLET\n\
         \x20      vsbox --list | --install DIR [-f] | --help | --version\n\nApplets:\n",
    );
    for a in applets::ALL {
        s.push_str(&format!("  {:<14}{}\n", a.name, a.summary));
        for alias in a.aliases {
            s.push_str(&format!("  {:<14}(same applet as {})\n", alias, a.name));
        }
    }
    s
}

/// `--install DIR [-f]`: a symlink DIR/NAME → this binary for every name.
fn install(args: &[String]) -> i32 {
    let (mut dir, mut force) = (None, false);
    for a in args {
        match a.as_str() {
            "-f" | "--force" => force = true,
            opt if opt.starts_with('-') => {
                eprintln!("vsbox: --install: unknown option '{opt}'");
                return EXIT_USAGE;
            }
            d if dir.is_none() => dir = Some(d),
            extra => {
                eprintln!("vsbox: --install: unexpected argument '{extra}'");
                return EXIT_USAGE;
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("vsbox: --install needs a directory");
        return EXIT_USAGE;
    };
    let exe = match std::fs::read_link("/proc/self/exe") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vsbox: --install: cannot find this binary (/proc/self/exe): {e}");
            return EXIT_FAILURE;
        }
    };
    let mut status = 0;
    for name in names() {
        let link = Path::new(dir).join(name);
        if force && link.symlink_metadata().is_ok_and(|m| !m.is_dir()) {
            if let Err(e) = std::fs::remove_file(&link) {
                eprintln!("vsbox: --install: remove {}: {e}", link.display());
                status = EXIT_FAILURE;
                continue;
            }
        }
        if let Err(e) = std::os::unix::fs::symlink(&exe, &link) {
            let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
                " (use -f to replace it)"
            } else {
                ""
            };
            eprintln!("vsbox: --install: {}: {e}{hint}", link.display());
            status = EXIT_FAILURE;
        }
    }
    status
}
