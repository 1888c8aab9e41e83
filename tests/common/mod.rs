//! Shared helpers for the integration tests: run the real binary (through
//! an applet-named link, as users do), private VSBOX_* directories, unique
//! context ids and loopback addresses, and guards that clean up kernel
//! objects even when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const VSBOX: &str = env!("CARGO_BIN_EXE_vsbox");
pub const PROBE: &str = env!("CARGO_BIN_EXE_vsbox-probe");

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Root-only tests return early, loudly, when not root; CI runs as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("SKIP {}: needs root", module_path!());
            return;
        }
    };
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}-{}-{}", std::process::id(), next()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Private VSBOX_CONFDIR / ROOTDIR / RUNDIR for one test, and a directory
/// of applet links to the binary under test.
pub struct Env {
    pub dir: TempDir,
}

impl Env {
    pub fn new() -> Env {
        let dir = TempDir::new("env");
        for d in ["etc", "vservers", "run", "bin"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let st = Command::new(VSBOX).arg("--install").arg(dir.path().join("bin")).status().unwrap();
        assert!(st.success());
        // Private counters would all start at 49152; spread them so that
        // parallel tests do not see each other's dynamic ids.
        let start = 49152 + (std::process::id() % 200) * 60 + next() % 60;
        std::fs::write(dir.path().join("run/xid.next"), format!("{start:<5}\n")).unwrap();
        Env { dir }
    }

    /// A command running APPLET through its link, with the private dirs.
    pub fn cmd(&self, applet: &str) -> Command {
        let mut c = Command::new(self.dir.path().join("bin").join(applet));
        c.env("VSBOX_CONFDIR", self.dir.path().join("etc"))
            .env("VSBOX_ROOTDIR", self.dir.path().join("vservers"))
            .env("VSBOX_RUNDIR", self.dir.path().join("run"))
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, applet: &str, args: &[&str]) -> Out {
        Out::from(self.cmd(applet).args(args).output().unwrap())
    }
}

/// The probe run on the host (outside every context), for the other side
/// of what a test tries inside.
pub fn host_probe(args: &[&str]) -> Out {
    Out::from(Command::new(PROBE).args(args).output().unwrap())
}

/// The kernel patch is running (kernel/README.md): its host, context 0,
/// is blind to the guests' processes, which the tests then look at as the
/// spectator (context 1) does.
pub fn patched() -> bool {
    vsbox::kernel::native::available()
}

/// What `f` finds in /proc, looked at as the host's root sees it on a stock
/// kernel: here, or on the patched kernel from a child that has become the
/// spectator. None when `f` found nothing. (That child is forked from the
/// test harness, which has threads: it only reads files and allocates,
/// which musl's fork keeps safe, and exits.)
fn look(f: impl FnOnce() -> Option<String>) -> Option<String> {
    vsbox::kernel::native::spectate(|| f().map_or_else(String::new, |t| format!("+{t}")))
        .expect("look at /proc as the spectator")
        .strip_prefix('+')
        .map(str::to_owned)
}

/// /proc/PID/FILE of any process, a guest's too (see [`look`]); None when
/// there is no such process or file.
pub fn proc_read(pid: u32, file: &str) -> Option<String> {
    let path = format!("/proc/{pid}/{file}");
    look(move || std::fs::read(path).ok().map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Whether process PID exists, a guest's too.
pub fn proc_exists(pid: u32) -> bool {
    look(move || std::path::Path::new(&format!("/proc/{pid}")).exists().then(String::new)).is_some()
}

/// Where the link /proc/PID/FILE points (a namespace: "user:[4026531837]").
pub fn proc_link(pid: u32, file: &str) -> Option<String> {
    let path = format!("/proc/{pid}/{file}");
    look(move || std::fs::read_link(path).ok().map(|t| t.display().to_string()))
}

/// The owner of /proc/PID: the process's effective uid.
pub fn proc_uid(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    look(move || std::fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid().to_string()))?
        .parse()
        .ok()
}

/// How many descriptors process PID has open, a guest's too.
pub fn proc_fd_count(pid: u32) -> Option<usize> {
    look(move || std::fs::read_dir(format!("/proc/{pid}/fd")).ok().map(|d| d.count().to_string()))?
        .parse()
        .ok()
}

/// Every process whose command line is `cmdline` (arguments joined by
/// spaces), a guest's too: one look at all of /proc.
pub fn pids_with_cmdline(cmdline: &str) -> Vec<u32> {
    let want = cmdline.to_owned();
    look(move || {
        let rd = std::fs::read_dir("/proc").ok()?;
        let found: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.parse::<u32>().is_ok())
            .filter(|n| {
                std::fs::read(format!("/proc/{n}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).trim_end_matches('\0').replace('\0', " ") == want)
            })
            .collect();
        Some(found.join(" "))
    })
    .unwrap_or_default()
    .split_whitespace()
    .filter_map(|n| n.parse().ok())
    .collect()
}

/// An Output with its streams as text.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        use std::os::unix::process::ExitStatusExt;
        Out {
            code: o.status.code().unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Out {
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success: {self:?}");
        self
    }
    /// Success of a command that restarts or stops the guest it runs in:
    /// it may end on its own first, or be killed (SIGKILL) with its guest.
    pub fn ok_or_killed(&self) -> &Self {
        assert!(matches!(self.code, 0 | 137), "expected success: {self:?}");
        self
    }
    pub fn line(&self) -> &str {
        self.stdout.trim()
    }
}

static STATIC_IDS: AtomicU32 = AtomicU32::new(0);

/// A static context id no other test (of this run) uses: 100 per test
/// binary, in blocks chosen by the process id.
pub fn static_xid() -> u32 {
    let n = STATIC_IDS.fetch_add(1, Ordering::Relaxed);
    assert!(n < 100, "a test binary uses at most 100 static ids");
    1000 + (std::process::id() % 400) * 100 + n
}

/// A unique loopback address 127.A.B.C for this test.
pub fn loopback() -> String {
    let n = next();
    format!("127.{}.{}.{}", 100 + std::process::id() % 100, 1 + n / 200, 2 + n % 200)
}

/// Stops a background child on drop as a supervisor would: TERM, a
/// grace period, then KILL.
pub struct Bg(pub Child);

impl Drop for Bg {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if !eventually(3, || self.0.try_wait().is_ok_and(|s| s.is_some())) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Ends context `xid` (every process, then its cgroups) on drop.
pub struct CtxGuard(pub u32);

impl Drop for CtxGuard {
    fn drop(&mut self) {
        kill_context(self.0);
    }
}

pub fn kill_context(xid: u32) {
    let Ok(reg) = vsbox::context::Registry::open() else { return };
    let Some(dir) = reg.find(xid) else { return };
    let mut dirs = vec![dir.clone()];
    for c in vsbox::kernel::cgroup::CONTROLLERS {
        if let Some(d) = reg.layout.v1_dir(c, &dir).filter(|d| d.is_dir()) {
            dirs.push(d);
        }
    }
    if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
        for pid in vsbox::kernel::cgroup::procs(&dir).unwrap_or_default() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
    }
    for d in dirs.iter().rev() {
        let _ = vsbox::kernel::cgroup::remove(d, Some(Duration::from_secs(5)));
    }
}

/// Starts `COMMAND` in static context `xid` in the background and waits
/// until its command runs (init and command are in its cgroup).
pub fn start_context(env: &Env, xid: u32, opts: &[&str], command: &[&str]) -> Bg {
    let mut c = env.cmd("chcontext");
    c.args(["--ctx", &xid.to_string(), "--silent"])
        .args(opts)
        .arg("--")
        .args(command)
        .stdout(Stdio::null());
    let bg = Bg(c.spawn().unwrap());
    let want = if opts.contains(&"fakeinit") { 1 } else { 2 };
    assert!(
        eventually(5, || ctx_dir(xid)
            .is_some_and(|d| vsbox::kernel::cgroup::procs(&d).is_ok_and(|p| p.len() >= want))),
        "context {xid} did not start"
    );
    bg
}

/// The directory of context `xid`, if it exists.
pub fn ctx_dir(xid: u32) -> Option<PathBuf> {
    vsbox::context::Registry::open().ok()?.find(xid)
}

/// Polls `cond` for up to `secs` seconds.
pub fn eventually(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// The context number from chcontext's stderr line.
pub fn announced_xid(stderr: &str) -> Option<u32> {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("New security context is "))
        .and_then(|n| n.trim().parse().ok())
}

/// Reads a line from a child's stdout (e.g. "LISTEN 127.0.0.2:4000").
pub fn read_line(child: &mut Child) -> String {
    use std::io::BufRead;
    let out = child.stdout.as_mut().expect("piped stdout");
    let mut r = std::io::BufReader::new(out);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line.trim().to_owned()
}

/// A busybox guest built in the test's private directories, with the
/// probe at /bin/probe. Dropping it stops it and ends whatever is left.
pub struct TestGuest<'a> {
    pub env: &'a Env,
    pub name: String,
}

impl<'a> TestGuest<'a> {
    pub fn busybox(env: &'a Env, tag: &str) -> TestGuest<'a> {
        let name = format!("{tag}-{}-{}", std::process::id(), next());
        let g = TestGuest { env, name };
        g.run(&["build", "-m", "busybox"]).ok();
        std::fs::copy(PROBE, g.root().join("bin/probe")).unwrap();
        g
    }
    pub fn root(&self) -> PathBuf {
        self.env.dir.path().join("vservers").join(&self.name)
    }
    /// Writes its hook, CONFDIR/NAME.sh (`script` whole, its #! line
    /// included), executable; gives its path.
    pub fn set_hook(&self, script: &str) -> PathBuf {
        let hook = self.conf_path().with_file_name(format!("{}.sh", self.name));
        std::fs::write(&hook, script).unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        hook
    }
    pub fn conf_path(&self) -> PathBuf {
        self.env.dir.path().join("etc").join(format!("{}.conf", self.name))
    }
    pub fn conf(&self, text: &str) {
        std::fs::write(self.conf_path(), text).unwrap();
    }
    pub fn run(&self, args: &[&str]) -> Out {
        let mut full = vec![self.name.as_str()];
        full.extend_from_slice(args);
        self.env.run("vserver", &full)
    }
    /// An init script /etc/init.d/S50NAME with `start` and `stop` bodies.
    pub fn service(&self, name: &str, start: &str, stop: &str) {
        let p = self.root().join(format!("etc/init.d/S50{name}"));
        std::fs::write(
            &p,
            format!("#!/bin/sh\ncase \"$1\" in\nstart) {start} ;;\nstop) {stop} ;;\nesac\nexit 0\n"),
        )
        .unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&p).unwrap().permissions(), 0o755);
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    /// The guest's context directory (running or left over).
    pub fn context_dir(&self) -> Option<PathBuf> {
        let layout = vsbox::kernel::cgroup::Layout::detect().ok()?;
        let tag = self.conf_path().display().to_string();
        vsbox::kernel::cgroup::find_dir(&layout.base(), &|d| {
            vsbox::sys::getxattr(d, "trusted.vsbox.guest")
                .ok()
                .flatten()
                .is_some_and(|v| v == tag.as_bytes())
        })
    }
    /// Host pids of every process of the running guest (its context's
    /// cgroup and those below it); none when it is not running.
    pub fn pids(&self) -> Vec<u32> {
        let Some(dir) = self.context_dir() else { return Vec::new() };
        let pids = std::cell::RefCell::new(Vec::new());
        let _ = vsbox::kernel::cgroup::find_dir(&dir, &|d| {
            pids.borrow_mut().extend(vsbox::kernel::cgroup::procs(d).unwrap_or_default());
            false
        });
        pids.into_inner()
    }
}

impl Drop for TestGuest<'_> {
    fn drop(&mut self) {
        let _ = self.run(&["stop"]);
        if let Some(dir) = self.context_dir() {
            if let Some(xid) = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()) {
                kill_context(xid);
            }
        }
    }
}

/// Addresses currently on network device `dev`.
pub fn addresses_on(dev: &str) -> Vec<String> {
    nix::ifaddrs::getifaddrs()
        .unwrap()
        .filter(|i| i.interface_name == dev)
        .filter_map(|i| i.address.and_then(|a| a.as_sockaddr_in().map(|s| s.ip().to_string())))
        .collect()
}

/// Starts `cmd` on a new pseudo-terminal: its controlling terminal and its
/// stdin, stdout and stderr. Returns the child and the terminal's master.
pub fn spawn_on_pty(cmd: &mut Command) -> (Child, std::fs::File) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::os::fd::AsRawFd::as_raw_fd(&pty.slave);
    // SAFETY: async-signal-safe calls only, between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            libc::setsid();
            libc::ioctl(slave, libc::TIOCSCTTY, 0);
            for fd in 0..3 {
                libc::dup2(slave, fd);
            }
            Ok(())
        });
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(pty.slave);
    (child, std::fs::File::from(pty.master))
}

/// The `vsbox-watch` serving the guests of RUNDIR `run`: the pid its
/// pid file names, if that process is the watcher.
pub fn watcher_in(run: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(run.join("vsbox-watch.pid")).ok()?.trim().parse().ok()?;
    std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.trim_end_matches('\0') == "vsbox-watch")
        .then_some(pid)
}

/// Guest `g`'s supervisor on the host: its RUNDIR's watcher, while it
/// serves `g` (holds its control socket).
pub fn watchers(g: &TestGuest) -> Vec<u32> {
    let run = g.env.dir.path().join("run");
    let serves = std::os::unix::net::UnixStream::connect(run.join(format!("{}.sock", g.name))).is_ok();
    watcher_in(&run).filter(|_| serves).into_iter().collect()
}

/// Unmounts a directory (lazily) on drop: whatever a test mounted, however
/// the test ends.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A file system mounted on a test's directory: btrfs on a loop device of
/// its own, or tmpfs. Dropping it unmounts it and frees the loop device.
pub struct Mounted {
    at: PathBuf,
    image: Option<PathBuf>,
    loopdev: Option<String>,
}

impl Mounted {
    pub fn btrfs(at: &Path, megabytes: u64) -> Mounted {
        Mounted::on_loop(at, megabytes, &["mkfs.btrfs", "-q"], &[]).expect("a btrfs on a loop device")
    }

    /// An ext4 with project quotas, mounted with them on: None (what is
    /// made undone) when this kernel cannot mount one (no quota support).
    pub fn ext4_with_project_quota(at: &Path, megabytes: u64) -> Option<Mounted> {
        Mounted::on_loop(at, megabytes, &["mkfs.ext4", "-q", "-O", "quota,project"], &["-o", "prjquota"])
    }

    /// An xfs mounted with project quotas: None (what is made undone)
    /// when this kernel cannot mount one (no XFS_QUOTA). xfs needs 300 MB
    /// at least; the image is sparse.
    pub fn xfs_with_project_quota(at: &Path, megabytes: u64) -> Option<Mounted> {
        Mounted::on_loop(at, megabytes.max(300), &["mkfs.xfs", "-q", "-f"], &["-o", "prjquota"])
    }

    pub fn xfs(at: &Path, megabytes: u64) -> Mounted {
        Mounted::on_loop(at, megabytes.max(300), &["mkfs.xfs", "-q", "-f"], &[]).expect("an xfs on a loop device")
    }

    pub fn ext4(at: &Path, megabytes: u64) -> Mounted {
        Mounted::on_loop(at, megabytes, &["mkfs.ext4", "-q"], &[]).expect("an ext4 on a loop device")
    }

    /// A file system made by `mkfs` (its command line, the device added)
    /// on a loop device of its own, mounted on `at` with `options`; None
    /// when the mount fails.
    fn on_loop(at: &Path, megabytes: u64, mkfs: &[&str], options: &[&str]) -> Option<Mounted> {
        std::fs::create_dir_all(at).unwrap();
        let image = at.with_extension("img");
        std::fs::File::create(&image).unwrap().set_len(megabytes << 20).unwrap();
        let mut m = Mounted {
            at: at.to_path_buf(),
            image: Some(image.clone()),
            loopdev: None,
        };
        let out = Command::new("losetup").args(["-f", "--show"]).arg(&image).output().unwrap();
        assert!(out.status.success(), "losetup: {out:?}");
        let dev = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        m.loopdev = Some(dev.clone());
        let made = Command::new(mkfs[0])
            .args(&mkfs[1..])
            .arg(&dev)
            .output()
            .unwrap_or_else(|e| panic!("{} (btrfs-progs, e2fsprogs, xfsprogs) installed: {e}", mkfs[0]));
        assert!(made.status.success(), "{mkfs:?}: {made:?}");
        let st = Command::new("mount")
            .args(options)
            .arg(&dev)
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        st.success().then_some(m)
    }

    pub fn tmpfs(at: &Path) -> Mounted {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256m", "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success());
        Mounted {
            at: at.to_path_buf(),
            image: None,
            loopdev: None,
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let mounted = || {
            std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap_or_default()
                .contains(&format!(" {} ", self.at.display()))
        };
        for _ in 0..50 {
            if !mounted() || Command::new("umount").arg(&self.at).status().is_ok_and(|s| s.success()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        if mounted() {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
        if let Some(dev) = &self.loopdev {
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
        if let Some(img) = &self.image {
            let _ = std::fs::remove_file(img);
        }
    }
}

/// The record a start leaves for commands entering the server: the
/// trusted.vsbox.context attribute of RUNDIR/NAME.lock.
pub fn context_record(g: &TestGuest) -> Option<String> {
    let (lock, name) = record_names(g);
    let mut buf = [0u8; 8192];
    // SAFETY: NUL-terminated strings; buf is writable for its length.
    let n = unsafe { libc::getxattr(lock.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

/// Replaces that record with `value` (None: removes it).
pub fn plant_context_record(g: &TestGuest, value: Option<&str>) {
    let (lock, name) = record_names(g);
    // SAFETY: NUL-terminated strings; the value is valid for its length.
    let r = unsafe {
        match value {
            Some(v) => libc::setxattr(lock.as_ptr(), name.as_ptr(), v.as_ptr().cast(), v.len(), 0),
            None => libc::removexattr(lock.as_ptr(), name.as_ptr()),
        }
    };
    assert_eq!(r, 0, "{value:?}");
}

fn record_names(g: &TestGuest) -> (std::ffi::CString, &'static std::ffi::CStr) {
    let lock = g.env.dir.path().join("run").join(format!("{}.lock", g.name));
    (
        std::ffi::CString::new(lock.into_os_string().into_encoded_bytes()).unwrap(),
        c"trusted.vsbox.context",
    )
}

/// A cgroup directory made for a test (with its parent), removed when
/// dropped, the test failed or not.
pub struct TestCgroup(pub PathBuf);

impl TestCgroup {
    pub fn new(dir: PathBuf) -> TestCgroup {
        std::fs::create_dir_all(&dir).unwrap();
        TestCgroup(dir)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}
