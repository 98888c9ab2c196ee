//! mallee's protocols: what the wire *says*. The one HTTP front door,
//! request authentication, the EC2 Query, S3 and metal APIs, and the web console: each
//! parses a request into the domain's typed inputs, calls `mallee_cloud`,
//! and renders the answer (or maps the domain's error to the AWS error of
//! that API, in one place per API). Also the routes node agents call on
//! the controller, and starting the server.

pub mod actions;
pub mod auth;
pub mod authorize;
pub mod bootstrap;
pub mod console;
pub mod dns;
pub mod ec2;
pub mod error;
pub mod filter;
pub mod frontdoor;
pub mod iam;
pub mod metal;
pub mod metrics;
pub mod node_routes;
pub mod pagination;
pub mod query;
pub mod s3;
pub mod server;
pub mod service;
pub mod sts;
pub mod xml;

pub use mallee_cloud::{Cloud, Config, Principal};
pub use service::Service;
