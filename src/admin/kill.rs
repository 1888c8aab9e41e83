//! Signalling processes in their own context: what vkill resolves before
//! it signals anything.

use crate::admin::proctable::{self, Names, Want};
use crate::error::{Error, Result};
use nix::sys::signal::Signal;
use std::str::FromStr;

/// `TERM`, `SIGTERM`, `term` or `15`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| Error::usage(format!("bad signal '{s}'")));
    }
    let up = s.to_ascii_uppercase();
    let full = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    Signal::from_str(&full).map_err(|_| Error::usage(format!("bad signal '{s}'")))
}

/// A context given by number or by guest name.
pub fn parse_context(s: &str, names: &Names) -> Result<u32> {
    if let Ok(n) = s.parse::<u32>() {
        return crate::context::parse_xid(&n.to_string());
    }
    names
        .xid_of(s)
        .ok_or_else(|| Error::usage(format!("unknown or stopped server '{s}'")))
}

/// Host pids to signal: each PID as the host numbers it (its context
/// found from the kernel), or with `xid` as that context numbers it; with
/// `xid` and no PID, every process of the context.
pub fn targets(xid: Option<u32>, pids: &[String]) -> Result<Vec<(u32, u32)>> {
    let mut nums = Vec::with_capacity(pids.len());
    for p in pids {
        match p.parse::<u32>() {
            Ok(n) if n > 0 => nums.push(n),
            _ => return Err(Error::usage(format!("bad pid '{p}'"))),
        }
    }
    let table = proctable::scan(Want {
        vpid: xid.is_some(),
        ..Default::default()
    });
    match xid {
        None if nums.is_empty() => Err(Error::usage("no pid given (and no --xid)")),
        None => nums
            .iter()
            .map(|&n| {
                table
                    .iter()
                    .find(|p| p.pid == n)
                    .map(|p| (p.pid, p.xid))
                    .ok_or_else(|| Error::usage(format!("no process {n}")))
            })
            .collect(),
        Some(x) => {
            let mine: Vec<_> = table.iter().filter(|p| p.xid == x).collect();
            if mine.is_empty() {
                return Err(Error::usage(format!("context {x} has no processes")));
            }
            if nums.is_empty() {
                return Ok(mine.iter().map(|p| (p.pid, x)).collect());
            }
            nums.iter()
                .map(|&n| {
                    mine.iter()
                        .find(|p| p.vpid == n)
                        .map(|p| (p.pid, x))
                        .ok_or_else(|| Error::usage(format!("context {x} has no process {n}")))
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("FOO").is_err());
        assert!(parse_signal("99").is_err());
    }

    #[test]
    fn bad_pids_are_refused_before_anything() {
        assert!(targets(None, &["x".into()]).is_err());
        assert!(targets(None, &["0".into()]).is_err());
        assert!(targets(None, &[]).is_err());
    }
}
