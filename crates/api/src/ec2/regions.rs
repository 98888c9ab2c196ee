//! DescribeRegions, DescribeAvailabilityZones (with Eucalyptus' `verbose`
//! capacity table for administrators) and DescribeAccountAttributes.

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::query::QueryParams;
use mallee_cloud::instances::capacity::ZoneCapacity;

use super::{Ec2Context, Ec2Error};

/// DescribeRegions input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeRegions {
    names: Vec<String>,
    filters: Vec<Filter>,
}

struct RegionView<'a> {
    name: &'a str,
    endpoint: &'a str,
}

impl Filterable for RegionView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        Some(vec![match name {
            "region-name" => self.name.to_owned(),
            "endpoint" => self.endpoint.to_owned(),
            "opt-in-status" => "opt-in-not-required".to_owned(),
            _ => return None,
        }])
    }
}

impl DescribeRegions {
    /// Reads `RegionName.N`, `Filter.N`, `AllRegions`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        params.bool("AllRegions")?;
        let filters = parse_filters(params)?;
        filter::validate_names(
            &filters,
            &["endpoint", "region-name", "opt-in-status"],
            false,
        )?;
        Ok(Self {
            names: params.list("RegionName")?,
            filters,
        })
    }

    /// Lists the cloud's region.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let config = &ctx.cloud.config;
        let region = RegionView {
            name: &config.region,
            endpoint: &config.ec2_url(),
        };
        if let Some(unknown) = self.names.iter().find(|n| **n != config.region) {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Invalid region: {unknown}"
            )));
        }
        let regions: Vec<_> = std::iter::once(region)
            .filter(|r| filter::matches(&self.filters, r))
            .collect();
        Ok(ctx.respond("DescribeRegions", |w| {
            w.items("regionInfo", regions, |w, r| {
                w.text("regionName", r.name);
                w.text("regionEndpoint", r.endpoint);
                w.text("optInStatus", "opt-in-not-required");
            })
        }))
    }
}

/// DescribeAvailabilityZones input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeAvailabilityZones {
    names: Vec<String>,
    ids: Vec<String>,
    filters: Vec<Filter>,
}

struct ZoneView<'a> {
    name: String,
    id: String,
    region: &'a str,
    /// Bare metal: the message that says so (its machine classes).
    metal: Option<String>,
}

impl Filterable for ZoneView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "zone-name" => vec![self.name.clone()],
            "zone-id" => vec![self.id.clone()],
            "region-name" | "group-name" | "network-border-group" => vec![self.region.to_owned()],
            "state" => vec!["available".to_owned()],
            "zone-type" => vec!["availability-zone".to_owned()],
            "opt-in-status" => vec!["opt-in-not-required".to_owned()],
            "message" => self.metal.iter().cloned().collect(),
            _ => return None,
        })
    }
}

const ZONE_FILTERS: &[&str] = &[
    "zone-name",
    "zone-id",
    "region-name",
    "group-name",
    "network-border-group",
    "state",
    "zone-type",
    "opt-in-status",
    "message",
];

impl DescribeAvailabilityZones {
    /// Reads `ZoneName.N`, `ZoneId.N`, `Filter.N`, `AllAvailabilityZones`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        params.bool("AllAvailabilityZones")?;
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, ZONE_FILTERS, false)?;
        Ok(Self {
            names: params.list("ZoneName")?,
            ids: params.list("ZoneId")?,
            filters,
        })
    }

    /// Lists zones; administrators asking for `verbose` also get the
    /// per-instance-type free / max table computed from node capacity.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let config = &ctx.cloud.config;
        let verbose = self.names.iter().any(|n| n == "verbose") && ctx.principal.account.is_admin;
        let names: Vec<&String> = self.names.iter().filter(|n| *n != "verbose").collect();
        let mut zones: Vec<ZoneView<'_>> = config
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| ZoneView {
                name: z.clone(),
                id: config.zone_id(i),
                region: &config.region,
                metal: None,
            })
            .collect();
        if let Some(metal) = ctx.cloud.compute.metal.get() {
            let types = mallee_cloud::metal::zone::instance_types(metal).await?;
            let classes: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
            zones.push(ZoneView {
                name: mallee_cloud::metal::zone::zone_name(config),
                id: mallee_cloud::metal::zone::zone_id(config),
                region: &config.region,
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
            .filter(|n| !zones.iter().any(|z| z.name == n.as_str()))
            .map(|n| n.as_str())
            .chain(
                self.ids
                    .iter()
                    .filter(|i| !zones.iter().any(|z| z.id == **i))
                    .map(String::as_str),
            )
            .collect();
        if !unknown.is_empty() {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Invalid availability zone: [{}]",
                unknown.join(", ")
            )));
        }
        let selected: Vec<ZoneView<'_>> = zones
            .into_iter()
            .filter(|z| names.is_empty() || names.iter().any(|n| n.as_str() == z.name))
            .filter(|z| self.ids.is_empty() || self.ids.contains(&z.id))
            .filter(|z| filter::matches(&self.filters, z))
            .collect();
        let mut capacities = Vec::new();
        if verbose {
            for zone in selected.iter().filter(|z| z.metal.is_none()) {
                capacities.push(ctx.cloud.zone_capacity(&zone.name).await?);
            }
        }
        Ok(ctx.respond("DescribeAvailabilityZones", |w| {
            w.elem("availabilityZoneInfo", |w| {
                for (i, zone) in selected.iter().enumerate() {
                    w.elem("item", |w| {
                        w.text("zoneName", &zone.name);
                        w.text("zoneState", "available");
                        w.text("regionName", zone.region);
                        w.elem("messageSet", |w| {
                            if let Some(message) = &zone.metal {
                                w.elem("item", |w| w.text("message", message));
                            }
                        });
                        w.text("zoneId", &zone.id);
                        w.text("zoneType", "availability-zone");
                        w.text("optInStatus", "opt-in-not-required");
                        w.text("groupName", zone.region);
                        w.text("networkBorderGroup", zone.region);
                    });
                    if let Some(capacity) = capacities.get(i) {
                        write_capacity_rows(w, &ctx.cloud.instance_types, capacity);
                    }
                }
            })
        }))
    }
}

/// Eucalyptus' verbose rows: a header, then `free / max cpu ram disk` per
/// instance type, as `euca-describe-availability-zones verbose` prints them.
fn write_capacity_rows(
    w: &mut crate::xml::XmlWriter,
    types: &mallee_cloud::instances::types::InstanceTypes,
    capacity: &ZoneCapacity,
) {
    let mut row = |name: &str, state: String| {
        w.elem("item", |w| {
            w.text("zoneName", name);
            w.text("zoneState", state);
        })
    };
    row("|- vm types", "free / max   cpu   ram  disk".to_owned());
    for t in types.all() {
        let (free, max) = capacity.fits(t.vcpus, t.memory_mib, t.disk_gib);
        row(
            &format!("|- {}", t.name),
            format!(
                "{free:04} / {max:04} {:>3} {:>6} {:>5}",
                t.vcpus, t.memory_mib, t.disk_gib
            ),
        );
    }
}

/// DescribeAccountAttributes input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeAccountAttributes {
    names: Vec<String>,
}

const ACCOUNT_ATTRIBUTES: &[&str] = &[
    "supported-platforms",
    "default-vpc",
    "max-instances",
    "vpc-max-security-groups-per-interface",
    "max-elastic-ips",
    "vpc-max-elastic-ips",
];

impl DescribeAccountAttributes {
    /// Reads `AttributeName.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let names = params.list("AttributeName")?;
        if let Some(bad) = names
            .iter()
            .find(|n| !ACCOUNT_ATTRIBUTES.contains(&n.as_str()))
        {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({bad}) for parameter attributeName is invalid. Unknown attribute."
            )));
        }
        Ok(Self { names })
    }

    /// Reports the account's limits, platform and default VPC (created if
    /// the account has none yet).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let limits = &ctx.cloud.config.account_limits;
        let wants_vpc = self.names.is_empty() || self.names.iter().any(|n| n == "default-vpc");
        let default_vpc = if wants_vpc {
            mallee_cloud::vpcs::default_vpc(ctx.cloud, &ctx.principal.account.account_id)
                .await?
                .vpc
                .vpc_id
        } else {
            String::new()
        };
        let value = |name: &str| -> String {
            match name {
                "supported-platforms" => "VPC".into(),
                "default-vpc" => default_vpc.clone(),
                "max-instances" => limits.max_instances.to_string(),
                "vpc-max-security-groups-per-interface" => {
                    limits.max_security_groups_per_interface.to_string()
                }
                _ => limits.max_elastic_ips.to_string(),
            }
        };
        let selected: Vec<&str> = ACCOUNT_ATTRIBUTES
            .iter()
            .copied()
            .filter(|a| self.names.is_empty() || self.names.iter().any(|n| n == a))
            .collect();
        Ok(ctx.respond("DescribeAccountAttributes", |w| {
            w.items("accountAttributeSet", selected, |w, name| {
                w.text("attributeName", name);
                w.items("attributeValueSet", [value(name)], |w, v| {
                    w.text("attributeValue", v)
                });
            })
        }))
    }
}
