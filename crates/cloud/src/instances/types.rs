//! The instance-type table: Eucalyptus 4's defaults plus the t2/m5 names
//! users expect, overridable by `instance-types.json` in the data directory.

use std::path::Path;

use serde::{Deserialize, Serialize};

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

/// Whether `name` is one of the current-generation types (t2, m5).
pub fn current_generation(name: &str) -> bool {
    name.starts_with("t2.") || name.starts_with("m5.")
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
