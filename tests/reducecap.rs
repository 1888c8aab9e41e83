//! reducecap on the real kernel: the ceiling is lowered for good, even
//! across a setuid-root program.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

fn mask(hex: &str) -> u64 {
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

const NET_RAW: u64 = 1 << 13;
/// Bits kept by --secure (CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID
/// SETUID NET_BIND_SERVICE SYS_CHROOT LEASE AUDIT_WRITE SETFCAP).
const SECURE: u64 = 0xb004_04fb;
const SYS_ADMIN: u64 = 1 << 21;

#[test]
fn dropped_capabilities_leave_every_set() {
    require_root!();
    let env = Env::new();
    for field in ["CapBnd", "CapEff", "CapPrm"] {
        let out = env.run("reducecap", &["--cap", "!CAP_NET_RAW", "--", PROBE, "status", field]);
        assert_eq!(mask(&out.stdout) & NET_RAW, 0, "{field}: {out:?}");
        assert_ne!(mask(&out.stdout) & SYS_ADMIN, 0, "{field} lost more than asked: {out:?}");
    }
    let out = env.run("reducecap", &["--secure", "--", PROBE, "status", "CapBnd"]);
    assert_eq!(mask(&out.stdout), SECURE, "{out:?}");
}

/// Runs reducecap; retried while a sibling test's fork still holds the
/// freshly copied program open for writing (ETXTBSY).
fn run_suid(env: &Env, args: &[&str]) -> Out {
    for _ in 0..50 {
        let out = env.run("reducecap", args);
        if !out.stdout.contains("Text file busy") && !out.stderr.contains("Text file busy") {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("{args:?}: text file busy for a second");
}

#[test]
fn a_setuid_root_program_cannot_get_them_back() {
    require_root!();
    let env = Env::new();
    let suid = env.dir.path().join("probe-suid");
    std::fs::copy(PROBE, &suid).unwrap();
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let s = suid.to_str().unwrap();
    // Allowed: without reducecap the setuid-root program gets every capability.
    let out = run_suid(&env, &["--", PROBE, "as-user", "65534", s, "status", "CapEff"]);
    assert_ne!(mask(&out.stdout) & SYS_ADMIN, 0, "setuid root works here: {out:?}");
    // Under --secure it gets back only the ceiling.
    let out = run_suid(&env, &["--secure", "--", PROBE, "as-user", "65534", s, "status", "CapEff"]);
    assert_eq!(mask(&out.stdout) & !SECURE, 0, "{out:?}");
    assert_eq!(mask(&out.stdout) & SYS_ADMIN, 0, "{out:?}");
    let out = env.run(
        "reducecap",
        &["--cap", "!NET_RAW", "--", PROBE, "as-user", "65534", s, "status", "CapEff"],
    );
    assert_eq!(mask(&out.stdout) & NET_RAW, 0, "{out:?}");
}

#[test]
fn show_prints_the_resulting_sets() {
    require_root!();
    let env = Env::new();
    let out = env.run("reducecap", &["--cap", "!NET_RAW", "--show"]);
    out.ok();
    let row = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("CAP_NET_RAW "))
        .expect("a CAP_NET_RAW row");
    assert!(!row.contains('X'), "{row}");
    let row = out.stdout.lines().find(|l| l.trim_start().starts_with("CAP_SYS_ADMIN ")).unwrap();
    assert!(row.contains('X'), "{row}");
    assert!(out.stdout.lines().next().unwrap().contains("Bounding"));
}

/// The original's way to make a vserver by hand: `chroot DIR` then
/// `reducecap --secure`. A static program run so must not open a
/// directory outside DIR by its file handle (open_by_handle_at needs
/// CAP_DAC_READ_SEARCH, which --secure drops).
#[test]
fn secure_leaves_no_way_out_of_a_chroot_by_file_handle() {
    require_root!();
    let dir = TempDir::new("handle");
    let outside = dir.path().join("outside");
    let root = dir.path().join("root");
    std::fs::create_dir_all(outside.join("secret-here")).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(VSBOX, root.join("bin/vsbox")).unwrap();
    std::fs::copy(PROBE, root.join("bin/probe")).unwrap();
    let handle = host_probe(&["handle-of", outside.to_str().unwrap()]);
    let (kind, hex) = handle
        .line()
        .strip_prefix("OK ")
        .and_then(|l| l.split_once(' '))
        .unwrap_or_else(|| panic!("{handle:?}"));
    let in_chroot = |args: &[&str]| {
        let mut c = std::process::Command::new("chroot");
        c.arg(&root).args(["/bin/vsbox", "reducecap"]).args(args);
        c.args(["--", "/bin/probe", "open-by-handle", kind, hex]);
        Out::from(c.output().unwrap())
    };
    // The attempt is real: without --secure it opens the directory outside.
    let out = in_chroot(&["--cap", "!NET_RAW"]);
    assert!(out.stdout.starts_with("OK opened"), "{out:?}");
    let out = in_chroot(&["--secure"]);
    assert!(out.stdout.starts_with("ERR EPERM"), "{out:?}");
    // Asking for it back by name is the administrator's explicit choice.
    let out = in_chroot(&["--secure", "--cap", "DAC_READ_SEARCH"]);
    assert!(out.stdout.starts_with("OK opened"), "{out:?}");
    // The other way out of a plain chroot, a second chroot, is closed by
    // the recipe reducecap(8) gives: --secure --cap '!SYS_CHROOT'.
    let marker = dir.path().join("outside/secret-here");
    let out = Out::from(
        std::process::Command::new("chroot")
            .arg(&root)
            .args(["/bin/vsbox", "reducecap", "--secure", "--cap", "!SYS_CHROOT", "--"])
            .args(["/bin/probe", "chroot-escape", marker.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    assert!(out.stdout.starts_with("ERR"), "{out:?}");
}
