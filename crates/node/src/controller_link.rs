//! How a node reaches its controller (registration, image parts, snapshot
//! data): HTTPS only, presenting the node's certificate and trusting only
//! the controller's (mallee-pki), every request carrying the node API
//! version.

use std::sync::Arc;

/// A client builder for calls to the controller with `tls` (the node's
/// client configuration).
pub fn client(tls: &Arc<rustls::ClientConfig>) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_preconfigured_tls(rustls::ClientConfig::clone(tls))
        .https_only(true)
        .default_headers(mallee_node_api::version::headers())
}
