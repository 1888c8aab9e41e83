//! The address lock (the original `set_ipv4root`), on the shared host
//! network stack, with cgroup-BPF socket hooks on a cgroup directory:
//!
//! - socket creation: a family with no locked address gets no sockets at
//!   all (so an IPv4-only lock leaves no `::` to escape through, and
//!   programs that try IPv6 first fall back to IPv4);
//! - bind: the wildcard becomes the first locked address; any other
//!   address not in the lock is refused (EPERM);
//! - connect: the socket is bound to the first locked address first, so
//!   that is the source; a socket already bound elsewhere is refused;
//! - UDP sendmsg without connect: the source becomes the first locked
//!   address; an explicit other source is refused;
//! - every packet the cgroup's sockets send or receive: its local address
//!   (source going out, destination coming in; the broadcast address too,
//!   coming in) must be a locked one, or it is dropped. This catches what
//!   the socket hooks cannot see: a socket that listens without binding
//!   (the kernel binds it to the wildcard itself), ping sockets, IPv4
//!   through an IPv6 socket.
//!
//! The lock's own loopback ("lback", as the original's network contexts
//! had): where 127.0.0.1 is not itself locked, the locked processes get a
//! loopback of their own, one address L in 127.0.0.0/8 chosen per lock:
//! - bind to 127.0.0.0/8 binds L instead;
//! - TCP/UDP to 127.0.0.0/8 goes from L to the lock's own service on that
//!   port: the one bound to L, else the one on the first locked address
//!   (where a bind to all addresses went); to another 127.x address, a
//!   service another lock bound to its own address there is reached as
//!   it is (marked at bind in a socket storage all locks share); with
//!   none, EPERM — never a host service; ::1 and ::ffff:127.0.0.0/104
//!   are refused likewise;
//! - packets to L must carry the lock's mark, which only its own sockets
//!   put on what they send to or from L: nobody outside reaches L;
//! - getsockname, getpeername, accept and recvfrom show L as 127.0.0.1.
//!
//! The lock is one-shot: the programs are attached with ALLOW_MULTI, so
//! those of an outer lock keep running for everything inside, and the
//! process is moved into a cgroup namespace rooted at its lock, from which
//! it cannot move its processes out.

use crate::error::{Context, Error, Result};
use crate::kernel::bpf::{self, Asm, Label, R0, R1, R10, R2, R3, R4, R5, R6, R7, R8, R9};
use crate::kernel::cgroup::{self, Layout};
use crate::sys;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Extended attribute recording a lock on its cgroup directory.
pub const XATTR_IP: &str = "trusted.vsbox.ip";
/// Extended attribute recording the lock's own loopback address.
pub const XATTR_LBACK: &str = "trusted.vsbox.lback";
pub const MAX_ADDRS: usize = crate::abi::VX_NET_MAX_ADDRS as usize;

const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddrSet {
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
    /// Broadcast addresses whose datagrams may come in (chbind --bcast,
    /// IPROOTBCAST).
    pub bcast: Vec<Ipv4Addr>,
    /// The lock's own loopback address (see the module's comment); None:
    /// 127.0.0.0/8 stays the host's (127.0.0.1 is locked, or no IPv4).
    pub lback: Option<Ipv4Addr>,
}

impl AddrSet {
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    pub fn push(&mut self, a: IpAddr) -> Result<()> {
        if self.v4.len() + self.v6.len() >= MAX_ADDRS {
            return Err(Error::usage(format!("too many addresses (at most {MAX_ADDRS})")));
        }
        match a {
            IpAddr::V4(a) if !self.v4.contains(&a) => self.v4.push(a),
            IpAddr::V6(a) if !self.v6.contains(&a) => self.v6.push(a),
            _ => {}
        }
        Ok(())
    }

    /// Whether the lock gets a loopback of its own: it has IPv4 addresses
    /// and 127.0.0.1 is not one of them (`chbind --ip lo` asks for the
    /// host's loopback itself).
    pub fn wants_lback(&self) -> bool {
        !self.v4.is_empty() && !self.v4.contains(&Ipv4Addr::LOCALHOST)
    }
}

/// The loopback address of guest context `xid`: 127.250.X.Y, X.Y being
/// its 16 bits (vserver(8); IPROOT_LBACK overrides it).
pub fn lback_for_xid(xid: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, 250, (xid >> 8) as u8, xid as u8)
}

/// The loopback address of a chbind lock, from its cgroup's id (unique
/// while it exists): 127.200-249.X.Y, apart from the guests' 127.250/16
/// and the 127.0/16 of host services.
pub fn lback_for_cgroup(dir: &Path) -> Result<Ipv4Addr> {
    use std::os::unix::fs::MetadataExt;
    let id = std::fs::metadata(dir).ctx(|| format!("read {}", dir.display()))?.ino();
    Ok(Ipv4Addr::new(127, 200 + ((id >> 16) % 50) as u8, (id >> 8) as u8, id as u8))
}

/// Whether `a` may be a lock's loopback: in 127.0.0.0/8, not 127.0.0.1
/// (the host's), not the network or broadcast address.
pub fn valid_lback(a: Ipv4Addr) -> bool {
    a.is_loopback() && a != Ipv4Addr::LOCALHOST && a != Ipv4Addr::new(127, 0, 0, 0) && a != Ipv4Addr::new(127, 255, 255, 255)
}

impl std::fmt::Display for AddrSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all: Vec<String> = self
            .v4
            .iter()
            .map(|a| a.to_string())
            .chain(self.v6.iter().map(|a| a.to_string()))
            .collect();
        f.write_str(&all.join(" "))
    }
}

/// Parses `ADDR`, `ADDR/PREFIX` or `ADDR/DOTTED.MASK` (the mask only
/// matters for aliases; the lock is on the address).
pub fn parse_addr(s: &str) -> Result<(IpAddr, Option<u8>)> {
    let bad = || Error::usage(format!("bad address '{s}'"));
    let (addr, mask) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match mask {
        None => None,
        Some(m) => match m.parse::<u8>() {
            Ok(p) if p <= max => Some(p),
            Ok(_) => return Err(bad()),
            Err(_) => {
                let dotted: Ipv4Addr = m.parse().map_err(|_| bad())?;
                let bits = u32::from(dotted);
                if !addr.is_ipv4() || bits.leading_ones() + bits.trailing_zeros() != 32 {
                    return Err(bad());
                }
                Some(bits.leading_ones() as u8)
            }
        },
    };
    Ok((addr, prefix))
}

/// The primary IPv4 address of network device `name`, if it exists.
pub fn device_addr(name: &str) -> Result<Option<Ipv4Addr>> {
    let ifs = nix::ifaddrs::getifaddrs().ctx(|| "list network interfaces")?;
    let mut known = false;
    for i in ifs.filter(|i| i.interface_name == name) {
        known = true;
        if let Some(a) = i.address.as_ref().and_then(|a| a.as_sockaddr_in()) {
            return Ok(Some(a.ip()));
        }
    }
    if known {
        return Err(Error::failed(format!("device {name}"), "it has no IPv4 address"));
    }
    Ok(None)
}

/// Parses one `--ip` value: an address or a device name.
pub fn parse_ip_arg(s: &str) -> Result<IpAddr> {
    if let Ok((a, _)) = parse_addr(s) {
        return Ok(a);
    }
    if s.contains(['.', ':', '/']) {
        return Err(Error::usage(format!("bad address '{s}'")));
    }
    match device_addr(s)? {
        Some(a) => Ok(IpAddr::V4(a)),
        None => Err(Error::usage(format!("'{s}' is neither an address nor a network device"))),
    }
}

/// An address's 32-bit words as the kernel stores them (network order
/// bytes, read as native-endian words).
fn words4(a: &Ipv4Addr) -> u32 {
    u32::from_ne_bytes(a.octets())
}
fn words6(a: &Ipv6Addr) -> [u32; 4] {
    let o = a.octets();
    [0, 1, 2, 3].map(|i| u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]]))
}

// Offsets in struct bpf_sock_addr and struct bpf_sock (linux/bpf.h).
const SA_USER_IP4: i16 = 4;
const SA_USER_IP6: i16 = 8;
const SA_USER_PORT: i16 = 24;
const SA_PROTOCOL: i16 = 36;
const SA_MSG_SRC_IP4: i16 = 40;
const SA_MSG_SRC_IP6: i16 = 44;
const SA_SK: i16 = 64;
const SK_FAMILY: i16 = 4;
const SK_SRC_IP4: i16 = 24;
const SK_SRC_IP6: i16 = 28;
/// Host byte order (linux/bpf.h).
const SK_SRC_PORT: i16 = 44;
const SK_DST_IP4: i16 = 52;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
const IPPROTO_ICMP: u32 = 1;
const IPPROTO_ICMPV6: u32 = 58;
const SOCK_RAW: u32 = 3;
const SK_TYPE: i16 = 8;
const SK_PROTOCOL: i16 = 12;
const ECONNREFUSED: i32 = 111;
// struct bpf_sockopt: level, optname; and the options refused.
const SO_LEVEL: i16 = 24;
const SO_OPTNAME: i16 = 28;
const SOL_IP: u32 = 0;
const IP_HDRINCL: u32 = 3;
const SOL_IPV6: u32 = 41;
const IPV6_HDRINCL: u32 = 36;
const SK_STORAGE_F_CREATE: i32 = 1;
const MAP_F_NO_PREALLOC: u32 = 1;
/// 127.0.0.1 as a word (see [`words4`]).
fn localhost4() -> u32 {
    words4(&Ipv4Addr::LOCALHOST)
}

/// Jumps to `yes` if the address at `base + off` (in register r6 or a
/// socket in r2) is one of `addrs`; falls through otherwise.
fn emit_member(a: &mut Asm, base: u8, off: i16, addrs: &[[u32; 4]], words: usize, yes: Label) {
    for addr in addrs {
        let next = a.label();
        for (i, w) in addr.iter().take(words).enumerate() {
            a.ldx_w(R3, base, off + 4 * i as i16);
            if i + 1 == words {
                a.jeq32(R3, *w, yes);
            } else {
                a.jne32(R3, *w, next);
            }
        }
        a.bind(next);
    }
}

/// Jumps to `yes` when all `words` words at `base + off` are zero.
fn emit_is_any(a: &mut Asm, base: u8, off: i16, words: usize, yes: Label) {
    let no = a.label();
    for i in 0..words {
        a.ldx_w(R3, base, off + 4 * i as i16);
        a.jne32(R3, 0, no);
    }
    a.ja(yes);
    a.bind(no);
}

/// Writes the first locked address at `r6 + off`.
fn emit_store_first(a: &mut Asm, off: i16, first: &[u32; 4], words: usize) {
    for (i, w) in first.iter().take(words).enumerate() {
        a.mov32_imm(R3, *w);
        a.stx_w(R6, off + 4 * i as i16, R3);
    }
}

/// bind, and UDP sendmsg: the wildcard becomes the first address (at
/// `off` in the context), a listed address passes, anything else fails.
fn rewrite_or_check(off: i16, addrs: &[[u32; 4]], words: usize) -> Vec<bpf::Insn> {
    let mut a = Asm::new();
    let (any, allow) = (a.label(), a.label());
    a.mov(R6, R1);
    emit_is_any(&mut a, R6, off, words, any);
    emit_member(&mut a, R6, off, addrs, words, allow);
    a.ret(0);
    a.bind(any);
    emit_store_first(&mut a, off, &addrs[0], words);
    a.bind(allow);
    a.ret(1);
    a.finish()
}

/// connect: bpf_bind() the socket to the first address (port 0, so the
/// kernel picks one); if the socket was bound already, it must be bound to
/// a listed address.
fn connect_prog(v6: bool, addrs: &[[u32; 4]]) -> Vec<bpf::Insn> {
    let mut a = Asm::new();
    let allow = a.label();
    a.mov(R6, R1);
    let first = addrs[0];
    let len = if v6 {
        // struct sockaddr_in6 at fp-32: family, port, flowinfo, addr, scope.
        for off in [-32, -24, -16, -8] {
            a.st_dw_zero(R10, off);
        }
        a.st_h(R10, -32, AF_INET6 as u16);
        for (i, w) in first.iter().enumerate() {
            a.st_w(R10, -24 + 4 * i as i16, *w);
        }
        28
    } else {
        // struct sockaddr_in at fp-16: family, port, addr, zero.
        a.st_dw_zero(R10, -16).st_dw_zero(R10, -8);
        a.st_h(R10, -16, AF_INET as u16);
        a.st_w(R10, -12, first[0]);
        16
    };
    a.mov(R1, R6)
        .mov(R2, R10)
        .add_imm(R2, -(if v6 { 32 } else { 16 }))
        .mov_imm(R3, len)
        .call(bpf::HELPER_BIND);
    a.jeq(R0, 0, allow);
    a.ldx_dw(R2, R6, SA_SK);
    if v6 {
        emit_member(&mut a, R2, SK_SRC_IP6, addrs, 4, allow);
    } else {
        emit_member(&mut a, R2, SK_SRC_IP4, addrs, 1, allow);
    }
    a.ret(0);
    a.bind(allow);
    a.ret(1);
    a.finish()
}

/// Jumps to `yes` when the IPv4 address at `base + off` is in
/// 127.0.0.0/8 (its first byte, the word's lowest, is 127).
fn emit_is_loopback4(a: &mut Asm, base: u8, off: i16, yes: Label) {
    a.ldx_w(R3, base, off);
    a.and32_imm(R3, 0xff);
    a.jeq32(R3, 127, yes);
}

/// A destination address for [`emit_lookup`]: known when the program is
/// built, or the context's user_ip4.
#[derive(Clone, Copy)]
enum Dst {
    Const(u32),
    Ctx,
}

/// Whose socket [`emit_lookup`] accepts, by its mark in the socket
/// storage (see [`tag_map`]): this lock's (marked with its loopback
/// address's word), or a service any lock bound to one of its own
/// addresses (marked [`TAG_PUBLIC`]; not one on a lock's loopback).
#[derive(Clone, Copy)]
enum Owner {
    Lock(u32),
    AnyLock,
}

/// Looks up the socket of protocol `helper` (bpf_sk_lookup_tcp/udp) that
/// would receive for `dst` on the port the context's user_port names;
/// jumps to `found` when there is one bound to that address itself (with
/// `wildcard`, or to 0.0.0.0: a UDP socket the kernel bound at its first
/// sendto) and marked by `owner` in socket storage `map`. A socket the
/// host bound there (squatting a lock's loopback port) is not found: the
/// lock's packets could reach it, its answers never come back. The found
/// socket's peer address (0 if it is not connected) is left at
/// [`PEER_SLOT`] on the stack. The lookup is from the context's socket
/// (its address, else `from`, and its port): a connected UDP socket is
/// found only by the peer it is connected to.
#[allow(clippy::too_many_arguments)]
fn emit_lookup(a: &mut Asm, helper: i32, from: u32, dst: Dst, map: i32, owner: Owner, wildcard: bool, found: Label) {
    let (miss, addr_ok) = (a.label(), a.label());
    let load_dst = |a: &mut Asm, reg: u8| {
        match dst {
            Dst::Const(w) => a.mov32_imm(reg, w),
            Dst::Ctx => a.ldx_w(reg, R6, SA_USER_IP4),
        };
    };
    // struct bpf_sock_tuple.ipv4 at fp-48: saddr, daddr, sport, dport.
    let bound = a.label();
    a.st_dw_zero(R10, -48).st_dw_zero(R10, -40);
    a.ldx_dw(R2, R6, SA_SK);
    a.ldx_w(R3, R2, SK_SRC_IP4).jne32(R3, 0, bound);
    a.mov32_imm(R3, from);
    a.bind(bound);
    a.stx_w(R10, -48, R3);
    a.ldx_w(R3, R2, SK_SRC_PORT).be16(R3).stx_h(R10, -40, R3);
    load_dst(a, R2);
    a.stx_w(R10, -44, R2);
    a.ldx_w(R2, R6, SA_USER_PORT).stx_h(R10, -38, R2);
    a.mov(R1, R6)
        .mov(R2, R10)
        .add_imm(R2, -48)
        .mov_imm(R3, 12)
        .mov_imm(R4, -1) // BPF_F_CURRENT_NETNS
        .mov_imm(R5, 0)
        .call(helper);
    a.jeq(R0, 0, miss);
    a.mov(R7, R0);
    a.ldx_w(R8, R7, SK_SRC_IP4);
    a.ldx_w(R3, R7, SK_DST_IP4).stx_w(R10, PEER_SLOT, R3);
    let untagged = a.label();
    a.mov_imm(R9, 0);
    a.ld_map_fd(R1, map)
        .mov(R2, R7)
        .mov_imm(R3, 0)
        .mov_imm(R4, 0)
        .call(bpf::HELPER_SK_STORAGE_GET);
    a.jeq(R0, 0, untagged);
    a.ldx_dw(R9, R0, 0);
    a.bind(untagged);
    a.mov(R1, R7).call(bpf::HELPER_SK_RELEASE);
    load_dst(a, R3);
    a.jeq32_reg(R8, R3, addr_ok);
    if wildcard {
        a.jeq32(R8, 0, addr_ok);
    }
    a.ja(miss);
    a.bind(addr_ok);
    match owner {
        Owner::Lock(lb) => a.jeq32(R9, lb, found),
        Owner::AnyLock => a.rsh_imm(R9, 32).jne_imm(R9, 0, found),
    };
    a.bind(miss);
}

/// A socket's mark in the socket storage (one u64): the word of the
/// loopback address of the lock whose socket it is, and with this bit a
/// service bound to one of the lock's own addresses, which other locks
/// may reach on a loopback alias.
const TAG_PUBLIC: u64 = 1 << 32;

/// Marks the context's socket in socket storage `map` with `value`,
/// creating its entry if need be.
fn emit_tag(a: &mut Asm, map: i32, value: u64) {
    let done = a.label();
    a.ldx_dw(R2, R6, SA_SK);
    a.ld_map_fd(R1, map)
        .mov_imm(R3, 0)
        .mov_imm(R4, SK_STORAGE_F_CREATE)
        .call(bpf::HELPER_SK_STORAGE_GET);
    a.jeq(R0, 0, done);
    a.ld_imm64(R1, value).stx_dw(R0, 0, R1);
    a.bind(done);
}

/// Where [`emit_lookup`] leaves the found socket's peer address.
const PEER_SLOT: i16 = -52;

/// Which hook a loopback program is for: connect (the source is the
/// socket's address) or UDP sendmsg (the datagram's, msg_src_ip4).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Connect,
    Send,
}

/// Refuses: a connect with ECONNREFUSED (nothing of the lock's own
/// listens there, as on any machine: at once, never a SYN into the void)
/// where the kernel has bpf_set_retval (`errno`), a datagram with EPERM.
fn emit_refuse(a: &mut Asm, via: Via, errno: bool) {
    if via == Via::Connect && errno {
        a.mov_imm(R1, -ECONNREFUSED).call(bpf::HELPER_SET_RETVAL);
    }
    a.ret(0);
}

/// The source for another lock's service: `addr`, unless the socket (or
/// datagram) has one of `ok` already; anything else is refused.
fn emit_source(a: &mut Asm, via: Via, addr: u32, ok: &[[u32; 4]]) {
    let done = a.label();
    match via {
        Via::Connect => {
            emit_bind_to(a, addr);
            a.jeq(R0, 0, done);
            a.ldx_dw(R2, R6, SA_SK);
            emit_member(a, R2, SK_SRC_IP4, ok, 1, done);
            a.ret(0);
        }
        Via::Send => {
            let any = a.label();
            emit_is_any(a, R6, SA_MSG_SRC_IP4, 1, any);
            emit_member(a, R6, SA_MSG_SRC_IP4, ok, 1, done);
            a.ret(0);
            a.bind(any);
            a.mov32_imm(R3, addr).stx_w(R6, SA_MSG_SRC_IP4, R3);
        }
    }
    a.bind(done);
}

/// bpf_bind() the context's socket to `addr`, port 0 (the kernel picks
/// one at connect); r0 is 0 on success.
fn emit_bind_to(a: &mut Asm, addr: u32) {
    a.st_dw_zero(R10, -16).st_dw_zero(R10, -8);
    a.st_h(R10, -16, AF_INET as u16);
    a.st_w(R10, -12, addr);
    a.mov(R1, R6).mov(R2, R10).add_imm(R2, -16).mov_imm(R3, 16).call(bpf::HELPER_BIND);
}

/// The source for the lock's own loopback service: `lback`, so that the
/// service sees (and answers) 127.0.0.1. A connecting socket bound
/// already keeps its address if it is the lock's (`ok`). A datagram goes
/// from `lback` whatever source it asked for — unless it answers a
/// connected socket of the lock's (UDP, `tag`), which takes datagrams
/// only from the address it is connected to: the lock's first address
/// when it asked a service on all addresses. With `tag`, a socket bound
/// here or by the kernel (0.0.0.0, at its first sendto) is marked as the
/// lock's, so that the service's answer finds it.
fn emit_own_source(a: &mut Asm, via: Via, lback: u32, ok: &[[u32; 4]], tag: Option<i32>) {
    let done = a.label();
    match via {
        Via::Connect => {
            let bound = a.label();
            emit_bind_to(a, lback);
            a.jne_imm(R0, 0, bound);
            if let Some(map) = tag {
                emit_tag(a, map, u64::from(lback));
            }
            a.ja(done);
            a.bind(bound);
            a.ldx_dw(R2, R6, SA_SK);
            emit_member(a, R2, SK_SRC_IP4, ok, 1, done);
            a.ret(0);
        }
        Via::Send => {
            let (peer, set) = (a.label(), a.label());
            if tag.is_some() {
                emit_member(a, R10, PEER_SLOT, ok, 1, peer);
            }
            a.mov32_imm(R3, lback);
            if tag.is_some() {
                a.ja(set);
                a.bind(peer);
                a.ldx_w(R3, R10, PEER_SLOT);
            }
            a.bind(set);
            a.stx_w(R6, SA_MSG_SRC_IP4, R3);
            if let Some(map) = tag {
                a.ldx_dw(R2, R6, SA_SK);
                a.ldx_w(R3, R2, SK_SRC_IP4).jne32(R3, 0, done);
                emit_tag(a, map, u64::from(lback));
            }
        }
    }
    a.bind(done);
}

/// The destination at `r6 + SA_USER_IP4` is in 127.0.0.0/8 and not
/// locked. 127.0.0.1 and `lback` are the lock's own loopback: the lock's
/// service on that port, bound to `lback` (for UDP also a socket of the
/// lock's the kernel bound to 0.0.0.0: a client awaiting an answer), else
/// on the first locked address (a bind to all addresses), from `lback`.
/// Another 127.x address may be another lock's own address (guests on
/// loopback aliases): a service bound there by a lock is reached as it
/// is, from the first locked address; failing that, the lock's own
/// loopback again. Only sockets marked in `map` count (never one the host
/// bound there); with none, ECONNREFUSED (connect) or EPERM (sendmsg) —
/// never a host service. Other protocols (ping) just go to `lback`.
fn emit_loopback(a: &mut Asm, via: Via, addrs: &[[u32; 4]], lback: u32, map: i32, errno: bool) {
    let first = addrs[0][0];
    let mut mine = addrs.to_vec();
    mine.push([lback, 0, 0, 0]);
    let (tcp, udp, other) = (a.label(), a.label(), a.label());
    a.ldx_w(R2, R6, SA_PROTOCOL);
    a.jeq32(R2, IPPROTO_TCP, tcp);
    a.jeq32(R2, IPPROTO_UDP, udp);
    a.ja(other);
    for (label, helper, is_udp) in [(tcp, bpf::HELPER_SK_LOOKUP_TCP, false), (udp, bpf::HELPER_SK_LOOKUP_UDP, true)] {
        a.bind(label);
        let (own, to_other, to_lback, to_first) = (a.label(), a.label(), a.label(), a.label());
        a.st_w(R10, PEER_SLOT, 0);
        a.ldx_w(R3, R6, SA_USER_IP4);
        a.jeq32(R3, localhost4(), own);
        a.jeq32(R3, lback, own);
        emit_lookup(a, helper, first, Dst::Ctx, map, Owner::AnyLock, false, to_other);
        a.bind(own);
        emit_lookup(a, helper, lback, Dst::Const(lback), map, Owner::Lock(lback), is_udp, to_lback);
        emit_lookup(a, helper, lback, Dst::Const(first), map, Owner::Lock(lback), false, to_first);
        emit_refuse(a, via, errno);
        a.bind(to_other);
        emit_source(a, via, first, addrs);
        a.ret(1);
        for (label, to) in [(to_first, first), (to_lback, lback)] {
            a.bind(label);
            emit_own_source(a, via, lback, &mine, is_udp.then_some(map));
            a.mov32_imm(R3, to).stx_w(R6, SA_USER_IP4, R3);
            a.ret(1);
        }
    }
    a.bind(other);
    emit_own_source(a, via, lback, &mine, None);
    a.mov32_imm(R3, lback).stx_w(R6, SA_USER_IP4, R3);
    a.ret(1);
}

/// bind4: as [`rewrite_or_check`], and 127.0.0.0/8 becomes `lback`; a
/// socket bound to `lback` is marked as the lock's in socket storage
/// `map`, one bound to a locked address also as public: the lock's own
/// loopback clients reach the first, other locks (on a loopback alias)
/// the second — and never a socket the host bound there.
fn bind4_prog(addrs: &[[u32; 4]], lback: Option<(u32, i32)>) -> Vec<bpf::Insn> {
    let Some((lback, map)) = lback else {
        return rewrite_or_check(SA_USER_IP4, addrs, 1);
    };
    let mut a = Asm::new();
    let (any, allow, lo) = (a.label(), a.label(), a.label());
    a.mov(R6, R1);
    emit_is_any(&mut a, R6, SA_USER_IP4, 1, any);
    emit_member(&mut a, R6, SA_USER_IP4, addrs, 1, allow);
    emit_is_loopback4(&mut a, R6, SA_USER_IP4, lo);
    a.ret(0);
    a.bind(lo);
    a.mov32_imm(R3, lback).stx_w(R6, SA_USER_IP4, R3);
    emit_tag(&mut a, map, u64::from(lback));
    a.ret(1);
    a.bind(any);
    emit_store_first(&mut a, SA_USER_IP4, &addrs[0], 1);
    a.bind(allow);
    emit_tag(&mut a, map, u64::from(lback) | TAG_PUBLIC);
    a.ret(1);
    a.finish()
}

/// connect4 and UDP sendmsg4: 127.0.0.0/8 (not locked) as
/// [`emit_loopback`] says; otherwise [`connect_prog`] or
/// [`rewrite_or_check`] on the source.
fn loopback4_prog(via: Via, addrs: &[[u32; 4]], lback: Option<(u32, i32)>, errno: bool) -> Vec<bpf::Insn> {
    let rest = match via {
        Via::Connect => connect_prog(false, addrs),
        Via::Send => rewrite_or_check(SA_MSG_SRC_IP4, addrs, 1),
    };
    let Some((lback, map)) = lback else {
        return rest;
    };
    let mut a = Asm::new();
    let (normal, lo) = (a.label(), a.label());
    a.mov(R6, R1);
    emit_member(&mut a, R6, SA_USER_IP4, addrs, 1, normal);
    emit_is_loopback4(&mut a, R6, SA_USER_IP4, lo);
    a.ja(normal);
    a.bind(lo);
    emit_loopback(&mut a, via, addrs, lback, map, errno);
    a.bind(normal);
    let mut head = a.finish();
    head.extend(rest.into_iter().skip(1)); // its own `r6 = r1`
    head
}

/// getpeername4 and recvmsg4 (`peer`), getsockname4 (not): the address
/// shown, at user_ip4, reads 127.0.0.1 when it is `lback`, or when it is
/// a locked address and the socket's other end is `lback` (a loopback
/// connection that reached a service on all addresses).
fn unmap_prog(peer: bool, addrs: &[[u32; 4]], lback: u32) -> Vec<bpf::Insn> {
    let mut a = Asm::new();
    let (local, done, locked) = (a.label(), a.label(), a.label());
    a.mov(R6, R1);
    a.ldx_w(R3, R6, SA_USER_IP4);
    a.jeq32(R3, lback, local);
    emit_member(&mut a, R6, SA_USER_IP4, addrs, 1, locked);
    a.ja(done);
    a.bind(locked);
    a.ldx_dw(R2, R6, SA_SK);
    a.ldx_w(R3, R2, if peer { SK_SRC_IP4 } else { SK_DST_IP4 });
    a.jeq32(R3, lback, local);
    a.ja(done);
    a.bind(local);
    a.mov32_imm(R3, localhost4()).stx_w(R6, SA_USER_IP4, R3);
    a.bind(done);
    a.ret(1);
    a.finish()
}

/// connect6 and UDP sendmsg6: the host's ::1 and IPv4 loopback through
/// ::ffff:127.0.0.0/104 are refused, then `rest` (whose first
/// instruction, `r6 = r1`, this replaces).
fn deny_loopback6(rest: Vec<bpf::Insn>) -> Vec<bpf::Insn> {
    let mut a = Asm::new();
    let (deny, not_one, not_mapped) = (a.label(), a.label(), a.label());
    a.mov(R6, R1);
    let one = words6(&Ipv6Addr::LOCALHOST);
    for (i, w) in one.iter().enumerate() {
        a.ldx_w(R3, R6, SA_USER_IP6 + 4 * i as i16);
        if i == 3 {
            a.jeq32(R3, *w, deny);
        } else {
            a.jne32(R3, *w, not_one);
        }
    }
    a.bind(not_one);
    a.ldx_w(R3, R6, SA_USER_IP6).jne32(R3, 0, not_mapped);
    a.ldx_w(R3, R6, SA_USER_IP6 + 4).jne32(R3, 0, not_mapped);
    a.ldx_w(R3, R6, SA_USER_IP6 + 8)
        .jne32(R3, u32::from_ne_bytes([0, 0, 0xff, 0xff]), not_mapped);
    emit_is_loopback4(&mut a, R6, SA_USER_IP6 + 12, deny);
    a.ja(not_mapped);
    a.bind(deny);
    a.ret(0);
    a.bind(not_mapped);
    let mut head = a.finish();
    head.extend(rest.into_iter().skip(1));
    head
}

/// socket(): no sockets of a family the lock has no address for; raw
/// sockets only for ICMP and ICMPv6 (ping, traceroute -I), as the
/// original's RAW_ICMP: a raw socket of another protocol is bound and
/// addressed past every hook (bind runs the raw protocol's own), so it
/// could put TCP or UDP from the lock's loopback address into the host's
/// loopback services. IPPROTO_RAW is refused with the rest.
fn sock_create_prog(deny_v4: bool, deny_v6: bool) -> Vec<bpf::Insn> {
    let mut a = Asm::new();
    let (deny, allow, v6) = (a.label(), a.label(), a.label());
    a.ldx_w(R2, R1, SK_FAMILY);
    if deny_v4 {
        a.jeq32(R2, AF_INET, deny);
    }
    if deny_v6 {
        a.jeq32(R2, AF_INET6, deny);
    }
    a.ldx_w(R3, R1, SK_TYPE).jne32(R3, SOCK_RAW, allow);
    a.ldx_w(R3, R1, SK_PROTOCOL);
    a.jeq32(R2, AF_INET6, v6);
    a.jeq32(R3, IPPROTO_ICMP, allow);
    a.ja(deny);
    a.bind(v6);
    a.jeq32(R3, IPPROTO_ICMPV6, allow);
    a.bind(deny);
    a.ret(0);
    a.bind(allow);
    a.ret(1);
    a.finish()
}

/// setsockopt(): no IP_HDRINCL or IPV6_HDRINCL, with which a raw ICMP
/// socket would write its own IP header (any protocol, any source).
fn sockopt_prog() -> Vec<bpf::Insn> {
    let mut a = Asm::new();
    let (deny, allow, v6) = (a.label(), a.label(), a.label());
    a.ldx_w(R2, R1, SO_LEVEL).ldx_w(R3, R1, SO_OPTNAME);
    a.jne32(R2, SOL_IP, v6);
    a.jeq32(R3, IP_HDRINCL, deny);
    a.ja(allow);
    a.bind(v6);
    a.jne32(R2, SOL_IPV6, allow);
    a.jeq32(R3, IPV6_HDRINCL, deny);
    a.bind(allow);
    a.ret(1);
    a.bind(deny);
    a.ret(0);
    a.finish()
}

// Offsets in struct __sk_buff, and in the IPv4 and IPv6 headers.
const SKB_MARK: i16 = 8;
const SKB_DATA: i16 = 76;
const SKB_SK: i16 = 168;
const SK_STATE: i16 = 72;
/// FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, CLOSING (linux/bpf.h BPF_TCP_*).
const TCP_CLOSING_STATES: [u32; 5] = [4, 5, 8, 9, 11];
const SKB_DATA_END: i16 = 80;
const SKB_PROTOCOL: i16 = 16;
const ETH_P_IP_BE: u32 = 0x0008;
const ETH_P_IPV6_BE: u32 = 0xDD86;
const IP4_TTL: i32 = 8;
const IP6_SRC: i32 = 8;
const IP6_DST: i32 = 24;

/// Every packet of the cgroup's sockets (IP header first): going out,
/// its source, coming in, its destination (or a broadcast address) must
/// be locked; a family without locked addresses passes nothing. With a
/// loopback of its own (`lback`): what goes out to or from it gets the
/// lock's mark (the address's own word), and what comes in for it must
/// carry that mark — only the lock's own sockets reach it; what goes out
/// from it goes to it or to a locked address only, and what goes to
/// another 127.0.0.0/8 address is TCP or UDP (which the connect and
/// sendmsg hooks let through only to another lock's service): no ICMP
/// (ping sockets, raw ICMP) into the host's loopback. With `deny_lo6`,
/// nothing goes to the host's ::1 either.
/// Coming in to or from the lock's loopback `lb`: on to `ours` when the
/// packet is the lock's own — marked by its sockets, or unmarked but for a
/// closing connection (what the kernel sends for a TIME_WAIT socket, its
/// last ACK or an RST, comes from a socket of its own outside the cgroup;
/// the connection was made with marked packets, so these may end it);
/// else falls through (no socket: `drop`).
fn emit_lock_own(a: &mut Asm, lb: u32, ours: Label, drop: Label) {
    a.ldx_w(R3, R6, SKB_MARK).jeq32(R3, lb, ours);
    a.ldx_dw(R2, R6, SKB_SK).jeq(R2, 0, drop);
    a.ldx_w(R3, R2, SK_STATE);
    for state in TCP_CLOSING_STATES {
        a.jeq32(R3, state, ours);
    }
}

fn packet_prog(ingress: bool, v4: &[[u32; 4]], v6: &[[u32; 4]], bcast: &[[u32; 4]], lback: Option<u32>, deny_lo6: bool) -> Vec<bpf::Insn> {
    let mut a = Asm::new();
    let (allow, drop, ip4, ip6) = (a.label(), a.label(), a.label(), a.label());
    a.mov(R6, R1);
    a.ldx_w(R2, R6, SKB_PROTOCOL);
    a.jeq32(R2, ETH_P_IP_BE, ip4);
    a.jeq32(R2, ETH_P_IPV6_BE, ip6);
    a.ret(1);
    // The header is read in place when it is in the linear part (it
    // always is at this layer; a helper call per packet costs), else
    // `len` bytes from `off` are copied to the stack at `to` — or the
    // packet dropped.
    let header = |a: &mut Asm, need: i32, off: i32, len: i32, to: i32, direct: Label, copied: Label| {
        a.ldx_w(R7, R6, SKB_DATA).ldx_w(R8, R6, SKB_DATA_END);
        a.mov(R4, R7).add_imm(R4, need);
        let short = a.label();
        a.jgt_reg(R4, R8, short);
        a.ja(direct);
        a.bind(short);
        a.mov(R1, R6)
            .mov_imm(R2, off)
            .mov(R3, R10)
            .add_imm(R3, to)
            .mov_imm(R4, len)
            .call(bpf::HELPER_SKB_LOAD_BYTES);
        a.jeq(R0, 0, copied);
        a.ja(drop);
    };
    // The IPv4 decision: the source at `base + src`, the destination 4
    // on, the protocol byte 3 before.
    let decide4 = |a: &mut Asm, base: u8, src: i16| {
        let dst = src + 4;
        if ingress {
            // To a locked address that is not a loopback one, nothing from
            // 127.0.0.0/8 but the lock's own loopback, and that only as the
            // lock's own (anybody may bind the address; it is no secret):
            // a host process that binds 127.0.0.1 and connects to the
            // lock's address would look to its services like one of their
            // own localhost clients (whose loopback shows as 127.0.0.1).
            let not_lo = a.label();
            a.ldx_w(R3, base, src).and32_imm(R3, 0xff).jne32(R3, 127, not_lo);
            a.ldx_w(R3, base, dst).and32_imm(R3, 0xff).jeq32(R3, 127, not_lo);
            emit_member(a, base, src, v4, 1, not_lo);
            if let Some(lb) = lback {
                a.ldx_w(R3, base, src).jne32(R3, lb, drop);
                emit_lock_own(a, lb, not_lo, drop);
            }
            a.ja(drop);
            a.bind(not_lo);
            emit_member(a, base, dst, v4, 1, allow);
            emit_member(a, base, dst, bcast, 1, allow);
            if let Some(lb) = lback {
                a.ldx_w(R3, base, dst).jne32(R3, lb, drop);
                emit_lock_own(a, lb, allow, drop);
            }
        } else if let Some(lb) = lback {
            // The common case first: from a locked address.
            let (from_lb, src_ok, to_lb) = (a.label(), a.label(), a.label());
            emit_member(a, base, src, v4, 1, src_ok);
            a.ldx_w(R3, base, src).jeq32(R3, lb, from_lb);
            a.ja(drop);
            a.bind(src_ok);
            a.ldx_w(R3, base, dst).jeq32(R3, lb, to_lb);
            a.and32_imm(R3, 0xff).jne32(R3, 127, allow);
            emit_member(a, base, dst, v4, 1, allow);
            a.ldx_b(R3, base, src - 3);
            a.jeq32(R3, IPPROTO_TCP, allow).jeq32(R3, IPPROTO_UDP, allow);
            a.ja(drop);
            let mut mine = v4.to_vec();
            mine.push([lb, 0, 0, 0]);
            a.bind(from_lb);
            a.mov32_imm(R3, lb).stx_w(R6, SKB_MARK, R3);
            emit_member(a, base, dst, &mine, 1, allow);
            a.ja(drop);
            a.bind(to_lb);
            a.mov32_imm(R3, lb).stx_w(R6, SKB_MARK, R3);
            a.ja(allow);
            return;
        } else {
            emit_member(a, base, src, v4, 1, allow);
        }
        a.ja(drop);
    };
    a.bind(ip4);
    let (direct, copied) = (a.label(), a.label());
    // Bytes 8-19: TTL, protocol, checksum, source, destination.
    header(&mut a, 20, IP4_TTL, 12, -16, direct, copied);
    a.bind(copied);
    decide4(&mut a, R10, -12);
    a.bind(direct);
    decide4(&mut a, R7, (IP4_TTL + 4) as i16);
    // IPv6: coming in, the destination (16 bytes at 24); going out, the
    // source (at 8), and with `deny_lo6` the destination.
    a.bind(ip6);
    let (direct, copied) = (a.label(), a.label());
    if ingress || !deny_lo6 {
        let off = if ingress { IP6_DST } else { IP6_SRC };
        header(&mut a, 40, off, 16, -16, direct, copied);
        a.bind(copied);
        emit_member(&mut a, R10, -16, v6, 4, allow);
        a.ja(drop);
        a.bind(direct);
        emit_member(&mut a, R7, off as i16, v6, 4, allow);
        a.ja(drop);
    } else {
        // Source and destination, 32 bytes from 8.
        header(&mut a, 40, IP6_SRC, 32, -32, direct, copied);
        let one = words6(&Ipv6Addr::LOCALHOST);
        for (label, base, src) in [(copied, R10, -32i16), (direct, R7, IP6_SRC as i16)] {
            let src_ok = a.label();
            a.bind(label);
            emit_member(&mut a, base, src, v6, 4, src_ok);
            a.ja(drop);
            a.bind(src_ok);
            emit_member(&mut a, base, src + 16, &[one], 4, drop);
            a.ja(allow);
        }
    }
    a.bind(drop);
    a.ret(0);
    a.bind(allow);
    a.ret(1);
    a.finish()
}

/// The programs for a lock: (name, program type, attach type, code);
/// `tags`: the descriptor of the socket storage that marks sockets bound
/// by locks (see [`tag_map`]); `errno`: refused connects to the lock's
/// loopback get ECONNREFUSED (bpf_set_retval, Linux 5.18), else EPERM.
pub fn programs(set: &AddrSet, tags: Option<i32>, errno: bool) -> Vec<(&'static str, u32, u32, Vec<bpf::Insn>)> {
    use bpf::*;
    let mut out = vec![
        (
            "vsbox_sock",
            PROG_TYPE_CGROUP_SOCK,
            ATTACH_INET_SOCK_CREATE,
            sock_create_prog(set.v4.is_empty(), set.v6.is_empty()),
        ),
        ("vsbox_sockopt", PROG_TYPE_CGROUP_SOCKOPT, ATTACH_CGROUP_SETSOCKOPT, sockopt_prog()),
    ];
    let v4: Vec<[u32; 4]> = set.v4.iter().map(|a| [words4(a), 0, 0, 0]).collect();
    let v6: Vec<[u32; 4]> = set.v6.iter().map(words6).collect();
    let bcast: Vec<[u32; 4]> = set.bcast.iter().map(|a| [words4(a), 0, 0, 0]).collect();
    let lback = set.lback.filter(|_| set.wants_lback()).map(|a| words4(&a));
    let deny_lo6 = !set.v6.is_empty() && !set.v6.contains(&Ipv6Addr::LOCALHOST);
    // Without the socket storage (only in unit tests) the programs still
    // build; the kernel refuses to load them (descriptor -1).
    let lback_map = lback.map(|lb| (lb, tags.unwrap_or(-1)));
    out.push((
        "vsbox_in",
        PROG_TYPE_CGROUP_SKB,
        ATTACH_INET_INGRESS,
        packet_prog(true, &v4, &v6, &bcast, lback, false),
    ));
    out.push((
        "vsbox_out",
        PROG_TYPE_CGROUP_SKB,
        ATTACH_INET_EGRESS,
        packet_prog(false, &v4, &v6, &bcast, lback, deny_lo6),
    ));
    if !set.v4.is_empty() {
        out.push((
            "vsbox_bind4",
            PROG_TYPE_CGROUP_SOCK_ADDR,
            ATTACH_INET4_BIND,
            bind4_prog(&v4, lback_map),
        ));
        out.push((
            "vsbox_conn4",
            PROG_TYPE_CGROUP_SOCK_ADDR,
            ATTACH_INET4_CONNECT,
            loopback4_prog(Via::Connect, &v4, lback_map, errno),
        ));
        out.push((
            "vsbox_send4",
            PROG_TYPE_CGROUP_SOCK_ADDR,
            ATTACH_UDP4_SENDMSG,
            loopback4_prog(Via::Send, &v4, lback_map, false),
        ));
    }
    if let Some(lb) = lback {
        for (name, atype, peer) in [
            ("vsbox_peer4", ATTACH_INET4_GETPEERNAME, true),
            ("vsbox_recv4", ATTACH_UDP4_RECVMSG, true),
            ("vsbox_name4", ATTACH_INET4_GETSOCKNAME, false),
        ] {
            out.push((name, PROG_TYPE_CGROUP_SOCK_ADDR, atype, unmap_prog(peer, &v4, lb)));
        }
    }
    let deny6 = |p: Vec<bpf::Insn>| {
        if set.v6.contains(&Ipv6Addr::LOCALHOST) {
            p
        } else {
            deny_loopback6(p)
        }
    };
    if !set.v6.is_empty() {
        out.push((
            "vsbox_bind6",
            PROG_TYPE_CGROUP_SOCK_ADDR,
            ATTACH_INET6_BIND,
            rewrite_or_check(SA_USER_IP6, &v6, 4),
        ));
        out.push((
            "vsbox_conn6",
            PROG_TYPE_CGROUP_SOCK_ADDR,
            ATTACH_INET6_CONNECT,
            deny6(connect_prog(true, &v6)),
        ));
        out.push((
            "vsbox_send6",
            PROG_TYPE_CGROUP_SOCK_ADDR,
            ATTACH_UDP6_SENDMSG,
            deny6(rewrite_or_check(SA_MSG_SRC_IP6, &v6, 4)),
        ));
    }
    out
}

/// The programs only the lock's own loopback needs (Linux 5.8's hooks).
const LBACK_PROGRAMS: &[&str] = &["vsbox_peer4", "vsbox_recv4", "vsbox_name4"];

/// Locks every process in cgroup `dir` (now and later) to `set`.
pub fn lock_cgroup(layout: &Layout, dir: &Path, set: &AddrSet) -> Result<()> {
    let tags = match set.lback.filter(|_| set.wants_lback()) {
        Some(_) => Some(tag_map(layout)?),
        None => None,
    };
    let tags = tags.as_ref().map(|t| t.as_raw_fd());
    for (name, ptype, atype, code) in programs(set, tags, true) {
        let mut loaded = bpf::load(name, ptype, atype, &code);
        if loaded.is_err() && name == "vsbox_conn4" {
            // A kernel before 5.18 (no bpf_set_retval): EPERM instead.
            let plain = programs(set, tags, false).into_iter().find(|p| p.0 == name);
            if let Some((_, _, _, code)) = plain {
                loaded = bpf::load(name, ptype, atype, &code);
            }
        }
        let attached = loaded.and_then(|fd| bpf::attach(dir, &fd, atype));
        if let Err(mut e) = attached {
            if !LBACK_PROGRAMS.contains(&name) {
                return Err(e);
            }
            // Said plainly: what the kernel lacks, and the way around it.
            e.msg = format!(
                "{}: the lock's own 127.0.0.1 needs the cgroup getsockname, getpeername and recvmsg hooks \
                 (Linux 5.8); with 127.0.0.1 among its addresses the lock shares the host's loopback instead",
                e.msg
            );
            return Err(e);
        }
    }
    sys::setxattr(dir, XATTR_IP, set.to_string().as_bytes()).ctx(|| format!("record the lock on {}", dir.display()))?;
    if let Some(lb) = set.lback.filter(|_| set.wants_lback()) {
        sys::setxattr(dir, XATTR_LBACK, lb.to_string().as_bytes()).ctx(|| format!("record the loopback on {}", dir.display()))?;
    }
    Ok(())
}

/// On the cgroup root: the id of the socket storage marking sockets bound
/// by locks to their own addresses.
pub const XATTR_TAGS: &str = "trusted.vsbox.locktags";

/// The socket storage (one for all locks) in which a lock's bind marks a
/// socket bound to one of its addresses, so that another lock may reach
/// that service on a loopback address (guests on 127.x aliases) while the
/// host's loopback services stay out of reach. Found again by the id
/// recorded on the cgroup root; made (under a lock on the root) when
/// there is none yet or the last user has gone with it.
pub fn tag_map(layout: &Layout) -> Result<OwnedFd> {
    let root = &layout.v2;
    let dir = std::fs::File::open(root).ctx(|| format!("open {}", root.display()))?;
    let _held = nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::sys(format!("lock {}", root.display()), e))?;
    let recorded = sys::getxattr(root, XATTR_TAGS)
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8_lossy(&v).parse::<u32>().ok());
    if let Some(map) = recorded.and_then(|id| bpf::map_by_id(id).ok()) {
        return Ok(map);
    }
    let btf = bpf::btf_int_u64()?;
    let map = bpf::map_create(bpf::MAP_TYPE_SK_STORAGE, 4, 8, MAP_F_NO_PREALLOC, Some((&btf, 1, 2)))?;
    // Unrecorded (a read-only cgroup mount), it still serves this lock;
    // only later locks will not find the marks it makes.
    let _ = bpf::map_id(&map).and_then(|id| {
        sys::setxattr(root, XATTR_TAGS, id.to_string().as_bytes()).ctx(|| format!("record the socket marks on {}", root.display()))
    });
    Ok(map)
}

/// The loopback address recorded on a lock's directory, if any.
pub fn lback_of(dir: &Path) -> Option<Ipv4Addr> {
    sys::getxattr(dir, XATTR_LBACK)
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8_lossy(&v).parse().ok())
}

/// The lock on `dir` or an ancestor, if any.
pub fn lock_of(layout: &Layout, dir: &Path) -> Option<String> {
    dir.ancestors()
        .take_while(|d| d.starts_with(&layout.v2))
        .find_map(|d| sys::getxattr(d, XATTR_IP).ok().flatten())
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Where chbind puts a locked command: a new cgroup below the caller's
/// own, so the caller's resource limits and context still apply.
pub fn new_lock_dir(layout: &Layout) -> Result<PathBuf> {
    let own = layout
        .own_dir()
        .map_err(|_| Error::failed("change the address lock", "this process is already locked: the lock is one-shot"))?;
    if let Some(existing) = lock_of(layout, &own) {
        return Err(Error::failed(
            "change the address lock",
            format!("this process is already bound to {existing}: the lock is one-shot"),
        ));
    }
    layout.unseal()?;
    cgroup::sweep(layout, &own);
    let dir = own.join(format!("vsbox-bind.{}", std::process::id()));
    cgroup::create(&dir)?;
    cgroup::record_owner(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_masks() {
        assert_eq!(parse_addr("127.0.0.2").unwrap(), ("127.0.0.2".parse().unwrap(), None));
        assert_eq!(parse_addr("10.1.2.3/26").unwrap().1, Some(26));
        assert_eq!(parse_addr("10.1.2.3/255.255.255.0").unwrap().1, Some(24));
        assert_eq!(parse_addr("::1/64").unwrap().1, Some(64));
        for bad in ["", "1.2.3", "1.2.3.4/33", "1.2.3.4/255.0.255.0", "::1/129", "x", "1.2.3.4/"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn address_words_are_network_order_bytes() {
        let w = words4(&Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(w.to_ne_bytes(), [127, 0, 0, 2]);
        assert_eq!(words6(&Ipv6Addr::LOCALHOST)[3].to_ne_bytes(), [0, 0, 0, 1]);
    }

    #[test]
    fn program_set_follows_the_families() {
        let mut s = AddrSet::default();
        s.push("127.0.0.2".parse().unwrap()).unwrap();
        let names: Vec<_> = programs(&s, None, true).iter().map(|p| p.0).collect();
        assert_eq!(
            names,
            [
                "vsbox_sock",
                "vsbox_sockopt",
                "vsbox_in",
                "vsbox_out",
                "vsbox_bind4",
                "vsbox_conn4",
                "vsbox_send4"
            ]
        );
        s.push("::1".parse().unwrap()).unwrap();
        assert_eq!(programs(&s, None, true).len(), 10);
        for _ in 0..20 {
            let _ = s.push("127.0.0.9".parse().unwrap());
        }
        assert_eq!(s.v4.len(), 2, "duplicates are kept once");
    }

    #[test]
    fn a_lock_gets_its_own_loopback_unless_it_has_the_hosts() {
        let mut s = AddrSet::default();
        s.push("10.0.0.5".parse().unwrap()).unwrap();
        s.lback = Some(lback_for_xid(49153));
        assert_eq!(s.lback, Some(Ipv4Addr::new(127, 250, 192, 1)));
        let names: Vec<_> = programs(&s, None, true).iter().map(|p| p.0).collect();
        for n in ["vsbox_peer4", "vsbox_recv4", "vsbox_name4"] {
            assert!(names.contains(&n), "{names:?}");
        }
        s.push("127.0.0.1".parse().unwrap()).unwrap();
        assert!(!s.wants_lback());
        assert!(!programs(&s, None, true).iter().any(|p| p.0 == "vsbox_peer4"));
        for bad in ["127.0.0.1", "127.0.0.0", "127.255.255.255", "10.0.0.1"] {
            assert!(!valid_lback(bad.parse().unwrap()), "{bad}");
        }
        assert!(valid_lback("127.250.0.0".parse().unwrap()));
    }
}
