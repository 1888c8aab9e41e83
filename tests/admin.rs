//! vps, vpstree, vtop, vkill and vserver-stat with two running guests and
//! host processes: every process shown once with its context, guest PIDs
//! that match what the guest sees, and signals that reach exactly the
//! process meant.

mod common;
use common::*;

/// Two started guests, each running a daemon `probe sleep 600`.
fn two_guests(env: &Env) -> (TestGuest<'_>, TestGuest<'_>) {
    let a = TestGuest::busybox(env, "adm-a");
    let b = TestGuest::busybox(env, "adm-b");
    for g in [&a, &b] {
        g.service("daemon", "(probe sleep 600 &)", "true");
        g.run(&["start"]).ok();
    }
    (a, b)
}

fn xid(g: &TestGuest) -> u32 {
    g.context_dir()
        .and_then(|d| d.file_name()?.to_str()?.parse().ok())
        .expect("a running guest")
}

/// `vps -e -o pid,vpid,ctx,vserver,comm` as rows of five fields (a
/// command name may have spaces: "vsbox-watch NAME").
fn vps(env: &Env, extra: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-e", "-o", "pid,vpid,ctx,vserver,comm"];
    args.extend_from_slice(extra);
    let out = env.run("vps", &args);
    out.ok();
    out.stdout
        .lines()
        .skip(1)
        .map(|l| {
            let mut row: Vec<String> = l.split_whitespace().take(4).map(String::from).collect();
            row.push(l.split_whitespace().skip(4).collect::<Vec<_>>().join(" "));
            row
        })
        .collect()
}

#[test]
fn vps_shows_every_process_once_with_its_context() {
    require_root!();
    let env = Env::new();
    let (a, b) = two_guests(&env);
    let host = Bg(std::process::Command::new(PROBE).args(["sleep", "60"]).spawn().unwrap());
    // The daemons' rc script backgrounds them: start may return before
    // the subshell has become the probe (a loaded machine, seen once).
    let daemons_up = || {
        let rows = vps(&env, &[]);
        [&a, &b]
            .iter()
            .all(|g| rows.iter().any(|r| r[2] == xid(g).to_string() && r[4] == "probe"))
    };
    eventually(10, daemons_up);
    let rows = vps(&env, &[]);
    let pids: Vec<&String> = rows.iter().map(|r| &r[0]).collect();
    let mut unique = pids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(pids.len(), unique.len(), "a process listed twice");
    for g in [&a, &b] {
        let x = xid(g).to_string();
        let mine: Vec<&Vec<String>> = rows.iter().filter(|r| r[2] == x).collect();
        assert!(mine.len() >= 2, "{}: init and daemon: {mine:?}", g.name);
        assert!(mine.iter().all(|r| r.len() == 5 && r[3] == g.name), "{mine:?}");
        // The in-guest PID is what the guest itself sees.
        let sleeper = mine.iter().find(|r| r[4] == "probe").expect("the daemon");
        let seen = g.run(&["exec", "probe", "exists", &format!("/proc/{}/status", sleeper[1])]);
        assert!(seen.stdout.starts_with("OK"), "{seen:?}");
        let status = proc_read(sleeper[0].parse().unwrap(), "status").unwrap();
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("NSpid:") && l.ends_with(&format!("\t{}", sleeper[1]))),
            "{status}"
        );
        assert!(mine.iter().any(|r| r[1] == "1"), "the guest's init is its PID 1");
    }
    let h = host.0.id().to_string();
    let row = rows.iter().find(|r| r[0] == h).expect("the host process");
    assert_eq!((row[2].as_str(), row[3].as_str()), ("0", "MAIN"));
    // Filtering by name or number; JSON for scripts.
    let only = vps(&env, &["--xid", &a.name]);
    assert!(!only.is_empty() && only.iter().all(|r| r[3] == a.name), "{only:?}");
    let json = env.run("vps", &["--json", "--xid", &xid(&b).to_string()]);
    assert!(
        json.stdout.trim_start().starts_with('[') && json.stdout.contains(&format!("\"vserver\":\"{}\"", b.name)),
        "{json:?}"
    );
    for style in [&["ax"][..], &["aux"], &["-ef"], &[]] {
        let out = env.run("vps", style);
        assert_eq!(out.code, 0, "{style:?}: {out:?}");
        assert!(out.stdout.lines().next().unwrap().contains("CTX VSERVER"), "{style:?}");
        assert!(out.stdout.contains(&a.name) && out.stdout.contains("MAIN"), "{style:?}");
    }
    let out = env.run("vps", &["--xid", "no-such-guest"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(env.run("vps", &["-o", "bogus"]).code, 2);
}

#[test]
fn vkill_with_a_guest_pid_kills_exactly_that_process() {
    require_root!();
    let env = Env::new();
    let (a, b) = two_guests(&env);
    let host = Bg(std::process::Command::new(PROBE).args(["sleep", "60"]).spawn().unwrap());
    let rows = vps(&env, &["--xid", &a.name]);
    let sleeper = rows.iter().find(|r| r[4] == "probe").unwrap().clone();
    let vpid: u32 = sleeper[1].parse().unwrap();
    // The same number on the host and in the other guest stays untouched.
    let same_on_host = std::path::Path::new(&format!("/proc/{vpid}")).exists();
    let b_before = vps(&env, &["--xid", &b.name]).len();
    // Bad input changes nothing.
    for bad in [
        vec!["--xid", &a.name, "-s", "NOPE", &sleeper[1]],
        vec!["--xid", "no-such-guest", "5"],
        vec!["--xid", &a.name, "x1"],
        vec!["--xid", &a.name, "99999"],
    ] {
        let out = env.run("vkill", &bad);
        assert_eq!(out.code, 2, "{bad:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    }
    let host_pid: u32 = sleeper[0].parse().unwrap();
    assert!(proc_exists(host_pid), "bad input signalled");
    env.run("vkill", &["--xid", &a.name, "-s", "KILL", &sleeper[1]]).ok();
    assert!(eventually(5, || proc_read(host_pid, "stat").is_none_or(|s| s.contains(") Z"))));
    assert_eq!(std::path::Path::new(&format!("/proc/{vpid}")).exists(), same_on_host);
    assert_eq!(vps(&env, &["--xid", &b.name]).len(), b_before);
    assert!(std::path::Path::new(&format!("/proc/{}", host.0.id())).exists());
    assert_eq!(a.run(&["running"]).code, 0, "the guest itself still runs");
    // A host PID without --xid: found in its context and signalled there.
    let b_sleeper = vps(&env, &["--xid", &b.name]).into_iter().find(|r| r[4] == "probe").unwrap();
    env.run("vkill", &["-s", "TERM", &b_sleeper[0]]).ok();
    assert!(eventually(5, || !vps(&env, &["--xid", &b.name])
        .iter()
        .any(|r| r[0] == b_sleeper[0])));
    // --xid alone empties the guest.
    env.run("vkill", &["--xid", &b.name]).ok();
    assert!(
        eventually(10, || b.run(&["running"]).code == 1),
        "vkill --xid did not empty the guest"
    );
    assert_eq!(a.run(&["running"]).code, 0);
}

#[test]
fn vserver_stat_counts_what_the_guest_sees() {
    require_root!();
    let env = Env::new();
    let (a, _b) = two_guests(&env);
    let out = env.run("vserver-stat", &[]);
    out.ok();
    assert!(
        out.stdout
            .starts_with("CTX   PROC    VSZ    RSS  userTIME   sysTIME    UPTIME NAME\n"),
        "{out:?}"
    );
    let x = xid(&a).to_string();
    let row: Vec<&str> = out
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&x))
        .expect("a line for the guest")
        .split_whitespace()
        .collect();
    assert_eq!(row.last(), Some(&a.name.as_str()));
    let proc_count: usize = row[1].parse().unwrap();
    // Seen from inside, minus the probe doing the counting and the vsbox
    // process that stays its parent (vsbox-exec).
    let inside: usize = a.run(&["exec", "probe", "count-procs"]).line().parse().unwrap();
    assert_eq!(proc_count, inside - 2, "{out:?}");
    assert!(out.stdout.lines().any(|l| l.starts_with("0 ") && l.ends_with("root server")));
    // With -m, each context's memory limit after RSS; in the JSON always.
    a.run(&["set", "MEM_LIMIT=48M"]).ok();
    let out = env.run("vserver-stat", &["-m"]);
    out.ok();
    assert!(out.stdout.starts_with("CTX   PROC    VSZ    RSS MEMLIM  userTIME"), "{out:?}");
    let memlim = |g: &TestGuest| {
        let x = xid(g).to_string();
        let l = out.stdout.lines().find(|l| l.split_whitespace().next() == Some(&x)).unwrap();
        l.split_whitespace().nth(4).unwrap().to_owned()
    };
    assert_eq!((memlim(&a), memlim(&_b)), ("48M".to_owned(), "-".to_owned()), "{out:?}");
    let json = env.run("vserver-stat", &["--json"]);
    assert!(json.stdout.contains(&format!("\"name\":\"{}\"", a.name)), "{json:?}");
    assert!(json.stdout.contains(&format!("\"mem_limit\":{},", 48 << 20)), "{json:?}");
    // vtop's table of contexts shows it too.
    let top = env.run("vtop", &["-b", "-n", "1"]);
    let row = top
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{} ", xid(&a))))
        .unwrap_or_else(|| panic!("{top:?}"));
    assert!(row.ends_with(" 48M"), "{top:?}");
}

#[test]
fn vtop_batch_mode_and_vpstree_show_the_guests() {
    require_root!();
    let env = Env::new();
    let (a, b) = two_guests(&env);
    let out = env.run("vtop", &["-b", "-n", "2", "-d", "0.2", "--lines", "500"]);
    out.ok();
    assert_eq!(out.stdout.matches("vtop: ").count(), 2, "two screens");
    for g in [&a, &b] {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.starts_with(&xid(g).to_string()) && l.contains(&g.name)),
            "{}: {out:?}",
            g.name
        );
    }
    assert_eq!(env.run("vtop", &["-d", "0"]).code, 2);
    let tree = env.run("vpstree", &["--xid", &a.name]);
    tree.ok();
    let lines: Vec<&str> = tree.stdout.lines().collect();
    assert!(lines[0].starts_with("vsbox-init(") && lines[0].contains(" =1) ["), "{tree:?}");
    // Children are indented; on the patched kernel a short-lived child of
    // the watcher, answering a call from inside the context, may show as
    // a root of its own (its parent is on the host).
    assert!(
        lines
            .iter()
            .skip(1)
            .all(|l| l.starts_with("  ") || patched() && l.starts_with("vsbox-watch(")),
        "children are indented: {tree:?}"
    );
    assert!(lines.iter().all(|l| l.ends_with(&format!("{} {}]", xid(&a), a.name))), "{tree:?}");
}

#[test]
fn vtop_on_a_terminal_quits_with_q() {
    require_root!();
    use std::io::{Read, Write};
    let env = Env::new();
    let (mut child, mut master) = spawn_on_pty(env.cmd("vtop").args(["-d", "0.2"]));
    std::thread::sleep(std::time::Duration::from_millis(700));
    master.write_all(b"q").unwrap();
    let quit = eventually(5, || child.try_wait().is_ok_and(|s| s.is_some()));
    if !quit {
        let _ = child.kill();
    }
    let mut seen = Vec::new();
    let _ = master.read_to_end(&mut seen);
    let seen = String::from_utf8_lossy(&seen);
    assert!(quit, "vtop did not quit on q: {seen}");
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(seen.matches("vtop: ").count() >= 2, "it refreshed: {seen}");
    assert!(seen.contains("\x1b[2J") && seen.contains("(q quits)"), "{seen}");
}

/// Inside a guest, vps, vpstree, vtop and vserver-stat report the guest's
/// own context and name, not the host's 0 / MAIN: in the running guest and
/// in the fresh context of a stopped one. Guest root cannot rewrite or
/// unmount the record they read.
#[test]
fn tools_inside_a_guest_report_its_own_context() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "inside");
    g.service("daemon", "(probe sleep 600 &)", "true");
    let vsbox = "/usr/lib/vsbox/vsbox";
    for running in [false, true] {
        if running {
            g.run(&["start"]).ok();
        }
        // Each exec in a stopped guest makes a fresh context: its own id.
        let ours = |x: &str| match running {
            true => x == xid(&g).to_string(),
            false => x.parse::<u32>().is_ok_and(|x| x >= 2),
        };
        let out = g.run(&["exec", vsbox, "vps", "-e", "-o", "pid,ctx,vserver,comm"]);
        out.ok();
        let rows: Vec<Vec<&str>> = out.stdout.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
        assert!(rows.len() >= 2, "{out:?}");
        for r in &rows {
            assert!(ours(r[1]) && r[1] == rows[0][1] && r[2] == g.name, "running={running}: {out:?}");
        }
        let out = g.run(&["exec", vsbox, "vserver-stat"]);
        out.ok();
        let lines: Vec<Vec<&str>> = out.stdout.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines.len(), 1, "{out:?}");
        assert!(ours(lines[0][0]) && lines[0].last() == Some(&g.name.as_str()), "{out:?}");
        let out = g.run(&["exec", vsbox, "vpstree"]);
        out.ok();
        for l in out.stdout.lines() {
            let (x, name) = l
                .rsplit_once('[')
                .and_then(|(_, c)| c.trim_end_matches(']').split_once(' '))
                .unwrap();
            assert!(ours(x) && name == g.name, "{out:?}");
        }
        let out = g.run(&["exec", vsbox, "vtop", "-b", "-n", "1"]);
        out.ok();
        let summary: Vec<&str> = out.stdout.lines().nth(3).unwrap_or("").split_whitespace().collect();
        assert!(ours(summary[0]) && summary[1] == g.name && !out.stdout.contains("MAIN"), "{out:?}");
    }
    for forge in [
        "echo XID=0 > /run/vsbox/context",
        "umount /run/vsbox",
        "mount -o remount,rw /run/vsbox",
    ] {
        let out = g.run(&["exec", "sh", "-c", forge]);
        assert_ne!(out.code, 0, "{forge}: {out:?}");
    }
    let out = g.run(&["exec", vsbox, "vps", "-o", "ctx,vserver"]);
    assert!(
        out.stdout
            .lines()
            .skip(1)
            .all(|l| l.split_whitespace().eq([xid(&g).to_string().as_str(), g.name.as_str()])),
        "{out:?}"
    );
}

/// vps reads each context's processes from its cgroups once: a process
/// chbind moved into a directory below its context, and a zombie (which
/// no cgroup lists), are still the context's.
#[test]
fn a_contexts_zombies_and_chbinds_processes_are_its_own() {
    require_root!();
    let env = Env::new();
    let vsbox = env.cmd("chbind").get_program().to_owned();
    let _ctx = Bg(env
        .cmd("chcontext")
        .args(["--silent", "--"])
        .arg("sh")
        .arg("-c")
        .arg(format!(
            "sleep 0.1 & {} --ip 127.0.0.71 -- sleep 7 & exec sleep 7",
            vsbox.to_string_lossy()
        ))
        .spawn()
        .unwrap());
    let table = || -> Vec<Vec<String>> {
        let out = env.run("vps", &["-e", "-o", "pid,ctx,stat,comm"]);
        out.ok();
        out.stdout
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().map(String::from).collect())
            .collect()
    };
    // The zombie's context: the chbind'd sleep and the context's own are
    // in it too.
    let mine = |t: &[Vec<String>]| -> Option<(String, usize)> {
        let ctx = t.iter().find(|r| r.get(3).is_some_and(|c| c == "sleep") && r[2].starts_with('Z'))?[1].clone();
        let n = t.iter().filter(|r| r[1] == ctx && r.get(3).is_some_and(|c| c == "sleep")).count();
        Some((ctx, n))
    };
    assert!(
        eventually(5, || mine(&table()).is_some_and(|(c, n)| c != "0" && n == 3)),
        "{:?}",
        table()
    );
    let xid: u32 = mine(&table()).unwrap().0.parse().unwrap();
    // Ended, the context leaves nothing, chbind's directory in it included.
    drop(_ctx);
    let reg = vsbox::context::Registry::open().unwrap();
    assert!(eventually(5, || reg.find(xid).is_none()), "context {xid} left behind");
}
