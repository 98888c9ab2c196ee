//! Volume types (`gp2`, `gp3`, `io1`, …) and what each allows: sizes,
//! provisioned IOPS and throughput, with EC2's limits. CreateVolume and
//! the EBS mappings of a launch or an image check against this one table
//! (every type is the same qcow2 file on its node: the type is recorded,
//! not enforced).

use crate::CloudError;
use crate::snapshots::access::validate_snapshot_id;

/// Largest volume (GiB) of every type but `standard`.
pub const MAX_SIZE_GIB: i64 = 16384;
/// EC2's default type.
pub const DEFAULT_TYPE: &str = "gp2";

/// A volume type and its smallest and largest sizes in GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeType {
    /// EC2's name.
    pub name: &'static str,
    /// Smallest size (GiB).
    pub min_gib: i64,
    /// Largest size (GiB).
    pub max_gib: i64,
}

/// Every type, in the order EC2 lists them.
const TYPES: &[VolumeType] = &[
    VolumeType::new("standard", 1, 1024),
    VolumeType::new("gp2", 1, MAX_SIZE_GIB),
    VolumeType::new("gp3", 1, MAX_SIZE_GIB),
    VolumeType::new("io1", 4, MAX_SIZE_GIB),
    VolumeType::new("io2", 4, MAX_SIZE_GIB),
    VolumeType::new("st1", 125, MAX_SIZE_GIB),
    VolumeType::new("sc1", 125, MAX_SIZE_GIB),
];

impl VolumeType {
    const fn new(name: &'static str, min_gib: i64, max_gib: i64) -> Self {
        Self {
            name,
            min_gib,
            max_gib,
        }
    }

    /// The type named `name`, if there is one.
    pub fn get(name: &str) -> Option<Self> {
        TYPES.iter().copied().find(|t| t.name == name)
    }

    /// The type named `name`; another name is refused with the valid ones.
    pub fn parse(name: &str) -> Result<Self, CloudError> {
        Self::get(name).ok_or_else(|| {
            let valid: Vec<&str> = TYPES.iter().map(|t| t.name).collect();
            CloudError::invalid(format!(
                "Value ({name}) for parameter volumeType is invalid. Valid values: {}",
                valid.join(", ")
            ))
        })
    }

    /// Checks `size_gib` against the type's limits.
    pub fn check_size(self, size_gib: i64) -> Result<(), CloudError> {
        if size_gib > self.max_gib {
            return Err(CloudError::invalid(format!(
                "Volume of {size_gib}GiB is too large; maximum is {}GiB.",
                self.max_gib
            )));
        }
        if size_gib < self.min_gib {
            return Err(CloudError::invalid(format!(
                "The volume size is invalid for {} volumes: {size_gib}.",
                self.name
            )));
        }
        Ok(())
    }
}

/// The IOPS EC2 gives a `gp2` volume of `size_gib` (3 per GiB, within
/// 100 and 16000).
pub fn gp2_iops(size_gib: i64) -> i64 {
    (size_gib * 3).clamp(100, 16000)
}

/// The refusal of an encrypted volume (this cloud has no key service).
pub fn encryption_unsupported() -> CloudError {
    CloudError::unsupported("Encrypted volumes are not supported by this cloud.")
}

/// Whether new volumes are encrypted by default (GetEbsEncryptionByDefault):
/// never, as this cloud has no key service and stores volumes unencrypted.
pub const ENCRYPTION_BY_DEFAULT: bool = false;

/// The refusal of EnableEbsEncryptionByDefault, for the same reason.
pub fn encryption_by_default_unsupported() -> CloudError {
    CloudError::unsupported(
        "EBS encryption by default is not supported by this cloud: it has no key service and volumes are stored unencrypted.",
    )
}

/// Checks an EBS mapping's size and type (a mapping's size is checked
/// against its type when the launch creates the volume).
pub fn check_mapping(size_gib: Option<i64>, volume_type: Option<&str>) -> Result<(), CloudError> {
    if let Some(size) = size_gib
        && !(1..=MAX_SIZE_GIB).contains(&size)
    {
        return Err(CloudError::invalid(format!(
            "Volume of {size}GiB is not in the range 1 to {MAX_SIZE_GIB}GiB."
        )));
    }
    if let Some(t) = volume_type
        && VolumeType::get(t).is_none()
    {
        return Err(CloudError::invalid(format!(
            "Value ({t}) for parameter volumeType is invalid."
        )));
    }
    Ok(())
}

/// A new volume's type, size, source snapshot and performance, checked as
/// EC2 checks CreateVolume's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    /// The type.
    pub volume_type: VolumeType,
    /// Size in GiB (`None`: the snapshot's).
    pub size_gib: Option<i64>,
    /// The snapshot it starts from.
    pub snapshot_id: Option<String>,
    /// Provisioned IOPS (given for `io1`, `io2` and `gp3`, computed for
    /// `gp2`).
    pub iops: Option<i64>,
    /// Throughput in MiB/s (`gp3`).
    pub throughput: Option<i64>,
}

/// What a request asks of a new volume, before it is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestedSpec {
    /// The type ([`DEFAULT_TYPE`] when `None`).
    pub volume_type: Option<String>,
    /// Size in GiB.
    pub size_gib: Option<i64>,
    /// The snapshot it starts from.
    pub snapshot_id: Option<String>,
    /// Provisioned IOPS.
    pub iops: Option<i64>,
    /// Throughput in MiB/s.
    pub throughput: Option<i64>,
    /// Encryption (or a KMS key) asked for.
    pub encrypted: bool,
    /// Multi-Attach asked for.
    pub multi_attach: bool,
}

impl VolumeSpec {
    /// Checks `requested`: a known type, a size or a snapshot, a size
    /// within the type's limits, no encryption or Multi-Attach, IOPS and
    /// throughput only where the type takes them and within their ranges
    /// (with EC2's defaults where it has them).
    pub fn new(requested: RequestedSpec) -> Result<Self, CloudError> {
        let volume_type =
            VolumeType::parse(requested.volume_type.as_deref().unwrap_or(DEFAULT_TYPE))?;
        let name = volume_type.name;
        if let Some(id) = &requested.snapshot_id {
            validate_snapshot_id(id)?;
        }
        if requested.size_gib.is_none() && requested.snapshot_id.is_none() {
            return Err(CloudError::Missing(
                "The request must contain the parameter size or snapshotId".into(),
            ));
        }
        let size_for_iops = requested.size_gib.unwrap_or(volume_type.min_gib);
        volume_type.check_size(size_for_iops)?;
        if requested.encrypted {
            return Err(encryption_unsupported());
        }
        if requested.multi_attach {
            return Err(CloudError::unsupported(
                "Multi-Attach is not supported by this cloud.",
            ));
        }
        let iops = match (name, requested.iops) {
            ("io1" | "io2", None) => {
                return Err(CloudError::Missing(format!(
                    "The parameter iops must be specified for {name} volumes."
                )));
            }
            ("io1" | "io2", Some(n)) if !(100..=64000).contains(&n) => {
                return Err(CloudError::invalid(format!(
                    "Volume iops of {n} is not in the range 100 to 64000."
                )));
            }
            ("gp3", Some(n)) if !(3000..=16000).contains(&n) => {
                return Err(CloudError::invalid(format!(
                    "Volume iops of {n} is not in the range 3000 to 16000."
                )));
            }
            ("io1" | "io2" | "gp3", Some(n)) => Some(n),
            ("gp3", None) => Some(3000),
            (_, Some(_)) => {
                return Err(CloudError::InvalidCombination(format!(
                    "The parameter iops is not supported for {name} volumes."
                )));
            }
            ("gp2", None) => Some(gp2_iops(size_for_iops)),
            (_, None) => None,
        };
        let throughput = match (name, requested.throughput) {
            ("gp3", Some(n)) if !(125..=1000).contains(&n) => {
                return Err(CloudError::invalid(format!(
                    "Throughput of {n} MiB/s is not in the range 125 to 1000."
                )));
            }
            ("gp3", t) => Some(t.unwrap_or(125)),
            (_, Some(_)) => {
                return Err(CloudError::InvalidCombination(format!(
                    "The parameter throughput is not supported for {name} volumes."
                )));
            }
            (_, None) => None,
        };
        Ok(Self {
            volume_type,
            size_gib: requested.size_gib,
            snapshot_id: requested.snapshot_id,
            iops,
            throughput,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(volume_type: &str, size_gib: Option<i64>) -> RequestedSpec {
        RequestedSpec {
            volume_type: Some(volume_type.into()),
            size_gib,
            ..RequestedSpec::default()
        }
    }

    #[test]
    fn types_and_sizes() {
        assert_eq!(VolumeType::parse("st1").map(|t| t.min_gib), Ok(125));
        assert_eq!(
            VolumeType::parse("floppy").map_err(|e| e.to_string()),
            Err("Value (floppy) for parameter volumeType is invalid. Valid values: standard, gp2, gp3, io1, io2, st1, sc1".into())
        );
        let standard = VolumeType::parse("standard").expect("standard");
        assert!(standard.check_size(1024).is_ok());
        assert!(standard.check_size(1025).is_err());
        assert!(standard.check_size(0).is_err());
        assert!(check_mapping(Some(MAX_SIZE_GIB), Some("sc1")).is_ok());
        assert!(check_mapping(Some(MAX_SIZE_GIB + 1), None).is_err());
        assert!(check_mapping(None, Some("floppy")).is_err());
        assert_eq!(
            (gp2_iops(1), gp2_iops(100), gp2_iops(10_000)),
            (100, 300, 16000)
        );
    }

    #[test]
    fn specs_get_ec2s_defaults_and_limits() {
        let gp2 = VolumeSpec::new(spec("gp2", Some(50))).expect("gp2");
        assert_eq!((gp2.iops, gp2.throughput), (Some(150), None));
        let gp3 = VolumeSpec::new(spec("gp3", Some(1))).expect("gp3");
        assert_eq!((gp3.iops, gp3.throughput), (Some(3000), Some(125)));
        let defaulted = VolumeSpec::new(RequestedSpec {
            size_gib: Some(1),
            ..RequestedSpec::default()
        })
        .expect("default type");
        assert_eq!(defaulted.volume_type.name, DEFAULT_TYPE);
        let from_snapshot = VolumeSpec::new(RequestedSpec {
            snapshot_id: Some("snap-0123456789abcdef0".into()),
            ..RequestedSpec::default()
        })
        .expect("a snapshot stands for the size");
        assert_eq!(from_snapshot.size_gib, None);
        for (bad, expected) in [
            (RequestedSpec::default(), "Missing"),
            (spec("io1", Some(10)), "Missing"),
            (
                RequestedSpec {
                    iops: Some(50),
                    ..spec("io2", Some(10))
                },
                "Invalid",
            ),
            (
                RequestedSpec {
                    iops: Some(500),
                    ..spec("gp2", Some(10))
                },
                "InvalidCombination",
            ),
            (
                RequestedSpec {
                    throughput: Some(2000),
                    ..spec("gp3", Some(10))
                },
                "Invalid",
            ),
            (
                RequestedSpec {
                    encrypted: true,
                    ..spec("gp2", Some(1))
                },
                "Unsupported",
            ),
            (
                RequestedSpec {
                    snapshot_id: Some("snap-zz".into()),
                    ..spec("gp2", Some(1))
                },
                "Malformed",
            ),
            (spec("sc1", Some(10)), "Invalid"),
        ] {
            let err = VolumeSpec::new(bad.clone()).expect_err("refused");
            let got = format!("{err:?}");
            let variant = got.split(['(', ' ']).next().unwrap_or_default();
            assert_eq!(variant, expected, "{bad:?}: {got}");
        }
    }
}
