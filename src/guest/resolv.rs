//! A server built as a copy of the host gets the host's /etc/resolv.conf;
//! when that names a resolver on the host's loopback (systemd-resolved's
//! stub 127.0.0.53, a dnsmasq or unbound on 127.0.0.1), the server cannot
//! use it: with IPROOT its 127.0.0.0/8 is its own, and its /run (where
//! stub-resolv.conf lives) is a fresh tmpfs. Such a copy gets the stub's
//! upstream servers instead, from the files the local resolvers keep them in.

use crate::error::{Context, Result};
use std::net::IpAddr;
use std::path::Path;

/// Where local resolvers list their upstream servers (resolv.conf format).
pub const UPSTREAM_LISTS: &[&str] = &[
    "/run/systemd/resolve/resolv.conf",
    "/run/NetworkManager/no-stub-resolv.conf",
    "/run/NetworkManager/resolv.conf",
];

/// The nameserver addresses of resolv.conf text.
fn nameservers(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.split_whitespace().next()?.split('%').next()?.parse().ok())
        .collect()
}

fn is_local(a: &IpAddr) -> bool {
    a.is_loopback()
}

/// The resolv.conf for a copy of the host: None when `host_text` names no
/// resolver on the host's loopback (it is fine as it is); else the new
/// text and a note for the build's output.
pub fn for_copy(host_text: &str, upstream: &[(&str, String)]) -> Option<(String, String)> {
    let servers = nameservers(host_text);
    let local: Vec<&IpAddr> = servers.iter().filter(|a| is_local(a)).collect();
    if local.is_empty() {
        return None;
    }
    let local_list = local.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ");
    let mut found: Vec<IpAddr> = servers.iter().filter(|a| !is_local(a)).copied().collect();
    let mut from = Vec::new();
    for (path, text) in upstream {
        let before = found.len();
        for a in nameservers(text).into_iter().filter(|a| !is_local(a)) {
            if !found.contains(&a) {
                found.push(a);
            }
        }
        if found.len() > before {
            from.push(*path);
        }
    }
    if found.is_empty() {
        return Some((
            host_text.to_owned(),
            format!(
                "note: the host's /etc/resolv.conf names a resolver on its own loopback ({local_list}), which the \
                 server cannot reach, and no upstream servers were found: edit the server's etc/resolv.conf"
            ),
        ));
    }
    let mut out = format!(
        "# The host's resolv.conf names {local_list} on its own loopback, out of the server's reach;\n\
         # these are the servers it forwards to, and the host's others (vserver build).\n"
    );
    for l in host_text.lines().filter(|l| !l.trim().starts_with("nameserver")) {
        out.push_str(l);
        out.push('\n');
    }
    for a in &found {
        out.push_str(&format!("nameserver {a}\n"));
    }
    let list = found.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" ");
    let note = format!(
        "note: etc/resolv.conf: the host's names {local_list} on its own loopback, out of the server's reach; \
         written with its upstream servers {list} (from {})",
        if from.is_empty() {
            "/etc/resolv.conf".to_owned()
        } else {
            from.join(", ")
        }
    );
    Some((out, note))
}

/// After a copy of the host into `root`: rewrites its etc/resolv.conf as
/// [`for_copy`] says, and replaces a symbolic link there (to /run, empty
/// in a server) with the host's resolver list as a file. Prints the note.
pub fn fix_copy(root: &Path) -> Result<()> {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let upstream: Vec<(&str, String)> = UPSTREAM_LISTS
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok().map(|t| (*p, t)))
        .collect();
    let dst = root.join("etc/resolv.conf");
    let is_link = std::fs::symlink_metadata(&dst).is_ok_and(|m| m.file_type().is_symlink());
    let text = match for_copy(&host, &upstream) {
        Some((text, note)) => {
            eprintln!("{note}");
            text
        }
        None if is_link && !host.is_empty() => host,
        None => return Ok(()),
    };
    if is_link {
        std::fs::remove_file(&dst).ctx(|| format!("remove {}", dst.display()))?;
    }
    std::fs::write(&dst, text).ctx(|| format!("write {}", dst.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_resolver_is_kept() {
        assert_eq!(for_copy("nameserver 10.255.255.53\n", &[]), None);
    }

    #[test]
    fn a_local_stub_gives_way_to_its_upstream_servers() {
        let host = "# managed\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.org\n";
        let up = [(
            "/run/systemd/resolve/resolv.conf",
            "nameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver 127.0.0.1\n".to_owned(),
        )];
        let (text, note) = for_copy(host, &up).unwrap();
        assert!(
            text.ends_with("# managed\noptions edns0 trust-ad\nsearch example.org\nnameserver 192.0.2.1\nnameserver fe80::1\n"),
            "{text}"
        );
        assert!(!text.contains("nameserver 127."), "{text}");
        assert!(
            note.contains("127.0.0.53") && note.contains("192.0.2.1 fe80::1") && note.contains("/run/systemd/resolve/resolv.conf"),
            "{note}"
        );
    }

    #[test]
    fn without_upstream_servers_the_note_says_what_to_do() {
        let (text, note) = for_copy("nameserver 127.0.0.1\n", &[]).unwrap();
        assert_eq!(text, "nameserver 127.0.0.1\n");
        assert!(note.contains("edit the server's etc/resolv.conf"), "{note}");
        // Other servers beside the local one are kept, without it.
        let (text, _) = for_copy("nameserver ::1\nnameserver 198.51.100.7\n", &[]).unwrap();
        assert!(
            text.ends_with("nameserver 198.51.100.7\n") && !text.contains("nameserver ::1"),
            "{text}"
        );
    }
}
