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
    hold(g, "inotify-hold")
}

/// Starts `probe WHAT 30` in the guest (a "-hold" subcommand) and waits
/// for its first line.
fn hold(g: &TestGuest, what: &str) -> (Bg, String) {
    let mut c = g
        .env
        .cmd("vserver")
        .args([g.name.as_str(), "exec", "probe", what, "30"])
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
    // Its root is a host uid of its own; the reserved range is nobody's.
    let root = owner_of(&g);
    let out = g.run(&["exec", "cat", "/proc/self/uid_map"]);
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        [
            "0",
            &root.to_string(),
            "1",
            "1",
            "1",
            "2146435071",
            "2146500608",
            "2146500608",
            "2148466687"
        ],
        "{out:?}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(proc_uid(guest_init(&g)), Some(root));
    // What vsbox made for it is its root's: /dev, /run and their files.
    let out = g.run(&[
        "exec",
        "stat",
        "-c",
        "%u:%g %n",
        "/dev",
        "/dev/null",
        "/dev/shm",
        "/run",
        "/run/lock",
        "/proc/1",
    ]);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "0:0 /dev",
            "0:0 /dev/null",
            "0:0 /dev/shm",
            "0:0 /run",
            "0:0 /run/lock",
            "0:0 /proc/1"
        ],
        "{out:?}"
    );
    let out = g.run(&[
        "exec",
        "sh",
        "-c",
        "echo x > /run/x && mkdir /dev/shm/d && chown 1:1 /dev/null && echo ok",
    ]);
    assert_eq!(out.line(), "ok", "{out:?}");
    // vps tells the host's admin it is root.
    let init = guest_init(&g).to_string();
    let out = g.env.run("vps", &["--xid", &g.name, "-e", "-o", "pid,user"]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [init.as_str(), "root"]),
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
fn ping_with_cap_net_raw_in_a_guest_whose_root_is_its_own_and_the_lock_still_holds() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "usernsraw");
    let ip = loopback();
    g.conf(&format!("IPROOT={ip}\nS_CAPS=CAP_NET_RAW\n"));
    g.run(&["start"]).ok();
    let st = g.run(&["status"]);
    assert!(st.stdout.contains("user namespace: own (its root is host uid"), "{st:?}");
    // Its supervisor makes the raw socket, in the host's network
    // namespace, from inside the guest's cgroup: ping of its own address
    // works, and the lock's refusals apply to that socket as to any other.
    let out = g.run(&["exec", "probe", "ping", &ip, &ip]);
    assert!(out.stdout.starts_with(&format!("OK reply from={ip}")), "{out:?}");
    let out = g.run(&["exec", "probe", "raw-hdrincl"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
    let out = g.run(&["exec", "probe", "raw-open", "4", "17"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "raw UDP under the lock: {out:?}");
    let out = g.run(&["exec", "probe", "raw-open", "4", "1"]);
    assert!(out.stdout.starts_with("OK"), "raw ICMP: {out:?}");
    let out = g.run(&["exec", "probe", "packet-open", "packet"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
    // busybox ping, whose raw socket is unbound: its supervisor binds it
    // to the guest's address, whence the lock lets it leave.
    let out = g.run(&["exec", "ping", "-c", "1", "-W", "2", &ip]);
    assert_eq!(out.code, 0, "{out:?}");
    // Only for a caller holding CAP_NET_RAW in the guest's own namespace,
    // not in one it made itself, where it holds every capability.
    let out = g.run(&["suexec", "nobody", "probe", "raw-socket"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
    for who in [&["exec"][..], &["suexec", "nobody"]] {
        let mut args = who.to_vec();
        args.extend(["probe", "userns-socket", "raw"]);
        let out = g.run(&args);
        assert!(out.stdout.starts_with("ERR EPERM"), "{who:?}: {out:?}");
    }
    // A guest not granted it makes none.
    let plain = TestGuest::busybox(&env, "usernsnoraw");
    plain.conf("");
    plain.run(&["start"]).ok();
    let out = plain.run(&["exec", "probe", "raw-socket"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
    let out = plain.run(&["exec", "probe", "packet-open", "packet"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
    // Not even through a user namespace of its own: it would read every
    // packet of the host.
    for who in [&["exec"][..], &["suexec", "nobody"]] {
        let mut args = who.to_vec();
        args.extend(["probe", "userns-socket", "packet"]);
        let out = plain.run(&args);
        assert!(out.stdout.starts_with("ERR EPERM"), "{who:?}: {out:?}");
    }
}

#[test]
fn a_guest_granted_a_host_capability_keeps_it_and_says_it_shares_the_hosts_namespace() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "usernsmknod");
    g.conf("S_CAPS=CAP_MKNOD\n");
    g.run(&["start"]).ok();
    let out = g.run(&["exec", "probe", "mknod-open", "c", "1", "3", "/tmp/null"]);
    assert!(out.stdout.starts_with("OK"), "mknod with CAP_MKNOD: {out:?}");
    let st = g.run(&["status"]);
    assert!(st.stdout.contains("user namespace: the host's (S_CAPS grants CAP_MKNOD"), "{st:?}");
    assert_eq!(
        Some(std::fs::read_link("/proc/self/ns/user").unwrap().display().to_string()),
        proc_link(guest_init(&g), "ns/user")
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
    // Over the host's tree, its root is the host's (the identity map), but
    // for the range vsbox reserves for guests' roots.
    let out = env.run("chcontext", &["--secure", "--silent", "--", "cat", "/proc/self/uid_map"]);
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "2146435072", "2146500608", "2146500608", "2148466687"],
        "{out:?}"
    );
    let mine = std::fs::read_link("/proc/self/ns/user").unwrap();
    let out = env.run("chcontext", &["--secure", "--silent", "--", "readlink", "/proc/self/ns/user"]);
    assert_ne!(out.line(), mine.to_str().unwrap(), "{out:?}");
    // Without --secure the context keeps host capabilities, so the host's namespace.
    let out = env.run("chcontext", &["--silent", "--", "readlink", "/proc/self/ns/user"]);
    assert_eq!(out.line(), mine.to_str().unwrap(), "{out:?}");
}

#[test]
fn per_user_counters_of_the_host_uid_pipes_descriptors_in_flight_and_signals_are_each_guests_own() {
    require_root!();
    let env = Env::new();
    let a = TestGuest::busybox(&env, "uidhog");
    let b = TestGuest::busybox(&env, "uidother");
    a.conf("");
    b.conf("");
    a.run(&["start"]).ok();
    b.run(&["start"]).ok();
    // Pipe buffer pages (struct user_struct, per host uid; neither guest
    // root has the host's CAP_SYS_RESOURCE to pass the soft limit).
    let (_pipes, line) = hold(&a, "pipe-hold");
    assert!(line.starts_with("OK held") && !line.ends_with("one of 65536"), "{line}");
    let out = a.run(&["exec", "probe", "pipe-size"]);
    assert!(
        out.stdout.starts_with("OK pipe") && out.line() != "OK pipe 65536",
        "its own counter: {out:?}"
    );
    let out = b.run(&["exec", "probe", "pipe-size"]);
    assert_eq!(out.line(), "OK pipe 65536", "{out:?}");
    // Descriptors in flight on unix sockets (likewise per host uid).
    let (_fds, line) = hold(&a, "inflight-hold");
    assert!(line.ends_with("(ETOOMANYREFS)"), "{line}");
    let out = a.run(&["exec", "probe", "sendfd", "256"]);
    assert!(out.stdout.starts_with("ERR ETOOMANYREFS"), "its own counter: {out:?}");
    let out = b.run(&["exec", "probe", "sendfd", "256"]);
    assert_eq!(out.line(), "OK sent", "{out:?}");
    assert_eq!(host_probe(&["sendfd", "256"]).line(), "OK sent");
    // Pending signals (ucounts, charged to the receiver).
    let (_sigs, line) = hold(&a, "sigqueue-hold");
    assert!(line.ends_with("(EAGAIN)"), "{line}");
    let out = b.run(&["exec", "probe", "sigqueue"]);
    assert_eq!(out.line(), "OK queued", "{out:?}");
    assert_eq!(host_probe(&["sigqueue"]).line(), "OK queued");
    assert_ne!(owner_of(&a), owner_of(&b));
    let st = a.run(&["status"]);
    assert!(
        st.stdout
            .contains(&format!("user namespace: own (its root is host uid {}", owner_of(&a))),
        "{st:?}"
    );
}

#[test]
fn a_tree_whose_file_system_takes_no_idmapped_mounts_gets_the_identity_map() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "usernsram");
    g.conf("");
    // The guest's tree on ramfs, which takes no idmapped mounts.
    let root = g.root();
    let built = root.with_extension("built");
    std::fs::rename(&root, &built).unwrap();
    std::fs::create_dir(&root).unwrap();
    use nix::mount::{mount, MsFlags};
    mount(Some("none"), &root, Some("ramfs"), MsFlags::empty(), None::<&str>).unwrap();
    let _mounted = Unmount(root.clone());
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(built.join("."))
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success());
    g.run(&["start"]).ok();
    let st = g.run(&["status"]);
    assert!(
        st.stdout
            .contains("own, but its root is host uid 0: a file system in its tree takes no idmapped mounts"),
        "{st:?}"
    );
    // Its namespace's counters are still its own, and its files root's.
    let out = g.run(&["exec", "cat", "/proc/self/uid_map"]);
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "2146435072", "2146500608", "2146500608", "2148466687"],
        "{out:?}"
    );
    let (_held, line) = hog(&g);
    assert!(line.ends_with("(EMFILE)"), "{line}");
    assert!(host_inotify(), "host root got no inotify instance");
    g.run(&["exec", "touch", "/root/mine"]).ok();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(root.join("root/mine")).unwrap().uid(), 0);
    g.run(&["stop"]).ok();
}

#[test]
fn a_guest_tree_on_a_shared_mount_starts_with_its_own_root() {
    require_root!();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "usernsshared");
    g.conf("");
    // As systemd mounts /: shared, so that a copy of it is in the host's
    // peer group, which pivot_root refuses.
    use nix::mount::{mount, MsFlags};
    let dir = env.dir.path().join("vservers");
    mount(Some(&dir), &dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
    let _mounted = Unmount(dir.clone());
    mount(None::<&str>, &dir, None::<&str>, MsFlags::MS_SHARED, None::<&str>).unwrap();
    let out = g.run(&["start"]);
    assert_eq!(out.code, 0, "{out:?}");
    let st = g.run(&["status"]);
    assert!(st.stdout.contains("user namespace: own (its root is host uid"), "{st:?}");
    // Nothing the guest's setup mounted reached the host's side of the peer group.
    let here = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!here.contains(&format!("{}/proc", g.root().display())), "{here}");
    g.run(&["stop"]).ok();
}

/// The host uid of the guest's root: its user namespace's owner.
fn owner_of(g: &TestGuest) -> u32 {
    let map = proc_read(guest_init(g), "uid_map").unwrap();
    let root: u32 = map.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((0x7FF0_0000..0x7FF1_0000).contains(&root), "{map}");
    root
}

/// The guest's init, as a host pid.
fn guest_init(g: &TestGuest) -> u32 {
    let dir = g.context_dir().unwrap();
    vsbox::kernel::cgroup::procs(&dir)
        .unwrap()
        .into_iter()
        .find(|p| proc_read(*p, "comm").is_some_and(|c| c.trim() == "vsbox-init"))
        .unwrap()
}
