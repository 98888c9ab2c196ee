//! The instance-type table (configuration: Eucalyptus 4's defaults plus the
//! t2/m5 names users expect, overridable by `instance-types.json` in the data
//! directory) and DescribeInstanceTypes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::api::filter::{self, Filter, Filterable, parse_filters};
use crate::api::pagination::PageRequest;
use crate::api::query::QueryParams;

use super::{Ec2Context, Ec2Error};
use crate::metal::ec2::MetalType;

/// One instance type: the resources an instance of it gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceType {
    /// Name (`m1.small`).
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Root/ephemeral disk in GiB.
    pub disk_gib: u32,
}

/// The configured instance types, in the order they are listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceTypes {
    types: Vec<InstanceType>,
}

/// Eucalyptus 4's default table, then current-generation names.
const DEFAULTS: &[(&str, u32, u32, u32)] = &[
    ("t1.micro", 1, 256, 5),
    ("m1.small", 1, 256, 5),
    ("m1.medium", 1, 512, 10),
    ("c1.medium", 2, 512, 10),
    ("m1.large", 2, 512, 10),
    ("m1.xlarge", 2, 1024, 10),
    ("c1.xlarge", 2, 2048, 10),
    ("m2.xlarge", 2, 2048, 10),
    ("m3.xlarge", 4, 2048, 15),
    ("m2.2xlarge", 2, 4096, 30),
    ("m3.2xlarge", 4, 4096, 30),
    ("cc1.4xlarge", 8, 3072, 60),
    ("m2.4xlarge", 8, 4096, 60),
    ("hi1.4xlarge", 8, 6144, 120),
    ("cc2.8xlarge", 16, 6144, 120),
    ("t2.nano", 1, 512, 8),
    ("t2.micro", 1, 1024, 8),
    ("t2.small", 1, 2048, 8),
    ("t2.medium", 2, 4096, 8),
    ("t2.large", 2, 8192, 8),
    ("m5.large", 2, 8192, 8),
    ("m5.xlarge", 4, 16384, 8),
    ("m5.2xlarge", 8, 32768, 8),
];

/// File in the data directory that replaces the default table.
pub const OVERRIDE_FILE: &str = "instance-types.json";

impl Default for InstanceTypes {
    fn default() -> Self {
        Self {
            types: DEFAULTS
                .iter()
                .map(|&(name, vcpus, memory_mib, disk_gib)| InstanceType {
                    name: name.into(),
                    vcpus,
                    memory_mib,
                    disk_gib,
                })
                .collect(),
        }
    }
}

/// Errors loading the instance-type file.
#[derive(Debug, thiserror::Error)]
pub enum InstanceTypesError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The file is not a JSON list of instance types.
    #[error("invalid instance types in {path}: {reason}")]
    Invalid {
        /// File.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl InstanceTypes {
    /// The table from `data_dir/instance-types.json` when present, else the
    /// defaults.
    pub fn load(data_dir: &Path) -> Result<Self, InstanceTypesError> {
        let path = data_dir.join(OVERRIDE_FILE);
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(InstanceTypesError::Read {
                    path: shown,
                    source,
                });
            }
        };
        let types: Vec<InstanceType> =
            serde_json::from_str(&text).map_err(|e| InstanceTypesError::Invalid {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
        let mut names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        if types.is_empty()
            || names.windows(2).any(|w| w[0] == w[1])
            || types.iter().any(|t| t.vcpus == 0 || t.memory_mib == 0)
        {
            return Err(InstanceTypesError::Invalid {
                path: shown,
                reason: "need a non-empty list of uniquely named types with vcpus and memory_mib above zero".into(),
            });
        }
        Ok(Self { types })
    }

    /// Every type, in table order.
    pub fn all(&self) -> &[InstanceType] {
        &self.types
    }

    /// A type by name.
    pub fn get(&self, name: &str) -> Option<&InstanceType> {
        self.types.iter().find(|t| t.name == name)
    }
}

fn current_generation(name: &str) -> bool {
    name.starts_with("t2.") || name.starts_with("m5.")
}

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
            "burstable-performance-supported" => one(self.name.starts_with("t").to_string()),
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

    /// Lists the matching types, sorted by name: the table's, and the
    /// bare-metal zone's (one per inventory group) when it is enabled.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let table = &ctx.cloud.instance_types;
        let metal = match ctx.cloud.compute.metal.get() {
            Some(metal) => crate::metal::ec2::instance_types(metal).await?,
            None => Vec::new(),
        };
        let rows: Vec<Row<'_>> = table
            .all()
            .iter()
            .map(Row::Vm)
            .chain(metal.iter().map(Row::Metal))
            .collect();
        let unknown: Vec<&str> = self
            .names
            .iter()
            .filter(|n| !rows.iter().any(|r| r.name() == n.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(Ec2Error::InvalidInstanceType(unknown.join(", ")));
        }
        let mut matching: Vec<&Row<'_>> = rows
            .iter()
            .filter(|t| self.names.is_empty() || self.names.iter().any(|n| n == t.name()))
            .filter(|t| filter::matches(&self.filters, *t))
            .collect();
        matching.sort_by(|a, b| a.name().cmp(b.name()));
        let (page, next) = self.page.apply(matching, |t| t.name().to_owned());
        Ok(ctx.respond("DescribeInstanceTypes", |w| {
            w.items("instanceTypeSet", page, |w, row| match row {
                Row::Vm(t) => write_instance_type(w, t),
                Row::Metal(t) => write_metal_type(w, t),
            });
            w.opt_text("nextToken", next);
        }))
    }
}

/// A row of DescribeInstanceTypes.
enum Row<'a> {
    /// A virtual machine type of the table.
    Vm(&'a InstanceType),
    /// A bare-metal type (a group of machines).
    Metal(&'a MetalType),
}

impl Row<'_> {
    fn name(&self) -> &str {
        match self {
            Self::Vm(t) => &t.name,
            Self::Metal(t) => &t.name,
        }
    }
}

impl Filterable for Row<'_> {
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
fn write_metal_type(w: &mut crate::api::xml::XmlWriter, t: &MetalType) {
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

fn write_instance_type(w: &mut crate::api::xml::XmlWriter, t: &InstanceType) {
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
    w.text("burstablePerformanceSupported", t.name.starts_with('t'));
    w.text("dedicatedHostsSupported", false);
    w.text("autoRecoverySupported", false);
    w.elem("supportedBootModes", |w| w.text("item", "legacy-bios"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_include_eucalyptus_and_current_names() {
        let t = InstanceTypes::default();
        assert_eq!(
            t.get("m1.small")
                .map(|t| (t.vcpus, t.memory_mib, t.disk_gib)),
            Some((1, 256, 5))
        );
        assert!(t.get("cc2.8xlarge").is_some());
        assert!(t.get("t2.micro").is_some());
        assert!(t.get("m5.large").is_some());
    }

    #[test]
    fn override_file_replaces_table_and_is_validated() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(OVERRIDE_FILE),
            r#"[{"name":"x.big","vcpus":2,"memory_mib":512,"disk_gib":3}]"#,
        )
        .expect("write");
        let t = InstanceTypes::load(dir.path()).expect("load");
        assert_eq!(t.all().len(), 1);
        std::fs::write(dir.path().join(OVERRIDE_FILE), "[]").expect("write");
        assert!(InstanceTypes::load(dir.path()).is_err());
        assert_eq!(
            InstanceTypes::load(&dir.path().join("absent")).expect("defaults"),
            InstanceTypes::default()
        );
    }
}
