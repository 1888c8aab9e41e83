//! chbind on the real kernel, with loopback addresses only: the lock's
//! every rule next to an attempt to get around it.

mod common;
use common::*;
use std::process::Stdio;

#[test]
fn wildcard_bind_becomes_the_locked_address_and_others_fail() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let out = env.run("chbind", &["--ip", &ip, "--", PROBE, "bind", "0.0.0.0", "0", "tcp"]);
    assert!(out.stdout.starts_with(&format!("OK {ip}:")), "{out:?}");
    assert!(out.stderr.contains(&format!("ipv4root is now {ip}")), "{out:?}");
    let out = env.run("chbind", &["--silent", "--ip", &ip, "--", PROBE, "bind", "0.0.0.0", "0", "udp"]);
    assert!(out.stdout.starts_with(&format!("OK {ip}:")), "{out:?}");
    assert_eq!(out.stderr, "");
    for other in ["127.0.0.1", &loopback()] {
        let out = env.run("chbind", &["--silent", "--ip", &ip, "--", PROBE, "bind", other, "0", "tcp"]);
        assert!(out.stdout.starts_with("ERR EPERM"), "bind {other}: {out:?}");
    }
    // A second given address is allowed.
    let second = loopback();
    let out = env.run(
        "chbind",
        &["--silent", "--ip", &ip, "--ip", &second, "--", PROBE, "bind", &second, "0", "udp"],
    );
    assert!(out.stdout.starts_with(&format!("OK {second}:")), "{out:?}");
}

#[test]
fn no_escape_through_ipv6_when_only_ipv4_is_given() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let out = env.run("chbind", &["--silent", "--ip", &ip, "--", PROBE, "socket6"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
    let out = env.run("chbind", &["--silent", "--ip", &ip, "--", PROBE, "bind", "::", "0", "tcp"]);
    assert!(out.stdout.starts_with("ERR"), "{out:?}");
    // Allowed when an IPv6 address is given: :: becomes that address.
    let out = env.run(
        "chbind",
        &["--silent", "--ip", &ip, "--ip", "::1", "--", PROBE, "bind", "::", "0", "tcp"],
    );
    assert!(out.stdout.starts_with("OK [::1]:"), "{out:?}");
}

#[test]
fn server_on_wildcard_is_reachable_only_on_its_address() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let mut server = Bg(env
        .cmd("chbind")
        .args(["--silent", "--ip", &ip, "--", PROBE, "serve", "0.0.0.0", "0", "guest"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    let listen = read_line(&mut server.0);
    let port = listen.rsplit(':').next().unwrap().to_owned();
    assert_eq!(listen, format!("LISTEN {ip}:{port}"));
    let other = Out::from(
        std::process::Command::new(PROBE)
            .args(["connect", "127.0.0.1", &port])
            .output()
            .unwrap(),
    );
    assert!(other.stdout.starts_with("ERR ECONNREFUSED"), "reachable on 127.0.0.1: {other:?}");
    let right = Out::from(std::process::Command::new(PROBE).args(["connect", &ip, &port]).output().unwrap());
    assert!(right.stdout.contains("answer=guest"), "{right:?}");
}

#[test]
fn outgoing_traffic_leaves_from_the_locked_address() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    // TCP: a host server on 127.0.0.1 sees the client's source.
    let mut server = Bg(std::process::Command::new(PROBE)
        .args(["serve", "127.0.0.1", "0", "host"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    let port = read_line(&mut server.0).rsplit(':').next().unwrap().to_owned();
    let out = env.run("chbind", &["--silent", "--ip", &ip, "--", PROBE, "connect", "127.0.0.1", &port]);
    assert!(out.stdout.contains(&format!("local={ip} answer=host {ip}")), "{out:?}");
    // UDP from an unbound socket: the receiver (on the host) sees the source.
    let rx_ip = loopback();
    let mut rx = Bg(std::process::Command::new(PROBE)
        .args(["udp-recv", &rx_ip, "5353"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(rx.0.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
    let out = env.run("chbind", &["--silent", "--ip", &ip, "--", PROBE, "udp-send", &rx_ip, "5353"]);
    assert!(out.stdout.starts_with("OK"), "{out:?}");
    assert_eq!(lines.next().unwrap().unwrap(), format!("OK from={ip}"));
}

#[test]
fn the_lock_is_one_shot() {
    require_root!();
    let env = Env::new();
    let (ip, other) = (loopback(), loopback());
    let chbind = env.dir.path().join("bin/chbind");
    let out = env.run(
        "chbind",
        &[
            "--silent",
            "--ip",
            &ip,
            "--",
            chbind.to_str().unwrap(),
            "--ip",
            &other,
            "--",
            PROBE,
            "bind",
            "0.0.0.0",
            "0",
            "tcp",
        ],
    );
    assert_eq!(out.code, 125, "{out:?}");
    assert!(out.stderr.contains("one-shot"), "{out:?}");
    // Moving out of the lock's cgroup is refused to a root without
    // CAP_SYS_ADMIN (one with it could as well detach the programs).
    let v2 = vsbox::cgroup::Layout::detect().unwrap().v2;
    let escape = format!("echo $$ > {}/cgroup.procs && echo moved || echo refused", v2.display());
    let reducecap = env.dir.path().join("bin/reducecap");
    let out = env.run(
        "chbind",
        &[
            "--silent",
            "--ip",
            &ip,
            "--",
            reducecap.to_str().unwrap(),
            "--secure",
            "--",
            "sh",
            "-c",
            &escape,
        ],
    );
    assert!(out.stdout.contains("refused"), "{out:?}");
}

#[test]
fn device_names_mean_their_primary_address() {
    require_root!();
    let env = Env::new();
    let out = env.run("chbind", &["--ip", "lo", "--", PROBE, "bind", "0.0.0.0", "0", "tcp"]);
    assert!(out.stdout.starts_with("OK 127.0.0.1:"), "{out:?}");
}

#[test]
fn nothing_is_left_behind_even_by_a_daemon() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let v2 = vsbox::cgroup::Layout::detect().unwrap().v2;
    let daemon = format!("{PROBE} sleep 1 >/dev/null 2>&1 &");
    let mut c = env
        .cmd("chbind")
        .args(["--silent", "--ip", &ip, "--", "sh", "-c", &daemon])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let dir = v2.join(format!("vsbox-bind.{}", c.id()));
    assert!(c.wait().unwrap().success());
    // chbind has returned; the daemon still runs in the lock…
    assert!(dir.is_dir() && vsbox::cgroup::populated(&dir), "the daemon's lock is in place");
    // …and when it ends, the lock goes with it.
    assert!(eventually(10, || !dir.exists()), "{} outlived its processes", dir.display());
    let mut c = env
        .cmd("chbind")
        .args(["--silent", "--ip", &ip, "--", "/bin/true"])
        .spawn()
        .unwrap();
    let dir = v2.join(format!("vsbox-bind.{}", c.id()));
    assert!(c.wait().unwrap().success());
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn chbind_inside_a_context_keeps_the_context() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let chbind = env.dir.path().join("bin/chbind");
    let out = env.run(
        "chcontext",
        &[
            "--silent",
            "--",
            chbind.to_str().unwrap(),
            "--silent",
            "--ip",
            &ip,
            "--",
            PROBE,
            "pid",
        ],
    );
    // PID 3 in the context's own numbering (init 1, chbind 2): still inside it.
    assert_eq!(out.line(), "3", "{out:?}");
    let out = env.run(
        "chcontext",
        &[
            "--silent",
            "--",
            chbind.to_str().unwrap(),
            "--silent",
            "--ip",
            &ip,
            "--",
            PROBE,
            "bind",
            "0.0.0.0",
            "0",
            "udp",
        ],
    );
    assert!(out.stdout.starts_with(&format!("OK {ip}:")), "{out:?}");
}

#[test]
fn a_killed_chbind_leaves_nothing_after_the_next_run() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let mut c = env
        .cmd("chbind")
        .args(["--silent", "--ip", &ip, "--", PROBE, "sleep", "0.5"])
        .spawn()
        .unwrap();
    let name = format!("vsbox-bind.{}", c.id());
    let v2 = vsbox::cgroup::Layout::detect().unwrap().v2;
    assert!(eventually(5, || v2.join(&name).is_dir()));
    c.kill().unwrap();
    c.wait().unwrap();
    assert!(eventually(5, || !vsbox::cgroup::populated(&v2.join(&name))));
    env.run("chbind", &["--silent", "--ip", &ip, "--", "/bin/true"]).ok();
    assert!(!v2.join(&name).exists(), "{name} was not swept");
}

#[test]
fn a_socket_that_listens_without_binding_is_reachable_only_on_the_locked_address() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let mut server = Bg(env
        .cmd("chbind")
        .args(["--silent", "--ip", &ip, "--", PROBE, "serve-unbound", "guest"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    // The kernel bound it to the wildcard itself: no bind hook saw it.
    let listen = read_line(&mut server.0);
    let port = listen
        .strip_prefix("LISTEN 0.0.0.0:")
        .unwrap_or_else(|| panic!("{listen}"))
        .to_owned();
    let probe = |addr: &str| Out::from(std::process::Command::new(PROBE).args(["connect", addr, &port]).output().unwrap());
    let other = probe("127.0.0.1");
    assert!(other.stdout.starts_with("ERR"), "reachable on 127.0.0.1: {other:?}");
    let right = probe(&ip);
    assert!(right.stdout.contains("answer=guest"), "{right:?}");
}

#[test]
fn an_autobound_udp_socket_receives_only_for_its_addresses() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let bcast = loopback();
    // A UDP socket that sends before binding is bound by the kernel to the
    // wildcard, so it would receive datagrams for every host address; the
    // lock lets in only those for its address (and --bcast's).
    for with_bcast in [false, true] {
        let mut args = vec!["--silent", "--ip", ip.as_str()];
        if with_bcast {
            args.extend(["--bcast", bcast.as_str()]);
        }
        args.extend(["--", PROBE, "udp-autobound"]);
        let mut rx = Bg(env.cmd("chbind").args(&args).stdout(Stdio::piped()).spawn().unwrap());
        let line = read_line(&mut rx.0);
        let port: u16 = line.strip_prefix("PORT ").unwrap_or_else(|| panic!("{line}")).parse().unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for (to, what) in [("127.0.0.1", "host"), (ip.as_str(), "mine"), (bcast.as_str(), "bcast")] {
            tx.send_to(what.as_bytes(), (to, port)).unwrap();
        }
        // It ends after a second without datagrams.
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut rx.0.stdout.take().unwrap(), &mut rest).unwrap();
        let out: Vec<&str> = rest.lines().collect();
        let mut want = vec!["GOT mine"];
        if with_bcast {
            want.push("GOT bcast");
        }
        assert_eq!(out, want, "--bcast given: {with_bcast}");
    }
}
