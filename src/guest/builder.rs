//! `vserver NAME build`: making a guest tree. Methods: `skeleton` (the
//! directory layout only), `busybox` (a minimal guest around the host's
//! static busybox), `copy` (the seed's: a copy of the host's own system).

use crate::error::{Context, Error, Result};
use crate::guest::config;
use crate::guest::identity;
use crate::guest::Guest;
use crate::paths;
use std::collections::HashMap;
use std::fs;
use std::io::IsTerminal;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Skeleton,
    Busybox,
    Copy,
    /// Unpack T.tar, T.tar.gz or T.tar.zst.
    Template(std::path::PathBuf),
    /// Run debootstrap --variant=minbase SUITE ROOT [MIRROR].
    Debootstrap {
        suite: String,
        mirror: Option<String>,
    },
}

impl Method {
    /// The method named `name`, with the options it needs.
    pub fn new(name: &str, file: Option<&str>, suite: Option<&str>, mirror: Option<&str>) -> Result<Method> {
        let only = |m: Method, what: &str, given: bool| {
            if given {
                Err(Error::usage(format!("{what} does not go with -m {name}")))
            } else {
                Ok(m)
            }
        };
        match name {
            "skeleton" | "busybox" | "copy" => {
                let m = match name {
                    "skeleton" => Method::Skeleton,
                    "busybox" => Method::Busybox,
                    _ => Method::Copy,
                };
                only(m, "--file/--suite/--mirror", file.is_some() || suite.is_some() || mirror.is_some())
            }
            "template" => {
                let f = file.ok_or_else(|| Error::usage("-m template needs --file T.tar[.gz|.zst]"))?;
                only(Method::Template(f.into()), "--suite/--mirror", suite.is_some() || mirror.is_some())
            }
            "debootstrap" => {
                let s = suite.ok_or_else(|| Error::usage("-m debootstrap needs --suite (e.g. bookworm)"))?;
                if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                    return Err(Error::usage(format!("bad suite '{s}'")));
                }
                only(
                    Method::Debootstrap {
                        suite: s.to_owned(),
                        mirror: mirror.map(String::from),
                    },
                    "--file",
                    file.is_some(),
                )
            }
            other => Err(Error::usage(format!(
                "unknown build method '{other}' (known: copy, skeleton, busybox, template, debootstrap)"
            ))),
        }
    }
}

const LAYOUT: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("dev", 0o755),
    ("etc", 0o755),
    ("etc/init.d", 0o755),
    ("home", 0o755),
    ("lib", 0o755),
    ("proc", 0o555),
    ("root", 0o700),
    ("run", 0o755),
    ("sbin", 0o755),
    ("sys", 0o555),
    ("tmp", 0o1777),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("var", 0o755),
    ("var/log", 0o755),
    ("var/tmp", 0o1777),
];

/// Builds the guest's tree (and a commented configuration when it has
/// none). An existing tree is replaced only with `force`, and never while
/// the guest runs.
pub fn build(g: &Guest, method: &Method, force: bool) -> Result<()> {
    // The names the guest's files get; a broken configuration stops the
    // build before anything is changed.
    let cfg = g.config()?;
    let hostname = cfg.hostname.clone().unwrap_or_else(|| g.name.clone());
    let addr = cfg.iproot.first().map_or(identity::NO_ADDRESS, |ip| ip.addr);
    let _lock = g.lock()?;
    let reg = crate::context::Registry::open()?;
    if g.running(&reg).is_some() {
        return Err(Error::failed(format!("build server {}", g.name), "it is running"));
    }
    if fs::symlink_metadata(&g.root).is_ok() {
        if !force {
            return Err(Error::failed(
                format!("build server {}", g.name),
                format!("{} exists (use --force to replace it)", g.root.display()),
            ));
        }
        // Never following the symlinks a guest may have planted, never
        // into a file system mounted inside.
        crate::guest::delete::unmounted(&g.root).map_err(|why| Error::failed(format!("replace server {}", g.name), why))?;
        let subvol = crate::guest::quota::subvolume_id(&g.root);
        crate::guest::walk::remove_tree(&g.root)?;
        if let Some((id, parent)) = subvol {
            crate::guest::quota::remove_qgroup(&parent, id)?;
        }
    }
    fs::create_dir_all(paths::rootdir()).ctx(|| format!("create {}", paths::rootdir().display()))?;
    // A btrfs subvolume on btrfs, so that it can have a quota (DISK_LIMIT).
    let name = g
        .root
        .file_name()
        .ok_or_else(|| Error::failed(format!("build server {}", g.name), "its root has no name"))?;
    crate::guest::quota::make_root(&paths::rootdir(), name)?;
    fs::set_permissions(&g.root, fs::Permissions::from_mode(0o755)).ctx(|| format!("chmod {}", g.root.display()))?;
    let outcome = match method {
        Method::Skeleton => skeleton(&g.root),
        Method::Busybox => skeleton(&g.root).and_then(|_| busybox(&g.root)),
        Method::Copy => copy_host(&g.root),
        Method::Template(file) => template(&g.root, file),
        Method::Debootstrap { suite, mirror } => debootstrap(&g.root, suite, mirror.as_deref()),
    };
    let outcome = outcome
        .and_then(|_| install_guest_tools(&g.root))
        .and_then(|_| name_guest(&g.root, &hostname, addr, method == &Method::Copy));
    if let Err(e) = outcome {
        // What the method left (debootstrap may leave /proc mounted in it).
        if crate::guest::delete::unmounted(&g.root).is_ok() {
            let _ = crate::guest::walk::remove_tree(&g.root);
        }
        return Err(e);
    }
    if !g.conf.exists() {
        fs::create_dir_all(paths::confdir()).ctx(|| format!("create {}", paths::confdir().display()))?;
        fs::write(&g.conf, config::template(&g.name)).ctx(|| format!("write {}", g.conf.display()))?;
    }
    Ok(())
}

fn skeleton(root: &Path) -> Result<()> {
    for (d, mode) in LAYOUT {
        let p = root.join(d);
        fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).ctx(|| format!("chmod {}", p.display()))?;
    }
    // The links a start would otherwise add to the tree the first time
    // (context/rootfs.rs), as a Debian system has them: made once here,
    // and shared by hard-linked copies of the tree.
    for (target, rel) in [("/run", "var/run"), ("/proc/mounts", "etc/mtab")] {
        let link = root.join(rel);
        if fs::symlink_metadata(&link).is_err() {
            symlink(target, &link).ctx(|| format!("link {}", link.display()))?;
        }
    }
    Ok(())
}

/// Whether an ELF file has no program interpreter (is statically linked).
fn is_static_elf(path: &Path) -> bool {
    let Ok(b) = fs::read(path) else { return false };
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 {
        return false;
    }
    let rd16 = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap_or_default()) as usize;
    let (phentsize, phnum) = (rd16(54), rd16(56));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        b.get(o..o + 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap_or_default()) != 3)
        // PT_INTERP
    })
}

const BUSYBOX_CANDIDATES: &[&str] = &["/bin/busybox", "/usr/bin/busybox", "/sbin/busybox", "/usr/sbin/busybox"];

fn busybox(root: &Path) -> Result<()> {
    let host = BUSYBOX_CANDIDATES.iter().map(Path::new).find(|p| is_static_elf(p)).ok_or_else(|| {
        Error::failed(
            "build a busybox server",
            "no static busybox on this host (Debian: apt-get install busybox-static)",
        )
    })?;
    let bb = root.join("bin/busybox");
    fs::copy(host, &bb).ctx(|| format!("copy {} to {}", host.display(), bb.display()))?;
    fs::set_permissions(&bb, fs::Permissions::from_mode(0o755)).ctx(|| format!("chmod {}", bb.display()))?;
    // busybox is this method's builder: it lists where its applets go.
    let out = std::process::Command::new(host)
        .arg("--list-full")
        .output()
        .map_err(|e| Error::io(format!("run {} --list-full", host.display()), &e))?;
    for rel in String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "bin/busybox")
    {
        let link = root.join(rel);
        if let Some(dir) = link.parent() {
            fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        }
        if fs::symlink_metadata(&link).is_err() {
            symlink("/bin/busybox", &link).ctx(|| format!("link {}", link.display()))?;
        }
    }
    let files: &[(&str, &str, u32)] = &[
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644),
        ("etc/group", "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n", 0o644),
        ("etc/shadow", "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o600),
        ("etc/profile", "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nPS1='\\u@\\h:\\w\\$ '\n", 0o644),
        ("etc/inittab", "::sysinit:/etc/init.d/rcS\n::shutdown:/etc/init.d/rcK\n", 0o644),
        (
            "etc/init.d/rcS",
            "#!/bin/sh\n# Start-up: each /etc/init.d/S[0-9][0-9]* in order, with 'start'.\nfor s in /etc/init.d/S[0-9][0-9]*; do\n\t[ -x \"$s\" ] && \"$s\" start\ndone\nexit 0\n",
            0o755,
        ),
        (
            "etc/init.d/rcK",
            "#!/bin/sh\n# Shutdown: each /etc/init.d/S[0-9][0-9]* in reverse order, with 'stop'.\nfor s in $(ls -r /etc/init.d/S[0-9][0-9]* 2>/dev/null); do\n\t[ -x \"$s\" ] && \"$s\" stop\ndone\nexit 0\n",
            0o755,
        ),
    ];
    for (rel, text, mode) in files {
        let p = root.join(rel);
        fs::write(&p, text).ctx(|| format!("write {}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).ctx(|| format!("chmod {}", p.display()))?;
    }
    Ok(())
}

fn template(root: &Path, file: &Path) -> Result<()> {
    let mut r = crate::guest::archive::open(file)?;
    let tree = crate::guest::tree::Tree::open(root)?;
    let tty = std::io::stderr().is_terminal();
    let stats = crate::guest::archive::unpack(&mut r, &tree, |s| {
        if tty {
            eprint!("\runpacked {} files, {} MiB", s.files, s.bytes >> 20);
        }
    })
    .map_err(|e| Error::failed(format!("unpack {}", file.display()), e))?;
    if tty {
        eprintln!();
    }
    eprintln!(
        "unpacked {} files, {} MiB ({} device nodes and special entries left out)",
        stats.files,
        stats.bytes >> 20,
        stats.skipped
    );
    // What a guest needs even if the template lacks it.
    for (d, mode) in [("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("tmp", 0o1777)] {
        tree.create_dir(
            Path::new(d),
            crate::guest::tree::Meta {
                mode,
                uid: 0,
                gid: 0,
                mtime: 0,
            },
        )?;
    }
    Ok(())
}

/// vreboot and vhalt for the guest's own administrator: this binary as
/// /usr/lib/vsbox/vsbox, linked from /sbin. Written through the tree
/// writer: a template's or debootstrap's tree is not ours to trust.
fn install_guest_tools(root: &Path) -> Result<()> {
    use crate::guest::tree::{Meta, Tree};
    let tree = Tree::open(root)?;
    let exe = fs::read("/proc/self/exe").ctx(|| "read this binary")?;
    let meta = Meta {
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime: 0,
    };
    tree.create_file(Path::new("usr/lib/vsbox/vsbox"), meta, |f| {
        std::io::Write::write_all(f, &exe).ctx(|| "write usr/lib/vsbox/vsbox")
    })?;
    for name in ["vreboot", "vhalt"] {
        tree.symlink(Path::new("/usr/lib/vsbox/vsbox"), &Path::new("sbin").join(name), meta)?;
    }
    Ok(())
}

/// /etc/hostname and /etc/hosts naming the guest, whatever the method
/// (see [`identity`]); a copy of the host also loses the host's name and
/// machine id.
fn name_guest(root: &Path, hostname: &str, addr: std::net::IpAddr, copied: bool) -> Result<()> {
    let tree = crate::guest::tree::Tree::open(root)?;
    let host = if copied {
        nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok())
    } else {
        None
    };
    identity::write_names(&tree, hostname, addr, host.as_deref())?;
    if copied {
        identity::new_machine_id(&tree)?;
    }
    Ok(())
}

/// Finds a program in PATH.
fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|c| c.is_file()))
}

fn debootstrap(root: &Path, suite: &str, mirror: Option<&str>) -> Result<()> {
    let prog = which("debootstrap").ok_or_else(|| {
        Error::failed(
            "build with debootstrap",
            "debootstrap is not installed (Debian: apt-get install debootstrap)",
        )
    })?;
    let mut c = std::process::Command::new(&prog);
    c.args(["--variant=minbase", suite]).arg(root);
    if let Some(m) = mirror {
        c.arg(m);
    }
    let st = c.status().map_err(|e| Error::io(format!("run {}", prog.display()), &e))?;
    if !st.success() {
        return Err(Error::failed(format!("debootstrap {suite}"), format!("it failed ({st})")));
    }
    Ok(())
}

/// What the seed's copy takes from the host.
const HOST_DIRS: &[&str] = &["bin", "sbin", "etc", "usr", "lib", "lib32", "lib64", "libx32", "var"];

fn copy_host(root: &Path) -> Result<()> {
    let mut c = Copier {
        links: HashMap::new(),
        files: 0,
        bytes: 0,
        skipped: 0,
        tty: std::io::stderr().is_terminal(),
    };
    for d in HOST_DIRS {
        let src = Path::new("/").join(d);
        if fs::symlink_metadata(&src).is_ok() {
            c.copy(&src, &root.join(d), None)?;
        }
    }
    for (d, mode) in [
        ("dev", 0o755),
        ("proc", 0o555),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("home", 0o755),
        ("root", 0o700),
        ("run", 0o755),
    ] {
        let p = root.join(d);
        fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).ctx(|| format!("chmod {}", p.display()))?;
    }
    if c.tty {
        eprintln!();
    }
    eprintln!(
        "copied {} files, {} MiB ({} special files left out)",
        c.files,
        c.bytes >> 20,
        c.skipped
    );
    crate::guest::resolv::fix_copy(root)
}

/// A faithful copy: owners, modes, times, symlinks, hard links within the
/// copy and file capabilities; device nodes, sockets and other file
/// systems mounted below are left out.
struct Copier {
    links: HashMap<(u64, u64), std::path::PathBuf>,
    files: u64,
    bytes: u64,
    skipped: u64,
    tty: bool,
}

impl Copier {
    fn copy(&mut self, src: &Path, dst: &Path, dev: Option<u64>) -> Result<()> {
        let m = fs::symlink_metadata(src).ctx(|| format!("stat {}", src.display()))?;
        let ft = m.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(src).ctx(|| format!("read link {}", src.display()))?;
            symlink(&target, dst).ctx(|| format!("link {}", dst.display()))?;
        } else if ft.is_dir() {
            fs::create_dir(dst).ctx(|| format!("create {}", dst.display()))?;
            if dev.is_none_or(|d| d == m.dev()) {
                let mut entries: Vec<_> = fs::read_dir(src)
                    .ctx(|| format!("read {}", src.display()))?
                    .flatten()
                    .map(|e| e.file_name())
                    .collect();
                entries.sort();
                for e in entries {
                    self.copy(&src.join(&e), &dst.join(&e), Some(m.dev()))?;
                }
            }
        } else if ft.is_file() {
            if m.nlink() > 1 {
                if let Some(first) = self.links.get(&(m.dev(), m.ino())) {
                    return fs::hard_link(first, dst).ctx(|| format!("link {}", dst.display()));
                }
                self.links.insert((m.dev(), m.ino()), dst.to_path_buf());
            }
            fs::copy(src, dst).ctx(|| format!("copy {}", src.display()))?;
            if let Ok(Some(cap)) = crate::sys::getxattr(src, "security.capability") {
                let _ = crate::sys::setxattr(dst, "security.capability", &cap);
            }
            self.files += 1;
            self.bytes += m.len();
            if self.tty && self.files.is_multiple_of(500) {
                eprint!("\rcopied {} files, {} MiB", self.files, self.bytes >> 20);
            }
        } else {
            self.skipped += 1;
            return Ok(());
        }
        std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid())).ctx(|| format!("chown {}", dst.display()))?;
        if !ft.is_symlink() {
            fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777)).ctx(|| format!("chmod {}", dst.display()))?;
            let times = fs::FileTimes::new().set_modified(m.modified().unwrap_or(std::time::SystemTime::UNIX_EPOCH));
            if let Ok(f) = fs::File::open(dst) {
                let _ = f.set_times(times);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods() {
        assert_eq!(Method::new("copy", None, None, None).unwrap(), Method::Copy);
        assert!(Method::new("debian", None, None, None).is_err());
        assert!(Method::new("template", None, None, None).is_err());
        assert_eq!(
            Method::new("template", Some("t.tar"), None, None).unwrap(),
            Method::Template("t.tar".into())
        );
        assert!(Method::new("copy", Some("t.tar"), None, None).is_err());
        assert!(Method::new("debootstrap", None, None, None).is_err());
        assert!(Method::new("debootstrap", None, Some("../x"), None).is_err());
        assert!(matches!(
            Method::new("debootstrap", None, Some("bookworm"), Some("http://deb.debian.org/debian")),
            Ok(Method::Debootstrap { .. })
        ));
    }

    #[test]
    fn recognises_static_binaries() {
        // This test program is linked static, like vsbox.
        assert!(is_static_elf(Path::new("/proc/self/exe")));
        assert!(!is_static_elf(Path::new("/etc/passwd")));
        // The same with a program interpreter (PT_INTERP) is dynamic; made
        // here, as a host's /bin/sh may be a static busybox.
        let mut b = fs::read("/proc/self/exe").unwrap();
        let phoff = u64::from_le_bytes(b[32..40].try_into().unwrap()) as usize;
        b[phoff..phoff + 4].copy_from_slice(&3u32.to_le_bytes());
        let dynamic = std::env::temp_dir().join(format!("vsbox-dynamic-elf-{}", std::process::id()));
        fs::write(&dynamic, &b).unwrap();
        let found = is_static_elf(&dynamic);
        let _ = fs::remove_file(&dynamic);
        assert!(!found);
    }
}
