//! vdu, vunify and vrpm against real trees: btrfs on a loop device for
//! shared blocks, tmpfs for a file system that cannot share.

mod common;
use common::*;
use std::path::Path;

fn random(len: usize) -> Vec<u8> {
    use std::io::Read;
    let mut v = vec![0u8; len];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut v).unwrap();
    v
}

fn shared(p: &Path) -> bool {
    vsbox::guest::extents::any_shared(&std::fs::File::open(p).unwrap())
}

/// vdu's figure for `p`, in KiB.
fn vdu(env: &Env, p: &Path) -> u64 {
    nix::unistd::sync();
    let out = env.run("vdu", &[p.to_str().unwrap()]);
    out.ok();
    let (path, k) = out.line().split_once('\t').expect("PATH<TAB>NK");
    assert_eq!(path, p.to_str().unwrap());
    k.strip_suffix('K').unwrap().parse().unwrap()
}

/// Replaces whatever busybox put at the package manager's names with a
/// script that logs its arguments and "installs" /root/pkg as /usr/lib/pkgfile.
fn fake_dpkg(g: &TestGuest, status: i32) {
    for p in ["bin/dpkg", "usr/bin/dpkg", "bin/rpm", "usr/bin/rpm"] {
        let _ = std::fs::remove_file(g.root().join(p));
    }
    std::fs::create_dir_all(g.root().join("var/lib/dpkg")).unwrap();
    std::fs::write(g.root().join("var/lib/dpkg/status"), "").unwrap();
    std::fs::write(
        g.root().join("usr/bin/dpkg"),
        format!("#!/bin/sh\necho \"$(hostname) $*\" >> /var/log/dpkg.log\ncp /root/pkg /usr/lib/pkgfile\nexit {status}\n"),
    )
    .unwrap();
    std::fs::set_permissions(g.root().join("usr/bin/dpkg"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[test]
fn vdu_counts_what_a_tree_really_uses() {
    require_root!();
    let env = Env::new();
    let t = env.dir.path().join("tree");
    std::fs::create_dir_all(t.join("sub")).unwrap();
    std::fs::write(t.join("own"), random(200 << 10)).unwrap();
    std::fs::write(t.join("sub/own2"), random(100 << 10)).unwrap();
    std::fs::write(t.join("linked"), random(300 << 10)).unwrap();
    std::fs::hard_link(t.join("linked"), t.join("sub/linked2")).unwrap();
    // Outside the tree: reachable only through symlinks, which vdu never follows.
    let outside = env.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("big"), random(1 << 20)).unwrap();
    std::os::unix::fs::symlink(outside.join("big"), t.join("to-file")).unwrap();
    std::os::unix::fs::symlink(&outside, t.join("to-dir")).unwrap();
    // Another file system mounted inside is not entered.
    let inner = Mounted::tmpfs(&t.join("mnt"));
    std::fs::write(t.join("mnt/elsewhere"), random(1 << 20)).unwrap();
    let k = vdu(&env, &t);
    assert!((300..=320).contains(&k), "only the two single-link files: {k}K");
    drop(inner);
    // Bad input: one clear line, exit 2 or 1.
    let out = env.run("vdu", &[]);
    assert_eq!(out.code, 2, "{out:?}");
    let out = env.run("vdu", &["/nonexistent/vsbox-tree"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("/nonexistent/vsbox-tree"), "{out:?}");
}

#[test]
fn vunify_shares_identical_package_files_copy_on_write() {
    require_root!();
    let env = Env::new();
    let fs = Mounted::btrfs(&env.dir.path().join("vservers"), 512);
    let a = TestGuest::busybox(&env, "uniref");
    let b = TestGuest::busybox(&env, "uni");
    let big = random(3 << 20);
    for g in [&a, &b] {
        std::fs::write(g.root().join("usr/lib/big"), &big).unwrap();
        std::fs::write(g.root().join("etc/big"), &big).unwrap();
        std::fs::write(g.root().join("usr/lib/other"), random(1 << 20)).unwrap();
        // Small files live inline in btrfs metadata and cannot share blocks.
        std::fs::write(g.root().join("usr/lib/tiny"), b"tiny and identical\n").unwrap();
    }
    // Hostile: b's root links to identical files outside both trees.
    let vservers = env.dir.path().join("vservers");
    std::fs::write(vservers.join("outside"), &big).unwrap();
    std::fs::create_dir_all(vservers.join("outdir")).unwrap();
    std::fs::write(vservers.join("outdir/big"), &big).unwrap();
    std::os::unix::fs::symlink(vservers.join("outside"), b.root().join("usr/lib/evil")).unwrap();
    std::fs::create_dir_all(b.root().join("usr/share")).unwrap();
    std::os::unix::fs::symlink(vservers.join("outdir"), b.root().join("usr/share/evil")).unwrap();
    let before = vdu(&env, &b.root());
    // A dry run only tells.
    let out = env.run("vunify", &["-n", &a.name, &b.name]);
    out.ok();
    assert!(out.stdout.contains("would share"), "{out:?}");
    nix::unistd::sync();
    assert!(!shared(&b.root().join("usr/lib/big")));
    let out = env.run("vunify", &["-v", &a.name, &b.name]);
    out.ok();
    assert!(
        out.stdout.contains("/usr/lib/big") && !out.stdout.contains("etc/big") && !out.stdout.contains("evil"),
        "{out:?}"
    );
    assert!(out.stdout.contains("1 differ"), "usr/lib/other differs: {out:?}");
    nix::unistd::sync();
    for p in [
        a.root().join("usr/lib/big"),
        b.root().join("usr/lib/big"),
        b.root().join("bin/busybox"),
    ] {
        assert!(shared(&p), "{} shares blocks", p.display());
    }
    for p in [
        b.root().join("etc/big"),
        b.root().join("usr/lib/other"),
        vservers.join("outside"),
        vservers.join("outdir/big"),
    ] {
        assert!(!shared(&p), "{} was left alone", p.display());
    }
    let after = vdu(&env, &b.root());
    assert!(before - after >= 3 << 10, "vdu {before}K -> {after}K");
    let out = env.run("vunify", &[&a.name, &b.name]);
    assert!(out.stdout.contains("shares 0 files"), "nothing left to share: {out:?}");
    // Copy-on-write: the server's root changes its unified file (and a
    // package update replaces another); the reference's stay as they were.
    b.run(&["start"]).ok();
    b.run(&["exec", "sh", "-c", "echo changed >> /usr/lib/big"]).ok();
    b.run(&[
        "exec",
        "sh",
        "-c",
        "cp /bin/busybox /tmp/bb && echo x >> /tmp/bb && mv /tmp/bb /bin/busybox.new",
    ])
    .ok();
    assert_eq!(std::fs::read(a.root().join("usr/lib/big")).unwrap(), big);
    assert!(std::fs::read(b.root().join("usr/lib/big")).unwrap().ends_with(b"changed\n"));
    // vrpm runs the package manager inside each server, then re-unifies.
    let pkg = random(2 << 20);
    for g in [&a, &b] {
        fake_dpkg(g, 0);
        std::fs::write(g.root().join("root/pkg"), &pkg).unwrap();
    }
    let out = env.run("vrpm", &["--unify", &a.name, &b.name, "--", "--install", "tool.deb"]);
    out.ok();
    for g in [&a, &b] {
        assert!(out.stdout.contains(&format!("Updating server {}", g.name)), "{out:?}");
        let log = std::fs::read_to_string(g.root().join("var/log/dpkg.log")).unwrap();
        assert_eq!(log.trim(), format!("{} --install tool.deb", g.name), "ran inside the server");
    }
    assert!(out.stdout.contains("Unification"), "{out:?}");
    nix::unistd::sync();
    assert!(shared(&b.root().join("usr/lib/pkgfile")), "re-unified after the update");
    drop((b, a));
    drop(fs);
}

#[test]
fn vunify_refuses_a_file_system_that_cannot_share() {
    require_root!();
    let env = Env::new();
    let _fs = Mounted::tmpfs(&env.dir.path().join("vservers"));
    let a = TestGuest::busybox(&env, "tmpref");
    let b = TestGuest::busybox(&env, "tmpuni");
    let out = env.run("vunify", &[&a.name, &b.name]);
    if patched() {
        // With the kernel patch a tmpfs shares too: hard links, immutable
        // and iunlink (its inode flags and trusted attributes suffice).
        out.ok();
        assert!(!out.stdout.contains("shares 0 files"), "{out:?}");
    } else {
        assert_eq!(out.code, 1, "{out:?}");
        assert!(out.stderr.contains("btrfs"), "{out:?}");
    }
    // Bad arguments: exit 2, one line.
    for args in [
        vec![a.name.as_str()],
        vec![a.name.as_str(), "nosuchserver"],
        vec![a.name.as_str(), a.name.as_str()],
    ] {
        let out = env.run("vunify", &args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    }
    let out = env.run("vunify", &["--exclude", "../etc", &a.name, &b.name]);
    assert_eq!(out.code, 2, "{out:?}");
    drop((b, a));
}

#[test]
fn vrpm_reports_failures_and_bad_input() {
    require_root!();
    let env = Env::new();
    let a = TestGuest::busybox(&env, "rpmok");
    let b = TestGuest::busybox(&env, "rpmfail");
    fake_dpkg(&a, 0);
    fake_dpkg(&b, 3);
    for g in [&a, &b] {
        std::fs::write(g.root().join("root/pkg"), "x").unwrap();
    }
    let out = env.run("vrpm", &["ALL", "--", "-l"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(&b.name) && !out.stderr.contains(&a.name),
        "names the failed server: {out:?}"
    );
    for g in [&a, &b] {
        assert!(g.root().join("var/log/dpkg.log").exists(), "ALL reached {}", g.name);
    }
    for args in [
        vec![a.name.as_str()],
        vec![a.name.as_str(), "--"],
        vec!["--", "-l"],
        vec!["nosuchserver", "--", "-l"],
    ] {
        let out = env.run("vrpm", &args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
    }
    // A server without rpm or dpkg: a clear failure.
    for p in ["bin/dpkg", "usr/bin/dpkg", "bin/rpm", "usr/bin/rpm"] {
        let _ = std::fs::remove_file(a.root().join(p));
    }
    let out = env.run("vrpm", &[&a.name, "--", "-l"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("neither rpm nor dpkg"), "{out:?}");
}
