//! The binary as a user meets it: dispatch, --list/--install/--help,
//! usage errors (one line, exit 2, nothing run), and the man pages.

mod common;
use common::*;
use std::process::Command;

const APPLETS: &[&str] = &["chbind", "chcontext", "reducecap"];

#[test]
fn list_names_every_applet() {
    let out = Out::from(Command::new(VSBOX).arg("--list").output().unwrap());
    out.ok();
    let names: Vec<&str> = out.stdout.lines().collect();
    for a in APPLETS {
        assert!(names.contains(a), "{a} missing from --list: {names:?}");
    }
}

#[test]
fn install_links_dispatch_on_argv0() {
    let env = Env::new();
    for a in APPLETS {
        let link = env.dir.path().join("bin").join(a);
        assert_eq!(std::fs::read_link(&link).unwrap(), std::fs::canonicalize(VSBOX).unwrap());
        let out = env.run(a, &["--help"]);
        out.ok();
        assert!(out.stdout.starts_with(&format!("Usage: {a}")), "{out:?}");
    }
    // Existing links are kept unless -f.
    let bin = env.dir.path().join("bin");
    let again = Out::from(Command::new(VSBOX).arg("--install").arg(&bin).output().unwrap());
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("-f"), "{again:?}");
    Out::from(Command::new(VSBOX).args(["--install", "-f"]).arg(&bin).output().unwrap()).ok();
}

#[test]
fn vsbox_applet_form_and_unknowns() {
    let out = Out::from(Command::new(VSBOX).args(["reducecap", "--help"]).output().unwrap());
    out.ok();
    assert!(out.stdout.contains("--secure"));
    let out = Out::from(Command::new(VSBOX).arg("nosuchapplet").output().unwrap());
    assert_eq!(out.code, 2);
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("unknown applet 'nosuchapplet'"));
    let out = Out::from(Command::new(VSBOX).arg("--bogus").output().unwrap());
    assert_eq!(out.code, 2);
    let out = Out::from(Command::new(VSBOX).arg("--help").output().unwrap());
    out.ok();
    for a in APPLETS {
        assert!(out.stdout.contains(a));
    }
    let out = Out::from(Command::new(VSBOX).arg("--version").output().unwrap());
    out.ok();
    assert!(out.stdout.starts_with("vsbox "), "{out:?}");
    assert!(out.stdout.contains("0x00030000"), "ABI version from the UAPI header: {out:?}");
}

/// Bad input: one line on stderr naming the problem, exit 2, and the
/// command is not run (it would create a marker file).
#[test]
fn bad_input_is_one_line_exit_2_and_runs_nothing() {
    let env = Env::new();
    let marker = env.dir.path().join("ran");
    let m = marker.to_str().unwrap();
    let cases: &[(&str, &[&str], &str)] = &[
        ("chcontext", &["--cap", "CAP_FLY"], "unknown capability 'CAP_FLY'"),
        ("chcontext", &["--flag", "wobble"], "unknown flag 'wobble'"),
        ("chcontext", &["--ctx", "70000"], "bad context id '70000'"),
        ("chcontext", &["--ctx", "abc"], "bad context id 'abc'"),
        ("chcontext", &["--nope"], "Unrecognized argument: --nope"),
        ("reducecap", &["--cap", "!CAP_NOTHING"], "unknown capability 'CAP_NOTHING'"),
        ("chbind", &["--ip", "300.1.1.1"], "bad address '300.1.1.1'"),
        ("chbind", &["--ip", "127.0.0.1/40"], "bad address '127.0.0.1/40'"),
        (
            "chbind",
            &["--ip", "nosuchdev0"],
            "'nosuchdev0' is neither an address nor a network device",
        ),
        ("chbind", &["--ip", "127.0.0.2", "--bcast", "x.y"], "bad address 'x.y'"),
    ];
    for (applet, args, msg) in cases {
        let mut full: Vec<&str> = args.to_vec();
        full.extend(["--", "/usr/bin/touch", m]);
        let out = env.run(applet, &full);
        assert_eq!(out.code, 2, "{applet} {args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{applet} {args:?}: {out:?}");
        assert!(out.stderr.starts_with(&format!("{applet}: ")), "{out:?}");
        assert!(out.stderr.contains(msg), "{applet} {args:?}: {out:?}");
        assert!(!marker.exists(), "{applet} {args:?} ran the command");
    }
    for applet in APPLETS {
        let extra: &[&str] = if *applet == "chbind" { &["--ip", "127.0.0.2"] } else { &[] };
        let out = env.run(applet, extra);
        assert_eq!(out.code, 2, "{applet} without a command: {out:?}");
        assert!(out.stderr.contains("no command given"), "{out:?}");
    }
    let out = env.run("chbind", &["/bin/true"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no address given"));
    let out = env.run("reducecap", &["--show", "/bin/true"]);
    assert_eq!(out.code, 2);
}

/// Every applet `vsbox --list` names refuses an option it does not know
/// with one line naming that option, and exit 2; and each refuses a bad
/// value or a stray argument naming it, too.
#[test]
fn every_applet_names_the_bad_option_or_argument_it_refuses() {
    let env = Env::new();
    let list = Out::from(Command::new(VSBOX).arg("--list").output().unwrap());
    let applets: Vec<&str> = list.stdout.lines().collect();
    assert!(applets.len() >= 17, "{list:?}");
    let check = |applet: &str, args: &[&str], named: &str| {
        let out = env.run(applet, args);
        assert_eq!(out.code, 2, "{applet} {args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{applet} {args:?}: {out:?}");
        assert!(out.stderr.starts_with(&format!("{applet}: ")), "{applet} {args:?}: {out:?}");
        assert!(out.stderr.contains(named), "{applet} {args:?} does not name {named}: {out:?}");
        assert_eq!(out.stdout, "", "{applet} {args:?}: {out:?}");
    };
    for a in &applets {
        check(a, &["--no-such-option"], "--no-such-option");
        check(a, &["-Y"], "-Y");
    }
    let cases: &[(&str, &[&str], &str)] = &[
        ("vps", &["-eZ"], "'-Z' in '-eZ'"),
        ("vps", &["auxQ"], "'Q' in 'auxQ'"),
        ("vps", &["aux", "--bogus"], "'--bogus'"),
        ("vps", &["-o", "pid,bogus"], "'bogus'"),
        ("vps", &["--xid"], "--xid"),
        ("vpstree", &["stray"], "stray"),
        ("vtop", &["-n", "abc"], "'abc'"),
        ("vtop", &["-n", "0"], "'0'"),
        ("vtop", &["-d", "soon"], "'soon'"),
        ("vkill", &["-s", "BOGUS", "1"], "'BOGUS'"),
        ("vkill", &["--xid", "70000"], "'70000'"),
        ("vkill", &["12ab"], "'12ab'"),
        ("vserver-stat", &["stray"], "stray"),
        ("vservers", &["dance"], "'dance'"),
        ("vservers", &["-j", "0", "status"], "'0'"),
        ("vservers", &["status", "stray"], "stray"),
        ("vserver", &["x", "dance"], "'dance'"),
        ("vserver", &["x", "start", "--bogus"], "'--bogus'"),
        ("vserver", &["x", "status", "stray"], "'stray'"),
        ("vserver", &["x", "build", "--bogus"], "--bogus"),
        ("vserver", &["x", "build", "-m", "bogus"], "'bogus'"),
        ("vserver", &["x", "service", "a", "start", "stray"], "'stray'"),
        ("vserver", &["a b", "start"], "'a b'"),
        ("vserver", &["x", "delete", "--yes"], "'--yes'"),
        ("newvserver", &["--name", "x", "--method", "bogus", "--yes"], "'bogus'"),
        ("newvserver", &["--name", "x", "--ip", "300.1.1.1", "--yes"], "'300.1.1.1'"),
        ("rebootmgr", &["a b"], "'a b'"),
        ("vreboot", &["stray"], "stray"),
        ("vhalt", &["stray"], "stray"),
        ("reducecap", &["--show", "/bin/true"], "'/bin/true'"),
        ("vrpm", &["--bogus", "x", "--", "-q"], "--bogus"),
        ("vdu", &["--bogus"], "--bogus"),
        ("vunify", &["--bogus"], "--bogus"),
    ];
    for (applet, args, named) in cases {
        check(applet, args, named);
    }
    assert!(
        !env.dir.path().join("vservers/x").exists() && !env.dir.path().join("etc/x.conf").exists(),
        "a refused command built something"
    );
    // The multiplexer's own options take nothing more.
    for opt in ["--list", "--help", "--version"] {
        let out = Out::from(Command::new(VSBOX).args([opt, "stray"]).output().unwrap());
        assert_eq!(out.code, 2, "{opt}: {out:?}");
        assert!(out.stderr.contains("'stray'"), "{out:?}");
    }
}

#[test]
fn command_not_found_is_127_not_executable_is_126() {
    let env = Env::new();
    let out = env.run("reducecap", &["--", "/nonexistent/cmd"]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(out.stderr.contains("cannot run '/nonexistent/cmd'"));
    let notexec = env.dir.path().join("plain");
    std::fs::write(&notexec, "data").unwrap();
    let out = env.run("reducecap", &["--", notexec.to_str().unwrap()]);
    assert_eq!(out.code, 126, "{out:?}");
    let out = env.run("reducecap", &["--", "sh", "-c", "exit 7"]);
    assert_eq!(out.code, 7);
}

/// Every applet has a man page whose NAME line is the applet's summary and
/// whose OPTIONS name every option of its --help.
#[test]
fn man_pages_match_help() {
    let man = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    for a in vsbox::applets::ALL {
        let page = std::fs::read_to_string(man.join(format!("{}.8", a.name))).unwrap();
        let name_line = format!("{} \\- {}", a.name, a.summary);
        assert!(page.contains(&name_line), "man/{}.8 NAME should read '{name_line}'", a.name);
        let help = Out::from(Command::new(VSBOX).args([a.name, "--help"]).output().unwrap());
        for opt in help.stdout.split_whitespace().filter(|w| w.starts_with("--") && w.len() > 2) {
            let opt = opt.trim_end_matches([',', '.']);
            if opt == "--help" {
                continue;
            }
            let roff = opt.replace('-', "\\-");
            assert!(page.contains(&roff), "man/{}.8 does not document {opt}", a.name);
        }
    }
    assert!(man.join("vsbox.8").exists());
}

#[test]
fn the_readmes_layout_names_every_module() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    let layout = readme
        .split("\n## Layout\n")
        .nth(1)
        .and_then(|l| l.split("\n## ").next())
        .expect("README.md has a Layout section");
    let mut missing = Vec::new();
    for file in [
        "src/lib.rs",
        "src/kernel/mod.rs",
        "src/context/mod.rs",
        "src/guest/mod.rs",
        "src/admin/mod.rs",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for m in text.lines().filter_map(|l| l.trim().strip_prefix("pub mod ")) {
            let m = m.trim_end_matches([';', ' ', '{']);
            if !layout.contains(&format!("`{m}`")) && !layout.contains(&format!("`{m}/`")) {
                missing.push(format!("{file}: {m}"));
            }
        }
    }
    assert!(missing.is_empty(), "modules missing from README.md's Layout: {missing:?}");
}

/// The layers of src/, in order: each may use only those before it.
#[test]
fn no_layer_reaches_into_a_later_one() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers = ["sys", "kernel", "context", "guest", "admin"];
    let mut wrong = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        for e in std::fs::read_dir(dir.join(layer)).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap();
            for later in &layers[i + 1..] {
                for (n, l) in text.lines().enumerate() {
                    let code = l.split("//").next().unwrap_or("");
                    if code.contains(&format!("crate::{later}::")) || code.contains(&format!("{later}::")) && code.contains("use crate::{")
                    {
                        wrong.push(format!("{}:{}: {}", e.path().display(), n + 1, l.trim()));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "a layer uses a later one: {wrong:#?}");
}

/// Output nobody reads any more ends vsbox as it ends a C program, by
/// SIGPIPE, and output that cannot be written is one line and status 1:
/// no panic either way (print! panics on a failed write).
#[test]
fn lost_output_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for args in [&["--list"][..], &["vps", "ax"], &["vserver-stat"]] {
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(r);
        let out = Command::new(VSBOX)
            .args(args)
            .stdout(std::process::Stdio::from(w))
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{args:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = Out::from(Command::new(VSBOX).arg("--list").stdout(full).output().unwrap());
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr,
        "vsbox: cannot write its output: No space left on device (os error 28)\n"
    );
}
