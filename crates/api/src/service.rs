//! Which service a request is for: the SigV4 scope name, the Eucalyptus
//! `/services/NAME` path, and the XML dialect its errors use.

use crate::error;

/// Which service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// EC2 (Query protocol); Eucalyptus path `/services/compute`.
    Ec2,
    /// S3; Eucalyptus path `/services/objectstorage`.
    S3,
    /// IAM; Eucalyptus path `/services/Euare`.
    Iam,
    /// STS; Eucalyptus path `/services/Tokens`.
    Sts,
    /// The bare-metal zone (Metaleuca); path `/services/metal`.
    Metal,
    /// Eucalyptus' bootstrap service (Empyrean), for the one question
    /// euca2ools asks it: DescribeServiceCertificates; SigV4 scope
    /// `bootstrap` (or `euserv`), path `/services/Empyrean`.
    Bootstrap,
}

impl Service {
    /// The SigV4 scope name.
    pub fn scope_name(self) -> &'static str {
        match self {
            Self::Ec2 => "ec2",
            Self::S3 => "s3",
            Self::Iam => "iam",
            Self::Sts => "sts",
            Self::Metal => "metal",
            Self::Bootstrap => "bootstrap",
        }
    }

    /// From a SigV4 credential scope's service name.
    pub fn from_scope(name: &str) -> Option<Self> {
        match name {
            "ec2" => Some(Self::Ec2),
            "s3" => Some(Self::S3),
            "iam" => Some(Self::Iam),
            "sts" => Some(Self::Sts),
            "metal" => Some(Self::Metal),
            "bootstrap" | "euserv" => Some(Self::Bootstrap),
            _ => None,
        }
    }

    /// From a Eucalyptus `/services/NAME` path.
    pub fn from_path(path: &str) -> Option<Self> {
        let rest = path.strip_prefix("/services/")?;
        let name = rest.split('/').next().unwrap_or_default();
        match name {
            "compute" | "Eucalyptus" => Some(Self::Ec2),
            "objectstorage" | "Walrus" => Some(Self::S3),
            "Euare" => Some(Self::Iam),
            "Tokens" => Some(Self::Sts),
            "metal" => Some(Self::Metal),
            "Empyrean" => Some(Self::Bootstrap),
            _ => None,
        }
    }

    /// The XML dialect its errors use.
    pub fn error_dialect(self) -> error::ErrorDialect {
        match self {
            Self::Ec2 | Self::Metal => error::ErrorDialect::Ec2,
            Self::S3 => error::ErrorDialect::S3,
            Self::Iam | Self::Sts | Self::Bootstrap => error::ErrorDialect::Query,
        }
    }
}
