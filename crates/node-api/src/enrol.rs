//! Enrolment: how a node without a certificate gets one. It sends an
//! [`EnrolRequest`] (its one-time token, its id, a signing request for a
//! key that never leaves it) to the controller's node listener at
//! [`ENROL_PATH`], trusting the controller only if the chain it presents
//! holds the CA whose fingerprint the token carries; the controller
//! answers an [`EnrolResponse`] with the signed certificate and the CA.

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use mallee_pki::EnrolmentToken;
use serde::{Deserialize, Serialize};

use crate::tls::https_client;
use crate::version::{ApiVersion, VERSION_HEADER};

/// Controller path a node posts its [`EnrolRequest`] to (the only route
/// of the node listener open to clients without a certificate).
pub const ENROL_PATH: &str = "/_mallee/node/enrol";

/// Largest enrolment answer accepted.
const MAX_RESPONSE: usize = 64 * 1024;

/// What a node sends to enrol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolRequest {
    /// The token, as `mallee admin node token create` printed it.
    pub token: String,
    /// The node's id (kept in its data directory).
    pub node_id: String,
    /// The zone the node means to serve; `None`: the token's.
    #[serde(default)]
    pub zone: Option<String>,
    /// PEM signing request for the node's key, naming the node.
    pub csr_pem: String,
    /// The node's mallee version.
    pub version: String,
}

/// The controller's answer to an accepted enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolResponse {
    /// The node's id, as certified.
    pub node_id: String,
    /// The zone the node serves (the token's).
    pub zone: String,
    /// The node's certificate, PEM.
    pub certificate_pem: String,
    /// The cluster CA's certificate, PEM.
    pub ca_pem: String,
}

/// Why enrolment failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrolError {
    /// The controller refused it (bad token, wrong zone, …).
    #[error("the controller refused the enrolment ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The controller's reason.
        message: String,
    },
    /// The controller could not be reached, or is not the one the token's
    /// CA fingerprint names.
    #[error("could not reach the controller at {url}: {message}")]
    Transport {
        /// Where.
        url: String,
        /// Why.
        message: String,
    },
}

/// Enrols with the controller at `controller_url` (`https://host:port`).
pub async fn enrol(
    controller_url: &str,
    token: &EnrolmentToken,
    request: &EnrolRequest,
) -> Result<EnrolResponse, EnrolError> {
    let url = format!("{}{ENROL_PATH}", controller_url.trim_end_matches('/'));
    let transport = |message: String| EnrolError::Transport {
        url: url.clone(),
        message,
    };
    let config = mallee_pki::tls::enrolment_client_config(token.ca())
        .map_err(|e| transport(e.to_string()))?;
    let body = serde_json::to_vec(request).map_err(|e| transport(e.to_string()))?;
    let http_request = Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(VERSION_HEADER, ApiVersion::current().to_string())
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| transport(e.to_string()))?;
    let response = https_client(config)
        .request(http_request)
        .await
        .map_err(|e| transport(crate::tls::error_chain(&e)))?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| transport(e.to_string()))?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(EnrolError::Refused {
            status: status.as_u16(),
            message: String::from_utf8_lossy(&body).trim().to_owned(),
        });
    }
    serde_json::from_slice(&body).map_err(|e| transport(format!("bad answer: {e}")))
}
