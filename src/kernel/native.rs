//! The kernel patch's own security contexts (kernel/patches/0001): the
//! seam between the two kernels. On the patched kernel every context vsbox
//! makes is also a context of the kernel's with the same id, so the kernel
//! itself hides its processes from the host and from other guests, tags
//! them in /proc/PID/status (`s_context:`) and enforces the `lock`,
//! `private` and `nproc` flags; on a stock kernel each call here is
//! nothing, and the namespaces, cgroups and filters alone make the context.
//!
//! The host (context 0) is blind to its guests there, but for its own
//! children (the kernel lets a process signal them wherever they went), so
//! a vsbox process that starts a context's first process stays on the
//! host, and that process makes the kernel's context (context/plan.rs,
//! step 2). One that must read or signal other processes of a context
//! joins it ([`join`]), or does that part in a child that does
//! ([`within`], [`spectate`]). Joining is for good: a process leaves a
//! context only by ending (vserver-reference.md §2.1). vsbox is
//! single-threaded wherever these fork, so their children may allocate.

use crate::abi;
use crate::error::{Context, Error, Result};
use crate::sys::{self, Forked};
use nix::errno::Errno;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

/// The flags the kernel enforces or records (a subset of vsbox's).
const KERNEL_FLAGS: u32 =
    abi::VXF_LOCK | abi::VXF_SCHED | abi::VXF_NPROC | abi::VXF_PRIVATE | abi::VXF_FAKEINIT | abi::VXF_HIDEINFO | abi::VXF_ULIMIT;

/// Whether vserver(2) answers: the patch is there and its LSM is on. Asked
/// once per process.
pub fn available() -> bool {
    static PATCHED: OnceLock<bool> = OnceLock::new();
    *PATCHED.get_or_init(|| super::patch_version().is_some())
}

/// The context the caller is in as the kernel sees it: 0 for the host (and
/// always 0 on a stock kernel).
pub fn current() -> u32 {
    info(abi::VX_DYNAMIC_ID).map_or(abi::VX_ID_HOST, |i| i.xid)
}

/// Puts the caller, for good, into a new context of the kernel's, `xid`
/// (2…65535, vsbox's own id of the context), with `flags` (VXF_*). Never
/// into one that exists: whoever made it — a user with a dynamic id, a
/// guest's root — would share the new context (vsbox's registry skips the
/// ids the kernel has, but one may be taken meanwhile). One that is ending
/// is waited for a moment (see `create`). Nothing on a stock kernel, or
/// when the caller is in that context already (it made it).
///
/// Errors: the id is taken; EPERM when the caller is in another context of
/// the kernel's or lacks the host's CAP_SYS_ADMIN; EINVAL with other
/// threads.
pub fn enter(xid: u32, flags: u32) -> Result<()> {
    if !available() {
        return Ok(());
    }
    let cur = current();
    if cur != xid {
        if cur != abi::VX_ID_HOST {
            return Err(Error::failed(
                format!("enter the kernel's context {xid}"),
                format!("this process is in context {cur} of the kernel's already"),
            ));
        }
        match create(xid) {
            Ok(_) => {}
            Err(Errno::EEXIST) => {
                return Err(Error::failed(
                    format!("create the kernel's context {xid}"),
                    "the kernel has a context of that id that vsbox did not make (vps lists its processes)",
                ))
            }
            Err(e) => return Err(Error::sys(format!("create the kernel's context {xid}"), e)),
        }
    }
    set_flags(xid, flags & KERNEL_FLAGS)
}

/// Adds `flags` to the caller's context `xid` (none: nothing).
fn set_flags(xid: u32, flags: u32) -> Result<()> {
    if flags == 0 {
        return Ok(());
    }
    let mut req = abi::vcmd_ctx_flags {
        flags: u64::from(flags),
        mask: u64::from(flags),
    };
    vserver_with(abi::VCMD_set_cflags, 0, &mut req)
        .map(drop)
        .ctx(|| format!("set the flags of the kernel's context {xid}"))
}

/// What the kernel says of its context `xid`; None when it has no such
/// context, and on a stock kernel.
fn info(xid: u32) -> Option<abi::vcmd_ctx_info> {
    let mut info = abi::vcmd_ctx_info::default();
    (available() && vserver_with(abi::VCMD_ctx_info, xid, &mut info).is_ok()).then_some(info)
}

/// Whether the kernel has a context `xid` (false on a stock kernel).
pub fn exists(xid: u32) -> bool {
    info(xid).is_some()
}

/// VCMD_ctx_create of `xid`. A context of that id may be ending: the
/// kernel frees it with its last task, once that is reaped, which the
/// parent of an orphaned init does a moment after the context emptied (a
/// server restarting itself). It is given that moment, up to two seconds;
/// EEXIST then.
fn create(xid: u32) -> std::result::Result<libc::c_long, Errno> {
    for _ in 0..200 {
        match sys::vserver(abi::VCMD_ctx_create, xid, 0) {
            Err(Errno::EEXIST) => std::thread::sleep(std::time::Duration::from_millis(10)),
            r => return r,
        }
    }
    Err(Errno::EEXIST)
}

/// Puts the caller, for good, into a new context of the kernel's with an
/// id the kernel picks (49152…65535): any user may (the seed's "New
/// system calls"). Of `flags`, `lock` and `nproc` go with it, which any
/// member may add (they only restrict it). Some(its id), or None on a
/// stock kernel.
pub fn create_dynamic(flags: u32) -> Result<Option<u32>> {
    if !available() {
        return Ok(None);
    }
    let xid = sys::vserver(abi::VCMD_ctx_create, abi::VX_DYNAMIC_ID, 0).ctx(|| "create a context of the kernel's")? as u32;
    set_flags(xid, flags & (abi::VXF_LOCK | abi::VXF_NPROC))?;
    Ok(Some(xid))
}

/// Joins the kernel's context `xid` for good (host root only). Ok(false)
/// when the kernel has no such context (one made on a stock path, or
/// ended) and on a stock kernel: the caller stays where it was.
pub fn join(xid: u32) -> Result<bool> {
    if !available() || current() == xid {
        return Ok(available());
    }
    match sys::vserver(abi::VCMD_ctx_migrate, xid, 0) {
        Ok(_) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(Errno::EPERM) if flags_of(xid) & abi::VXF_PRIVATE != 0 => Err(Error::failed(
            format!("join context {xid}"),
            "it is private (flag 'private'): nobody may join it",
        )),
        Err(e) => Err(Error::sys(format!("join the kernel's context {xid}"), e)),
    }
}

/// The flags of the kernel's context `xid` (0 when it has none or there is
/// no such context).
fn flags_of(xid: u32) -> u32 {
    info(xid).map_or(0, |i| i.flags)
}

/// Runs `f` in a child that has joined the kernel's context `xid` — to
/// signal or read its processes without this process leaving the host —
/// and gives the child's exit code. On a stock kernel, or when there is no
/// such context, `f` runs in this process.
pub fn within(xid: u32, f: impl FnOnce() -> i32) -> Result<i32> {
    if !exists(xid) || current() == xid {
        return Ok(f());
    }
    match sys::fork().ctx(|| "fork")? {
        Forked::Child => {
            let code = match join(xid) {
                Ok(_) => f(),
                Err(e) => {
                    eprintln!("vsbox: {e}");
                    crate::applet::EXIT_CANNOT_RUN
                }
            };
            std::process::exit(code)
        }
        Forked::Parent(child) => Ok(sys::wait_for(child)),
    }
}

/// Runs `f` in a child that has become the spectator (context 1, which
/// sees every context's processes and may signal none) and gives what it
/// returned: how the host learns about processes it cannot see. On a
/// stock kernel `f` runs in this process.
pub fn spectate(f: impl FnOnce() -> String) -> Result<String> {
    spectate_fds("look as the spectator", || Ok((f(), Vec::new()))).map(|(text, _)| text)
}

/// As [`spectate`], for a look that opens files too (a process's
/// namespaces): `f` gives text and descriptors, which come back over a
/// socket (SCM_RIGHTS, at most 16), or why it could not look — the error
/// then says `what` failed.
pub fn spectate_fds(what: &str, f: impl FnOnce() -> std::result::Result<(String, Vec<OwnedFd>), String>) -> Result<(String, Vec<OwnedFd>)> {
    use nix::sys::socket::{
        recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType,
    };
    use std::os::fd::AsRawFd;
    let failed = |why: String| Error::failed(what, why);
    if !available() || current() != abi::VX_ID_HOST {
        return f().map_err(failed);
    }
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).ctx(|| "socketpair")?;
    match sys::fork().ctx(|| "fork")? {
        Forked::Child => {
            drop(ours);
            let looked = match sys::vserver(abi::VCMD_ctx_migrate, abi::VX_ID_SPECTATOR, 0) {
                Ok(_) => f(),
                Err(e) => Err(format!("become the spectator: {}", e.desc())),
            };
            let (msg, fds) = match looked {
                Ok((text, fds)) => (format!("+{text}"), fds),
                Err(why) => (format!("!{why}"), Vec::new()),
            };
            let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
            let cmsg = [ControlMessage::ScmRights(&raw)];
            let iov = [std::io::IoSlice::new(msg.as_bytes())];
            let sent = sendmsg::<()>(
                theirs.as_raw_fd(),
                &iov,
                if raw.is_empty() { &[] } else { &cmsg },
                MsgFlags::empty(),
                None,
            );
            std::process::exit(i32::from(sent.is_err()))
        }
        Forked::Parent(child) => {
            drop(theirs);
            let mut buf = vec![0u8; 64 * 1024];
            let mut space = nix::cmsg_space!([std::os::fd::RawFd; 16]);
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            let got = recvmsg::<()>(ours.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
                .map(|m| {
                    let mut fds = Vec::new();
                    for c in m.cmsgs().into_iter().flatten() {
                        if let ControlMessageOwned::ScmRights(got) = c {
                            fds.extend(got.into_iter().map(sys::adopt_fd));
                        }
                    }
                    (m.bytes, fds)
                })
                .ctx(|| "read what the spectator saw");
            let code = sys::wait_for(child);
            let (n, fds) = got?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            match text.strip_prefix('+') {
                Some(t) => Ok((t.to_owned(), fds)),
                None => Err(failed(
                    text.strip_prefix('!')
                        .map_or_else(|| format!("the spectator ended with {code}"), str::to_owned),
                )),
            }
        }
    }
}

/// vserver(2) with a structure the command reads or fills in.
fn vserver_with<T: Copy>(cmd: u32, id: u32, data: &mut T) -> std::result::Result<libc::c_long, Errno> {
    sys::vserver(cmd, id, data as *mut T as usize)
}
