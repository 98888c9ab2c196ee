//! Where each instance type is offered (DescribeInstanceTypeOfferings):
//! in the region, in each zone by name, or in each zone by id. Every
//! virtual-machine type of the table runs in every zone of virtual
//! machines; the bare-metal zone offers its own types (one per group of
//! machines) and nothing else.

use crate::zones::{self, Offered};
use crate::{Cloud, CloudError};

/// How offerings name their location (`LocationType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationType {
    /// The region.
    Region,
    /// A zone, by name.
    AvailabilityZone,
    /// A zone, by id.
    AvailabilityZoneId,
}

impl LocationType {
    /// EC2's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Region => "region",
            Self::AvailabilityZone => "availability-zone",
            Self::AvailabilityZoneId => "availability-zone-id",
        }
    }

    /// Parses EC2's name.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Region,
            Self::AvailabilityZone,
            Self::AvailabilityZoneId,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }
}

/// One instance type offered in one location.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Offering {
    /// The type's name.
    pub instance_type: String,
    /// The region's or zone's name, or the zone's id.
    pub location: String,
}

/// Every offering for `location_type`, sorted by type then location.
pub async fn offerings(
    cloud: &Cloud,
    location_type: LocationType,
) -> Result<Vec<Offering>, CloudError> {
    let types = zones::instance_types(cloud, &[]).await?;
    let zones = zones::list(cloud, &[], &[]).await?;
    let mut found = Vec::new();
    for offered in &types {
        let metal = matches!(offered, Offered::Metal(_));
        let mut locations: Vec<String> = match location_type {
            LocationType::Region => vec![cloud.config.region.clone()],
            LocationType::AvailabilityZone | LocationType::AvailabilityZoneId => zones
                .iter()
                .filter(|z| z.metal.is_some() == metal)
                .map(|z| {
                    if location_type == LocationType::AvailabilityZone {
                        z.name.clone()
                    } else {
                        z.id.clone()
                    }
                })
                .collect(),
        };
        locations.sort();
        found.extend(locations.into_iter().map(|location| Offering {
            instance_type: offered.name().to_owned(),
            location,
        }));
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCloud;

    #[tokio::test]
    async fn every_type_in_the_region_and_in_every_zone() {
        let tc = TestCloud::with_config(|c| {
            c.zones = vec!["zone-b".into(), "zone-a".into()];
        })
        .await;
        let types = tc.instance_types.all().len();
        let region = offerings(&tc, LocationType::Region).await.expect("region");
        assert_eq!(region.len(), types);
        assert!(region.iter().all(|o| o.location == tc.config.region));
        let by_zone = offerings(&tc, LocationType::AvailabilityZone)
            .await
            .expect("zones");
        assert_eq!(by_zone.len(), 2 * types);
        let t1: Vec<&str> = by_zone
            .iter()
            .filter(|o| o.instance_type == "t1.micro")
            .map(|o| o.location.as_str())
            .collect();
        assert_eq!(t1, ["zone-a", "zone-b"]);
        let by_id = offerings(&tc, LocationType::AvailabilityZoneId)
            .await
            .expect("ids");
        let ids: Vec<String> = (0..2).map(|i| tc.config.zone_id(i)).collect();
        assert!(by_id.iter().all(|o| ids.contains(&o.location)));
        assert_eq!(
            LocationType::from_name("region"),
            Some(LocationType::Region)
        );
        assert_eq!(LocationType::from_name("outpost"), None);
    }
}
