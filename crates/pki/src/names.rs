//! Who a certificate says its holder is: the controller, or one node by
//! its id. The name travels as the certificate's only DNS subject
//! alternative name, so standard chain-and-name verification applies.

use std::fmt;

use rustls::pki_types::ServerName;

/// Domain every cluster identity lives under (not a real domain: it never
/// resolves, and no public CA can issue for it).
const DOMAIN: &str = "mallee-cluster";
/// Longest node id a certificate may carry (one DNS label).
const MAX_NODE_ID: usize = 63;

/// Why a name is not a cluster identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// A node id must be one DNS label of lowercase letters, digits and
    /// `-`, starting and ending with a letter or digit.
    #[error("{0:?} is not a valid node id (lowercase letters, digits and '-', at most 63)")]
    NodeId(String),
}

/// The two kinds of peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// The controller.
    Controller,
    /// Any node.
    Node,
}

/// A cluster identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PeerName {
    /// The controller.
    Controller,
    /// The node with this id.
    Node(String),
}

impl PeerName {
    /// The identity of node `node_id`, checked.
    pub fn node(node_id: &str) -> Result<Self, NameError> {
        let valid = !node_id.is_empty()
            && node_id.len() <= MAX_NODE_ID
            && node_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !node_id.starts_with('-')
            && !node_id.ends_with('-');
        if valid {
            Ok(Self::Node(node_id.to_owned()))
        } else {
            Err(NameError::NodeId(node_id.to_owned()))
        }
    }

    /// Its kind.
    pub fn kind(&self) -> PeerKind {
        match self {
            Self::Controller => PeerKind::Controller,
            Self::Node(_) => PeerKind::Node,
        }
    }

    /// The node id, for a node.
    pub fn node_id(&self) -> Option<&str> {
        match self {
            Self::Controller => None,
            Self::Node(id) => Some(id),
        }
    }

    /// The DNS name certificates carry for it.
    pub fn dns_name(&self) -> String {
        match self {
            Self::Controller => format!("controller.{DOMAIN}"),
            Self::Node(id) => format!("{id}.node.{DOMAIN}"),
        }
    }

    /// The identity a certificate's DNS name stands for.
    pub fn from_dns_name(name: &str) -> Option<Self> {
        let rest = name.strip_suffix(DOMAIN)?.strip_suffix('.')?;
        if rest == "controller" {
            return Some(Self::Controller);
        }
        Self::node(rest.strip_suffix(".node")?).ok()
    }

    /// The name a TLS client verifies the server's certificate against.
    pub fn server_name(&self) -> ServerName<'static> {
        ServerName::try_from(self.dns_name()).expect("node ids are checked DNS labels")
    }
}

impl fmt::Display for PeerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Controller => f.write_str("the controller"),
            Self::Node(id) => write!(f, "node {id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_dns_names() {
        for name in [
            PeerName::Controller,
            PeerName::node("nd-0123abcd").expect("id"),
        ] {
            assert_eq!(PeerName::from_dns_name(&name.dns_name()), Some(name));
        }
        assert_eq!(PeerName::from_dns_name("controller.example.com"), None);
        assert_eq!(PeerName::from_dns_name("x.y.node.mallee-cluster"), None);
        assert_eq!(PeerName::from_dns_name("node.mallee-cluster"), None);
    }

    #[test]
    fn node_ids_are_one_dns_label() {
        for bad in ["", "-a", "a-", "A1", "a.b", "a b", &"a".repeat(64)] {
            assert!(PeerName::node(bad).is_err(), "{bad:?} accepted");
        }
        assert!(PeerName::node("nd-0000000000000001").is_ok());
    }
}
