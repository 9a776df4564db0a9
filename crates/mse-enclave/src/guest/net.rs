//! The guest's network: QEMU user-mode networking gives the guest a fixed address, a gateway
//! that NATs to the host's network and a DNS forwarder. Configured with rtnetlink messages
//! (no `ip` binary in the image).

use std::fs;
use std::net::Ipv4Addr;

// NETLINK_ROUTE is protocol 0, the default.
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType};

use super::GuestError;

/// The guest's address in QEMU's user-mode network (/24).
pub const GUEST_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
/// The user-mode network's gateway.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
/// The user-mode network's DNS forwarder.
pub const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
/// Prefix length of the user-mode network.
pub const PREFIX: u8 = 24;

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const AF_INET: u8 = 2;
const IFF_UP: u32 = 0x1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_GATEWAY: u16 = 5;
const RTA_OIF: u16 = 4;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;

fn net_err(what: impl std::fmt::Display) -> GuestError {
    GuestError::Net(what.to_string())
}

/// One rtnetlink request: header, fixed part, attributes.
pub fn message(kind: u16, flags: u16, seq: u32, body: &[u8], attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut out = vec![0u8; 16];
    out.extend_from_slice(body);
    for (ty, data) in attrs {
        let len = 4 + data.len();
        out.extend_from_slice(&(len as u16).to_ne_bytes());
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    let total = out.len() as u32;
    out[0..4].copy_from_slice(&total.to_ne_bytes());
    out[4..6].copy_from_slice(&kind.to_ne_bytes());
    out[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    out[8..12].copy_from_slice(&seq.to_ne_bytes());
    out
}

/// `ifinfomsg` setting IFF_UP on `index`.
fn link_up(index: u32) -> Vec<u8> {
    let mut b = vec![0u8; 16];
    b[4..8].copy_from_slice(&(index as i32).to_ne_bytes());
    b[8..12].copy_from_slice(&IFF_UP.to_ne_bytes());
    b[12..16].copy_from_slice(&IFF_UP.to_ne_bytes());
    b
}

/// Sends `msg` and waits for its acknowledgement.
fn request(fd: &rustix::fd::OwnedFd, msg: &[u8], what: &str) -> Result<(), GuestError> {
    rustix::net::sendto(fd, msg, SendFlags::empty(), &SocketAddrNetlink::new(0, 0))
        .map_err(|e| net_err(format!("{what}: {e}")))?;
    let mut buf = [0u8; 4096];
    let (_, n) = rustix::net::recv(fd, &mut buf, RecvFlags::empty())
        .map_err(|e| net_err(format!("{what}: {e}")))?;
    if n < 20 || u16::from_ne_bytes([buf[4], buf[5]]) != NLMSG_ERROR {
        return Err(net_err(format!("{what}: unexpected netlink answer")));
    }
    let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    match code {
        0 => Ok(()),
        // EEXIST: already configured (the kernel's own lo route, a repeated step).
        -17 => Ok(()),
        _ => Err(net_err(format!(
            "{what}: {}",
            rustix::io::Errno::from_raw_os_error(-code)
        ))),
    }
}

fn ifindex(name: &str) -> Result<u32, GuestError> {
    fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| net_err(format!("no index for interface {name}")))
}

/// The first interface that is not the loopback, in name order (`eth0` with virtio-net).
fn ethernet() -> Result<String, GuestError> {
    let mut names: Vec<String> = fs::read_dir("/sys/class/net")
        .map_err(|e| net_err(format!("/sys/class/net: {e}")))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    names
        .into_iter()
        .next()
        .ok_or_else(|| net_err("no network interface (is the virtio_net module in the image?)"))
}

/// Brings up `lo` and the Ethernet interface with the user-mode network's address, default
/// route and DNS server.
pub fn configure() -> Result<(), GuestError> {
    let fd = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, None)
        .map_err(|e| net_err(format!("netlink socket: {e}")))?;
    let lo = ifindex("lo")?;
    request(&fd, &message(RTM_NEWLINK, 0, 1, &link_up(lo), &[]), "lo up")?;
    let eth = ethernet()?;
    let index = ifindex(&eth)?;
    let addr = GUEST_ADDR.octets();
    let mut ifa = vec![AF_INET, PREFIX, 0, 0];
    ifa.extend_from_slice(&index.to_ne_bytes());
    request(
        &fd,
        &message(
            RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            2,
            &ifa,
            &[(IFA_LOCAL, &addr), (IFA_ADDRESS, &addr)],
        ),
        &format!("address {GUEST_ADDR}/{PREFIX} on {eth}"),
    )?;
    request(
        &fd,
        &message(RTM_NEWLINK, 0, 3, &link_up(index), &[]),
        &format!("{eth} up"),
    )?;
    let rtm = [
        AF_INET,
        0,
        0,
        0,
        RT_TABLE_MAIN,
        RTPROT_BOOT,
        0,
        RTN_UNICAST,
        0,
        0,
        0,
        0,
    ];
    request(
        &fd,
        &message(
            RTM_NEWROUTE,
            NLM_F_CREATE | NLM_F_EXCL,
            4,
            &rtm,
            &[
                (RTA_GATEWAY, &GATEWAY.octets()),
                (RTA_OIF, &index.to_ne_bytes()),
            ],
        ),
        &format!("default route via {GATEWAY}"),
    )?;
    fs::write("/etc/resolv.conf", format!("nameserver {DNS}\n"))
        .map_err(|e| net_err(format!("/etc/resolv.conf: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_aligned_and_sized() {
        let m = message(
            RTM_NEWADDR,
            NLM_F_CREATE,
            7,
            &[2, 24, 0, 0, 2, 0, 0, 0],
            &[(IFA_LOCAL, &[10, 0, 2, 15])],
        );
        assert_eq!(m.len(), 16 + 8 + 8);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), RTM_NEWADDR);
        assert_eq!(
            u16::from_ne_bytes(m[6..8].try_into().unwrap()),
            NLM_F_CREATE | NLM_F_REQUEST | NLM_F_ACK
        );
        assert_eq!(&m[24..32], &[8, 0, 2, 0, 10, 0, 2, 15]);
        // An attribute of 3 bytes is padded to 4.
        let m = message(RTM_NEWLINK, 0, 1, &[], &[(1, &[1, 2, 3])]);
        assert_eq!(m.len(), 16 + 8);
    }
}
