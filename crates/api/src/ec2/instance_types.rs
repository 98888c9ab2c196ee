//! DescribeInstanceTypes and DescribeInstanceTypeOfferings on the wire:
//! filters, pages and XML over the types on offer
//! (`mallee_cloud::zones::instance_types`: the configured table and the
//! bare-metal zone's types) and where each is offered
//! (`mallee_cloud::instances::offerings`).

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;

use super::{Ec2Context, Ec2Error};
use mallee_cloud::instances::offerings::{self, LocationType, Offering};
use mallee_cloud::instances::types::{InstanceType, current_generation};
use mallee_cloud::metal::zone::MetalType;
use mallee_cloud::zones::{self, Offered};

impl Filterable for InstanceType {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let one = |v: String| Some(vec![v]);
        match name {
            "instance-type" => one(self.name.clone()),
            "current-generation" => one(current_generation(&self.name).to_string()),
            "free-tier-eligible" => one((self.name == "t2.micro").to_string()),
            "hypervisor" => one("kvm".into()),
            "bare-metal" | "hibernation-supported" | "dedicated-hosts-supported" => {
                one("false".into())
            }
            // No CPU credits: every type runs at its full share.
            "burstable-performance-supported" => one("false".into()),
            "vcpu-info.default-vcpus" | "vcpu-info.default-cores" => one(self.vcpus.to_string()),
            "vcpu-info.default-threads-per-core" => one("1".into()),
            "memory-info.size-in-mib" => one(self.memory_mib.to_string()),
            "instance-storage-supported" => one("true".into()),
            "instance-storage-info.total-size-in-gb" => one(self.disk_gib.to_string()),
            "processor-info.supported-architecture" => one("x86_64".into()),
            "supported-virtualization-type" => Some(vec!["hvm".into(), "paravirtual".into()]),
            "supported-root-device-type" => Some(vec!["ebs".into(), "instance-store".into()]),
            "supported-usage-class" => one("on-demand".into()),
            "supported-boot-mode" => one("legacy-bios".into()),
            _ => None,
        }
    }
}

const FILTERS: &[&str] = &[
    "instance-type",
    "current-generation",
    "free-tier-eligible",
    "hypervisor",
    "bare-metal",
    "hibernation-supported",
    "dedicated-hosts-supported",
    "burstable-performance-supported",
    "vcpu-info.default-vcpus",
    "vcpu-info.default-cores",
    "vcpu-info.default-threads-per-core",
    "memory-info.size-in-mib",
    "instance-storage-supported",
    "instance-storage-info.total-size-in-gb",
    "processor-info.supported-architecture",
    "supported-virtualization-type",
    "supported-root-device-type",
    "supported-usage-class",
    "supported-boot-mode",
];

/// DescribeInstanceTypes input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeInstanceTypes {
    names: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeInstanceTypes {
    /// Reads `InstanceType.N`, `Filter.N`, `MaxResults` (5–100), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, FILTERS, false)?;
        Ok(Self {
            names: params.list("InstanceType")?,
            filters,
            page: PageRequest::parse(params, 5, 100)?,
        })
    }

    /// Lists the matching types, sorted by name.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let offered = zones::instance_types(ctx.cloud, &self.names).await?;
        let matching: Vec<&Offered> = offered
            .iter()
            .filter(|t| filter::matches(&self.filters, *t))
            .collect();
        let (page, next) = self.page.apply(matching, |t| t.name().to_owned());
        Ok(ctx.respond("DescribeInstanceTypes", |w| {
            w.items("instanceTypeSet", page, |w, offered| match offered {
                Offered::Vm(t) => write_instance_type(w, t),
                Offered::Metal(t) => write_metal_type(w, t),
            });
            w.opt_text("nextToken", next);
        }))
    }
}

impl Filterable for Offered {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        match self {
            Self::Vm(t) => t.filter_values(name),
            Self::Metal(t) => {
                let one = |v: &str| Some(vec![v.to_owned()]);
                match name {
                    "instance-type" => one(&t.name),
                    "bare-metal" | "current-generation" | "instance-storage-supported" => {
                        one("true")
                    }
                    "free-tier-eligible"
                    | "hibernation-supported"
                    | "dedicated-hosts-supported"
                    | "burstable-performance-supported" => one("false"),
                    "processor-info.supported-architecture" => one("x86_64"),
                    "supported-virtualization-type" => one("hvm"),
                    "supported-root-device-type" => one("instance-store"),
                    "supported-usage-class" => one("on-demand"),
                    "supported-boot-mode" => one("legacy-bios"),
                    // No hypervisor; the machines' sizes are not in the
                    // inventory.
                    n if FILTERS.contains(&n) => Some(Vec::new()),
                    _ => None,
                }
            }
        }
    }
}

/// A bare-metal type: what the inventory knows (its machines' sizes are
/// not recorded, so no vCPU or memory figures are claimed).
fn write_metal_type(w: &mut crate::xml::XmlWriter, t: &MetalType) {
    w.text("instanceType", &t.name);
    w.text("currentGeneration", true);
    w.text("freeTierEligible", false);
    w.elem("supportedUsageClasses", |w| w.text("item", "on-demand"));
    w.elem("supportedRootDeviceTypes", |w| {
        w.text("item", "instance-store")
    });
    w.elem("supportedVirtualizationTypes", |w| w.text("item", "hvm"));
    w.text("bareMetal", true);
    w.elem("processorInfo", |w| {
        w.elem("supportedArchitectures", |w| w.text("item", "x86_64"));
    });
    w.text("instanceStorageSupported", true);
    w.elem("networkInfo", |w| {
        w.text("networkPerformance", "Moderate");
        w.text("maximumNetworkInterfaces", 1);
        w.text("maximumNetworkCards", 1);
        w.text("defaultNetworkCardIndex", 0);
        w.text("ipv4AddressesPerInterface", 1);
        w.text("ipv6AddressesPerInterface", 0);
        w.text("ipv6Supported", false);
    });
    w.text("hibernationSupported", false);
    w.text("burstablePerformanceSupported", false);
    w.text("dedicatedHostsSupported", false);
    w.text("autoRecoverySupported", false);
    w.elem("supportedBootModes", |w| w.text("item", "legacy-bios"));
}

fn write_instance_type(w: &mut crate::xml::XmlWriter, t: &InstanceType) {
    w.text("instanceType", &t.name);
    w.text("currentGeneration", current_generation(&t.name));
    w.text("freeTierEligible", t.name == "t2.micro");
    w.elem("supportedUsageClasses", |w| w.text("item", "on-demand"));
    w.elem("supportedRootDeviceTypes", |w| {
        w.text("item", "ebs");
        w.text("item", "instance-store");
    });
    w.elem("supportedVirtualizationTypes", |w| {
        w.text("item", "hvm");
        w.text("item", "paravirtual");
    });
    w.text("bareMetal", false);
    w.text("hypervisor", "kvm");
    w.elem("processorInfo", |w| {
        w.elem("supportedArchitectures", |w| w.text("item", "x86_64"));
    });
    w.elem("vCpuInfo", |w| {
        w.text("defaultVCpus", t.vcpus);
        w.text("defaultCores", t.vcpus);
        w.text("defaultThreadsPerCore", 1);
    });
    w.elem("memoryInfo", |w| w.text("sizeInMiB", t.memory_mib));
    w.text("instanceStorageSupported", true);
    w.elem("instanceStorageInfo", |w| {
        w.text("totalSizeInGB", t.disk_gib);
        w.items("disks", [t.disk_gib], |w, size| {
            w.text("sizeInGB", size);
            w.text("count", 1);
            w.text("type", "hdd");
        });
        w.text("nvmeSupport", "unsupported");
    });
    w.elem("ebsInfo", |w| {
        w.text("ebsOptimizedSupport", "unsupported");
        w.text("encryptionSupport", "unsupported");
        w.text("nvmeSupport", "unsupported");
    });
    w.elem("networkInfo", |w| {
        w.text("networkPerformance", "Moderate");
        w.text("maximumNetworkInterfaces", 1);
        w.text("maximumNetworkCards", 1);
        w.text("defaultNetworkCardIndex", 0);
        w.text("ipv4AddressesPerInterface", 1);
        w.text("ipv6AddressesPerInterface", 0);
        w.text("ipv6Supported", false);
        w.text("enaSupport", "unsupported");
        w.text("efaSupported", false);
        w.text("encryptionInTransitSupported", false);
    });
    w.text("hibernationSupported", false);
    w.text("burstablePerformanceSupported", false);
    w.text("dedicatedHostsSupported", false);
    w.text("autoRecoverySupported", false);
    w.elem("supportedBootModes", |w| w.text("item", "legacy-bios"));
}

// ------------------------------------------- DescribeInstanceTypeOfferings

impl Filterable for Offering {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        match name {
            "instance-type" => Some(vec![self.instance_type.clone()]),
            "location" => Some(vec![self.location.clone()]),
            _ => None,
        }
    }
}

/// DescribeInstanceTypeOfferings input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeInstanceTypeOfferings {
    location_type: LocationType,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeInstanceTypeOfferings {
    /// Reads `LocationType` (`region`, the default, `availability-zone` or
    /// `availability-zone-id`), `Filter.N` (`instance-type`, `location`),
    /// `MaxResults` (5–1000) and `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, &["instance-type", "location"], false)?;
        let location_type = match params.get("LocationType") {
            None => LocationType::Region,
            Some(given) => LocationType::from_name(given).ok_or_else(|| {
                Ec2Error::InvalidParameterValue(format!(
                    "Value ({given}) for parameter locationType is invalid. Valid values: region, availability-zone, availability-zone-id"
                ))
            })?,
        };
        Ok(Self {
            location_type,
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// The matching offerings, sorted by type then location.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let all = offerings::offerings(ctx.cloud, self.location_type).await?;
        let matching: Vec<Offering> = all
            .into_iter()
            .filter(|o| filter::matches(&self.filters, o))
            .collect();
        let (page, next) = self.page.apply(matching, |o| {
            format!("{}\u{1f}{}", o.instance_type, o.location)
        });
        let location_type = self.location_type.name();
        Ok(ctx.respond("DescribeInstanceTypeOfferings", |w| {
            w.items("instanceTypeOfferingSet", page, |w, o| {
                w.text("instanceType", &o.instance_type);
                w.text("locationType", location_type);
                w.text("location", &o.location);
            });
            w.opt_text("nextToken", next);
        }))
    }
}
