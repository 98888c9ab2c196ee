//! Errors of the IAM and STS APIs, each with its code and status; the one
//! place where the identity domain's errors become IAM's codes.

use http::StatusCode;
use mallee_cloud::identity::IdentityError;

use crate::error::ApiError;
use crate::query::QueryError;

/// What an IAM or STS request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum IamApiError {
    /// A parameter is missing or malformed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The action is not one this service serves.
    #[error("Could not find operation {0} for version 2010-05-08")]
    InvalidAction(String),
    /// The identity domain refused or failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// DecodeAuthorizationMessage was given a message this cloud did not
    /// seal, or one changed since.
    #[error(transparent)]
    InvalidAuthorizationMessage(mallee_policy::AuthzMessageError),
}

impl From<IamApiError> for ApiError {
    fn from(e: IamApiError) -> Self {
        let (status, code) = match &e {
            IamApiError::Query(QueryError::Missing(_)) => {
                (StatusCode::BAD_REQUEST, "MissingParameter")
            }
            IamApiError::Query(_) => (StatusCode::BAD_REQUEST, "ValidationError"),
            IamApiError::InvalidAction(_) => (StatusCode::BAD_REQUEST, "InvalidAction"),
            IamApiError::InvalidAuthorizationMessage(_) => (
                StatusCode::BAD_REQUEST,
                "InvalidAuthorizationMessageException",
            ),
            IamApiError::Identity(i) => match i {
                IdentityError::NoSuchEntity(_) => (StatusCode::NOT_FOUND, "NoSuchEntity"),
                IdentityError::EntityAlreadyExists(_) => {
                    (StatusCode::CONFLICT, "EntityAlreadyExists")
                }
                IdentityError::DeleteConflict(_) => (StatusCode::CONFLICT, "DeleteConflict"),
                IdentityError::LimitExceeded(_) => (StatusCode::CONFLICT, "LimitExceeded"),
                IdentityError::MalformedPolicyDocument(_) => {
                    (StatusCode::BAD_REQUEST, "MalformedPolicyDocument")
                }
                IdentityError::Validation(_) => (StatusCode::BAD_REQUEST, "ValidationError"),
                IdentityError::MalformedCertificate(_) => {
                    (StatusCode::BAD_REQUEST, "MalformedCertificate")
                }
                IdentityError::InvalidCertificate(_) => {
                    (StatusCode::BAD_REQUEST, "InvalidCertificate")
                }
                IdentityError::DuplicateCertificate(_) => {
                    (StatusCode::CONFLICT, "DuplicateCertificate")
                }
                IdentityError::PasswordPolicy(_) => {
                    (StatusCode::BAD_REQUEST, "PasswordPolicyViolation")
                }
                IdentityError::AccessDenied(_) => (StatusCode::FORBIDDEN, "AccessDenied"),
                IdentityError::PasswordResetRequired(_) => {
                    (StatusCode::FORBIDDEN, "PasswordResetRequired")
                }
                IdentityError::Concurrent(_) => (StatusCode::CONFLICT, "ConcurrentModification"),
                IdentityError::Throttled(_) => (StatusCode::BAD_REQUEST, "Throttling"),
                IdentityError::Store(_) | IdentityError::Corrupt(_) => {
                    return ApiError::internal();
                }
            },
        };
        ApiError::new(status, code, e.to_string())
    }
}
