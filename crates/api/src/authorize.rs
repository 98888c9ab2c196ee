//! Authorisation of every signed request, before its action runs: the
//! protocol layer names the IAM action (from the one declaration of each
//! action), the resources and the condition keys it knows, the identity
//! domain decides, and a refusal becomes each service's error: EC2's
//! `UnauthorizedOperation` with its encoded message, S3's `AccessDenied`,
//! IAM's and STS's `AccessDenied` naming the caller, action and resource.

use std::net::IpAddr;

use http::StatusCode;
use mallee_cloud::identity::authorize::{self, Access, Target, Verdict};
use mallee_cloud::{Cloud, Principal};
use mallee_policy::Context;

use crate::error::ApiError;
use crate::service::Service;

/// What is known about a request before its action runs.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// The client's address (`aws:SourceIp`).
    pub source_ip: Option<IpAddr>,
    /// The region the request was signed for (`aws:RequestedRegion`).
    pub region: Option<String>,
}

impl RequestFacts {
    /// The global condition keys these facts give.
    pub fn context(&self) -> Context {
        let mut c = Context::new();
        if let Some(ip) = self.source_ip {
            c.insert("aws:SourceIp", ip.to_string());
        }
        if let Some(region) = &self.region {
            c.insert("aws:RequestedRegion", region.clone());
        }
        c.insert("aws:SecureTransport", "false");
        c
    }
}

/// Lets the request through, or answers the service's refusal. `context`
/// carries the facts' keys and any the action adds.
pub async fn authorize(
    cloud: &Cloud,
    principal: &Principal,
    service: Service,
    action: &str,
    resources: Vec<Target>,
    context: Context,
) -> Result<(), ApiError> {
    let access = Access {
        action,
        resources,
        context,
    };
    match authorize::check(cloud, principal, access).await {
        Ok(Verdict::Allowed) => Ok(()),
        Ok(Verdict::Denied {
            explicit,
            resource,
            encoded,
            caller_arn,
        }) => Err(refusal(
            service,
            action,
            &resource,
            &encoded,
            &caller_arn,
            explicit,
        )),
        Err(mallee_cloud::identity::IdentityError::AccessDenied(message)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            message,
        )),
        Err(e) => {
            tracing::error!(error = %e, action, "authorization failed");
            Err(ApiError::internal())
        }
    }
}

/// The error `service` answers for a refused request.
fn refusal(
    service: Service,
    action: &str,
    resource: &str,
    encoded: &str,
    caller_arn: &str,
    explicit: bool,
) -> ApiError {
    match service {
        Service::Ec2 | Service::Metal => ApiError::new(
            StatusCode::FORBIDDEN,
            "UnauthorizedOperation",
            mallee_policy::unauthorized_operation_message(encoded),
        ),
        Service::S3 => ApiError::new(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied"),
        Service::Iam | Service::Sts | Service::Bootstrap => {
            let how = if explicit {
                " with an explicit deny in an identity-based policy"
            } else {
                " because no identity-based policy allows the action"
            };
            ApiError::new(
                StatusCode::FORBIDDEN,
                "AccessDenied",
                format!(
                    "User: {caller_arn} is not authorized to perform: {action} on resource: {resource}{how}"
                ),
            )
        }
    }
}
