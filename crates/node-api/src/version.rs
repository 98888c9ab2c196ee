//! The node API's version and who may talk to whom. Every request between
//! the controller and a node carries the sender's version in
//! [`VERSION_HEADER`] (`MAJOR.MINOR`, from the mallee release), and a
//! node's registration carries it in [`crate::NodeInfo::version`].
//!
//! The rule: a node works with a controller of the same major version
//! whose minor version is the node's or one more. So the controller is
//! upgraded first, then its nodes one by one, and a node one minor
//! version behind keeps working meanwhile; a node two behind, or newer
//! than its controller, is refused with a message saying which to
//! upgrade. Within that window both sides keep the wire compatible: new
//! fields are optional (`#[serde(default)]`), none is removed or changes
//! meaning, and new routes are only called on nodes that have them.

use std::fmt;
use std::str::FromStr;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::NodeError;

/// Header carrying the sender's node API version.
pub const VERSION_HEADER: &str = "x-mallee-node-api";

/// A node API version: the release's major and minor numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
}

impl ApiVersion {
    /// This build's version.
    pub fn current() -> Self {
        // Cargo sets both to numbers.
        Self {
            major: env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap_or(0),
            minor: env!("CARGO_PKG_VERSION_MINOR").parse().unwrap_or(0),
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ApiVersion {
    type Err = VersionError;

    /// `MAJOR.MINOR`, or a release version `MAJOR.MINOR.PATCH[-…]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split(['.', '-', '+']);
        let number = |part: Option<&str>| part.and_then(|p| p.parse::<u32>().ok());
        match (number(parts.next()), number(parts.next())) {
            (Some(major), Some(minor)) => Ok(Self { major, minor }),
            _ => Err(VersionError::Unreadable(s.to_owned())),
        }
    }
}

/// Why a controller and a node cannot work together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The request carried no version.
    #[error(
        "the request carries no node API version ({VERSION_HEADER}): the peer predates it; upgrade it"
    )]
    Missing,
    /// The version does not parse.
    #[error("unreadable node API version {0:?}")]
    Unreadable(String),
    /// The node is too old for the controller.
    #[error(
        "node API {node} is too old for the controller's {controller}: a node may be at most one minor version behind its controller; upgrade the node"
    )]
    NodeTooOld {
        /// The controller's.
        controller: ApiVersion,
        /// The node's.
        node: ApiVersion,
    },
    /// The node is newer than the controller.
    #[error(
        "node API {node} is newer than the controller's {controller}: upgrade the controller first"
    )]
    NodeNewer {
        /// The controller's.
        controller: ApiVersion,
        /// The node's.
        node: ApiVersion,
    },
}

/// Whether a node at `node` works with a controller at `controller`.
pub fn compatible(controller: ApiVersion, node: ApiVersion) -> Result<(), VersionError> {
    if node > controller {
        return Err(VersionError::NodeNewer { controller, node });
    }
    if node.major != controller.major || controller.minor - node.minor > 1 {
        return Err(VersionError::NodeTooOld { controller, node });
    }
    Ok(())
}

/// Which end of the conversation this server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A node serving its API: callers are controllers.
    Node,
    /// The controller's node listener: callers are nodes.
    Controller,
}

/// Checks a caller's [`VERSION_HEADER`] against this build's version,
/// for a server in `role`.
pub fn check_caller(role: Role, presented: Option<&str>) -> Result<(), VersionError> {
    let theirs: ApiVersion = presented.ok_or(VersionError::Missing)?.parse()?;
    let ours = ApiVersion::current();
    match role {
        Role::Node => compatible(theirs, ours),
        Role::Controller => compatible(ours, theirs),
    }
}

/// Headers every request to a peer carries (for clients other than
/// [`crate::HttpNodeClient`], which sets them itself).
pub fn headers() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(&ApiVersion::current().to_string()) {
        headers.insert(VERSION_HEADER, value);
    }
    headers
}

fn presented(request: &Request) -> Option<&str> {
    request
        .headers()
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok())
}

/// Middleware of the node API server: refuses controllers it cannot work
/// with.
pub async fn require_compatible_controller(request: Request, next: Next) -> Response {
    match check_caller(Role::Node, presented(&request)) {
        Ok(()) => next.run(request).await,
        Err(e) => NodeError::Incompatible(e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ApiVersion {
        s.parse().expect("version")
    }

    #[test]
    fn a_node_one_minor_behind_works_and_no_further() {
        assert_eq!(compatible(v("1.4"), v("1.4")), Ok(()));
        assert_eq!(compatible(v("1.4"), v("1.3")), Ok(()));
        assert!(matches!(
            compatible(v("1.4"), v("1.2")),
            Err(VersionError::NodeTooOld { .. })
        ));
        assert!(matches!(
            compatible(v("1.4"), v("1.5")),
            Err(VersionError::NodeNewer { .. })
        ));
        assert!(matches!(
            compatible(v("2.0"), v("1.9")),
            Err(VersionError::NodeTooOld { .. })
        ));
        assert!(matches!(
            compatible(v("1.9"), v("2.0")),
            Err(VersionError::NodeNewer { .. })
        ));
    }

    #[test]
    fn versions_parse_from_releases_and_headers() {
        assert_eq!(v("0.1.0"), ApiVersion { major: 0, minor: 1 });
        assert_eq!(
            v("3.12-rc1"),
            ApiVersion {
                major: 3,
                minor: 12
            }
        );
        assert!("x".parse::<ApiVersion>().is_err());
        assert!("1".parse::<ApiVersion>().is_err());
        assert_eq!(
            ApiVersion::current().to_string(),
            format!(
                "{}.{}",
                env!("CARGO_PKG_VERSION_MAJOR"),
                env!("CARGO_PKG_VERSION_MINOR")
            )
        );
    }

    #[test]
    fn each_role_checks_the_other_side() {
        let ours = ApiVersion::current();
        let newer = ApiVersion {
            minor: ours.minor + 1,
            ..ours
        };
        // A node accepts a controller one minor ahead; the controller
        // refuses a node one minor ahead.
        assert_eq!(check_caller(Role::Node, Some(&newer.to_string())), Ok(()));
        assert!(check_caller(Role::Controller, Some(&newer.to_string())).is_err());
        assert_eq!(check_caller(Role::Node, None), Err(VersionError::Missing));
    }
}
