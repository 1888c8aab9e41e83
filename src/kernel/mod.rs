//! Which kernel vsbox runs on: with the patch in kernel/ (sys_vserver on
//! the x86_64 number reserved for it) or a stock one, where contexts are
//! built from namespaces, cgroups, capabilities and cgroup-BPF.

pub mod bpf;
pub mod caps;
pub mod cgroup;
pub mod devices;
pub mod lxcfs;
pub mod native;
pub mod netlock;
pub mod ns;
pub mod process;
pub mod resources;
pub mod rtnetlink;
pub mod seccomp;
pub mod sysinfo;
pub mod unixscope;
pub mod userns;

use crate::abi;
use crate::sys;

/// The patch's ABI version, or None on a stock kernel.
pub fn patch_version() -> Option<u32> {
    sys::vserver(abi::VCMD_get_version, 0, 0).ok().map(|v| v as u32)
}

pub fn describe() -> String {
    match patch_version() {
        Some(v) => format!("kernel patch present, ABI {v:#010x}: contexts are the kernel's own (vserver(2))"),
        None => "stock kernel: namespaces, cgroups, capabilities, cgroup-BPF".to_owned(),
    }
}
