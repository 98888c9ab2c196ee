//! The one HTTP endpoint: reads a request, decides which service it is for
//! (SigV4 scope, Eucalyptus `/services/*` path, or `Action`), authenticates
//! it, runs it and writes the answer with a request id. One log line per
//! request. A panic in a handler becomes a 500 for that request only.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use mallee_sigv::{RequestParts, SignedBy};

use super::auth::{self, AuthError, Caller};
use super::error::{ApiError, ErrorDialect, error_response, xml_response};
use super::query::QueryParams;
use mallee_cloud::Principal;

use crate::authorize::{self, RequestFacts};
use crate::bootstrap::{self, BootstrapAction, BootstrapContext};
use crate::ec2::{self, Ec2Action, Ec2Context};
use crate::iam::{self, IamAction, IamContext};
use crate::service::Service;
use crate::sts::{self, StsAction, StsContext};
use mallee_cloud::Cloud;
use mallee_cloud::identity::authorize::Target;
use mallee_cloud::identity::is_account_admin;
use mallee_cloud::identity::resources::ec2_targets;

/// Path that answers 200 once the server is ready (not a valid bucket name,
/// so it never shadows S3).
pub const HEALTH_PATH: &str = "/_mallee/health";

/// Shared state of the front door.
#[derive(Clone)]
struct FrontDoor {
    cloud: Arc<Cloud>,
    s3: s3s::service::S3Service,
    metal: Arc<mallee_cloud::metal::Metal>,
}

/// Builds the router serving every API (`metal`: the bare-metal zone).
pub fn router(
    cloud: Arc<Cloud>,
    s3: s3s::service::S3Service,
    metal: Arc<mallee_cloud::metal::Metal>,
) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .with_state(FrontDoor { cloud, s3, metal })
}

/// What a finished request reports to the log.
struct Outcome {
    service: Option<Service>,
    action: String,
    account: Option<String>,
    response: Response,
}

async fn handle(State(door): State<FrontDoor>, request: Request) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let close_after = expects_continue_without_body(&request);
    let task = tokio::spawn(dispatch(door.clone(), request, request_id.clone()));
    let outcome = match task.await {
        Ok(outcome) => outcome,
        Err(join_error) => {
            tracing::error!(request_id, error = %join_error, "request handler panicked");
            Outcome {
                service: None,
                action: String::new(),
                account: None,
                response: error_response(&ApiError::internal(), ErrorDialect::Ec2, &request_id),
            }
        }
    };
    let mut response = outcome.response;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", value.clone());
        headers.insert("x-amz-request-id", value);
    }
    headers.insert(header::SERVER, HeaderValue::from_static("mallee"));
    if close_after {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let service = outcome.service.map(Service::scope_name).unwrap_or("-");
    let latency = started.elapsed();
    door.cloud.telemetry.record_request(
        service,
        &outcome.action,
        response.status().as_u16(),
        latency,
    );
    tracing::info!(
        target: "mallee::request",
        request_id,
        method = %method,
        path,
        service,
        action = outcome.action,
        account = outcome.account.as_deref().unwrap_or("-"),
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Whether an HTTP/1.1 request asks for `100 Continue` but has no body to
/// continue with (boto3 sends such an empty PutObject). hyper then answers
/// with the final response alone, as RFC 9110 allows, but botocore (before
/// 1.43.77) keeps that response's status line for the connection and parses
/// the next response on it without its own: it loses the headers and waits
/// for the connection to close. Closing the connection after this response
/// makes the client send its next request on a fresh one.
fn expects_continue_without_body(request: &Request) -> bool {
    request.version() == http::Version::HTTP_11
        && request
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
        && HttpBody::is_end_stream(request.body())
}

/// Which service a request is for, from what is known before the body is
/// read: the SigV4 scope, then the Eucalyptus path, then the presence of an
/// `Action` (Query protocol) or a form body; everything else is S3.
fn resolve_service(
    signed: Option<&SignedBy>,
    path: &str,
    query: &str,
    is_form_post: bool,
) -> Service {
    if let Some(service) = signed
        .and_then(SignedBy::service)
        .and_then(Service::from_scope)
    {
        return service;
    }
    if let Some(service) = Service::from_path(path) {
        return service;
    }
    let has_action = form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "Action");
    if has_action || is_form_post {
        Service::Ec2
    } else {
        Service::S3
    }
}

/// Parameters that carry authentication, not input to the action.
fn is_auth_param(name: &str) -> bool {
    matches!(
        name,
        "AWSAccessKeyId"
            | "Signature"
            | "SignatureMethod"
            | "SignatureVersion"
            | "Timestamp"
            | "Expires"
            | "SecurityToken"
    ) || name.starts_with("X-Amz-")
}

async fn dispatch(door: FrontDoor, request: Request, request_id: String) -> Outcome {
    let cloud = door.cloud;
    let mut outcome = Outcome {
        service: None,
        action: String::new(),
        account: None,
        response: Response::new(Body::empty()),
    };
    let source_ip = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    if parts.uri.path() == HEALTH_PATH {
        outcome.response = Response::new(Body::from("ok\n"));
        return outcome;
    }
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let raw_path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    // The web console: its pages and sign-in are unsigned; a signed request
    // for these paths is S3's (a bucket named `console`).
    if crate::console::is_console_path(&raw_path)
        && !parts.headers.contains_key(header::AUTHORIZATION)
        && !raw_query.contains("X-Amz-Signature")
        && !raw_query.contains("Signature=")
    {
        outcome.action = "Console".into();
        // Sign-in hashes passwords: it counts against the same bound as
        // every other request, and is refused the same way past it.
        let Some(_in_flight) = cloud.admission.enter() else {
            outcome.response = error_response(
                &ApiError::throttled(Service::Iam),
                ErrorDialect::Query,
                &request_id,
            );
            return outcome;
        };
        outcome.response = crate::console::serve(
            &cloud,
            &method,
            &raw_path,
            &parts.headers,
            body,
            &request_id,
        )
        .await;
        return outcome;
    }
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });

    // A first look at the signature (without the body) decides the service.
    let header_only = RequestParts {
        method: method.as_str(),
        raw_path: &raw_path,
        raw_query: &raw_query,
        headers: &headers,
        form_params: &[],
    };
    let early_signature = mallee_sigv::parse(&header_only).ok().flatten();
    // A form body means the Query protocol only on POST: an S3 PUT may carry
    // any content type.
    let is_form_post = is_form && parts.method == http::Method::POST;
    let service = resolve_service(
        early_signature.as_ref(),
        &raw_path,
        &raw_query,
        is_form_post,
    );
    outcome.service = Some(service);
    let dialect = service.error_dialect();
    let fail = |e: &ApiError| error_response(e, dialect, &request_id);
    // Full: refused now rather than queued, so a spike cannot make every
    // request wait without bound.
    let Some(_in_flight) = cloud.admission.enter() else {
        outcome.response = fail(&ApiError::throttled(service));
        return outcome;
    };

    if service == Service::S3 {
        outcome.action = format!("S3:{}", parts.method);
        let (response, account) = crate::s3::gateway::serve(
            &cloud,
            &door.s3,
            parts,
            body,
            early_signature.as_ref(),
            &header_only,
            &request_id,
        )
        .await;
        // The operation s3s routed it to, once it got that far.
        if let Some(crate::s3::S3Operation(name)) = response.extensions().get() {
            outcome.action.clone_from(name);
        }
        outcome.response = response;
        outcome.account = account;
        return outcome;
    }

    // Query-protocol bodies are small: read them whole, within a limit, and
    // refuse larger ones without reading them.
    let limit = cloud.config.max_query_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        format!("Request body must be at most {limit} bytes."),
    );
    if declared.is_some_and(|n| n > limit as u64) {
        outcome.response = fail(&too_large);
        return outcome;
    }
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            outcome.response = fail(&too_large);
            return outcome;
        }
        Err(_) => {
            outcome.response = fail(&ApiError::new(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "The request body could not be read.",
            ));
            return outcome;
        }
    };
    let form_params: Vec<(String, String)> = if is_form {
        form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    } else {
        Vec::new()
    };
    let request_parts = RequestParts {
        form_params: &form_params,
        ..header_only
    };
    let signed = match mallee_sigv::parse(&request_parts) {
        Ok(signed) => signed,
        Err(e) => {
            outcome.response = fail(&AuthError::from(e).to_api_error(service));
            return outcome;
        }
    };
    let body_sha256 = mallee_sigv::sha256_hex(&body);
    let principal = match auth::authenticate(
        &cloud,
        signed.as_ref(),
        &request_parts,
        Some(&body_sha256),
        None,
    )
    .await
    {
        Ok(Caller::Principal(p)) => p,
        Ok(Caller::Anonymous) => {
            outcome.response = fail(&AuthError::Missing.to_api_error(service));
            return outcome;
        }
        Err(e) => {
            if let AuthError::Store(store_error) = &e {
                tracing::error!(request_id, error = %store_error, "store failure during authentication");
            }
            outcome.response = fail(&e.to_api_error(service));
            return outcome;
        }
    };
    outcome.account = Some(principal.account.account_id.clone());
    if !cloud.admission.allow_account(&principal.account.account_id) {
        outcome.response = fail(&ApiError::throttled(service));
        return outcome;
    }
    let region = signed
        .as_ref()
        .and_then(|s| s.region())
        .unwrap_or(&cloud.config.region)
        .to_owned();
    if let Some(signed) = &signed {
        cloud
            .key_use
            .note(
                &*cloud.store,
                signed.access_key(),
                service.scope_name(),
                &region,
            )
            .await;
    }
    let facts = RequestFacts {
        source_ip,
        region: Some(region),
    };

    let pairs = form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .chain(form_params.iter().cloned())
        .filter(|(k, _)| !is_auth_param(k));
    let params = match QueryParams::from_pairs(pairs) {
        Ok(p) => p,
        Err(e) => {
            outcome.response = fail(&ec2::Ec2Error::from(e).into());
            return outcome;
        }
    };
    let Some(action) = params.get("Action").map(str::to_owned) else {
        outcome.response = fail(&ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingAction",
            "The request must contain the parameter Action",
        ));
        return outcome;
    };
    outcome.action = action.clone();
    let run = Run {
        cloud: &cloud,
        principal: &principal,
        request_id: &request_id,
        facts: &facts,
    };
    let result = match service {
        Service::Ec2 => run.ec2(&action, &params).await,
        Service::Metal => run.metal(&door.metal, &action, &params).await,
        Service::Iam => run.iam(&action, &params).await,
        Service::Sts => run.sts(&action, &params).await,
        Service::Bootstrap => run.bootstrap(&action, &params).await,
        Service::S3 => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )),
    };
    outcome.response = match result {
        Ok(body) => xml_response(StatusCode::OK, body),
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(request_id, code = %e.code, "request failed inside the controller");
            }
            fail(&e)
        }
    };
    outcome
}

/// One signed Query request, ready to run once authorised.
struct Run<'a> {
    cloud: &'a Cloud,
    principal: &'a Principal,
    request_id: &'a str,
    facts: &'a RequestFacts,
}

impl Run<'_> {
    /// Lets the action through or answers `service`'s refusal.
    async fn authorize(
        &self,
        service: Service,
        action: &str,
        resources: Vec<Target>,
    ) -> Result<(), ApiError> {
        authorize::authorize(
            self.cloud,
            self.principal,
            service,
            action,
            resources,
            self.facts.context(),
        )
        .await
    }

    /// The answer to a request that could not be parsed: a caller who may
    /// not run the action at all is refused, as AWS refuses before it
    /// validates; anyone else gets `invalid`.
    async fn refused_or(&self, service: Service, action: &str, invalid: ApiError) -> ApiError {
        let iam_action = format!("{}:{action}", service.scope_name());
        match self.authorize(service, &iam_action, Vec::new()).await {
            Ok(()) => invalid,
            Err(refusal) => refusal,
        }
    }

    /// `iam:PassRole` on the role of the caller's instance profile
    /// `profile`, which an action gives to instances (a profile that does
    /// not resolve is the action's own error to report).
    async fn authorize_pass_role(&self, profile: &str) -> Result<(), ApiError> {
        let resolved = mallee_cloud::identity::profiles::resolve(
            &*self.cloud.store,
            self.principal.account_id(),
            profile,
        )
        .await;
        let Ok(resolved) = resolved else {
            return Ok(());
        };
        let roles = resolved
            .roles
            .iter()
            .map(|r| Target {
                arn: r.arn.clone(),
                context: Default::default(),
            })
            .collect::<Vec<_>>();
        if roles.is_empty() {
            return Ok(());
        }
        self.authorize(Service::Ec2, "iam:PassRole", roles).await
    }

    async fn ec2(&self, action: &str, params: &QueryParams) -> Result<String, ApiError> {
        let request_id = self.request_id;
        let to_api = |e: ec2::Ec2Error| {
            if let ec2::Ec2Error::Internal(detail) = &e {
                tracing::error!(request_id, detail, "internal error");
            }
            ApiError::from(e)
        };
        let parsed = match Ec2Action::parse(action, params) {
            Ok(parsed) => parsed,
            Err(e) => return Err(self.refused_or(Service::Ec2, action, to_api(e)).await),
        };
        let dry_run = params
            .bool("DryRun")
            .map_err(|e| to_api(e.into()))?
            .unwrap_or(false);
        // The account's admin is allowed everything: the resources and
        // roles a policy would be matched against need not be read.
        if !is_account_admin(self.principal) {
            let region = self
                .facts
                .region
                .as_deref()
                .unwrap_or(&self.cloud.config.region);
            let targets = ec2_targets(
                &*self.cloud.store,
                region,
                self.principal.account_id(),
                parsed.resource_ids(),
            )
            .await
            .map_err(|e| {
                tracing::error!(request_id, error = %e, "could not read the request's resources");
                ApiError::internal()
            })?;
            self.authorize(Service::Ec2, &parsed.iam_action(), targets)
                .await?;
            let profile = parsed
                .passed_profile(self.cloud, self.principal)
                .await
                .map_err(to_api)?;
            if let Some(profile) = profile {
                self.authorize_pass_role(&profile).await?;
            }
        }
        let ctx = Ec2Context {
            cloud: self.cloud,
            principal: self.principal,
            request_id,
            namespace: ec2::namespace_for(params.get("Version")),
        };
        ec2::execute(&ctx, parsed, dry_run).await.map_err(to_api)
    }

    async fn metal(
        &self,
        metal: &mallee_cloud::metal::Metal,
        action: &str,
        params: &QueryParams,
    ) -> Result<String, ApiError> {
        use crate::metal::{MetalAction, MetalApiError, MetalContext, execute};
        let request_id = self.request_id;
        let to_api = |e: MetalApiError| {
            if let MetalApiError::Internal(detail) = &e {
                tracing::error!(request_id, detail, "internal error");
            }
            ApiError::from(e)
        };
        let parsed = match MetalAction::parse(action, params) {
            Ok(parsed) => parsed,
            Err(e) => return Err(self.refused_or(Service::Metal, action, to_api(e)).await),
        };
        self.authorize(Service::Metal, &parsed.iam_action(), Vec::new())
            .await?;
        let ctx = MetalContext {
            metal,
            principal: self.principal,
            request_id,
        };
        execute(&ctx, parsed).await.map_err(to_api)
    }

    async fn iam(&self, action: &str, params: &QueryParams) -> Result<String, ApiError> {
        let parsed = match IamAction::parse(action, params) {
            Ok(parsed) => parsed,
            Err(e) => return Err(self.refused_or(Service::Iam, action, e.into()).await),
        };
        self.authorize(Service::Iam, &parsed.iam_action(), Vec::new())
            .await?;
        let ctx = IamContext {
            cloud: self.cloud,
            principal: self.principal,
            request_id: self.request_id,
        };
        Ok(iam::execute(&ctx, parsed).await?)
    }

    async fn bootstrap(&self, action: &str, params: &QueryParams) -> Result<String, ApiError> {
        let parsed = match BootstrapAction::parse(action, params) {
            Ok(parsed) => parsed,
            Err(e) => return Err(self.refused_or(Service::Bootstrap, action, e.into()).await),
        };
        self.authorize(Service::Bootstrap, &parsed.iam_action(), Vec::new())
            .await?;
        let ctx = BootstrapContext {
            cloud: self.cloud,
            request_id: self.request_id,
        };
        Ok(bootstrap::execute(&ctx, parsed).await?)
    }

    async fn sts(&self, action: &str, params: &QueryParams) -> Result<String, ApiError> {
        let parsed = match StsAction::parse(action, params) {
            Ok(parsed) => parsed,
            Err(e) if matches!(action, "GetCallerIdentity" | "GetSessionToken") => {
                return Err(e.into());
            }
            Err(e) => return Err(self.refused_or(Service::Sts, action, e.into()).await),
        };
        if !parsed.always_allowed() {
            let targets = match &parsed {
                StsAction::AssumeRole(a) => vec![Target {
                    arn: a.role_arn().to_owned(),
                    context: Default::default(),
                }],
                _ => Vec::new(),
            };
            self.authorize(Service::Sts, &parsed.iam_action(), targets)
                .await?;
        }
        let ctx = StsContext {
            cloud: self.cloud,
            principal: self.principal,
            request_id: self.request_id,
            context: self.facts.context(),
        };
        Ok(sts::execute(&ctx, parsed).await?)
    }
}
