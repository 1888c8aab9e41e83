//! A guest's abstract unix socket names (those starting with a NUL byte)
//! belong to the network namespace, which guests share with the host; a
//! Landlock domain scoped for them (LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET,
//! Landlock ABI 6, Linux 6.12) keeps the guest's processes from
//! connecting or sending to any abstract socket made outside their domain:
//! the host's (X11, D-Bus, container shims) and other guests'. Their own
//! keep working among the processes of one domain, and domains are
//! inherited and cannot be left.

use crate::error::{Context, Result};
use crate::sys;

/// The first Landlock ABI with abstract unix socket scoping.
pub const ABI_ABSTRACT: i64 = 6;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1;

/// The kernel's Landlock ABI version (0: none, or Landlock not enabled).
pub fn abi() -> i64 {
    sys::landlock_abi().unwrap_or(0)
}

/// Whether this kernel can scope abstract unix sockets.
pub fn available() -> bool {
    abi() >= ABI_ABSTRACT
}

/// Why the guest's abstract sockets are not its own on this kernel, for
/// `vserver start` to print; None when they are.
pub fn missing() -> Option<String> {
    let v = abi();
    (v < ABI_ABSTRACT).then(|| {
        format!(
            "this kernel's Landlock (ABI {v}) cannot scope abstract unix sockets (ABI {ABI_ABSTRACT}, Linux 6.12, \
             with landlock in lsm=): the server's processes can reach the host's abstract sockets"
        )
    })
}

/// Puts the calling thread (and all it starts from now on) into a new
/// Landlock domain that only scopes abstract unix sockets; Ok(false)
/// when the kernel cannot. Needs CAP_SYS_ADMIN (or no_new_privs).
pub fn scope_abstract() -> Result<bool> {
    if !available() {
        return Ok(false);
    }
    // struct landlock_ruleset_attr: handled_access_fs, handled_access_net, scoped.
    let attr = [0u64, 0, SCOPE_ABSTRACT_UNIX_SOCKET];
    let fd = sys::landlock_ruleset(&attr).ctx(|| "create a Landlock ruleset")?;
    sys::landlock_restrict_self(&fd).ctx(|| "scope abstract unix sockets (Landlock)")?;
    Ok(true)
}
