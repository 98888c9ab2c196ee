//! The STS API (SigV4 service `sts`, Eucalyptus path `/services/Tokens`):
//! who the caller is (GetCallerIdentity, which needs no permission, as on
//! AWS) and which account a key belongs to (GetAccessKeyInfo). Every
//! action is declared once, in the table below.

use mallee_cloud::identity::{keys, users};
use mallee_cloud::{Cloud, Principal};

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
}

impl StsAction {
    /// Whether every authenticated caller may run it, whatever its
    /// policies say (AWS lets everyone ask who they are).
    pub fn always_allowed(&self) -> bool {
        matches!(self, Self::GetCallerIdentity(_))
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
        let user = users::get(&*ctx.cloud.store, p.account_id(), &p.user_name).await?;
        Ok(ctx.respond("GetCallerIdentity", |w| {
            w.text("Arn", &user.arn);
            w.text("UserId", &user.user_id);
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
