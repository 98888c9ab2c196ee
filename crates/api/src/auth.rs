//! Request authentication: finds the signature (SigV4 header or query, SigV2
//! query API, S3 SigV2), looks the access key up and verifies it in constant
//! time. Errors map to the codes each service returns for them.

use std::borrow::Cow;

use http::StatusCode;
use mallee_sigv::{RequestParts, SigError, SignedBy};

use super::error::ApiError;
use mallee_cloud::Principal;
use mallee_cloud::identity::IdentityError;
use mallee_cloud::identity::sts::{self, SessionCheck};

use crate::service::Service;
use mallee_cloud::Cloud;

/// Why a request was not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No signature at all.
    #[error("Request is missing Authentication Token")]
    Missing,
    /// The access key id is unknown or inactive.
    #[error("unknown or inactive access key")]
    UnknownKey,
    /// Temporary credentials past their expiry.
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    /// A SigV4 scope names a service this endpoint does not serve.
    #[error("Credential should be scoped to a valid service: '{0}'.")]
    UnknownService(String),
    /// The signature is malformed, wrong or out of time.
    #[error(transparent)]
    Signature(#[from] SigError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] mallee_store::StoreError),
}

const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

impl AuthError {
    /// The wire error for `service`.
    pub fn to_api_error(&self, service: Service) -> ApiError {
        let e = |status, code: &'static str, message: Cow<'_, str>| {
            ApiError::new(status, code, message.into_owned())
        };
        let query_like = matches!(service, Service::Iam | Service::Sts | Service::Bootstrap);
        match self {
            Self::Missing if query_like => e(
                StatusCode::FORBIDDEN,
                "MissingAuthenticationToken",
                self.to_string().into(),
            ),
            // EC2 treats an unsigned Query request as one missing its
            // AWSAccessKeyId parameter.
            Self::Missing if service == Service::Ec2 => e(
                StatusCode::BAD_REQUEST,
                "MissingParameter",
                "The request must contain the parameter AWSAccessKeyId".into(),
            ),
            Self::UnknownKey if service == Service::Ec2 => e(
                StatusCode::UNAUTHORIZED,
                "AuthFailure",
                "AWS was not able to validate the provided access credentials".into(),
            ),
            Self::Missing => e(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                "Access Denied".into(),
            ),
            Self::UnknownKey if query_like => e(
                StatusCode::FORBIDDEN,
                "InvalidClientTokenId",
                "The security token included in the request is invalid.".into(),
            ),
            Self::UnknownKey => e(
                StatusCode::FORBIDDEN,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.".into(),
            ),
            Self::ExpiredToken if service == Service::Ec2 => e(
                StatusCode::BAD_REQUEST,
                "RequestExpired",
                "Request has expired.".into(),
            ),
            Self::ExpiredToken if service == Service::S3 => e(
                StatusCode::BAD_REQUEST,
                "ExpiredToken",
                "The provided token has expired.".into(),
            ),
            Self::ExpiredToken => e(
                StatusCode::FORBIDDEN,
                "ExpiredToken",
                self.to_string().into(),
            ),
            Self::UnknownService(_) => e(
                StatusCode::BAD_REQUEST,
                "IncompleteSignature",
                self.to_string().into(),
            ),
            Self::Store(_) => ApiError::internal(),
            Self::Signature(sig) => signature_error(sig, service),
        }
    }
}

fn signature_error(sig: &SigError, service: Service) -> ApiError {
    let msg = sig.to_string();
    match (sig, service) {
        (SigError::SignatureDoesNotMatch { .. }, _) => ApiError::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            SIGNATURE_MISMATCH,
        ),
        (
            SigError::RequestExpired { .. }
            | SigError::TimeTooSkewed { .. }
            | SigError::NotYetValid { .. },
            Service::Ec2,
        ) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "RequestExpired",
            "Request has expired.",
        ),
        (SigError::TimeTooSkewed { .. }, Service::S3) => {
            ApiError::new(StatusCode::FORBIDDEN, "RequestTimeTooSkewed", msg)
        }
        (SigError::RequestExpired { .. } | SigError::NotYetValid { .. }, Service::S3) => {
            ApiError::new(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired")
        }
        (
            SigError::RequestExpired { .. }
            | SigError::TimeTooSkewed { .. }
            | SigError::NotYetValid { .. },
            _,
        ) => ApiError::new(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            format!("Signature expired: {msg}"),
        ),
        (_, Service::S3) => {
            ApiError::new(StatusCode::BAD_REQUEST, "AuthorizationHeaderMalformed", msg)
        }
        (_, _) => ApiError::new(StatusCode::BAD_REQUEST, "IncompleteSignature", msg),
    }
}

/// What authentication found: the caller, or an anonymous request (which
/// only S3 may accept).
#[derive(Debug)]
pub enum Caller {
    /// A verified principal.
    Principal(Principal),
    /// No credentials were given.
    Anonymous,
}

/// Verifies `signed` for `parts`; `payload_sha256` is the body's hash when
/// the body was read.
pub async fn authenticate(
    cloud: &Cloud,
    signed: Option<&SignedBy>,
    parts: &RequestParts<'_>,
    payload_sha256: Option<&str>,
    s3_bucket: Option<&str>,
) -> Result<Caller, AuthError> {
    let Some(signed) = signed else {
        return Ok(Caller::Anonymous);
    };
    if let Some(scope) = signed.service()
        && super::Service::from_scope(scope).is_none()
    {
        return Err(AuthError::UnknownService(scope.to_owned()));
    }
    let credential = Credential::lookup(cloud, signed.access_key()).await?;
    signed.verify(
        parts,
        credential.secret(),
        payload_sha256,
        s3_bucket,
        time::OffsetDateTime::now_utc(),
    )?;
    let token = security_token(parts);
    Ok(Caller::Principal(
        credential.principal(cloud, token.as_deref()).await?,
    ))
}

/// What an access key id names: an active long-term key, or temporary
/// credentials (`ASIA…`) whose token and expiry are still to be checked.
enum Credential {
    /// A user's key, with its account.
    Key(mallee_store::AccessKey, mallee_store::Account),
    /// An STS session.
    Session(mallee_store::SessionRecord),
}

impl Credential {
    /// The key or session `access_key_id` names; `UnknownKey` for unknown
    /// and inactive keys.
    async fn lookup(cloud: &Cloud, access_key_id: &str) -> Result<Self, AuthError> {
        if access_key_id.starts_with("ASIA") {
            return match cloud.store.session(access_key_id).await? {
                Some(record) => Ok(Self::Session(record)),
                None => Err(AuthError::UnknownKey),
            };
        }
        match cloud.store.access_key(access_key_id).await? {
            Some((key, account)) if key.active => Ok(Self::Key(key, account)),
            _ => Err(AuthError::UnknownKey),
        }
    }

    /// The secret signatures are made with.
    fn secret(&self) -> &str {
        match self {
            Self::Key(key, _) => &key.secret_access_key,
            Self::Session(record) => &record.secret_access_key,
        }
    }

    /// The caller, once the signature is verified: the key's user, or for
    /// temporary credentials what the session stands for, if `token` is
    /// its token and it has not expired.
    async fn principal(self, cloud: &Cloud, token: Option<&str>) -> Result<Principal, AuthError> {
        match self {
            Self::Key(key, account) => Ok(Principal {
                account,
                user_name: key.user_name,
                access_key_id: key.access_key_id,
                session: None,
            }),
            Self::Session(record) => {
                match sts::check_session(&*cloud.store, &record, token).await {
                    Ok(SessionCheck::Valid(principal)) => Ok(principal),
                    Ok(SessionCheck::Expired) => Err(AuthError::ExpiredToken),
                    Ok(SessionCheck::Invalid) => Err(AuthError::UnknownKey),
                    Err(IdentityError::Store(e)) => Err(AuthError::Store(e)),
                    Err(_) => Err(AuthError::UnknownKey),
                }
            }
        }
    }
}

/// The session token a request carries: the `X-Amz-Security-Token` header
/// or query parameter, or the Query APIs' `SecurityToken` parameter.
pub fn security_token<'a>(parts: &'a RequestParts<'_>) -> Option<Cow<'a, str>> {
    if let Some((_, v)) = parts
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-security-token"))
    {
        return Some(Cow::Borrowed(v.as_str()));
    }
    let wanted = |k: &str| k == "X-Amz-Security-Token" || k == "SecurityToken";
    form_urlencoded::parse(parts.raw_query.as_bytes())
        .find(|(k, _)| wanted(k))
        .map(|(_, v)| Cow::Owned(v.into_owned()))
        .or_else(|| {
            parts
                .form_params
                .iter()
                .find(|(k, _)| wanted(k))
                .map(|(_, v)| Cow::Borrowed(v.as_str()))
        })
}

/// The secret that signs for `access_key_id`: an active key's, or a
/// session's (temporary credentials, checked further by
/// [`principal_of_key`]); `None` for unknown or inactive keys. For S3,
/// whose signature s3s verifies.
pub async fn secret_of_key(
    cloud: &Cloud,
    access_key_id: &str,
) -> Result<Option<String>, AuthError> {
    match Credential::lookup(cloud, access_key_id).await {
        Ok(credential) => Ok(Some(credential.secret().to_owned())),
        Err(AuthError::UnknownKey) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The caller behind a key whose signature was verified already (S3):
/// the key's user, or for temporary credentials the session `token`
/// proves.
pub async fn principal_of_key(
    cloud: &Cloud,
    access_key_id: &str,
    token: Option<&str>,
) -> Result<Principal, AuthError> {
    Credential::lookup(cloud, access_key_id)
        .await?
        .principal(cloud, token)
        .await
}
