//! A guest's own names in its own files, as a booted system has them:
//! /etc/hostname and an /etc/hosts that resolves localhost and the guest's
//! name (SPEC §6), written by every build method through the safe tree
//! writer (a template's tree may hold planted symlinks).
//!
//! - /etc/hostname always names the guest (S_HOSTNAME, else NAME): it is
//!   the name `start` gives the guest's UTS namespace, whatever the method
//!   left there (the copy method and debootstrap leave the host's).
//! - /etc/hosts keeps every entry it has (an archive's or the host's own);
//!   only what is missing is added: `127.0.0.1 localhost`, `::1 localhost
//!   ip6-localhost ip6-loopback`, and the guest's name on its first IPROOT
//!   address, or on 127.0.1.1 (Debian's convention) when it has none. A
//!   name given with a domain (`web.example.org`) is listed with its short
//!   form too, so `hostname -f` answers the full one.
//! - The copy method copies the host's identity: the host's own name is
//!   taken out of the copied /etc/hosts (it would resolve to the guest),
//!   and /etc/machine-id (with D-Bus's copy) is made anew.
//!
//! And, while it runs, which context it is: a guest sees neither the
//! cgroup hierarchy nor the host's PID namespace, and its cgroup namespace
//! makes its own cgroup "/", so vps, vpstree, vtop and vserver-stat inside
//! it could only call it the host's. vsbox tells them in
//! [`CONTEXT_FILE`], on a small tmpfs it mounts read-only at /run/vsbox
//! when it sets up the guest's first process: guest root, without
//! CAP_SYS_ADMIN, can neither remount nor unmount it (and whatever it
//! might fake would only mislabel the guest to itself).

use crate::error::{Context, Result};
use crate::guest::tree::{Meta, Tree};
use std::net::IpAddr;
use std::path::Path;

/// Where a guest's name points when it has no IPROOT address.
pub const NO_ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 1, 1));

/// The largest /etc/hosts read (block lists run to a few MiB).
const MAX_HOSTS: u64 = 64 << 20;

fn meta() -> Meta {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Meta {
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: now,
    }
}

fn write(tree: &Tree, rel: &str, text: &str) -> Result<()> {
    tree.create_file(Path::new(rel), meta(), |f| {
        std::io::Write::write_all(f, text.as_bytes()).ctx(|| format!("write {rel}"))
    })
}

/// Writes /etc/hostname and completes /etc/hosts in the tree for the guest
/// named `hostname` at `addr`. `host_name`: the name of the host whose
/// files were copied, to be taken out of /etc/hosts.
pub fn write_names(tree: &Tree, hostname: &str, addr: IpAddr, host_name: Option<&str>) -> Result<()> {
    write(tree, "etc/hostname", &format!("{hostname}\n"))?;
    let old = tree.read_file(Path::new("etc/hosts"), MAX_HOSTS)?;
    let old = old.map(|b| String::from_utf8_lossy(&b).into_owned());
    if let Some(text) = hosts(old.as_deref(), hostname, addr, host_name) {
        write(tree, "etc/hosts", &text)?;
    }
    Ok(())
}

/// A fresh /etc/machine-id (and D-Bus's copy, when it is a file of its
/// own) for a tree that has the host's.
pub fn new_machine_id(tree: &Tree) -> Result<()> {
    if !tree.has_file(Path::new("etc/machine-id")) {
        return Ok(());
    }
    let mut id = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").ctx(|| "open /dev/urandom")?, &mut id)
        .ctx(|| "read /dev/urandom")?;
    // A version 4 UUID's bits, as systemd makes them.
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    let text: String = id.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n";
    write(tree, "etc/machine-id", &text)?;
    let dbus = Path::new("var/lib/dbus/machine-id");
    if tree.has_file(dbus) {
        write(tree, "var/lib/dbus/machine-id", &text)?;
    }
    Ok(())
}

/// The address and names of a hosts line; None for comments and blanks.
fn entry(line: &str) -> Option<(&str, Vec<&str>)> {
    let line = line.split('#').next().unwrap_or("");
    let mut words = line.split_whitespace();
    let addr = words.next()?;
    Some((addr, words.collect()))
}

fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// `existing` /etc/hosts completed for the guest, or None when it has
/// everything already. Entries are kept in their order; missing localhost
/// lines go first (v4) or after them (v6), the guest's name last.
pub fn hosts(existing: Option<&str>, hostname: &str, addr: IpAddr, host_name: Option<&str>) -> Option<String> {
    let short = hostname.split('.').next().unwrap_or(hostname);
    let names = if short == hostname {
        hostname.to_owned()
    } else {
        format!("{hostname} {short}")
    };
    let guest_line = format!("{addr}\t{names}\n");
    let Some(existing) = existing else {
        return Some(format!(
            "127.0.0.1\tlocalhost\n{guest_line}\n\
             # The following lines are desirable for IPv6 capable hosts\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             ff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n"
        ));
    };
    // The copied host's own name (never localhost, never the guest's).
    let foreign: Vec<&str> = match host_name {
        Some(h) if !h.is_empty() && !same(h, hostname) && !same(h, short) && !h.to_ascii_lowercase().starts_with("localhost") => {
            vec![h, h.split('.').next().unwrap_or(h)]
        }
        _ => Vec::new(),
    };
    let mut changed = false;
    let mut kept = String::with_capacity(existing.len() + 128);
    let (mut v4_local, mut v6_local, mut named) = (false, false, false);
    for line in existing.lines() {
        let Some((a, names)) = entry(line) else {
            kept.push_str(line);
            kept.push('\n');
            continue;
        };
        let left: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !foreign.iter().any(|f| same(f, n)) || same(n, hostname) || same(n, short))
            .collect();
        if left.len() != names.len() {
            changed = true;
            if left.is_empty() {
                continue; // only the host's name: the line goes
            }
            kept.push_str(&format!("{a}\t{}\n", left.join(" ")));
        } else {
            kept.push_str(line);
            kept.push('\n');
        }
        v4_local |= a == "127.0.0.1" && left.iter().any(|n| same(n, "localhost"));
        v6_local |= a.parse::<std::net::Ipv6Addr>().is_ok_and(|v6| v6.is_loopback());
        named |= left.iter().any(|n| same(n, hostname));
    }
    if v4_local && v6_local && named && !changed {
        return None;
    }
    let mut out = String::with_capacity(kept.len() + 128);
    if !v4_local {
        out.push_str("127.0.0.1\tlocalhost\n");
    }
    out.push_str(&kept);
    if !v6_local {
        out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    }
    if !named {
        out.push_str(&guest_line);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter_map(entry)
            .filter(|(_, names)| names.iter().any(|n| same(n, name)))
            .map(|(a, _)| a)
            .collect()
    }

    #[test]
    fn a_tree_without_hosts_gets_localhost_and_its_name() {
        let t = hosts(None, "web", NO_ADDRESS, None).unwrap();
        assert_eq!(lookup(&t, "localhost"), ["127.0.0.1", "::1"]);
        assert_eq!(lookup(&t, "web"), ["127.0.1.1"]);
        assert!(t.contains("::1\tlocalhost ip6-localhost ip6-loopback\n"), "{t}");
        // A full name first, for hostname -f, then the short one.
        let t = hosts(None, "web.example.org", "10.0.0.5".parse().unwrap(), None).unwrap();
        assert!(t.contains("10.0.0.5\tweb.example.org web\n"), "{t}");
    }

    #[test]
    fn an_archives_entries_are_kept_and_only_what_is_missing_added() {
        let own = "# the template's\n10.1.2.3\tdb.internal db\n127.0.0.1 localhost.localdomain localhost\n";
        let t = hosts(Some(own), "web", NO_ADDRESS, None).unwrap();
        assert!(t.starts_with(own), "kept as it was, in order: {t}");
        assert_eq!(lookup(&t, "db"), ["10.1.2.3"]);
        assert_eq!(lookup(&t, "localhost"), ["127.0.0.1", "::1"]);
        assert_eq!(lookup(&t, "web"), ["127.0.1.1"]);
        // Complete already: left alone.
        assert_eq!(hosts(Some(&t), "web", NO_ADDRESS, None), None);
        // The name on another address already: not added again.
        let t = hosts(Some("127.0.0.1 localhost\n::1 localhost\n192.0.2.7 WEB\n"), "web", NO_ADDRESS, None);
        assert_eq!(t, None);
        // No newline at the end.
        let t = hosts(Some("10.1.2.3 db"), "web", NO_ADDRESS, None).unwrap();
        assert!(t.contains("\n10.1.2.3 db\n"), "{t}");
    }

    #[test]
    fn a_copied_hosts_file_loses_the_hosts_own_name() {
        let host =
            "127.0.0.1\tlocalhost\n127.0.1.1\tbuildhost.example.org\tbuildhost\n10.0.0.1 gw buildhost-alias\n::1 localhost ip6-localhost\n";
        let t = hosts(Some(host), "web", NO_ADDRESS, Some("buildhost.example.org")).unwrap();
        assert!(
            lookup(&t, "buildhost").is_empty() && lookup(&t, "buildhost.example.org").is_empty(),
            "{t}"
        );
        assert_eq!(lookup(&t, "buildhost-alias"), ["10.0.0.1"]);
        assert_eq!(lookup(&t, "web"), ["127.0.1.1"]);
        assert_eq!(lookup(&t, "localhost"), ["127.0.0.1", "::1"]);
        // Never localhost, never the guest's own name.
        let t = hosts(Some(host), "buildhost", NO_ADDRESS, Some("buildhost"));
        assert_eq!(t, None);
        let t = hosts(Some(host), "web", NO_ADDRESS, Some("localhost")).unwrap();
        assert_eq!(lookup(&t, "localhost"), ["127.0.0.1", "::1"]);
    }
}
