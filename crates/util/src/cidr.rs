//! IPv4 CIDR blocks (`172.31.0.0/20`): the one type behind VPC subnets,
//! public ranges, security-group rule peers and the node's bridges.
//!
//! An [`Ipv4Cidr`] keeps the address as written, host bits included
//! (`172.31.5.9/20` names the host `172.31.5.9` on the network
//! `172.31.0.0/20`, as `ip addr` does). [`Ipv4Cidr::canonical`] clears the
//! host bits; [`Ipv4Cidr::parse_strict`] refuses a block that has any.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Errors of CIDR parsing and construction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The text is not `a.b.c.d/n`.
    #[error("{0:?} is not an IPv4 CIDR block (a.b.c.d/n, n from 0 to 32)")]
    Malformed(String),
    /// A prefix length over 32.
    #[error("prefix length {0} is over 32")]
    Prefix(u8),
    /// A strict parse met host bits (`10.0.0.1/8`).
    #[error("{cidr} has host bits set (its network is {network})")]
    HostBits {
        /// The block as given.
        cidr: String,
        /// The block with the host bits cleared.
        network: String,
    },
}

/// An IPv4 address with a prefix length, `0..=32`.
///
/// Ordered by address, then prefix; `Display` and `FromStr` use
/// `a.b.c.d/n` with the address as written, and so does serde.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// `addr/prefix`, host bits kept. Fails only for a prefix over 32.
    pub const fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, CidrError> {
        if prefix > 32 {
            return Err(CidrError::Prefix(prefix));
        }
        Ok(Self { addr, prefix })
    }

    /// `addr/prefix` with no host bits set, else [`CidrError::HostBits`].
    pub fn new_strict(addr: Ipv4Addr, prefix: u8) -> Result<Self, CidrError> {
        let cidr = Self::new(addr, prefix)?;
        if cidr.is_canonical() {
            Ok(cidr)
        } else {
            Err(CidrError::HostBits {
                cidr: cidr.to_string(),
                network: cidr.canonical().to_string(),
            })
        }
    }

    /// The single address `addr/32`.
    pub const fn host(addr: Ipv4Addr) -> Self {
        Self { addr, prefix: 32 }
    }

    /// Parses `a.b.c.d/n` and refuses host bits (`10.0.0.0/8` yes,
    /// `10.0.0.1/8` no). [`FromStr`] is the lenient parse.
    pub fn parse_strict(s: &str) -> Result<Self, CidrError> {
        let cidr: Self = s.parse()?;
        Self::new_strict(cidr.addr, cidr.prefix)
    }

    /// The address as written (host bits included).
    pub const fn addr(self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, `0..=32`.
    pub const fn prefix(self) -> u8 {
        self.prefix
    }

    /// The netmask (`255.255.240.0` for /20).
    pub const fn netmask(self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.mask())
    }

    /// The network address: host bits cleared.
    pub const fn network(self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() & self.mask())
    }

    /// The last address of the block: host bits set.
    pub const fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.addr.to_bits() | !self.mask())
    }

    /// The address after the network address: a subnet's gateway in AWS
    /// and on the node's bridges. Only a host of the block for prefixes up
    /// to 31 (on a /32 it is the next block's first address).
    pub const fn first_host(self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.network().to_bits().wrapping_add(1))
    }

    /// How many addresses the block holds (2^(32 - prefix)).
    pub const fn size(self) -> u64 {
        1 << (32 - self.prefix as u32)
    }

    /// The same block with the host bits cleared (`10.1.2.3/8` →
    /// `10.0.0.0/8`), as AWS stores rule CIDRs.
    pub const fn canonical(self) -> Self {
        Self {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    /// Whether no host bit is set.
    pub const fn is_canonical(self) -> bool {
        self.addr.to_bits() & !self.mask() == 0
    }

    /// Whether `ip` is in the block.
    pub const fn contains(self, ip: Ipv4Addr) -> bool {
        ip.to_bits() & self.mask() == self.network().to_bits()
    }

    /// Whether every address of `other` is in this block.
    pub const fn contains_net(self, other: Self) -> bool {
        other.prefix >= self.prefix && self.contains(other.network())
    }

    /// Whether the two blocks share an address (one contains the other).
    pub const fn overlaps(self, other: Self) -> bool {
        self.contains_net(other) || other.contains_net(self)
    }

    /// The `n`-th address of the block counting from the network address
    /// (0), or `None` past the end.
    pub fn nth(self, n: u64) -> Option<Ipv4Addr> {
        self.addresses().nth(usize::try_from(n).ok()?)
    }

    /// Every address of the block, network and broadcast included.
    pub fn addresses(self) -> Addresses {
        let start = u64::from(self.network().to_bits());
        Addresses {
            next: start,
            end: start + self.size(),
        }
    }

    /// The host addresses: all but the network and broadcast addresses;
    /// a /31 has two hosts and a /32 one (RFC 3021). AWS's usable addresses
    /// of a subnet are `hosts().skip(3)`; a public range that keeps its
    /// gateway is `hosts().skip(1)`.
    pub fn hosts(self) -> Addresses {
        let mut all = self.addresses();
        if self.prefix <= 30 {
            all.next += 1;
            all.end -= 1;
        }
        all
    }

    const fn mask(self) -> u32 {
        match u32::MAX.checked_shl(32 - self.prefix as u32) {
            Some(mask) => mask,
            None => 0,
        }
    }
}

/// Addresses of a block in ascending order (see [`Ipv4Cidr::addresses`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    /// The next address, widened so a /0 can end past `255.255.255.255`.
    next: u64,
    /// One past the last address.
    end: u64,
}

impl Addresses {
    fn addr(value: u64) -> Ipv4Addr {
        // Every value handed out is below `end`, which is at most 2^32.
        Ipv4Addr::from_bits(u32::try_from(value).unwrap_or(u32::MAX))
    }
}

impl Iterator for Addresses {
    type Item = Ipv4Addr;

    fn next(&mut self) -> Option<Ipv4Addr> {
        (self.next < self.end).then(|| {
            self.next += 1;
            Self::addr(self.next - 1)
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.end - self.next).ok();
        (left.unwrap_or(usize::MAX), left)
    }

    fn nth(&mut self, n: usize) -> Option<Ipv4Addr> {
        self.next = self
            .next
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX))
            .min(self.end);
        self.next()
    }
}

impl DoubleEndedIterator for Addresses {
    fn next_back(&mut self) -> Option<Ipv4Addr> {
        (self.next < self.end).then(|| {
            self.end -= 1;
            Self::addr(self.end)
        })
    }
}

impl std::iter::FusedIterator for Addresses {}

impl FromStr for Ipv4Cidr {
    type Err = CidrError;

    /// `a.b.c.d/n`: a dotted quad and a prefix of one or two decimal
    /// digits, at most 32; host bits may be set.
    fn from_str(s: &str) -> Result<Self, CidrError> {
        let malformed = || CidrError::Malformed(s.to_owned());
        let (addr, prefix) = s.split_once('/').ok_or_else(malformed)?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        let prefix: u8 = prefix.parse().map_err(|_| malformed())?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| malformed())?;
        Self::new(addr, prefix).map_err(|_| malformed())
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl serde::Serialize for Ipv4Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ipv4Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        s.parse().expect("valid CIDR")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("valid address")
    }

    #[test]
    fn arithmetic() {
        let c = cidr("172.31.5.9/20");
        assert_eq!(c.to_string(), "172.31.5.9/20");
        assert_eq!(c.addr(), ip("172.31.5.9"));
        assert_eq!(c.prefix(), 20);
        assert_eq!(c.network(), ip("172.31.0.0"));
        assert_eq!(c.netmask(), ip("255.255.240.0"));
        assert_eq!(c.broadcast(), ip("172.31.15.255"));
        assert_eq!(c.first_host(), ip("172.31.0.1"));
        assert_eq!(c.size(), 4096);
        assert_eq!(c.canonical().to_string(), "172.31.0.0/20");
        assert!(!c.is_canonical());
        assert!(c.canonical().is_canonical());
        assert!(c.contains(ip("172.31.15.254")));
        assert!(!c.contains(ip("172.31.16.1")));
        let all = cidr("0.0.0.0/0");
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(all.broadcast(), Ipv4Addr::BROADCAST);
        assert_eq!(all.size(), 1 << 32);
        assert!(all.contains(ip("203.0.113.9")));
        let one = Ipv4Cidr::host(ip("192.0.2.7"));
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert_eq!(one.netmask(), Ipv4Addr::BROADCAST);
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
    }

    #[test]
    fn lenient_and_strict_parses() {
        for bad in [
            "172.31.0.0",
            "172.31.0.0/33",
            "x/20",
            "172.31.0.0/",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0.0/008",
            "10.0.0/8",
            "::/0",
            " 10.0.0.0/8",
        ] {
            assert!(
                matches!(bad.parse::<Ipv4Cidr>(), Err(CidrError::Malformed(_))),
                "{bad}"
            );
        }
        assert_eq!(cidr("10.0.0.0/08").prefix(), 8);
        assert_eq!(
            Ipv4Cidr::parse_strict("10.1.2.3/8"),
            Err(CidrError::HostBits {
                cidr: "10.1.2.3/8".into(),
                network: "10.0.0.0/8".into(),
            })
        );
        assert_eq!(Ipv4Cidr::parse_strict("10.0.0.0/8"), Ok(cidr("10.0.0.0/8")));
        assert_eq!(
            Ipv4Cidr::new(ip("10.0.0.0"), 33),
            Err(CidrError::Prefix(33))
        );
        assert!(Ipv4Cidr::new_strict(ip("10.0.0.1"), 32).is_ok());
        assert_eq!(
            CidrError::Malformed("x".into()).to_string(),
            "\"x\" is not an IPv4 CIDR block (a.b.c.d/n, n from 0 to 32)"
        );
    }

    #[test]
    fn hosts_and_nth() {
        let s = cidr("172.31.0.0/28");
        let hosts: Vec<Ipv4Addr> = s.hosts().collect();
        assert_eq!(hosts.first(), Some(&ip("172.31.0.1")));
        assert_eq!(hosts.last(), Some(&ip("172.31.0.14")));
        assert_eq!(hosts.len(), 14);
        // AWS's usable addresses: the first four and the last are reserved.
        let usable: Vec<Ipv4Addr> = s.hosts().skip(3).collect();
        assert_eq!(usable.first(), Some(&ip("172.31.0.4")));
        assert_eq!(usable.len(), 11);
        assert_eq!(s.nth(0), Some(ip("172.31.0.0")));
        assert_eq!(s.nth(15), Some(ip("172.31.0.15")));
        assert_eq!(s.nth(16), None);
        assert_eq!(s.addresses().next_back(), Some(ip("172.31.0.15")));
        assert_eq!(cidr("10.0.0.0/31").hosts().count(), 2);
        assert_eq!(
            cidr("10.0.0.5/32").hosts().collect::<Vec<_>>(),
            [ip("10.0.0.5")]
        );
        let all = cidr("0.0.0.0/0");
        assert_eq!(all.addresses().next_back(), Some(Ipv4Addr::BROADCAST));
        assert_eq!(all.nth((1 << 32) - 1), Some(Ipv4Addr::BROADCAST));
        assert_eq!(all.nth(1 << 32), None);
        assert_eq!(all.hosts().size_hint().1, Some((1 << 32) - 2));
    }

    #[test]
    fn nesting() {
        let vpc = cidr("172.31.0.0/16");
        let subnet = cidr("172.31.16.0/20");
        assert!(vpc.contains_net(subnet));
        assert!(!subnet.contains_net(vpc));
        assert!(vpc.overlaps(subnet) && subnet.overlaps(vpc));
        assert!(!subnet.overlaps(cidr("172.31.32.0/20")));
        assert!(cidr("0.0.0.0/0").contains_net(subnet));
    }

    #[test]
    fn serde_keeps_the_text() {
        let c = cidr("172.31.5.9/20");
        let json = serde_json::to_string(&c).expect("serialises");
        assert_eq!(json, "\"172.31.5.9/20\"");
        assert_eq!(serde_json::from_str::<Ipv4Cidr>(&json).expect("parses"), c);
        assert!(serde_json::from_str::<Ipv4Cidr>("\"10.0.0.0/40\"").is_err());
    }

    fn any_cidr() -> impl Strategy<Value = Ipv4Cidr> {
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, p)| Ipv4Cidr::new(Ipv4Addr::from_bits(a), p).expect("prefix in range"))
    }

    proptest! {
        #[test]
        fn text_round_trips(c in any_cidr()) {
            prop_assert_eq!(c.to_string().parse::<Ipv4Cidr>(), Ok(c));
            prop_assert_eq!(
                Ipv4Cidr::parse_strict(&c.to_string()).is_ok(),
                c.is_canonical()
            );
        }

        #[test]
        fn bounds_agree(c in any_cidr(), other in any::<u32>()) {
            let other = Ipv4Addr::from_bits(other);
            prop_assert!(c.contains(c.addr()));
            prop_assert!(c.contains(c.network()) && c.contains(c.broadcast()));
            prop_assert_eq!(c.canonical().network(), c.network());
            prop_assert_eq!(
                u64::from(c.broadcast().to_bits()) - u64::from(c.network().to_bits()) + 1,
                c.size()
            );
            let inside = other.to_bits() >= c.network().to_bits()
                && other.to_bits() <= c.broadcast().to_bits();
            prop_assert_eq!(c.contains(other), inside);
            prop_assert_eq!(u32::from(c.netmask()).count_ones(), u32::from(c.prefix()));
        }

        #[test]
        fn iteration_matches_nth(c in any_cidr(), n in any::<u32>()) {
            let n = u64::from(n) % (c.size() + 1);
            let expected = (n < c.size())
                .then(|| Ipv4Addr::from_bits(c.network().to_bits() + u32::try_from(n).expect("fits")));
            prop_assert_eq!(c.nth(n), expected);
            if c.prefix() >= 16 {
                let all: Vec<Ipv4Addr> = c.addresses().collect();
                prop_assert_eq!(all.len() as u64, c.size());
                prop_assert!(all.iter().all(|a| c.contains(*a)));
                let hosts = c.hosts().count() as u64;
                let expected = if c.prefix() <= 30 { c.size() - 2 } else { c.size() };
                prop_assert_eq!(hosts, expected);
            }
        }

        #[test]
        fn nesting_is_containment_of_both_ends(a in any_cidr(), b in any_cidr()) {
            prop_assert_eq!(
                a.contains_net(b),
                a.contains(b.network()) && a.contains(b.broadcast())
            );
            prop_assert_eq!(a.overlaps(b), b.overlaps(a));
            let shared = a.contains(b.network()) || b.contains(a.network());
            prop_assert_eq!(a.overlaps(b), shared);
        }
    }
}
