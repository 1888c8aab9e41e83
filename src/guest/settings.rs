//! `vserver NAME set [--save] KEY=VALUE…`: changes a running server's
//! resource settings at once (MEM_LIMIT, SWAP_LIMIT, CPU_WEIGHT,
//! CPU_LIMIT, CPUSET, CGROUP, DISK_LIMIT, DISK_INODES; man/vserver.8) and, with `--save`, in
//! NAME.conf too — as `systemctl set-property` and `lxc config set` do.
//! Every value is checked, and the file as it would be written, before
//! anything changes.

use crate::context::Registry;
use crate::error::{Context, Error, Result};
use crate::guest::config::{self, LIVE_KEYS};
use crate::guest::Guest;
use crate::kernel::cgroup;
use crate::kernel::resources::{self, Resources};
use std::path::Path;

/// What `set` did: a line for its output.
pub struct Outcome {
    pub applied: bool,
    pub saved: bool,
}

/// Parses `KEY=VALUE` arguments: the keys `set` takes, each value checked.
pub fn parse_assignments(args: &[String]) -> Result<Vec<(String, String)>> {
    if args.is_empty() {
        return Err(Error::usage(format!("set needs KEY=VALUE (keys: {})", LIVE_KEYS.join(" "))));
    }
    let mut out = Vec::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            return Err(Error::usage(format!("'{a}' is not KEY=VALUE")));
        };
        if !LIVE_KEYS.contains(&k) {
            return Err(Error::usage(format!(
                "set does not change {k} (it changes {})",
                LIVE_KEYS.join(" ")
            )));
        }
        config::check_value(k, v).map_err(Error::usage)?;
        if out.iter().any(|(seen, _)| seen == k) {
            return Err(Error::usage(format!("{k} is given twice")));
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Applies `changes` to server `g`: to its running context at once, and
/// with `save` to NAME.conf (atomically, comments kept). A server that is
/// not running can only be saved to.
pub fn set(g: &Guest, changes: &[(String, String)], save: bool) -> Result<Outcome> {
    let _lock = g.lock_unless_held()?;
    let text = if g.conf.exists() {
        std::fs::read_to_string(&g.conf).ctx(|| format!("read {}", g.conf.display()))?
    } else {
        String::new()
    };
    let new_text = edit(&text, changes);
    // The file as it would be, checked whole (and what the context gets).
    let merged = config::parse(&g.conf, &new_text)?;
    let reg = Registry::open()?;
    let running = g.running(&reg);
    if running.is_none() && !save {
        return Err(Error::failed(
            format!("change server {}", g.name),
            "it is not running (add --save to change its configuration)",
        ));
    }
    let mut undo = Vec::new();
    if let Some((_, dir)) = &running {
        // What is in force now (an earlier unsaved `set` included), with
        // the changes on top; a lifted CPUSET is every CPU of the parent.
        let mut live = resources::live(&reg.layout, dir);
        for (f, v) in merged
            .resources
            .files
            .iter()
            .filter(|(f, _)| !resources::READ_BACK.contains(&f.as_str()))
        {
            live.files.entry(f.clone()).or_insert_with(|| v.clone());
        }
        let mut touched = Resources::default();
        for (k, v) in changes {
            touched.set_key(k, v).map_err(Error::usage)?;
            live.set_key(k, v).map_err(Error::usage)?;
            if k == "CPUSET" && v.trim().is_empty() {
                for r in [&mut touched, &mut live] {
                    r.files.insert("cpuset.cpus".into(), String::new());
                }
            }
        }
        live.check(&reg.layout).map_err(Error::usage)?;
        if !touched.is_empty() {
            undo = apply_live(&reg, dir, &live, &touched)?;
        }
    }
    // All or nothing here too: should the disk limit or the file fail,
    // what was changed live is put back.
    let disk = changes.iter().any(|(k, _)| k.starts_with("DISK_"));
    let disk_before = crate::guest::quota::usage(&g.root).map(|u| crate::guest::quota::DiskLimit {
        space: u.limit,
        inodes: u.inode_limit,
    });
    let rest = (|| {
        if disk {
            crate::guest::quota::apply(&g.name, &g.root, &merged.disk)?;
        }
        if save {
            write_atomically(&g.conf, &new_text)?;
        }
        Ok(())
    })();
    if let Err(e) = rest {
        resources::restore(&undo);
        if let (true, Some(before)) = (disk, disk_before) {
            let _ = crate::guest::quota::apply(&g.name, &g.root, &before);
        }
        return Err(e);
    }
    Ok(Outcome {
        applied: running.is_some(),
        saved: save,
    })
}

/// Writes the settings of the controllers `touched` names, from the
/// settings in force with the changes, `all` (v1's memory and swap go together), into the
/// running context at `dir`. A v1 directory made now takes the context's
/// processes (those joining later find it as every v1 directory).
/// Returns what was there before, for [`resources::restore`].
fn apply_live(reg: &Registry, dir: &Path, all: &Resources, touched: &Resources) -> Result<Vec<(std::path::PathBuf, String)>> {
    let wanted = touched.controllers();
    let mut res = Resources::default();
    for (f, v) in all.files.iter().filter(|(f, _)| wanted.contains(&resources::controller_of(f))) {
        res.files.insert(f.clone(), v.clone());
    }
    // All or nothing: what a failed change wrote is put back.
    let before = resources::snapshot(&reg.layout, dir, &res);
    let made = match resources::apply(&reg.layout, dir, &res) {
        Ok(v1) => v1,
        Err(e) => {
            resources::restore(&before);
            return Err(e);
        }
    };
    for v1 in made {
        // Until a pass finds every process there: one forked meanwhile by a
        // process not yet moved is moved by the next.
        for _ in 0..20 {
            let mut pids = Vec::new();
            collect_procs(dir, &mut pids);
            let there = cgroup::procs(&v1).unwrap_or_default();
            let missing: Vec<u32> = pids.into_iter().filter(|p| !there.contains(p)).collect();
            if missing.is_empty() {
                break;
            }
            for pid in missing {
                // A process that ended meanwhile: ESRCH, nothing to move.
                match std::fs::write(v1.join("cgroup.procs"), pid.to_string()) {
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    r => r.ctx(|| format!("move process {pid} into {}", v1.display()))?,
                }
            }
        }
    }
    Ok(before)
}

fn collect_procs(dir: &Path, out: &mut Vec<u32>) {
    out.extend(cgroup::procs(dir).unwrap_or_default());
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            collect_procs(&e.path(), out);
        }
    }
}

/// `text` with each of `changes` set: a key's last assignment line is
/// replaced (its trailing comment kept), or the key added after its
/// commented-out example (`#KEY=…`, as `vserver build` writes them) or at
/// the end; every other line — comments included — stays as it is.
/// CGROUP merges: files it names again get the new value, the others
/// stay.
pub fn edit(text: &str, changes: &[(String, String)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for (k, v) in changes {
        let at = lines.iter().rposition(|l| assigned_key(l) == Some(k.as_str()));
        let value = match (k.as_str(), at) {
            ("CGROUP", Some(i)) => merge_cgroup(&value_of(&lines[i]), v),
            _ => v.clone(),
        };
        let line = format!("{k}={}", quote(&value));
        match at {
            Some(i) => {
                lines[i] = match config::trailing_comment(&lines[i]) {
                    Some(c) => format!("{line} {c}"),
                    None => line,
                }
            }
            None => match lines.iter().rposition(|l| is_example_of(l, k)) {
                Some(i) => lines.insert(i + 1, line),
                None => lines.push(line),
            },
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Whether `line` is a commented-out assignment of `key` (`#KEY=…`).
fn is_example_of(line: &str, key: &str) -> bool {
    line.trim_start()
        .strip_prefix('#')
        .and_then(|t| t.trim_start().strip_prefix(key))
        .is_some_and(|t| t.starts_with('='))
}

/// The key a configuration line assigns, if it is an assignment.
fn assigned_key(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let t = t.strip_prefix("export ").map(str::trim_start).unwrap_or(t);
    if t.starts_with('#') {
        return None;
    }
    t.split_once('=').map(|(k, _)| k.trim_end())
}

/// The value an assignment line gives (unquoted as the parser reads it).
fn value_of(line: &str) -> String {
    config::parse(Path::new("-"), line)
        .ok()
        .and_then(|c| {
            let words: Vec<String> = c.resources.files.iter().map(|(f, v)| format!("{f}={v}")).collect();
            (!words.is_empty()).then(|| words.join(" "))
        })
        .unwrap_or_default()
}

fn merge_cgroup(old: &str, new: &str) -> String {
    let mut words: Vec<String> = old.split_whitespace().map(str::to_owned).collect();
    for w in new.split_whitespace() {
        let file = w.split('=').next().unwrap_or(w);
        match words.iter().position(|o| o.split('=').next() == Some(file)) {
            Some(i) => words[i] = w.to_owned(),
            None => words.push(w.to_owned()),
        }
    }
    words.join(" ")
}

/// A value as the configuration reads it back: bare when it is one plain
/// word, else in single quotes (nothing in them is special, should a
/// shell ever read the file), or double quotes for a value with one.
fn quote(v: &str) -> String {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "._-:/,+=".contains(c)) {
        v.to_owned()
    } else if !v.contains('\'') {
        format!("'{v}'")
    } else {
        format!(
            "\"{}\"",
            v.replace('\\', "\\\\").replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`")
        )
    }
}

/// Replaces `path` by `text` at once: a temporary file beside it (same
/// mode and owner), synced, renamed over it.
fn write_atomically(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    // A NAME.conf that is a symlink (the admin's own) stays one.
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let path = resolved.as_path();
    let tmp = path.with_extension(format!("conf.{}.tmp", std::process::id()));
    let old = std::fs::metadata(path).ok();
    let mode = old.as_ref().map_or(0o644, |m| m.mode() & 0o7777);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        if let Some(m) = &old {
            std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()))?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.ctx(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_replaces_the_last_assignment_and_keeps_comments() {
        let text = "# limits\nMEM_LIMIT=32M # small\nS_NICE=5\n# MEM_LIMIT=1G\n";
        let out = edit(text, &[("MEM_LIMIT".into(), "64M".into()), ("CPU_LIMIT".into(), "0.5".into())]);
        assert_eq!(out, "# limits\nMEM_LIMIT=64M # small\nS_NICE=5\n# MEM_LIMIT=1G\nCPU_LIMIT=0.5\n");
        // A new key goes after its commented-out example.
        let text = "#CPU_LIMIT=2\n#CPUSET=0-1\nS_NICE=5\n";
        let out = edit(text, &[("CPUSET".into(), "0".into()), ("MEM_LIMIT".into(), "1G".into())]);
        assert_eq!(out, "#CPU_LIMIT=2\n#CPUSET=0-1\nCPUSET=0\nS_NICE=5\nMEM_LIMIT=1G\n");
        let out = edit(
            "CGROUP=\"pids.max=50 memory.high=1G\"\n",
            &[("CGROUP".into(), "pids.max=80".into())],
        );
        assert_eq!(out, "CGROUP='memory.high=1G pids.max=80'\n");
        assert_eq!(edit("", &[("CPUSET".into(), "0-1".into())]), "CPUSET=0-1\n");
        assert_eq!(edit("X=1", &[("MEM_LIMIT".into(), "".into())]), "X=1\nMEM_LIMIT=''\n");
        // What the file reads back is what was set, whatever the quoting.
        let text = edit("", &[("CGROUP".into(), "pids.max=5 memory.high=1G".into())]);
        let back = crate::guest::config::parse(Path::new("t"), &text).unwrap();
        assert_eq!(back.resources.files["pids.max"], "5");
        assert_eq!(quote("it's"), "\"it's\"");
        assert_eq!(quote("a$b c"), "'a$b c'");
    }

    #[test]
    fn assignments_are_checked() {
        let ok = parse_assignments(&["MEM_LIMIT=64M".into(), "CPUSET=0".into()]).unwrap();
        assert_eq!(ok.len(), 2);
        // The same key twice is a slip.
        assert!(parse_assignments(&["MEM_LIMIT=1G".into(), "MEM_LIMIT=2G".into()]).is_err());
        for bad in [
            "MEM_LIMIT=lots",
            "CPU_LIMIT=-1",
            "CPUSET=9-3",
            "S_NICE=1",
            "MEM_LIMIT",
            "CGROUP=memory.bogus=1",
        ] {
            assert!(parse_assignments(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(parse_assignments(&[]).is_err());
    }
}
