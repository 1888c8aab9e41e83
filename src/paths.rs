//! Where vsbox keeps things (SPEC §2); the environment overrides exist so
//! tests and packagers can use private trees.

use std::path::PathBuf;

fn from_env(var: &str, default: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => PathBuf::from(default),
    }
}

/// Configuration: /etc/vservers.
pub fn confdir() -> PathBuf {
    from_env("VSBOX_CONFDIR", "/etc/vservers")
}

/// Parent of the guest trees: /vservers.
pub fn rootdir() -> PathBuf {
    from_env("VSBOX_ROOTDIR", "/vservers")
}

/// Runtime state: /run/vservers.
pub fn rundir() -> PathBuf {
    from_env("VSBOX_RUNDIR", "/run/vservers")
}
