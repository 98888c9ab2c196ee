//! DescribeDistros, DescribeSystems, DescribeSystemGroups and the
//! administrator's inventory edits (AddGroup, RemoveGroup, AddDistro,
//! RemoveDistro, AddSystem, EditSystem, RemoveSystem, ConfirmPoweredOff)
//! on the wire: parameters in, XML out. What they do is
//! `mallee_cloud::metal::inventory`.

use mallee_cloud::metal::inventory::{self, NewDistro, NewGroup, SystemEdit};
use mallee_cloud::metal::systems::Target;
use mallee_metal::model::System;
use mallee_metal::power::PowerSpec;

use super::params::{
    ip, mac_param, name_param, opt_name, power_param, target, targets, variables_param, wipe_param,
};
use super::{MetalApiError, MetalContext, write_system};
use crate::query::QueryParams;

type Result<T, E = MetalApiError> = std::result::Result<T, E>;

/// DescribeDistros input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeDistros;

impl DescribeDistros {
    /// Takes no parameters.
    pub fn parse(_params: &QueryParams) -> Result<Self> {
        Ok(Self)
    }

    /// Lists the distros.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let distros = inventory::distros(ctx.metal).await?;
        Ok(ctx.respond("DescribeDistros", |w| {
            w.items("distroSet", &distros, |w, d| {
                w.text("name", &d.name);
                w.text("kernel", &d.kernel);
                w.text("initrd", &d.initrd);
                w.text("kernelArgs", &d.kernel_args);
            });
        }))
    }
}

/// DescribeSystems input: all systems, or these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeSystems(pub Vec<Target>);

impl DescribeSystems {
    /// Reads `Name.N` and `Ip.N`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self(targets(params)?))
    }

    /// Lists the systems as the caller may see them.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let systems = inventory::systems(ctx.metal, ctx.principal, &self.0).await?;
        Ok(ctx.respond_systems("DescribeSystems", "systemSet", &systems))
    }
}

/// DescribeSystemGroups input: `describe-system-groups [-g GROUP] [-f]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribeSystemGroups {
    /// Only this group.
    pub group: Option<String>,
    /// Only free systems.
    pub free_only: bool,
}

impl DescribeSystemGroups {
    /// Reads `Group` and `FreeOnly`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            group: opt_name(params, "Group", "group name")?,
            free_only: params.bool("FreeOnly")?.unwrap_or(false),
        })
    }

    /// Lists the groups with their counts, then their systems.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let found = inventory::groups(
            ctx.metal,
            ctx.principal,
            self.group.as_deref(),
            self.free_only,
        )
        .await?;
        Ok(ctx.respond("DescribeSystemGroups", |w| {
            w.items("groupSet", &found.groups, |w, g| {
                w.text("name", &g.name);
                w.text("description", &g.description);
                w.text("wipe", &g.wipe);
                w.text("total", g.total);
                w.text("free", g.free);
            });
            let admin = ctx.principal.account.is_admin;
            w.items("systemSet", &found.systems, |w, s| {
                write_system(w, s, admin)
            });
        }))
    }
}

/// AddGroup input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddGroup(pub NewGroup);

impl AddGroup {
    /// Reads `Name`, `Description` and `Wipe`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self(NewGroup {
            name: name_param(params, "Name", "group name")?,
            description: params.get("Description").unwrap_or_default().to_owned(),
            wipe: match params.get("Wipe") {
                None | Some("") => None,
                Some(w) => Some(wipe_param(w)?),
            },
        }))
    }

    /// Adds or describes the group.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        inventory::add_group(ctx.metal, self.0).await?;
        Ok(ctx.respond_true("AddGroup"))
    }
}

/// RemoveGroup input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveGroup {
    /// The group.
    pub name: String,
}

impl RemoveGroup {
    /// Reads `Name`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            name: name_param(params, "Name", "group name")?,
        })
    }

    /// Removes the group.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        inventory::remove_group(ctx.metal, &self.name).await?;
        Ok(ctx.respond_true("RemoveGroup"))
    }
}

/// AddDistro input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddDistro(pub NewDistro);

impl AddDistro {
    /// Reads `Name`, `Kernel`, `Initrd` and `KernelArgs`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self(NewDistro {
            name: name_param(params, "Name", "distro name")?,
            kernel: params.required_non_empty("Kernel")?.to_owned(),
            initrd: params.required_non_empty("Initrd")?.to_owned(),
            kernel_args: params.get("KernelArgs").unwrap_or_default().to_owned(),
        }))
    }

    /// Adds or replaces the distro.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        inventory::add_distro(ctx.metal, self.0).await?;
        Ok(ctx.respond_true("AddDistro"))
    }
}

/// RemoveDistro input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveDistro {
    /// The distro.
    pub name: String,
}

impl RemoveDistro {
    /// Reads `Name`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            name: name_param(params, "Name", "distro name")?,
        })
    }

    /// Removes the distro.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        inventory::remove_distro(ctx.metal, &self.name).await?;
        Ok(ctx.respond_true("RemoveDistro"))
    }
}

/// AddSystem input: the new system, free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddSystem(pub Box<System>);

impl AddSystem {
    /// Reads `Name`, `Mac`, `Ip`, `Group`, `Power` (JSON, default
    /// manual), `Hostname`, `Disk`, `Variables` and `Wipe`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        let name = name_param(params, "Name", "system name")?;
        let mac = mac_param(params, params.required_non_empty("Mac")?)?;
        let address = ip(params, "Ip", params.required_non_empty("Ip")?)?;
        let group = name_param(params, "Group", "group name")?;
        let power = match params.get("Power") {
            None | Some("") => PowerSpec::Manual,
            Some(v) => power_param(params, v)?,
        };
        let mut system = System::new(&name, mac, address, &group, power)
            .map_err(|e| MetalApiError::Invalid(e.to_string()))?;
        if let Some(h) = opt_name(params, "Hostname", "host name")? {
            system.hostname = h;
        }
        system.disk = params
            .get("Disk")
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        system.variables = variables_param(params)?.unwrap_or_default();
        system.wipe = match params.get("Wipe") {
            None | Some("" | "group") => None,
            Some(w) => Some(wipe_param(w)?),
        };
        Ok(Self(Box::new(system)))
    }

    /// Adds the system.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        inventory::add_system(ctx.metal, &self.0).await?;
        Ok(ctx.respond_systems("AddSystem", "systemSet", std::slice::from_ref(&*self.0)))
    }
}

/// EditSystem input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditSystem {
    /// The system.
    pub name: String,
    /// What changes.
    pub edit: Box<SystemEdit>,
}

impl EditSystem {
    /// Reads `Name` and at least one of `Mac`, `Ip`, `Hostname`, `Group`,
    /// `Power`, `Disk`, `Variables` and `Wipe` (`group`: the group's).
    pub fn parse(params: &QueryParams) -> Result<Self> {
        let name = name_param(params, "Name", "system name")?;
        let edit = SystemEdit {
            mac: params
                .get("Mac")
                .map(|m| mac_param(params, m))
                .transpose()?,
            ip: params.get("Ip").map(|i| ip(params, "Ip", i)).transpose()?,
            hostname: opt_name(params, "Hostname", "host name")?,
            group: opt_name(params, "Group", "group name")?,
            power: params
                .get("Power")
                .map(|v| power_param(params, v))
                .transpose()?,
            disk: params.get("Disk").map(str::to_owned),
            variables: variables_param(params)?,
            wipe: match params.get("Wipe") {
                None => None,
                Some("" | "group") => Some(None),
                Some(w) => Some(Some(wipe_param(w)?)),
            },
        };
        if edit == SystemEdit::default() {
            return Err(MetalApiError::Invalid(
                "nothing to change: give Mac, Ip, Hostname, Group, Power, Disk, Variables or Wipe"
                    .into(),
            ));
        }
        Ok(Self {
            name,
            edit: Box::new(edit),
        })
    }

    /// Changes the system and answers with it.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let s = inventory::edit_system(ctx.metal, &self.name, *self.edit).await?;
        Ok(ctx.respond_systems("EditSystem", "systemSet", &[s]))
    }
}

/// RemoveSystem input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveSystem {
    /// The system.
    pub name: String,
}

impl RemoveSystem {
    /// Reads `Name`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self {
            name: name_param(params, "Name", "system name")?,
        })
    }

    /// Removes the system.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        inventory::remove_system(ctx.metal, &self.name).await?;
        Ok(ctx.respond_true("RemoveSystem"))
    }
}

/// ConfirmPoweredOff input: the system the operator switched off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmPoweredOff(pub Target);

impl ConfirmPoweredOff {
    /// Reads `Name` or `Ip`.
    pub fn parse(params: &QueryParams) -> Result<Self> {
        Ok(Self(target(params)?))
    }

    /// Tells the engine and answers with the system.
    pub async fn execute(self, ctx: &MetalContext<'_>) -> Result<String> {
        let s = inventory::confirm_powered_off(ctx.metal, &self.0).await?;
        Ok(ctx.respond_systems("ConfirmPoweredOff", "systemSet", &[s]))
    }
}
