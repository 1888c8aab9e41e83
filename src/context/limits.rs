//! A context's resource limits (ULIMIT, S_NICE in vserver.conf(5)),
//! applied to the process that starts it and inherited by all.

use crate::error::{Context, Result};
use crate::sys;
use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// One resource limit, as `ulimit` sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub resource: Resource,
    pub soft: Option<u64>, // None: leave as is
    pub hard: Option<u64>,
}

pub const UNLIMITED: u64 = libc::RLIM_INFINITY;

/// Sets `limits` and, with `nice`, the niceness, on the calling process.
pub fn apply(limits: &[Limit], nice: Option<i32>) -> Result<()> {
    for l in limits {
        let (soft, hard) = getrlimit(l.resource).ctx(|| format!("read limit {:?}", l.resource))?;
        let hard = l.hard.unwrap_or(hard);
        let soft = l.soft.unwrap_or(soft).min(hard);
        setrlimit(l.resource, soft, hard).ctx(|| format!("set limit {:?} (ULIMIT)", l.resource))?;
    }
    if let Some(n) = nice {
        // The guest runs at this niceness and may not go below it: it has
        // no CAP_SYS_NICE, and RLIMIT_NICE (whose ceiling is 20 - nice)
        // is lowered, never raised, to at most 20 - n.
        sys::set_nice(n).ctx(|| format!("set niceness {n} (S_NICE)"))?;
        let (soft, hard) = getrlimit(Resource::RLIMIT_NICE).ctx(|| "read RLIMIT_NICE")?;
        let cap = (20 - n) as u64;
        setrlimit(Resource::RLIMIT_NICE, soft.min(cap), hard.min(cap)).ctx(|| "set RLIMIT_NICE (S_NICE)")?;
    }
    Ok(())
}
