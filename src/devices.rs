//! Which devices a guest may use, whatever its capabilities: a
//! cgroup-BPF device program on the guest's cgroup lets its processes
//! create and open only the character devices of its minimal /dev (null,
//! zero, full, random, urandom, tty, ptmx and its pseudo-terminals) and
//! nothing else — no block device, no /dev/mem, no host terminal or input
//! device — even for a guest whose S_CAPS grants CAP_MKNOD, or a device
//! node that reached its tree.

use crate::bpf::{self, Asm, R1, R2, R3, R4};
use crate::error::Result;
use std::path::Path;

// struct bpf_cgroup_dev_ctx: access_type (access << 16 | type), major, minor.
const CTX_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;
const DEV_CHAR: u32 = 2;

/// Character devices allowed: (major, minors).
const ALLOWED: &[(u32, &[u32])] = &[(1, &[3, 5, 7, 8, 9]), (5, &[0, 2])];
/// Pseudo-terminal slaves (Unix98): majors 136 to 143.
const PTS_MAJORS: (u32, u32) = (136, 143);

fn program() -> Vec<bpf::Insn> {
    let mut a = Asm::new();
    let (allow, deny) = (a.label(), a.label());
    a.ldx_w(R2, R1, CTX_TYPE).and32_imm(R2, 0xffff);
    a.jne32(R2, DEV_CHAR, deny);
    a.ldx_w(R3, R1, CTX_MAJOR).ldx_w(R4, R1, CTX_MINOR);
    for (major, minors) in ALLOWED {
        let next = a.label();
        a.jne32(R3, *major, next);
        for m in *minors {
            a.jeq32(R4, *m, allow);
        }
        a.ja(deny);
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

/// Limits every process in cgroup `dir`, now and later, to those devices.
pub fn limit_cgroup(dir: &Path) -> Result<()> {
    let fd = bpf::load("vsbox_dev", bpf::PROG_TYPE_CGROUP_DEVICE, bpf::ATTACH_CGROUP_DEVICE, &program())?;
    bpf::attach(dir, &fd, bpf::ATTACH_CGROUP_DEVICE)
}
