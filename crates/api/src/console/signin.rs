//! `POST /console/signin`: an IAM user's console password becomes
//! temporary credentials that act as that user, as AWS's console sign-in
//! does. The browser then signs every request with them, so the user can do
//! exactly what their policies allow. Refusals are IAM's error XML.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use mallee_cloud::Cloud;
use mallee_cloud::identity::login;

use crate::error::{ApiError, ErrorDialect, error_response};
use crate::iam::IamApiError;

/// A sign-in form is three short fields.
const MAX_BODY: usize = 4096;

/// Checks `account`, `username` and `password` (a form body; and
/// `newPassword` to change it) and answers the session as JSON.
pub(super) async fn handle(
    cloud: &Cloud,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
) -> Response {
    let fail = |e: ApiError| error_response(&e, ErrorDialect::Query, request_id);
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return fail(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "InvalidParameterValue",
            "Sign-in takes a form (application/x-www-form-urlencoded).",
        ));
    }
    let Ok(body) = Limited::new(body, MAX_BODY).collect().await else {
        return fail(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("Request body must be at most {MAX_BODY} bytes."),
        ));
    };
    let body = body.to_bytes();
    let field = |name: &str| {
        form_urlencoded::parse(&body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (account, user, password) = (field("account"), field("username"), field("password"));
    for (name, value) in [
        ("account", &account),
        ("username", &user),
        ("password", &password),
    ] {
        if value.is_empty() {
            return fail(ApiError::new(
                StatusCode::BAD_REQUEST,
                "MissingParameter",
                format!("The request must contain the parameter {name}."),
            ));
        }
    }
    // A new password: the user changes it (required after a reset).
    let new_password = Some(field("newPassword")).filter(|p| !p.is_empty());
    match login::sign_in(
        &*cloud.store,
        &cloud.sign_in_guard,
        &account,
        &user,
        &password,
        new_password.as_deref(),
    )
    .await
    {
        Ok((account, c)) => {
            tracing::info!(account = account.account_id, user, "console sign-in");
            super::json(
                StatusCode::OK,
                serde_json::json!({
                    "AccessKeyId": c.access_key_id,
                    "SecretAccessKey": c.secret_access_key,
                    "SessionToken": c.session_token,
                    "Expiration": mallee_cloud::ids::iso8601(c.expires_at),
                    "AccountId": account.account_id,
                    "AccountName": account.name,
                    "UserName": user,
                }),
            )
        }
        Err(e) => {
            tracing::info!(account, user, "console sign-in refused");
            fail(IamApiError::from(e).into())
        }
    }
}
