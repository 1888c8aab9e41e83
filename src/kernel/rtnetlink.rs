//! Adding and removing interface addresses (the guests' IP aliases) with
//! rtnetlink, so vsbox needs no `ip` program.

use crate::error::{Context, Error, Result};
use nix::sys::socket::{recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};
use std::net::IpAddr;

use libc::{RTM_DELADDR, RTM_NEWADDR, RT_SCOPE_HOST, RT_SCOPE_UNIVERSE};

// linux/netlink.h and linux/if_addr.h, which libc carries for Android only.
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;

/// An address on a device, as `ip addr` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    pub dev: String,
    pub addr: IpAddr,
    pub prefix: u8,
    pub broadcast: Option<IpAddr>,
}

impl std::fmt::Display for Alias {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.dev, self.addr, self.prefix)
    }
}

impl std::str::FromStr for Alias {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        let (dev, rest) = s.split_once(' ').ok_or(())?;
        let (addr, prefix) = rest.split_once('/').ok_or(())?;
        Ok(Alias {
            dev: dev.to_owned(),
            addr: addr.parse().map_err(|_| ())?,
            prefix: prefix.parse().map_err(|_| ())?,
            broadcast: None,
        })
    }
}

fn attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len() + (4 - len % 4) % 4, 0);
}

fn octets(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// The RTM_NEWADDR / RTM_DELADDR request for `a`.
fn message(kind: u16, flags: u16, index: u32, a: &Alias) -> Vec<u8> {
    let mut m = vec![0u8; 16]; // nlmsghdr, filled in below
    let family = if a.addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 } as u8;
    let scope = if a.addr.is_loopback() { RT_SCOPE_HOST } else { RT_SCOPE_UNIVERSE };
    m.extend_from_slice(&[family, a.prefix, 0, scope]);
    m.extend_from_slice(&index.to_ne_bytes());
    attr(&mut m, IFA_LOCAL, &octets(&a.addr));
    attr(&mut m, IFA_ADDRESS, &octets(&a.addr));
    if let Some(b) = &a.broadcast {
        attr(&mut m, IFA_BROADCAST, &octets(b));
    }
    let len = m.len() as u32;
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m[8..12].copy_from_slice(&1u32.to_ne_bytes()); // sequence
    m
}

/// Sends one request and returns the kernel's answer (Ok or the errno).
fn request(msg: &[u8]) -> std::result::Result<(), nix::errno::Errno> {
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    sendto(
        std::os::fd::AsRawFd::as_raw_fd(&sock),
        msg,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut buf = [0u8; 1024];
    let n = recv(std::os::fd::AsRawFd::as_raw_fd(&sock), &mut buf, MsgFlags::empty())?;
    if n >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
        let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if code < 0 {
            return Err(nix::errno::Errno::from_raw(-code));
        }
    }
    Ok(())
}

fn index_of(dev: &str) -> Result<u32> {
    nix::net::if_::if_nametoindex(dev).ctx(|| format!("find network device {dev}"))
}

/// Adds `a`; Ok(false) if the device had it already (then it is not ours
/// to remove later).
pub fn add(a: &Alias) -> Result<bool> {
    match request(&message(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, index_of(&a.dev)?, a)) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EEXIST) => Ok(false),
        Err(e) => Err(Error::sys(format!("add address {a}"), e)),
    }
}

/// Removes `a`; gone already is fine.
pub fn remove(a: &Alias) -> Result<()> {
    let index = match nix::net::if_::if_nametoindex(a.dev.as_str()) {
        Ok(i) => i,
        Err(_) => return Ok(()), // the device went away, and its addresses with it
    };
    match request(&message(RTM_DELADDR, 0, index, a)) {
        Ok(()) | Err(nix::errno::Errno::EADDRNOTAVAIL) | Err(nix::errno::Errno::ENODEV) => Ok(()),
        Err(e) => Err(Error::sys(format!("remove address {a}"), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_well_formed() {
        let a = Alias {
            dev: "lo".into(),
            addr: "127.0.0.9".parse().unwrap(),
            prefix: 8,
            broadcast: None,
        };
        let m = message(RTM_NEWADDR, NLM_F_CREATE, 1, &a);
        assert_eq!(m.len(), 16 + 8 + 8 + 8);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(&m[16..20], &[libc::AF_INET as u8, 8, 0, RT_SCOPE_HOST]);
        assert_eq!(&m[28..32], &[127, 0, 0, 9]);
        assert_eq!("lo 127.0.0.9/8".parse::<Alias>(), Ok(a.clone()));
        assert_eq!(a.to_string(), "lo 127.0.0.9/8");
    }
}
