//! The region and its availability zones: the configured zones, and the
//! bare-metal zone when provisioning is enabled; zones named by name or by
//! id.

use crate::CloudError;
use crate::config::Config;

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
}
