//! DescribeSystemUsers, SetProfile, EnableNetboot, DisableNetboot,
//! RebootSystem, ReserveSystems and ReleaseSystems on the wire:
//! parameters in, XML out. What they do, and whose systems each caller
//! may touch, is `mallee_cloud::metal::systems`.

use mallee_cloud::metal::systems::{self, Pick, Scope, Target};

use super::params::{name_param, opt_user, pick, scope, target, user_param};
use super::{MetalApiError, MetalContext};
use crate::query::QueryParams;

type Result<T, E = MetalApiError> = std::result::Result<T, E>;

/// DescribeSystemUsers input: `describe-system-users [-u USER]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeSystemUsers {
    /// Only this user's systems.
    pub user: Option<String>,
}

impl DescribeSystemUsers {
    /// Reads `User`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            user: opt_user(params)?,
        })
    }

    /// Lists the taken systems the caller may see.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let owned = systems::owned(ctx.metal, ctx.principal, self.user.as_deref()).await?;
        Ok(ctx.respond_systems("DescribeSystemUsers", "systemSet", &owned))
    }
}

/// SetProfile input: `set-profile -n|-i -p`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetProfile {
    /// The system.
    pub target: Target,
    /// The profile.
    pub profile: String,
}

impl SetProfile {
    /// Reads `Name` or `Ip`, and `Profile`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            target: target(params)?,
            profile: name_param(params, "Profile", "profile name")?,
        })
    }

    /// Sets the profile and answers with the system.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let s = systems::set_profile(ctx.metal, ctx.principal, &self.target, self.profile).await?;
        Ok(ctx.respond_systems("SetProfile", "systemSet", &[s]))
    }
}

macro_rules! netboot_actions {
    ($($(#[$doc:meta])* $name:ident => $on:literal,)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub Target);

        impl $name {
            /// Reads `Name` or `Ip`.
            pub fn parse(params: &QueryParams) -> Result<Self> {
                Ok(Self(target(params)?))
            }

            /// Turns netboot on or off and answers with the system.
            pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
                let s = systems::set_netboot(ctx.metal, ctx.principal, &self.0, $on).await?;
                Ok(ctx.respond_systems(stringify!($name), "systemSet", &[s]))
            }
        }
    )*};
}

netboot_actions! {
    /// EnableNetboot input: the next reboot reinstalls.
    EnableNetboot => true,
    /// DisableNetboot input: the next reboot boots the disk.
    DisableNetboot => false,
}

/// RebootSystem input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebootSystem(pub Target);

impl RebootSystem {
    /// Reads `Name` or `Ip`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self(target(params)?))
    }

    /// Reboots (or reinstalls) the system and answers with it.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let s = systems::reboot(ctx.metal, ctx.principal, &self.0).await?;
        Ok(ctx.respond_systems("RebootSystem", "systemSet", &[s]))
    }
}

/// ReserveSystems input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveSystems {
    /// Which.
    pub pick: Pick,
    /// For whom.
    pub user: String,
}

impl ReserveSystems {
    /// Reads `Count` with `Group.N` (or `Name.N`/`Ip.N`), and `User`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            pick: pick(params)?,
            user: user_param(params)?,
        })
    }

    /// Reserves the systems and answers with them.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let reserved = systems::reserve(ctx.metal, ctx.principal, &self.pick, &self.user).await?;
        Ok(ctx.respond_systems("ReserveSystems", "systemSet", &reserved))
    }
}

/// ReleaseSystems input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseSystems(pub Scope);

impl ReleaseSystems {
    /// Reads `User`, or `Name.N`/`Ip.N`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self(scope(params)?))
    }

    /// Gives the systems back and answers with them.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let released = systems::release(ctx.metal, ctx.principal, &self.0).await?;
        Ok(ctx.respond_systems("ReleaseSystems", "systemSet", &released))
    }
}
