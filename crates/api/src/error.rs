//! The wire form of every API error: an HTTP status, an AWS `Code`, a
//! `Message`, rendered in the XML dialect of the service that failed, and
//! the XML response that carries it (for the front door and the S3
//! gateway alike).

use std::borrow::Cow;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};

use super::xml::escape;

/// Implemented by each module's error enum to say how AWS reports it.
pub trait AwsError: std::error::Error {
    /// AWS error code (`InvalidParameterValue`, `AuthFailure`, …).
    fn code(&self) -> Cow<'static, str>;
    /// HTTP status AWS uses for it.
    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

/// Which XML dialect an error is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDialect {
    /// EC2: `<Response><Errors><Error>…</Error></Errors><RequestID>…`.
    Ec2,
    /// IAM, STS and other Query services: `<ErrorResponse><Error><Type>…`.
    Query,
    /// S3: `<Error><Code>…</Code><Message>…</Message><RequestId>…`.
    S3,
}

/// An error ready to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// AWS code.
    pub code: Cow<'static, str>,
    /// Human-readable message.
    pub message: String,
}

impl ApiError {
    /// Builds an error from its parts.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// An unexpected failure; the detail is logged, not sent.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "An internal error has occurred. Please try again later.",
        )
    }

    /// `service`'s answer to a caller over its rate, or to any caller while
    /// the controller is full: EC2's `RequestLimitExceeded` and S3's
    /// `SlowDown` (503), IAM's, STS's (and the bootstrap service's)
    /// `Throttling` (400), as AWS sends
    /// them; SDKs back off and retry all three.
    pub fn throttled(service: crate::service::Service) -> Self {
        use crate::service::Service;
        match service {
            Service::Ec2 | Service::Metal => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "RequestLimitExceeded",
                "Request limit exceeded.",
            ),
            Service::S3 => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
            ),
            Service::Iam | Service::Sts | Service::Bootstrap => {
                Self::new(StatusCode::BAD_REQUEST, "Throttling", "Rate exceeded")
            }
        }
    }

    /// The XML body in `dialect`.
    pub fn to_xml(&self, dialect: ErrorDialect, request_id: &str) -> String {
        let code = escape(&self.code);
        let message = escape(&self.message);
        match dialect {
            ErrorDialect::Ec2 => format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
            ),
            ErrorDialect::Query => {
                let kind = if self.status.is_server_error() {
                    "Receiver"
                } else {
                    "Sender"
                };
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
                )
            }
            ErrorDialect::S3 => format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
            ),
        }
    }
}

impl<E: AwsError> From<E> for ApiError {
    fn from(err: E) -> Self {
        Self {
            status: err.status(),
            code: err.code(),
            message: err.to_string(),
        }
    }
}

/// The response carrying `error` in `dialect`.
pub(crate) fn error_response(
    error: &ApiError,
    dialect: ErrorDialect,
    request_id: &str,
) -> Response {
    xml_response(error.status, error.to_xml(dialect, request_id))
}

/// An XML response.
pub(crate) fn xml_response(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    response
}
