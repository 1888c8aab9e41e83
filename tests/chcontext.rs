//! chcontext on the real kernel: each isolation statement of SPEC §3–§4
//! next to an attempt, as the context's root, to break it.

mod common;
use common::*;
use std::process::Stdio;

/// Bits kept by --secure (CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
/// SETUID NET_BIND_SERVICE SYS_CHROOT LEASE AUDIT_WRITE SETFCAP).
const SECURE_MASK: u64 = 0xb004_04fb;

fn mask(hex: &str) -> u64 {
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

#[test]
fn new_context_has_own_pids_and_reports_its_number() {
    require_root!();
    let env = Env::new();
    let out = env.run("chcontext", &["--", PROBE, "pid"]);
    out.ok();
    assert_eq!(out.line(), "2", "the command is PID 2 under vsbox's init");
    let xid = announced_xid(&out.stderr).expect("New security context is N on stderr");
    assert!((49152..=65535).contains(&xid), "dynamic id: {xid}");
    assert!(!out.stdout.contains("New security context"), "the line goes to stderr only");
    assert!(ctx_dir(xid).is_none(), "context {xid} left its cgroup behind");

    let out = env.run("chcontext", &["--silent", "--flag", "fakeinit", "--", PROBE, "pid"]);
    out.ok();
    assert_eq!(out.line(), "1", "fakeinit: the command is PID 1");
    assert_eq!(out.stderr, "", "--silent prints nothing");
}

#[test]
fn dynamic_ids_rotate() {
    require_root!();
    let env = Env::new();
    let a = announced_xid(&env.run("chcontext", &["/bin/true"]).ok().stderr).unwrap();
    let b = announced_xid(&env.run("chcontext", &["/bin/true"]).ok().stderr).unwrap();
    assert_ne!(a, b, "a freed id is not handed out again at once");
}

#[test]
fn context_cannot_see_or_signal_host_processes() {
    require_root!();
    let env = Env::new();
    let host = Bg(std::process::Command::new(PROBE).args(["sleep", "30"]).spawn().unwrap());
    let hostpid = host.0.id().to_string();
    // Allowed: signal its own init.
    env.run("chcontext", &["--silent", "--", PROBE, "kill", "1", "0"]).ok();
    // Escape: signal the host process by its host PID.
    let out = env.run("chcontext", &["--silent", "--", PROBE, "kill", &hostpid, "9"]);
    assert!(!out.stdout.starts_with("OK"), "{out:?}");
    let out = env.run(
        "chcontext",
        &["--silent", "--", PROBE, "exists", &format!("/proc/{hostpid}/status")],
    );
    // Its own /proc shows only the context: PID numbers this high do not exist there.
    assert!(out.stdout.starts_with("ERR ENOENT"), "{out:?}");
    let out = env.run("chcontext", &["--silent", "--", PROBE, "exists", "/proc/1/status"]);
    assert!(out.stdout.starts_with("OK"), "{out:?}");
    assert!(
        std::path::Path::new(&format!("/proc/{hostpid}")).exists(),
        "host process was harmed"
    );
}

/// The host's root sees a context's processes and their context: directly
/// on a stock kernel; on the patched one, whose host is blind to them, as
/// the spectator.
#[test]
fn the_host_sees_context_processes_and_their_context() {
    require_root!();
    let env = Env::new();
    let xid = static_xid();
    let _g = CtxGuard(xid);
    let child = start_context(&env, xid, &[], &[PROBE, "sleep", "30"]);
    let dir = ctx_dir(xid).unwrap();
    let xid_of = |pid: u32| {
        vsbox::kernel::native::spectate(|| vsbox::context::xid_of_pid(pid).map_or_else(|e| e.to_string(), |x| x.to_string())).unwrap()
    };
    for pid in vsbox::kernel::cgroup::procs(&dir).unwrap() {
        assert_eq!(xid_of(pid), xid.to_string(), "pid {pid}");
        assert_eq!(std::path::Path::new(&format!("/proc/{pid}")).exists(), !patched(), "pid {pid}");
    }
    assert_eq!(xid_of(std::process::id()), "0");
    drop(child);
}

#[test]
fn one_context_cannot_see_another() {
    require_root!();
    let env = Env::new();
    let (a, b) = (static_xid(), static_xid());
    let (_ga, _gb) = (CtxGuard(a), CtxGuard(b));
    let _bg = start_context(&env, a, &[], &[PROBE, "sleep", "30"]);
    let in_a = vsbox::kernel::cgroup::procs(&ctx_dir(a).unwrap()).unwrap();
    for pid in in_a {
        let out = env.run(
            "chcontext",
            &["--ctx", &b.to_string(), "--silent", "--", PROBE, "kill", &pid.to_string(), "9"],
        );
        assert!(
            !out.stdout.starts_with("OK") || pid < 3,
            "context {b} signalled host pid {pid} of context {a}: {out:?}"
        );
    }
    assert!(
        ctx_dir(a).is_some_and(|d| vsbox::kernel::cgroup::populated(&d)),
        "context {a} was harmed"
    );
}

#[test]
fn joining_an_existing_context_shares_its_processes() {
    require_root!();
    let env = Env::new();
    let xid = static_xid();
    let _g = CtxGuard(xid);
    let _bg = start_context(&env, xid, &["--hostname", "joined"], &[PROBE, "sleep", "30"]);
    // PID 2 of the context is the first command; a joiner can see it and shares the host name.
    let out = env.run("chcontext", &["--ctx", &xid.to_string(), "--", PROBE, "exists", "/proc/2/status"]);
    assert!(out.stdout.starts_with("OK"), "{out:?}");
    assert_eq!(announced_xid(&out.stderr), Some(xid));
    let out = env.run("chcontext", &["--ctx", &xid.to_string(), "--silent", "--", PROBE, "uname"]);
    assert!(out.stdout.starts_with("joined "), "{out:?}");
}

#[test]
fn private_context_cannot_be_joined() {
    require_root!();
    let env = Env::new();
    let xid = static_xid();
    let _g = CtxGuard(xid);
    let _bg = start_context(&env, xid, &["--flag", "private"], &[PROBE, "sleep", "30"]);
    let marker = env.dir.path().join("joined");
    let out = env.run(
        "chcontext",
        &["--ctx", &xid.to_string(), "--", "/usr/bin/touch", marker.to_str().unwrap()],
    );
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("private"), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(!marker.exists());
}

#[test]
fn spectator_sees_everything_and_can_signal_nothing() {
    require_root!();
    let env = Env::new();
    let victim = Bg(std::process::Command::new(PROBE).args(["sleep", "30"]).spawn().unwrap());
    let pid = victim.0.id().to_string();
    let out = env.run(
        "chcontext",
        &["--ctx", "1", "--silent", "--", PROBE, "exists", &format!("/proc/{pid}/status")],
    );
    assert!(out.stdout.starts_with("OK"), "sees host processes: {out:?}");
    for attempt in [vec!["kill", &pid, "9"], vec!["kill", &pid, "0"], vec!["ptrace", &pid]] {
        let mut args = vec!["--ctx", "1", "--silent", "--", PROBE];
        args.extend(attempt.iter().copied());
        let out = env.run("chcontext", &args);
        assert!(out.stdout.starts_with("ERR EPERM"), "{attempt:?}: {out:?}");
    }
    let out = env.run("chcontext", &["--ctx", "1", "--silent", "--", PROBE, "status", "CapBnd"]);
    assert_eq!(mask(&out.stdout) & (1 << 19), 0, "no CAP_SYS_PTRACE: {out:?}");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(ctx_dir(1).is_none(), "spectator cgroup left behind");
}

#[test]
fn lock_flag_forbids_new_namespaces() {
    require_root!();
    let env = Env::new();
    for attempt in [
        vec!["unshare", "uts"],
        vec!["unshare", "user"],
        vec!["setns", "/proc/1/ns/uts"],
        vec!["clone-newns"],
    ] {
        let mut args = vec!["--silent", "--flag", "lock", "--", PROBE];
        args.extend(attempt.iter().copied());
        let out = env.run("chcontext", &args);
        assert!(out.stdout.starts_with("ERR EPERM"), "{attempt:?}: {out:?}");
        // The same thing is allowed without lock.
        let mut args = vec!["--silent", "--", PROBE];
        args.extend(attempt.iter().copied());
        let out = env.run("chcontext", &args);
        assert!(out.stdout.starts_with("OK"), "unlocked {attempt:?}: {out:?}");
    }
    // A nested context is refused inside a locked one, allowed otherwise.
    let out = env.run(
        "chcontext",
        &["--silent", "--flag", "lock", "--", VSBOX, "chcontext", "--", PROBE, "pid"],
    );
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("lock"), "{out:?}");
    let out = env.run("chcontext", &["--silent", "--", VSBOX, "chcontext", "--", PROBE, "pid"]);
    out.ok();
    assert_eq!(out.line(), "2");
    let outer = announced_xid(&out.stderr);
    assert!(outer.is_some(), "nested context announced: {out:?}");
}

#[test]
fn contexts_cannot_leave_their_cgroup() {
    require_root!();
    let env = Env::new();
    let v2 = vsbox::kernel::cgroup::Layout::detect().unwrap().v2;
    let escape = format!("echo $$ > {}/cgroup.procs && echo moved || echo refused", v2.display());
    let out = env.run("chcontext", &["--silent", "--secure", "--", "sh", "-c", &escape]);
    assert!(out.stdout.contains("refused"), "{out:?}");
    // Also when the capabilities are dropped later, inside the context.
    let reducecap = env.dir.path().join("bin/reducecap");
    let out = env.run(
        "chcontext",
        &["--silent", "--", reducecap.to_str().unwrap(), "--secure", "--", "sh", "-c", &escape],
    );
    assert!(out.stdout.contains("refused"), "{out:?}");
    // A nested context can still be created by a root that keeps CAP_SYS_ADMIN.
    let out = env.run("chcontext", &["--silent", "--", VSBOX, "chcontext", "--", PROBE, "pid"]);
    assert_eq!(out.line(), "2", "{out:?}");
}

#[test]
fn sysv_ipc_is_private_to_a_context() {
    require_root!();
    let env = Env::new();
    let key = (40000 + std::process::id() % 20000).to_string();
    let script = format!("{PROBE} shm-create {key} && {PROBE} shm-find {key} && sleep 30");
    let xid = static_xid();
    let _g = CtxGuard(xid);
    let _bg = start_context(&env, xid, &[], &["sh", "-c", &script]);
    // The context itself sees its segment (once its shell has made it)…
    let joined = || env.run("chcontext", &["--ctx", &xid.to_string(), "--silent", "--", PROBE, "shm-find", &key]);
    assert!(
        eventually(5, || joined().stdout.starts_with("OK")),
        "the context does not see its segment"
    );
    // …another context and the host do not.
    let other = env.run("chcontext", &["--silent", "--", PROBE, "shm-find", &key]);
    assert!(
        other.stdout.starts_with("ERR ENOENT"),
        "another context sees the segment: {other:?}"
    );
    let host = host_probe(&["shm-find", &key]);
    assert!(host.stdout.starts_with("ERR ENOENT"), "the host sees the segment: {host:?}");
}

#[test]
fn host_and_domain_names_are_private() {
    require_root!();
    let env = Env::new();
    let before = nix::unistd::gethostname().unwrap();
    let out = env.run(
        "chcontext",
        &["--silent", "--hostname", "guest1", "--domainname", "nisdom", "--", PROBE, "uname"],
    );
    assert_eq!(out.line(), "guest1 nisdom", "{out:?}");
    // Guest root renaming its host does not rename the host.
    let out = env.run(
        "chcontext",
        &["--silent", "--", "sh", "-c", "hostname hacked 2>/dev/null || echo refused"],
    );
    let _ = out;
    assert_eq!(nix::unistd::gethostname().unwrap(), before);
}

#[test]
fn secure_ceiling_and_exit_status() {
    require_root!();
    let env = Env::new();
    let out = env.run("chcontext", &["--silent", "--secure", "--", PROBE, "status", "CapBnd"]);
    assert_eq!(mask(&out.stdout), SECURE_MASK, "{out:?}");
    let out = env.run(
        "chcontext",
        &[
            "--silent",
            "--secure",
            "--cap",
            "NET_RAW",
            "--cap",
            "!CAP_CHOWN",
            "--",
            PROBE,
            "status",
            "CapEff",
        ],
    );
    assert_eq!(mask(&out.stdout), (SECURE_MASK | 1 << 13) & !1, "{out:?}");
    assert_eq!(env.run("chcontext", &["--silent", "--", PROBE, "exit", "7"]).code, 7);
    assert_eq!(env.run("chcontext", &["--silent", "--", "sh", "-c", "kill -9 $$"]).code, 128 + 9);
    assert_eq!(env.run("chcontext", &["--silent", "--", "/nonexistent"]).code, 127);
}

#[test]
fn unprivileged_users_get_a_context_and_stay_themselves() {
    require_root!();
    let env = Env::new();
    let chcontext = env.dir.path().join("bin/chcontext");
    // The test tree must be reachable for uid 65534.
    let out = host_probe(&[
        "as-user",
        "65534",
        chcontext.to_str().unwrap(),
        "--hostname",
        "mine",
        "--",
        PROBE,
        "status",
        "Uid",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("65534"), "{out:?}");
    // A numbered context of the kernel's on the patched kernel (any user
    // may make one, as the seed says); an unnumbered one without it.
    let numbered = announced_xid(&out.stderr).is_some();
    assert!(
        numbered == patched() && (numbered || out.stderr.contains("unprivileged")),
        "{out:?}"
    );
    let out = host_probe(&[
        "as-user",
        "65534",
        chcontext.to_str().unwrap(),
        "--silent",
        "--",
        PROBE,
        "status",
        "CapEff",
    ]);
    assert_eq!(mask(&out.stdout), 0, "no capabilities: {out:?}");
    let out = host_probe(&["as-user", "65534", chcontext.to_str().unwrap(), "--silent", "--", PROBE, "pid"]);
    assert_eq!(out.line(), "2", "{out:?}");
    let out = host_probe(&["as-user", "65534", chcontext.to_str().unwrap(), "--ctx", "5000", "--", PROBE, "pid"]);
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("only root"), "{out:?}");
}

#[test]
fn disconnect_returns_at_once_and_cleans_up_later() {
    require_root!();
    let env = Env::new();
    let xid = static_xid();
    let _g = CtxGuard(xid);
    let start = std::time::Instant::now();
    // The detached command keeps stdout and stderr, so do not wait on pipes.
    let st = env
        .cmd("chcontext")
        .args(["--ctx", &xid.to_string(), "--disconnect", "--silent", "--", PROBE, "sleep", "5"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    // A wide margin: it must not wait for the 5-second command.
    assert!(start.elapsed().as_secs() < 4, "returned before the command ended");
    assert!(eventually(3, || ctx_dir(xid).is_some()));
    assert!(
        eventually(15, || ctx_dir(xid).is_none()),
        "context {xid} not removed after its command ended"
    );
}

#[test]
fn nproc_limits_the_context_as_a_whole() {
    require_root!();
    let env = Env::new();
    let mut c = env.cmd("chcontext");
    c.args(["--silent", "--flag", "nproc", "--", PROBE, "fork-many", "30"]);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            let lim = libc::rlimit {
                rlim_cur: 10,
                rlim_max: 10,
            };
            libc::setrlimit(libc::RLIMIT_NPROC, &lim);
            Ok(())
        });
    }
    let out = Out::from(c.output().unwrap());
    let forked: u32 = out
        .stdout
        .trim()
        .strip_prefix("OK forked=")
        .and_then(|n| n.parse().ok())
        .unwrap_or(99);
    assert!(forked <= 10, "root in the context forked {forked} with nproc 10: {out:?}");
    assert!(forked >= 5, "{out:?}");
    let out = env.run("chcontext", &["--silent", "--", PROBE, "fork-many", "30"]);
    assert_eq!(out.line(), "OK forked=30", "without the flag: {out:?}");
}

#[test]
fn sched_puts_the_context_in_one_cpu_group() {
    require_root!();
    let env = Env::new();
    let xid = static_xid();
    let _g = CtxGuard(xid);
    let _bg = start_context(&env, xid, &["--flag", "sched"], &[PROBE, "sleep", "30"]);
    let pid = vsbox::kernel::cgroup::procs(&ctx_dir(xid).unwrap()).unwrap()[0];
    let cg = proc_read(pid, "cgroup").unwrap();
    let layout = vsbox::kernel::cgroup::Layout::detect().unwrap();
    let want = format!("/vsbox/{xid}");
    if layout.v1_mount("cpu").is_some() {
        assert!(cg.lines().any(|l| l.contains(":cpu") && l.ends_with(&want)), "{cg}");
    } else {
        assert!(
            std::fs::read_to_string(ctx_dir(xid).unwrap().parent().unwrap().join("cgroup.subtree_control"))
                .unwrap()
                .contains("cpu")
        );
    }
}

#[test]
fn a_killed_chcontext_takes_its_context_down_and_is_swept() {
    require_root!();
    let env = Env::new();
    let xid = static_xid();
    let _g = CtxGuard(xid);
    let mut c = env
        .cmd("chcontext")
        .args(["--ctx", &xid.to_string(), "--silent", "--", PROBE, "sleep", "30"])
        .spawn()
        .unwrap();
    assert!(eventually(5, || ctx_dir(xid)
        .is_some_and(|d| vsbox::kernel::cgroup::procs(&d).is_ok_and(|p| p.len() >= 2))));
    c.kill().unwrap();
    c.wait().unwrap();
    assert!(
        eventually(5, || ctx_dir(xid).is_none_or(|d| !vsbox::kernel::cgroup::populated(&d))),
        "the context outlived its chcontext"
    );
    env.run("chcontext", &["--silent", "/bin/true"]).ok();
    assert!(ctx_dir(xid).is_none(), "context {xid} was not swept");
}

/// What a command printed on a new pseudo-terminal that was its
/// controlling terminal.
fn on_a_terminal(cmd: &mut std::process::Command) -> String {
    use std::io::Read;
    let (mut child, mut master) = spawn_on_pty(cmd);
    let _ = child.wait();
    let mut seen = Vec::new();
    let _ = master.read_to_end(&mut seen); // EIO once the terminal is closed
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn a_context_cannot_type_into_the_callers_terminal() {
    require_root!();
    let env = Env::new();
    // Allowed outside a context: TIOCSTI on one's own controlling terminal.
    let out = on_a_terminal(std::process::Command::new(PROBE).arg("tiocsti"));
    assert!(out.contains("OK typed"), "{out:?}");
    let out = on_a_terminal(env.cmd("chcontext").args(["--silent", "--", PROBE, "tiocsti"]));
    assert!(out.contains("ERR EPERM"), "{out:?}");
}

#[test]
fn concurrent_launches_never_trip_over_the_shared_base_cgroup() {
    require_root!();
    let env = Env::new();
    // The `vsbox` cgroup above all contexts goes with the last of them;
    // a launch racing that removal must make it again, not fail.
    let failures: Vec<String> = std::thread::scope(|s| {
        let loops: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    (0..100)
                        .map(|_| Out::from(env.cmd("chcontext").args(["--silent", "true"]).output().unwrap()))
                        .filter(|o| o.code != 0)
                        .map(|o| format!("{o:?}"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        loops.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "launches failed: {failures:?}");
}

#[test]
fn the_sweep_judges_owners_only_in_their_own_pid_namespace() {
    require_root!();
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let base = vsbox::kernel::cgroup::Layout::detect().unwrap().base();
    let dead = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let own_ns = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
    // Left over by a killed vsbox of this PID namespace: swept. Made by a
    // vsbox inside a context (whose pids mean nothing here): left alone.
    let here = base.join(format!("sweep-here-{}", std::process::id()));
    let elsewhere = base.join(format!("sweep-elsewhere-{}", std::process::id()));
    for (dir, ns) in [(&here, own_ns), (&elsewhere, own_ns + 1)] {
        vsbox::kernel::cgroup::create(dir).unwrap();
        vsbox::sys::setxattr(dir, vsbox::kernel::cgroup::XATTR_OWNER, format!("{dead} {ns}").as_bytes()).unwrap();
    }
    let out = env.run("chcontext", &["--silent", "true"]);
    let (swept, kept) = (!here.exists(), elsewhere.exists());
    let _ = std::fs::remove_dir(&here);
    let _ = std::fs::remove_dir(&elsewhere);
    let _ = std::fs::remove_dir(&base); // only if no context is left
    out.ok();
    assert!(swept, "the orphan of this namespace was swept");
    assert!(kept, "a context owned from another PID namespace was removed");
}
