//! Errors of the metal API, each with its code and status; the one place
//! where the domain's errors become the metal API's codes.

use std::borrow::Cow;

use http::StatusCode;
use mallee_cloud::{CloudError, Kind};

use crate::error::ApiError;
use crate::query::QueryError;

/// Errors of the metal API.
#[derive(Debug, thiserror::Error)]
pub enum MetalApiError {
    /// A parameter is missing or malformed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// No such action.
    #[error("The action {0} is not valid for this web service.")]
    InvalidAction(String),
    /// A value is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this.
    #[error("{0}")]
    Unauthorized(String),
    /// Something named does not exist.
    #[error("{message}")]
    NotFound {
        /// AWS-style code (`InvalidSystem.NotFound`, …).
        code: &'static str,
        /// What was missing.
        message: String,
    },
    /// Fewer free systems than asked for; nothing was reserved.
    #[error("{0}")]
    Capacity(String),
    /// The system is not in a state that allows this.
    #[error("{0}")]
    IncorrectState(String),
    /// The name, MAC, IP or token is taken, or the thing is in use.
    #[error("{0}")]
    Conflict(String),
    /// Provisioning is off on this controller.
    #[error("{0}")]
    NotEnabled(String),
    /// An unexpected failure (logged, not sent).
    #[error("internal error: {0}")]
    Internal(String),
}

impl MetalApiError {
    /// The AWS-style code.
    pub fn code(&self) -> Cow<'static, str> {
        match self {
            Self::Query(QueryError::Missing(_)) => "MissingParameter".into(),
            Self::Query(_) | Self::Invalid(_) => "InvalidParameterValue".into(),
            Self::InvalidAction(_) => "InvalidAction".into(),
            Self::Unauthorized(_) => "UnauthorizedOperation".into(),
            Self::NotFound { code, .. } => (*code).into(),
            Self::Capacity(_) => "InsufficientSystemCapacity".into(),
            Self::IncorrectState(_) => "IncorrectState".into(),
            Self::Conflict(_) => "Conflict".into(),
            Self::NotEnabled(_) => "MetalNotEnabled".into(),
            Self::Internal(_) => "InternalError".into(),
        }
    }
}

impl From<MetalApiError> for ApiError {
    fn from(e: MetalApiError) -> Self {
        let status = match &e {
            MetalApiError::Unauthorized(_) => StatusCode::FORBIDDEN,
            MetalApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            MetalApiError::NotEnabled(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let message = match &e {
            MetalApiError::Internal(_) => "An internal error has occurred.".to_owned(),
            other => other.to_string(),
        };
        ApiError::new(status, e.code(), message)
    }
}

/// The metal API's code for something of `kind` that was not found: the
/// inventory's own resources have theirs, anything else is `NotFound`.
fn not_found_code(kind: Kind) -> &'static str {
    match kind {
        Kind::System => "InvalidSystem.NotFound",
        Kind::Profile => "InvalidProfile.NotFound",
        Kind::SystemGroup => "InvalidGroup.NotFound",
        Kind::Distro => "InvalidDistro.NotFound",
        _ => "NotFound",
    }
}

impl From<CloudError> for MetalApiError {
    fn from(e: CloudError) -> Self {
        match e {
            CloudError::Invalid(m)
            | CloudError::InvalidCombination(m)
            | CloudError::InvalidParameter(m)
            | CloudError::Missing(m)
            | CloudError::IdempotencyMismatch(m) => Self::Invalid(m),
            CloudError::Malformed { message, .. }
            | CloudError::BadContent { message, .. }
            | CloudError::Reserved { message, .. }
            | CloudError::ZoneMismatch { message, .. }
            | CloudError::Range { message, .. } => Self::Invalid(message),
            CloudError::NotFound { kind, message } => Self::NotFound {
                code: not_found_code(kind),
                message,
            },
            CloudError::Duplicate { message, .. }
            | CloudError::InUse { message, .. }
            | CloudError::Dependency { message, .. }
            | CloudError::Undeletable { message, .. } => Self::Conflict(message),
            CloudError::IncorrectState { message, .. }
            | CloudError::Unavailable { message, .. } => Self::IncorrectState(message),
            CloudError::InsufficientCapacity { message, .. }
            | CloudError::LimitExceeded { message, .. } => Self::Capacity(message),
            CloudError::NotPermitted(m) => Self::Unauthorized(m),
            CloudError::NotOwner { message, .. } => Self::Unauthorized(message),
            CloudError::Unauthorized => Self::Unauthorized(e.to_string()),
            // The metal API's only unsupported request: one that needs
            // the provisioning engine, which is off.
            CloudError::Unsupported(m) => Self::NotEnabled(m),
            CloudError::Internal(detail) | CloudError::Contended(detail) => Self::Internal(detail),
        }
    }
}
