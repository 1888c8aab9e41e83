//! Processes that outlive the one that starts them: small helpers left
//! asleep on the host (a guest's watcher, a cgroup's reaper).

use nix::errno::Errno;
use std::os::fd::{AsRawFd, OwnedFd};

/// Runs `work` in a detached process (its own session, on `/`, stdio on
/// /dev/null, named `title`) that outlives the caller; returns once it is
/// under way. Of the caller's descriptors only `keep` go along, handed to
/// `work`.
pub fn detached(title: &str, keep: Vec<OwnedFd>, work: impl FnOnce(Vec<OwnedFd>)) -> Result<(), Errno> {
    use crate::sys::{fork, Forked};
    match fork()? {
        Forked::Parent(pid) => {
            let _ = nix::sys::wait::waitpid(pid, None);
            Ok(())
        }
        Forked::Child => {
            let _ = nix::unistd::setsid();
            // The second fork leaves a process that is no session leader
            // and whose parent (gone at once) nobody has to wait for.
            if let Ok(Forked::Child) = fork() {
                // It stays: mallocng again, whatever its parent used.
                crate::sys::alloc::long_lived();
                let _ = std::env::set_current_dir("/");
                // The kept descriptors go high, every other one closes (an
                // inherited lock must not stay held), and 0-2 open again
                // on /dev/null: nothing may print onto a terminal or pipe
                // the caller owns.
                const HIGH: i32 = 10;
                let n = keep.len() as i32;
                // Copies above the targets first, so no target overwrites
                // a descriptor still to be moved.
                let copies: Vec<_> = keep
                    .iter()
                    .map(|fd| nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD(HIGH + n)))
                    .collect();
                std::mem::forget(keep);
                for (i, copy) in copies.into_iter().enumerate() {
                    let _ = copy.and_then(|c| nix::unistd::dup2(c, HIGH + i as i32));
                }
                let _ = crate::sys::close_range(0, HIGH as u32 - 1);
                let _ = crate::sys::close_from((HIGH + n) as u32);
                for _ in 0..3 {
                    std::mem::forget(std::fs::OpenOptions::new().read(true).write(true).open("/dev/null"));
                }
                crate::sys::set_title(title);
                work((HIGH..HIGH + n).map(crate::sys::adopt_fd).collect());
            }
            std::process::exit(0)
        }
    }
}
