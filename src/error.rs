//! One error type for the whole binary. Every error says what failed (an
//! operation and the path or name it was acting on) and why (the errno or
//! a reason); the applet wrapper prefixes the applet name and picks the
//! exit code of SPEC §1.

use nix::errno::Errno;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Bad option or argument: exit 2.
    Usage,
    /// The operation failed: exit 1 (125 for applets that run a command).
    Failure,
    /// Setting up or starting the command an applet runs failed: exit 125
    /// (SPEC §1, as chroot(1)), whatever the applet — `vserver NAME exec`
    /// runs a command where `vserver NAME start` does not.
    CannotRun,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: Kind,
    pub msg: String,
    pub errno: Option<Errno>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Error {
            kind: Kind::Usage,
            msg: msg.into(),
            errno: None,
        }
    }
    /// `what` failed because of `why`.
    pub fn failed(what: impl fmt::Display, why: impl fmt::Display) -> Self {
        Error {
            kind: Kind::Failure,
            msg: format!("{what}: {why}"),
            errno: None,
        }
    }
    pub fn sys(what: impl fmt::Display, errno: Errno) -> Self {
        Error {
            kind: Kind::Failure,
            msg: format!("{what}: {}", errno.desc()),
            errno: Some(errno),
        }
    }
    /// This failure, as one of setting up or starting a command (125).
    pub fn cannot_run(self) -> Self {
        match self.kind {
            Kind::Failure => Error {
                kind: Kind::CannotRun,
                ..self
            },
            _ => self,
        }
    }
    pub fn io(what: impl fmt::Display, e: &std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(n) => Self::sys(what, Errno::from_raw(n)),
            None => Self::failed(what, e),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

/// Adds "what was being done" to a low-level error.
pub trait Context<T> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error::sys(what(), e))
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| Error::io(what(), &e))
    }
}
