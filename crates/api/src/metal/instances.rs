//! RunInstances, DescribeInstances and TerminateInstances of the metal
//! API (the seed's instance commands: owned systems and how far their
//! installation is) on the wire. What they do is
//! `mallee_cloud::metal::systems`.

use mallee_cloud::metal::systems::{self, Pick, Scope};

use super::params::{name_param, opt_user, pick, scope, user_param};
use super::{MetalApiError, MetalContext};
use crate::query::QueryParams;

type Result<T, E = MetalApiError> = std::result::Result<T, E>;

/// RunInstances input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInstances {
    /// Which.
    pub pick: Pick,
    /// What to install.
    pub profile: String,
    /// For whom.
    pub user: String,
}

impl RunInstances {
    /// Reads `Count` with `Group.N` (or `Name.N`/`Ip.N`), `Profile` and
    /// `User`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            pick: pick(params)?,
            profile: name_param(params, "Profile", "profile name")?,
            user: user_param(params)?,
        })
    }

    /// Reserves the systems, starts their installs, answers with them.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let started = systems::run_instances(
            ctx.metal,
            ctx.principal,
            &self.pick,
            &self.profile,
            &self.user,
        )
        .await?;
        Ok(ctx.respond_systems("RunInstances", "instancesSet", &started))
    }
}

/// DescribeInstances input: `describe-instances [-u USER]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeInstances {
    /// Only this user's.
    pub user: Option<String>,
}

impl DescribeInstances {
    /// Reads `User`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: opt_user(params)?,
        })
    }

    /// Lists the caller's instances.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let owned = systems::owned(ctx.metal, ctx.principal, self.user.as_deref()).await?;
        Ok(ctx.respond_systems("DescribeInstances", "instancesSet", &owned))
    }
}

/// TerminateInstances input: `terminate-instances -u USER | -i IP…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminateInstances(pub Scope);

impl TerminateInstances {
    /// Reads `User`, or `Name.N`/`Ip.N`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self(scope(params)?))
    }

    /// Gives the systems back and answers with them.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let released = systems::release(ctx.metal, ctx.principal, &self.0).await?;
        Ok(ctx.respond_systems("TerminateInstances", "instancesSet", &released))
    }
}
