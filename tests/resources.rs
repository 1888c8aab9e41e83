//! A guest's share of the machine (vserver.conf(5): MEM_LIMIT, SWAP_LIMIT,
//! CPU_WEIGHT, CPU_LIMIT, CPUSET, CGROUP) on whichever cgroup layout the
//! machine has — hybrid here, pure v2 in the kernel harness's VM — each
//! next to an attempt to get past it; `vserver NAME set` on a running
//! guest; bad values that change nothing.

mod common;
use common::*;
use std::sync::Mutex;

/// The CPU tests measure shares of the machine's CPUs, which the others'
/// busy guests would take a part of: one test at a time.
static CPUS: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    CPUS.lock().unwrap_or_else(|e| e.into_inner())
}

/// `start` refused (exit 1) with `why` in its error, no context left.
fn start_refused(g: &TestGuest, why: &str) -> Out {
    let out = g.run(&["start"]);
    assert_eq!(out.code, 1, "{why}: {out:?}");
    assert!(out.stderr.contains(why), "{why}: {out:?}");
    assert!(g.context_dir().is_none(), "{why}: a context was left");
    out
}

fn started<'a>(env: &'a Env, tag: &str, conf: &str) -> TestGuest<'a> {
    let g = TestGuest::busybox(env, tag);
    g.conf(conf);
    g.run(&["start"]).ok();
    g
}

/// The CPU seconds a `probe spin SECS` inside got.
fn spin(g: &TestGuest, secs: &str) -> f64 {
    let out = g.run(&["exec", "probe", "spin", secs]);
    out.ok();
    out.line()
        .split_whitespace()
        .find_map(|w| w.strip_prefix("cpu="))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"))
}

#[test]
fn a_memory_limit_stops_an_allocation_and_only_the_allocating_process() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let g = started(&env, "mem", "MEM_LIMIT=64M\nSWAP_LIMIT=0\n");
    g.service("keeper", "(probe sleep 600 &)", "true");
    g.run(&["restart"]).ok();
    let before = g.pids().len();
    // The attempt: 200 MiB in a 64 MiB server.
    let out = g.run(&["exec", "probe", "alloc", "200"]);
    assert!(!out.stdout.starts_with("OK"), "allocated past the limit: {out:?}");
    // Allowed: what fits.
    g.run(&["exec", "probe", "alloc", "16"]).ok();
    // Nor may it lift the limit itself: its cgroup files are out of reach.
    let out = g.run(&[
        "exec",
        "sh",
        "-c",
        "echo max > /sys/fs/cgroup/memory.max || echo -1 > /sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!g.run(&["exec", "probe", "alloc", "200"]).stdout.starts_with("OK"));
    // The server's other processes and the host carry on.
    assert_eq!(g.run(&["running"]).code, 0);
    assert!(g.pids().len() >= before, "{:?}", g.pids());
    assert!(host_probe(&["alloc", "200"]).stdout.starts_with("OK"));
    // It sees its own memory: busybox's free (sysinfo(2)), and the call
    // itself, with its own uptime and processes; the host sees the host's.
    // (Its "used" column takes the host's page cache from /proc/meminfo,
    // which is the host's without lxcfs, and may run into "total".)
    let free = g.run(&["exec", "free", "-k"]);
    let mem = free
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Mem:"))
        .unwrap_or_else(|| panic!("{free:?}"));
    assert!(mem.trim_start().starts_with("65536"), "{free:?}");
    let field = |out: &Out, k: &str| -> u64 {
        out.line()
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("{k}: {out:?}"))
    };
    let inside = g.run(&["exec", "probe", "sysinfo"]);
    let host = host_probe(&["sysinfo"]);
    assert_eq!(field(&inside, "total"), 64 << 20, "{inside:?}");
    assert!(field(&inside, "free") <= 64 << 20, "{inside:?}");
    assert!(
        field(&inside, "uptime") < 120 && field(&inside, "uptime") < field(&host, "uptime"),
        "{inside:?} {host:?}"
    );
    assert!(field(&inside, "procs") < 20, "{inside:?}");
    assert!(field(&host, "total") > 64 << 20, "{host:?}");
    // A buffer that is not there: EFAULT, as from the kernel.
    assert!(g.run(&["exec", "probe", "sysinfo-bad"]).stdout.starts_with("ERR EFAULT"));
    let st = g.run(&["status"]);
    let line = st
        .stdout
        .lines()
        .find(|l| l.starts_with("memory: "))
        .unwrap_or_else(|| panic!("{st:?}"));
    assert!(line.contains("limit 64M"), "{st:?}");
    let killed: u64 = line
        .rsplit_once("; ")
        .and_then(|(_, k)| k.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(killed >= 1 || out.stdout.starts_with("ERR ENOMEM"), "{st:?} {out:?}");
}

#[test]
fn vserver_set_raises_a_running_guests_memory_limit_and_saves_it_with_its_comments() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let g = started(&env, "memset", "# a small server\nMEM_LIMIT=32M # for now\nSWAP_LIMIT=0\n");
    assert!(!g.run(&["exec", "probe", "alloc", "64"]).stdout.starts_with("OK"));
    let out = g.run(&["set", "MEM_LIMIT=256M"]);
    out.ok();
    assert!(out.stdout.contains("until its next start"), "{out:?}");
    g.run(&["exec", "probe", "alloc", "64"]).ok();
    assert!(g.run(&["status"]).stdout.contains("limit 256M"));
    // A later change of the same controller keeps the earlier, unsaved one.
    g.run(&["set", "SWAP_LIMIT=0"]).ok();
    assert!(g.run(&["status"]).stdout.contains("limit 256M"));
    g.run(&["exec", "probe", "alloc", "64"]).ok();
    // Other cgroup files set live show in status too.
    g.run(&["set", "CGROUP=pids.max=50"]).ok();
    let st = g.run(&["status"]);
    assert!(st.stdout.contains("cgroup: pids.max=50\n"), "{st:?}");
    // The file is unchanged without --save, and keeps its comments with it.
    assert!(std::fs::read_to_string(g.conf_path()).unwrap().contains("MEM_LIMIT=32M # for now"));
    g.run(&["set", "--save", "MEM_LIMIT=128M", "CPU_WEIGHT=200"]).ok();
    assert_eq!(
        std::fs::read_to_string(g.conf_path()).unwrap(),
        "# a small server\nMEM_LIMIT=128M # for now\nSWAP_LIMIT=0\nCPU_WEIGHT=200\n"
    );
    let st = g.run(&["status"]);
    assert!(st.stdout.contains("limit 128M") && st.stdout.contains("weight 200"), "{st:?}");
    let json = g.run(&["status", "--json"]);
    json.ok();
    for want in [
        format!("\"name\":\"{}\",\"running\":true", g.name),
        format!("\"limit\":{},\"oom_kills\":", 128u64 << 20),
        "\"weight\":200".to_owned(),
    ] {
        assert!(json.stdout.contains(&want), "{want}: {json:?}");
    }
    assert!(
        json.stdout.starts_with('{') && json.stdout.ends_with("}\n") && json.stdout.lines().count() == 1,
        "{json:?}"
    );
    assert_eq!(g.run(&["status", "--yaml"]).code, 2);
    // Bad input: exit 2, nothing changed.
    for bad in [
        &["set", "MEM_LIMIT=lots"][..],
        &["set", "CPU_LIMIT=-1"],
        &["set", "CPUSET=9-3"],
        &["set", "CGROUP=memory.bogus=1"],
        &["set", "S_NICE=3"],
        &["set"],
        &["set", "--sav", "MEM_LIMIT=1G"],
    ] {
        let out = g.run(bad);
        assert_eq!(out.code, 2, "{bad:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    }
    assert!(g.run(&["status"]).stdout.contains("limit 128M"));
    assert!(std::fs::read_to_string(g.conf_path())
        .unwrap()
        .contains("MEM_LIMIT=128M # for now\n"));
    // A --save whose file cannot be written changes nothing live either.
    let ro = env.dir.path().join("ro");
    let ro_fs = Mounted::tmpfs(&ro);
    let conf = g.conf_path();
    std::fs::copy(&conf, ro.join("memset.conf")).unwrap();
    std::fs::remove_file(&conf).unwrap();
    std::os::unix::fs::symlink(ro.join("memset.conf"), &conf).unwrap();
    let remount = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&ro)
        .status()
        .unwrap();
    assert!(remount.success());
    let out = g.run(&["set", "--save", "MEM_LIMIT=200M"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(g.run(&["status"]).stdout.contains("limit 128M"), "the live change was kept");
    std::fs::remove_file(&conf).unwrap();
    std::fs::copy(ro.join("memset.conf"), &conf).unwrap();
    drop(ro_fs);
    // A stopped server can only be saved to.
    g.run(&["stop"]).ok();
    let out = g.run(&["set", "MEM_LIMIT=1G"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("--save"), "{out:?}");
}

#[test]
fn a_limit_set_on_a_running_guest_without_one_takes_hold() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let g = started(&env, "memlive", "");
    g.run(&["exec", "probe", "alloc", "64"]).ok();
    g.run(&["set", "MEM_LIMIT=32M", "SWAP_LIMIT=0"]).ok();
    assert!(!g.run(&["exec", "probe", "alloc", "64"]).stdout.starts_with("OK"));
    g.run(&["exec", "probe", "alloc", "8"]).ok();
}

#[test]
fn cpu_limit_holds_a_busy_loop_to_its_share() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let g = started(&env, "cpulim", "CPU_LIMIT=0.5\n");
    let got = spin(&g, "3");
    assert!((1.2..=1.8).contains(&got), "0.5 CPUs for 3 s gave {got} CPU-seconds");
    assert!(g.run(&["status"]).stdout.contains("at most 0.5 CPUs"));
    // A change with a bad part changes nothing: the limit stays. A CPU
    // the machine lacks is found before anything is written; a value the
    // kernel refuses (pids.max takes a number) after the CPU limit was.
    let out = g.run(&["set", "CPU_LIMIT=0.2", "CPUSET=4000"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("this machine has no CPU 4000"), "{out:?}");
    let out = g.run(&["set", "CPU_LIMIT=0.2", "CGROUP=pids.max=many"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(g.run(&["status"]).stdout.contains("at most 0.5 CPUs"));
    // Lifted live: the same loop gets a whole CPU (or close).
    g.run(&["set", "CPU_LIMIT="]).ok();
    let got = spin(&g, "2");
    assert!(got > 1.2, "without a limit: {got} CPU-seconds in 2 s");
}

#[test]
fn cpu_weights_split_busy_cpus_one_to_four() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let light = started(&env, "cpuw1", "CPU_WEIGHT=100\n");
    let heavy = started(&env, "cpuw4", "CPU_WEIGHT=400\n");
    // Two busy loops each on the two CPUs.
    let loops: Vec<_> = [&light, &light, &heavy, &heavy]
        .iter()
        .map(|g| {
            g.env
                .cmd("vserver")
                .args([g.name.as_str(), "exec", "probe", "spin", "4"])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let cpu: Vec<f64> = loops
        .into_iter()
        .map(|c| {
            let out = Out::from(c.wait_with_output().unwrap());
            out.line()
                .split_whitespace()
                .find_map(|w| w.strip_prefix("cpu=")?.parse().ok())
                .unwrap_or_else(|| panic!("{out:?}"))
        })
        .collect();
    let (l, h) = (cpu[0] + cpu[1], cpu[2] + cpu[3]);
    let ratio = h / l;
    assert!(
        (3.0..=5.0).contains(&ratio),
        "weights 400:100 gave {h:.2}:{l:.2} CPU-seconds ({ratio:.2})"
    );
}

#[test]
fn a_cpuset_is_what_the_guest_counts() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let g = started(&env, "cpuset", "CPUSET=0\n");
    assert_eq!(g.run(&["exec", "nproc"]).line(), "1");
    // The guest's root cannot widen it (no CAP_SYS_NICE, and the cgroup
    // bounds it anyway).
    let out = g.run(&["exec", "taskset", "-p", "3", "1"]);
    assert_eq!(g.run(&["exec", "nproc"]).line(), "1", "{out:?}");
    // Lifted live: every CPU again.
    let host = String::from_utf8(std::process::Command::new("nproc").output().unwrap().stdout).unwrap();
    g.run(&["set", "CPUSET="]).ok();
    assert_eq!(g.run(&["exec", "nproc"]).line(), host.trim());
}

/// A server that keeps the host's user namespace (S_CAPS grants a
/// capability that counts only there) makes none of its own, in which its
/// root could mount its cgroups writable and lift its limits; a server
/// with its own may nest one.
#[test]
fn a_server_in_the_hosts_user_namespace_cannot_make_one_to_lift_its_limits() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let host_ns = started(&env, "hostns", "S_CAPS=CAP_MKNOD\nMEM_LIMIT=64M\n");
    let out = host_ns.run(&["exec", "probe", "unshare", "user"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
    let out = host_ns.run(&["exec", "unshare", "-U", "-r", "true"]);
    assert_ne!(out.code, 0, "{out:?}");
    let own = started(&env, "ownns", "MEM_LIMIT=64M\n");
    own.run(&["exec", "probe", "unshare", "user"]).ok();
    // And no disk quota for it: its root could undo that too.
    host_ns.run(&["stop"]).ok();
    host_ns.conf("S_CAPS=CAP_MKNOD\nDISK_LIMIT=1G\n");
    let out = host_ns.run(&["start"]);
    assert!(out.code != 0 && out.stderr.contains("own user namespace"), "{out:?}");
}

#[test]
fn malformed_limits_stop_the_start_and_change_nothing() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let g = TestGuest::busybox(&env, "badlim");
    for (conf, key) in [
        ("MEM_LIMIT=lots\n", "MEM_LIMIT"),
        ("S_NICE=1\nCPU_LIMIT=-1\n", "CPU_LIMIT"),
        ("CPUSET=9-3\n", "CPUSET"),
        ("CPU_WEIGHT=0\n", "CPU_WEIGHT"),
        ("CGROUP=\"pids.max=5 memory.nonsense=1\"\n", "CGROUP"),
        ("MEM_LIMIT=512K\n", "MEM_LIMIT"),
        ("CPU_WEIGHT=+5\n", "CPU_WEIGHT"),
        ("CGROUP=\"pids.max=5 pids.max=6\"\n", "CGROUP"),
        ("MEM_LIMIT=1G\nCGROUP=memory.max=2G\n", "CGROUP"),
    ] {
        g.conf(conf);
        let line = conf.lines().position(|l| l.starts_with(key)).unwrap() + 1;
        start_refused(&g, &format!("{}:{line}: {key}", g.conf_path().display()));
    }
    // Found from the file as a whole (no line): the host's CAP_SYS_ADMIN
    // with limits, a CPU this machine does not have, and where memory is
    // on cgroup v1 a swap limit without a memory limit.
    let mut cases = vec![
        (
            "S_CAPS=CAP_SYS_ADMIN\nCPU_LIMIT=0.5\n",
            "MEM_LIMIT, SWAP_LIMIT, CPU_WEIGHT, CPU_LIMIT, CPUSET and CGROUP cannot hold",
        ),
        ("CPUSET=4000\n", "CPUSET: this machine has no CPU 4000 (it has 0"),
    ];
    if std::path::Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        cases.push(("SWAP_LIMIT=100M\n", "SWAP_LIMIT needs MEM_LIMIT"));
    }
    for (conf, why) in cases {
        g.conf(conf);
        start_refused(&g, &format!("{}: {why}", g.conf_path().display()));
    }
    // Running: a slip in its configuration does not make it look stopped.
    g.conf("MEM_LIMIT=64M\n");
    g.run(&["start"]).ok();
    g.conf("MEM_LIMIT=lots\n");
    assert_eq!(g.run(&["running"]).code, 0);
    let st = g.run(&["status"]);
    assert_eq!(st.code, 0, "{st:?}");
    assert!(st.stdout.starts_with(&format!("Server {} is running\n", g.name)), "{st:?}");
    assert!(st.stdout.contains("configuration: ") && st.stdout.contains("MEM_LIMIT"), "{st:?}");
    assert!(g.run(&["status", "--json"]).stdout.contains("\"config_error\":"));
    g.conf("MEM_LIMIT=64M\n");
    g.run(&["stop"]).ok();
}

/// The attempt: 40 MiB in a server allowed 20 MiB more than its tree
/// holds stops near those 20 with `errno` (EDQUOT; xfs says ENOSPC for a
/// project quota, xfs_quota(8)).
fn write_past_the_limit(g: &TestGuest, errno: &str) {
    let out = g.run(&["exec", "probe", "fill", "/big", "40"]);
    let written: u32 = out
        .line()
        .rsplit_once("written=")
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or_else(|| panic!("{out:?}"));
    assert!(out.stdout.starts_with(&format!("ERR {errno} ")), "{out:?}");
    assert!((12..=21).contains(&written), "stopped at {written} MiB: {out:?}");
}

/// The bytes of the files under `dir` (symlinks not followed).
fn walk_bytes(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.path().symlink_metadata().unwrap();
        n += if m.is_dir() { walk_bytes(&e.path()) } else { m.len() };
    }
    n
}

/// The referenced-bytes qgroup of the btrfs subvolume at `root`, as sysfs
/// shows it (None: no such qgroup).
fn qgroup_dir(root: &std::path::Path) -> Option<std::path::PathBuf> {
    let dir = std::fs::File::open(root).ok()?;
    let id = vsbox::sys::btrfs_subvol_id(&dir).ok()?;
    let fsid = vsbox::sys::btrfs_fsid(&dir).ok()?;
    Some(std::path::PathBuf::from(format!("/sys/fs/btrfs/{fsid}/qgroups/0_{id}")))
}

#[test]
fn a_disk_limit_on_btrfs_stops_writes_near_it_and_deleting_frees_the_space() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let fs = Mounted::btrfs(&env.dir.path().join("vservers"), 512);
    let g = TestGuest::busybox(&env, "disk");
    let other = TestGuest::busybox(&env, "disk2");
    // Built as subvolumes, so each can have a quota of its own.
    for t in [&g, &other] {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(t.root()).unwrap().ino(), 256, "{} is a subvolume", t.name);
    }
    // 20 MiB more than the tree holds now (vsbox's own binary in it is
    // large in a debug build).
    let base: u64 = walk_bytes(&g.root()) >> 20;
    g.conf(&format!("DISK_LIMIT={}M\n", base + 20));
    g.run(&["start"]).ok();
    other.run(&["start"]).ok();
    let qgroup = qgroup_dir(&g.root()).expect("the server's qgroup");
    assert!(qgroup.is_dir(), "{qgroup:?}");
    // The attempt: 40 MiB in a 20 MiB server.
    write_past_the_limit(&g, "EDQUOT");
    let st = g.run(&["status"]);
    let limit = format!("limit {}M", base + 20);
    assert!(st.stdout.lines().any(|l| l.starts_with("disk: ") && l.ends_with(&limit)), "{st:?}");
    // vdu reports the use against the limit too.
    let root = g.root();
    let du = env.run("vdu", &["-q", root.to_str().unwrap()]);
    du.ok();
    assert!(
        du.line().contains("\tquota: ") && du.line().ends_with(&format!(" of {}K", (base + 20) << 10)),
        "{du:?}"
    );
    // Deleting frees it again.
    g.run(&["exec", "rm", "/big"]).ok();
    nix::unistd::sync();
    assert!(
        eventually(10, || g.run(&["exec", "probe", "fill", "/again", "10"]).stdout.starts_with("OK")),
        "the space came back"
    );
    // Another server is unaffected.
    other.run(&["exec", "probe", "fill", "/big", "40"]).ok();
    // Nor can the server put files out of its quota's sight in a
    // subvolume of its own.
    let out = g.run(&["exec", "probe", "subvol-create", "/", "escape"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
    // Raised live, with --save.
    g.run(&["set", "--save", &format!("DISK_LIMIT={}M", base + 100)]).ok();
    g.run(&["exec", "probe", "fill", "/more", "30"]).ok();
    // Lowered below what it uses, then raised again: a server over its
    // limit can still have it changed (and be started).
    g.run(&["set", "DISK_LIMIT=1M"]).ok();
    g.run(&["set", &format!("DISK_LIMIT={}M", base + 100)]).ok();
    g.run(&["set", "DISK_LIMIT=1M"]).ok();
    g.run(&["restart"]).ok();
    // btrfs has no inode limits: a clear error, nothing started.
    g.run(&["stop"]).ok();
    g.conf("DISK_INODES=1000\n");
    start_refused(&g, "btrfs has no inode limits");
    // Deleting the server removes its qgroup.
    let out = g.run(&["delete", "--force"]);
    out.ok();
    assert!(!qgroup.exists(), "the qgroup of the deleted server is left: {qgroup:?}");
    drop((other, g));
    drop(fs);
}

#[test]
fn a_disk_limit_where_no_backend_fits_is_one_clear_error() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let _fs = Mounted::tmpfs(&env.dir.path().join("vservers"));
    let g = TestGuest::busybox(&env, "nodisk");
    g.conf("DISK_LIMIT=20M\n");
    let out = start_refused(&g, "cannot limit");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

/// ext4's and xfs's project quotas need kernel quota support, which the
/// kernel harness's VM has (these tests run there too) and a machine's
/// kernel may lack: there the limit is one clear error, nothing started.
#[test]
fn a_disk_limit_on_ext4_is_a_project_quota_that_df_inside_shows() {
    a_disk_limit_is_a_project_quota_that_df_inside_shows("ext4", Mounted::ext4_with_project_quota, Mounted::ext4);
}

#[test]
fn a_disk_limit_on_xfs_is_a_project_quota_that_df_inside_shows() {
    a_disk_limit_is_a_project_quota_that_df_inside_shows("xfs", Mounted::xfs_with_project_quota, Mounted::xfs);
}

fn a_disk_limit_is_a_project_quota_that_df_inside_shows(
    kind: &str,
    with_quota: fn(&std::path::Path, u64) -> Option<Mounted>,
    without: fn(&std::path::Path, u64) -> Mounted,
) {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let at = env.dir.path().join("vservers");
    let Some(fs) = with_quota(&at, 256) else {
        let _plain = without(&at, 64);
        let g = TestGuest::busybox(&env, &format!("noprj{kind}"));
        g.conf("DISK_LIMIT=20M\n");
        start_refused(&g, "has no project quotas");
        eprintln!("NOTE: this kernel mounts no {kind} with project quotas; its refusal was tested");
        return;
    };
    let g = TestGuest::busybox(&env, &format!("prj{kind}"));
    let other = TestGuest::busybox(&env, &format!("prj{kind}2"));
    let base: u64 = walk_bytes(&g.root()) >> 20;
    g.conf(&format!("DISK_LIMIT={}M\nDISK_INODES=5000\n", base + 20));
    g.run(&["start"]).ok();
    other.run(&["start"]).ok();
    write_past_the_limit(&g, if kind == "xfs" { "ENOSPC" } else { "EDQUOT" });
    // df inside shows the limit (ext4 and xfs report a project's quota as
    // the size of a directory that inherits it).
    let df = g.run(&["exec", "df", "-k", "/"]);
    let size_kib: u64 = df
        .stdout
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("{df:?}"));
    assert_eq!(size_kib, (base + 20) * 1024, "{df:?}");
    let st = g.run(&["status"]);
    assert!(
        st.stdout
            .lines()
            .any(|l| l.starts_with("disk: ") && l.ends_with(&format!("limit {}M", base + 20))),
        "{st:?}"
    );
    let root = g.root();
    let du = env.run("vdu", &["-q", root.to_str().unwrap()]);
    du.ok();
    assert!(
        du.line().contains(&format!(" of {}K, ", (base + 20) << 10)) && du.line().ends_with(" of 5000 inodes"),
        "{du:?}"
    );
    g.run(&["exec", "rm", "/big"]).ok();
    g.run(&["exec", "probe", "fill", "/again", "10"]).ok();
    other.run(&["exec", "probe", "fill", "/big", "40"]).ok();
    // Its root cannot move its files out of its project.
    let out = g.run(&["exec", "probe", "set-projid", "/again", "0"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
    drop((other, g));
    drop(fs);
}

/// A server moved from util-vserver keeps its disk limit: its
/// CONFDIR/NAME/dlimits/N/ entry (vdlimit's) when NAME.conf has no
/// DISK_LIMIT; btrfs leaves its inodes_total out.
#[test]
fn util_vservers_dlimits_give_a_disk_limit() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let fs = Mounted::btrfs(&env.dir.path().join("vservers"), 256);
    let g = TestGuest::busybox(&env, "dlim");
    let base: u64 = walk_bytes(&g.root()) >> 20;
    let entry = env.dir.path().join("etc").join(&g.name).join("dlimits/0");
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::write(entry.join("directory"), format!("{}\n", g.root().display())).unwrap();
    std::fs::write(entry.join("space_total"), format!("{}\n", (base + 20) * 1024)).unwrap();
    std::fs::write(entry.join("inodes_total"), "100000\n").unwrap();
    std::fs::write(entry.join("reserved"), "5\n").unwrap();
    g.run(&["start"]).ok();
    let st = g.run(&["status"]);
    assert!(
        st.stdout
            .lines()
            .any(|l| l.starts_with("disk: ") && l.ends_with(&format!("limit {}M", base + 20))),
        "{st:?}"
    );
    write_past_the_limit(&g, "EDQUOT");
    // A NAME.conf key wins over it.
    g.run(&["stop"]).ok();
    g.conf(&format!("DISK_LIMIT={}M\n", base + 100));
    g.run(&["start"]).ok();
    assert!(g.run(&["status"]).stdout.contains(&format!("limit {}M", base + 100)));
    drop(g);
    drop(fs);
}

/// lxcfs, started for the test (or the host's own), and stopped after.
struct Lxcfs {
    at: std::path::PathBuf,
    daemon: Option<std::process::Child>,
}

impl Lxcfs {
    /// None when lxcfs is not installed (the kernel harness's VM).
    fn start(env: &Env) -> Option<Lxcfs> {
        let lxcfs_at = || -> Vec<std::path::PathBuf> {
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .filter(|l| l.contains(" - fuse.lxcfs ") && l.split(' ').nth(3) == Some("/") && l.contains("user_id=0,"))
                .map(|l| std::path::PathBuf::from(l.split(' ').nth(4).unwrap()))
                .collect()
        };
        if let Some(at) = lxcfs_at().into_iter().find(|at| std::fs::metadata(at.join("proc/meminfo")).is_ok()) {
            eprintln!("NOTE: the host's lxcfs runs: using it");
            return Some(Lxcfs { at, daemon: None });
        }
        let at = env.dir.path().join("lxcfs");
        std::fs::create_dir_all(&at).unwrap();
        let daemon = std::process::Command::new("lxcfs")
            .arg(&at)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let l = Lxcfs { at, daemon: Some(daemon) };
        assert!(eventually(10, || lxcfs_at().contains(&l.at)), "lxcfs mounted {}", l.at.display());
        Some(l)
    }

    /// The /proc files this lxcfs has.
    fn files(&self) -> usize {
        std::fs::read_dir(self.at.join("proc")).unwrap().count()
    }

    /// Stops the test's own lxcfs; false for the host's.
    fn stop(&mut self) -> bool {
        let Some(mut d) = self.daemon.take() else { return false };
        let _ = d.kill();
        let _ = d.wait();
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.at).status();
        true
    }
}

impl Drop for Lxcfs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// procps `free` and `top` read /proc/meminfo and the others, which lxcfs
/// answers from the reader's cgroups when it runs on the host; without
/// it they are the host's, and `status` says so.
#[test]
fn procs_meminfo_is_lxcfss_where_it_runs_and_status_tells_which() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let mem_total = |g: &TestGuest| {
        let out = g.run(&["exec", "head", "-n1", "/proc/meminfo"]);
        out.line()
            .split_whitespace()
            .nth(1)
            .and_then(|k| k.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{out:?}"))
    };
    // On the patched kernel lxcfs cannot see a server's processes: not
    // used, whether it runs or not.
    let lxcfs = if patched() { None } else { Lxcfs::start(&env) };
    let Some(mut lxcfs) = lxcfs else {
        let g = started(&env, "nolxcfs", "MEM_LIMIT=64M\n");
        assert_ne!(mem_total(&g), 64 << 10, "the host's /proc/meminfo");
        let st = g.run(&["status"]);
        assert!(
            st.stdout
                .contains("/proc: meminfo, cpuinfo, stat, uptime, loadavg, diskstats, swaps are the host's"),
            "{st:?}"
        );
        assert!(g.run(&["status", "--json"]).stdout.contains("\"proc\":\"host\""));
        // sysinfo(2) tells the truth all the same.
        assert!(g.run(&["exec", "free", "-k"]).stdout.contains("65536"));
        eprintln!("NOTE: no lxcfs here (or the patched kernel); the server without it was tested");
        return;
    };
    let g = started(&env, "lxcfs", "MEM_LIMIT=64M\n");
    assert_eq!(mem_total(&g), 64 << 10);
    let st = g.run(&["status"]);
    assert!(st.stdout.contains("/proc: meminfo, cpuinfo, stat, uptime, loadavg"), "{st:?}");
    assert!(st.stdout.contains(" from lxcfs\n"), "{st:?}");
    assert!(g.run(&["status", "--json"]).stdout.contains("\"proc\":\"bound\""));
    // The attempts: its root takes the binds away, makes them writable,
    // or writes through them.
    for attack in [
        "umount /proc/meminfo",
        "umount -l /proc/meminfo",
        "mount -o remount,rw,bind /proc/meminfo",
        "echo x > /proc/meminfo",
    ] {
        let out = g.run(&["exec", "sh", "-c", attack]);
        assert_ne!(out.code, 0, "{attack}: {out:?}");
    }
    assert_eq!(mem_total(&g), 64 << 10);
    // Nor does it see lxcfs's other files (its cgroup tree, other
    // readers' figures): only the bound files came in.
    let out = g.run(&["exec", "sh", "-c", "grep -c lxcfs /proc/mounts"]);
    assert_eq!(out.line(), lxcfs.files().min(7).to_string(), "{out:?}");
    // The allowed: the server's own limit, raised live, shows at once.
    g.run(&["set", "MEM_LIMIT=96M"]).ok();
    assert_eq!(mem_total(&g), 96 << 10);
    // vserver-stat inside counts on the boot clock, not lxcfs's uptime
    // (the server's): its processes started a moment ago, not in the future.
    let vsbox = "/usr/lib/vsbox/vsbox";
    let out = g.run(&["exec", vsbox, "vserver-stat"]);
    out.ok();
    let uptime = out
        .stdout
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(6))
        .unwrap_or_default();
    assert!(uptime.starts_with("0m") && uptime != "0m00s00", "{out:?}");
    // lxcfs stops: the binds cannot be read, and status says to restart.
    if lxcfs.stop() {
        let st = g.run(&["status"]);
        assert!(st.stdout.contains("has stopped since the server started"), "{st:?}");
        g.run(&["restart"]).ok();
        assert_ne!(mem_total(&g), 64 << 10);
        assert!(g.run(&["status"]).stdout.contains("are the host's (no lxcfs runs"));
    }
    g.run(&["stop"]).ok();
}

/// A command entering a server with a memory limit joins its memory
/// cgroup whatever the server's record (trusted.vsbox.context on its lock
/// file) leaves out or adds: a record without the memory directory, with
/// only the v2 one, with a cgroup of the same name elsewhere, or with a
/// directory twice, is not used (and the command is limited all the same).
#[test]
fn an_incomplete_record_of_a_limited_server_does_not_lift_its_limit() {
    require_root!();
    let _one = one_at_a_time();
    let env = Env::new();
    let g = started(&env, "memrec", "MEM_LIMIT=32M\nSWAP_LIMIT=0\n");
    let record = context_record(&g).unwrap();
    let lines: Vec<&str> = record.lines().collect();
    let xid = lines[0].rsplit('/').next().unwrap();
    // Elsewhere in a v1 hierarchy (the memory one when there is one), named
    // like the context's directory.
    let memory = lines.iter().find(|l| l.contains("/memory/")).map(|l| l.to_string());
    let elsewhere = memory.as_ref().map(|m| {
        TestCgroup::new(
            std::path::PathBuf::from(m.split("/vsbox/").next().unwrap())
                .join(format!("vsboxtest-{}", std::process::id()))
                .join(xid),
        )
    });
    let without_memory: Vec<&str> = lines.iter().copied().filter(|l| !l.contains("/memory/")).collect();
    let mut plants = vec![lines[0].to_owned(), without_memory.join("\n"), format!("{record}\n{}", lines[0])];
    if let (Some(m), Some(e)) = (&memory, &elsewhere) {
        plants.push(record.replace(m.as_str(), &e.0.display().to_string()));
        plants.push(format!("{record}\n{}", m));
    }
    for planted in &plants {
        plant_context_record(&g, Some(planted));
        let out = g.run(&["exec", "probe", "alloc", "64"]);
        assert!(!out.stdout.starts_with("OK"), "with the record {planted:?}: {out:?}");
        if memory.is_some() {
            let cg = g.run(&["exec", "cat", "/proc/self/cgroup"]);
            assert!(
                cg.stdout.lines().any(|l| l.ends_with(":memory:/")),
                "with the record {planted:?}: {cg:?}"
            );
        }
    }
    g.run(&["stop"]).ok();
}
