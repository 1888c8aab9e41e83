//! The boot and run-level records an init keeps in utmp and wtmp, so that
//! `runlevel`, `who -r` and `last` answer inside a guest as on a booted
//! system (Debian's invoke-rc.d asks `runlevel` on every package install).
//!
//! Records are glibc's `struct utmp` (utmp(5); 384 bytes on x86_64), the
//! ones sysvinit writes (init.c `write_utmp_wtmp`): a BOOT_TIME record
//! "reboot" at boot and a RUN_LVL record "runlevel" whose ut_pid is the new
//! level plus 256 times the previous one ('N' at boot). In utmp a record
//! replaces the one of its type, as pututxline(3) does; wtmp, when it
//! exists, gets every record appended.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

/// Size of one record (glibc x86_64 `struct utmp`).
pub const RECORD: usize = 384;
const RUN_LVL: i16 = 1;
const BOOT_TIME: i16 = 2;

/// glibc's _PATH_UTMP; where a tree has no /var/run, /run's own.
const UTMP: &[&str] = &["/var/run/utmp", "/run/utmp"];
/// glibc's _PATH_WTMP: written to only when it exists, as sysvinit does.
const WTMP: &str = "/var/log/wtmp";

/// One record: `kind` (RUN_LVL, BOOT_TIME), `pid`, `user`, at `secs`
/// seconds since the epoch; line "~", id "~~", host the kernel release.
pub fn record(kind: i16, pid: i32, user: &str, secs: i64, release: &str) -> [u8; RECORD] {
    let mut r = [0u8; RECORD];
    let put = |r: &mut [u8; RECORD], at: usize, len: usize, s: &[u8]| {
        let n = s.len().min(len);
        r[at..at + n].copy_from_slice(&s[..n]);
    };
    r[0..2].copy_from_slice(&kind.to_ne_bytes());
    r[4..8].copy_from_slice(&pid.to_ne_bytes());
    put(&mut r, 8, 32, b"~"); // ut_line
    put(&mut r, 40, 4, b"~~"); // ut_id
    put(&mut r, 44, 32, user.as_bytes()); // ut_user
    put(&mut r, 76, 256, release.as_bytes()); // ut_host
                                              // ut_tv: two 32-bit fields on x86_64 (__WORDSIZE_TIME64_COMPAT32).
    r[340..344].copy_from_slice(&(secs as i32).to_ne_bytes());
    r
}

/// The ut_pid of a run-level record: `level` and `previous` as characters.
fn run_level_pid(level: u8, previous: u8) -> i32 {
    i32::from(level) + 256 * i32::from(previous)
}

fn now_and_release() -> (i64, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    (secs, release)
}

/// Boot: a BOOT_TIME record, then run level `level` (previous 'N').
pub fn boot(level: u8) {
    let (secs, release) = now_and_release();
    write(&record(BOOT_TIME, 0, "reboot", secs, &release));
    write(&record(RUN_LVL, run_level_pid(level, b'N'), "runlevel", secs, &release));
}

/// A change from run level `previous` to `level` ('0' halt, '6' reboot).
pub fn run_level(level: u8, previous: u8) {
    let (secs, release) = now_and_release();
    write(&record(RUN_LVL, run_level_pid(level, previous), "runlevel", secs, &release));
}

/// Into utmp (replacing the record of the same type) and, when it
/// exists, onto wtmp. Best effort: a guest without them still runs.
fn write(rec: &[u8; RECORD]) {
    let path = UTMP
        .iter()
        .find(|p| std::path::Path::new(p).parent().is_some_and(|d| d.is_dir()))
        .copied();
    if let Some(path) = path {
        let _ = replace_in(path, rec);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).custom_flags(libc::O_NOFOLLOW).open(WTMP) {
        let _ = f.write_all(rec);
    }
}

fn replace_in(path: &str, rec: &[u8; RECORD]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o664)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    // Owned by group utmp where the guest has one, as its tools expect.
    if let Some(gid) = std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|g| crate::context::users::group_id("utmp", &g))
    {
        let _ = nix::unistd::fchown(std::os::fd::AsRawFd::as_raw_fd(&f), None, Some(nix::unistd::Gid::from_raw(gid)));
    }
    let mut old = Vec::new();
    f.read_to_end(&mut old)?;
    let at = old
        .chunks_exact(RECORD)
        .position(|r| r[0..2] == rec[0..2])
        .map_or(old.len() - old.len() % RECORD, |i| i * RECORD);
    f.seek(SeekFrom::Start(at as u64))?;
    f.write_all(rec)
}

/// The run level a utmp file's RUN_LVL record gives, as a character.
pub fn current_run_level(data: &[u8]) -> Option<u8> {
    data.chunks_exact(RECORD)
        .rfind(|r| i16::from_ne_bytes([r[0], r[1]]) == RUN_LVL)
        .map(|r| (i32::from_ne_bytes([r[4], r[5], r[6], r[7]]) % 256) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_env = "gnu")]
    use std::mem::{offset_of, size_of};

    /// Checked against glibc's own struct when built with glibc (musl's
    /// utmpx differs, and is not what guests' readers use); a Debian
    /// guest's runlevel(8) reads the records in tests/guest_init.rs.
    #[test]
    #[cfg(target_env = "gnu")]
    fn the_layout_is_glibcs() {
        assert_eq!(size_of::<libc::utmpx>(), RECORD);
        assert_eq!(offset_of!(libc::utmpx, ut_pid), 4);
        assert_eq!(offset_of!(libc::utmpx, ut_line), 8);
        assert_eq!(offset_of!(libc::utmpx, ut_id), 40);
        assert_eq!(offset_of!(libc::utmpx, ut_user), 44);
        assert_eq!(offset_of!(libc::utmpx, ut_host), 76);
        assert_eq!(offset_of!(libc::utmpx, ut_tv), 340);
    }

    #[test]
    fn a_run_level_record_reads_as_sysvinit_writes_it() {
        let r = record(RUN_LVL, run_level_pid(b'3', b'N'), "runlevel", 1_700_000_000, "6.18.0");
        assert_eq!(i16::from_ne_bytes([r[0], r[1]]), 1);
        // runlevel(8) prints (pid / 256) and (pid % 256): "N 3".
        let pid = i32::from_ne_bytes(r[4..8].try_into().unwrap());
        assert_eq!(((pid / 256) as u8 as char, (pid % 256) as u8 as char), ('N', '3'));
        assert_eq!(&r[44..52], b"runlevel");
        assert_eq!(&r[8..10], b"~\0");
        assert_eq!(i32::from_ne_bytes(r[340..344].try_into().unwrap()), 1_700_000_000);
    }
}
