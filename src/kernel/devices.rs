//! Which devices a guest may use, whatever its capabilities: a
//! cgroup-BPF device program on the guest's cgroup lets its processes
//! create and open only the character devices of its minimal /dev (null,
//! zero, full, random, urandom, tty, ptmx and its pseudo-terminals) and
//! nothing else — no block device, no /dev/mem, no host terminal or input
//! device — even for a guest whose S_CAPS grants CAP_MKNOD, or a device
//! node that reached its tree.

use crate::error::Result;
use crate::kernel::bpf::{self, Asm, R1, R2, R3, R4};
use std::path::Path;

// struct bpf_cgroup_dev_ctx: access_type (access << 16 | type), major, minor.
const CTX_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;
const DEV_BLOCK: u32 = 1;
const DEV_CHAR: u32 = 2;

/// The character devices of a guest's minimal /dev (SPEC §6): name, major,
/// minor. rootfs.rs makes these nodes; the device program allows them,
/// and /dev/ptmx (5:2, a link to the guest's own devpts instance).
pub const MINIMAL: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];
/// /dev/ptmx, the multiplexer of a devpts instance.
const PTMX: (u32, u32) = (5, 2);
/// Pseudo-terminal slaves (Unix98): majors 136 to 143.
const PTS_MAJORS: (u32, u32) = (136, 143);

/// A device the configuration allows besides (DEVICES): block or
/// character, major, and one minor or all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Device {
    pub block: bool,
    pub major: u32,
    pub minor: Option<u32>,
}

impl std::str::FromStr for Device {
    type Err = String;
    /// `c MAJOR:MINOR`, `b MAJOR:MINOR`, with `*` for every minor.
    fn from_str(s: &str) -> std::result::Result<Device, String> {
        let bad = || format!("expected 'c MAJOR:MINOR' or 'b MAJOR:MINOR', found '{s}'");
        let (kind, numbers) = s.split_once(' ').ok_or_else(bad)?;
        let block = match kind {
            "b" => true,
            "c" => false,
            _ => return Err(bad()),
        };
        let (major, minor) = numbers.trim().split_once(':').ok_or_else(bad)?;
        Ok(Device {
            block,
            major: major.parse().map_err(|_| bad())?,
            minor: match minor {
                "*" => None,
                m => Some(m.parse().map_err(|_| bad())?),
            },
        })
    }
}

fn program(extra: &[Device]) -> Vec<bpf::Insn> {
    let mut a = Asm::new();
    let (allow, deny) = (a.label(), a.label());
    a.ldx_w(R2, R1, CTX_TYPE).and32_imm(R2, 0xffff);
    a.ldx_w(R3, R1, CTX_MAJOR).ldx_w(R4, R1, CTX_MINOR);
    for d in extra {
        let next = a.label();
        a.jne32(R2, if d.block { DEV_BLOCK } else { DEV_CHAR }, next);
        a.jne32(R3, d.major, next);
        if let Some(m) = d.minor {
            a.jne32(R4, m, next);
        }
        a.ja(allow);
        a.bind(next);
    }
    a.jne32(R2, DEV_CHAR, deny);
    for (major, minor) in MINIMAL.iter().map(|&(_, ma, mi)| (ma, mi)).chain([PTMX]) {
        let next = a.label();
        a.jne32(R3, major, next);
        a.jeq32(R4, minor, allow);
        a.bind(next);
    }
    a.jlt32(R3, PTS_MAJORS.0, deny);
    a.jgt32(R3, PTS_MAJORS.1, deny);
    a.bind(allow);
    a.ret(1);
    a.bind(deny);
    a.ret(0);
    a.finish()
}

/// Limits every process in cgroup `dir`, now and later, to those devices
/// and `extra`.
pub fn limit_cgroup(dir: &Path, extra: &[Device]) -> Result<()> {
    let fd = bpf::load(
        "vsbox_dev",
        bpf::PROG_TYPE_CGROUP_DEVICE,
        bpf::ATTACH_CGROUP_DEVICE,
        &program(extra),
    )?;
    bpf::attach(dir, &fd, bpf::ATTACH_CGROUP_DEVICE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_entries() {
        assert_eq!(
            "c 10:200".parse(),
            Ok(Device {
                block: false,
                major: 10,
                minor: Some(200)
            })
        );
        assert_eq!(
            "b 7:*".parse(),
            Ok(Device {
                block: true,
                major: 7,
                minor: None
            })
        );
        for bad in ["", "c", "x 1:2", "c 1", "c a:b", "c 1:-1", "c10:200"] {
            assert!(bad.parse::<Device>().is_err(), "{bad}");
        }
    }
}
