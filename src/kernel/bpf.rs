//! eBPF without a compiler: a small assembler for the few instructions the
//! socket hooks need, and bpf(2) to load programs and attach them to a
//! cgroup. Programs attached to a cgroup go away with the cgroup, so
//! removing a context's directory is the whole clean-up.

use crate::error::{Context, Error, Result};
use crate::sys;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8, // dst in the low nibble, src in the high one
    pub off: i16,
    pub imm: i32,
}

pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R2: u8 = 2;
pub const R3: u8 = 3;
pub const R4: u8 = 4;
pub const R5: u8 = 5;
pub const R6: u8 = 6;
pub const R7: u8 = 7;
pub const R8: u8 = 8;
pub const R9: u8 = 9;
pub const R10: u8 = 10;

/// A jump target, resolved when the program is finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    pub fn new() -> Self {
        Self::default()
    }
    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) -> &mut Self {
        self.insns.push(Insn {
            code,
            regs: dst | (src << 4),
            off,
            imm,
        });
        self
    }
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }
    /// Places `l` at the next instruction.
    pub fn bind(&mut self, l: Label) -> &mut Self {
        self.labels[l.0] = Some(self.insns.len());
        self
    }
    fn jump(&mut self, code: u8, dst: u8, imm: i32, to: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), to));
        self.op(code, dst, 0, 0, imm)
    }
    /// dst = *(u32 *)(src + off)
    pub fn ldx_w(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
        self.op(0x61, dst, src, off, 0)
    }
    /// dst = *(u64 *)(src + off)
    pub fn ldx_dw(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
        self.op(0x79, dst, src, off, 0)
    }
    /// dst = *(u16 *)(src + off)
    pub fn ldx_h(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
        self.op(0x69, dst, src, off, 0)
    }
    /// dst = *(u8 *)(src + off)
    pub fn ldx_b(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
        self.op(0x71, dst, src, off, 0)
    }
    /// *(u64 *)(dst + off) = src
    pub fn stx_dw(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
        self.op(0x7b, dst, src, off, 0)
    }
    /// dst = imm (64 bits; two instruction slots)
    pub fn ld_imm64(&mut self, dst: u8, imm: u64) -> &mut Self {
        self.op(0x18, dst, 0, 0, imm as u32 as i32);
        self.op(0, 0, 0, 0, (imm >> 32) as u32 as i32)
    }
    /// dst = the map whose descriptor is `fd` (BPF_PSEUDO_MAP_FD)
    pub fn ld_map_fd(&mut self, dst: u8, fd: i32) -> &mut Self {
        self.op(0x18, dst, 1, 0, fd);
        self.op(0, 0, 0, 0, 0)
    }
    /// dst <<= imm (64-bit)
    pub fn lsh_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.op(0x67, dst, 0, 0, imm)
    }
    /// dst >>= imm (64-bit, logical)
    pub fn rsh_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.op(0x77, dst, 0, 0, imm)
    }
    /// dst |= src (64-bit)
    pub fn or_reg(&mut self, dst: u8, src: u8) -> &mut Self {
        self.op(0x4f, dst, src, 0, 0)
    }
    /// *(u32 *)(dst + off) = src
    pub fn stx_w(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
        self.op(0x63, dst, src, off, 0)
    }
    /// *(u16 *)(dst + off) = src
    pub fn stx_h(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
        self.op(0x6b, dst, src, off, 0)
    }
    /// *(u32 *)(dst + off) = imm (not allowed on the context, only the stack)
    pub fn st_w(&mut self, dst: u8, off: i16, imm: u32) -> &mut Self {
        self.op(0x62, dst, 0, off, imm as i32)
    }
    /// *(u16 *)(dst + off) = imm
    pub fn st_h(&mut self, dst: u8, off: i16, imm: u16) -> &mut Self {
        self.op(0x6a, dst, 0, off, i32::from(imm))
    }
    /// *(u64 *)(dst + off) = 0
    pub fn st_dw_zero(&mut self, dst: u8, off: i16) -> &mut Self {
        self.op(0x7a, dst, 0, off, 0)
    }
    pub fn mov(&mut self, dst: u8, src: u8) -> &mut Self {
        self.op(0xbf, dst, src, 0, 0)
    }
    pub fn mov_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.op(0xb7, dst, 0, 0, imm)
    }
    /// 32-bit move: the upper half becomes zero.
    pub fn mov32_imm(&mut self, dst: u8, imm: u32) -> &mut Self {
        self.op(0xb4, dst, 0, 0, imm as i32)
    }
    /// dst = htobe16(dst): the low 16 bits in network order (on a
    /// little-endian machine, swapped), the rest zero.
    pub fn be16(&mut self, dst: u8) -> &mut Self {
        self.op(0xdc, dst, 0, 0, 16)
    }
    pub fn add_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.op(0x07, dst, 0, 0, imm)
    }
    /// if (u32)dst == imm goto to — 32-bit compare, so addresses with the
    /// top bit set are not sign-extended.
    pub fn jeq32(&mut self, dst: u8, imm: u32, to: Label) -> &mut Self {
        self.jump(0x16, dst, imm as i32, to)
    }
    pub fn jne32(&mut self, dst: u8, imm: u32, to: Label) -> &mut Self {
        self.jump(0x56, dst, imm as i32, to)
    }
    /// if (u32)dst > imm goto to (unsigned)
    pub fn jgt32(&mut self, dst: u8, imm: u32, to: Label) -> &mut Self {
        self.jump(0x26, dst, imm as i32, to)
    }
    /// if (u32)dst < imm goto to (unsigned)
    pub fn jlt32(&mut self, dst: u8, imm: u32, to: Label) -> &mut Self {
        self.jump(0xa6, dst, imm as i32, to)
    }
    /// (u32)dst &= imm
    pub fn and32_imm(&mut self, dst: u8, imm: u32) -> &mut Self {
        self.op(0x54, dst, 0, 0, imm as i32)
    }
    /// if (u32)dst == (u32)src goto to
    pub fn jeq32_reg(&mut self, dst: u8, src: u8, to: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), to));
        self.op(0x1e, dst, src, 0, 0)
    }
    /// if dst == src (64-bit) goto to
    pub fn jeq_reg(&mut self, dst: u8, src: u8, to: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), to));
        self.op(0x1d, dst, src, 0, 0)
    }
    /// if dst > src (64-bit, unsigned) goto to
    pub fn jgt_reg(&mut self, dst: u8, src: u8, to: Label) -> &mut Self {
        self.fixups.push((self.insns.len(), to));
        self.op(0x2d, dst, src, 0, 0)
    }
    /// if dst == imm (64-bit) goto to
    pub fn jeq(&mut self, dst: u8, imm: i32, to: Label) -> &mut Self {
        self.jump(0x15, dst, imm, to)
    }
    /// if dst != imm (64-bit) goto to
    pub fn jne_imm(&mut self, dst: u8, imm: i32, to: Label) -> &mut Self {
        self.jump(0x55, dst, imm, to)
    }
    pub fn ja(&mut self, to: Label) -> &mut Self {
        self.jump(0x05, 0, 0, to)
    }
    pub fn call(&mut self, helper: i32) -> &mut Self {
        self.op(0x85, 0, 0, 0, helper)
    }
    pub fn exit(&mut self) -> &mut Self {
        self.op(0x95, 0, 0, 0, 0)
    }
    /// r0 = verdict; exit
    pub fn ret(&mut self, verdict: i32) -> &mut Self {
        self.mov_imm(R0, verdict).exit()
    }

    /// Resolves the jumps. Panics only on a label never bound, which is a
    /// bug in the program builder, not something input can cause.
    pub fn finish(mut self) -> Vec<Insn> {
        for (at, l) in std::mem::take(&mut self.fixups) {
            let target = self.labels[l.0].unwrap_or_else(|| unreachable!("BPF label never bound"));
            self.insns[at].off = (target as i64 - at as i64 - 1) as i16;
        }
        self.insns
    }
}

/// Program and attach types from linux/bpf.h.
pub const PROG_TYPE_CGROUP_SKB: u32 = 8;
pub const PROG_TYPE_CGROUP_SOCK: u32 = 9;
pub const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
pub const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
pub const PROG_TYPE_CGROUP_SOCKOPT: u32 = 25;
pub const HELPER_SK_STORAGE_GET: i32 = 107;
pub const MAP_TYPE_SK_STORAGE: u32 = 24;
pub const ATTACH_INET_INGRESS: u32 = 0;
pub const ATTACH_INET_EGRESS: u32 = 1;
pub const ATTACH_INET_SOCK_CREATE: u32 = 2;
pub const ATTACH_CGROUP_DEVICE: u32 = 6;
pub const ATTACH_INET4_BIND: u32 = 8;
pub const ATTACH_INET6_BIND: u32 = 9;
pub const ATTACH_INET4_CONNECT: u32 = 10;
pub const ATTACH_INET6_CONNECT: u32 = 11;
pub const ATTACH_UDP4_SENDMSG: u32 = 14;
pub const ATTACH_UDP6_SENDMSG: u32 = 15;
pub const ATTACH_UDP4_RECVMSG: u32 = 19;
pub const ATTACH_INET4_GETPEERNAME: u32 = 29;
pub const ATTACH_INET4_GETSOCKNAME: u32 = 31;
pub const ATTACH_CGROUP_SETSOCKOPT: u32 = 22;
pub const HELPER_BIND: i32 = 64;
pub const HELPER_SKB_LOAD_BYTES: i32 = 26;
pub const HELPER_SK_LOOKUP_TCP: i32 = 84;
pub const HELPER_SK_LOOKUP_UDP: i32 = 85;
pub const HELPER_SK_RELEASE: i32 = 86;
/// bpf_set_retval (Linux 5.18): the error a refusing cgroup program's
/// system call returns instead of EPERM.
pub const HELPER_SET_RETVAL: i32 = 187;

const CMD_PROG_LOAD: i32 = 5;
const CMD_PROG_ATTACH: i32 = 8;
const CMD_BTF_LOAD: i32 = 18;
const F_ALLOW_MULTI: u32 = 2;

fn put_u32(a: &mut [u8], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}
fn put_u64(a: &mut [u8], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

/// Loads a program; on a verifier refusal, loads it again with the log on
/// so the error says why.
pub fn load(name: &str, prog_type: u32, attach_type: u32, insns: &[Insn]) -> Result<OwnedFd> {
    let license = b"GPL\0";
    let try_load = |log: Option<&mut Vec<u8>>| {
        // union bpf_attr, BPF_PROG_LOAD part.
        let mut attr = [0u8; 128];
        put_u32(&mut attr, 0, prog_type);
        put_u32(&mut attr, 4, insns.len() as u32);
        put_u64(&mut attr, 8, insns.as_ptr() as u64);
        put_u64(&mut attr, 16, license.as_ptr() as u64);
        if let Some(log) = log {
            put_u32(&mut attr, 24, 1);
            put_u32(&mut attr, 28, log.len() as u32);
            put_u64(&mut attr, 32, log.as_mut_ptr() as u64);
        }
        let n = name.as_bytes();
        attr[48..48 + n.len().min(15)].copy_from_slice(&n[..n.len().min(15)]);
        put_u32(&mut attr, 68, attach_type);
        sys::bpf_fd(CMD_PROG_LOAD, &mut attr)
    };
    try_load(None).or_else(|e| {
        let mut log = vec![0u8; 1 << 16];
        match try_load(Some(&mut log)) {
            Ok(fd) => Ok(fd),
            Err(_) => {
                let text = String::from_utf8_lossy(&log);
                let text = text.trim_end_matches('\0').trim();
                let last = text.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
                Err(Error::failed(format!("load BPF program {name}"), format!("{} ({last})", e.desc())))
            }
        }
    })
}

/// Creates a map; `btf` gives the BTF (descriptor, key type id, value
/// type id) that some map types require.
pub fn map_create(map_type: u32, key: u32, value: u32, flags: u32, btf: Option<(&OwnedFd, u32, u32)>) -> Result<OwnedFd> {
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, map_type);
    put_u32(&mut attr, 4, key);
    put_u32(&mut attr, 8, value);
    put_u32(&mut attr, 16, flags);
    if let Some((fd, k, v)) = btf {
        put_u32(&mut attr, 48, fd.as_raw_fd() as u32);
        put_u32(&mut attr, 52, k);
        put_u32(&mut attr, 56, v);
    }
    sys::bpf_fd(0, &mut attr).ctx(|| "create a BPF map")
}

/// Loads a BTF with two types, 1 `int` (4 bytes) and 2 `u64`: what a
/// socket-storage map of u64 values must declare for its key and value.
pub fn btf_int_u64() -> Result<OwnedFd> {
    let strings = b"\0int\0u64\0";
    #[rustfmt::skip]
    let types: [u32; 8] = [
        1, 1 << 24, 4, (1 << 24) | 32, // "int": INT, 4 bytes, signed, 32 bits
        5, 1 << 24, 8, 64,             // "u64": INT, 8 bytes, 64 bits
    ];
    let type_len = (types.len() * 4) as u32;
    let mut b = Vec::new();
    // struct btf_header: magic, version, flags, hdr_len, type_off/len, str_off/len.
    for w in [0x0001_eb9fu32, 24, 0, type_len, type_len, strings.len() as u32] {
        b.extend_from_slice(&w.to_le_bytes());
    }
    for w in types {
        b.extend_from_slice(&w.to_le_bytes());
    }
    b.extend_from_slice(strings);
    let mut attr = [0u8; 128];
    put_u64(&mut attr, 0, b.as_ptr() as u64);
    put_u32(&mut attr, 16, b.len() as u32);
    sys::bpf_fd(CMD_BTF_LOAD, &mut attr).ctx(|| "load the BTF of a socket storage")
}

/// The id of the map behind `fd`.
pub fn map_id(fd: &OwnedFd) -> Result<u32> {
    let mut info = [0u8; 128];
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, fd.as_raw_fd() as u32);
    put_u32(&mut attr, 4, info.len() as u32);
    put_u64(&mut attr, 8, info.as_mut_ptr() as u64);
    sys::bpf(15, &mut attr).ctx(|| "read a BPF map's id")?; // BPF_OBJ_GET_INFO_BY_FD
    Ok(u32::from_ne_bytes([info[4], info[5], info[6], info[7]]))
}

/// A descriptor of the map with id `id`.
pub fn map_by_id(id: u32) -> Result<OwnedFd> {
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, id);
    sys::bpf_fd(14, &mut attr).ctx(|| format!("open BPF map {id}")) // BPF_MAP_GET_FD_BY_ID
}

/// Attaches a loaded program to a cgroup directory, beside whatever is
/// attached there and above (BPF_F_ALLOW_MULTI: an ancestor's programs
/// still run, so a lock can only narrow).
pub fn attach(cgroup: &Path, prog: &OwnedFd, attach_type: u32) -> Result<()> {
    let dir = std::fs::File::open(cgroup).ctx(|| format!("open {}", cgroup.display()))?;
    let mut attr = [0u8; 128];
    put_u32(&mut attr, 0, dir.as_raw_fd() as u32);
    put_u32(&mut attr, 4, prog.as_raw_fd() as u32);
    put_u32(&mut attr, 8, attach_type);
    put_u32(&mut attr, 12, F_ALLOW_MULTI);
    sys::bpf(CMD_PROG_ATTACH, &mut attr)
        .map(drop)
        .ctx(|| format!("attach BPF program to {}", cgroup.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_resolve_relative_to_the_next_instruction() {
        let mut a = Asm::new();
        let end = a.label();
        a.mov_imm(R0, 1).jeq(R0, 1, end).mov_imm(R0, 0).bind(end).exit();
        let p = a.finish();
        assert_eq!(p.len(), 4);
        assert_eq!(p[1].code, 0x15);
        assert_eq!(p[1].off, 1);
        assert_eq!(p[3].code, 0x95);
    }

    #[test]
    fn registers_pack_dst_low_src_high() {
        let mut a = Asm::new();
        a.ldx_w(R2, R6, 4).stx_w(R6, 40, R2);
        let p = a.finish();
        assert_eq!((p[0].code, p[0].regs, p[0].off), (0x61, 0x62, 4));
        assert_eq!((p[1].code, p[1].regs, p[1].off), (0x63, 0x26, 40));
    }
}
