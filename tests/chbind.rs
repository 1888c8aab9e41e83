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
    for other in ["10.1.2.3", "::1"] {
        let out = env.run("chbind", &["--silent", "--ip", &ip, "--", PROBE, "bind", other, "0", "tcp"]);
        assert!(out.stdout.starts_with("ERR E"), "bind {other}: {out:?}");
    }
    // 127.0.0.0/8 is the lock's own loopback: the bind succeeds there.
    for own in ["127.0.0.1", &loopback()] {
        let out = env.run("chbind", &["--silent", "--ip", &ip, "--", PROBE, "bind", own, "0", "tcp"]);
        assert!(out.stdout.starts_with("OK 127.0.0.1:"), "bind {own}: {out:?}");
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
    let other = host_probe(&["connect", "127.0.0.1", &port]);
    assert!(other.stdout.starts_with("ERR ECONNREFUSED"), "reachable on 127.0.0.1: {other:?}");
    let right = host_probe(&["connect", &ip, &port]);
    assert!(right.stdout.contains("answer=guest"), "{right:?}");
}

/// Runs `script` with sh in a network namespace of its own, whose lo is
/// up; everything it starts ends with it.
fn in_new_netns(env: &Env, script: &str) -> Out {
    let bin = env.dir.path().join("bin");
    Out::from(
        std::process::Command::new("unshare")
            .args(["--net", "--", "sh", "-c"])
            .arg(format!("ip link set lo up || exit 99\n{script}"))
            .env("PATH", format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()))
            .env("PROBE", PROBE)
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    )
}

#[test]
fn outgoing_traffic_leaves_from_the_locked_address() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    // Another machine's address (10.11.12.2), in a network namespace of
    // the test's: a TCP server there sees the client's source, and so
    // does a UDP receiver a datagram from an unbound socket.
    let out = in_new_netns(
        &env,
        &format!(
            "ip addr add 10.11.12.2/32 dev lo
            $PROBE serve 10.11.12.2 4100 remote >/dev/null &
            $PROBE udp-recv 10.11.12.2 5353 > udp.$$ &
            sleep 0.3
            chbind --silent --ip {ip} -- $PROBE connect 10.11.12.2 4100
            chbind --silent --ip {ip} -- $PROBE udp-send 10.11.12.2 5353
            wait; cat udp.$$; rm -f udp.$$"
        ),
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    assert_eq!(lines[0], format!("OK local={ip} answer=remote {ip}"), "{out:?}");
    assert!(lines[1].starts_with("OK sent"), "{out:?}");
    assert_eq!(lines[2..], ["READY".to_owned(), format!("OK from={ip}")], "{out:?}");
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_hosts_localhost_is_out_of_reach() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let probe = |args: &[&str]| Out::from(std::process::Command::new(PROBE).args(args).output().unwrap());
    let locked = |args: &[&str]| {
        let mut full = vec!["--silent", "--ip", &ip, "--ip", "fd00::1", "--", PROBE];
        full.extend_from_slice(args);
        env.run("chbind", &full)
    };
    // The host's services on 127.0.0.1, another 127/8 address and ::1.
    let other = loopback();
    for host_ip in ["127.0.0.1", other.as_str(), "::1"] {
        let mut server = Bg(std::process::Command::new(PROBE)
            .args(["serve", host_ip, "0", "host"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap());
        let port = read_line(&mut server.0).rsplit(':').next().unwrap().to_owned();
        // Refused as on a machine where nothing listens there (IPv6,
        // whose loopback the lock does not map, with EPERM).
        let out = locked(&["connect", host_ip, &port]);
        let want = if host_ip == "::1" { "ERR EPERM" } else { "ERR ECONNREFUSED" };
        assert!(out.stdout.starts_with(want), "{host_ip}: {out:?}");
        if host_ip == "127.0.0.1" {
            // Nor through an IPv6 socket and the IPv4-mapped address.
            let out = locked(&["connect", "::ffff:127.0.0.1", &port]);
            assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
        }
        // The host itself still gets its answer.
        let out = probe(&["connect", host_ip, &port]);
        assert!(out.stdout.contains("answer=host"), "{host_ip}: {out:?}");
    }
    // UDP likewise.
    let port = free_port().to_string();
    let mut rx = Bg(std::process::Command::new(PROBE)
        .args(["udp-recv", "127.0.0.1", &port])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(rx.0.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
    let out = locked(&["udp-send", "127.0.0.1", &port]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
    probe(&["udp-send", "127.0.0.1", &port]).ok();
    assert_eq!(lines.next().unwrap().unwrap(), "OK from=127.0.0.1");
    // `chbind --ip lo` asks for the host's loopback itself.
    let mut server = Bg(std::process::Command::new(PROBE)
        .args(["serve", "127.0.0.1", "0", "host"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    let port = read_line(&mut server.0).rsplit(':').next().unwrap().to_owned();
    let out = env.run("chbind", &["--silent", "--ip", "lo", "--", PROBE, "connect", "127.0.0.1", &port]);
    assert!(out.stdout.contains("answer=host"), "{out:?}");
}

#[test]
fn a_locked_commands_localhost_is_its_own() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let port = free_port();
    // A service on 127.0.0.1 and one on all addresses, each answering a
    // client of the same lock on 127.0.0.1, which sees 127.0.0.1 at both
    // ends, as on any machine; UDP too. The service's own view of its
    // address is 127.0.0.1 too.
    let script = format!(
        "$PROBE serve 127.0.0.1 {port} local &
        $PROBE serve 0.0.0.0 {p2} all &
        $PROBE udp-recv 127.0.0.1 {port} &
        sleep 0.3
        $PROBE connect-names 127.0.0.1 {port}
        $PROBE connect-names 127.0.0.1 {p2}
        $PROBE udp-send 127.0.0.1 {port} >/dev/null
        wait",
        p2 = port + 1
    );
    let out = env.run(
        "chbind",
        &["--silent", "--ip", &ip, "--", "sh", "-c", &script.replace("$PROBE", PROBE)],
    );
    let mut lines: Vec<&str> = out.stdout.lines().collect();
    lines.sort();
    let want = [
        format!("LISTEN 127.0.0.1:{port}"),
        format!("LISTEN {ip}:{}", port + 1),
        "OK from=127.0.0.1".to_owned(),
        "OK local=127.0.0.1 peer=127.0.0.1 answer=all 127.0.0.1".to_owned(),
        "OK local=127.0.0.1 peer=127.0.0.1 answer=local 127.0.0.1".to_owned(),
        "READY".to_owned(),
    ];
    assert_eq!(lines, want, "{out:?}");
}

#[test]
fn locks_on_loopback_addresses_reach_each_other_but_not_the_hosts_services() {
    require_root!();
    let env = Env::new();
    let (a, b) = (loopback(), loopback());
    let locked = |ip: &str, args: &[&str]| {
        let mut full = vec!["--silent", "--ip", ip, "--", PROBE];
        full.extend_from_slice(args);
        env.run("chbind", &full)
    };
    // A's service on all addresses (its address), and one on its 127.0.0.1.
    let mut server = Bg(env
        .cmd("chbind")
        .args(["--ip", &a, "--", PROBE, "serve", "0.0.0.0", "0", "a"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    let port = read_line(&mut server.0).rsplit(':').next().unwrap().to_owned();
    let mut err = std::io::BufRead::lines(std::io::BufReader::new(server.0.stderr.take().unwrap()));
    let lback_a = err.nth(1).unwrap().unwrap().split(' ').nth(3).unwrap().to_owned();
    let out = locked(&b, &["connect-names", &a, &port]);
    assert_eq!(out.line(), format!("OK local={b} peer={a} answer=a {b}"), "{out:?}");
    // Not A's own loopback, by its address.
    let udp = free_port().to_string();
    let mut rx = Bg(env
        .cmd("chbind")
        .args(["--silent", "--ip", &a, "--", PROBE, "udp-recv", "0.0.0.0", &udp])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(rx.0.stdout.take().unwrap()));
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
    locked(&b, &["udp-send", &a, &udp]).ok();
    assert_eq!(lines.next().unwrap().unwrap(), format!("OK from={b}"));
    let out = locked(&b, &["connect", &lback_a, &port]);
    assert!(out.stdout.starts_with("ERR ECONNREFUSED"), "{lback_a}: {out:?}");
    // A host service on a third loopback address stays out of reach.
    let host_ip = loopback();
    let mut host = Bg(std::process::Command::new(PROBE)
        .args(["serve", &host_ip, "0", "host"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    let host_port = read_line(&mut host.0).rsplit(':').next().unwrap().to_owned();
    let out = locked(&b, &["connect", &host_ip, &host_port]);
    assert!(out.stdout.starts_with("ERR ECONNREFUSED"), "{out:?}");
    let out = host_probe(&["connect", &host_ip, &host_port]);
    assert!(out.stdout.contains("answer=host"), "{out:?}");
}

#[test]
fn a_locked_localhost_service_is_reachable_from_nowhere_else() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let port = free_port().to_string();
    // Two locked commands serve 127.0.0.1 on the same port.
    let serve = |tag: &str| {
        let mut s = Bg(env
            .cmd("chbind")
            .args(["--ip", &ip, "--", PROBE, "serve", "127.0.0.1", &port, tag])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap());
        assert_eq!(read_line(&mut s.0), format!("LISTEN 127.0.0.1:{port}"));
        let mut err = std::io::BufRead::lines(std::io::BufReader::new(s.0.stderr.take().unwrap()));
        assert_eq!(err.next().unwrap().unwrap(), format!("ipv4root is now {ip}"));
        let line = err.next().unwrap().unwrap();
        let lback = line
            .strip_prefix("lback is now ")
            .unwrap()
            .trim_end_matches(" (its 127.0.0.1)")
            .to_owned();
        (s, lback)
    };
    let (_one, lback) = serve("one");
    let (_two, lback2) = serve("two");
    assert_ne!(lback, lback2);
    assert!(lback.starts_with("127.2"), "{lback}");
    let probe = |a: &str| host_probe(&["connect", a, &port]);
    // Not the host's 127.0.0.1, not the lock's address, not its loopback
    // address from outside (dropped: no answer), not another lock's.
    assert!(probe("127.0.0.1").stdout.starts_with("ERR ECONNREFUSED"));
    assert!(probe(&ip).stdout.starts_with("ERR ECONNREFUSED"));
    let out = probe(&lback);
    assert!(out.stdout.starts_with("ERR") && !out.stdout.contains("answer"), "{out:?}");
    for target in ["127.0.0.1", lback.as_str()] {
        let out = env.run("chbind", &["--silent", "--ip", &ip, "--", PROBE, "connect", target, &port]);
        assert!(out.stdout.starts_with("ERR ECONNREFUSED"), "{target}: {out:?}");
    }
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
    let v2 = vsbox::kernel::cgroup::Layout::detect().unwrap().v2;
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
    let v2 = vsbox::kernel::cgroup::Layout::detect().unwrap().v2;
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
    assert!(
        dir.is_dir() && vsbox::kernel::cgroup::populated(&dir),
        "the daemon's lock is in place"
    );
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
    let v2 = vsbox::kernel::cgroup::Layout::detect().unwrap().v2;
    assert!(eventually(5, || v2.join(&name).is_dir()));
    c.kill().unwrap();
    c.wait().unwrap();
    assert!(eventually(5, || !vsbox::kernel::cgroup::populated(&v2.join(&name))));
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
    let probe = |addr: &str| host_probe(&["connect", addr, &port]);
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

#[test]
fn closed_loopback_connections_leave_nothing_behind() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    // Connections to its own 127.0.0.1, each closed by the server first:
    // the client's FIN then meets a TIME_WAIT socket, whose ACK the kernel
    // sends from a socket of its own, unmarked — it must still end the
    // client's LAST_ACK.
    let out = env.run("chbind", &["--ip", &ip, "--", PROBE, "tcp-server-closes-first", "127.0.0.1", "20"]);
    assert_eq!(out.line(), "OK 20", "{out:?}");
    let lback: std::net::Ipv4Addr = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("lback is now "))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let hex = format!("{:08X}:", u32::from_le_bytes(lback.octets()));
    let last_ack = || {
        std::fs::read_to_string("/proc/net/tcp")
            .unwrap()
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && f[1].starts_with(&hex) && f[3] == "09"
            })
            .count()
    };
    assert!(
        eventually(2, || last_ack() == 0),
        "{} sockets of {lback} stuck in LAST_ACK",
        last_ack()
    );
}

#[test]
fn a_locked_localhost_udp_service_answers_its_clients_however_they_ask() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    let (p1, p2) = (free_port(), free_port());
    // A UDP service on 127.0.0.1 and one on all addresses, asked from
    // sockets no bind() touched, by sendto() and after connect(), and
    // from one bound to 0.0.0.0 (a DNS cache on 127.0.0.1 and the
    // resolvers that ask it): each answer comes back, from 127.0.0.1, as
    // on any machine.
    let script = format!(
        "$PROBE udp-echo 127.0.0.1 {p1} &
        $PROBE udp-echo 0.0.0.0 {p2} &
        sleep 0.3
        for p in {p1} {p2}; do for how in sendto connect bind; do $PROBE udp-ask 127.0.0.1 $p $how; done; done
        wait"
    );
    let out = env.run(
        "chbind",
        &["--silent", "--ip", &ip, "--", "sh", "-c", &script.replace("$PROBE", PROBE)],
    );
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.starts_with("READY")).collect();
    let want: Vec<String> = [p1, p1, p1, p2, p2, p2]
        .iter()
        .map(|p| format!("OK from=127.0.0.1:{p} answer=echo 127.0.0.1"))
        .collect();
    assert_eq!(lines, want, "{out:?}");
}

/// Runs `script` (sh, `$PROBE` the probe) under `chbind --ip IP`, once
/// the host has done `setup` with the lock's loopback address: the
/// script reads that address into $LB and what `setup` returned into $X.
/// Returns the script's output, the address and `setup`'s guard.
fn with_lock_lback<G>(env: &Env, ip: &str, script: &str, setup: impl FnOnce(&str) -> (String, G)) -> (Out, String, G) {
    let go = env.dir.path().join(format!("go.{}", loopback()));
    let full = format!(
        "while [ ! -s {f} ]; do sleep 0.05; done; read LB X < {f}\n{script}",
        f = go.display()
    );
    let mut lock = Bg(env
        .cmd("chbind")
        .args(["--ip", ip, "--", "sh", "-c", &full.replace("$PROBE", PROBE)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap());
    let mut err = std::io::BufRead::lines(std::io::BufReader::new(lock.0.stderr.take().unwrap()));
    let lb = err
        .find_map(|l| {
            l.ok()?
                .strip_prefix("lback is now ")
                .map(|l| l.split(' ').next().unwrap_or("").to_owned())
        })
        .expect("chbind names its loopback");
    let (x, guard) = setup(&lb);
    std::fs::write(&go, format!("{lb} {x}\n")).unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(lock.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let code = lock.0.wait().unwrap().code().unwrap_or(-1);
    (
        Out {
            code,
            stdout,
            stderr: err.map_while(Result::ok).collect::<Vec<_>>().join("\n"),
        },
        lb,
        guard,
    )
}

/// A host UDP receiver on IP:PORT (probe udp-recv), ready; its lines.
fn udp_receiver(ip: &str, port: &str) -> (Bg, impl Iterator<Item = String>) {
    let mut rx = Bg(std::process::Command::new(PROBE)
        .args(["udp-recv", ip, port])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap());
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(rx.0.stdout.take().unwrap())).map_while(Result::ok);
    assert_eq!(lines.next().as_deref(), Some("READY"));
    (rx, lines)
}

#[test]
fn raw_sockets_are_for_icmp_only_and_never_reach_the_hosts_loopback() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    // The way in, tried by the host itself: a datagram from a raw UDP
    // socket reaches a service on 127.0.0.1.
    let port = free_port().to_string();
    let (_rx, mut lines) = udp_receiver("127.0.0.1", &port);
    let out = host_probe(&["raw-udp", "127.0.0.1", "127.0.0.1", &port]);
    assert!(out.stdout.starts_with("OK"), "{out:?}");
    assert_eq!(lines.next().as_deref(), Some("OK from=127.0.0.1"));
    // Under the lock (its root keeps CAP_NET_RAW): no raw UDP socket to
    // send it from the lock's loopback address (which the packet filter
    // lets out), no IPPROTO_RAW, no IP_HDRINCL on a raw ICMP socket, no
    // ICMP into the host's loopback; ping of its own address works.
    let port = free_port().to_string();
    let (_rx, mut lines) = udp_receiver("127.0.0.1", &port);
    let script = format!(
        "$PROBE raw-udp $LB 127.0.0.1 {port}
        $PROBE raw-open 4 255
        $PROBE raw-hdrincl
        $PROBE ping $LB 127.0.0.1
        $PROBE ping {ip} {ip}"
    );
    let (out, _lb, ()) = with_lock_lback(&env, &ip, &script, |_| (String::new(), ()));
    let got: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(got, ["ERR EPERM", "ERR EPERM", "ERR EPERM", "ERR EPERM", "OK reply"], "{out:?}");
    assert!(out.stdout.ends_with(&format!("OK reply from={ip}\n")), "{out:?}");
    // Nothing arrived: the first datagram the receiver gets is the host's.
    host_probe(&["udp-send", "127.0.0.1", &port]).ok();
    assert_eq!(lines.next().as_deref(), Some("OK from=127.0.0.1"));
    // IPv6 likewise: ICMPv6 only.
    let v6 = |proto: &str| {
        env.run(
            "chbind",
            &["--silent", "--ip", &ip, "--ip", "fd00::5", "--", PROBE, "raw-open", "6", proto],
        )
    };
    assert!(v6("17").stdout.starts_with("ERR EPERM"), "{:?}", v6("17"));
    assert!(v6("58").stdout.starts_with("OK"), "{:?}", v6("58"));
}

#[test]
fn a_host_socket_on_a_locks_loopback_port_is_refused_at_once() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    // The host squats the lock's loopback address (TCP and UDP) and its
    // own address (TCP), where the lock has no service of its own: the
    // lock's 127.0.0.1 on those ports is refused at once, never a SYN
    // or datagram into the host's sockets (whose answers could not come
    // back: the connect would hang).
    let script = "set -- $X
        $PROBE connect 127.0.0.1 $1
        $PROBE connect 127.0.0.1 $2
        $PROBE udp-send 127.0.0.1 $3";
    let (out, lb, (_tcp, _tcp2, _rx, mut lines, ports)) = with_lock_lback(&env, &ip, script, |lb| {
        let serve = |at: &str| {
            let mut s = Bg(std::process::Command::new(PROBE)
                .args(["serve", at, "0", "host"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap());
            let port = read_line(&mut s.0).rsplit(':').next().unwrap().to_owned();
            (s, port)
        };
        let (tcp, p1) = serve(lb);
        let (tcp2, p2) = serve(&ip);
        let p3 = free_port().to_string();
        let (rx, lines) = udp_receiver(lb, &p3);
        let ports = [p1.clone(), p2.clone(), p3.clone()];
        (format!("{p1} {p2} {p3}"), (tcp, tcp2, rx, lines, ports))
    });
    let lines_out: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines_out.len(), 3, "{out:?}");
    assert!(lines_out[0].starts_with("ERR ECONNREFUSED"), "{out:?}");
    assert!(lines_out[1].starts_with("ERR ECONNREFUSED"), "{out:?}");
    assert!(lines_out[2].starts_with("ERR EPERM"), "{out:?}");
    // The host's sockets got nothing and still serve the host.
    let out = host_probe(&["connect", &lb, &ports[0]]);
    assert!(out.stdout.contains("answer=host"), "{out:?}");
    let out = host_probe(&["connect", &ip, &ports[1]]);
    assert!(out.stdout.contains("answer=host"), "{out:?}");
    host_probe(&["udp-send", &lb, &ports[2]]).ok();
    assert_eq!(lines.next().as_deref(), Some("OK from=127.0.0.1"));
}

#[test]
fn no_icmpv6_goes_into_the_hosts_ipv6_loopback() {
    require_root!();
    let env = Env::new();
    let ip = loopback();
    // In a network namespace of the test's, an IPv6 address of the
    // lock's: its root (CAP_NET_RAW kept) pings its own address, never
    // ::1, which the namespace's root itself reaches.
    let out = in_new_netns(
        &env,
        &format!(
            "ip addr add fd00::5/128 dev lo nodad || exit 98
            $PROBE ping fd00::5 ::1
            chbind --silent --ip {ip} --ip fd00::5 -- $PROBE ping fd00::5 fd00::5
            chbind --silent --ip {ip} --ip fd00::5 -- $PROBE ping fd00::5 ::1"
        ),
    );
    let got: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        got,
        ["OK reply from=::1", "OK reply from=fd00::5", "ERR EPERM Operation"],
        "{out:?}"
    );
}

/// A command locked to its addresses gets no packet socket (it would read
/// every packet of the host), though host root keeps CAP_NET_RAW; the host
/// itself can open one.
#[test]
fn chbind_refuses_packet_sockets() {
    require_root!();
    let env = Env::new();
    assert!(host_probe(&["packet-open", "all"]).stdout.starts_with("OK"));
    let ip = loopback();
    for how in ["all", "sock-packet"] {
        let out = env.run("chbind", &["--silent", "--ip", &ip, "--", PROBE, "packet-open", how]);
        assert!(out.stdout.starts_with("ERR EPERM"), "{how}: {out:?}");
    }
    // Nor through i386 socketcall(2), whose family the filter cannot see.
    let out = env.run(
        "chbind",
        &["--silent", "--ip", &ip, "--", PROBE, "socketcall-serve", "vsbox-chbind-sc", "x"],
    );
    assert!(out.stdout.starts_with("ERR ENOSYS"), "{out:?}");
    let out = env.run("chbind", &["--silent", "--ip", &ip, "--", PROBE, "ping", &ip, &ip]);
    assert!(out.stdout.starts_with("OK"), "{out:?}");
}

/// The host's 127.0.0.1 is not the lock's localhost: a host process that
/// binds 127.0.0.1 and connects to the lock's (non-loopback) address would
/// look to the lock's services like one of their own localhost clients. Its
/// packets are dropped; a client from the address itself gets through.
#[test]
fn a_host_client_from_127_0_0_1_does_not_pass_for_the_locks_localhost() {
    require_root!();
    let env = Env::new();
    // The lock's own loopback address is no secret (chbind and status
    // print it): from it, only the lock's own (marked) packets pass.
    let out = in_new_netns(
        &env,
        r#"ip addr add 10.11.14.2/32 dev lo
        d=$(mktemp -d); cd "$d"
        chbind --ip 10.11.14.2 -- sh -c "timeout 20 $PROBE serve 0.0.0.0 4277 guest >/dev/null &
            timeout 20 $PROBE serve 0.0.0.0 4278 guest >/dev/null &
            for i in 1 2 3 4 5 6 7 8 9 10; do $PROBE connect 127.0.0.1 4278 > own && grep -q ^OK own && break; sleep 0.2; done
            wait" 2> lb &
        for i in 1 2 3 4 5 6 7 8 9 10; do [ -s lb ] && break; sleep 0.1; done
        sleep 0.5
        LB=$(sed -n 's/^lback is now \([0-9.]*\).*/\1/p' lb)
        $PROBE connect-from 127.0.0.1 10.11.14.2 4277
        $PROBE connect-from $LB 10.11.14.2 4277
        $PROBE connect-from 10.11.14.2 10.11.14.2 4277
        wait; cat own; cd /; rm -rf "$d""#,
    );
    let got: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(got.len(), 4, "{out:?}");
    assert!(got[0].starts_with("ERR"), "from the host's 127.0.0.1: {out:?}");
    assert!(got[1].starts_with("ERR"), "from the lock's loopback, unmarked: {out:?}");
    assert_eq!(got[2], "OK answer=guest", "from the address itself: {out:?}");
    assert_eq!(got[3], "OK local=127.0.0.1", "the lock's own localhost client: {out:?}");
    assert!(out.stdout.lines().nth(3).is_some_and(|l| l.contains("answer=guest")), "{out:?}");
}
