//! Seccomp filters that make context restrictions irreversible where no
//! namespace or capability does it:
//! - every context: no typing into a terminal it shares (TIOCSTI,
//!   TIOCLINUX), since a context may keep the caller's terminal, and no
//!   open_by_handle_at(), which opens any inode of a file system by its
//!   handle, past a guest's root (the "shocker" escape), whatever
//!   capabilities S_CAPS grants, and no kernel keyrings: they are kept
//!   per uid, so a context's root would reach the host root's keys; and
//!   no new btrfs subvolumes or snapshots, whose files no quota of the
//!   server's tree counts, and no FS_IOC_FSSETXATTR, which would move
//!   files out of its project quota (guest/quota.rs; the kernel refuses
//!   that in a user namespace of its own, not to a server that keeps the
//!   host's);
//! - `lock`: no new namespaces (unshare, setns, clone with CLONE_NEW*;
//!   clone3 answers ENOSYS so libc falls back to the checkable clone);
//! - the spectator context 1: sees everything, may signal or trace nothing.
//!
//! Both x86_64 and i386 (int 0x80) entry points are covered; x32 calls are
//! refused.

use crate::error::{Context, Result};
use crate::sys::{self, SockFilter};

/// linux/audit.h (libc does not carry these): the architectures whose
/// system call numbers the filters know.
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// __X32_SYSCALL_BIT (asm/unistd.h).
const X32_BIT: u32 = 0x4000_0000;
const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_ERRNO: u32 = libc::SECCOMP_RET_ERRNO;
const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

// Classic BPF opcodes (linux/filter.h).
const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;

/// CLONE_NEW{NS,CGROUP,UTS,IPC,USER,PID,NET}; CLONE_NEWTIME (0x80) only
/// counts for unshare, where it does not collide with the exit signal.
const CLONE_NS_FLAGS: u32 = 0xFE02_0000;
const UNSHARE_NS_FLAGS: u32 = CLONE_NS_FLAGS | 0x80;
const TIOCSTI: u32 = libc::TIOCSTI as u32;
const TIOCLINUX: u32 = libc::TIOCLINUX as u32;
/// BTRFS_IOC_SNAP_CREATE, _SUBVOL_CREATE, _SNAP_CREATE_V2 and
/// _SUBVOL_CREATE_V2: _IOW(0x94, 1, 14, 23, 24) of 4096-byte arguments
/// (include/uapi/linux/btrfs.h).
const BTRFS_NEW_SUBVOL: [u32; 4] = [0x5000_9401, 0x5000_940E, 0x5000_9417, 0x5000_9418];
/// FS_IOC_FSSETXATTR: _IOW('X', 32, struct fsxattr).
const FS_IOC_FSSETXATTR: u32 = 0x401C_5820;

#[derive(Clone, Copy)]
enum When {
    Always,
    /// Argument (low 32 bits) has any of these bits.
    ArgHasBits(u32, u32),
    /// Argument (low 32 bits) equals the value.
    ArgIs(u32, u32),
    /// Argument i equals v, and argument j masked with m equals w:
    /// (i, v, j, m, w).
    ArgIsAndMasked(u32, u32, u32, u32, u32),
}

/// A system call rule: (x86_64 number, or u32::MAX where that entry point
/// has none; i386 number; condition; errno in the refusal tables, which
/// `build` turns into SECCOMP_RET_ERRNO, or the whole return value in
/// [`SUPERVISED`] and for [`assemble`]).
type Rule = (u32, u32, When, u32);

const BASE: &[Rule] = &[
    (16, 54, When::ArgIs(1, TIOCSTI), EPERM),   // ioctl
    (16, 54, When::ArgIs(1, TIOCLINUX), EPERM), // ioctl
    (16, 54, When::ArgIs(1, BTRFS_NEW_SUBVOL[0]), EPERM),
    (16, 54, When::ArgIs(1, BTRFS_NEW_SUBVOL[1]), EPERM),
    (16, 54, When::ArgIs(1, BTRFS_NEW_SUBVOL[2]), EPERM),
    (16, 54, When::ArgIs(1, BTRFS_NEW_SUBVOL[3]), EPERM),
    (16, 54, When::ArgIs(1, FS_IOC_FSSETXATTR), EPERM),
    (469, 469, When::Always, EPERM), // file_setattr: the same, Linux 6.17
    (304, 342, When::Always, EPERM), // open_by_handle_at
    (248, 286, When::Always, EPERM), // add_key
    (249, 287, When::Always, EPERM), // request_key
    (250, 288, When::Always, EPERM), // keyctl
];

/// A server that keeps the host's user namespace (S_CAPS grants a
/// capability that counts only there) makes no user namespace of its own:
/// its root, host uid 0, would hold every capability there, and with a
/// cgroup namespace mount its cgroup hierarchy writable and lift its own
/// limits (memory.max, pids.max), whose files are uid 0's.
const NO_USERNS: &[Rule] = &[
    (272, 310, When::ArgHasBits(0, CLONE_NEWUSER), EPERM), // unshare
    (56, 120, When::ArgHasBits(0, CLONE_NEWUSER), EPERM),  // clone
    (435, 435, When::Always, ENOSYS),                      // clone3
];

/// CLONE_NEWUSER (linux/sched.h).
const CLONE_NEWUSER: u32 = 0x1000_0000;

const LOCK: &[Rule] = &[
    (272, 310, When::ArgHasBits(0, UNSHARE_NS_FLAGS), EPERM), // unshare
    (308, 346, When::Always, EPERM),                          // setns
    (56, 120, When::ArgHasBits(0, CLONE_NS_FLAGS), EPERM),    // clone
    (435, 435, When::Always, ENOSYS),                         // clone3
];

/// A context locked to its addresses (IPROOT, chbind) sees no link-level
/// traffic, whatever CAP_NET_RAW lets it do: no packet sockets (AF_PACKET,
/// and the obsolete AF_INET SOCK_PACKET the kernel turns into one), which
/// would read every packet of the host, loopback included. Raw IP sockets
/// are the network lock's (ICMP only).
const NET_LOCK: &[Rule] = &[
    (41, 359, When::ArgIs(0, libc::AF_PACKET as u32), EPERM), // socket
    (41, 359, When::ArgIsAndMasked(0, libc::AF_INET as u32, 1, 0xF, SOCK_PACKET), EPERM),
    // i386 socketcall(SYS_SOCKET, args): the family is in memory, out of
    // the filter's sight (see SUPERVISED).
    (u32::MAX, 102, When::ArgIs(0, 1), ENOSYS),
];

/// linux/socket.h's obsolete SOCK_PACKET (libc deprecates the name).
const SOCK_PACKET: u32 = 10;

const SPECTATOR: &[Rule] = &[
    (62, 37, When::Always, EPERM),   // kill
    (200, 238, When::Always, EPERM), // tkill
    (234, 270, When::Always, EPERM), // tgkill
    (129, 178, When::Always, EPERM), // rt_sigqueueinfo
    (297, 335, When::Always, EPERM), // rt_tgsigqueueinfo
    (424, 424, When::Always, EPERM), // pidfd_send_signal
    (438, 438, When::Always, EPERM), // pidfd_getfd
    (101, 26, When::Always, EPERM),  // ptrace
    (310, 347, When::Always, EPERM), // process_vm_readv
    (311, 348, When::Always, EPERM), // process_vm_writev
    (440, 440, When::Always, EPERM), // process_madvise
];

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

fn arg_low(i: u32) -> u32 {
    16 + 8 * i // offsetof(struct seccomp_data, args[i]), little-endian low word
}

/// The checks of one rule, the call's number already matched: falls
/// through when the rule does not match (so a number's rules can be
/// concatenated), returns `ret` when it does.
fn emit_checks(out: &mut Vec<SockFilter>, when: When, ret: u32) {
    let deny = stmt(RET_K, ret);
    match when {
        When::Always => out.push(deny),
        When::ArgHasBits(i, bits) => {
            out.push(stmt(LD_W_ABS, arg_low(i)));
            out.push(jump(JSET_K, bits, 0, 1));
            out.push(deny);
        }
        When::ArgIs(i, v) => {
            out.push(stmt(LD_W_ABS, arg_low(i)));
            out.push(jump(JEQ_K, v, 0, 1));
            out.push(deny);
        }
        When::ArgIsAndMasked(i, v, j, m, w) => {
            out.push(stmt(LD_W_ABS, arg_low(i)));
            out.push(jump(JEQ_K, v, 0, 4));
            out.push(stmt(LD_W_ABS, arg_low(j)));
            out.push(stmt(AND_K, m));
            out.push(jump(JEQ_K, w, 0, 1));
            out.push(deny);
        }
    }
}

/// A conditional jump over `skip` instructions when the condition is
/// false (`over_if_true`: when it is true), through a JA when `skip`
/// does not fit the 8-bit offset.
fn emit_branch(out: &mut Vec<SockFilter>, code: u16, k: u32, over_if_true: bool, skip: usize) {
    match u8::try_from(skip) {
        Ok(s) if over_if_true => out.push(jump(code, k, s, 0)),
        Ok(s) => out.push(jump(code, k, 0, s)),
        Err(_) => {
            // Whichever way skips: onto the JA, which jumps over; the
            // other way: past the JA.
            out.push(if over_if_true { jump(code, k, 0, 1) } else { jump(code, k, 1, 0) });
            out.push(stmt(JA, skip as u32));
        }
    }
}

/// The dispatch on the call's number (in the accumulator) over `by_nr`,
/// sorted by number: a binary search, each number's rules at its leaf,
/// everything else allowed. Found in a few comparisons whatever the
/// number — which is also what the kernel's action cache pays for once
/// per number and architecture when the filter is installed
/// (seccomp_cache_prepare: a linear chain made that 0.1 ms a launch).
fn emit_tree(out: &mut Vec<SockFilter>, by_nr: &[(u32, Vec<(When, u32)>)]) {
    match by_nr {
        [] => out.push(stmt(RET_K, RET_ALLOW)),
        [(nr, rules)] => {
            let mut body = Vec::new();
            let mut rest = &rules[..];
            while let [(when, ret), ..] = rest {
                // A run of rules comparing one argument with several values
                // for one verdict: one load, a comparison each, one return.
                let values: Vec<u32> = match when {
                    When::ArgIs(i, _) => rest
                        .iter()
                        .map_while(|(w, r)| match w {
                            When::ArgIs(j, v) if j == i && r == ret => Some(*v),
                            _ => None,
                        })
                        .take(200)
                        .collect(),
                    _ => Vec::new(),
                };
                match when {
                    When::ArgIs(i, _) if values.len() > 1 => {
                        body.push(stmt(LD_W_ABS, arg_low(*i)));
                        let n = values.len();
                        for (k, v) in values.iter().enumerate() {
                            // Matched: to the return after the last
                            // comparison, which, not matched, jumps over it.
                            body.push(jump(JEQ_K, *v, (n - 1 - k) as u8, u8::from(k + 1 == n)));
                        }
                        body.push(stmt(RET_K, *ret));
                        rest = &rest[n..];
                    }
                    _ => {
                        emit_checks(&mut body, *when, *ret);
                        rest = &rest[1..];
                    }
                }
            }
            emit_branch(out, JEQ_K, *nr, false, body.len());
            out.extend(body);
            out.push(stmt(RET_K, RET_ALLOW));
        }
        _ => {
            let (low, high) = by_nr.split_at(by_nr.len() / 2);
            let mut left = Vec::new();
            emit_tree(&mut left, low);
            emit_branch(out, JGE_K, high[0].0, true, left.len());
            out.extend(left);
            emit_tree(out, high);
        }
    }
}

/// `rules` grouped by number (in their order within a number), sorted.
fn by_number(rules: impl Iterator<Item = (u32, When, u32)>) -> Vec<(u32, Vec<(When, u32)>)> {
    let mut map: std::collections::BTreeMap<u32, Vec<(When, u32)>> = Default::default();
    for (nr, when, ret) in rules {
        map.entry(nr).or_default().push((when, ret));
    }
    map.into_iter().collect()
}

/// Which restrictions a context gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub lock: bool,
    pub spectator: bool,
    /// reboot(2) fails with EPERM: for processes that joined a running
    /// guest from outside, which its init cannot answer for.
    pub no_reboot: bool,
    /// Locked to its addresses: no packet sockets ([`NET_LOCK`]).
    pub net_lock: bool,
    /// A server in the host's user namespace: no new ones ([`NO_USERNS`]).
    pub no_new_userns: bool,
}

pub fn build(policy: Policy) -> Vec<SockFilter> {
    // Other architectures are refused; so are x32 calls.
    assemble(&rules_of(policy), true, RET_ERRNO | ENOSYS)
}

/// The rules of `policy`, with their seccomp return values.
fn rules_of(policy: Policy) -> Vec<Rule> {
    let mut rules: Vec<Rule> = BASE.to_vec();
    if policy.lock {
        rules.extend_from_slice(LOCK);
    }
    if policy.spectator {
        rules.extend_from_slice(SPECTATOR);
    }
    if policy.net_lock {
        rules.extend_from_slice(NET_LOCK);
    }
    if policy.no_new_userns {
        rules.extend_from_slice(NO_USERNS);
    }
    if policy.no_reboot {
        rules.push((169, 88, When::Always, EPERM));
    }
    rules
        .into_iter()
        .map(|(n64, n32, when, errno)| (n64, n32, when, RET_ERRNO | errno))
        .collect()
}

/// One block of `rules` — (x86_64 number or u32::MAX for none, i386
/// number, condition, seccomp return value) — for each entry point, the
/// rest allowed; dispatched on the call's architecture, any other one
/// getting `other_arch`:
/// [ld arch] [x86_64? → X64] [i386? → I386] [other_arch] [ja I386] X64… I386…
/// Each block loads the number and searches it ([`emit_tree`]).
fn assemble(rules: &[Rule], refuse_x32: bool, other_arch: u32) -> Vec<SockFilter> {
    let mut x64 = vec![stmt(LD_W_ABS, 0)];
    if refuse_x32 {
        x64.extend([jump(JGE_K, X32_BIT, 0, 1), stmt(RET_K, RET_ERRNO | EPERM)]);
    }
    emit_tree(
        &mut x64,
        &by_number(rules.iter().filter(|r| r.0 != u32::MAX).map(|&(n, _, w, r)| (n, w, r))),
    );
    let mut x32 = vec![stmt(LD_W_ABS, 0)];
    emit_tree(
        &mut x32,
        &by_number(rules.iter().filter(|r| r.1 != u32::MAX).map(|&(_, n, w, r)| (n, w, r))),
    );
    let mut prog = vec![
        stmt(LD_W_ABS, 4),
        jump(JEQ_K, AUDIT_ARCH_X86_64, 3, 0),
        jump(JEQ_K, AUDIT_ARCH_I386, 1, 0),
        stmt(RET_K, other_arch),
        stmt(JA, x64.len() as u32),
    ];
    prog.extend(x64);
    prog.extend(x32);
    prog
}

const RET_USER_NOTIF: u32 = libc::SECCOMP_RET_USER_NOTIF;

/// AF_UNIX, the first argument of socket(2) and socketpair(2).
const AF_UNIX: u32 = libc::AF_UNIX as u32;
/// The families and type of the sockets that need CAP_NET_RAW.
const AF_INET: u32 = libc::AF_INET as u32;
const AF_INET6: u32 = libc::AF_INET6 as u32;
const AF_PACKET: u32 = libc::AF_PACKET as u32;
const SOCK_RAW: u32 = libc::SOCK_RAW as u32;

/// A call of a guest's processes that its supervisor answers, the others
/// being allowed (see guest/supervisor.rs): (x86_64 number, i386 number,
/// condition, return value).
const SUPERVISED: &[Rule] = &[
    (41, 359, When::ArgIs(0, AF_UNIX), RET_USER_NOTIF), // socket
    (53, 360, When::ArgIs(0, AF_UNIX), RET_USER_NOTIF), // socketpair
    // Raw and packet sockets: CAP_NET_RAW counts in the network
    // namespace's owner, the host's, where a guest in a user namespace of
    // its own holds none; its supervisor makes them for a caller that
    // holds it in its own (userns.rs).
    (41, 359, When::ArgIsAndMasked(0, AF_INET, 1, 0xf, SOCK_RAW), RET_USER_NOTIF),
    (41, 359, When::ArgIsAndMasked(0, AF_INET6, 1, 0xf, SOCK_RAW), RET_USER_NOTIF),
    (41, 359, When::ArgIs(0, AF_PACKET), RET_USER_NOTIF),
    (41, 359, When::ArgIsAndMasked(0, AF_INET, 1, 0xf, SOCK_PACKET), RET_USER_NOTIF),
    // i386 socketcall(SYS_SOCKET or SYS_SOCKETPAIR, args) passes its family
    // in memory, which a second thread can change after any check: refused
    // (ENOSYS; 32-bit programs built on glibc's socketcall cannot make
    // sockets in a guest, those that use the direct calls can). x86_64 has
    // no such call (102 is getuid).
    (u32::MAX, 102, When::ArgIs(0, 1), RET_ERRNO | ENOSYS),
    (u32::MAX, 102, When::ArgIs(0, 8), RET_ERRNO | ENOSYS),
    // sysinfo(2) answers with the guest's own memory, uptime and process
    // count (sysinfo.rs); the i386 entry point (its struct of 32-bit
    // fields) keeps the host's.
    (99, u32::MAX, When::Always, RET_USER_NOTIF),
    // io_uring makes sockets where no filter sees it (IORING_OP_SOCKET).
    (425, 425, When::Always, RET_ERRNO | ENOSYS), // io_uring_setup
    // A listener of its own, should the supervisor's die (the kernel then
    // forgets it): its calls would go on in the host's namespace. EBUSY,
    // as while the supervisor's lives (seccomp(2)).
    (317, 354, When::ArgIsAndMasked(0, 1, 1, 8, 8), RET_ERRNO | EBUSY), // seccomp(SET_MODE_FILTER, NEW_LISTENER)
];

const EBUSY: u32 = libc::EBUSY as u32;

/// A guest's processes hand every unix socket they make to the returned
/// listener, whose supervisor makes it in the guest's own abstract socket
/// namespace; io_uring answers ENOSYS (it makes sockets no filter sees);
/// with `reboot`, reboot(2) goes to the listener too (one listener per
/// process: seccomp(2), EBUSY). Everything else is allowed.
pub fn supervised_listener(reboot: bool) -> Result<std::os::fd::OwnedFd> {
    sys::seccomp_listener(&supervised_program(reboot)).ctx(|| "install the socket supervisor's filter")
}

fn supervised_program(reboot: bool) -> Vec<SockFilter> {
    // Other architectures: the context's policy refuses them.
    assemble(&supervised_rules(reboot), false, RET_ALLOW)
}

/// [`SUPERVISED`], with reboot(2) when `reboot`.
fn supervised_rules(reboot: bool) -> Vec<Rule> {
    let mut rules = SUPERVISED.to_vec();
    if reboot {
        rules.push((169, 88, When::Always, RET_USER_NOTIF));
    }
    rules
}

/// For a guest's process: one filter for `policy` ([`install`]) and the
/// supervised calls ([`supervised_listener`]), whose listener is
/// returned. One filter, not two: installing one costs the kernel more
/// than the rest of joining a guest (its action cache runs the filter for
/// every call number of both entry points). It says what the two would
/// say together: for a call both name, the policy's refusal, as the
/// kernel ranks an errno above a notification (seccomp_run_filters).
pub fn install_supervised(policy: Policy, reboot: bool) -> Result<std::os::fd::OwnedFd> {
    sys::seccomp_listener(&build_supervised(policy, reboot)).ctx(|| "install the context's seccomp filter")
}

fn build_supervised(policy: Policy, reboot: bool) -> Vec<SockFilter> {
    let mut rules = rules_of(policy);
    rules.extend(supervised_rules(reboot));
    assemble(&rules, true, RET_ERRNO | ENOSYS)
}

/// What a call notified through [`supervised_listener`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Supervised {
    /// socket(AF_UNIX, …)
    Socket,
    /// socket(2) of a raw (AF_INET, AF_INET6) or packet socket
    RawSocket,
    SocketPair,
    Reboot,
    /// sysinfo(2) (x86_64)
    Sysinfo,
    Other,
}

/// Tells a notified call by its entry point and number (those of
/// [`SUPERVISED`] and reboot(2)).
pub fn supervised_call(n: &sys::SeccompNotif) -> Supervised {
    match (n.arch, n.nr) {
        (AUDIT_ARCH_X86_64, 41) | (AUDIT_ARCH_I386, 359) if n.args[0] as u32 == AF_UNIX => Supervised::Socket,
        (AUDIT_ARCH_X86_64, 41) | (AUDIT_ARCH_I386, 359) => Supervised::RawSocket,
        (AUDIT_ARCH_X86_64, 53) | (AUDIT_ARCH_I386, 360) => Supervised::SocketPair,
        (AUDIT_ARCH_X86_64, 169) | (AUDIT_ARCH_I386, 88) => Supervised::Reboot,
        (AUDIT_ARCH_X86_64, 99) => Supervised::Sysinfo,
        _ => Supervised::Other,
    }
}

/// Installs the filter for `policy` on this process, for good.
pub fn install(policy: Policy) -> Result<()> {
    sys::seccomp_install(&build(policy)).ctx(|| "install the context's seccomp filter")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny classic-BPF interpreter, enough to run our filters on
    /// (arch, nr, args) and check the verdict.
    fn run(prog: &[SockFilter], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let ins = prog[pc];
            pc += 1;
            match ins.code {
                LD_W_ABS => {
                    let k = ins.k as usize;
                    acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                }
                JEQ_K => pc += if acc == ins.k { ins.jt } else { ins.jf } as usize,
                JGE_K => pc += if acc >= ins.k { ins.jt } else { ins.jf } as usize,
                JSET_K => pc += if acc & ins.k != 0 { ins.jt } else { ins.jf } as usize,
                JA => pc += ins.k as usize,
                AND_K => acc &= ins.k,
                RET_K => return ins.k,
                c => panic!("unknown opcode {c:#x}"),
            }
        }
    }

    const DENY: u32 = RET_ERRNO | EPERM;

    /// What `rules` say of a call: the first matching rule's value, else
    /// allowed — the meaning [`assemble`]'s search must keep — with x32
    /// calls refused when `refuse_x32` and other architectures getting
    /// `other_arch`.
    fn model(rules: &[Rule], refuse_x32: bool, other_arch: u32, arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        if arch != AUDIT_ARCH_X86_64 && arch != AUDIT_ARCH_I386 {
            return other_arch;
        }
        if refuse_x32 && arch == AUDIT_ARCH_X86_64 && nr >= X32_BIT {
            return RET_ERRNO | EPERM;
        }
        let a = |i: u32| args[i as usize] as u32;
        for &(n64, n32, when, ret) in rules {
            let n = if arch == AUDIT_ARCH_X86_64 { n64 } else { n32 };
            if n != nr || n == u32::MAX {
                continue;
            }
            let hit = match when {
                When::Always => true,
                When::ArgHasBits(i, b) => a(i) & b != 0,
                When::ArgIs(i, v) => a(i) == v,
                When::ArgIsAndMasked(i, v, j, m, w) => a(i) == v && a(j) & m == w,
            };
            if hit {
                return ret;
            }
        }
        RET_ALLOW
    }

    /// Every value a rule compares with, and some others.
    fn values_of(rules: &[Rule]) -> Vec<u64> {
        let mut values = vec![0u64, 1, 2, 3, 10, 17, 0xffff_ffff, 0x1_0000_0000];
        for &(_, _, when, _) in rules {
            match when {
                When::Always => {}
                When::ArgHasBits(_, b) => values.extend([u64::from(b), u64::from(b & b.wrapping_neg())]),
                When::ArgIs(_, v) => values.push(u64::from(v)),
                When::ArgIsAndMasked(_, v, _, m, w) => values.extend([u64::from(v), u64::from(w), u64::from(w | !m)]),
            }
        }
        values.sort_unstable();
        values.dedup();
        values
    }

    /// Runs `prog` against the model for the numbers `nrs` on both
    /// architectures (and a foreign one), every pair of compared values in
    /// the first two arguments, and each value alone in each argument.
    fn check_program(rules: &[Rule], refuse_x32: bool, other_arch: u32, prog: &[SockFilter], nrs: &[u32]) {
        assert!(prog.len() < 4096);
        let values = values_of(rules);
        let mut arg_sets: Vec<[u64; 6]> = Vec::new();
        // Every pair in the first two arguments where the values are few
        // (vsbox's tables); with many, each value with itself or 0.
        let few = values.len() <= 64;
        for &a0 in &values {
            for &a1 in values.iter().filter(|&&a1| few || a1 == a0 || a1 == 0) {
                arg_sets.push([a0, a1, 0, 0, 0, 0]);
            }
        }
        for &v in &values {
            for i in 1..6 {
                let mut args = [0; 6];
                args[i] = v;
                arg_sets.push(args);
                args[0] = v;
                arg_sets.push(args);
            }
        }
        for arch in [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, 0xC000_00B7] {
            for &nr in nrs {
                for &args in &arg_sets {
                    let want = model(rules, refuse_x32, other_arch, arch, nr, args);
                    assert_eq!(run(prog, arch, nr, args), want, "{arch:#x} {nr:#x} {args:?}");
                }
            }
        }
    }

    /// Numbers to try: every one the tables could name, the x32 ones and
    /// the extremes.
    fn numbers(upto: u32) -> Vec<u32> {
        let mut nrs: Vec<u32> = (0..upto).collect();
        nrs.extend([X32_BIT, X32_BIT | 16, X32_BIT | 41, 0x3fff_ffff, u32::MAX - 1, u32::MAX]);
        nrs
    }

    /// The policy whose restrictions are the bits of `bits`, in the
    /// order of Policy's fields.
    fn policy_of(bits: u32) -> Policy {
        Policy {
            lock: bits & 1 != 0,
            spectator: bits & 2 != 0,
            no_reboot: bits & 4 != 0,
            net_lock: bits & 8 != 0,
            no_new_userns: bits & 16 != 0,
        }
    }

    #[test]
    fn the_search_says_what_the_rules_say_for_every_call() {
        let nrs = numbers(480);
        for bits in 0..32u32 {
            let policy = policy_of(bits);
            check_program(&rules_of(policy), true, RET_ERRNO | ENOSYS, &build(policy), &nrs);
        }
        for reboot in [false, true] {
            check_program(&supervised_rules(reboot), false, RET_ALLOW, &supervised_program(reboot), &nrs);
        }
    }

    /// The kernel's verdict of two filters on one call: the lower action
    /// (seccomp_run_filters; SECCOMP_RET_ACTION_FULL compared as signed).
    fn stricter(a: u32, b: u32) -> u32 {
        let action = |r: u32| (r & libc::SECCOMP_RET_ACTION_FULL) as i32;
        if action(b) < action(a) {
            b
        } else {
            a
        }
    }

    #[test]
    fn the_one_filter_of_a_guest_says_what_its_policy_and_supervision_say_together() {
        let nrs = numbers(480);
        for bits in [0u32, 1, 4, 8, 16, 31] {
            let policy = policy_of(bits);
            for reboot in [false, true] {
                let (one, alone, supervised) = (build_supervised(policy, reboot), build(policy), supervised_program(reboot));
                let mut rules = rules_of(policy);
                rules.extend(supervised_rules(reboot));
                let values = values_of(&rules);
                for arch in [AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, 0xC000_00B7] {
                    for &nr in &nrs {
                        for &a0 in &values {
                            for a1 in [0, u64::from(SOCK_RAW), u64::from(SOCK_PACKET), 8] {
                                let args = [a0, a1, 0, 0, 0, 0];
                                let want = stricter(run(&alone, arch, nr, args), run(&supervised, arch, nr, args));
                                assert_eq!(run(&one, arch, nr, args), want, "{bits} {reboot} {arch:#x} {nr} {args:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// Tables far larger than vsbox's: offsets past 255 take the JA
    /// trampolines, and long runs of values are split.
    #[test]
    fn a_search_too_long_for_short_jumps_still_says_what_the_rules_say() {
        let mut rules: Vec<Rule> = (0..300).map(|n| (n * 2, n * 2 + 1, When::Always, RET_ERRNO | n)).collect();
        rules.extend((0..250).map(|v| (700, 701, When::ArgIs(1, v), RET_ERRNO | EPERM)));
        rules.extend((0..60).map(|v| (702, 703, When::ArgIsAndMasked(0, v, 3, 0xf, v & 0xf), RET_ERRNO | ENOSYS)));
        rules.push((704, u32::MAX, When::ArgHasBits(5, 0x100), RET_ERRNO | EBUSY));
        let prog = assemble(&rules, true, RET_ERRNO | ENOSYS);
        assert!(prog.iter().any(|i| i.code == JA && i.k > 255), "a trampoline was needed");
        let mut nrs = numbers(720);
        nrs.retain(|&n| n < 8 || (590..720).contains(&n) || n > 1000);
        check_program(&rules, true, RET_ERRNO | ENOSYS, &prog, &nrs);
    }

    #[test]
    fn a_server_in_the_hosts_user_namespace_makes_none() {
        let p = build(Policy {
            no_new_userns: true,
            ..Policy::default()
        });
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 272, [0x1000_0000, 0, 0, 0, 0, 0]), DENY); // unshare(CLONE_NEWUSER)
        assert_eq!(run(&p, AUDIT_ARCH_I386, 120, [0x1000_0011, 0, 0, 0, 0, 0]), DENY); // clone
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 435, [0; 6]), RET_ERRNO | ENOSYS); // clone3
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 272, [0x0002_0000, 0, 0, 0, 0, 0]), RET_ALLOW); // unshare(CLONE_NEWNS)
        let free = build(Policy::default());
        assert_eq!(run(&free, AUDIT_ARCH_X86_64, 272, [0x1000_0000, 0, 0, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn no_context_makes_btrfs_subvolumes_or_changes_project_ids() {
        let p = build(Policy::default());
        // _IOW(0x94, nr, 4096): (1 << 30) | (4096 << 16) | (0x94 << 8) | nr.
        for nr in [1u64, 14, 23, 24] {
            let cmd = (1 << 30) | (4096 << 16) | (0x94 << 8) | nr;
            assert_eq!(run(&p, AUDIT_ARCH_X86_64, 16, [3, cmd, 0, 0, 0, 0]), DENY, "{nr}");
            assert_eq!(run(&p, AUDIT_ARCH_I386, 54, [3, cmd, 0, 0, 0, 0]), DENY, "{nr}");
        }
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 16, [3, 0x401C_5820, 0, 0, 0, 0]), DENY); // FS_IOC_FSSETXATTR
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 16, [3, 0x801C_581F, 0, 0, 0, 0]), RET_ALLOW); // FS_IOC_FSGETXATTR
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 469, [0; 6]), DENY); // file_setattr
                                                                   // Other btrfs ioctls (FIDEDUPERANGE's neighbours, INO_LOOKUP) pass.
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 16, [3, 0xD000_9412, 0, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn a_locked_network_has_no_packet_sockets() {
        let p = build(Policy {
            net_lock: true,
            ..Policy::default()
        });
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 41, [17, 3, 0x300, 0, 0, 0]), DENY); // AF_PACKET
        assert_eq!(run(&p, AUDIT_ARCH_I386, 359, [17, 2, 0, 0, 0, 0]), DENY);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 41, [2, 10, 0, 0, 0, 0]), DENY); // SOCK_PACKET
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 41, [2, 10 | 0x80000, 0, 0, 0, 0]), DENY); // | SOCK_CLOEXEC
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 41, [2, 3, 1, 0, 0, 0]), RET_ALLOW); // raw ICMP: the lock's
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 41, [2, 1, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 41, [10, 2, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 41, [1, 1, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH_I386, 102, [1, 0, 0, 0, 0, 0]), ENOSYS | RET_ERRNO); // socketcall SOCKET
        assert_eq!(run(&p, AUDIT_ARCH_I386, 102, [3, 0, 0, 0, 0, 0]), RET_ALLOW); // CONNECT
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 102, [1, 0, 0, 0, 0, 0]), RET_ALLOW); // getuid
        assert_eq!(
            run(&build(Policy::default()), AUDIT_ARCH_X86_64, 41, [17, 3, 0, 0, 0, 0]),
            RET_ALLOW
        );
    }

    #[test]
    fn a_supervised_guest_hands_over_its_unix_sockets_only() {
        let p = supervised_program(false);
        let n = RET_USER_NOTIF;
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 41, [1, 1, 0, 0, 0, 0]), n); // socket(AF_UNIX)
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 41, [2, 1, 0, 0, 0, 0]), RET_ALLOW); // AF_INET
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 41, [10, 2, 0, 0, 0, 0]), RET_ALLOW); // AF_INET6
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 53, [1, 1, 0, 0, 0, 0]), n); // socketpair
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 102, [1, 0, 0, 0, 0, 0]), RET_ALLOW); // getuid
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 169, [0; 6]), RET_ALLOW); // reboot: not asked for
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 425, [0; 6]), RET_ERRNO | ENOSYS);
        assert_eq!(run(&p, AUDIT_ARCH_I386, 359, [1, 1, 0, 0, 0, 0]), n);
        assert_eq!(run(&p, AUDIT_ARCH_I386, 360, [1, 1, 0, 0, 0, 0]), n);
        assert_eq!(run(&p, AUDIT_ARCH_I386, 359, [2, 1, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH_I386, 102, [1, 0, 0, 0, 0, 0]), RET_ERRNO | ENOSYS); // socketcall SOCKET
        assert_eq!(run(&p, AUDIT_ARCH_I386, 102, [8, 0, 0, 0, 0, 0]), RET_ERRNO | ENOSYS); // SOCKETPAIR
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 317, [1, 8, 0, 0, 0, 0]), RET_ERRNO | EBUSY); // a listener
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 317, [1, 8 | 2, 0, 0, 0, 0]), RET_ERRNO | EBUSY);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 317, [1, 0, 0, 0, 0, 0]), RET_ALLOW); // a plain filter
        assert_eq!(run(&p, AUDIT_ARCH_I386, 354, [1, 8, 0, 0, 0, 0]), RET_ERRNO | EBUSY);
        assert_eq!(run(&p, AUDIT_ARCH_I386, 102, [3, 0, 0, 0, 0, 0]), RET_ALLOW); // CONNECT
        assert_eq!(run(&p, AUDIT_ARCH_I386, 425, [0; 6]), RET_ERRNO | ENOSYS);
        assert_eq!(run(&p, 0xC000_00B7, 41, [1, 0, 0, 0, 0, 0]), RET_ALLOW); // aarch64: policy's job
        let r = supervised_program(true);
        assert_eq!(run(&r, AUDIT_ARCH_X86_64, 169, [0; 6]), n);
        assert_eq!(run(&r, AUDIT_ARCH_I386, 88, [0; 6]), n);
        assert_eq!(run(&r, AUDIT_ARCH_X86_64, 41, [1, 5, 0, 0, 0, 0]), n);
        assert_eq!(run(&r, AUDIT_ARCH_X86_64, 0, [0; 6]), RET_ALLOW);
    }

    #[test]
    fn base_blocks_tiocsti_only() {
        let p = build(Policy::default());
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 16, [0, 0x5412, 0, 0, 0, 0]), DENY);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 16, [0, 0x5401, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH_I386, 54, [0, 0x5412, 0, 0, 0, 0]), DENY);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 62, [1, 9, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, X32_BIT | 62, [0; 6]), DENY);
        assert_eq!(run(&p, 0xdead, 1, [0; 6]), RET_ERRNO | ENOSYS);
    }

    #[test]
    fn lock_blocks_namespaces_on_both_abis() {
        let p = build(Policy {
            lock: true,
            ..Policy::default()
        });
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 272, [0x2000_0000, 0, 0, 0, 0, 0]), DENY);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 272, [0x400, 0, 0, 0, 0, 0]), RET_ALLOW); // CLONE_FILES
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 308, [3, 0, 0, 0, 0, 0]), DENY);
        assert_eq!(run(&p, AUDIT_ARCH_I386, 346, [3, 0, 0, 0, 0, 0]), DENY);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 56, [0x11, 0, 0, 0, 0, 0]), RET_ALLOW); // fork-like
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 56, [0x1000_0011, 0, 0, 0, 0, 0]), DENY);
        assert_eq!(run(&p, AUDIT_ARCH_I386, 120, [0x0800_0011, 0, 0, 0, 0, 0]), DENY);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 435, [0; 6]), RET_ERRNO | ENOSYS);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 62, [1, 9, 0, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn joiners_cannot_reboot() {
        let p = build(Policy {
            no_reboot: true,
            ..Policy::default()
        });
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 169, [0; 6]), DENY);
        assert_eq!(run(&p, AUDIT_ARCH_I386, 88, [0; 6]), DENY);
        assert_eq!(run(&build(Policy::default()), AUDIT_ARCH_X86_64, 169, [0; 6]), RET_ALLOW);
    }

    #[test]
    fn reboot_goes_to_the_supervisor_on_both_entry_points_only() {
        let p = supervised_program(true);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 169, [0; 6]), RET_USER_NOTIF);
        assert_eq!(run(&p, AUDIT_ARCH_I386, 88, [0; 6]), RET_USER_NOTIF);
        for (arch, nr) in [
            (AUDIT_ARCH_X86_64, 88),
            (AUDIT_ARCH_X86_64, 0),
            (AUDIT_ARCH_I386, 169),
            (AUDIT_ARCH_I386, 1),
            (0xdead, 169),
        ] {
            assert_eq!(run(&p, arch, nr, [0; 6]), RET_ALLOW, "{arch:#x} {nr}");
        }
    }

    #[test]
    fn spectator_signals_nothing() {
        let p = build(Policy {
            spectator: true,
            ..Policy::default()
        });
        for nr in [62, 200, 234, 129, 297, 424, 438, 101, 310, 311] {
            assert_eq!(run(&p, AUDIT_ARCH_X86_64, nr, [1, 9, 0, 0, 0, 0]), DENY, "x86_64 {nr}");
        }
        for nr in [37, 238, 270, 26, 424] {
            assert_eq!(run(&p, AUDIT_ARCH_I386, nr, [1, 9, 0, 0, 0, 0]), DENY, "i386 {nr}");
        }
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 0, [0; 6]), RET_ALLOW); // read
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 272, [0x2000_0000, 0, 0, 0, 0, 0]), RET_ALLOW);
    }

    /// The watcher takes a descriptor sent as a listener only if it is
    /// one: a pipe and an eventfd (another anonymous inode) are not.
    #[test]
    fn a_seccomp_listener_is_told_from_other_descriptors() {
        use std::os::fd::OwnedFd;
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: installing a filter with a listener needs root");
            return;
        }
        let (r, _w) = nix::unistd::pipe().unwrap();
        let efd = OwnedFd::from(nix::sys::eventfd::EventFd::new().unwrap());
        assert!(!sys::is_seccomp_listener(&r));
        assert!(!sys::is_seccomp_listener(&efd));
        // The filter stays with the process that installs it: a child,
        // which after the fork (of a threaded test process) only makes
        // system calls; the program is built before.
        let prog = supervised_program(false);
        match sys::fork().unwrap() {
            sys::Forked::Child => {
                let code = match sys::seccomp_listener(&prog) {
                    Ok(l) if sys::is_seccomp_listener(&l) => 0,
                    Ok(_) => 1,
                    Err(_) => 2,
                };
                sys::exit_now(code)
            }
            sys::Forked::Parent(child) => {
                let st = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
