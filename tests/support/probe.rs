//! vsbox-probe: a small static program the integration tests run inside
//! contexts, as the guest's root would, to try what is allowed and what
//! must fail. Each subcommand prints `OK …` or `ERR <ERRNO>` and exits 0
//! or 1, so tests can assert on the kernel's own answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};

fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::ENOSYS => "ENOSYS",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EROFS => "EROFS",
        libc::ENOTTY => "ENOTTY",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EMFILE => "EMFILE",
        libc::ECONNRESET => "ECONNRESET",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EBUSY => "EBUSY",
        libc::EFAULT => "EFAULT",
        libc::ETOOMANYREFS => "ETOOMANYREFS",
        libc::EAGAIN => "EAGAIN",
        libc::EDQUOT => "EDQUOT",
        libc::ENOSPC => "ENOSPC",
        _ => "OTHER",
    }
}

fn report<T>(r: std::io::Result<T>, ok: impl FnOnce(T) -> String) -> i32 {
    match r {
        Ok(v) => {
            println!("OK {}", ok(v));
            0
        }
        Err(e) => {
            let n = e.raw_os_error().unwrap_or(0);
            println!("ERR {} {e}", errno_name(n));
            1
        }
    }
}

fn last<T>(ret: T, failed: bool) -> std::io::Result<T> {
    if failed {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// struct file_handle with room for MAX_HANDLE_SZ bytes.
#[repr(C)]
struct Handle {
    bytes: u32,
    kind: i32,
    data: [u8; 128],
}

fn addr(a: &str, p: &str) -> SocketAddr {
    let ip: std::net::IpAddr = a.parse().expect("address");
    SocketAddr::new(ip, p.parse().expect("port"))
}

fn c(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap()
}

fn field(f: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = f.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// (nodename, domainname)
fn nix_uname() -> (String, String) {
    // SAFETY: utsname is plain data, filled in by the kernel.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    (field(&u.nodename), field(&u.domainname))
}

/// The soft RLIMIT_NOFILE as high as the hard one.
fn raise_nofile() {
    // SAFETY: rlimit is plain data, filled in and read back by the kernel.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

/// One vserver(2) call (x86_64 number 236) as `vs OP ARGS` names it;
/// Ok(what to print after "OK").
fn vserver_op(op: &[&str]) -> std::io::Result<String> {
    const NR: libc::c_long = 236;
    let id = |s: &str| -> u32 {
        if s == "dyn" {
            u32::MAX
        } else {
            s.parse().expect("context id")
        }
    };
    let call = |cmd: u32, id: u32, data: *mut libc::c_void| -> std::io::Result<i64> {
        // SAFETY: vserver(2) reads or writes at most the structure its
        // command names, which `data` points at (or a deliberately bad
        // pointer, which the kernel must refuse with EFAULT).
        let r = unsafe { libc::syscall(NR, cmd as libc::c_long, id as libc::c_long, data) };
        last(r, r < 0)
    };
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex");
    match op {
        ["version"] => call(0, 0, std::ptr::null_mut()).map(|v| format!("version {v:#x}")),
        ["create", x] => call(0x0101, id(x), std::ptr::null_mut()).map(|v| format!("context {v}")),
        ["migrate", x] => call(0x0102, id(x), std::ptr::null_mut()).map(|_| "migrated".into()),
        ["info", x] => {
            let mut b = [0u32; 6];
            call(0x0103, id(x), b.as_mut_ptr().cast()).map(|_| {
                let bcaps = u64::from(b[2]) | (u64::from(b[3]) << 32);
                format!("xid={} flags={:#x} bcaps={bcaps:#x} init={} tasks={}", b[0], b[1], b[4], b[5])
            })
        }
        ["flags", set, mask] => {
            let mut b = [hex(set), hex(mask)];
            call(0x0201, 0, b.as_mut_ptr().cast()).map(|_| "flags set".into())
        }
        ["getflags"] => {
            let mut b = [0u64; 2];
            call(0x0202, 0, b.as_mut_ptr().cast()).map(|_| format!("flags {:#x}", b[0]))
        }
        ["bcaps", v] => {
            let mut b = hex(v);
            call(0x0203, 0, (&mut b as *mut u64).cast()).map(|_| "bcaps set".into())
        }
        ["ipv4root", addrs @ ..] => {
            let mut b = [0u32; 17];
            b[0] = addrs.len() as u32;
            for (i, a) in addrs.iter().take(16).enumerate() {
                b[i + 1] = u32::from_ne_bytes(a.parse::<std::net::Ipv4Addr>().expect("address").octets());
            }
            call(0x0301, 0, b.as_mut_ptr().cast()).map(|_| "ipv4root set".into())
        }
        ["raw", cmd, x, ptr] => call(hex(cmd) as u32, id(x), hex(ptr) as usize as *mut libc::c_void).map(|v| format!("returned {v}")),
        _ => panic!("vs: unknown operation {op:?}"),
    }
}

/// The soft RLIMIT_NOFILE set to `n`.
fn nofile(n: u64) {
    // SAFETY: rlimit is plain data, filled in and read back by the kernel.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = n;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
    }
}

/// A new pipe's capacity in bytes (F_GETPIPE_SZ); the pipe stays open.
fn new_pipe_size() -> std::io::Result<i32> {
    let mut p = [0; 2];
    // SAFETY: p has room for the two descriptors; fcntl with an integer op.
    if unsafe { libc::pipe(p.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let s = unsafe { libc::fcntl(p[0], libc::F_GETPIPE_SZ) };
    last(s, s < 0)
}

/// Sends `fds` in one SCM_RIGHTS message on `sock`, with a byte of data.
fn send_fds(sock: i32, fds: &[i32]) -> std::io::Result<()> {
    let bytes = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE/CMSG_LEN are arithmetic; the control buffer is
    // sized by CMSG_SPACE and the header written through CMSG_FIRSTHDR
    // lies inside it; iov points at a live byte.
    unsafe {
        let mut control = vec![0u8; libc::CMSG_SPACE(bytes as u32) as usize];
        let mut byte = [b'x'];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control.len() as _;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(bytes as u32) as _;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(c), bytes);
        let r = libc::sendmsg(sock, &msg, libc::MSG_DONTWAIT);
        last((), r < 0)
    }
}

/// Signal 40 (a real-time one) blocked, so that queued ones stay pending.
fn block_rt() {
    // SAFETY: the set is plain data, filled by sigemptyset/sigaddset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, 40);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// sigqueue(2) of signal 40 to this process.
fn queue_self() -> std::io::Result<()> {
    // SAFETY: plain syscall with integer arguments and a zeroed sigval.
    let r = unsafe { libc::sigqueue(libc::getpid(), 40, std::mem::zeroed()) };
    last((), r != 0)
}

fn main() {
    // The probe keeps std's start-up: its arguments are there.
    #[allow(clippy::disallowed_methods)]
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let code = match a.as_slice() {
        ["inotify"] => {
            // SAFETY: plain syscall; the descriptor stays open until exit.
            let fd = unsafe { libc::inotify_init1(0) };
            report(if fd < 0 { Err(std::io::Error::last_os_error()) } else { Ok(fd) }, |fd| {
                format!("inotify {fd}")
            })
        }
        ["inotify-hold", secs] => {
            // Every inotify instance this process may have, held a while.
            let mut n = 0;
            // SAFETY: plain syscalls; the descriptors stay open until exit.
            while unsafe { libc::inotify_init1(0) } >= 0 {
                n += 1;
            }
            let e = std::io::Error::last_os_error();
            println!("OK held {n} ({})", errno_name(e.raw_os_error().unwrap_or(0)));
            std::io::stdout().flush().unwrap();
            std::thread::sleep(std::time::Duration::from_secs(secs.parse().expect("seconds")));
            0
        }
        ["pipe-hold", secs] => {
            // Pipes until a new one gets less than the default 16 pages: this
            // user's pipe-user-pages-soft is used up (fs/pipe.c). The size
            // of the last is printed; all are held a while.
            raise_nofile();
            let mut n = 0;
            let size = loop {
                match new_pipe_size() {
                    Ok(s) if s >= 65536 && n < 100_000 => n += 1,
                    Ok(s) => break s.to_string(),
                    Err(e) => break errno_name(e.raw_os_error().unwrap_or(0)).to_owned(),
                }
            };
            println!("OK held {n} pipes, then one of {size}");
            std::io::stdout().flush().unwrap();
            std::thread::sleep(std::time::Duration::from_secs(secs.parse().expect("seconds")));
            0
        }
        ["pipe-size"] => report(new_pipe_size(), |s| format!("pipe {s}")),
        ["inflight-hold", secs] => {
            nofile(256);
            // Unix sockets sent on a unix socket and never received, until the
            // kernel refuses more in flight for this user (net/core/scm.c:
            // too_many_unix_fds, over RLIMIT_NOFILE; only unix sockets count
            // since Linux 6.10), held a while. RLIMIT_NOFILE is 256 first:
            // the limit is the sender's, and a socket's buffer holds less than
            // the usual 1024 or more.
            let mut sv = [0; 2];
            // SAFETY: sv has room for the two descriptors.
            assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, sv.as_mut_ptr()) }, 0);
            let mut n = 0;
            let e = loop {
                match send_fds(sv[0], &[sv[1]; 32]) {
                    Ok(()) if n < 1_000_000 => n += 32,
                    Ok(()) => break "none".to_owned(),
                    Err(e) => break errno_name(e.raw_os_error().unwrap_or(0)).to_owned(),
                }
            };
            println!("OK {n} in flight ({e})");
            std::io::stdout().flush().unwrap();
            std::thread::sleep(std::time::Duration::from_secs(secs.parse().expect("seconds")));
            0
        }
        ["sendfd", limit] => {
            nofile(limit.parse().expect("limit"));
            let mut sv = [0; 2];
            // SAFETY: sv has room for the two descriptors.
            assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, sv.as_mut_ptr()) }, 0);
            report(send_fds(sv[0], &[0]), |()| "sent".to_owned())
        }
        ["sigqueue-hold", secs] => {
            // Real-time signals queued to itself (blocked) until the kernel
            // refuses more pending ones for this user (RLIMIT_SIGPENDING,
            // charged to the receiver's ucounts: kernel/signal.c).
            block_rt();
            let mut n = 0u64;
            let e = loop {
                match queue_self() {
                    Ok(()) if n < 10_000_000 => n += 1,
                    Ok(()) => break "none".to_owned(),
                    Err(e) => break errno_name(e.raw_os_error().unwrap_or(0)).to_owned(),
                }
            };
            println!("OK {n} pending ({e})");
            std::io::stdout().flush().unwrap();
            std::thread::sleep(std::time::Duration::from_secs(secs.parse().expect("seconds")));
            0
        }
        ["sigqueue"] => {
            block_rt();
            report(queue_self(), |()| "queued".to_owned())
        }
        ["runlevel"] => {
            // As runlevel(8) reads it: the last RUN_LVL record of utmp, in
            // glibc's layout (utmp(5): 384 bytes, ut_type at 0, ut_pid at 4).
            let found = std::fs::read("/var/run/utmp").ok().and_then(|b| {
                b.chunks_exact(384)
                    .rev()
                    .find(|r| i16::from_le_bytes([r[0], r[1]]) == libc::RUN_LVL)
                    .map(|r| i32::from_le_bytes([r[4], r[5], r[6], r[7]]))
            });
            match found {
                Some(p) => {
                    println!("OK {} {}", (p / 256) as u8 as char, (p % 256) as u8 as char);
                    0
                }
                None => {
                    println!("ERR unknown");
                    1
                }
            }
        }
        ["pid"] => {
            println!("{}", std::process::id());
            0
        }
        ["kill", pid, sig] => {
            let (pid, sig): (i32, i32) = (pid.parse().unwrap(), sig.parse().unwrap());
            // SAFETY: plain syscall with integer arguments.
            let r = unsafe { libc::kill(pid, sig) };
            report(last(r, r < 0), |_| "signalled".into())
        }
        ["ptrace", pid] => {
            let pid: i32 = pid.parse().unwrap();
            // SAFETY: PTRACE_ATTACH/DETACH with null pointers.
            let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
            if r == 0 {
                unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0) };
            }
            report(last(r, r < 0), |_| "attached".into())
        }
        ["unshare", what] => {
            let flag = match *what {
                "uts" => libc::CLONE_NEWUTS,
                "pid" => libc::CLONE_NEWPID,
                "net" => libc::CLONE_NEWNET,
                "user" => libc::CLONE_NEWUSER,
                "mnt" => libc::CLONE_NEWNS,
                _ => panic!("namespace"),
            };
            // SAFETY: plain syscall with an integer argument.
            let r = unsafe { libc::unshare(flag) };
            report(last(r, r < 0), |_| format!("unshared {what}"))
        }
        ["setns", path] => {
            let f = std::fs::File::open(path);
            report(
                f.and_then(|f| {
                    use std::os::fd::AsRawFd;
                    // SAFETY: f is an open namespace file.
                    let r = unsafe { libc::setns(f.as_raw_fd(), 0) };
                    last(r, r < 0)
                }),
                |_| "joined".into(),
            )
        }
        ["clone-newns"] => {
            // A raw clone(2) with CLONE_NEWUTS, child exits at once.
            // SAFETY: fork-like clone without a new stack; the child only _exits.
            let r = unsafe { libc::syscall(libc::SYS_clone, (libc::CLONE_NEWUTS | libc::SIGCHLD) as libc::c_ulong, 0, 0, 0, 0) };
            if r == 0 {
                unsafe { libc::_exit(0) };
            }
            if r > 0 {
                unsafe { libc::waitpid(r as i32, std::ptr::null_mut(), 0) };
            }
            report(last(r, r < 0), |_| "cloned".into())
        }
        ["status", field] => {
            let s = std::fs::read_to_string("/proc/self/status").unwrap();
            let v = s
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{field}:")))
                .unwrap_or("")
                .trim()
                .to_owned();
            println!("{v}");
            0
        }
        ["bind", ip, port, proto] => {
            let sa = addr(ip, port);
            if *proto == "udp" {
                report(UdpSocket::bind(sa).and_then(|s| s.local_addr()), |a| a.to_string())
            } else {
                report(TcpListener::bind(sa).and_then(|s| s.local_addr()), |a| a.to_string())
            }
        }
        ["socket6"] => {
            // SAFETY: plain syscall.
            let fd = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0) };
            report(last(fd, fd < 0), |_| "socket".into())
        }
        // Accept one connection and answer with the peer's address.
        ["serve", ip, port, tag] => {
            let l = match TcpListener::bind(addr(ip, port)) {
                Ok(l) => l,
                Err(e) => std::process::exit(report::<()>(Err(e), |_| String::new())),
            };
            println!("LISTEN {}", l.local_addr().unwrap());
            std::io::stdout().flush().unwrap();
            let (mut c, peer) = l.accept().unwrap();
            let _ = writeln!(c, "{tag} {}", peer.ip());
            0
        }
        ["udp-autobound"] => {
            // sendto() before any bind(): the kernel binds the wildcard and
            // an ephemeral port. Then print what arrives, until a second
            // passes without a datagram.
            // SAFETY: plain syscalls on a descriptor this process owns.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
            if fd < 0 {
                std::process::exit(report::<()>(last((), true), |_| String::new()));
            }
            // SAFETY: fd is a UDP socket nothing else owns.
            let s = unsafe { <UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            let _ = s.send_to(b"x", "127.0.0.1:9");
            println!("PORT {}", s.local_addr().unwrap().port());
            std::io::stdout().flush().unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(1))).unwrap();
            let mut buf = [0u8; 64];
            while let Ok(n) = s.recv(&mut buf) {
                println!("GOT {}", String::from_utf8_lossy(&buf[..n]));
            }
            0
        }
        ["serve-unbound", tag] => {
            // listen() without bind(): the kernel binds the wildcard and an
            // ephemeral port itself, which no bind hook sees.
            // SAFETY: plain syscalls on a descriptor this process owns.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            if fd < 0 || unsafe { libc::listen(fd, 8) } != 0 {
                std::process::exit(report::<()>(last((), true), |_| String::new()));
            }
            // SAFETY: fd is a listening TCP socket nothing else owns.
            let l = unsafe { <TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            println!("LISTEN {}", l.local_addr().unwrap());
            std::io::stdout().flush().unwrap();
            for c in l.incoming().flatten() {
                let mut c = c;
                let _ = writeln!(c, "{tag}");
            }
            0
        }
        ["connect", ip, port] => report(
            // A dropped SYN must not keep a test waiting for minutes.
            TcpStream::connect_timeout(&addr(ip, port), std::time::Duration::from_secs(3)).and_then(|mut s| {
                let local = s.local_addr()?;
                let mut answer = String::new();
                s.read_to_string(&mut answer)?;
                Ok(format!("local={} answer={}", local.ip(), answer.trim()))
            }),
            |s| s,
        ),
        ["udp-send", ip, port] => report(
            UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"probe", addr(ip, port))),
            |n| format!("sent {n}"),
        ),
        ["udp-recv", ip, port] => report(
            UdpSocket::bind(addr(ip, port)).and_then(|s| {
                println!("READY");
                std::io::stdout().flush()?;
                let mut buf = [0u8; 64];
                s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
                s.recv_from(&mut buf).map(|(_, from)| from.ip())
            }),
            |ip| format!("from={ip}"),
        ),
        ["shm-create", key] => {
            let key: i32 = key.parse().unwrap();
            // SAFETY: plain syscall.
            let r = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o600) };
            report(last(r, r < 0), |id| format!("id={id}"))
        }
        ["shm-find", key] => {
            let key: i32 = key.parse().unwrap();
            // SAFETY: plain syscall.
            let r = unsafe { libc::shmget(key, 0, 0) };
            report(last(r, r < 0), |id| format!("id={id}"))
        }
        ["shm-remove", key] => {
            let key: i32 = key.parse().unwrap();
            // SAFETY: plain syscalls.
            let id = unsafe { libc::shmget(key, 0, 0) };
            let r = if id >= 0 {
                unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) }
            } else {
                id
            };
            report(last(r, r < 0), |_| "removed".into())
        }
        // vserver(2) of the kernel patch (kernel/include/uapi/linux/vserver.h):
        // `vs OP ARGS… [-- COMMAND…]` runs COMMAND in the result on success.
        ["vs", rest @ ..] => {
            let (op, then) = match rest.iter().position(|a| *a == "--") {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            let outcome = vserver_op(op);
            match (outcome, then) {
                (Ok(_), [cmd, args @ ..]) => {
                    let err = std::os::unix::process::CommandExt::exec(std::process::Command::new(cmd).args(args));
                    report::<()>(Err(err), |_| String::new())
                }
                (r, _) => report(r, |s| s),
            }
        }
        ["as-user", uid, rest @ ..] => {
            let uid: u32 = uid.parse().unwrap();
            // SAFETY: plain syscalls.
            let r = unsafe { libc::setgid(uid) | libc::setuid(uid) };
            if r != 0 {
                std::process::exit(report::<()>(Err(std::io::Error::last_os_error()), |_| String::new()));
            }
            let err = std::os::unix::process::CommandExt::exec(std::process::Command::new(rest[0]).args(&rest[1..]));
            report::<()>(Err(err), |_| String::new())
        }
        // Types a character into the controlling terminal's input.
        ["tiocsti"] => report(
            std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").and_then(|tty| {
                use std::os::fd::AsRawFd;
                let c: libc::c_char = b'x' as libc::c_char;
                // SAFETY: TIOCSTI reads one byte from the pointer.
                let r = unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSTI, &c) };
                last(r, r < 0)
            }),
            |_| "typed".into(),
        ),
        ["mount-tmpfs", dir] => {
            let (src, dst, fs) = (c("none"), c(dir), c("tmpfs"));
            // SAFETY: NUL-terminated strings.
            let r = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
            report(last(r, r < 0), |_| "mounted".into())
        }
        ["load-module"] => {
            // finit_module on /dev/null: refused for want of CAP_SYS_MODULE
            // before the (non-)module is even looked at.
            let f = std::fs::File::open("/dev/null").unwrap();
            use std::os::fd::AsRawFd;
            // SAFETY: plain syscall.
            let r = unsafe { libc::syscall(libc::SYS_finit_module, f.as_raw_fd(), c("").as_ptr(), 0) };
            report(last(r, r < 0), |_| "loaded".into())
        }
        ["set-clock"] => {
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: valid timespec; setting the same time again is harmless if allowed.
            let r = unsafe {
                libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
                libc::clock_settime(libc::CLOCK_REALTIME, &ts)
            };
            report(last(r, r < 0), |_| "clock set".into())
        }
        ["set-mtu", dev] => {
            // Sets the device's MTU to the value it has: harmless if allowed.
            // SAFETY: ifreq is plain data; ioctls on a datagram socket.
            let r = unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                let mut ifr: libc::ifreq = std::mem::zeroed();
                for (i, b) in dev.bytes().enumerate().take(15) {
                    ifr.ifr_name[i] = b as libc::c_char;
                }
                libc::ioctl(fd, libc::SIOCGIFMTU as _, &mut ifr);
                libc::ioctl(fd, libc::SIOCSIFMTU as _, &ifr)
            };
            report(last(r, r < 0), |_| "mtu set".into())
        }
        ["raw-socket"] => {
            // SAFETY: plain syscall.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
            report(last(fd, fd < 0), |_| "raw socket".into())
        }
        ["mknod-open", kind, major, minor, path] => {
            let mode = if *kind == "b" { libc::S_IFBLK } else { libc::S_IFCHR } | 0o600;
            let dev = libc::makedev(major.parse().unwrap(), minor.parse().unwrap());
            // SAFETY: NUL-terminated path.
            let r = unsafe { libc::mknod(c(path).as_ptr(), mode, dev) };
            if r < 0 {
                std::process::exit(report::<()>(last((), true), |_| String::new()));
            }
            report(std::fs::File::open(path), |_| "opened".into())
        }
        ["open", path] => report(std::fs::File::open(path), |_| "opened".into()),
        ["key-add", desc, secret] => {
            // add_key("user", desc, secret) to this uid's user keyring.
            // SAFETY: NUL-terminated strings and a buffer of the length given.
            let id = unsafe {
                libc::syscall(
                    libc::SYS_add_key,
                    c("user").as_ptr(),
                    c(desc).as_ptr(),
                    secret.as_ptr(),
                    secret.len(),
                    -4i32,
                )
            } as i64;
            report(last(id, id < 0), |id| format!("id={id}"))
        }
        ["key-read", desc] => {
            // Find `desc` in this uid's user keyring and read it.
            // SAFETY: KEYCTL_SEARCH with NUL-terminated strings.
            let id = unsafe { libc::syscall(libc::SYS_keyctl, 10, -4i32, c("user").as_ptr(), c(desc).as_ptr(), 0) } as i64;
            if id < 0 {
                std::process::exit(report::<()>(last((), true), |_| String::new()));
            }
            let mut buf = [0u8; 256];
            // SAFETY: KEYCTL_READ into a buffer of the length given.
            let n = unsafe { libc::syscall(libc::SYS_keyctl, 11, id, buf.as_mut_ptr(), buf.len()) } as i64;
            report(last(n, n < 0), |n| {
                format!("secret={}", String::from_utf8_lossy(&buf[..n as usize]))
            })
        }
        ["key-unlink", id] => {
            // SAFETY: KEYCTL_UNLINK of a key id from the user keyring.
            let r = unsafe { libc::syscall(libc::SYS_keyctl, 9, id.parse::<i64>().unwrap(), -4i32) } as i64;
            report(last(r, r < 0), |_| "unlinked".into())
        }
        ["handle-of", path] => {
            // name_to_handle_at(): the handle the file system gives `path`.
            let mut h = Handle {
                bytes: 128,
                kind: 0,
                data: [0; 128],
            };
            let mut mount_id = 0i32;
            // SAFETY: h is a struct file_handle with room for 128 bytes.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_name_to_handle_at,
                    libc::AT_FDCWD,
                    c(path).as_ptr(),
                    &mut h as *mut Handle,
                    &mut mount_id,
                    0,
                )
            } as i32;
            report(last((), r < 0), |_| {
                let hex: String = h.data[..h.bytes as usize].iter().map(|b| format!("{b:02x}")).collect();
                format!("{} {hex}", h.kind)
            })
        }
        ["open-by-handle", kind, hex] => {
            // The "shocker" escape: a handle names an inode of the whole
            // file system, wherever this process's root is.
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            let mut h = Handle {
                bytes: bytes.len() as u32,
                kind: kind.parse().unwrap(),
                data: [0; 128],
            };
            h.data[..bytes.len()].copy_from_slice(&bytes);
            let root = std::fs::File::open("/").unwrap();
            use std::os::fd::AsRawFd;
            // SAFETY: h is a struct file_handle holding `bytes` bytes.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_open_by_handle_at,
                    root.as_raw_fd(),
                    &mut h as *mut Handle,
                    libc::O_RDONLY | libc::O_DIRECTORY,
                )
            } as i32;
            report(last(fd, fd < 0), |fd| {
                let names: Vec<String> = std::fs::read_dir(format!("/proc/self/fd/{fd}"))
                    .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                    .unwrap_or_default();
                format!("opened: {}", names.join(" "))
            })
        }
        ["mknod-block", path] => {
            // /dev/vda-like: block 253:0.
            // SAFETY: NUL-terminated path.
            let r = unsafe { libc::mknod(c(path).as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(253, 0)) };
            report(last(r, r < 0), |_| "created".into())
        }
        // A user namespace of its own, where it holds every capability,
        // then a raw or packet socket.
        ["userns-socket", kind] => {
            // SAFETY: plain syscalls with integer arguments.
            let fd = unsafe {
                if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                    std::process::exit(report::<()>(last((), true), |_| String::new()));
                }
                match *kind {
                    "packet" => libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(0x0003u16.to_be())),
                    _ => libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
                }
            };
            report(last(fd, fd < 0), |_| format!("{kind} socket"))
        }
        // SIGIO with signal SIG to PID (F_SETOWN, F_SETSIG, O_ASYNC on a pipe).
        ["sigio", pid, sig] => {
            let mut p = [0; 2];
            // SAFETY: p has room for two descriptors; fcntl and write with
            // integers and a one-byte buffer.
            let r = unsafe {
                libc::pipe(p.as_mut_ptr());
                libc::fcntl(p[0], libc::F_SETOWN, pid.parse::<i32>().unwrap());
                libc::fcntl(p[0], 10 /* F_SETSIG */, sig.parse::<i32>().unwrap());
                libc::fcntl(p[0], libc::F_SETFL, libc::O_ASYNC);
                libc::write(p[1], b"x".as_ptr().cast(), 1)
            };
            report(last(r, r < 0), |_| "written".into())
        }
        // prlimit(2) of RLIMIT_CORE to 0 on another process.
        ["prlimit", pid] => {
            let lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: a valid rlimit to read, no old one asked for.
            let r = unsafe { libc::prlimit(pid.parse().unwrap(), libc::RLIMIT_CORE, &lim, std::ptr::null_mut()) };
            report(last(r, r < 0), |_| "set".into())
        }
        // bind(2) with AF_UNSPEC and 0.0.0.0, then the address it got.
        ["bind-unspec", port] => {
            // SAFETY: a socket, a sockaddr_in of the right size, getsockname into one.
            let r = unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                let mut a: libc::sockaddr_in = std::mem::zeroed();
                a.sin_family = libc::AF_UNSPEC as u16;
                a.sin_port = port.parse::<u16>().unwrap().to_be();
                let mut len = std::mem::size_of::<libc::sockaddr_in>() as u32;
                if libc::bind(fd, (&a as *const libc::sockaddr_in).cast(), len) != 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    libc::getsockname(fd, (&mut a as *mut libc::sockaddr_in).cast(), &mut len);
                    Ok(std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)))
                }
            };
            report(r, |a| a.to_string())
        }
        // listen(2) without bind(2), then the address it got.
        ["listen-unbound"] => {
            // SAFETY: a socket, listen, getsockname into a sockaddr_in.
            let r = unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                if libc::listen(fd, 1) != 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    let mut a: libc::sockaddr_in = std::mem::zeroed();
                    let mut len = std::mem::size_of::<libc::sockaddr_in>() as u32;
                    libc::getsockname(fd, (&mut a as *mut libc::sockaddr_in).cast(), &mut len);
                    Ok(std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)))
                }
            };
            report(r, |a| a.to_string())
        }
        // A UDP datagram to DST:PORT with IP_PKTINFO asking for source SRC.
        ["pktinfo-send", src, dst, port] => {
            let to: std::net::SocketAddrV4 = format!("{dst}:{port}").parse().unwrap();
            let from: std::net::Ipv4Addr = src.parse().unwrap();
            // SAFETY: a UDP socket; sendmsg with a sockaddr_in, a one-byte
            // iovec and a control buffer sized by CMSG_SPACE holding one
            // in_pktinfo.
            let r = unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as u16;
                sa.sin_port = to.port().to_be();
                sa.sin_addr.s_addr = u32::from(*to.ip()).to_be();
                let mut byte = [b'p'];
                let mut iov = libc::iovec {
                    iov_base: byte.as_mut_ptr().cast(),
                    iov_len: 1,
                };
                let space = libc::CMSG_SPACE(std::mem::size_of::<libc::in_pktinfo>() as u32) as usize;
                let mut control = vec![0u8; space];
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_name = (&mut sa as *mut libc::sockaddr_in).cast();
                msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = space as _;
                let c = libc::CMSG_FIRSTHDR(&msg);
                (*c).cmsg_level = libc::IPPROTO_IP;
                (*c).cmsg_type = libc::IP_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::in_pktinfo>() as u32) as _;
                let mut info: libc::in_pktinfo = std::mem::zeroed();
                info.ipi_spec_dst.s_addr = u32::from(from).to_be();
                std::ptr::copy_nonoverlapping(
                    (&info as *const libc::in_pktinfo).cast::<u8>(),
                    libc::CMSG_DATA(c),
                    std::mem::size_of::<libc::in_pktinfo>(),
                );
                libc::sendmsg(fd, &msg, 0)
            };
            report(last(r, r < 0), |n| format!("sent {n}"))
        }
        // The interfaces' IPv4 addresses as SIOCGIFCONF lists them:
        // "NAME ADDRESS" pairs, comma-separated.
        ["ifconf"] => {
            // SAFETY: a plain socket; ifconf points at room for 64 ifreq
            // structures, of which the kernel fills ifc_len bytes.
            let r = unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
                let mut reqs: [libc::ifreq; 64] = std::mem::zeroed();
                let mut conf: libc::ifconf = std::mem::zeroed();
                conf.ifc_len = std::mem::size_of_val(&reqs) as i32;
                conf.ifc_ifcu.ifcu_req = reqs.as_mut_ptr();
                let r = libc::ioctl(fd, libc::SIOCGIFCONF as _, &mut conf);
                let n = conf.ifc_len.max(0) as usize / std::mem::size_of::<libc::ifreq>();
                let list: Vec<String> = reqs[..n.min(64)]
                    .iter()
                    .map(|q| {
                        let name = field(&q.ifr_name);
                        let sin = &*(&q.ifr_ifru.ifru_addr as *const libc::sockaddr).cast::<libc::sockaddr_in>();
                        format!("{name} {}", std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)))
                    })
                    .collect();
                libc::close(fd);
                (r, list.join(","))
            };
            report(last(r.0, r.0 < 0), |_| r.1.clone())
        }
        // The inode flags (FS_IOC_GETFLAGS), as lsattr shows them: i for
        // immutable, a for append-only.
        ["iflags", path] => {
            let f = std::fs::File::open(path).unwrap();
            use std::os::fd::AsRawFd;
            let mut flags: libc::c_int = 0;
            // SAFETY: FS_IOC_GETFLAGS writes an int.
            let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
            report(last(r, r < 0), |_| {
                format!(
                    "{}{}",
                    if flags & 0x10 != 0 { "i" } else { "-" },
                    if flags & 0x20 != 0 { "a" } else { "-" }
                )
            })
        }
        ["xattr-set", path, name, value] => {
            // SAFETY: NUL-terminated path and name, a value of the length given.
            let r = unsafe { libc::lsetxattr(c(path).as_ptr(), c(name).as_ptr(), value.as_ptr().cast(), value.len(), 0) };
            report(last(r, r < 0), |_| "set".into())
        }
        ["xattr-remove", path, name] => {
            // SAFETY: NUL-terminated path and name.
            let r = unsafe { libc::lremovexattr(c(path).as_ptr(), c(name).as_ptr()) };
            report(last(r, r < 0), |_| "removed".into())
        }
        ["clear-immutable", path] => {
            let f = std::fs::File::open(path).unwrap();
            use std::os::fd::AsRawFd;
            let mut flags: libc::c_int = 0;
            // SAFETY: FS_IOC_[GS]ETFLAGS with an int.
            let r = unsafe {
                libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags);
                flags &= !0x10; // FS_IMMUTABLE_FL
                libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags)
            };
            report(last(r, r < 0), |_| "mutable".into())
        }
        ["set-immutable", path] => {
            let f = std::fs::File::open(path).unwrap();
            use std::os::fd::AsRawFd;
            let mut flags: libc::c_long = 0;
            // SAFETY: FS_IOC_[GS]ETFLAGS with a long.
            let r = unsafe {
                libc::ioctl(f.as_raw_fd(), 0x8008_6601u32 as _, &mut flags);
                flags |= 0x10; // FS_IMMUTABLE_FL
                libc::ioctl(f.as_raw_fd(), 0x40086602, &flags)
            };
            report(last(r, r < 0), |_| "immutable".into())
        }
        ["rewrite", path] => {
            // Writes a file's own content back (harmless if allowed).
            let cur = std::fs::read(path).unwrap_or_default();
            report(std::fs::write(path, cur), |_| "written".into())
        }
        // Classic escapes from a chroot: a second chroot, and `..` from a
        // descriptor saved outside; then look for `marker`.
        ["chroot-escape", marker] => {
            use std::os::fd::AsRawFd;
            let _ = std::fs::create_dir("/escape-jail");
            let outside = std::fs::File::open("/").unwrap();
            // SAFETY: plain syscalls with NUL-terminated paths.
            unsafe {
                libc::chroot(c("/escape-jail").as_ptr());
                libc::fchdir(outside.as_raw_fd());
                for _ in 0..64 {
                    libc::chdir(c("..").as_ptr());
                }
                libc::chroot(c(".").as_ptr());
            }
            let _ = std::fs::remove_dir("/escape-jail");
            report(std::fs::metadata(marker), |_| format!("escaped: {marker} is visible"))
        }
        ["http-get", ip, port] => report(
            TcpStream::connect(addr(ip, port)).and_then(|mut s| {
                write!(s, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
                let mut r = String::new();
                s.read_to_string(&mut r)?;
                Ok(r.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_owned())
            }),
            |body| body,
        ),
        ["nice"] => {
            // SAFETY: plain syscalls; errno is reset first since -1 is a valid niceness.
            let n = unsafe {
                *libc::__errno_location() = 0;
                libc::getpriority(libc::PRIO_PROCESS, 0)
            };
            println!("{n}");
            0
        }
        ["renice", n] => {
            // SAFETY: plain syscall.
            let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, n.parse().unwrap()) };
            report(last(r, r < 0), |_| format!("niceness {n}"))
        }
        // How many processes this process can see in /proc.
        ["count-procs"] => {
            let n = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok()))
                .count();
            println!("{n}");
            0
        }
        ["unix-send", path, data] => report(
            std::os::unix::net::UnixStream::connect(path).and_then(|mut s| s.write_all(data.as_bytes())),
            |_| "sent".into(),
        ),
        // Abstract unix sockets (@NAME): serve TAG to every client until
        // killed; connect and read the answer; a datagram there and back.
        ["abstract-serve", name, tag] => {
            use std::os::linux::net::SocketAddrExt;
            let a = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            let l = match std::os::unix::net::UnixListener::bind_addr(&a) {
                Ok(l) => l,
                Err(e) => std::process::exit(report::<()>(Err(e), |_| String::new())),
            };
            println!("LISTEN @{name}");
            std::io::stdout().flush().unwrap();
            for c in l.incoming().flatten() {
                let mut c = c;
                let _ = writeln!(c, "{tag}");
            }
            0
        }
        ["abstract-connect", name] => {
            use std::os::linux::net::SocketAddrExt;
            let a = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            report(
                std::os::unix::net::UnixStream::connect_addr(&a).and_then(|mut s| {
                    let mut answer = String::new();
                    s.read_to_string(&mut answer)?;
                    Ok(answer.trim().to_owned())
                }),
                |s| format!("answer={s}"),
            )
        }
        ["abstract-recv", name] => {
            use std::os::linux::net::SocketAddrExt;
            let a = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            report(
                std::os::unix::net::UnixDatagram::bind_addr(&a).and_then(|s| {
                    println!("READY");
                    std::io::stdout().flush()?;
                    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
                    let mut buf = [0u8; 64];
                    let n = s.recv(&mut buf)?;
                    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
                }),
                |s| format!("got={s}"),
            )
        }
        ["abstract-send", name, data] => {
            use std::os::linux::net::SocketAddrExt;
            let a = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            report(
                std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.send_to_addr(data.as_bytes(), &a)),
                |n| format!("sent {n}"),
            )
        }
        // A TCP connection to ADDR:PORT: the addresses each end sees
        // (getsockname, getpeername) and the answer.
        ["connect-names", ip, port] => report(
            TcpStream::connect_timeout(&addr(ip, port), std::time::Duration::from_secs(3)).and_then(|mut s| {
                let (local, peer) = (s.local_addr()?, s.peer_addr()?);
                let mut answer = String::new();
                s.read_to_string(&mut answer)?;
                Ok(format!("local={} peer={} answer={}", local.ip(), peer.ip(), answer.trim()))
            }),
            |s| s,
        ),
        // N TCP connections to a listener of this process on IP, each
        // accepted and closed; prints the rate (connections a second).
        ["tcp-rate", ip, n] => {
            let n: u32 = n.parse().unwrap();
            let l = match TcpListener::bind(addr(ip, "0")) {
                Ok(l) => l,
                Err(e) => std::process::exit(report::<()>(Err(e), |_| String::new())),
            };
            let to = SocketAddr::new(addr(ip, "0").ip(), l.local_addr().unwrap().port());
            let start = std::time::Instant::now();
            for _ in 0..n {
                let c = match TcpStream::connect(to) {
                    Ok(c) => c,
                    Err(e) => std::process::exit(report::<()>(Err(e), |_| String::new())),
                };
                let (s, _) = l.accept().unwrap();
                drop(s);
                drop(c);
            }
            println!("OK {:.0}", f64::from(n) / start.elapsed().as_secs_f64());
            0
        }
        // A line-protocol request (memcached, SMTP…): TEXT and CRLF, then
        // the first line of the answer.
        ["tcp-say", ip, port, text] => report(
            TcpStream::connect_timeout(&addr(ip, port), std::time::Duration::from_secs(3)).and_then(|mut s| {
                write!(s, "{text}\r\n")?;
                let mut line = String::new();
                std::io::BufRead::read_line(&mut std::io::BufReader::new(s), &mut line)?;
                Ok(line.trim().to_owned())
            }),
            |s| s,
        ),
        // N connections to a listener of this process on IP, each closed
        // by the server first and by the client a moment later, once the
        // server's side has become a TIME_WAIT (FIN_WAIT2) socket.
        ["tcp-server-closes-first", ip, n] => {
            let l = match TcpListener::bind(addr(ip, "0")) {
                Ok(l) => l,
                Err(e) => std::process::exit(report::<()>(Err(e), |_| String::new())),
            };
            let to = SocketAddr::new(addr(ip, "0").ip(), l.local_addr().unwrap().port());
            let mut done = 0;
            for _ in 0..n.parse::<u32>().unwrap() {
                let Ok(c) = TcpStream::connect(to) else { break };
                let (s, _) = l.accept().unwrap();
                drop(s);
                std::thread::sleep(std::time::Duration::from_millis(5));
                drop(c);
                done += 1;
            }
            println!("OK {done}");
            0
        }
        ["exists", path] => report(std::fs::symlink_metadata(path), |_| (*path).to_owned()),
        ["uname"] => {
            let u = nix_uname();
            println!("{} {}", u.0, u.1);
            0
        }
        // Forks up to N children that stay alive for a moment; prints how many succeeded.
        ["fork-many", n] => {
            let n: u32 = n.parse().unwrap();
            let mut ok = 0;
            let mut kids = Vec::new();
            for _ in 0..n {
                // SAFETY: the child only sleeps and _exits.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    unsafe {
                        libc::sleep(3);
                        libc::_exit(0)
                    };
                }
                if pid > 0 {
                    ok += 1;
                    kids.push(pid);
                }
            }
            for k in kids {
                unsafe {
                    libc::kill(k, libc::SIGKILL);
                    libc::waitpid(k, std::ptr::null_mut(), 0);
                }
            }
            println!("OK forked={ok}");
            0
        }
        // getent hosts NAME: what the C library's resolver answers.
        ["resolve", name] => {
            use std::net::ToSocketAddrs;
            report((*name, 0).to_socket_addrs(), |addrs| {
                let mut v: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
                v.dedup();
                v.join(" ")
            })
        }
        ["sleep", secs] => {
            std::thread::sleep(std::time::Duration::from_secs_f64(secs.parse().unwrap()));
            0
        }
        ["exit", n] => n.parse().unwrap(),
        // Allocates and touches N MiB, 1 MiB at a time: "OK allocated=N",
        // or "ERR ENOMEM allocated=K" when the kernel refuses (a process
        // the OOM killer ends says nothing).
        ["alloc", mib] => {
            let want: usize = mib.parse().unwrap();
            let mut kept: Vec<Vec<u8>> = Vec::new();
            while kept.len() < want {
                let mut block = Vec::new();
                if block.try_reserve_exact(1 << 20).is_err() {
                    break;
                }
                block.resize(1 << 20, 1u8);
                kept.push(block);
            }
            if kept.len() == want {
                println!("OK allocated={want}");
                0
            } else {
                println!("ERR ENOMEM allocated={}", kept.len());
                1
            }
        }
        // Writes N MiB to PATH, 1 MiB at a time, each synced: "OK
        // written=N", or "ERR ENAME written=K" at the first refusal.
        ["fill", path, mib] => {
            use std::io::Write;
            let want: usize = mib.parse().unwrap();
            let mut f = std::fs::File::create(path).unwrap();
            let block = vec![7u8; 1 << 20];
            let mut written = 0;
            let mut failed = None;
            while written < want {
                if let Err(e) = f.write_all(&block).and_then(|()| f.sync_data()) {
                    failed = Some(e);
                    break;
                }
                written += 1;
            }
            match failed {
                None => {
                    println!("OK written={written}");
                    0
                }
                Some(e) => {
                    println!("ERR {} written={written}", errno_name(e.raw_os_error().unwrap_or(0)));
                    1
                }
            }
        }
        // sysinfo(2): "OK uptime=S total=BYTES free=BYTES procs=N".
        ["sysinfo"] => {
            // SAFETY: all-zero is a valid sysinfo; the kernel (or the
            // supervisor) fills it in.
            let mut s: libc::sysinfo = unsafe { std::mem::zeroed() };
            // SAFETY: s is writable.
            let r = unsafe { libc::sysinfo(&mut s) };
            let unit = u64::from(s.mem_unit.max(1));
            report(last((), r < 0), |_| {
                format!(
                    "uptime={} total={} free={} procs={}",
                    s.uptime,
                    s.totalram * unit,
                    s.freeram * unit,
                    s.procs
                )
            })
        }
        // N sysinfo(2) calls: "OK ns=T", the mean time of one.
        ["sysinfo-rate", n] => {
            let n: u32 = n.parse().unwrap();
            // SAFETY: all-zero is a valid sysinfo.
            let mut s: libc::sysinfo = unsafe { std::mem::zeroed() };
            let t0 = std::time::Instant::now();
            for _ in 0..n {
                // SAFETY: s is writable.
                unsafe { libc::sysinfo(&mut s) };
            }
            println!("OK ns={}", t0.elapsed().as_nanos() / u128::from(n.max(1)));
            0
        }
        // sysinfo(2) into memory that is not there: the errno.
        ["sysinfo-bad"] => {
            // SAFETY: the kernel (or the supervisor) finds address 8 unmapped.
            let r = unsafe { libc::sysinfo(std::ptr::dangling_mut::<libc::sysinfo>()) };
            report(last((), r < 0), |_| "written".into())
        }
        // Gives PATH project id N (FS_IOC_FSSETXATTR): OK or the errno.
        ["set-projid", path, n] => {
            let f = std::fs::File::open(path).unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
            let mut x = [0u32; 7]; // struct fsxattr
                                   // SAFETY: FS_IOC_FSGETXATTR and FS_IOC_FSSETXATTR on a 28-byte fsxattr.
            let r = unsafe {
                let r = libc::ioctl(fd, 0x801C_581F_u32 as _, x.as_mut_ptr());
                x[3] = n.parse().unwrap();
                if r < 0 {
                    r
                } else {
                    libc::ioctl(fd, 0x401C_5820_u32 as _, x.as_ptr())
                }
            };
            report(last((), r < 0), |_| "set".into())
        }
        // BTRFS_IOC_SUBVOL_CREATE of NAME in DIR: OK or the errno.
        ["subvol-create", dir, name] => {
            let d = std::fs::File::open(dir).unwrap();
            let mut args = [0u8; 4096];
            args[8..8 + name.len()].copy_from_slice(name.as_bytes());
            // SAFETY: a 4096-byte btrfs_ioctl_vol_args with a NUL-terminated name.
            let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&d), 0x5000_940E_u32 as _, args.as_ptr()) };
            report(last((), r < 0), |_| "created".into())
        }
        // Spins on a CPU for SECS of wall time: "OK cpu=C wall=W", the CPU
        // seconds this process got and the seconds that passed.
        ["spin", secs] => {
            let t0 = std::time::Instant::now();
            let limit = std::time::Duration::from_secs_f64(secs.parse().unwrap());
            let mut x = 0u64;
            while t0.elapsed() < limit {
                for i in 0..10_000u64 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
            }
            let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            // SAFETY: the kernel fills in the timespec.
            unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
            let cpu = ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9;
            println!("OK cpu={cpu:.3} wall={:.3}", t0.elapsed().as_secs_f64());
            0
        }
        // A unix stream and a datagram socketpair, a byte across each.
        ["socketpair"] => report(
            std::os::unix::net::UnixStream::pair().and_then(|(mut a, mut b)| {
                a.write_all(b"s")?;
                let mut got = [0u8; 1];
                b.read_exact(&mut got)?;
                let (c, d) = std::os::unix::net::UnixDatagram::pair()?;
                c.send(b"d")?;
                let mut more = [0u8; 1];
                d.recv(&mut more)?;
                Ok(format!("{}{}", got[0] as char, more[0] as char))
            }),
            |s| format!("pair={s}"),
        ),
        // io_uring_setup(2) with one entry: OK and the ring closed, or the errno.
        ["io-uring"] => {
            let mut params = [0u8; 120];
            // SAFETY: params is a zeroed struct io_uring_params (120 bytes).
            let fd = unsafe { libc::syscall(425, 1u32, params.as_mut_ptr()) };
            let r = if fd < 0 { Err(std::io::Error::last_os_error()) } else { Ok(fd) };
            report(r, |fd| {
                // SAFETY: the ring descriptor just made.
                unsafe { libc::close(fd as i32) };
                "ring".into()
            })
        }
        // N unix sockets made and closed: the rate (sockets a second).
        ["unix-rate", n] => {
            let n: u32 = n.parse().unwrap();
            let t = std::time::Instant::now();
            for _ in 0..n {
                drop(std::os::unix::net::UnixDatagram::unbound().unwrap());
            }
            println!("OK rate={:.0}", f64::from(n) / t.elapsed().as_secs_f64());
            0
        }
        // i386 socketcall(2) through int 0x80 (arguments in memory below
        // 4 GiB): a unix socketpair, a byte across, then a unix socket
        // bound to @NAME serving TAG to every client until killed.
        ["socketcall-serve", name, tag] => {
            use std::os::fd::FromRawFd;
            /// int 0x80 with eax, ebx, ecx (rbx is LLVM's: swapped in and out).
            fn int80(nr: u32, a: u32, b: u32) -> i32 {
                let ret: i32;
                // SAFETY: the i386 entry point with integer arguments; the
                // memory they point to is ours.
                unsafe {
                    std::arch::asm!("xchg {a:r}, rbx", "int 0x80", "xchg {a:r}, rbx",
                        a = inout(reg) u64::from(a) => _, inlateout("eax") nr as i32 => ret, in("ecx") b);
                }
                ret
            }
            // SAFETY: a fresh anonymous page, below 4 GiB for int 0x80.
            let page = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                    -1,
                    0,
                )
            } as *mut u32;
            assert!(page as isize != -1);
            let low = page as usize as u32;
            // SAFETY: writes within the page.
            unsafe {
                let args = [libc::AF_UNIX as u32, libc::SOCK_STREAM as u32, 0, low + 64];
                std::ptr::copy_nonoverlapping(args.as_ptr(), page, 4);
            }
            let r = int80(102, 8, low); // SYS_SOCKETPAIR
            if r < 0 {
                std::process::exit(report::<()>(Err(std::io::Error::from_raw_os_error(-r)), |_| String::new()));
            }
            // SAFETY: the two descriptors the kernel wrote at low + 64.
            let (mut x, mut y) = unsafe {
                let sv = page.add(16);
                (
                    std::os::unix::net::UnixStream::from_raw_fd(*sv as i32),
                    std::os::unix::net::UnixStream::from_raw_fd(*sv.add(1) as i32),
                )
            };
            x.write_all(b"p").unwrap();
            let mut got = [0u8; 1];
            y.read_exact(&mut got).unwrap();
            let fd = int80(102, 1, low); // SYS_SOCKET
            if fd < 0 {
                std::process::exit(report::<()>(Err(std::io::Error::from_raw_os_error(-fd)), |_| String::new()));
            }
            // SAFETY: the socket just made; sockaddr_un with an abstract name.
            let l = unsafe {
                let mut a: libc::sockaddr_un = std::mem::zeroed();
                a.sun_family = libc::AF_UNIX as u16;
                for (i, b) in name.bytes().enumerate() {
                    a.sun_path[i + 1] = b as libc::c_char;
                }
                let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + name.len()) as u32;
                if libc::bind(fd, &a as *const _ as *const libc::sockaddr, len) < 0 || libc::listen(fd, 8) < 0 {
                    std::process::exit(report::<()>(Err(std::io::Error::last_os_error()), |_| String::new()));
                }
                std::os::unix::net::UnixListener::from_raw_fd(fd)
            };
            println!("LISTEN @{name} pair={}", got[0] as char);
            std::io::stdout().flush().unwrap();
            for c in l.incoming().flatten() {
                let mut c = c;
                let _ = writeln!(c, "{tag}");
            }
            0
        }
        // A UDP service on IP:PORT answering each datagram with "echo
        // PEER" (the sender as the service sees it), until three seconds
        // pass without one.
        ["udp-echo", ip, port] => {
            let s = match UdpSocket::bind(addr(ip, port)) {
                Ok(s) => s,
                Err(e) => std::process::exit(report::<()>(Err(e), |_| String::new())),
            };
            println!("READY {}", s.local_addr().unwrap());
            std::io::stdout().flush().unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 512];
            while let Ok((_, from)) = s.recv_from(&mut buf) {
                if let Err(e) = s.send_to(format!("echo {}", from.ip()).as_bytes(), from) {
                    println!("ERR {} answering {from}: {e}", errno_name(e.raw_os_error().unwrap_or(0)));
                }
            }
            0
        }
        // Asks a UDP service at IP:PORT from a socket no bind() touched:
        // by sendto ("sendto": the kernel binds the wildcard) or after
        // connect() ("connect"); or by sendto after bind(0.0.0.0:0)
        // ("bind", as musl's resolver); prints where the answer came from.
        ["udp-ask", ip, port, how] => {
            // SAFETY: plain syscall; the descriptor is handed to UdpSocket.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
            if fd < 0 {
                std::process::exit(report::<()>(last((), true), |_| String::new()));
            }
            // SAFETY: fd is a UDP socket nothing else owns.
            let s = unsafe { <UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            let to = addr(ip, port);
            report(
                (|| {
                    if *how == "connect" {
                        s.connect(to)?;
                        s.send(b"ask")?;
                    } else if *how == "bind" {
                        let any = libc::sockaddr_in {
                            sin_family: libc::AF_INET as u16,
                            sin_port: 0,
                            sin_addr: libc::in_addr { s_addr: 0 },
                            sin_zero: [0; 8],
                        };
                        // SAFETY: any is a valid sockaddr_in of the size given.
                        let r = unsafe { libc::bind(fd, (&any as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&any) as u32) };
                        last((), r != 0)?;
                        s.send_to(b"ask", to)?;
                    } else {
                        s.send_to(b"ask", to)?;
                    }
                    s.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
                    let mut buf = [0u8; 512];
                    let (n, from) = s.recv_from(&mut buf)?;
                    Ok(format!("from={from} answer={}", String::from_utf8_lossy(&buf[..n])))
                })(),
                |s| s,
            )
        }
        // A DNS server on IP:PORT that answers every query NXDOMAIN, until
        // five seconds pass without one.
        ["dns-nx", ip, port] => {
            let s = match UdpSocket::bind(addr(ip, port)) {
                Ok(s) => s,
                Err(e) => std::process::exit(report::<()>(Err(e), |_| String::new())),
            };
            println!("READY {}", s.local_addr().unwrap());
            std::io::stdout().flush().unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                if n < 12 {
                    continue;
                }
                // The header and the question, no records: QR, RD as asked,
                // RA, rcode 3.
                let mut end = 12;
                while end < n && buf[end] != 0 {
                    end += 1 + usize::from(buf[end]);
                }
                let end = (end + 5).min(n);
                let mut r = buf[..end].to_vec();
                r[2] = 0x80 | (buf[2] & 1);
                r[3] = 0x83;
                r[6..12].fill(0);
                let _ = s.send_to(&r, from);
            }
            0
        }
        // A raw socket of family 4 or 6 and protocol PROTO.
        ["raw-open", family, proto] => {
            let fam = if *family == "6" { libc::AF_INET6 } else { libc::AF_INET };
            // SAFETY: plain syscall.
            let fd = unsafe { libc::socket(fam, libc::SOCK_RAW, proto.parse().unwrap()) };
            report(last(fd, fd < 0), |_| "raw socket".into())
        }
        // A raw ICMP socket that would write its own IP headers.
        ["raw-hdrincl"] => {
            // SAFETY: plain syscalls on a descriptor this process owns.
            let r = unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
                let one: libc::c_int = 1;
                if fd < 0 {
                    fd
                } else {
                    libc::setsockopt(
                        fd,
                        libc::IPPROTO_IP,
                        libc::IP_HDRINCL,
                        (&one as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as u32,
                    )
                }
            };
            report(last(r, r < 0), |_| "IP_HDRINCL set".into())
        }
        // A UDP datagram ("raw") from a raw UDP socket bound to SRC, to
        // DST:PORT.
        ["raw-udp", src, dst, port] => {
            let port: u16 = port.parse().unwrap();
            let mut dgram = Vec::new();
            for w in [4444u16, port, 11, 0] {
                dgram.extend_from_slice(&w.to_be_bytes());
            }
            dgram.extend_from_slice(b"raw");
            report(raw_send(libc::IPPROTO_UDP, src, dst, &dgram), |_| "sent".into())
        }
        // An ICMP (ICMPv6 for IPv6 addresses) echo request from a raw
        // socket (bound to SRC unless it is "-") to DST, and its reply
        // within a second.
        ["ping", src, dst] => {
            let v6 = dst.contains(':');
            let id = (std::process::id() as u16).to_be_bytes();
            let mut req = vec![if v6 { 128 } else { 8 }, 0, 0, 0, id[0], id[1], 0, 1];
            req.extend_from_slice(b"vsbox-probe");
            let sum = req
                .chunks(2)
                .fold(0u32, |s, c| s + u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])));
            let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
            if !v6 {
                // (The kernel sums ICMPv6 itself: it covers the addresses.)
                req[2..4].copy_from_slice(&sum.to_be_bytes());
            }
            let proto = if v6 { libc::IPPROTO_ICMPV6 } else { libc::IPPROTO_ICMP };
            report(
                raw_send(proto, src, dst, &req).and_then(|s| {
                    s.set_read_timeout(Some(std::time::Duration::from_secs(1)))?;
                    let mut buf = [0u8; 1500];
                    loop {
                        let (n, from) = s.recv_from(&mut buf)?;
                        // IPv4 raw sockets get the IP header too.
                        let (ihl, reply) = if v6 { (0, 129) } else { (usize::from(buf[0] & 15) * 4, 0) };
                        if n >= ihl + 8 && buf[ihl] == reply && buf[ihl + 4..ihl + 6] == id {
                            return Ok(from.ip());
                        }
                    }
                }),
                |ip| format!("reply from={ip}"),
            )
        }
        // A packet socket: AF_PACKET (all protocols), or the obsolete
        // AF_INET SOCK_PACKET; OK and closed, or the errno.
        ["packet-open", how] => {
            let (domain, ty) = if *how == "sock-packet" {
                (libc::AF_INET, 10)
            } else {
                (libc::AF_PACKET, libc::SOCK_RAW)
            };
            // SAFETY: integers only; the descriptor is closed at once.
            let fd = unsafe { libc::socket(domain, ty, i32::from(0x0003u16.to_be())) };
            let r = if fd < 0 { Err(std::io::Error::last_os_error()) } else { Ok(fd) };
            report(r, |fd| {
                // SAFETY: the socket just made.
                unsafe { libc::close(fd) };
                "packet".into()
            })
        }
        // A seccomp filter with a user-notification listener of its own
        // (no_new_privs first): OK, or the errno.
        ["seccomp-listener"] => {
            let allow = [libc::sock_filter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: libc::SECCOMP_RET_ALLOW,
            }];
            let prog = libc::sock_fprog {
                len: 1,
                filter: allow.as_ptr() as *mut _,
            };
            // SAFETY: prctl with integers; seccomp reads `prog`, which lives
            // across the call.
            let r = unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                libc::syscall(libc::SYS_seccomp, 1, 8, &prog)
            };
            report(last(r, r < 0), |_| "listener".into())
        }
        // A TCP connection from SRC (bound first) to DST:PORT, 2 s at most;
        // the answer.
        ["connect-from", src, dst, port] => {
            let to: std::net::SocketAddrV4 = format!("{dst}:{port}").parse().unwrap();
            let from: std::net::Ipv4Addr = src.parse().unwrap();
            let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
                sin_family: libc::AF_INET as u16,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                sin_zero: [0; 8],
            };
            let (a, b) = (sin(from, 0), sin(*to.ip(), to.port()));
            let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
            // SAFETY: a socket, a 2 s send timeout (which bounds connect),
            // bind and connect with valid sockaddr_in; the descriptor goes
            // to a TcpStream that owns it.
            let r = unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                let tv = libc::timeval { tv_sec: 2, tv_usec: 0 };
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_SNDTIMEO,
                    &tv as *const _ as *const libc::c_void,
                    std::mem::size_of::<libc::timeval>() as u32,
                );
                if libc::bind(fd, &a as *const _ as *const libc::sockaddr, len) < 0
                    || libc::connect(fd, &b as *const _ as *const libc::sockaddr, len) < 0
                {
                    let e = std::io::Error::last_os_error();
                    libc::close(fd);
                    Err(e)
                } else {
                    use std::os::fd::FromRawFd;
                    Ok(TcpStream::from_raw_fd(fd))
                }
            };
            report(
                r.and_then(|mut s| {
                    let mut answer = String::new();
                    s.read_to_string(&mut answer)?;
                    Ok(answer.trim().to_owned())
                }),
                |s| format!("answer={s}"),
            )
        }
        // socketpair(2) with a pointer that cannot be written: the errno,
        // and how many descriptors are open afterwards.
        ["socketpair-bad"] => {
            let open = || std::fs::read_dir("/proc/self/fd").unwrap().count();
            let before = open();
            // SAFETY: the kernel (or the supervisor) finds address 8 unmapped.
            let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, 8 as *mut libc::c_int) };
            let e = std::io::Error::last_os_error();
            let name = if r < 0 { errno_name(e.raw_os_error().unwrap_or(0)) } else { "OK" };
            println!("{name} left-open={}", open() - before);
            0
        }
        // COUNT connections to the unix socket at PATH, each sending "L"
        // with N descriptors (of /dev/null) attached.
        ["send-fds", path, n, count] => {
            use std::os::fd::AsRawFd;
            let null = std::fs::File::open("/dev/null").unwrap();
            let fds = vec![null.as_raw_fd(); n.parse().unwrap()];
            let mut sent = 0;
            for _ in 0..count.parse::<u32>().unwrap() {
                let Ok(c) = std::os::unix::net::UnixStream::connect(path) else {
                    break;
                };
                // SAFETY: CMSG_SPACE only computes a size.
                let space = unsafe { libc::CMSG_SPACE((4 * fds.len()) as u32) } as usize;
                let mut control = vec![0u8; space];
                let mut byte = *b"L";
                let mut iov = libc::iovec {
                    iov_base: byte.as_mut_ptr().cast(),
                    iov_len: 1,
                };
                // SAFETY: msghdr with one iovec and a control buffer of the
                // size CMSG_SPACE gave, holding one SCM_RIGHTS message.
                let r = unsafe {
                    let mut msg: libc::msghdr = std::mem::zeroed();
                    msg.msg_iov = &mut iov;
                    msg.msg_iovlen = 1;
                    msg.msg_control = control.as_mut_ptr().cast();
                    msg.msg_controllen = space as _;
                    let cm = libc::CMSG_FIRSTHDR(&msg);
                    (*cm).cmsg_level = libc::SOL_SOCKET;
                    (*cm).cmsg_type = libc::SCM_RIGHTS;
                    (*cm).cmsg_len = libc::CMSG_LEN((4 * fds.len()) as u32) as _;
                    std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(cm).cast(), fds.len());
                    libc::sendmsg(c.as_raw_fd(), &msg, 0)
                };
                if r == 1 {
                    sent += 1;
                }
            }
            println!("OK sent={sent}");
            0
        }
        _ => {
            eprintln!("vsbox-probe: unknown probe {a:?}");
            2
        }
    };
    std::process::exit(code);
}

/// A raw socket of `proto`, bound to `src` unless it is "-", that has
/// sent `payload` to `dst` (the kernel writes the IP header).
fn raw_send(proto: i32, src: &str, dst: &str, payload: &[u8]) -> std::io::Result<UdpSocket> {
    let to = addr(dst, "0");
    let family = if to.is_ipv6() { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain syscall; the descriptor is handed to UdpSocket, whose
    // send_to/recv_from are sendto/recvfrom, as a raw socket takes them.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW, proto) };
    last((), fd < 0)?;
    // SAFETY: fd is a socket nothing else owns.
    let s = unsafe { <UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    if src != "-" && to.is_ipv6() {
        let ip: std::net::Ipv6Addr = src.parse().expect("address");
        // SAFETY: sockaddr_in6 is plain data; all zero is a valid value.
        let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        sin6.sin6_family = libc::AF_INET6 as u16;
        sin6.sin6_addr.s6_addr = ip.octets();
        // SAFETY: sin6 is a valid sockaddr_in6 of the size given.
        let r = unsafe { libc::bind(fd, (&sin6 as *const libc::sockaddr_in6).cast(), std::mem::size_of_val(&sin6) as u32) };
        last((), r != 0)?;
    } else if src != "-" {
        let ip: std::net::Ipv4Addr = src.parse().expect("address");
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(ip.octets()),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: sin is a valid sockaddr_in of the size given.
        let r = unsafe { libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), std::mem::size_of_val(&sin) as u32) };
        last((), r != 0)?;
    }
    s.send_to(payload, to)?;
    Ok(s)
}
