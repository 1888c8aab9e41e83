//! Acting on many guests at once (`vservers`): which guests, in which
//! order, and running each one's `vserver NAME ACTION` as a child process
//! of this very binary — several at a time, since guests are independent —
//! with each one's output kept together.

use crate::error::{Context, Result};
use crate::guest::{self, Guest};
use std::process::{Child, Command, Stdio};

/// The outcome for one guest: its name, whether it worked, what it said.
pub struct Outcome {
    pub name: String,
    pub ok: bool,
    pub output: String,
}

/// Guests with `ONBOOT=yes`, by name; guests whose configuration does not
/// parse are reported as failures rather than skipped silently.
pub fn onboot() -> Result<(Vec<Guest>, Vec<Outcome>)> {
    let (mut yes, mut bad) = (Vec::new(), Vec::new());
    for g in guest::all()? {
        match g.config() {
            Ok(c) if c.onboot => yes.push(g),
            Ok(_) => {}
            Err(e) => bad.push(Outcome {
                name: g.name.clone(),
                ok: false,
                output: format!("{e}\n"),
            }),
        }
    }
    Ok((yes, bad))
}

fn spawn(name: &str, action: &str) -> Result<Child> {
    use std::os::unix::process::CommandExt;
    Command::new("/proc/self/exe")
        .arg0("vserver")
        .args([name, action])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| format!("run vserver {name} {action}"))
}

/// Runs `vserver NAME action` for each guest, at most `jobs` at a time;
/// the outcomes in the guests' order.
pub fn run(guests: &[Guest], action: &str, jobs: usize) -> Result<Vec<Outcome>> {
    let mut out: Vec<Option<Outcome>> = guests.iter().map(|_| None).collect();
    let mut running: Vec<(usize, Child)> = Vec::new();
    let mut next = 0;
    while next < guests.len() || !running.is_empty() {
        while running.len() < jobs.max(1) && next < guests.len() {
            running.push((next, spawn(&guests[next].name, action)?));
            next += 1;
        }
        // Collect the oldest; the others keep going meanwhile.
        let (i, child) = running.remove(0);
        let o = child.wait_with_output().ctx(|| format!("wait for vserver {}", guests[i].name))?;
        let text = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        out[i] = Some(Outcome {
            name: guests[i].name.clone(),
            ok: o.status.success(),
            output: text,
        });
    }
    Ok(out.into_iter().flatten().collect())
}
