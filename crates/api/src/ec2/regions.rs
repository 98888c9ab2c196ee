//! DescribeRegions, DescribeAvailabilityZones (with Eucalyptus' `verbose`
//! capacity table for administrators) and DescribeAccountAttributes on the
//! wire. The region, its zones and their room are `mallee_cloud::zones`;
//! the account's attributes are `mallee_cloud::account_attributes`.

use mallee_cloud::account_attributes;
use mallee_cloud::zones::{self, Region, TypeCapacity, Zone};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::query::QueryParams;

use super::{Ec2Context, Ec2Error};

/// DescribeRegions input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeRegions {
    names: Vec<String>,
    filters: Vec<Filter>,
}

impl Filterable for Region {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        Some(vec![match name {
            "region-name" => self.name.clone(),
            "endpoint" => self.endpoint.clone(),
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
        let regions: Vec<Region> = zones::regions(ctx.cloud, &self.names)?
            .into_iter()
            .filter(|r| filter::matches(&self.filters, r))
            .collect();
        Ok(ctx.respond("DescribeRegions", |w| {
            w.items("regionInfo", regions, |w, r| {
                w.text("regionName", &r.name);
                w.text("regionEndpoint", &r.endpoint);
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
    zone: Zone,
    region: &'a str,
}

impl Filterable for ZoneView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "zone-name" => vec![self.zone.name.clone()],
            "zone-id" => vec![self.zone.id.clone()],
            "region-name" | "group-name" | "network-border-group" => vec![self.region.to_owned()],
            "state" => vec!["available".to_owned()],
            "zone-type" => vec!["availability-zone".to_owned()],
            "opt-in-status" => vec!["opt-in-not-required".to_owned()],
            "message" => self.zone.metal.iter().cloned().collect(),
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

    /// Lists zones; administrators asking for `verbose` (a zone name to
    /// Eucalyptus' tools) also get the per-instance-type free / max table
    /// computed from node capacity.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let verbose = self.names.iter().any(|n| n == "verbose");
        let names: Vec<String> = self
            .names
            .iter()
            .filter(|n| *n != "verbose")
            .cloned()
            .collect();
        let region = ctx.cloud.config.region.as_str();
        let selected: Vec<ZoneView<'_>> = zones::list(ctx.cloud, &names, &self.ids)
            .await?
            .into_iter()
            .map(|zone| ZoneView { zone, region })
            .filter(|z| filter::matches(&self.filters, z))
            .collect();
        let mut capacities = Vec::new();
        if verbose {
            for view in &selected {
                capacities.push(zones::capacity(ctx.cloud, ctx.principal, &view.zone).await?);
            }
        }
        Ok(ctx.respond("DescribeAvailabilityZones", |w| {
            w.elem("availabilityZoneInfo", |w| {
                for (i, view) in selected.iter().enumerate() {
                    let zone = &view.zone;
                    w.elem("item", |w| {
                        w.text("zoneName", &zone.name);
                        w.text("zoneState", "available");
                        w.text("regionName", region);
                        w.elem("messageSet", |w| {
                            if let Some(message) = &zone.metal {
                                w.elem("item", |w| w.text("message", message));
                            }
                        });
                        w.text("zoneId", &zone.id);
                        w.text("zoneType", "availability-zone");
                        w.text("optInStatus", "opt-in-not-required");
                        w.text("groupName", region);
                        w.text("networkBorderGroup", region);
                    });
                    if let Some(Some(rows)) = capacities.get(i) {
                        write_capacity_rows(w, rows);
                    }
                }
            })
        }))
    }
}

/// Eucalyptus' verbose rows: a header, then `free / max cpu ram disk` per
/// instance type, as `euca-describe-availability-zones verbose` prints them.
fn write_capacity_rows(w: &mut crate::xml::XmlWriter, rows: &[TypeCapacity]) {
    let mut row = |name: &str, state: String| {
        w.elem("item", |w| {
            w.text("zoneName", name);
            w.text("zoneState", state);
        })
    };
    row("|- vm types", "free / max   cpu   ram  disk".to_owned());
    for TypeCapacity {
        instance_type: t,
        free,
        max,
    } in rows
    {
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

impl DescribeAccountAttributes {
    /// Reads `AttributeName.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let names = params.list("AttributeName")?;
        account_attributes::validate_names(&names)?;
        Ok(Self { names })
    }

    /// Reports the account's limits, platform and default VPC (created if
    /// the account has none yet).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let selected =
            account_attributes::attributes(ctx.cloud, ctx.principal, &self.names).await?;
        Ok(ctx.respond("DescribeAccountAttributes", |w| {
            w.items("accountAttributeSet", selected, |w, (name, value)| {
                w.text("attributeName", name);
                w.items("attributeValueSet", [value], |w, v| {
                    w.text("attributeValue", v)
                });
            })
        }))
    }
}
