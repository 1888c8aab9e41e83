//! chbind: lock a command to one or more IP addresses.
//! See: man/chbind.8; the original: vserver-reference.md §1.2.
//!
//! The original's set_ipv4root, rebuilt from cgroup-BPF socket hooks on
//! the shared host stack: the command keeps the host's interfaces but can
//! only bind, and send from, the given addresses.

use crate::applet::{self, Applet};
use crate::context::plan::{Confinement, Namespaces, Plan, Root};
use crate::context::{exec, launch};
use crate::error::{Context, Error, Result};
use crate::kernel::cgroup::{self, Layout};
use crate::kernel::netlock::{self, AddrSet};
use crate::sys::{self, Forked};
use argh::FromArgs;
use nix::sched::CloneFlags;

/// Lock a command and its descendants to the given IP addresses.
#[derive(FromArgs)]
#[argh(example = "chbind --ip 127.0.0.2 -- httpd -f -p 80")]
pub struct Args {
    /// an address (IPv4 or IPv6, optionally /MASK) or a device name, whose
    /// primary address is used; repeatable
    #[argh(option)]
    pub ip: Vec<String>,
    /// broadcast address whose datagrams the command's sockets may receive
    #[argh(option)]
    pub bcast: Option<String>,
    /// do not print the lock
    #[argh(switch)]
    pub silent: bool,
    /// the command and its arguments
    #[argh(positional, greedy)]
    pub command: Vec<String>,
}

pub const APPLET: Applet = Applet {
    name: "chbind",
    summary: "lock a command to one or more IP addresses",
    aliases: &[],
    runs_command: true,
    short_lived: true,
    main,
};

fn main(name: &str, argv: &[&str]) -> i32 {
    applet::entry(&APPLET, name, argv, run)
}

fn run(args: Args, name: &str) -> Result<i32> {
    if args.command.is_empty() {
        return Err(Error::usage("no command given"));
    }
    if args.ip.is_empty() {
        return Err(Error::usage("no address given (--ip ADDR|DEVICE)"));
    }
    let mut set = AddrSet::default();
    for ip in &args.ip {
        set.push(netlock::parse_ip_arg(ip)?)?;
    }
    if let Some(b) = &args.bcast {
        match netlock::parse_addr(b)? {
            (std::net::IpAddr::V4(b), None) => set.bcast.push(b),
            _ => return Err(Error::usage(format!("bad broadcast address '{b}' (an IPv4 address)"))),
        }
    }
    let layout = Layout::detect()?;
    let dir = netlock::new_lock_dir(&layout)?;
    let outcome = (|| {
        if set.wants_lback() {
            set.lback = Some(netlock::lback_for_cgroup(&dir)?);
        }
        netlock::lock_cgroup(&layout, &dir, &set)?;
        if !args.silent {
            // The original's line as it was (scripts read it), then the
            // loopback on a line of its own.
            eprintln!("ipv4root is now {set}");
            if let Some(lb) = set.lback {
                eprintln!("lback is now {lb} (its 127.0.0.1)");
            }
        }
        let lock = std::fs::File::open(&dir).ctx(|| format!("open {}", dir.display()))?;
        match sys::fork_into(&lock, CloneFlags::empty()).ctx(|| format!("start a process in {}", dir.display()))? {
            Forked::Parent(child) => {
                crate::context::init::forward_signals_to(child, false);
                Ok(exec::wait_for(child))
            }
            Forked::Child => {
                // Born in the lock, and kept there: a cgroup namespace rooted
                // at it, and a mount namespace (a slave of the host's) whose
                // cgroup mounts are read-only.
                let plan = Plan {
                    namespaces: Namespaces::Create(CloneFlags::CLONE_NEWCGROUP | CloneFlags::CLONE_NEWNS),
                    root: Root::Private { proc: false },
                    seal: Some(&layout),
                    // No packet sockets, which would read every packet of
                    // the host; the capabilities stay as they are.
                    confinement: Some(Confinement {
                        policy: crate::kernel::seccomp::Policy {
                            net_lock: true,
                            ..Default::default()
                        },
                        ceiling: crate::kernel::caps::Request::default(),
                        within: u64::MAX,
                    }),
                    ..Plan::default()
                };
                launch::finish_child(name, plan.apply(), || Ok(exec::exec(name, &args.command)))
            }
        }
    })();
    // A daemon the command left behind keeps the lock; its cgroup goes
    // when the daemon does.
    cgroup::remove_when_empty(&dir);
    outcome
}
