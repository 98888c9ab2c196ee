//! The names a VPC network gives and checks: tap and bridge names that fit
//! Linux's 15-character limit and stay the same across restarts, and the
//! checks of interface and namespace names, DHCP host names and MACs
//! (nothing that reaches `ip`, nft or a dnsmasq file is taken unchecked).

use mallee_util::cidr::Ipv4Cidr;
use sha2::{Digest, Sha256};

use super::NetworkError;

/// The tap name for an instance: `tap` + 12 hex digits of a hash of its id,
/// so it fits Linux's 15-character limit and is the same after a restart.
pub fn tap_name(instance_id: &str) -> String {
    let digest = Sha256::digest(instance_id.as_bytes());
    format!("tap{}", &hex::encode(digest)[..12])
}

/// The bridge of `subnet` inside a VPC namespace: `br` + the network
/// address in hex + the prefix (`brac1f000020` for 172.31.0.0/20).
pub fn bridge_name(subnet: Ipv4Cidr) -> String {
    format!(
        "br{:08x}{:02}",
        u32::from(subnet.network()),
        subnet.prefix()
    )
}

/// A link name `ip` accepts and that is not `lo`: at most 15 letters,
/// digits, `_` or `-`.
pub(crate) fn check_link_name(name: &str) -> Result<(), NetworkError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "lo"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NetworkError::Invalid {
            what: "interface name",
            value: name.to_owned(),
        })
    }
}

/// A name `ip netns` can use as a file name under `/run/netns`.
pub(super) fn valid_netns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Letters, digits, `-` and `.`; what a DHCP host name or domain may hold
/// (and nothing that could break a dnsmasq hosts-file line).
pub(super) fn valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `aa:bb:cc:dd:ee:ff`, lower case; unicast only.
pub(super) fn normalize_mac(mac: &str) -> Result<String, NetworkError> {
    let invalid = || NetworkError::Invalid {
        what: "MAC address",
        value: mac.to_owned(),
    };
    let octets: Vec<u8> = mac
        .split(':')
        .map(|o| {
            if o.len() == 2 {
                u8::from_str_radix(o, 16).map_err(|_| invalid())
            } else {
                Err(invalid())
            }
        })
        .collect::<Result<_, _>>()?;
    if octets.len() != 6 || octets[0] & 1 == 1 {
        return Err(invalid());
    }
    Ok(octets
        .iter()
        .map(|o| format!("{o:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_are_checked_and_normalised() {
        assert_eq!(
            normalize_mac("02:AB:cd:00:01:ff").expect("valid"),
            "02:ab:cd:00:01:ff"
        );
        for bad in [
            "",
            "02:ab:cd:00:01",
            "01:00:5e:00:00:01",
            "02:ab:cd:00:01:fff",
            "zz:ab:cd:00:01:ff",
        ] {
            assert!(normalize_mac(bad).is_err(), "{bad}");
        }
    }
}
