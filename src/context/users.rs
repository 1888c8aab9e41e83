//! Users and groups as a guest defines them: its own /etc/passwd and
//! /etc/group, read inside the guest (a static binary has no NSS, and the
//! host's databases are not the guest's anyway).

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    pub groups: Vec<u32>,
}

/// The entries of a passwd text (`/etc/passwd` format, passwd(5)) with
/// all seven fields: each line's fields. The one parser of that format.
pub fn passwd_entries(passwd: &str) -> impl Iterator<Item = Vec<&str>> {
    passwd.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|f| f.len() >= 7)
}

/// Every user's name by uid, from a passwd text.
pub fn names_by_uid(passwd: &str) -> std::collections::HashMap<u32, String> {
    passwd_entries(passwd)
        .filter_map(|f| Some((f[2].parse().ok()?, f[0].to_owned())))
        .collect()
}

/// Finds `who` (a name or a number) in passwd and group texts.
pub fn lookup(who: &str, passwd: &str, group: &str) -> Result<User> {
    let entry = passwd_entries(passwd).find(|f| f[0] == who || f[2] == who);
    let Some(f) = entry else {
        return Err(Error::failed(format!("user '{who}'"), "not in the server's /etc/passwd"));
    };
    let num = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| Error::failed(format!("user '{who}'"), format!("bad number '{s}' in /etc/passwd")))
    };
    let (uid, gid) = (num(f[2])?, num(f[3])?);
    let name = f[0].to_owned();
    let mut groups = vec![gid];
    for g in group.lines().map(|l| l.split(':').collect::<Vec<_>>()).filter(|g| g.len() >= 4) {
        if g[3].split(',').any(|m| m == name) {
            if let Ok(id) = g[2].parse::<u32>() {
                if !groups.contains(&id) {
                    groups.push(id);
                }
            }
        }
    }
    let shell = if f[6].is_empty() { "/bin/sh" } else { f[6] };
    Ok(User {
        name,
        uid,
        gid,
        home: f[5].to_owned(),
        shell: shell.to_owned(),
        groups,
    })
}

/// Reads the databases of the current root (the guest's, once inside).
pub fn lookup_here(who: &str) -> Result<User> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("read the server's /etc/passwd", &e))?;
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    lookup(who, &passwd, &group)
}

/// Becomes `u`: groups, then gid, then uid (after which no way back).
pub fn become_user(u: &User) -> Result<()> {
    use crate::error::Context;
    use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
    let groups: Vec<Gid> = u.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    setgroups(&groups).ctx(|| format!("set the groups of {}", u.name))?;
    let (g, id) = (Gid::from_raw(u.gid), Uid::from_raw(u.uid));
    setresgid(g, g, g).ctx(|| format!("set gid {}", u.gid))?;
    setresuid(id, id, id).ctx(|| format!("set uid {}", u.uid))
}

/// The id of group `name` in a group text (`/etc/group` format).
pub fn group_id(name: &str, group: &str) -> Option<u32> {
    group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 3 && f[0] == name)
        .and_then(|f| f[2].parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:web:/var/www:\nbroken:x:notanumber:1::/:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\nstaff:x:50:www,alice\nlog:x:4:bob\n";

    #[test]
    fn finds_users_by_name_or_number() {
        let u = lookup("www", PASSWD, GROUP).unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str(), u.shell.as_str()), (33, 33, "/var/www", "/bin/sh"));
        assert_eq!(u.groups, vec![33, 50]);
        assert_eq!(lookup("0", PASSWD, GROUP).unwrap().name, "root");
        assert!(lookup("nobody", PASSWD, GROUP).is_err());
        assert!(lookup("broken", PASSWD, GROUP).is_err());
    }
}
