//! Signalling processes in their own context: what vkill resolves before
//! it signals anything.

use crate::admin::proctable::{self, Names, Want};
use crate::error::{Error, Result};
use crate::kernel::native;
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
    let table = proctable::scan(
        Want {
            vpid: xid.is_some(),
            ..Default::default()
        },
        &proctable::Names::load(),
    );
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
            // Not vkill itself, which joined the context to see it.
            let me = std::process::id();
            let mine: Vec<_> = table.iter().filter(|p| p.xid == x && p.pid != me).collect();
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

/// vkill's whole work: resolves the targets as [`targets`] does, then
/// signals each. On the patched kernel the host is blind to its guests:
/// with `xid` this process joins that context of the kernel's first; with
/// host PIDs alone, a spectator child learns each one's context, and a
/// child that joined it signals it. A PID gone by the time it is signalled
/// is no error with `xid` (a context's processes come and go).
pub fn send(xid: Option<u32>, pids: &[String], sig: Signal) -> Result<()> {
    if let Some(x) = xid {
        native::join(x)?;
        return signal_each(&targets(Some(x), pids)?, sig, true);
    }
    if !native::available() || native::current() != crate::context::HOST {
        return signal_each(&targets(None, pids)?, sig, false);
    }
    // Resolved as the spectator (who sees every context), in a child.
    let text = native::spectate(|| match targets(None, pids) {
        Ok(t) => t.iter().map(|(pid, x)| format!("{pid} {x}\n")).collect(),
        Err(e) => format!("! {e}\n"),
    })?;
    let mut by_xid: std::collections::BTreeMap<u32, Vec<(u32, u32)>> = Default::default();
    for line in text.lines() {
        if let Some(why) = line.strip_prefix("! ") {
            return Err(Error::usage(why.to_owned()));
        }
        let mut w = line.split(' ').map(|n| n.parse::<u32>());
        if let (Some(Ok(pid)), Some(Ok(x))) = (w.next(), w.next()) {
            by_xid.entry(x).or_default().push((pid, x));
        }
    }
    let mut failed = None;
    for (x, group) in by_xid {
        let code = native::within(x, || match signal_each(&group, sig, false) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("vkill: {e}");
                1
            }
        })?;
        if code != 0 {
            failed = Some(Error::failed(format!("signal the processes of context {x}"), "see above"));
        }
    }
    failed.map_or(Ok(()), Err)
}

fn signal_each(targets: &[(u32, u32)], sig: Signal, gone_is_fine: bool) -> Result<()> {
    let mut failed = None;
    for &(pid, _) in targets {
        if let Err(e) = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig) {
            if e != nix::errno::Errno::ESRCH || !gone_is_fine {
                failed = Some(Error::sys(format!("signal process {pid}"), e));
            }
        }
    }
    failed.map_or(Ok(()), Err)
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
