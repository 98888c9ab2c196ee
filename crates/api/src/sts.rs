//! The STS API (SigV4 service `sts`, Eucalyptus path `/services/Tokens`):
//! who the caller is (GetCallerIdentity, which needs no permission, as on
//! AWS), which account a key belongs to (GetAccessKeyInfo), temporary
//! credentials (GetSessionToken, AssumeRole) and what an EC2 refusal's
//! sealed message says (DecodeAuthorizationMessage). Every action is
//! declared once, in the table below.

use mallee_cloud::identity::keys;
use mallee_cloud::identity::sts::{self as domain, Credentials};
use mallee_cloud::ids::iso8601;
use mallee_cloud::{Cloud, Principal};
use mallee_policy::Context;

use crate::iam::{IamApiError, respond};
use crate::query::QueryParams;
use crate::xml::XmlWriter;

/// The XML namespace of STS's answers.
pub const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

type Result<T, E = IamApiError> = std::result::Result<T, E>;

crate::actions::declare! {
    /// One parsed STS request.
    enum StsAction;
    /// Runs an action the caller was allowed.
    fn execute(StsContext, IamApiError, invalid: IamApiError::InvalidAction);
    service "sts";
    GetCallerIdentity => self::GetCallerIdentity,
    GetAccessKeyInfo => self::GetAccessKeyInfo,
    GetSessionToken => self::GetSessionToken,
    AssumeRole => self::AssumeRole,
    DecodeAuthorizationMessage => self::DecodeAuthorizationMessage,
}

impl StsAction {
    /// Whether every authenticated caller may run it, whatever its
    /// policies say: AWS lets everyone ask who they are, and lets a user
    /// have session credentials that can do no more than it can.
    pub fn always_allowed(&self) -> bool {
        matches!(self, Self::GetCallerIdentity(_) | Self::GetSessionToken(_))
    }
}

/// What an STS action runs with.
#[derive(Debug)]
pub struct StsContext<'a> {
    /// The cloud.
    pub cloud: &'a Cloud,
    /// Who is calling.
    pub principal: &'a Principal,
    /// This request's id.
    pub request_id: &'a str,
    /// The request's condition keys (for trust policies).
    pub context: Context,
}

impl StsContext<'_> {
    fn respond(&self, action: &str, body: impl FnOnce(&mut XmlWriter)) -> String {
        respond(NAMESPACE, action, self.request_id, body)
    }
}

/// GetCallerIdentity input (none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetCallerIdentity;

impl GetCallerIdentity {
    /// Takes no parameters.
    pub fn parse(_params: &QueryParams) -> Result<Self> {
        Ok(Self)
    }

    /// Answers the caller's ARN, user id and account.
    pub async fn execute(self, ctx: &StsContext<'_>) -> Result<String> {
        let p = ctx.principal;
        let me = ctx.cloud.identities.caller(&*ctx.cloud.store, p).await?;
        Ok(ctx.respond("GetCallerIdentity", |w| {
            w.text("Arn", me.arn());
            w.text("UserId", me.user_id());
            w.text("Account", p.account_id());
        }))
    }
}

/// GetAccessKeyInfo input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAccessKeyInfo {
    key_id: String,
}

impl GetAccessKeyInfo {
    /// Reads `AccessKeyId`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            key_id: params.required_non_empty("AccessKeyId")?.to_owned(),
        })
    }

    /// Answers the key's account.
    pub async fn execute(self, ctx: &StsContext<'_>) -> Result<String> {
        let account = keys::account_of(&*ctx.cloud.store, &self.key_id).await?;
        Ok(ctx.respond("GetAccessKeyInfo", |w| w.text("Account", account)))
    }
}

fn write_credentials(w: &mut XmlWriter, c: &Credentials) {
    w.elem("Credentials", |w| {
        w.text("AccessKeyId", &c.access_key_id);
        w.text("SecretAccessKey", &c.secret_access_key);
        w.text("SessionToken", &c.session_token);
        w.text("Expiration", iso8601(c.expires_at));
    });
}

fn duration(params: &QueryParams) -> Result<Option<i64>> {
    Ok(params.int("DurationSeconds")?)
}

/// GetSessionToken input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetSessionToken {
    seconds: Option<i64>,
}

impl GetSessionToken {
    /// Reads `DurationSeconds` (MFA is not supported: `SerialNumber` and
    /// `TokenCode` are refused).
    pub fn parse(params: &QueryParams) -> Result<Self> {
        if params.get("SerialNumber").is_some() || params.get("TokenCode").is_some() {
            return Err(params
                .invalid(
                    "SerialNumber",
                    params.get("SerialNumber").unwrap_or_default(),
                    "MFA devices are not supported.",
                )
                .into());
        }
        Ok(Self {
            seconds: duration(params)?,
        })
    }

    /// Issues credentials that act as the caller.
    pub async fn execute(self, ctx: &StsContext<'_>) -> Result<String> {
        let c = domain::session_token(&*ctx.cloud.store, ctx.principal, self.seconds).await?;
        Ok(ctx.respond("GetSessionToken", |w| write_credentials(w, &c)))
    }
}

/// AssumeRole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    role_arn: String,
    session_name: String,
    seconds: Option<i64>,
}

impl AssumeRole {
    /// Reads `RoleArn`, `RoleSessionName`, `DurationSeconds`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            role_arn: params.required_non_empty("RoleArn")?.to_owned(),
            session_name: params.required_non_empty("RoleSessionName")?.to_owned(),
            seconds: duration(params)?,
        })
    }

    /// The role it asks for (the resource the caller's own policies must
    /// allow `sts:AssumeRole` on).
    pub fn role_arn(&self) -> &str {
        &self.role_arn
    }

    /// Issues a role session if the role's trust policy allows the caller.
    pub async fn execute(self, ctx: &StsContext<'_>) -> Result<String> {
        let assumed = domain::assume_role(
            &*ctx.cloud.store,
            ctx.principal,
            &self.role_arn,
            &self.session_name,
            self.seconds,
            &ctx.context,
        )
        .await?;
        Ok(ctx.respond("AssumeRole", |w| {
            write_credentials(w, &assumed.credentials);
            w.elem("AssumedRoleUser", |w| {
                w.text("AssumedRoleId", &assumed.assumed_role_id);
                w.text("Arn", &assumed.arn);
            });
            w.text("PackedPolicySize", 0);
        }))
    }
}

/// DecodeAuthorizationMessage input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeAuthorizationMessage {
    encoded: String,
}

impl DecodeAuthorizationMessage {
    /// Reads `EncodedMessage`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            encoded: params.required_non_empty("EncodedMessage")?.to_owned(),
        })
    }

    /// Opens a message this cloud sealed and answers its JSON document.
    pub async fn execute(self, ctx: &StsContext<'_>) -> Result<String> {
        let decoded = ctx
            .cloud
            .authz_seal
            .open(&self.encoded)
            .ok_or(mallee_policy::AuthzMessageError::Invalid)
            .and_then(|plain| mallee_policy::AuthzMessage::decode(&plain))
            .map_err(IamApiError::InvalidAuthorizationMessage)?;
        Ok(ctx.respond("DecodeAuthorizationMessage", |w| {
            w.text("DecodedMessage", decoded.to_json());
        }))
    }
}
