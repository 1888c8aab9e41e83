//! Guest root is not host root for the kernel's per-user limits: each
//! guest's root lives in a user namespace of its own, owned by the
//! guest's own host uid, with an identity map — so a guest holding every
//! inotify instance it may have leaves host root and other guests theirs,
//! while files, setuid programs and low ports behave as before.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

/// Host root makes an inotify instance (and drops it).
fn host_inotify() -> bool {
    // SAFETY: plain syscalls on a descriptor of our own.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    if fd >= 0 {
        unsafe { libc::close(fd) };
    }
    fd >= 0
}

/// Starts `probe inotify-hold` in the guest and waits for its count.
fn hog(g: &TestGuest) -> (Bg, String) {
    let mut c = g
        .env
        .cmd("vserver")
        .args([g.name.as_str(), "exec", "probe", "inotify-hold", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(c.stdout.take().unwrap()).read_line(&mut line).unwrap();
    (Bg(c), line.trim().to_owned())
}

#[test]
fn a_guest_holding_every_inotify_instance_leaves_the_host_and_other_guests_theirs() {
    require_root!();
    let env = Env::new();
    let a = TestGuest::busybox(&env, "inohog");
    let b = TestGuest::busybox(&env, "inoother");
    a.conf("");
    b.conf("");
    a.run(&["start"]).ok();
    b.run(&["start"]).ok();
    let limit: u32 = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (_held, line) = hog(&a);
    // All it may have: the host's per-user limit, charged to its own uid.
    let held: u32 = line
        .strip_prefix("OK held ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(held + 8 >= limit && line.ends_with("(EMFILE)"), "{line} (limit {limit})");
    // Host root and the other guest's root still make their own.
    assert!(host_inotify(), "host root got no inotify instance");
    let out = b.run(&["exec", "probe", "inotify"]);
    assert!(out.stdout.starts_with("OK inotify"), "{out:?}");
    // And the guest itself is at its limit: its own counter, not a bug.
    let out = a.run(&["exec", "probe", "inotify"]);
    assert!(out.stdout.starts_with("ERR EMFILE"), "{out:?}");
    // A stopped guest's exec gets a namespace of its own too.
    b.run(&["stop"]).ok();
    let out = b.run(&["exec", "probe", "inotify"]);
    assert!(out.stdout.starts_with("OK inotify"), "{out:?}");
    let st = a.run(&["status"]);
    assert!(st.stdout.contains("user namespace: own"), "{st:?}");
}

#[test]
fn inside_root_is_root_on_disk_setuid_works_and_low_ports_bind() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "usernsid");
    let ip = loopback();
    g.conf(&format!("IPROOT={ip}\n"));
    g.run(&["start"]).ok();
    let out = g.run(&["exec", "cat", "/proc/self/uid_map"]);
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"],
        "{out:?}"
    );
    // Files made inside have the same numeric owners seen from the host.
    g.run(&[
        "exec",
        "sh",
        "-c",
        "touch /root/mine; mkdir -p /tmp/n; chown 65534:65534 /tmp/n; touch /tmp/n/x",
    ])
    .ok();
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(g.root().join("root/mine")).unwrap();
    assert_eq!((m.uid(), m.gid()), (0, 0));
    let m = std::fs::metadata(g.root().join("tmp/n")).unwrap();
    assert_eq!((m.uid(), m.gid()), (65534, 65534));
    let out = g.run(&["suexec", "nobody", "sh", "-c", "touch /tmp/n/y; stat -c %u /tmp/n/y"]);
    assert_eq!(out.line(), "65534", "{out:?}");
    // A setuid-root program run by nobody is root.
    g.run(&["exec", "sh", "-c", "cp /bin/probe /bin/suid-probe && chmod 4755 /bin/suid-probe"])
        .ok();
    let out = g.run(&["suexec", "nobody", "/bin/suid-probe", "status", "Uid"]);
    assert!(out.stdout.split_whitespace().nth(1) == Some("0"), "euid 0 expected: {out:?}");
    // Port 80 on the guest's address: root may, nobody may not.
    let out = g.run(&["exec", "probe", "bind", &ip, "80", "tcp"]);
    assert!(out.stdout.starts_with("OK"), "{out:?}");
    let out = g.run(&["suexec", "nobody", "probe", "bind", &ip, "80", "tcp"]);
    assert!(out.stdout.starts_with("ERR EACCES"), "{out:?}");
    // Guest root is still no host root: the escape attempts of
    // tests/vserver.rs run in such a guest; here, the host's clock.
    let out = g.run(&["exec", "probe", "set-clock"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
}

#[test]
fn a_guest_granted_a_host_capability_keeps_it_and_says_it_shares_the_hosts_namespace() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "usernsraw");
    g.conf("S_CAPS=CAP_NET_RAW\n");
    g.run(&["start"]).ok();
    let out = g.run(&["exec", "probe", "raw-socket"]);
    assert!(out.stdout.starts_with("OK"), "ping's raw socket with CAP_NET_RAW: {out:?}");
    let st = g.run(&["status"]);
    assert!(
        st.stdout.contains("user namespace: the host's (S_CAPS grants CAP_NET_RAW"),
        "{st:?}"
    );
    let out = g.run(&["exec", "cat", "/proc/self/uid_map"]);
    assert_eq!(out.stdout.split_whitespace().collect::<Vec<_>>(), ["0", "0", "4294967295"]);
    assert_eq!(
        std::fs::read_link("/proc/self/ns/user").unwrap(),
        std::fs::read_link(format!("/proc/{}/ns/user", guest_init(&g))).unwrap()
    );
}

#[test]
fn per_guest_inotify_limits_from_the_configuration() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "usernslim");
    g.conf("INOTIFY_INSTANCES=5\nINOTIFY_WATCHES=100\n");
    g.run(&["start"]).ok();
    let out = g.run(&[
        "exec",
        "cat",
        "/proc/sys/user/max_inotify_instances",
        "/proc/sys/user/max_inotify_watches",
    ]);
    assert_eq!(out.stdout.split_whitespace().collect::<Vec<_>>(), ["5", "100"], "{out:?}");
    let (_held, line) = hog(&g);
    assert_eq!(line, "OK held 5 (EMFILE)");
    // Bad values stop start before anything changes.
    g.run(&["stop"]).ok();
    g.conf("INOTIFY_INSTANCES=lots\n");
    let out = g.run(&["start"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains(":1: INOTIFY_INSTANCES: expected a count"), "{out:?}");
    assert!(g.context_dir().is_none());
}

#[test]
fn chcontext_secure_contexts_get_their_own_user_namespace() {
    require_root!();
    let env = Env::new();
    let out = env.run("chcontext", &["--secure", "--silent", "--", PROBE, "inotify-hold", "0"]);
    assert!(out.stdout.starts_with("OK held"), "{out:?}");
    let out = env.run("chcontext", &["--secure", "--silent", "--", "cat", "/proc/self/uid_map"]);
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"],
        "{out:?}"
    );
    let mine = std::fs::read_link("/proc/self/ns/user").unwrap();
    let out = env.run("chcontext", &["--secure", "--silent", "--", "readlink", "/proc/self/ns/user"]);
    assert_ne!(out.line(), mine.to_str().unwrap(), "{out:?}");
    // Without --secure the context keeps host capabilities, so the host's namespace.
    let out = env.run("chcontext", &["--silent", "--", "readlink", "/proc/self/ns/user"]);
    assert_eq!(out.line(), mine.to_str().unwrap(), "{out:?}");
}

/// The guest's init, as a host pid.
fn guest_init(g: &TestGuest) -> u32 {
    let dir = g.context_dir().unwrap();
    vsbox::cgroup::procs(&dir)
        .unwrap()
        .into_iter()
        .find(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "vsbox-init"))
        .unwrap()
}
