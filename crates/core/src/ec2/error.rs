//! Errors of the EC2 API, each with the code and status EC2 uses.

use std::borrow::Cow;

use http::StatusCode;

use crate::api::error::AwsError;
use crate::api::filter::FilterError;
use crate::api::pagination::PageError;
use crate::api::query::QueryError;

/// Every way an EC2 action can fail.
#[derive(Debug, thiserror::Error)]
pub enum Ec2Error {
    /// The action is not one this endpoint serves.
    #[error("The action {0} is not valid for this web service.")]
    InvalidAction(String),
    /// A parameter is missing or malformed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A value is out of range or of the wrong form.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// Parameters that cannot be used together.
    #[error("{0}")]
    InvalidParameterCombination(String),
    /// A pagination token this server did not issue.
    #[error("Invalid pagination token: {0}")]
    InvalidPaginationToken(String),
    /// A key pair name already used in the account.
    #[error("The keypair '{0}' already exists.")]
    KeyPairDuplicate(String),
    /// A key pair that does not exist.
    #[error("The key pair '{0}' does not exist")]
    KeyPairNotFound(String),
    /// Public key material that cannot be imported.
    #[error("{0}")]
    KeyFormat(String),
    /// A well-formed resource id that does not exist for the caller; the
    /// code names the resource type (`InvalidKeyPair.NotFound`, …).
    #[error("The ID '{id}' does not exist")]
    ResourceNotFound {
        /// AWS code for the resource type.
        code: &'static str,
        /// The id.
        id: String,
    },
    /// A string that is not a resource id at all.
    #[error("The ID '{0}' is not valid")]
    InvalidId(String),
    /// Too many tags on one resource.
    #[error("The maximum number of Tags for a resource has been reached.")]
    TagLimitExceeded,
    /// Instance types that are not configured.
    #[error("The following supplied instance types do not exist: [{0}]")]
    InvalidInstanceType(String),
    /// DryRun=true on a request that would have succeeded.
    #[error("Request would have succeeded, but DryRun flag is set.")]
    DryRunOperation,
    /// The caller may not do this.
    #[error("You are not authorized to perform this operation.")]
    UnauthorizedOperation,
    /// An unexpected failure inside the controller.
    #[error("An internal error has occurred")]
    Internal(String),
    /// Not enough free capacity for the minimum count (a server error in
    /// EC2, so clients may retry).
    #[error("{0}")]
    InsufficientInstanceCapacity(String),
    /// A server-side shortage EC2 answers with a specific code and a 500
    /// status, so clients may retry (`InsufficientAddressCapacity`).
    #[error("{message}")]
    ServerRefused {
        /// EC2's error code.
        code: &'static str,
        /// EC2's message.
        message: String,
    },
    /// A request EC2 refuses with a specific code and a 400 status
    /// (`IncorrectInstanceState`, `InsufficientInstanceCapacity`,
    /// `UnsupportedOperation`, …), with EC2's message.
    #[error("{message}")]
    Refused {
        /// EC2's error code.
        code: &'static str,
        /// EC2's message.
        message: String,
    },
}

impl Ec2Error {
    /// A [`Ec2Error::Refused`] with `code` and `message`.
    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }
}

impl From<mallee_store::StoreError> for Ec2Error {
    fn from(err: mallee_store::StoreError) -> Self {
        match err {
            mallee_store::StoreError::TagLimitExceeded(_) => Self::TagLimitExceeded,
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<FilterError> for Ec2Error {
    fn from(err: FilterError) -> Self {
        match err {
            FilterError::UnknownName(_) => Self::InvalidParameterValue(err.to_string()),
            FilterError::Query(q) => Self::Query(q),
        }
    }
}

impl From<PageError> for Ec2Error {
    fn from(err: PageError) -> Self {
        match err {
            PageError::MaxResults { .. } => Self::InvalidParameterValue(err.to_string()),
            PageError::InvalidToken(token) => Self::InvalidPaginationToken(token),
            PageError::Query(q) => Self::Query(q),
        }
    }
}

impl AwsError for Ec2Error {
    fn code(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::InvalidAction(_) => "InvalidAction",
            Self::Query(QueryError::Missing(_)) => "MissingParameter",
            Self::Query(_) | Self::InvalidParameterValue(_) => "InvalidParameterValue",
            Self::InvalidParameterCombination(_) => "InvalidParameterCombination",
            Self::InvalidPaginationToken(_) => "InvalidPaginationToken",
            Self::KeyPairDuplicate(_) => "InvalidKeyPair.Duplicate",
            Self::KeyPairNotFound(_) => "InvalidKeyPair.NotFound",
            Self::KeyFormat(_) => "InvalidKey.Format",
            Self::ResourceNotFound { code, .. } => code,
            Self::InvalidId(_) => "InvalidID",
            Self::TagLimitExceeded => "TagLimitExceeded",
            Self::InvalidInstanceType(_) => "InvalidInstanceType",
            Self::DryRunOperation => "DryRunOperation",
            Self::UnauthorizedOperation => "UnauthorizedOperation",
            Self::Internal(_) => "InternalError",
            Self::Refused { code, .. } | Self::ServerRefused { code, .. } => code,
            Self::InsufficientInstanceCapacity(_) => "InsufficientInstanceCapacity",
        })
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::DryRunOperation => StatusCode::PRECONDITION_FAILED,
            Self::UnauthorizedOperation => StatusCode::FORBIDDEN,
            Self::Internal(_)
            | Self::InsufficientInstanceCapacity(_)
            | Self::ServerRefused { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}
