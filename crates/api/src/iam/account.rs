//! The account and sign-in on the wire: account aliases,
//! GetAccountSummary, login profiles, and the Eucalyptus account actions
//! (CreateAccount, ListAccounts, DeleteAccount) for the cloud's
//! administrators.

use mallee_cloud::identity::{account, login};
use mallee_cloud::ids::iso8601;

use super::{IamApiError, IamContext, members};
use crate::query::QueryParams;

type Result<T, E = IamApiError> = std::result::Result<T, E>;

/// CreateAccountAlias input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateAccountAlias {
    alias: String,
}

impl CreateAccountAlias {
    /// Reads `AccountAlias`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            alias: params.required_non_empty("AccountAlias")?.to_owned(),
        })
    }

    /// Sets the account's alias.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        account::create_alias(&*ctx.cloud.store, ctx.account(), &self.alias).await?;
        Ok(ctx.respond("CreateAccountAlias", |_| {}))
    }
}

/// DeleteAccountAlias input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteAccountAlias {
    alias: String,
}

impl DeleteAccountAlias {
    /// Reads `AccountAlias`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            alias: params.required_non_empty("AccountAlias")?.to_owned(),
        })
    }

    /// Removes the alias.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        account::delete_alias(&*ctx.cloud.store, ctx.account(), &self.alias).await?;
        Ok(ctx.respond("DeleteAccountAlias", |_| {}))
    }
}

/// ListAccountAliases input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAccountAliases;

impl ListAccountAliases {
    /// Takes `Marker` and `MaxItems`, which one alias never needs.
    pub fn parse(_params: &QueryParams) -> Result<Self> {
        Ok(Self)
    }

    /// Lists the alias.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let aliases = account::aliases(&*ctx.cloud.store, ctx.account()).await?;
        Ok(ctx.respond("ListAccountAliases", |w| {
            members(w, "AccountAliases", &aliases, |w, a| w.text_content(a));
            w.text("IsTruncated", false);
        }))
    }
}

/// GetAccountSummary input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAccountSummary;

impl GetAccountSummary {
    /// Takes no parameters.
    pub fn parse(_params: &QueryParams) -> Result<Self> {
        Ok(Self)
    }

    /// Answers the counts and limits.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let map = account::summary(&*ctx.cloud.store, ctx.account()).await?;
        Ok(ctx.respond("GetAccountSummary", |w| {
            w.elem("SummaryMap", |w| {
                for (k, v) in &map {
                    w.elem("entry", |w| {
                        w.text("key", k);
                        w.text("value", v);
                    });
                }
            });
        }))
    }
}

fn write_login_profile(w: &mut crate::xml::XmlWriter, user: &str, p: &login::LoginProfile) {
    w.elem("LoginProfile", |w| {
        w.text("UserName", user);
        w.text("CreateDate", iso8601(p.created_at));
        w.text("PasswordResetRequired", p.reset_required);
    });
}

/// CreateLoginProfile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateLoginProfile {
    user: String,
    password: String,
    reset: bool,
}

impl CreateLoginProfile {
    /// Reads `UserName`, `Password`, `PasswordResetRequired`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: params.required_non_empty("UserName")?.to_owned(),
            password: params.required_non_empty("Password")?.to_owned(),
            reset: params.bool("PasswordResetRequired")?.unwrap_or(false),
        })
    }

    /// Sets the user's console password.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let p = login::create(
            &*ctx.cloud.store,
            ctx.account(),
            &self.user,
            &self.password,
            self.reset,
        )
        .await?;
        Ok(ctx.respond("CreateLoginProfile", |w| {
            write_login_profile(w, &self.user, &p)
        }))
    }
}

/// GetLoginProfile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetLoginProfile {
    user: String,
}

impl GetLoginProfile {
    /// Reads `UserName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: params.required_non_empty("UserName")?.to_owned(),
        })
    }

    /// Answers the profile (never the password).
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let p = login::get(&*ctx.cloud.store, ctx.account(), &self.user).await?;
        Ok(ctx.respond("GetLoginProfile", |w| {
            write_login_profile(w, &self.user, &p)
        }))
    }
}

/// UpdateLoginProfile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateLoginProfile {
    user: String,
    password: Option<String>,
    reset: Option<bool>,
}

impl UpdateLoginProfile {
    /// Reads `UserName`, `Password`, `PasswordResetRequired`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: params.required_non_empty("UserName")?.to_owned(),
            password: params.get("Password").map(str::to_owned),
            reset: params.bool("PasswordResetRequired")?,
        })
    }

    /// Changes the password or the reset flag.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        login::update(
            &*ctx.cloud.store,
            ctx.account(),
            &self.user,
            self.password.as_deref(),
            self.reset,
        )
        .await?;
        Ok(ctx.respond("UpdateLoginProfile", |_| {}))
    }
}

/// DeleteLoginProfile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteLoginProfile {
    user: String,
}

impl DeleteLoginProfile {
    /// Reads `UserName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: params.required_non_empty("UserName")?.to_owned(),
        })
    }

    /// Removes the console password.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        login::delete(&*ctx.cloud.store, ctx.account(), &self.user).await?;
        Ok(ctx.respond("DeleteLoginProfile", |_| {}))
    }
}

fn write_account(w: &mut crate::xml::XmlWriter, a: &mallee_store::Account) {
    w.text("AccountName", &a.name);
    w.text("AccountId", &a.account_id);
}

/// CreateAccount input (Eucalyptus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateAccount {
    name: String,
}

impl CreateAccount {
    /// Reads `AccountName`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            name: params.required_non_empty("AccountName")?.to_owned(),
        })
    }

    /// Creates the account with its `admin` user.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let a = account::create_account(&*ctx.cloud.store, ctx.principal, &self.name).await?;
        Ok(ctx.respond("CreateAccount", |w| {
            w.elem("Account", |w| write_account(w, &a))
        }))
    }
}

/// ListAccounts input (Eucalyptus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAccounts;

impl ListAccounts {
    /// Takes no parameters.
    pub fn parse(_params: &QueryParams) -> Result<Self> {
        Ok(Self)
    }

    /// Lists every account.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        let all = account::list_accounts(&*ctx.cloud.store, ctx.principal).await?;
        Ok(ctx.respond("ListAccounts", |w| {
            members(w, "Accounts", &all, write_account);
            w.text("IsTruncated", false);
        }))
    }
}

/// DeleteAccount input (Eucalyptus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteAccount {
    name: String,
}

impl DeleteAccount {
    /// Reads `AccountName`; `Recursive=true` (deleting the account's
    /// resources too) is refused.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        if params.bool("Recursive")?.unwrap_or(false) {
            return Err(params
                .invalid(
                    "Recursive",
                    "true",
                    "Delete the account's resources first; recursive deletion is not supported.",
                )
                .into());
        }
        Ok(Self {
            name: params.required_non_empty("AccountName")?.to_owned(),
        })
    }

    /// Deletes the account.
    pub async fn execute(self, ctx: &IamContext<'_>) -> Result<String> {
        account::delete_account(&*ctx.cloud.store, ctx.principal, &self.name).await?;
        Ok(ctx.respond("DeleteAccount", |_| {}))
    }
}
