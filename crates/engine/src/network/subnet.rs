//! IPv4 subnets: parsing, overlap, the host's routes, and picking a free one.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network in CIDR notation, stored with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Ipv4Net {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    fn first(&self) -> u32 {
        u32::from(self.addr)
    }

    fn last(&self) -> u32 {
        self.first() | !mask(self.prefix)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first()..=self.last()).contains(&u32::from(ip))
    }

    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }

    /// The first host address (host-local's default gateway).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first().saturating_add(1))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    /// `A.B.C.D/N` with the host bits zero (as Docker insists).
    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| "expected an IPv4 CIDR like 10.90.1.0/24".to_string())?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("prefix length {prefix:?} must be between 8 and 30"))?;
        let net = Ipv4Net::new(ip, prefix).ok_or_else(|| "bad prefix".to_string())?;
        if net.addr != ip {
            return Err(format!("host bits are set: did you mean {net}?"));
        }
        Ok(net)
    }
}

/// The host's IPv4 routes (main table, from /proc/net/route) other than the
/// default route, with the device each goes through.
pub fn host_routes() -> Vec<(Ipv4Net, String)> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let m = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The hex is the address's network-order bytes read as a native
            // integer.
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let prefix = u32::from_be_bytes(m.to_ne_bytes()).leading_ones() as u8;
            if prefix == 0 {
                return None;
            }
            Some((Ipv4Net::new(dest, prefix)?, f.first()?.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_overlap() {
        let a: Ipv4Net = "10.90.1.0/24".parse().unwrap();
        let b: Ipv4Net = "10.90.0.0/16".parse().unwrap();
        let c: Ipv4Net = "10.91.0.0/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert_eq!(a.first_host(), Ipv4Addr::new(10, 90, 1, 1));
        assert!(a.contains(Ipv4Addr::new(10, 90, 1, 200)));
        assert!("10.90.1.5/24".parse::<Ipv4Net>().is_err());
        assert!("10.90.1.0".parse::<Ipv4Net>().is_err());
        assert!("10.90.1.0/33".parse::<Ipv4Net>().is_err());
        assert!("fd00::/64".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn reads_routes() {
        // Only checks it parses; a host without routes gives an empty list.
        for (net, dev) in host_routes() {
            assert!(net.prefix > 0 && !dev.is_empty());
        }
    }
}
