//! A guest's context record: a small read-only tmpfs at /run/vsbox whose
//! `context` file tells the guest's own processes which context they are
//! in (vps, vpstree, vtop and vserver-stat run inside report it). Guest
//! root, without CAP_SYS_ADMIN, can neither remount nor unmount it.

use crate::error::{Context, Result};
use std::path::Path;

/// Where a guest's processes find their context: `XID=N` and `NAME=NAME`
/// lines.
pub const CONTEXT_FILE: &str = "/run/vsbox/context";
const CONTEXT_DIR: &str = "/run/vsbox";

/// This process's context id, from its cgroup (before a cgroup namespace
/// hides the path).
pub fn own_xid() -> Result<u32> {
    let text = crate::sys::read_text("/proc/self/cgroup").ctx(|| "read /proc/self/cgroup")?;
    Ok(crate::kernel::cgroup::v2_path(&text).map_or(crate::context::HOST, |p| crate::context::xid_of_cgroup_path(&p)))
}

/// In the first process of a guest's context, pivoted into its tree and
/// still holding CAP_SYS_ADMIN: writes [`CONTEXT_FILE`] on a read-only
/// tmpfs of its own.
pub fn expose_context(xid: u32, name: &str) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    let dir = Path::new(CONTEXT_DIR);
    // A template's tree may lack /run; whatever the guest put at
    // /run/vsbox is its own, and gives way to a directory.
    std::fs::create_dir_all("/run").ctx(|| "create /run")?;
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => std::fs::remove_file(dir).ctx(|| format!("remove {CONTEXT_DIR}"))?,
        Err(_) => {}
    }
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(crate::error::Error::io(format!("create {CONTEXT_DIR}"), &e))
        }
        _ => {}
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some("size=16k,nr_inodes=16,mode=755"))
        .ctx(|| format!("mount a tmpfs on {CONTEXT_DIR}"))?;
    std::fs::write(CONTEXT_FILE, format!("XID={xid}\nNAME={name}\n")).ctx(|| format!("write {CONTEXT_FILE}"))?;
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .ctx(|| format!("make {CONTEXT_DIR} read-only"))
}

/// The context this process runs in and its guest's name, when it runs
/// inside a guest: read from [`CONTEXT_FILE`], trusted only on a
/// read-only tmpfs (as vsbox mounts it). None on the host.
pub fn own_context() -> Option<(u32, String)> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let fs = nix::sys::statfs::statfs(CONTEXT_DIR).ok()?;
    if fs.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC || !statvfs(CONTEXT_DIR).ok()?.flags().contains(FsFlags::ST_RDONLY) {
        return None;
    }
    parse_context(&std::fs::read_to_string(CONTEXT_FILE).ok()?)
}

fn parse_context(text: &str) -> Option<(u32, String)> {
    let value = |key: &str| text.lines().find_map(|l| l.strip_prefix(key)).map(str::trim);
    let xid = value("XID=")?.parse().ok()?;
    Some((xid, value("NAME=").unwrap_or("").to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_records() {
        assert_eq!(parse_context("XID=49152\nNAME=web\n"), Some((49152, "web".to_owned())));
        assert_eq!(parse_context("NAME=web\n"), None);
        assert_eq!(parse_context("XID=x\n"), None);
    }
}
