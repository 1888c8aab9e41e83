//! vserver with real busybox guests: the life cycle, the showcase of two
//! guests serving the same port on two addresses, escape attempts by guest
//! root next to what it may do, and bad input.

mod common;
use common::*;
use std::process::Stdio;

/// The guest's processes (host pid, start time), from its own cgroup.
fn guest_processes(g: &TestGuest) -> Vec<(u32, String)> {
    assert!(g.context_dir().is_some(), "the running guest's cgroup");
    g.pids().into_iter().filter_map(|p| start_time(p).map(|t| (p, t))).collect()
}

/// A live process's start time (field 22 of /proc/PID/stat), to tell it
/// from a later process with the same pid; None for a zombie (dead, only
/// waiting for its parent to collect its status) or no process.
fn start_time(pid: u32) -> Option<String> {
    let stat = proc_read(pid, "stat")?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19).map(|s| s.to_string())
}

/// The guest's init: (host pid, start time).
fn init_of(g: &TestGuest) -> Option<(u32, String)> {
    guest_processes(g)
        .into_iter()
        .find(|(p, _)| proc_read(*p, "status").is_some_and(|s| s.lines().any(|l| l.starts_with("NSpid:") && l.ends_with("\t1"))))
}

fn xid_of(status: &Out) -> u32 {
    status
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("context: "))
        .and_then(|n| n.trim().parse().ok())
        .expect("a context line")
}

#[test]
fn busybox_guest_lifecycle_leaves_nothing_behind() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "life");
    // A daemon that double-forks away from its parent.
    g.service(
        "daemon",
        "echo daemon starting; (probe sleep 600 &) ; echo $(( $(cat /var/starts 2>/dev/null || echo 0) + 1 )) > /var/starts",
        "echo daemon stopping",
    );
    let out = g.run(&["start"]);
    out.ok();
    assert!(out.stdout.contains("daemon starting"), "start shows the start-up output: {out:?}");
    let running = g.run(&["running"]);
    assert_eq!(
        (running.code, running.line()),
        (0, format!("Server {} is running", g.name).as_str())
    );
    let status = g.run(&["status"]);
    assert!(xid_of(&status) > 0 && status.stdout.contains("processes: "), "{status:?}");
    // PID 1 shows no host path or command line to the guest.
    let out = g.run(&["exec", "cat", "/proc/1/cmdline"]);
    assert_eq!(out.stdout.trim_end_matches('\0'), "vsbox-init", "{out:?}");
    // On the host: one sleeping watcher that cleans up if the guest halts.
    assert!(eventually(5, || watchers(&g).len() == 1), "{:?}", watchers(&g));
    // exec passes output and status through; the guest's root is /.
    let out = g.run(&["exec", "sh", "-c", "cat /etc/hostname; exit 5"]);
    assert_eq!((out.code, out.line()), (5, g.name.as_str()));
    let out = g.run(&["exec", "probe", "exists", "/var/starts"]);
    assert!(out.stdout.starts_with("OK"), "{out:?}");
    // suexec resolves the user in the guest's own files.
    let out = g.run(&["suexec", "nobody", "probe", "status", "Uid"]);
    assert!(out.stdout.starts_with("65534"), "{out:?}");
    let out = g.run(&["suexec", "nosuchuser", "true"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("nosuchuser"), "{out:?}");
    // service runs the guest's own init script.
    let out = g.run(&["service", "S50daemon", "stop"]);
    assert_eq!(out.line(), "daemon stopping", "{out:?}");
    // restart: the start-up runs again.
    assert_eq!(std::fs::read_to_string(g.root().join("var/starts")).unwrap().trim(), "1");
    let first_run = guest_processes(&g);
    g.run(&["restart"]).ok();
    assert_eq!(
        std::fs::read_to_string(g.root().join("var/starts")).unwrap().trim(),
        "2",
        "restart ran the start-up again"
    );
    // Its processes, by (pid, start time) from its own cgroup: ids and
    // pids may be reused by other tests' guests once this one is gone.
    assert!(first_run.len() >= 2, "init and the daemon: {first_run:?}");
    let gone = |list: &[(u32, String)]| list.iter().all(|(p, t)| start_time(*p).as_ref() != Some(t));
    assert!(gone(&first_run), "restart left processes of the first run: {first_run:?}");
    let mut before = first_run.clone();
    before.extend(guest_processes(&g));
    // stop: nothing of the guest survives.
    g.run(&["stop"]).ok();
    let running = g.run(&["running"]);
    assert_eq!(
        (running.code, running.line()),
        (1, format!("Server {} is not running", g.name).as_str())
    );
    // The cgroup empties a moment before its last task is done exiting.
    let survivors = || -> Vec<(u32, String)> { before.iter().filter(|(p, t)| start_time(*p).as_ref() == Some(t)).cloned().collect() };
    assert!(
        eventually(5, || survivors().is_empty()),
        "processes of the guest survived: {:?}",
        survivors()
    );
    assert!(eventually(5, || watchers(&g).is_empty()), "the watcher left with the guest");
    assert!(g.context_dir().is_none());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&g.name), "a mount of the guest leaked to the host");
    let out = g.run(&["stop"]);
    assert_eq!(out.code, 1, "stopping a stopped server: {out:?}");
    assert!(out.stderr.contains("not running"));
}

#[test]
fn exec_in_a_stopped_guest_gets_a_fresh_context() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "fresh");
    let out = g.run(&["exec", "probe", "pid"]);
    assert_eq!(out.line(), "2", "vsbox's init is PID 1: {out:?}");
    let out = g.run(&["exec", "/nonexistent"]);
    assert_eq!(out.code, 127, "{out:?}");
    assert!(g.context_dir().is_none(), "the fresh context was removed");
}

/// Runs `vserver NAME enter` on a new pseudo-terminal, types `input`,
/// and returns (exit code, everything the terminal showed).
fn enter_with(g: &TestGuest, input: &str) -> (i32, String) {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    let (mut child, mut master) = spawn_on_pty(g.env.cmd("vserver").args([g.name.as_str(), "enter"]));
    // Type only once the shell shows its prompt: a loaded machine may take
    // its time, and input typed earlier could meet a terminal being set up.
    let mut seen = Vec::new();
    let fd = std::os::fd::AsRawFd::as_raw_fd(&master);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen).contains("# ") && std::time::Instant::now() < deadline {
        let mut fds = [nix::poll::PollFd::new(master.as_fd(), nix::poll::PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(200u16)).unwrap_or(0) > 0 {
            let mut buf = [0u8; 4096];
            match nix::unistd::read(fd, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    }
    master.write_all(input.as_bytes()).unwrap();
    let _ = master.read_to_end(&mut seen); // EIO once every slave is closed
    let code = child.wait().unwrap().code().unwrap_or(-1);
    (code, String::from_utf8_lossy(&seen).into_owned())
}

#[test]
fn enter_gives_a_shell_on_a_new_terminal_of_the_guest() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "enter");
    for running in [false, true] {
        if running {
            g.run(&["start"]).ok();
        }
        let (code, seen) = enter_with(&g, "echo \"T=$(tty) H=$(hostname) U=$(id -u)\"; exit 7\n");
        assert_eq!(code, 7, "{seen}");
        assert!(
            seen.contains(&format!("T=/dev/pts/0 H={} U=0", g.name)),
            "running={running}: {seen}"
        );
    }
}

/// `enter` follows exec's exit codes: root's shell missing is 127, not
/// executable 126 (chroot(1)), running or not, with a message naming it.
#[test]
fn enter_without_a_runnable_shell_exits_127_or_126() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "entershell");
    let passwd = g.root().join("etc/passwd");
    let original = std::fs::read_to_string(&passwd).unwrap();
    for running in [false, true] {
        if running {
            g.run(&["start"]).ok();
        }
        for (shell, want) in [("/bin/nosuchshell", 127), ("/etc/group", 126)] {
            std::fs::write(&passwd, original.replacen("/root:/bin/sh", &format!("/root:{shell}"), 1)).unwrap();
            let (code, seen) = enter_with(&g, "");
            assert_eq!(code, want, "running={running} shell={shell}: {seen}");
            assert!(seen.contains(&format!("cannot run '{shell}'")), "{seen}");
        }
        std::fs::write(&passwd, &original).unwrap();
        let (code, _) = enter_with(&g, "exit 3\n");
        assert_eq!(code, 3, "running={running}: the shell that is there runs");
    }
}

#[test]
fn two_guests_serve_the_same_port_on_their_own_addresses() {
    require_root!();
    let env = Env::new();
    let (ip1, ip2) = (loopback(), loopback());
    let port = "80";
    let mut guests = Vec::new();
    for (ip, content) in [(&ip1, "guest one"), (&ip2, "guest two")] {
        let g = TestGuest::busybox(&env, "web");
        std::fs::create_dir_all(g.root().join("var/www")).unwrap();
        std::fs::write(g.root().join("var/www/index.html"), content).unwrap();
        // The identical, vanilla service configuration in both.
        g.service("httpd", &format!("httpd -p {port} -h /var/www"), "killall httpd");
        g.conf(&format!("IPROOT={ip}\nS_HOSTNAME=web\n"));
        g.run(&["start"]).ok();
        guests.push(g);
    }
    // The host's own service on the same port still works.
    let host_www = TempDir::new("www");
    std::fs::write(host_www.path().join("index.html"), "host").unwrap();
    let _host = Bg(std::process::Command::new("/bin/busybox")
        .args([
            "httpd",
            "-f",
            "-p",
            &format!("127.0.0.1:{port}"),
            "-h",
            host_www.path().to_str().unwrap(),
        ])
        .spawn()
        .unwrap());
    let get = |ip: &str| host_probe(&["http-get", ip, port]);
    assert!(eventually(5, || get("127.0.0.1").stdout.contains("host")), "{:?}", get("127.0.0.1"));
    assert_eq!(get(&ip1).line(), "OK guest one");
    assert_eq!(get(&ip2).line(), "OK guest two");
}

#[test]
fn guest_root_cannot_escape() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "jail");
    let marker = env.dir.path().join("host-marker");
    std::fs::write(&marker, "host").unwrap();
    g.run(&["start"]).ok();
    let host = Bg(std::process::Command::new(PROBE).args(["sleep", "30"]).spawn().unwrap());
    let hostpid = host.0.id().to_string();
    let m = marker.to_str().unwrap();
    let attempts: Vec<(Vec<&str>, &str)> = vec![
        (vec!["kill", &hostpid, "9"], "ERR ESRCH"),
        (vec!["chroot-escape", m], "ERR ENOENT"),
        (vec!["mount-tmpfs", "/tmp"], "ERR EPERM"),
        // This kernel has no module support (ENOSYS for everyone); the
        // ceiling check below covers kernels that have it.
        (vec!["load-module"], "ERR E"),
        (vec!["set-clock"], "ERR EPERM"),
        (vec!["set-mtu", "lo"], "ERR EPERM"),
        (vec!["raw-socket"], "ERR EPERM"),
        (vec!["mknod-block", "/tmp/disk"], "ERR EPERM"),
        (vec!["set-immutable", "/etc/hostname"], "ERR EPERM"),
        (vec!["rewrite", "/proc/sys/vm/swappiness"], "ERR EROFS"),
        (vec!["rewrite", "/sys/kernel/mm/transparent_hugepage/enabled"], "ERR EROFS"),
        (vec!["unshare", "mnt"], "ERR EPERM"),
    ];
    for (attempt, want) in &attempts {
        let mut args = vec!["exec", "probe"];
        args.extend(attempt.iter().copied());
        let out = g.run(&args);
        assert!(out.stdout.starts_with(want), "{attempt:?}: {out:?}");
    }
    let bnd = g.run(&["exec", "probe", "status", "CapBnd"]);
    let bnd = u64::from_str_radix(bnd.line(), 16).unwrap();
    for (cap, name) in [
        (16, "SYS_MODULE"),
        (21, "SYS_ADMIN"),
        (12, "NET_ADMIN"),
        (13, "NET_RAW"),
        (25, "SYS_TIME"),
        (27, "MKNOD"),
        (9, "LINUX_IMMUTABLE"),
        (22, "SYS_BOOT"),
        (2, "DAC_READ_SEARCH"),
    ] {
        assert_eq!(bnd & (1 << cap), 0, "guest root keeps CAP_{name}");
    }
    // Next to each refusal, what guest root may do.
    let allowed: Vec<Vec<&str>> = vec![
        vec!["kill", "1", "0"],
        vec!["exists", "/etc/hostname"],
        vec!["bind", "0.0.0.0", "80", "tcp"],
        vec!["rewrite", "/etc/hostname"],
        vec!["shm-create", "4242"],
    ];
    for attempt in &allowed {
        let mut args = vec!["exec", "probe"];
        args.extend(attempt.iter().copied());
        let out = g.run(&args);
        assert!(out.stdout.starts_with("OK"), "{attempt:?}: {out:?}");
    }
    // The host's name is not the guest's to change.
    let before = nix::unistd::gethostname().unwrap();
    let out = g.run(&["exec", "hostname", "hacked"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(nix::unistd::gethostname().unwrap(), before);
    assert!(std::path::Path::new(&format!("/proc/{hostpid}")).exists());
    // Its System V IPC is its own.
    let other = TestGuest::busybox(&env, "jail2");
    other.run(&["start"]).ok();
    assert!(g.run(&["exec", "probe", "shm-find", "4242"]).stdout.starts_with("OK"));
    assert!(other.run(&["exec", "probe", "shm-find", "4242"]).stdout.starts_with("ERR ENOENT"));
}

#[test]
fn aliases_are_added_at_start_and_removed_at_stop() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "alias");
    let ip = loopback();
    g.conf(&format!("IPROOT={ip}\nIPROOTDEV=lo\nIPROOTMASK=32\n"));
    assert!(!addresses_on("lo").contains(&ip));
    g.run(&["start"]).ok();
    assert!(addresses_on("lo").contains(&ip), "alias added");
    let out = g.run(&["exec", "probe", "bind", "0.0.0.0", "0", "udp"]);
    assert!(out.stdout.starts_with(&format!("OK {ip}:")), "{out:?}");
    g.run(&["stop"]).ok();
    assert!(!addresses_on("lo").contains(&ip), "alias removed");
}

#[test]
fn a_bad_configuration_stops_start_before_anything_changes() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "badconf");
    g.conf("ONBOOT=no\nS_HOSTNAME=x\nBOGUS=1\n");
    let out = g.run(&["start"]);
    assert_eq!(out.code, 1, "{out:?}");
    let want = format!("{}:3: unknown key 'BOGUS'", g.conf_path().display());
    assert!(out.stderr.contains(&want), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(g.context_dir().is_none(), "something was set up");
    g.conf("IPROOT=127.0.0.300\n");
    let out = g.run(&["start"]);
    assert!(out.stderr.contains(":1: bad address '127.0.0.300'"), "{out:?}");
    let out = env.run("vserver", &["no-such-guest", "start"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("unknown server 'no-such-guest'"));
    let out = env.run("vserver", &["../etc", "start"]);
    assert_eq!(out.code, 2, "{out:?}");
    let out = g.run(&["frobnicate"]);
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn hostile_symlinks_in_the_tree_change_nothing_outside() {
    require_root!();
    let env = Env::new();
    let outside = TempDir::new("outside");
    for target in ["dev", "proc"] {
        let g = TestGuest::busybox(&env, "hostile");
        let p = g.root().join(target);
        std::fs::remove_dir_all(&p).unwrap();
        std::os::unix::fs::symlink(outside.path(), &p).unwrap();
        let out = g.run(&["start"]);
        assert_eq!(out.code, 1, "{target}: {out:?}");
        assert!(
            out.stderr.contains(&format!("guest's /{target}")) && out.stderr.contains("not a directory"),
            "{out:?}"
        );
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "something was created outside the tree"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(outside.path().to_str().unwrap()),
            "something was mounted outside the tree"
        );
        assert!(g.context_dir().is_none());
    }
}

#[test]
fn concurrent_starts_make_one_guest() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "race");
    let a = g
        .env
        .cmd("vserver")
        .args([g.name.as_str(), "start"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b = g
        .env
        .cmd("vserver")
        .args([g.name.as_str(), "start"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (Out::from(a.wait_with_output().unwrap()), Out::from(b.wait_with_output().unwrap()));
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(codes, [0, 1], "{a:?} {b:?}");
    assert!(a.stderr.contains("running already") || b.stderr.contains("running already"));
    let tag = g.conf_path().display().to_string();
    let n = vsbox::context::Registry::open()
        .unwrap()
        .list()
        .iter()
        .filter(|(_, d)| {
            vsbox::sys::getxattr(d, "trusted.vsbox.guest")
                .ok()
                .flatten()
                .is_some_and(|v| v == tag.as_bytes())
        })
        .count();
    assert_eq!(n, 1, "one context for the guest");
}

#[test]
fn hooks_run_around_start_and_stop_and_pre_start_can_veto() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "hook");
    let log = env.dir.path().join("hook.log");
    g.set_hook(&format!(
        "#!/bin/sh\necho \"$1 $2\" >> {log}\n[ -e {log}.veto ] && exit 1\n\
         # A hook may use the server it runs for, not only while it runs.\n\
         timeout 10 {bin}/vserver \"$2\" exec true; echo \"exec $?\" >> {log}\nexit 0\n",
        log = log.display(),
        bin = env.dir.path().join("bin").display()
    ));
    g.run(&["start"]).ok();
    g.run(&["stop"]).ok();
    let phases: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(String::from).collect();
    let want: Vec<String> = ["pre-start", "post-start", "pre-stop", "post-stop"]
        .iter()
        .flat_map(|p| [format!("{p} {}", g.name), "exec 0".to_owned()])
        .collect();
    assert_eq!(phases, want);
    std::fs::write(format!("{}.veto", log.display()), "").unwrap();
    let out = g.run(&["start"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("pre-start"), "{out:?}");
    assert!(g.context_dir().is_none(), "a vetoed start set something up");
}

#[test]
fn build_refuses_to_overwrite_without_force() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "build");
    std::fs::write(g.root().join("etc/keep"), "x").unwrap();
    let out = g.run(&["build", "-m", "skeleton"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("--force"), "{out:?}");
    assert!(g.root().join("etc/keep").exists());
    // --force never replaces a tree with a file system mounted inside.
    let data = g.root().join("home/data");
    let mounted = Mounted::tmpfs(&data);
    std::fs::write(data.join("precious"), "keep").unwrap();
    let out = g.run(&["build", "-m", "skeleton", "--force"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("home/data is mounted"), "{out:?}");
    assert!(g.root().join("etc/keep").exists() && data.join("precious").exists());
    drop(mounted);
    g.run(&["build", "-m", "skeleton", "--force"]).ok();
    assert!(!g.root().join("etc/keep").exists());
    assert!(g.root().join("tmp").is_dir());
    let out = g.run(&["build", "-m", "nosuchmethod"]);
    assert_eq!(out.code, 2, "{out:?}");
    // The configuration it wrote is valid and commented.
    let conf = std::fs::read_to_string(g.conf_path()).unwrap();
    assert!(conf.starts_with('#'));
    assert!(vsbox::guest::config::parse(&g.conf_path(), &conf).is_ok());
}

/// The seed's default: a copy of the host's own system, with its own
/// bash, procps and users.
#[test]
fn copy_guest_runs_the_hosts_own_userland() {
    require_root!();
    let env = Env::new();
    let name = format!("copy-{}", std::process::id());
    let run = |args: &[&str]| {
        let mut full = vec![name.as_str()];
        full.extend_from_slice(args);
        env.run("vserver", &full)
    };
    struct Stop<'a>(&'a dyn Fn(&[&str]) -> Out);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["stop"]);
        }
    }
    // The host's resolver is a local stub (as with systemd-resolved): in
    // a mount namespace of the build's own, /etc/resolv.conf names
    // 127.0.0.53 and the stub's upstream list is in /run.
    let stub = env.dir.path().join("stub-resolv.conf");
    std::fs::write(&stub, "nameserver 127.0.0.53\noptions edns0\nsearch lan\n").unwrap();
    let script = format!(
        "mount --make-rprivate / && mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/resolve && \
         echo 'nameserver 192.0.2.53' > /run/systemd/resolve/resolv.conf && \
         mount --bind {} /etc/resolv.conf && exec \"$0\" {name} build",
        stub.display()
    );
    let cmd = env.cmd("vserver");
    let build = Out::from(
        std::process::Command::new("unshare")
            .args(["-m", "--", "sh", "-c", &script])
            .arg(env.dir.path().join("bin/vserver"))
            .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );
    build.ok();
    assert!(build.stderr.contains("copied"), "{build:?}");
    assert!(build.stderr.contains("upstream servers 192.0.2.53"), "{build:?}");
    let root = env.dir.path().join("vservers").join(&name);
    let resolv = std::fs::read_to_string(root.join("etc/resolv.conf")).unwrap();
    assert!(resolv.ends_with("options edns0\nsearch lan\nnameserver 192.0.2.53\n"), "{resolv}");
    for d in ["usr/bin", "etc", "var", "proc", "dev", "tmp"] {
        assert!(root.join(d).is_dir(), "{d}");
    }
    assert!(
        std::fs::read_dir(root.join("dev")).unwrap().next().is_none(),
        "no host device nodes copied"
    );
    let _stop = Stop(&run);
    run(&["start"]).ok();
    // The host's ps, in the guest, sees the guest's processes only.
    let out = run(&["exec", "ps", "-e", "-o", "pid=,comm="]);
    let pids: Vec<&str> = out.stdout.lines().map(|l| l.split_whitespace().next().unwrap_or("")).collect();
    assert!(pids.contains(&"1") && pids.len() <= 3, "{out:?}");
    let out = run(&["suexec", "daemon", "id", "-un"]);
    assert_eq!(out.line(), "daemon", "{out:?}");
    let out = run(&["exec", "bash", "-c", "hostname; readlink /etc/mtab"]);
    assert_eq!(out.stdout, format!("{name}\n/proc/mounts\n"), "{out:?}");
    // The guest's names, not the host's: /etc/hostname, its own name and
    // localhost through the host's own resolver (getent), and no line of
    // the copied /etc/hosts still naming the host; a machine id of its own.
    assert_eq!(std::fs::read_to_string(root.join("etc/hostname")).unwrap(), format!("{name}\n"));
    let out = run(&["exec", "hostname", "-f"]);
    assert_eq!(out.line(), name, "{out:?}");
    let out = run(&["exec", "getent", "hosts", "localhost"]);
    assert!(out.stdout.starts_with("127.0.0.1 ") || out.stdout.starts_with("::1 "), "{out:?}");
    let out = run(&["exec", "getent", "hosts", &name]);
    assert!(out.line().starts_with("127.0.1.1 "), "{out:?}");
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let hosts = std::fs::read_to_string(root.join("etc/hosts")).unwrap();
    assert!(
        !hosts
            .lines()
            .any(|l| l.split('#').next().unwrap().split_whitespace().skip(1).any(|n| n == host)),
        "the host's name {host} in the guest's /etc/hosts: {hosts}"
    );
    if let Ok(id) = std::fs::read_to_string("/etc/machine-id") {
        let own = std::fs::read_to_string(root.join("etc/machine-id")).unwrap();
        assert!(own.trim().len() == 32 && own != id, "{own} vs the host's {id}");
    }
    run(&["stop"]).ok();
    assert_eq!(run(&["running"]).code, 1);
}

#[test]
fn configuration_keys_shape_the_running_guest() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "keys");
    g.conf("S_HOSTNAME=keyhost\nS_DOMAINNAME=keydomain\nS_NICE=5\nULIMIT=\"-n 64 -H -u 500\"\nS_CAPS=CAP_NET_RAW\nS_FLAGS=lock\n");
    g.run(&["start"]).ok();
    assert_eq!(g.run(&["exec", "probe", "uname"]).line(), "keyhost keydomain");
    // S_NICE: held at 5; nicer values are refused, less nice ones allowed.
    assert_eq!(g.run(&["exec", "probe", "nice"]).line(), "5");
    let out = g.run(&["exec", "probe", "renice", "0"]);
    assert!(out.stdout.starts_with("ERR EACCES"), "{out:?}");
    assert!(g.run(&["exec", "probe", "renice", "10"]).stdout.starts_with("OK"));
    // ULIMIT: -n for both limits, -H -u for the hard one only.
    assert_eq!(
        g.run(&["exec", "sh", "-c", "ulimit -n; ulimit -H -n; ulimit -H -u"]).stdout,
        "64\n64\n500\n"
    );
    // S_CAPS adds to the default ceiling: raw sockets now work.
    assert!(g.run(&["exec", "probe", "raw-socket"]).stdout.starts_with("OK"));
    // lock: no new namespaces inside.
    assert!(g.run(&["exec", "probe", "unshare", "uts"]).stdout.starts_with("ERR EPERM"));
}

/// A fresh build's NAME.conf has the seed's default: ULIMIT="-H -u 1000"
/// with the nproc flag, so the running guest as a whole (root too, whom
/// RLIMIT_NPROC alone does not stop) has at most 1000 processes.
#[test]
fn a_new_guest_is_limited_to_1000_processes() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "nproc");
    let conf = std::fs::read_to_string(g.conf_path()).unwrap();
    assert!(conf.contains("\nULIMIT=\"-H -u 1000\"\n"), "{conf}");
    assert!(conf.contains("\nS_FLAGS=nproc\n"), "{conf}");
    g.run(&["start"]).ok();
    let dir = g.context_dir().expect("its context");
    let layout = vsbox::kernel::cgroup::Layout::detect().unwrap();
    let pids = if layout.v2_has("pids") {
        dir.clone()
    } else {
        layout.v1_dir("pids", &dir).unwrap()
    };
    assert_eq!(std::fs::read_to_string(pids.join("pids.max")).unwrap().trim(), "1000");
    assert_eq!(g.run(&["exec", "sh", "-c", "ulimit -H -u"]).line(), "1000");
    let out = g.run(&["exec", "probe", "fork-many", "1100"]);
    let forked: u32 = out.line().strip_prefix("OK forked=").and_then(|n| n.parse().ok()).unwrap_or(9999);
    assert!((900..1000).contains(&forked), "guest root forked {forked} of 1100: {out:?}");
}

/// `delete` removes the tree, NAME.conf, the hook and the runtime state,
/// never following the symlinks (absolute, climbing, to a directory the
/// walk would enter) or hard links planted in the tree: what they point
/// at outside stays as it was.
#[test]
fn delete_removes_the_guest_and_nothing_outside_it() {
    require_root!();
    use std::os::unix::fs::{symlink, PermissionsExt};
    let env = Env::new();
    let g = TestGuest::busybox(&env, "del");
    let hook = g.set_hook("#!/bin/sh\nexit 0\n");
    g.run(&["start"]).ok();
    g.run(&["stop"]).ok();
    let lock = env.dir.path().join("run").join(format!("{}.lock", g.name));
    assert!(lock.exists(), "start left its lock file");
    let outside = TempDir::new("del-outside");
    let o = outside.path();
    std::fs::create_dir_all(o.join("d/sub")).unwrap();
    std::fs::write(o.join("d/sub/x"), "keep").unwrap();
    std::fs::write(o.join("f"), "keep").unwrap();
    let root = g.root();
    let abs = o.to_str().unwrap();
    symlink(abs, root.join("etc/evil")).unwrap();
    symlink(format!("../../../../../../../../..{abs}/d"), root.join("climb")).unwrap();
    symlink(o.join("f"), root.join("tmp/file-link")).unwrap();
    std::fs::remove_dir_all(root.join("var/log")).unwrap();
    symlink(o.join("d"), root.join("var/log")).unwrap();
    std::fs::hard_link(o.join("f"), root.join("root/hard")).unwrap();
    std::fs::create_dir_all(root.join("locked/in")).unwrap();
    std::fs::set_permissions(root.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    nix::unistd::mkfifo(&root.join("tmp/fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // A tree deeper than any recursion would survive (guest root can make one).
    let mut dir = nix::fcntl::open(&root.join("tmp"), nix::fcntl::OFlag::O_DIRECTORY, nix::sys::stat::Mode::empty()).unwrap();
    for _ in 0..12_000 {
        nix::sys::stat::mkdirat(Some(dir), "d", nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();
        let next = nix::fcntl::openat(Some(dir), "d", nix::fcntl::OFlag::O_DIRECTORY, nix::sys::stat::Mode::empty()).unwrap();
        nix::unistd::close(dir).unwrap();
        dir = next;
    }
    nix::unistd::close(dir).unwrap();
    let out = g.run(&["delete", "--force"]);
    out.ok();
    assert!(out.stdout.contains(&format!("Server {} deleted", g.name)), "{out:?}");
    for gone in [root.clone(), g.conf_path(), hook, lock] {
        assert!(std::fs::symlink_metadata(&gone).is_err(), "{} is still there", gone.display());
    }
    assert_eq!(std::fs::read_to_string(o.join("d/sub/x")).unwrap(), "keep");
    assert_eq!(std::fs::read_to_string(o.join("f")).unwrap(), "keep");
    assert!(g.context_dir().is_none());
    let out = g.run(&["delete", "--force"]);
    assert_eq!(out.code, 2, "deleted already: {out:?}");
    assert!(out.stderr.contains("unknown server"), "{out:?}");
}

/// `delete` changes nothing while the guest runs, while anything is
/// mounted in its tree (a bind mount of the same file system too), without
/// a terminal to ask on and no --force, or when the answer is no.
#[test]
fn delete_is_refused_while_running_mounted_or_unconfirmed() {
    require_root!();
    use std::io::{Read, Write};
    let env = Env::new();
    let g = TestGuest::busybox(&env, "delno");
    let intact = |why: &str| {
        assert!(g.root().join("bin/busybox").exists(), "{why}: tree touched");
        assert!(g.conf_path().exists(), "{why}: configuration removed");
    };
    let out = env.run("vserver", &[&format!("nosuch-{}", std::process::id()), "delete", "--force"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("unknown server"), "{out:?}");
    let out = g.run(&["delete", "--yes"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("'--yes'"), "{out:?}");
    let out = g.run(&["delete"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--force") && out.stderr.lines().count() == 1, "{out:?}");
    intact("no terminal");
    g.run(&["start"]).ok();
    let out = g.run(&["delete", "--force"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("it is running"), "{out:?}");
    intact("running");
    assert_eq!(g.run(&["running"]).code, 0);
    g.run(&["stop"]).ok();
    // A file system mounted inside: refused, naming it; nothing deleted.
    let data = g.root().join("home/data");
    let mounted = Mounted::tmpfs(&data);
    std::fs::write(data.join("precious"), "keep").unwrap();
    let out = g.run(&["delete", "--force"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("home/data") && out.stderr.contains("nothing was deleted"),
        "{out:?}"
    );
    intact("tmpfs inside");
    assert_eq!(std::fs::read_to_string(data.join("precious")).unwrap(), "keep");
    drop(mounted);
    // A bind mount of a host directory on the same file system.
    let outside = TempDir::new("delno-outside");
    std::fs::write(outside.path().join("host-file"), "keep").unwrap();
    let bound = g.root().join("mnt");
    std::fs::create_dir_all(&bound).unwrap();
    let st = std::process::Command::new("mount")
        .arg("--bind")
        .arg(outside.path())
        .arg(&bound)
        .status()
        .unwrap();
    assert!(st.success());
    let unmount = Unmount(bound.clone());
    let out = g.run(&["delete", "--force"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("mnt is mounted"), "{out:?}");
    intact("bind mount inside");
    drop(unmount);
    assert_eq!(std::fs::read_to_string(outside.path().join("host-file")).unwrap(), "keep");
    // On a terminal it asks: no keeps everything, yes deletes.
    for (answer, code) in [("n", 1), ("y", 0)] {
        let (mut child, mut master) = spawn_on_pty(env.cmd("vserver").args([g.name.as_str(), "delete"]));
        master.write_all(format!("{answer}\n").as_bytes()).unwrap();
        let mut seen = Vec::new();
        let _ = master.read_to_end(&mut seen);
        let seen = String::from_utf8_lossy(&seen);
        assert_eq!(child.wait().unwrap().code(), Some(code), "{answer}: {seen}");
        assert!(seen.contains("[y/N]"), "{seen}");
        if code == 1 {
            assert!(seen.contains("nothing was deleted"), "{seen}");
            intact("answered no");
        }
    }
    assert!(!g.root().exists() && !g.conf_path().exists());
}

/// The remover itself, for a mount made after delete looked: it stops at
/// the mount (told by its mount id: a bind mount of the same file system
/// has the same st_dev) and removes nothing through it.
#[test]
fn the_tree_remover_does_not_cross_a_bind_mount() {
    require_root!();
    let dir = TempDir::new("remove");
    let (root, outside) = (dir.path().join("tree"), dir.path().join("outside"));
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::create_dir_all(root.join("z/m")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("host-file"), "keep").unwrap();
    let st = std::process::Command::new("mount")
        .arg("--bind")
        .arg(&outside)
        .arg(root.join("z/m"))
        .status()
        .unwrap();
    assert!(st.success());
    let _unmount = Unmount(root.join("z/m"));
    let e = vsbox::guest::walk::remove_tree(&root).unwrap_err();
    assert!(e.msg.contains("z/m") && e.msg.contains("mounted"), "{e}");
    assert_eq!(std::fs::read_to_string(outside.join("host-file")).unwrap(), "keep");
}

#[test]
fn a_private_guest_cannot_be_joined() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "private");
    g.conf("S_FLAGS=private\n");
    g.run(&["start"]).ok();
    let marker = g.root().join("joined");
    let out = g.run(&["exec", "touch", "/joined"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("private"), "{out:?}");
    assert!(!marker.exists());
    assert_eq!(g.run(&["running"]).code, 0, "still running");
    g.run(&["stop"]).ok();
}

#[test]
fn fakeinit_runs_the_guests_own_init() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "fakeinit");
    g.conf("S_FLAGS=fakeinit\n");
    g.service("mark", "echo up > /run/marker", "true");
    g.run(&["start"]).ok();
    // busybox init is PID 1 and ran its inittab's sysinit (rcS).
    assert!(eventually(5, || g.root().join("run/marker").exists()
        || g.run(&["exec", "probe", "exists", "/run/marker"]).stdout.starts_with("OK")));
    // Its name, not its /proc/1/exe: an exec'd command is a Landlock
    // domain of its own (abstract unix sockets), which may not trace or
    // read the links of the server's processes (vserver(8), Limits).
    let out = g.run(&["exec", "cat", "/proc/1/comm"]);
    assert_eq!(out.line(), "init", "{out:?}");
    g.run(&["stop"]).ok();
    assert_eq!(g.run(&["running"]).code, 1);
    assert!(g.context_dir().is_none());
}

/// A ustar header block for one entry.
fn tar_header(name: &str, kind: u8, link: &str, size: usize, mode: u32) -> Vec<u8> {
    let mut h = vec![0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let oct = |h: &mut Vec<u8>, at: usize, width: usize, v: u64| {
        let s = format!("{v:0w$o}\0", w = width - 1);
        h[at..at + width].copy_from_slice(s.as_bytes());
    };
    oct(&mut h, 100, 8, u64::from(mode));
    oct(&mut h, 108, 8, 0);
    oct(&mut h, 116, 8, 0);
    oct(&mut h, 124, 12, size as u64);
    oct(&mut h, 136, 12, 1_700_000_000);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn tar_of(entries: &[(&str, u8, &str, &[u8])]) -> Vec<u8> {
    let mut t = Vec::new();
    for (name, kind, link, data) in entries {
        t.extend(tar_header(name, *kind, link, data.len(), if *kind == b'5' { 0o755 } else { 0o644 }));
        t.extend_from_slice(data);
        t.resize(t.len().div_ceil(512) * 512, 0);
    }
    t.extend([0u8; 1024]);
    t
}

/// A zstd frame holding `data` in raw blocks (what any zstd decoder reads).
fn zstd_raw(data: &[u8]) -> Vec<u8> {
    let mut z = vec![0x28, 0xb5, 0x2f, 0xfd, 0xa0];
    z.extend((data.len() as u32).to_le_bytes());
    let chunks: Vec<&[u8]> = data.chunks(1 << 17).collect();
    for (i, c) in chunks.iter().enumerate() {
        let last = u32::from(i + 1 == chunks.len());
        let hdr = ((c.len() as u32) << 3) | last;
        z.extend(&hdr.to_le_bytes()[..3]);
        z.extend_from_slice(c);
    }
    z
}

#[test]
fn template_guests_from_tar_gz_and_tar_zst() {
    require_root!();
    let env = Env::new();
    let src = TestGuest::busybox(&env, "tmplsrc");
    src.service("mark", "echo from-template", "true");
    let tar = env.dir.path().join("t.tar");
    let st = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(src.root())
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let st = std::process::Command::new("gzip").arg("-k").arg(&tar).status().unwrap();
    assert!(st.success());
    let zst = env.dir.path().join("t.tar.zst");
    std::fs::write(&zst, zstd_raw(&std::fs::read(&tar).unwrap())).unwrap();
    for file in [env.dir.path().join("t.tar.gz"), zst, tar.clone()] {
        let name = format!("tmpl-{}-{}", std::process::id(), file.extension().unwrap().to_str().unwrap());
        let out = env.run("vserver", &[&name, "build", "-m", "template", "--file", file.to_str().unwrap()]);
        assert_eq!(out.code, 0, "{file:?}: {out:?}");
        assert!(out.stderr.contains("unpacked"), "{out:?}");
        let out = env.run("vserver", &[&name, "start"]);
        assert!(out.stdout.contains("from-template"), "{file:?}: {out:?}");
        let out = env.run("vserver", &[&name, "exec", "probe", "pid"]);
        assert_eq!(out.code, 0, "{out:?}");
        env.run("vserver", &[&name, "stop"]).ok();
    }
}

/// Every build method names the guest: /etc/hostname says its host name
/// and /etc/hosts resolves it and localhost, keeping what a template's own
/// /etc/hosts had, and never writing through a symlink it planted.
#[test]
fn every_build_method_names_the_guest_in_its_hosts_and_hostname() {
    require_root!();
    let env = Env::new();
    let pid = std::process::id();
    let read = |name: &str, rel: &str| std::fs::read_to_string(env.dir.path().join("vservers").join(name).join(rel)).unwrap();
    let names_of = |hosts: &str, addr: &str| -> Vec<String> {
        hosts
            .lines()
            .filter_map(|l| {
                let mut w = l.split('#').next().unwrap().split_whitespace();
                (w.next() == Some(addr)).then(|| w.map(String::from).collect::<Vec<_>>())
            })
            .flatten()
            .collect()
    };
    // busybox, built for a configuration with a full host name and an
    // address: the name resolves, inside the running guest, to it.
    let ip = loopback();
    let g = TestGuest {
        env: &env,
        name: format!("names-{pid}"),
    };
    g.conf(&format!("S_HOSTNAME=web.example.org\nIPROOT={ip}\n"));
    g.run(&["build", "-m", "busybox"]).ok();
    std::fs::copy(PROBE, g.root().join("bin/probe")).unwrap();
    assert_eq!(read(&g.name, "etc/hostname"), "web.example.org\n");
    g.run(&["start"]).ok();
    assert_eq!(g.run(&["exec", "hostname", "-f"]).line(), "web.example.org");
    assert_eq!(g.run(&["exec", "hostname", "-i"]).line(), ip);
    let out = g.run(&["exec", "probe", "resolve", "localhost"]);
    assert!(out.line().starts_with("OK ") && out.line().contains("127.0.0.1"), "{out:?}");
    assert_eq!(g.run(&["exec", "probe", "resolve", "web"]).line(), format!("OK {ip}"));
    // skeleton: no address, Debian's 127.0.1.1.
    let sk = format!("names-sk-{pid}");
    env.run("vserver", &[&sk, "build", "-m", "skeleton"]).ok();
    assert_eq!(read(&sk, "etc/hostname"), format!("{sk}\n"));
    let hosts = read(&sk, "etc/hosts");
    assert_eq!(names_of(&hosts, "127.0.0.1"), ["localhost"], "{hosts}");
    assert_eq!(names_of(&hosts, "::1"), ["localhost", "ip6-localhost", "ip6-loopback"], "{hosts}");
    assert_eq!(names_of(&hosts, "127.0.1.1"), [sk.as_str()], "{hosts}");
    // template: the archive's entries stay, what is missing is added; its
    // /etc/hostname names the template's machine and is replaced.
    let own = "10.1.2.3\tdb.internal db\n";
    let tar = tar_of(&[
        ("etc/", b'5', "", b""),
        ("etc/hosts", b'0', "", own.as_bytes()),
        ("etc/hostname", b'0', "", b"template-box\n"),
    ]);
    let file = env.dir.path().join("names.tar");
    std::fs::write(&file, &tar).unwrap();
    let t = format!("names-t-{pid}");
    env.run("vserver", &[&t, "build", "-m", "template", "--file", file.to_str().unwrap()])
        .ok();
    assert_eq!(read(&t, "etc/hostname"), format!("{t}\n"));
    let hosts = read(&t, "etc/hosts");
    assert!(hosts.contains(own), "{hosts}");
    assert_eq!(names_of(&hosts, "127.0.0.1"), ["localhost"], "{hosts}");
    assert_eq!(names_of(&hosts, "127.0.1.1"), [t.as_str()], "{hosts}");
    // A template whose /etc/hosts and /etc/hostname are symlinks out of
    // the tree: the files they point at stay as they were.
    let outside = TempDir::new("names-outside");
    let target = outside.path().join("hosts");
    std::fs::write(&target, "untouched\n").unwrap();
    let abs = target.to_str().unwrap().to_owned();
    let up = format!("../../../../../../../../..{abs}");
    let tar = tar_of(&[
        ("etc/", b'5', "", b""),
        ("etc/hosts", b'2', &abs, b""),
        ("etc/hostname", b'2', &up, b""),
    ]);
    std::fs::write(&file, &tar).unwrap();
    let h = format!("names-h-{pid}");
    env.run("vserver", &[&h, "build", "-m", "template", "--file", file.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched\n");
    let root = env.dir.path().join("vservers").join(&h);
    for f in ["etc/hosts", "etc/hostname"] {
        assert!(
            std::fs::symlink_metadata(root.join(f)).unwrap().is_file(),
            "{f} is a file of the tree now"
        );
    }
    assert_eq!(names_of(&read(&h, "etc/hosts"), "127.0.1.1"), [h.as_str()]);
}

#[test]
fn a_hostile_template_cannot_write_outside_the_tree() {
    require_root!();
    let env = Env::new();
    let outside = TempDir::new("outside");
    let o = outside.path().to_str().unwrap().to_owned();
    let up = format!("../../../../../../../../..{o}/up");
    // A symlink to a host directory, then a file "through" it; an absolute
    // symlink chain; a hard link to a host file.
    let tar = tar_of(&[
        ("etc/", b'5', "", b""),
        ("etc/evil", b'2', &o, b""),
        ("etc/evil/owned", b'0', "", b"pwned"),
        ("abs", b'2', "/", b""),
        (&format!("abs{o}/owned2"), b'0', "", b"pwned"),
        ("hl", b'1', "/etc/passwd", b""),
    ]);
    let file = env.dir.path().join("hostile.tar");
    std::fs::write(&file, &tar).unwrap();
    let name = format!("hostile-{}", std::process::id());
    let out = env.run("vserver", &[&name, "build", "-m", "template", "--file", file.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        0,
        "written outside the tree: {out:?}"
    );
    let root = env.dir.path().join("vservers").join(&name);
    if out.code == 0 {
        // Everything landed inside the tree.
        assert!(root.join(format!("{}/owned", o.trim_start_matches('/'))).exists(), "{out:?}");
    }
    // `..` names are refused with a clear error.
    let file2 = env.dir.path().join("dotdot.tar");
    std::fs::write(&file2, tar_of(&[(&up, b'0', "", b"x")])).unwrap();
    let out = env.run(
        "vserver",
        &[&format!("{name}2"), "build", "-m", "template", "--file", file2.to_str().unwrap()],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("'..'"), "{out:?}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    // Not an archive at all.
    let junk = env.dir.path().join("junk.tar");
    std::fs::write(&junk, vec![7u8; 2048]).unwrap();
    let out = env.run(
        "vserver",
        &[&format!("{name}3"), "build", "-m", "template", "--file", junk.to_str().unwrap()],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("checksum"), "{out:?}");
    assert!(
        !env.dir.path().join("vservers").join(format!("{name}3")).exists(),
        "a failed build left its tree"
    );
}

#[test]
fn debootstrap_builds_a_debian_guest() {
    require_root!();
    let env = Env::new();
    let name = format!("deb-{}", std::process::id());
    let out = env.run("vserver", &[&name, "build", "-m", "debootstrap"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--suite"), "{out:?}");
    let installed = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("debootstrap").is_file()));
    if !installed {
        let out = env.run("vserver", &[&name, "build", "-m", "debootstrap", "--suite", "bookworm"]);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains("debootstrap is not installed"), "{out:?}");
        eprintln!("NOTE {}: debootstrap is not installed; only its absence was tested", module_path!());
        return;
    }
    let out = env.run("vserver", &[&name, "build", "-m", "debootstrap", "--suite", "bookworm"]);
    let unreachable = [
        "Failed getting release file",
        "Couldn't download",
        "Failure trying to run",
        "Temporary failure resolving",
    ];
    if out.code != 0 && unreachable.iter().any(|m| out.stdout.contains(m) || out.stderr.contains(m)) {
        // The Debian archive was out of reach: that is not vsbox failing.
        eprintln!("NOTE {}: debootstrap could not download: {}", module_path!(), out.stderr.trim());
        return;
    }
    assert_eq!(out.code, 0, "{out:?}");
    let run = |args: &[&str]| {
        let mut full = vec![name.as_str()];
        full.extend_from_slice(args);
        env.run("vserver", &full)
    };
    // Stopped even when an assertion fails.
    struct Stop<'a>(&'a dyn Fn(&[&str]) -> Out);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["stop"]);
        }
    }
    let _stop = Stop(&run);
    run(&["start"]).ok();
    let out = run(&["exec", "cat", "/etc/debian_version"]);
    assert!(out.line().starts_with("12"), "{out:?}");
    let out = run(&["suexec", "nobody", "id", "-u"]);
    assert_eq!(out.line(), "65534", "{out:?}");
    // debootstrap leaves the host's /etc/hostname and no /etc/hosts: the
    // build names the guest, so it resolves itself and localhost.
    let out = run(&["exec", "cat", "/etc/hostname"]);
    assert_eq!(out.line(), name, "{out:?}");
    let out = run(&["exec", "hostname", "-f"]);
    assert_eq!(out.line(), name, "{out:?}");
    let out = run(&["exec", "getent", "hosts", "localhost"]);
    assert!(out.stdout.starts_with("127.0.0.1 ") || out.stdout.starts_with("::1 "), "{out:?}");
    let out = run(&["exec", "getent", "hosts", &name]);
    assert!(out.line().starts_with("127.0.1.1 "), "{out:?}");
    run(&["stop"]).ok();
    // A real daemon whose Debian configuration binds 127.0.0.1: memcached
    // (-l 127.0.0.1 in /etc/memcached.conf). Installed without starting it
    // (policy-rc.d), then started with IPROOT by its own init script
    // (minbase has no rc to start it at boot).
    let root = env.dir.path().join("vservers").join(&name);
    let policy = root.join("usr/sbin/policy-rc.d");
    std::fs::write(&policy, "#!/bin/sh\nexit 101\n").unwrap();
    std::fs::set_permissions(&policy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = run(&["exec", "apt-get", "install", "-y", "-q", "--no-install-recommends", "memcached"]);
    std::fs::remove_file(&policy).unwrap();
    if out.code != 0 && unreachable.iter().any(|m| out.stdout.contains(m) || out.stderr.contains(m)) {
        eprintln!("NOTE {}: apt-get could not download memcached", module_path!());
        return;
    }
    assert_eq!(out.code, 0, "{out:?}");
    std::fs::copy(PROBE, root.join("usr/local/bin/probe")).unwrap();
    let conf = env.dir.path().join("etc").join(format!("{name}.conf"));
    std::fs::write(&conf, format!("IPROOT={}\n", loopback())).unwrap();
    run(&["start"]).ok();
    run(&["service", "memcached", "start"]).ok();
    // It answers once it has daemonized and bound.
    let ask = || run(&["exec", "probe", "tcp-say", "127.0.0.1", "11211", "version"]);
    assert!(eventually(10, || ask().stdout.starts_with("OK VERSION ")), "{:?}", ask());
    let host = host_probe(&["tcp-say", "127.0.0.1", "11211", "version"]);
    assert!(!host.stdout.starts_with("OK"), "the guest's memcached answers the host: {host:?}");
}

#[test]
fn services_do_not_inherit_the_inits_blocked_signals() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "sigmask");
    g.service("daemon", "(probe sleep 600 &)", "true");
    g.run(&["start"]).ok();
    let out = g.run(&[
        "exec",
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do grep -q '^Name:.*probe' $p/status 2>/dev/null && grep SigBlk $p/status; done",
    ]);
    assert!(out.stdout.contains("SigBlk:\t0000000000000000"), "{out:?}");
}

#[test]
fn vservers_starts_and_stops_exactly_the_onboot_guests() {
    require_root!();
    let env = Env::new();
    let a = TestGuest::busybox(&env, "boot-a");
    let b = TestGuest::busybox(&env, "boot-b");
    let c = TestGuest::busybox(&env, "boot-c");
    let d = TestGuest::busybox(&env, "boot-d");
    a.conf("ONBOOT=yes\n");
    b.conf("ONBOOT=yes\nS_HOSTNAME=bee\n");
    c.conf("ONBOOT=no\n");
    d.conf("ONBOOT=yes\n");
    // Two at a time, and the first waits for the third, which starts only
    // once the second has ended (not the first, the oldest). What each
    // wrote, to either stream, comes together and in the order written,
    // in the servers' order.
    let mark = env.dir.path().join("third-started");
    let hooks = [
        (
            &a,
            format!(
                "i=0; while [ ! -e {m} ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done\n\
                 [ -e {m} ] && echo saw-it || echo no-mark\necho err1 >&2\necho out2\n",
                m = mark.display()
            ),
        ),
        (&d, format!("touch {}\n", mark.display())),
    ];
    let hooks: Vec<_> = hooks
        .iter()
        .map(|(g, body)| g.set_hook(&format!("#!/bin/sh\n[ \"$1\" = pre-start ] || exit 0\n{body}")))
        .collect();
    let out = env.run("vservers", &["start", "--jobs", "2"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("3 started, 0 failed"), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let at = |l: String| lines.iter().position(|x| *x == l);
    let (ha, hb) = (at(format!("{}: ok", a.name)), at(format!("{}: ok", b.name)));
    assert!(ha.is_some() && hb.is_some() && ha < hb, "{out:?}");
    assert_eq!(lines[ha.unwrap() + 1..hb.unwrap()], ["  saw-it", "  err1", "  out2"], "{out:?}");
    for hook in &hooks {
        std::fs::remove_file(hook).unwrap();
    }
    assert_eq!(
        (
            a.run(&["running"]).code,
            b.run(&["running"]).code,
            c.run(&["running"]).code,
            d.run(&["running"]).code
        ),
        (0, 0, 1, 0)
    );
    // Again: nothing more to start.
    assert!(env.run("vservers", &["start"]).stdout.contains("0 started, 0 failed"));
    let status = env.run("vservers", &["status"]);
    for (g, state) in [(&a, "running"), (&b, "running"), (&c, "stopped")] {
        assert!(
            status.stdout.lines().any(|l| l.starts_with(&g.name) && l.contains(state)),
            "{}: {status:?}",
            g.name
        );
    }
    let dirs: Vec<_> = [&a, &b, &d].iter().map(|g| g.context_dir().unwrap()).collect();
    let out = env.run("vservers", &["stop"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("3 stopped, 0 failed"), "{out:?}");
    assert!(dirs.iter().all(|d| !d.exists()), "cgroups left behind");
    assert_eq!(
        (a.run(&["running"]).code, b.run(&["running"]).code, d.run(&["running"]).code),
        (1, 1, 1)
    );
    // A broken configuration is a failure of its own; the others still start.
    c.conf("ONBOOT=yes\nBROKEN\n");
    let out = env.run("vservers", &["start"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains(&format!("{}: FAILED", c.name)) && out.stdout.contains(":2: expected KEY=value"),
        "{out:?}"
    );
    assert!(out.stdout.contains("3 started, 1 failed"), "{out:?}");
    assert_eq!(env.run("vservers", &["reboot"]).code, 2);
}

/// A hook that starts, stops or restarts its own server is refused at
/// once (its caller holds the server's lock), not left waiting for ever.
#[test]
fn a_hook_cannot_start_or_stop_its_own_server() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "hookself");
    let log = env.dir.path().join("hookself.log");
    let hook = g.set_hook(&format!(
        "#!/bin/sh\n[ \"$1\" = post-start ] || exit 0\nfor a in stop start restart; do timeout 20 {bin}/vserver \"$2\" $a >>{log} 2>&1; echo \"$a $?\" >>{log}; done\n",
        bin = env.dir.path().join("bin").display(),
        log = log.display()
    ));
    let out = g.run(&["start"]);
    assert_eq!(out.code, 0, "{out:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("stop 1\n") && text.contains("start 1\n") && text.contains("restart 1\n"),
        "{text}"
    );
    assert!(text.contains("a hook of it cannot start, stop"), "{text}");
    std::fs::remove_file(&hook).unwrap();
    assert_eq!(g.run(&["running"]).code, 0);
    assert_eq!(g.run(&["stop"]).code, 0);
}

/// A command a pre-start hook leaves running (it skips the lock its
/// caller, the start, holds) either joins the context the start makes or
/// makes the start refuse; never two contexts of one server with
/// processes, and a stop leaves none.
#[test]
fn a_command_a_pre_start_hook_leaves_running_makes_no_second_context() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "hookbg");
    let hook = g.set_hook(&format!(
        "#!/bin/sh\n[ \"$1\" = pre-start ] && {}/vserver \"$2\" exec sh -c 'touch /tmp/hook-ran; exec sleep 30' >/dev/null 2>&1 &\nexit 0\n",
        env.dir.path().join("bin").display()
    ));
    let layout = vsbox::kernel::cgroup::Layout::detect().unwrap();
    let tag = g.conf_path().display().to_string();
    let running = || -> Vec<std::path::PathBuf> {
        vsbox::kernel::cgroup::subtree(&layout.base())
            .into_iter()
            .filter(|d| vsbox::sys::getxattr(d, "trusted.vsbox.guest").ok().flatten().as_deref() == Some(tag.as_bytes()))
            .filter(|d| vsbox::kernel::cgroup::populated(d))
            .collect()
    };
    // Where the command says it runs (the host may not read a guest's
    // processes through /proc: the patched kernel hides them).
    let ran = g.root().join("tmp/hook-ran");
    for round in 0..5 {
        let _ = std::fs::remove_file(&ran);
        let out = g.run(&["start"]);
        assert!(
            out.code == 0 || out.stderr.contains("it is running already"),
            "round {round}: {out:?}"
        );
        // The hook's command has started by now, or waits for the start.
        assert!(eventually(20, || ran.exists()), "round {round}: the hook's command does not run");
        assert_eq!(running().len(), 1, "round {round}: {:?}", running());
        assert_eq!(g.run(&["stop"]).code, 0, "round {round}");
        assert!(eventually(5, || running().is_empty()), "round {round}: left {:?}", running());
    }
    std::fs::remove_file(&hook).unwrap();
}

/// Fifty servers started and stopped eight at a time leave nothing: no
/// context, supervisor or socket (issue 12's concurrency check; its
/// timings are the benchmarks').
#[test]
fn fifty_servers_started_and_stopped_concurrently_leave_nothing() {
    require_root!();
    let env = Env::new();
    let guests: Vec<TestGuest> = (0..50).map(|i| TestGuest::busybox(&env, &format!("fifty{i}"))).collect();
    for g in &guests {
        g.conf("ONBOOT=yes\n");
    }
    let out = env.run("vservers", &["start", "-j", "8"]);
    assert!(out.stdout.contains("50 started, 0 failed"), "{out:?}");
    let dirs: Vec<_> = guests.iter().map(|g| g.context_dir().expect("its context")).collect();
    // One watcher serves them all: no host process per server.
    let run = env.dir.path().join("run");
    let watcher = watcher_in(&run).expect("vsbox-watch");
    assert!(guests.iter().all(|g| watchers(g) == [watcher]));
    let out = env.run("vservers", &["stop", "-j", "8"]);
    assert!(out.stdout.contains("50 stopped, 0 failed"), "{out:?}");
    let left = || -> Vec<String> {
        dirs.iter()
            .filter(|d| d.exists())
            .map(|d| {
                let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                format!(
                    "{} (processes: {})",
                    d.display(),
                    procs.split_whitespace().collect::<Vec<_>>().join(" ")
                )
            })
            .collect()
    };
    assert!(eventually(5, || left().is_empty()), "contexts left behind: {:?}", left());
    assert!(
        eventually(5, || guests.iter().all(|g| watchers(g).is_empty())),
        "supervisors left behind"
    );
    assert!(
        eventually(5, || watcher_in(&run).is_none()),
        "the watcher stays when no server runs"
    );
    // Each server's `vsbox-cleanup` removes its socket, a moment after its
    // context emptied (and maybe after the watcher has gone).
    let sockets = || -> Vec<_> {
        std::fs::read_dir(&run)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name())
                    .filter(|n| n.to_string_lossy().ends_with(".sock"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(eventually(5, || sockets().is_empty()), "sockets left behind: {:?}", sockets());
}

/// A guest whose start-up counts its starts in /var/starts, started with
/// configuration `conf`.
fn count_starts(g: &TestGuest) {
    g.service(
        "count",
        "echo $(( $(cat /var/starts 2>/dev/null || echo 0) + 1 )) > /var/starts; (probe sleep 600 &)",
        "true",
    );
}

fn counting_guest_with<'a>(env: &'a Env, tag: &str, conf: &str) -> TestGuest<'a> {
    let g = TestGuest::busybox(env, tag);
    count_starts(&g);
    g.conf(conf);
    g.run(&["start"]).ok();
    g
}

fn counting_guest<'a>(env: &'a Env, tag: &str) -> TestGuest<'a> {
    counting_guest_with(env, tag, "")
}

fn starts(g: &TestGuest) -> String {
    std::fs::read_to_string(g.root().join("var/starts"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// One watcher serves every server of a run directory, and a killed one
/// loses nothing: the servers run on, and the next command that needs a
/// watcher starts one, which adopts them — in the same unix namespace,
/// with their reboots and halts handled — and cleans up after one that
/// halted while nobody watched.
#[test]
fn a_killed_watcher_is_replaced_and_its_servers_adopted() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let name = format!("vsbox-adopt-{}", std::process::id());
    let a = counting_guest_with(&env, "adopt-a", &format!("IPROOT={ip}\nIPROOTDEV=lo\nIPROOTMASK=32\n"));
    let b = counting_guest(&env, "adopt-b");
    a.run(&[
        "exec",
        "sh",
        "-c",
        &format!("(probe abstract-serve {name} before > /dev/null 2>&1 &)"),
    ])
    .ok();
    assert!(eventually(5, || a.run(&["exec", "probe", "abstract-connect", &name]).line()
        == "OK answer=before"));
    let run = env.dir.path().join("run");
    let first = watcher_in(&run).expect("vsbox-watch");
    assert_eq!((watchers(&a), watchers(&b)), (vec![first], vec![first]), "one watcher for both");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(eventually(5, || watcher_in(&run).is_none()));
    let st = a.run(&["status"]);
    assert!(st.stdout.contains("unix sockets: NOT SUPERVISED"), "{st:?}");
    // b halts while nobody watches: its init dies.
    let b_dir = b.context_dir().expect("b's context");
    let (b_init, _) = init_of(&b).expect("b's init");
    // (vkill: the patched kernel's host cannot signal it directly.)
    env.run("vkill", &["-s", "KILL", &b_init.to_string()]).ok();
    assert!(eventually(5, || b.run(&["running"]).code == 1));
    assert!(b_dir.exists(), "nobody cleaned up yet");
    // Entering a brings a watcher back, which adopts a and cleans up b.
    a.run(&["exec", "true"]).ok();
    let second = watcher_in(&run).expect("a new vsbox-watch");
    assert_ne!(second, first);
    assert_eq!(watchers(&a), [second]);
    let st = a.run(&["status"]);
    assert!(
        st.stdout.contains("unix sockets: its own abstract names") && st.stdout.contains("make none"),
        "{st:?}"
    );
    assert!(eventually(10, || !b_dir.exists()), "b's context removed");
    // The same unix namespace: what enters now reaches what was bound
    // before, and the host still does not. (The patched kernel keeps the
    // host from taking the init's socket that names it: a new one there.)
    let reached = a.run(&["exec", "probe", "abstract-connect", &name]);
    match patched() {
        false => assert_eq!(reached.line(), "OK answer=before"),
        true => assert!(reached.stdout.starts_with("ERR ECONNREFUSED"), "{reached:?}"),
    }
    assert!(host_probe(&["abstract-connect", &name]).stdout.starts_with("ERR ECONNREFUSED"));
    // Its reboot and halt are handled as before.
    a.run(&["exec", "/sbin/vreboot"]).ok_or_killed();
    assert!(eventually(10, || starts(&a) == "2"), "restarted");
    assert!(eventually(5, || a.run(&["running"]).code == 0));
    a.run(&["exec", "/sbin/vhalt"]).ok_or_killed();
    assert!(eventually(10, || a.context_dir().is_none()), "a's context removed");
    assert!(eventually(5, || !addresses_on("lo").contains(&ip)), "alias removed");
    // Nothing left: no watcher or socket.
    assert!(
        eventually(5, || watcher_in(&run).is_none()),
        "the watcher ended with the last server"
    );
    let left: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sock"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A server stopped and at once started again is served: the clean-up
/// after its last run never takes the new run's control socket (a file
/// system gives a freed inode's number to the next file).
#[test]
fn a_server_started_again_at_once_keeps_its_supervisor() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "again");
    for round in 0..10 {
        g.run(&["start"]).ok();
        let out = g.run(&["exec", "true"]);
        assert_eq!(out.code, 0, "round {round}: {out:?}");
        g.run(&["stop"]).ok();
    }
}

#[test]
fn vreboot_and_vhalt_without_rebootmgr() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let g = counting_guest_with(&env, "vreboot", &format!("IPROOT={ip}\nIPROOTDEV=lo\nIPROOTMASK=32\n"));
    let dir = g.context_dir().unwrap();
    assert!(addresses_on("lo").contains(&ip), "alias added");
    let host = Bg(std::process::Command::new(PROBE).args(["sleep", "60"]).spawn().unwrap());
    for tool in ["sbin/vreboot", "sbin/vhalt"] {
        assert!(std::fs::symlink_metadata(g.root().join(tool)).is_ok(), "build installs {tool}");
    }
    assert!(g.root().join("usr/lib/vsbox/vsbox").is_file());
    assert_eq!(starts(&g), "1");
    let first_init = init_of(&g).expect("the guest's init");
    g.run(&["exec", "sh", "-c", "echo x > /dev/shm/before-reboot"]).ok();
    g.run(&["exec", "/sbin/vreboot"]).ok_or_killed();
    // Commands entering it meanwhile wait for it to be up again: none
    // takes the stopped server over, which would cancel the restart.
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(2) {
        let out = g.run(&["exec", "true"]);
        assert!(out.code == 0 || out.code == 137, "an exec during the restart: {out:?}");
    }
    assert!(eventually(10, || starts(&g) == "2"), "the services started again");
    assert!(eventually(5, || g.run(&["running"]).code == 0));
    assert_eq!(g.context_dir(), Some(dir.clone()), "same context");
    assert!(addresses_on("lo").contains(&ip), "same address");
    // A real reboot: a new init in fresh namespaces, nothing carried over.
    let init = init_of(&g).expect("a new init");
    assert_ne!(init, first_init, "the init was started again");
    assert!(start_time(first_init.0).as_ref() != Some(&first_init.1), "the old init is gone");
    let out = g.run(&["exec", "probe", "exists", "/dev/shm/before-reboot"]);
    assert!(!out.stdout.starts_with("OK"), "fresh /dev/shm after reboot: {out:?}");
    assert!(
        std::path::Path::new(&format!("/proc/{}", host.0.id())).exists(),
        "host process untouched"
    );
    // reboot(2) without CAP_SYS_BOOT fails and changes nothing.
    let out = g.run(&["exec", "reboot", "-f"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(g.run(&["running"]).code, 0);
    assert_eq!(starts(&g), "2");
    g.run(&["exec", "/sbin/vhalt"]).ok_or_killed();
    assert!(eventually(10, || g.run(&["running"]).code == 1), "vhalt stopped it");
    // Nobody ran `stop`: what start set up is removed all the same.
    assert!(eventually(10, || g.context_dir().is_none()), "context removed");
    assert!(eventually(5, || !addresses_on("lo").contains(&ip)), "alias removed");
    assert!(!dir.exists());
    assert!(eventually(5, || watchers(&g).is_empty()), "the watcher is gone");
    // On the host there is no server to restart: refused, host untouched.
    let out = env.run("vreboot", &["--socket", "/nonexistent/reboot"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not inside a vsbox server"), "{out:?}");
}

#[test]
fn rebootmgr_serves_requests_and_survives_garbage() {
    require_root!();
    let env = Env::new();
    let g = counting_guest(&env, "rbm");
    let other = counting_guest(&env, "rbm-other");
    let mut mgr = Bg(env
        .cmd("rebootmgr")
        .arg(&g.name)
        .stderr(std::fs::File::create(env.dir.path().join("rebootmgr.log")).unwrap())
        .spawn()
        .unwrap());
    assert!(
        eventually(5, || g.run(&["exec", "probe", "exists", "/dev/reboot"]).stdout.starts_with("OK")),
        "socket created"
    );
    assert!(
        !other.run(&["exec", "probe", "exists", "/dev/reboot"]).stdout.starts_with("OK"),
        "only the named server"
    );
    // Garbage and floods change nothing.
    for junk in ["garbage\n", "reboot", "halt\nhalt\n", "REBOOT\n"] {
        g.run(&["exec", "probe", "unix-send", "/dev/reboot", junk]);
    }
    for _ in 0..30 {
        let _ = g
            .env
            .cmd("vserver")
            .args([g.name.as_str(), "exec", "probe", "unix-send", "/dev/reboot", "x"])
            .stdout(std::process::Stdio::null())
            .spawn();
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(mgr.0.try_wait().unwrap().is_none(), "rebootmgr is still running");
    assert_eq!((starts(&g), g.run(&["running"]).code), ("1".to_owned(), 0));
    // reboot through the socket.
    let dir = g.context_dir().unwrap();
    g.run(&["exec", "/sbin/vreboot"]).ok_or_killed();
    assert!(eventually(10, || starts(&g) == "2"), "restarted through rebootmgr");
    assert_eq!(g.context_dir(), Some(dir), "same context");
    // halt through the socket: stopped and cleaned up by rebootmgr's `vserver stop`.
    assert!(eventually(5, || g
        .run(&["exec", "probe", "exists", "/dev/reboot"])
        .stdout
        .starts_with("OK")));
    g.run(&["exec", "/sbin/vhalt"]).ok_or_killed();
    assert!(eventually(15, || g.context_dir().is_none()), "stopped and cleaned up");
    assert_eq!(other.run(&["running"]).code, 0, "the other server is untouched");
    assert_eq!(starts(&other), "1");
    // rebootmgr did it (vreboot falls back to signalling its init).
    let log = std::fs::read_to_string(env.dir.path().join("rebootmgr.log")).unwrap();
    for line in [
        format!("rebootmgr: reboot vserver {}", g.name),
        format!("rebootmgr: stop vserver {}", g.name),
    ] {
        assert!(log.lines().any(|l| l == line), "{line}: {log}");
    }
    assert!(!log.contains("cannot"), "{log}");
}

#[test]
fn newvserver_asks_checks_and_creates_a_server_that_starts() {
    require_root!();
    use std::io::{Read, Write};
    let env = Env::new();
    let name = format!("asked-{}", std::process::id());
    let ip = loopback();
    let (mut child, mut master) = spawn_on_pty(&mut env.cmd("newvserver"));
    // name, a bad address then a good one, no alias device, default host
    // name, busybox, a bad yes/no then yes.
    for answer in [name.as_str(), "300.1.1.1", &ip, "", "", "busybox", "perhaps", "yes"] {
        std::thread::sleep(std::time::Duration::from_millis(150));
        master.write_all(format!("{answer}\n").as_bytes()).unwrap();
    }
    assert!(
        eventually(20, || child.try_wait().is_ok_and(|s| s.is_some())),
        "newvserver finished"
    );
    let mut seen = Vec::new();
    let _ = master.read_to_end(&mut seen);
    let seen = String::from_utf8_lossy(&seen);
    assert_eq!(child.wait().unwrap().code(), Some(0), "{seen}");
    assert!(
        seen.contains("Name of the new server") && seen.contains(&format!("Host name [{name}]")),
        "{seen}"
    );
    assert!(
        seen.contains("bad address '300.1.1.1'") && seen.contains("yes or no"),
        "bad answers are asked again: {seen}"
    );
    let conf = std::fs::read_to_string(env.dir.path().join("etc").join(format!("{name}.conf"))).unwrap();
    assert!(
        conf.contains(&format!("\nIPROOT=\"{ip}\"\n"))
            && conf.contains("\nONBOOT=yes\n")
            && conf.contains(&format!("\nS_HOSTNAME={name}\n")),
        "{conf}"
    );
    // Built after the configuration was written: named on its address.
    let hosts = std::fs::read_to_string(env.dir.path().join("vservers").join(&name).join("etc/hosts")).unwrap();
    assert!(hosts.contains(&format!("\n{ip}\t{name}\n")), "{hosts}");
    env.run("vserver", &[&name, "start"]).ok();
    let out = env.run("vserver", &[&name, "exec", "hostname"]);
    assert_eq!(out.line(), name);
    env.run("vserver", &[&name, "stop"]).ok();
    // Driven by options; and an existing name is refused.
    let out = env.run("newvserver", &["--name", &format!("{name}-2"), "--method", "skeleton", "--yes"]);
    assert_eq!(out.code, 0, "{out:?}");
    let out = env.run("newvserver", &["--name", &name, "--yes"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("exists already"), "{out:?}");
}

#[test]
fn with_cap_sys_boot_the_guests_own_reboot_and_halt_act_on_the_guest() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "sysboot");
    count_starts(&g);
    // A service of the guest that reboots when asked through a file.
    g.service(
        "rebooter",
        "(while :; do for w in userns reboot halt; do [ -e /tmp/do-$w ] && rm /tmp/do-$w && case $w in userns) unshare -r reboot -f; echo $? > /tmp/userns-rc ;; reboot) reboot -f ;; halt) halt -f ;; esac; done; sleep 0.05; done) &",
        "true",
    );
    g.conf("S_CAPS=CAP_SYS_BOOT\n");
    g.run(&["start"]).ok();
    let other = counting_guest(&env, "sysboot-other");
    let dir = g.context_dir().unwrap();
    let ask = |what: &str| std::fs::write(g.root().join(format!("tmp/do-{what}")), "").unwrap();
    // A user namespace made inside the guest gives no right to reboot it,
    // from a service or from a joined process.
    let out = g.run(&["exec", "unshare", "-r", "reboot", "-f"]);
    assert_ne!(out.code, 0, "{out:?}");
    ask("userns");
    assert!(eventually(5, || g.root().join("tmp/userns-rc").exists()));
    assert_ne!(std::fs::read_to_string(g.root().join("tmp/userns-rc")).unwrap().trim(), "0");
    assert_eq!(starts(&g), "1");
    // The guest's own reboot(2), with CAP_SYS_BOOT: restarts it in place —
    // from one of its services…
    ask("reboot");
    assert!(eventually(10, || starts(&g) == "2"), "reboot -f restarted the guest");
    // …and from a process that joined it (vserver exec).
    g.run(&["exec", "reboot", "-f"]);
    assert!(
        eventually(10, || starts(&g) == "3"),
        "reboot -f through vserver exec restarted the guest"
    );
    // …and from root's shell of `vserver enter`.
    let _ = enter_with(&g, "reboot -f\n");
    assert!(
        eventually(10, || starts(&g) == "4"),
        "reboot -f in vserver enter restarted the guest"
    );
    assert_eq!(g.context_dir(), Some(dir), "same context");
    assert_eq!(g.run(&["running"]).code, 0);
    // halt -f stops it; the other guest and the host go on.
    ask("halt");
    assert!(eventually(10, || g.run(&["running"]).code == 1), "halt -f stopped the guest");
    assert_eq!((other.run(&["running"]).code, starts(&other)), (0, "1".to_owned()));
}

#[test]
fn busybox_reboot_halt_and_poweroff_commands_act_on_the_guest() {
    require_root!();
    let env = Env::new();
    // Without CAP_SYS_BOOT: busybox's reboot (a TERM to PID 1) changes nothing.
    let plain = counting_guest(&env, "bbplain");
    plain.run(&["exec", "reboot"]);
    plain.run(&["exec", "halt"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!((starts(&plain), plain.run(&["running"]).code), ("1".to_owned(), 0));
    // With it: reboot restarts the guest, halt and poweroff stop it…
    let g = counting_guest_with(&env, "bbreboot", "S_CAPS=CAP_SYS_BOOT\n");
    g.run(&["exec", "reboot"]);
    assert!(eventually(10, || starts(&g) == "2"), "reboot restarted the guest");
    assert_eq!(g.run(&["running"]).code, 0);
    for cmd in ["halt", "poweroff"] {
        g.run(&["exec", cmd]);
        assert!(eventually(10, || g.run(&["running"]).code == 1), "{cmd} stopped the guest");
        g.run(&["start"]).ok();
    }
    // …while TERM from the host (vserver stop) still stops it.
    g.run(&["stop"]).ok();
    assert!(g.context_dir().is_none());
}

#[test]
fn a_guest_granted_mknod_still_reaches_no_host_device() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "mknod");
    g.conf("S_CAPS=CAP_MKNOD\n");
    // A device node that reached the tree (a host admin's copy, say).
    nix::sys::stat::mknod(
        &g.root().join("root/loop0"),
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::sys::stat::makedev(7, 0),
    )
    .unwrap();
    g.run(&["start"]).ok();
    for (kind, major, minor, what) in [
        ("b", "7", "0", "a loop device"),
        ("c", "1", "1", "/dev/mem"),
        ("c", "4", "1", "a host console"),
        ("c", "13", "64", "a host input device"),
    ] {
        let out = g.run(&["exec", "probe", "mknod-open", kind, major, minor, "/tmp/dev"]);
        assert!(out.stdout.starts_with("ERR EPERM"), "{what}: {out:?}");
    }
    let out = g.run(&["exec", "probe", "open", "/root/loop0"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "the planted node: {out:?}");
    // What its /dev holds stays usable, also when made anew.
    let out = g.run(&["exec", "probe", "mknod-open", "c", "1", "3", "/tmp/null"]);
    assert!(out.stdout.starts_with("OK opened"), "{out:?}");
    let out = g.run(&[
        "exec",
        "sh",
        "-c",
        "echo x > /dev/null && head -c 4 /dev/urandom | wc -c && tty < /dev/ptmx; true",
    ]);
    assert!(out.stdout.starts_with('4'), "{out:?}");
}

/// The handle (type, hex) of the directory that holds the guests' trees:
/// outside every guest, on the file system their trees are on.
fn handle_outside(env: &Env) -> (String, String) {
    let dir = env.dir.path().join("vservers");
    let out = host_probe(&["handle-of", dir.to_str().unwrap()]);
    let (kind, hex) = out
        .line()
        .strip_prefix("OK ")
        .and_then(|l| l.split_once(' '))
        .unwrap_or_else(|| panic!("{out:?}"));
    (kind.to_owned(), hex.to_owned())
}

#[test]
fn file_handles_do_not_reach_past_the_guests_root() {
    require_root!();
    let env = Env::new();
    let (kind, hex) = handle_outside(&env);
    let plain = TestGuest::busybox(&env, "shock");
    let granted = TestGuest::busybox(&env, "shockcap");
    granted.conf("S_CAPS=CAP_DAC_READ_SEARCH\n");
    // On the host the handle opens that directory: the attempt is real.
    let host = host_probe(&["open-by-handle", &kind, &hex]);
    assert!(
        host.stdout.starts_with("OK opened") && host.stdout.contains(&plain.name),
        "{host:?}"
    );
    for g in [&plain, &granted] {
        g.run(&["start"]).ok();
        let bnd = u64::from_str_radix(g.run(&["exec", "probe", "status", "CapBnd"]).line(), 16).unwrap();
        assert_eq!(bnd & (1 << 2) != 0, g.name == granted.name, "CAP_DAC_READ_SEARCH only by S_CAPS");
        let out = g.run(&["exec", "probe", "open-by-handle", &kind, &hex]);
        assert!(out.stdout.starts_with("ERR EPERM"), "{}: {out:?}", g.name);
    }
}

#[test]
fn a_reboot_asked_for_during_start_up_happens_once_it_is_done() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "bootreboot");
    count_starts(&g);
    // A slow service after the counter: start-up is still running for two
    // seconds once the counter has moved.
    g.service("slow", "sleep 2", "true");
    g.run(&["start"]).ok();
    g.run(&["exec", "/sbin/vreboot"]).ok_or_killed();
    assert!(eventually(10, || starts(&g) == "2"), "the first reboot");
    // The restarted guest is still starting (its slow service runs):
    // this reboot must not be lost.
    g.run(&["exec", "/sbin/vreboot"]).ok_or_killed();
    assert!(eventually(15, || starts(&g) == "3"), "the reboot asked for during start-up");
    assert!(eventually(10, || g.run(&["running"]).code == 0));
}

#[test]
fn the_hosts_keyrings_are_out_of_reach() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "keys");
    g.run(&["start"]).ok();
    // The kernel keeps keyrings per uid: host root's user keyring is the
    // one guest root would find.
    let desc = format!("vsbox-test-{}", g.name);
    let probe = |args: &[&str]| Out::from(std::process::Command::new(PROBE).args(args).output().unwrap());
    let added = probe(&["key-add", &desc, "s3cret"]);
    let id = added
        .line()
        .strip_prefix("OK id=")
        .unwrap_or_else(|| panic!("{added:?}"))
        .to_owned();
    let on_host = probe(&["key-read", &desc]);
    let in_guest = g.run(&["exec", "probe", "key-read", &desc]);
    let planted = g.run(&["exec", "probe", "key-add", &desc, "evil"]);
    probe(&["key-unlink", &id]).ok();
    assert_eq!(on_host.line(), "OK secret=s3cret", "the host reads its key");
    assert!(in_guest.stdout.starts_with("ERR EPERM"), "{in_guest:?}");
    assert!(planted.stdout.starts_with("ERR EPERM"), "{planted:?}");
}

#[test]
fn the_hosts_binary_and_environment_stay_out_of_the_guests_reach() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "exe");
    // Whatever the host's environment holds when it starts the guest.
    let out = Out::from(
        env.cmd("vserver")
            .args([g.name.as_str(), "start"])
            .env("VSBOX_TEST_SECRET", "hunter2")
            .output()
            .unwrap(),
    );
    out.ok();
    // PID 1 runs the host's vsbox: guest root may not open that file
    // (to rewrite it once nothing runs it) nor read the init's environment.
    let exe = g.run(&["exec", "probe", "open", "/proc/1/exe"]);
    assert!(
        exe.stdout.starts_with("ERR EACCES") || exe.stdout.starts_with("ERR EPERM"),
        "{exe:?}"
    );
    let environ = g.run(&["exec", "sh", "-c", "cat /proc/1/environ"]);
    assert!(!environ.stdout.contains("hunter2"), "{environ:?}");
    // The guest's own processes stay open to it as usual.
    let own = g.run(&["exec", "sh", "-c", "probe sleep 1 & sleep 0.3; probe open /proc/$!/exe"]);
    assert!(own.stdout.starts_with("OK opened"), "{own:?}");
}

#[test]
fn devices_listed_in_the_configuration_become_usable() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "devices");
    // /dev/fuse opens without capabilities: only the device program decides.
    g.conf("S_CAPS=CAP_MKNOD\n");
    g.run(&["start"]).ok();
    let out = g.run(&["exec", "probe", "mknod-open", "c", "10", "229", "/tmp/fuse"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "not listed: {out:?}");
    g.run(&["stop"]).ok();
    g.conf("S_CAPS=CAP_MKNOD\nDEVICES=\"c 10:229\"\n");
    g.run(&["start"]).ok();
    let out = g.run(&["exec", "probe", "mknod-open", "c", "10", "229", "/tmp/fuse2"]);
    assert!(out.stdout.starts_with("OK opened"), "listed: {out:?}");
    // Still nothing else.
    let out = g.run(&["exec", "probe", "mknod-open", "c", "10", "200", "/tmp/tun"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string()
}

/// The guest's loopback address, from `vserver NAME status`.
fn lback_of(g: &TestGuest) -> String {
    let st = g.run(&["status"]);
    st.stdout
        .lines()
        .find_map(|l| l.strip_prefix("loopback: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no loopback line: {st:?}"))
        .to_owned()
}

#[test]
fn each_guest_has_a_localhost_of_its_own() {
    require_root!();
    let env = Env::new();
    let (port, all_port) = (free_port(), free_port());
    let mut guests = Vec::new();
    for content in ["guest one", "guest two"] {
        let g = TestGuest::busybox(&env, "lback");
        std::fs::create_dir_all(g.root().join("var/www")).unwrap();
        std::fs::write(g.root().join("var/www/index.html"), content).unwrap();
        // The same localhost-only service in both, and one on all addresses.
        g.service(
            "httpd",
            &format!("httpd -p 127.0.0.1:{port} -h /var/www; httpd -p {all_port} -h /var/www"),
            "killall httpd",
        );
        g.conf(&format!("IPROOT={}\n", loopback()));
        g.run(&["start"]).ok();
        guests.push(g);
    }
    let host_www = TempDir::new("www");
    std::fs::write(host_www.path().join("index.html"), "host").unwrap();
    let _host = Bg(std::process::Command::new("/bin/busybox")
        .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
        .arg(host_www.path())
        .spawn()
        .unwrap());
    let get = |ip: &str| host_probe(&["http-get", ip, &port]);
    assert!(eventually(5, || get("127.0.0.1").stdout.contains("host")), "{:?}", get("127.0.0.1"));
    let (l1, l2) = (lback_of(&guests[0]), lback_of(&guests[1]));
    assert_ne!(l1, l2);
    for (g, want) in guests.iter().zip(["OK guest one", "OK guest two"]) {
        // Each guest's 127.0.0.1 is its own, for both services.
        let out = g.run(&["exec", "probe", "http-get", "127.0.0.1", &port]);
        assert_eq!(out.line(), want, "{out:?}");
        // By name, through the guest's /etc/hosts.
        let out = g.run(&["exec", "wget", "-q", "-O", "-", &format!("http://localhost:{all_port}/")]);
        assert_eq!(format!("OK {}", out.line()), want, "{out:?}");
        let out = g.run(&["exec", "probe", "http-get", "127.0.0.1", &all_port]);
        assert_eq!(out.line(), want, "{out:?}");
    }
    // From outside: not on a guest's address, not on its loopback address.
    let addr1 = guests[0]
        .run(&["status"])
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("addresses: ").map(str::to_owned))
        .unwrap();
    let out = get(&addr1);
    assert!(out.stdout.starts_with("ERR ECONNREFUSED"), "{out:?}");
    let out = host_probe(&["connect", &l1, &port]);
    assert!(out.stdout.starts_with("ERR") && !out.stdout.contains("guest"), "{out:?}");
    // Nor from the other guest, by its loopback address.
    let out = guests[1].run(&["exec", "probe", "http-get", &l1, &port]);
    assert_eq!(out.line(), "OK guest two", "{out:?}");
}

#[test]
fn lback_a_dns_cache_on_the_guests_localhost_answers_its_resolver() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "dns");
    g.conf(&format!("IPROOT={}\n", loopback()));
    g.run(&["start"]).ok();
    // A DNS server on the guest's 127.0.0.1 (as dnsmasq or a caching
    // unbound would be), asked by busybox nslookup (a connected UDP
    // socket) and by a client that sendto()s from an unbound socket: both
    // get its answers.
    let (port, p2) = (free_port(), free_port());
    let out = g.run(&[
        "exec",
        "sh",
        "-c",
        &format!(
            "probe dns-nx 127.0.0.1 {port} >/dev/null & probe udp-echo 127.0.0.1 {p2} >/dev/null & sleep 0.3
            nslookup nothing.example 127.0.0.1:{port}
            probe udp-ask 127.0.0.1 {p2} sendto; kill %1 %2"
        ),
    ]);
    assert!(out.stdout.contains("server can't find nothing.example: NXDOMAIN"), "{out:?}");
    assert!(
        out.stdout.contains(&format!("OK from=127.0.0.1:{p2} answer=echo 127.0.0.1")),
        "{out:?}"
    );
}

#[test]
fn the_hosts_localhost_is_out_of_a_guests_reach() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "nolo");
    g.conf(&format!("IPROOT={}\n", loopback()));
    g.run(&["start"]).ok();
    let mut server = Bg(std::process::Command::new(PROBE)
        .args(["serve", "127.0.0.1", "0", "host"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    let port = read_line(&mut server.0).rsplit(':').next().unwrap().to_owned();
    let out = g.run(&["exec", "probe", "connect", "127.0.0.1", &port]);
    assert!(out.stdout.starts_with("ERR ECONNREFUSED"), "{out:?}");
    let udp = free_port();
    let mut rx = Bg(std::process::Command::new(PROBE)
        .args(["udp-recv", "127.0.0.1", &udp])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(rx.0.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
    let out = g.run(&["exec", "probe", "udp-send", "127.0.0.1", &udp]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
    // The host reaches both itself.
    let out = host_probe(&["connect", "127.0.0.1", &port]);
    assert!(out.stdout.contains("answer=host"), "{out:?}");
    host_probe(&["udp-send", "127.0.0.1", &udp]).ok();
    assert_eq!(lines.next().unwrap().unwrap(), "OK from=127.0.0.1");
    // Inside, getpeername and getsockname say 127.0.0.1 at both ends.
    let p = free_port();
    let out = g.run(&[
        "exec",
        "sh",
        "-c",
        &format!("probe serve 127.0.0.1 {p} inside >/dev/null & sleep 0.3; probe connect-names 127.0.0.1 {p}"),
    ]);
    assert_eq!(out.line(), "OK local=127.0.0.1 peer=127.0.0.1 answer=inside 127.0.0.1", "{out:?}");
}

#[test]
fn the_loopback_address_can_be_chosen_and_is_never_shared() {
    require_root!();
    let env = Env::new();
    let lb = format!("127.251.{}.{}", std::process::id() % 250, 1 + std::process::id() / 250 % 250);
    let g = TestGuest::busybox(&env, "lbk");
    g.conf(&format!("IPROOT={}\nIPROOT_LBACK={lb}\n", loopback()));
    let st = g.run(&["status"]);
    assert!(st.stdout.contains(&format!("loopback: {lb}")), "{st:?}");
    g.run(&["start"]).ok();
    assert_eq!(lback_of(&g), lb);
    let out = g.run(&["exec", "probe", "bind", "127.0.0.1", "0", "tcp"]);
    assert!(out.stdout.starts_with("OK 127.0.0.1:"), "{out:?}");
    let other = TestGuest::busybox(&env, "lbk2");
    other.conf(&format!("IPROOT={}\nIPROOT_LBACK={lb}\n", loopback()));
    let out = other.run(&["start"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&format!("loopback address {lb} is taken by context")),
        "{out:?}"
    );
    assert!(other.context_dir().is_none(), "a refused start left its context");
    // Nor another running guest's IPROOT address, nor its own.
    let g_ip = g.conf_path();
    let g_ip = std::fs::read_to_string(g_ip).unwrap();
    let g_ip = g_ip.lines().find_map(|l| l.strip_prefix("IPROOT=")).unwrap().to_owned();
    other.conf(&format!("IPROOT={}\nIPROOT_LBACK={g_ip}\n", loopback()));
    let out = other.run(&["start"]);
    assert!(
        out.stderr.contains(&format!("loopback address {g_ip} is taken by context")),
        "{out:?}"
    );
    let own = loopback();
    other.conf(&format!("IPROOT={own}\nIPROOT_LBACK={own}\n"));
    let out = other.run(&["start"]);
    assert!(out.stderr.contains("is one of its IPROOT addresses"), "{out:?}");
    assert!(other.context_dir().is_none(), "a refused start left its context");
    other.conf("IPROOT_LBACK=127.0.0.1\n");
    let out = other.run(&["start"]);
    assert!(out.stderr.contains(":1: IPROOT_LBACK: '127.0.0.1' is not"), "{out:?}");
}

#[test]
fn abstract_unix_sockets_do_not_cross_between_host_and_guests() {
    require_root!();
    let env = Env::new();
    let name = format!("vsbox-test-{}-{}", std::process::id(), free_port());
    let mut host = Bg(std::process::Command::new(PROBE)
        .args(["abstract-serve", &name, "host"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    assert_eq!(read_line(&mut host.0), format!("LISTEN @{name}"));
    let from_host = host_probe(&["abstract-connect", &name]);
    assert_eq!(from_host.line(), "OK answer=host");
    let dgram = format!("{name}-dgram");
    let mut rx = Bg(std::process::Command::new(PROBE)
        .args(["abstract-recv", &dgram])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    assert_eq!(read_line(&mut rx.0), "READY");
    let with_ip = TestGuest::busybox(&env, "abs-ip");
    with_ip.conf(&format!("IPROOT={}\n", loopback()));
    let without = TestGuest::busybox(&env, "abs");
    for (g, running) in [(&with_ip, false), (&without, false), (&with_ip, true), (&without, true)] {
        if running {
            g.run(&["start"]).ok();
        }
        // A running guest's processes, and a stopped guest's fresh context,
        // have their own namespace of abstract names, where the host's is
        // not (ECONNREFUSED).
        let refused = "ERR ECONNREFUSED";
        let out = g.run(&["exec", "probe", "abstract-connect", &name]);
        assert!(out.stdout.starts_with(refused), "{} running={running}: {out:?}", g.name);
        let out = g.run(&["exec", "probe", "abstract-send", &dgram, "guest"]);
        assert!(out.stdout.starts_with(refused), "{} running={running}: {out:?}", g.name);
        // Its own abstract sockets work among its processes.
        let own = format!("{name}-own");
        let out = g.run(&[
            "exec",
            "sh",
            "-c",
            &format!("probe abstract-serve {own} guest >/dev/null & sleep 0.3; probe abstract-connect {own}; kill $!"),
        ]);
        assert_eq!(out.line(), "OK answer=guest", "{out:?}");
        g.run(&["exec", "probe", "socketpair"]).ok();
    }
    // A running guest's services are held too.
    without.service("abs", &format!("(probe abstract-connect {name} > /tmp/abs.out &)"), "true");
    without.run(&["restart"]).ok();
    assert!(eventually(5, || std::fs::read_to_string(without.root().join("tmp/abs.out"))
        .is_ok_and(|s| !s.is_empty())));
    let got = std::fs::read_to_string(without.root().join("tmp/abs.out")).unwrap();
    assert!(got.starts_with("ERR ECONNREFUSED"), "{got}");
    // The host still reaches its own.
    let from_host = host_probe(&["abstract-send", &dgram, "host"]);
    from_host.ok();
    assert_eq!(read_line(&mut rx.0), "OK got=host");
}

/// The other way: a name a running guest binds first (a service, or a
/// command run in with exec) never takes the host's clients, nor another
/// guest's; its services and what the admin runs in reach each other.
#[test]
fn a_name_a_running_guest_binds_is_its_own() {
    require_root!();
    let env = Env::new();
    let x11 = format!("/tmp/.X11-unix/X{}-{}", std::process::id(), free_port());
    let a = TestGuest::busybox(&env, "abs-bind-a");
    let b = TestGuest::busybox(&env, "abs-bind-b");
    let from_exec = format!("{x11}-exec");
    a.service(
        "x",
        &format!(
            "(probe abstract-serve {x11} guest-a > /tmp/x.out &); \
             (while sleep 0.2; do probe abstract-connect {from_exec} > /tmp/reached.out; done > /dev/null 2>&1 &); \
             (while sleep 0.2; do [ -f /tmp/try ] && sh /tmp/try && rm -f /tmp/try; done > /dev/null 2>&1 &)"
        ),
        "true",
    );
    a.run(&["start"]).ok();
    b.run(&["start"]).ok();
    assert!(eventually(5, || std::fs::read_to_string(a.root().join("tmp/x.out"))
        .is_ok_and(|s| s.starts_with("LISTEN"))));
    // The host's clients do not reach it; the host's own server binds the
    // same name and gets them.
    let out = host_probe(&["abstract-connect", &x11]);
    assert!(out.stdout.starts_with("ERR ECONNREFUSED"), "{out:?}");
    let mut host = Bg(std::process::Command::new(PROBE)
        .args(["abstract-serve", &x11, "host"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    assert_eq!(read_line(&mut host.0), format!("LISTEN @{x11}"));
    assert_eq!(host_probe(&["abstract-connect", &x11]).line(), "OK answer=host");
    // Another guest reaches neither.
    let out = b.run(&["exec", "probe", "abstract-connect", &x11]);
    assert!(out.stdout.starts_with("ERR ECONNREFUSED"), "{out:?}");
    // Inside: a command run in with exec reaches the service …
    assert_eq!(a.run(&["exec", "probe", "abstract-connect", &x11]).line(), "OK answer=guest-a");
    // … and a service reaches what a command run in with exec serves.
    a.run(&[
        "exec",
        "sh",
        "-c",
        &format!("(probe abstract-serve {from_exec} exec > /dev/null 2>&1 &)"),
    ])
    .ok();
    assert!(eventually(5, || std::fs::read_to_string(a.root().join("tmp/reached.out"))
        .is_ok_and(|s| s.starts_with("OK answer=exec"))));
    // chcontext --ctx into the server's context joins its names too.
    let xid = a
        .run(&["status"])
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("context: ").map(str::to_owned))
        .unwrap();
    let host_name = format!("{x11}-host");
    let mut host_srv = Bg(std::process::Command::new(PROBE)
        .args(["abstract-serve", &host_name, "host"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    assert_eq!(read_line(&mut host_srv.0), format!("LISTEN @{host_name}"));
    let joined = env.run(
        "chcontext",
        &["--ctx", &xid, "--silent", "--", "/bin/probe", "abstract-connect", &x11],
    );
    assert_eq!(joined.line(), "OK answer=guest-a", "{joined:?}");
    let joined = env.run(
        "chcontext",
        &["--ctx", &xid, "--silent", "--", "/bin/probe", "abstract-connect", &host_name],
    );
    assert!(joined.stdout.starts_with("ERR ECONNREFUSED"), "{joined:?}");
    // The i386 entry point whose arguments are in memory (socketcall), out
    // of a filter's sight and changeable by a second thread after any
    // check, makes no sockets at all (the direct i386 calls do).
    let out = a.run(&["exec", "probe", "socketcall-serve", &format!("{x11}-i386"), "i386"]);
    assert!(out.stdout.starts_with("ERR ENOSYS"), "{out:?}");
    // A socketpair whose numbers cannot be written back fails as the
    // kernel's would, leaving nothing open.
    assert_eq!(host_probe(&["socketpair-bad"]).line(), "EFAULT left-open=0");
    assert_eq!(a.run(&["exec", "probe", "socketpair-bad"]).line(), "EFAULT left-open=0");
    // A listener of its own (which, were the supervisor's gone, would let
    // its calls go on in the host's namespace) is refused.
    let out = a.run(&["exec", "probe", "seccomp-listener"]);
    assert!(out.stdout.starts_with("ERR EBUSY"), "{out:?}");
    // A stopped guest's exec likewise: what it binds is not the host's.
    let fresh = format!("{x11}-fresh");
    b.run(&["stop"]).ok();
    let mut served = Bg(env
        .cmd("vserver")
        .args([b.name.as_str(), "exec", "probe", "abstract-serve", &fresh, "fresh"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    assert_eq!(read_line(&mut served.0), format!("LISTEN @{fresh}"));
    let out = host_probe(&["abstract-connect", &fresh]);
    assert!(out.stdout.starts_with("ERR ECONNREFUSED"), "{out:?}");
    // What enters the server meanwhile joins that context, and reaches it.
    let out = b.run(&["exec", "probe", "abstract-connect", &fresh]);
    assert_eq!(out.line(), "OK answer=fresh", "{out:?}");
    drop(served);
    // io_uring would make sockets past the supervisor: not there.
    let out = a.run(&["exec", "probe", "io-uring"]);
    assert!(out.stdout.starts_with("ERR ENOSYS"), "{out:?}");
    assert!(host_probe(&["io-uring"]).stdout.starts_with("OK"));
    // What root hands to its control socket that is no listener (one
    // descriptor or many) is dropped, and nothing of it is kept.
    let sock = a.env.dir.path().join(format!("run/{}.sock", a.name));
    let fds = || watchers(&a).into_iter().filter_map(proc_fd_count).sum::<usize>();
    let before = fds();
    assert!(before > 0, "the supervisor's descriptors");
    for n in ["1", "3", "40"] {
        assert_eq!(host_probe(&["send-fds", sock.to_str().unwrap(), n, "20"]).line(), "OK sent=20");
    }
    assert!(eventually(3, || fds() <= before), "{} descriptors, {before} before", fds());
    let watcher_pid = || *watchers(&a).first().expect("the supervisor") as i32;
    assert_eq!(a.run(&["exec", "probe", "abstract-connect", &x11]).line(), "OK answer=guest-a");
    // Should its supervisor be killed, its unix socket calls fail, and
    // its processes cannot put a listener of their own in its place (the
    // kernel forgets a dead one, which would let their calls go on in the
    // host's namespace): a service tries, from inside.
    let watcher = watcher_pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(watcher), nix::sys::signal::Signal::SIGKILL).unwrap();
    std::fs::write(
        a.root().join("tmp/try"),
        format!("probe seccomp-listener > /tmp/listener.tmp; probe abstract-connect {host_name} >> /tmp/listener.tmp; mv /tmp/listener.tmp /tmp/listener.out\n"),
    )
    .unwrap();
    assert!(eventually(5, || a.root().join("tmp/listener.out").exists()));
    let said = std::fs::read_to_string(a.root().join("tmp/listener.out")).unwrap();
    assert_eq!(
        said.lines()
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>(),
        ["ERR EBUSY", "ERR ENOSYS"],
        "{said}"
    );
    a.run(&["stop"]).ok();
}

/// A guest locked to its addresses sees no link-level traffic, even with
/// CAP_NET_RAW (which gives it ping): a packet socket would read every
/// packet of the host, its loopback's included. Unlocked, it may.
#[test]
fn a_locked_guest_has_no_packet_sockets_whatever_its_capabilities() {
    require_root!();
    let env = Env::new();
    assert!(host_probe(&["packet-open", "all"]).stdout.starts_with("OK"));
    let locked = TestGuest::busybox(&env, "pkt-lock");
    locked.conf(&format!("IPROOT={}\nS_CAPS=CAP_NET_RAW\n", loopback()));
    let open = TestGuest::busybox(&env, "pkt-open");
    open.conf("S_CAPS=CAP_NET_RAW\n");
    for running in [false, true] {
        if running {
            locked.run(&["start"]).ok();
            open.run(&["start"]).ok();
        }
        for how in ["all", "sock-packet"] {
            let out = locked.run(&["exec", "probe", "packet-open", how]);
            assert!(out.stdout.starts_with("ERR EPERM"), "running={running} {how}: {out:?}");
            let out = open.run(&["exec", "probe", "packet-open", how]);
            assert!(out.stdout.starts_with("OK"), "running={running} {how}: {out:?}");
        }
    }
    locked.run(&["stop"]).ok();
    open.run(&["stop"]).ok();
}

/// A new user's trial: execs racing a server's set-up (ten at once into a
/// stopped server, whose fresh context the first makes, and a start)
/// joined a context whose first process had not made its namespaces yet,
/// and ran as the host's root in the host's mount namespace. Each either
/// runs in the server or fails; none runs on the host.
#[test]
fn execs_racing_a_servers_set_up_never_run_in_the_hosts_namespaces() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "setuprace");
    let host = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let host = host.to_str().unwrap();
    for with_start in [false, true] {
        let outs: Vec<Out> = std::thread::scope(|s| {
            let start = with_start.then(|| s.spawn(|| g.run(&["start"])));
            let execs: Vec<_> = (0..10)
                .map(|_| s.spawn(|| g.run(&["exec", "readlink", "/proc/self/ns/mnt"])))
                .collect();
            let outs = execs.into_iter().map(|h| h.join().unwrap()).collect();
            if let Some(h) = start {
                h.join().unwrap();
            }
            outs
        });
        for out in &outs {
            assert_ne!(out.line(), host, "ran in the host's mount namespace: {out:?}");
        }
        assert!(outs.iter().any(|o| o.code == 0 && o.line().starts_with("mnt:")), "{outs:?}");
        let _ = g.run(&["stop"]);
    }
}

/// A command entering a server finds its context through the
/// trusted.vsbox.context attribute of RUNDIR/NAME.lock (its cgroup
/// directories, written at start), and trusts it only as far as each is a
/// cgroup directory named by the context's id and the first carries the
/// server's tag: a record naming another server's context, a place out of
/// the cgroup tree, a path through "..", a v1 directory that is not one,
/// nothing, or none at all, still gets the server's own context. A start
/// and a stop read it too: "no context" counts only with the server's own
/// tag, so neither such a record nor one of the kinds above makes a
/// running server look stopped.
#[test]
fn the_recorded_context_of_a_server_is_checked_before_it_is_used() {
    require_root!();
    let env = Env::new();
    let a = TestGuest::busybox(&env, "hinta");
    let b = TestGuest::busybox(&env, "hintb");
    assert_eq!(a.run(&["start"]).code, 0);
    assert_eq!(b.run(&["start"]).code, 0);
    let (xa, xb) = (xid_of(&a.run(&["status"])), xid_of(&b.run(&["status"])));
    let mine = context_record(&a).unwrap();
    assert!(mine.lines().next().unwrap().ends_with(&format!("/vsbox/{xa}")), "{mine:?}");
    let theirs = context_record(&b).unwrap();
    assert!(theirs.lines().next().unwrap().ends_with(&format!("/vsbox/{xb}")), "{theirs:?}");
    let first = mine.lines().next().unwrap();
    // A directory named like the context's, on no cgroup file system.
    let fake = env.dir.path().join("fake").join(xa.to_string());
    std::fs::create_dir_all(&fake).unwrap();
    for planted in [
        theirs.clone(),
        "../../..".to_owned(),
        "/sys/fs/cgroup".to_owned(),
        format!("{first}/../../../vsbox/{xb}"),
        format!("{first}\n{}", fake.display()),
        fake.display().to_string(),
        // A context of nobody's, where contexts are.
        std::path::Path::new(first).with_file_name("1").display().to_string(),
        // "No context", bare or another server's.
        "-".to_owned(),
        format!("-\n{}", b.conf_path().display()),
        "999999".to_owned(),
        String::new(),
    ] {
        plant_context_record(&a, Some(&planted));
        let out = a.run(&["exec", "hostname"]);
        assert_eq!(
            (out.code, out.line()),
            (0, a.name.as_str()),
            "with the record at {planted:?}: {out:?}"
        );
        assert_eq!(xid_of(&a.run(&["status"])), xa, "with the record at {planted:?}");
        // Nor is a second start fooled into a second context.
        let out = a.run(&["start"]);
        assert!(
            out.code == 1 && out.stderr.contains("it is running already"),
            "with the record at {planted:?}: {out:?}"
        );
    }
    plant_context_record(&a, None);
    assert_eq!(a.run(&["exec", "hostname"]).line(), a.name);
    assert_eq!(b.run(&["exec", "hostname"]).line(), b.name);
    // Without a record, a stop does not claim to know the server's every
    // context; a start records anew, and a stop of what it recorded notes
    // that the server has none, so the next start and stop need not look
    // at every context's tag.
    assert_eq!(a.run(&["stop"]).code, 0);
    assert_eq!(context_record(&a), None);
    assert_eq!(a.run(&["exec", "hostname"]).line(), a.name, "a fresh context");
    assert_eq!(a.run(&["start"]).code, 0);
    let again = context_record(&a).unwrap();
    let dir = std::path::PathBuf::from(again.lines().next().unwrap());
    let xid = xid_of(&a.run(&["status"])).to_string();
    assert!(dir.is_dir() && dir.file_name().unwrap() == xid.as_str(), "{again:?}");
    assert_eq!(a.run(&["stop"]).code, 0);
    assert!(!dir.exists());
    assert_eq!(context_record(&a), Some(format!("-\n{}", a.conf_path().display())));
    assert!(a.run(&["stop"]).stderr.contains("it is not running"));
    assert_eq!(a.run(&["start"]).code, 0);
    assert_eq!(a.run(&["exec", "hostname"]).line(), a.name);
    assert_eq!(a.run(&["stop"]).code, 0);
    // A stopped server's record naming another's running context: that
    // one is not the server's, so it starts, and stops, beside it.
    plant_context_record(&a, Some(&theirs));
    assert_eq!(a.run(&["start"]).code, 0);
    assert_ne!(xid_of(&a.run(&["status"])), xb);
    assert_eq!(a.run(&["stop"]).code, 0);
    assert_eq!(xid_of(&b.run(&["status"])), xb);
    assert_eq!(b.run(&["exec", "hostname"]).line(), b.name);
    assert_eq!(b.run(&["stop"]).code, 0);
}
