//! The domain's one error enum. Each variant says what went wrong in the
//! cloud's own terms (a resource of some [`Kind`] was not found, is in use,
//! is in the wrong state, …) with a message for people; the protocol crate
//! maps each one to the code and HTTP status of each API in one place.

use mallee_store::StoreError;

/// The kinds of resources errors name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// An instance (`i-`).
    Instance,
    /// A reservation (`r-`).
    Reservation,
    /// A machine, kernel or ramdisk image (`ami-`, `aki-`, `ari-`).
    Image,
    /// An image's name.
    ImageName,
    /// An image or snapshot attribute value (a launch or create-volume
    /// permission entry).
    AttributeValue,
    /// A volume (`vol-`).
    Volume,
    /// A volume's attachment to an instance.
    Attachment,
    /// A snapshot (`snap-`).
    Snapshot,
    /// An import task (`import-snap-`).
    ImportTask,
    /// A key pair.
    KeyPair,
    /// A security group (`sg-` or a name).
    SecurityGroup,
    /// A security group rule (`sgr-`).
    SecurityGroupRule,
    /// A rule a request adds or removes (`IpPermissions`).
    Permission,
    /// A VPC (`vpc-`).
    Vpc,
    /// A subnet (`subnet-`).
    Subnet,
    /// A network interface (`eni-`).
    NetworkInterface,
    /// A DHCP options set (`dopt-`).
    DhcpOptions,
    /// A network ACL (`acl-`).
    NetworkAcl,
    /// A public address, by its IP.
    Address,
    /// An elastic IP allocation (`eipalloc-`).
    Allocation,
    /// An elastic IP association (`eipassoc-`).
    Association,
    /// An account (by its 12-digit id).
    Account,
    /// A bare-metal system.
    System,
    /// A bare-metal profile.
    Profile,
    /// A bare-metal distro.
    Distro,
    /// A bare-metal system group.
    SystemGroup,
    /// A resource of any kind, by its id (tags).
    Resource,
    /// An instance type.
    InstanceType,
    /// A launch template, by id (`lt-…`).
    LaunchTemplate,
    /// A launch template, by name.
    LaunchTemplateName,
    /// A version of a launch template.
    LaunchTemplateVersion,
    /// An internet gateway (`igw-`).
    InternetGateway,
    /// A route target gateway (`igw-` named by a route).
    Gateway,
    /// A route table (`rtb-`).
    RouteTable,
    /// A route of a table, by its destination.
    Route,
    /// A route table association (`rtbassoc-`).
    RouteTableAssociation,
    /// A NAT gateway (`nat-`).
    NatGateway,
    /// A volume's modification (ModifyVolume).
    VolumeModification,
    /// Anything else of the bare-metal zone, named only in the message (a
    /// provisioning token, a MAC, a profile's image, a stored record).
    MetalRecord,
}

/// Which limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Instances an account may have.
    Instances,
    /// Elastic IPs an account may hold.
    Addresses,
    /// Tags on one resource.
    Tags,
    /// Versions of one launch template.
    LaunchTemplateVersions,
}

/// Which capacity ran out (the cloud's shortage, not the caller's mistake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capacity {
    /// Room for instances on the zone's nodes.
    Instances,
    /// Public addresses of the zone's range.
    Addresses,
    /// Room for volumes on the zone's storage.
    Volumes,
    /// Free private addresses in a subnet.
    SubnetAddresses,
    /// Free bare-metal machines of a group.
    Systems,
}

/// Every way a domain operation can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// A value is out of range or of the wrong form.
    #[error("{0}")]
    Invalid(String),
    /// Values that cannot be used together.
    #[error("{0}")]
    InvalidCombination(String),
    /// A parameter that does not fit the resources it names (a group of
    /// another VPC than the subnet's).
    #[error("{0}")]
    InvalidParameter(String),
    /// A required value is missing.
    #[error("{0}")]
    Missing(String),
    /// A string that is not an id of the kind expected.
    #[error("{message}")]
    Malformed {
        /// What the id should have named.
        kind: Kind,
        /// Why, for people.
        message: String,
    },
    /// A well-formed id or name that names nothing the caller can see.
    #[error("{message}")]
    NotFound {
        /// What was looked for.
        kind: Kind,
        /// Which, for people.
        message: String,
    },
    /// A name or rule that already exists.
    #[error("{message}")]
    Duplicate {
        /// What exists already.
        kind: Kind,
        /// Which, for people.
        message: String,
    },
    /// The resource is used by another and cannot change (`VolumeInUse`,
    /// `DependencyViolation`, an address already associated).
    #[error("{message}")]
    InUse {
        /// What is in use.
        kind: Kind,
        /// By what, for people.
        message: String,
    },
    /// A resource other resources depend on (a group others refer to).
    #[error("{message}")]
    Dependency {
        /// What is depended on.
        kind: Kind,
        /// By what, for people.
        message: String,
    },
    /// The resource exists but is not in a state that allows this.
    #[error("{message}")]
    IncorrectState {
        /// What is in the wrong state.
        kind: Kind,
        /// Which state, for people.
        message: String,
    },
    /// The resource exists but cannot be used (an image that failed or is
    /// still pending).
    #[error("{message}")]
    Unavailable {
        /// What cannot be used.
        kind: Kind,
        /// Why, for people.
        message: String,
    },
    /// A name reserved by the cloud.
    #[error("{message}")]
    Reserved {
        /// What kind of name.
        kind: Kind,
        /// Which, for people.
        message: String,
    },
    /// An address range outside what the resource may have (a VPC CIDR
    /// of the wrong size, a subnet outside its VPC).
    #[error("{message}")]
    Range {
        /// A VPC's or a subnet's range.
        kind: Kind,
        /// Which range, for people.
        message: String,
    },
    /// Two resources that must share a zone do not.
    #[error("{message}")]
    ZoneMismatch {
        /// The resource in the other zone.
        kind: Kind,
        /// Which zones, for people.
        message: String,
    },
    /// The caller is at one of its limits.
    #[error("{message}")]
    LimitExceeded {
        /// Which limit.
        limit: Limit,
        /// How far, for people.
        message: String,
    },
    /// The cloud lacks the capacity (clients may retry later).
    #[error("{message}")]
    InsufficientCapacity {
        /// Which capacity.
        capacity: Capacity,
        /// How much, for people.
        message: String,
    },
    /// A retried request whose other parameters differ from the first one.
    #[error("{0}")]
    IdempotencyMismatch(String),
    /// Something this cloud does not do.
    #[error("{0}")]
    Unsupported(String),
    /// A resource the cloud keeps (an account's default group).
    #[error("{message}")]
    Undeletable {
        /// What cannot be deleted.
        kind: Kind,
        /// Why, for people.
        message: String,
    },
    /// The caller sees the resource but does not own it, so may not change
    /// it.
    #[error("{message}")]
    NotOwner {
        /// What the caller does not own.
        kind: Kind,
        /// Which, for people.
        message: String,
    },
    /// The caller may not do this to this resource.
    #[error("{0}")]
    NotPermitted(String),
    /// The caller may not do this at all.
    #[error("You are not authorized to perform this operation.")]
    Unauthorized,
    /// Data the caller supplied (an image manifest, a key) is not usable.
    #[error("{message}")]
    BadContent {
        /// What the content should have been.
        kind: Kind,
        /// Why not, for people.
        message: String,
    },
    /// Several requests raced for the same records and this one gave up
    /// (the detail is logged, not shown).
    #[error("An internal error has occurred")]
    Contended(String),
    /// An unexpected failure inside the cloud (logged, not shown).
    #[error("An internal error has occurred")]
    Internal(String),
}

impl CloudError {
    /// [`CloudError::Invalid`] with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// [`CloudError::NotFound`] of `kind`.
    pub fn not_found(kind: Kind, message: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            message: message.into(),
        }
    }

    /// [`CloudError::Malformed`] of `kind`.
    pub fn malformed(kind: Kind, message: impl Into<String>) -> Self {
        Self::Malformed {
            kind,
            message: message.into(),
        }
    }

    /// [`CloudError::IncorrectState`] of `kind`.
    pub fn incorrect_state(kind: Kind, message: impl Into<String>) -> Self {
        Self::IncorrectState {
            kind,
            message: message.into(),
        }
    }

    /// [`CloudError::InUse`] of `kind`.
    pub fn in_use(kind: Kind, message: impl Into<String>) -> Self {
        Self::InUse {
            kind,
            message: message.into(),
        }
    }

    /// [`CloudError::Duplicate`] of `kind`.
    pub fn duplicate(kind: Kind, message: impl Into<String>) -> Self {
        Self::Duplicate {
            kind,
            message: message.into(),
        }
    }

    /// [`CloudError::Unsupported`] with `message`.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::Unsupported(message.into())
    }

    /// [`CloudError::Missing`] for the parameter `name`, worded as AWS
    /// words it.
    pub fn missing_parameter(name: &str) -> Self {
        Self::Missing(format!("The request must contain the parameter {name}"))
    }

    /// [`CloudError::Internal`] from anything displayable.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// `InvalidInstanceID.NotFound` for `ids`, worded as EC2 words it.
    pub fn instances_not_found(ids: &[&str]) -> Self {
        let message = if ids.len() == 1 {
            format!("The instance ID '{}' does not exist", ids[0])
        } else {
            format!("The instance IDs '{}' do not exist", ids.join(", "))
        };
        Self::not_found(Kind::Instance, message)
    }
}

impl From<StoreError> for CloudError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::TagLimitExceeded(_) => Self::LimitExceeded {
                limit: Limit::Tags,
                message: "The maximum number of Tags for a resource has been reached.".into(),
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

/// Domain results.
pub type Result<T, E = CloudError> = std::result::Result<T, E>;
