//! The region, its availability zones and what they offer: the configured
//! zones and, when provisioning is enabled, the bare-metal zone; zones
//! named by name or by id; the room each zone has for each instance type
//! (for administrators); and the instance types on offer (the table's and
//! the bare-metal zone's).

use crate::config::Config;
use crate::instances::types::InstanceType;
use crate::metal::names as metal_names;
use crate::metal::zone::{self as metal_zone, MetalType};
use crate::{Cloud, CloudError, Kind, Principal};

/// The cloud's region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// Its name.
    pub name: String,
    /// Its EC2 endpoint.
    pub endpoint: String,
}

/// The regions named by `names` (every region when none): this cloud has
/// one, and another name is refused.
pub fn regions(cloud: &Cloud, names: &[String]) -> Result<Vec<Region>, CloudError> {
    let config = &cloud.config;
    if let Some(unknown) = names.iter().find(|n| **n != config.region) {
        return Err(CloudError::invalid(format!("Invalid region: {unknown}")));
    }
    Ok(vec![Region {
        name: config.region.clone(),
        endpoint: config.ec2_url(),
    }])
}

/// An availability zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// For the bare-metal zone, the message that says so (with its
    /// instance types); `None` for the zones of virtual machines.
    pub metal: Option<String>,
}

/// A zone as a request names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneRef {
    /// By name (`mallee-1a`).
    Name(String),
    /// By id (`mallee-1-az1`).
    Id(String),
}

/// The refusal of zones that do not exist.
fn invalid_zones(names: &[&str]) -> CloudError {
    CloudError::invalid(format!("Invalid availability zone: [{}]", names.join(", ")))
}

/// The zones named by `names` and `ids` (every zone when neither names
/// any); a name or id that is no zone's is refused.
pub async fn list(
    cloud: &Cloud,
    names: &[String],
    ids: &[String],
) -> Result<Vec<Zone>, CloudError> {
    let config = &cloud.config;
    let mut zones: Vec<Zone> = config
        .zones
        .iter()
        .enumerate()
        .map(|(i, z)| Zone {
            name: z.clone(),
            id: config.zone_id(i),
            metal: None,
        })
        .collect();
    if let Some(metal) = cloud.compute.metal.get() {
        let types = metal_zone::instance_types(metal).await?;
        let classes: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        zones.push(Zone {
            name: metal_names::zone_name(config),
            id: metal_names::zone_id(config),
            metal: Some(format!(
                "bare-metal zone: instance types {}",
                if classes.is_empty() {
                    "(none yet)".to_owned()
                } else {
                    classes.join(", ")
                }
            )),
        });
    }
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !zones.iter().any(|z| z.name == **n))
        .chain(ids.iter().filter(|i| !zones.iter().any(|z| z.id == **i)))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(invalid_zones(&unknown));
    }
    Ok(zones
        .into_iter()
        .filter(|z| names.is_empty() || names.contains(&z.name))
        .filter(|z| ids.is_empty() || ids.contains(&z.id))
        .collect())
}

/// How many instances of one type a zone has room for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeCapacity {
    /// The type.
    pub instance_type: InstanceType,
    /// Instances that fit in what the zone's nodes have free now.
    pub free: u64,
    /// Instances that fit in the nodes when empty.
    pub max: u64,
}

/// The room of `zone` for each instance type, from its nodes' latest
/// reports: for administrators only (`None` for anyone else), and not for
/// the bare-metal zone, whose machines are counted by group.
pub async fn capacity(
    cloud: &Cloud,
    caller: &Principal,
    zone: &Zone,
) -> Result<Option<Vec<TypeCapacity>>, CloudError> {
    if !caller.account.is_admin || zone.metal.is_some() {
        return Ok(None);
    }
    let capacity = cloud.zone_capacity(&zone.name).await?;
    Ok(Some(
        cloud
            .instance_types
            .all()
            .iter()
            .map(|t| {
                let (free, max) = capacity.fits(t.vcpus, t.memory_mib, t.disk_gib);
                TypeCapacity {
                    instance_type: t.clone(),
                    free,
                    max,
                }
            })
            .collect(),
    ))
}

/// An instance type on offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// A virtual machine type of the table.
    Vm(InstanceType),
    /// A bare-metal type (a group of machines).
    Metal(MetalType),
}

impl Offered {
    /// The type's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Vm(t) => &t.name,
            Self::Metal(t) => &t.name,
        }
    }
}

/// The instance types named by `names` (every one when none), sorted by
/// name: the table's, and the bare-metal zone's (one per inventory group)
/// when it is enabled. A name that is no type's is refused.
pub async fn instance_types(cloud: &Cloud, names: &[String]) -> Result<Vec<Offered>, CloudError> {
    let metal = match cloud.compute.metal.get() {
        Some(metal) => metal_zone::instance_types(metal).await?,
        None => Vec::new(),
    };
    let mut offered: Vec<Offered> = cloud
        .instance_types
        .all()
        .iter()
        .cloned()
        .map(Offered::Vm)
        .chain(metal.into_iter().map(Offered::Metal))
        .collect();
    let unknown: Vec<&str> = names
        .iter()
        .filter(|n| !offered.iter().any(|t| t.name() == n.as_str()))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(CloudError::not_found(
            Kind::InstanceType,
            format!(
                "The following supplied instance types do not exist: [{}]",
                unknown.join(", ")
            ),
        ));
    }
    offered.retain(|t| names.is_empty() || names.iter().any(|n| n == t.name()));
    offered.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(offered)
}

/// The name of the configured zone `zone` refers to (the bare-metal zone
/// has no volumes, so is not one).
pub fn resolve(config: &Config, zone: &ZoneRef) -> Result<String, CloudError> {
    let found = match zone {
        ZoneRef::Id(id) => config
            .zones
            .iter()
            .enumerate()
            .find(|(i, _)| config.zone_id(*i) == *id)
            .map(|(_, z)| z.clone()),
        ZoneRef::Name(name) => config.zones.iter().find(|z| *z == name).cloned(),
    };
    found.ok_or_else(|| {
        let (ZoneRef::Id(given) | ZoneRef::Name(given)) = zone;
        invalid_zones(&[given])
    })
}

/// The id of the configured zone `name` (empty for a zone not
/// configured).
pub fn zone_id(config: &Config, name: &str) -> String {
    config
        .zones
        .iter()
        .position(|z| z == name)
        .map(|i| config.zone_id(i))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_resolve_by_name_or_id() {
        let mut config = Config::new("127.0.0.1:0".parse().expect("addr"), "/tmp".into());
        config.zones = vec!["mallee-1a".into(), "mallee-1b".into()];
        let by_id = resolve(&config, &ZoneRef::Id("mallee-1-az2".into()));
        assert_eq!(by_id, Ok("mallee-1b".into()));
        let by_name = resolve(&config, &ZoneRef::Name("mallee-1a".into()));
        assert_eq!(by_name, Ok("mallee-1a".into()));
        let unknown = resolve(&config, &ZoneRef::Name("mallee-1z".into())).expect_err("unknown");
        assert_eq!(
            unknown.to_string(),
            "Invalid availability zone: [mallee-1z]"
        );
        assert!(resolve(&config, &ZoneRef::Id("mallee-1-az3".into())).is_err());
        assert_eq!(zone_id(&config, "mallee-1b"), "mallee-1-az2");
        assert_eq!(zone_id(&config, "elsewhere"), "");
    }

    #[tokio::test]
    async fn zones_and_their_room() {
        let cloud = crate::testkit::TestCloud::with_config(|c| {
            c.zones = vec!["mallee-1a".into(), "mallee-1b".into()];
        })
        .await;
        cloud
            .add_node(crate::testkit::node("n", "mallee-1a", 2, 1024, 20))
            .await;
        let all = list(&cloud, &[], &[]).await.expect("zones");
        let names: Vec<&str> = all.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(names, ["mallee-1a", "mallee-1b"]);
        let by_id = list(&cloud, &[], &["mallee-1-az2".into()])
            .await
            .expect("b");
        assert_eq!(by_id, [all[1].clone()]);
        let unknown = list(&cloud, &["mallee-1z".into()], &["x".into()]).await;
        assert_eq!(
            unknown,
            Err(CloudError::invalid(
                "Invalid availability zone: [mallee-1z, x]"
            ))
        );
        let admin = crate::testkit::principal(&cloud, "admin", true).await;
        let user = cloud.principal("user").await;
        assert_eq!(capacity(&cloud, &user, &all[0]).await, Ok(None));
        let rows = capacity(&cloud, &admin, &all[0])
            .await
            .expect("capacity")
            .expect("an administrator sees it");
        let micro = rows
            .iter()
            .find(|r| r.instance_type.name == "t1.micro")
            .expect("t1.micro");
        // Two cores of 256 MiB and 5 GiB instances: cores run out first.
        assert_eq!((micro.free, micro.max), (2, 2));
        assert!(regions(&cloud, &["elsewhere".into()]).is_err());
        assert_eq!(regions(&cloud, &[]).expect("region")[0].name, "mallee-1");
    }

    #[tokio::test]
    async fn instance_types_by_name() {
        let cloud = crate::testkit::TestCloud::new().await;
        let all = instance_types(&cloud, &[]).await.expect("types");
        assert!(all.windows(2).all(|w| w[0].name() <= w[1].name()));
        let named = instance_types(&cloud, &["t2.micro".into(), "m1.small".into()])
            .await
            .expect("named");
        let names: Vec<&str> = named.iter().map(Offered::name).collect();
        assert_eq!(names, ["m1.small", "t2.micro"]);
        assert!(matches!(
            instance_types(&cloud, &["x1.huge".into()]).await,
            Err(CloudError::NotFound {
                kind: Kind::InstanceType,
                ..
            })
        ));
    }
}
