//! reducecap on the real kernel: the ceiling is lowered for good, even
//! across a setuid-root program.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

fn mask(hex: &str) -> u64 {
    u64::from_str_radix(hex.trim(), 16).unwrap()
}

const NET_RAW: u64 = 1 << 13;
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
    assert_eq!(mask(&out.stdout), 0xb004_04ff, "{out:?}");
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
    assert_eq!(mask(&out.stdout) & !0xb004_04ff, 0, "{out:?}");
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
