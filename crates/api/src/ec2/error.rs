//! Errors of the EC2 API, each with the code and status EC2 uses; the one
//! place where the domain's errors become EC2's codes.

use std::borrow::Cow;

use http::StatusCode;

use mallee_cloud::error::{Capacity, Limit};
use mallee_cloud::{CloudError, Kind};

use crate::error::AwsError;
use crate::filter::FilterError;
use crate::pagination::PageError;
use crate::query::QueryError;

/// Every way an EC2 action can fail.
#[derive(Debug, thiserror::Error)]
pub enum Ec2Error {
    /// The domain refused or failed.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The action is not one this endpoint serves.
    #[error("The action {0} is not valid for this web service.")]
    InvalidAction(String),
    /// A parameter is missing or malformed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A value is out of range or of the wrong form.
    #[error("{0}")]
    InvalidParameterValue(String),
    /// Parameters that cannot be used together.
    #[error("{0}")]
    InvalidParameterCombination(String),
    /// A pagination token this server did not issue.
    #[error("Invalid pagination token: {0}")]
    InvalidPaginationToken(String),
    /// Public key material that cannot be imported.
    #[error("{0}")]
    KeyFormat(String),
    /// Too many tags on one resource.
    #[error("The maximum number of Tags for a resource has been reached.")]
    TagLimitExceeded,
    /// DryRun=true on a request that would have succeeded.
    #[error("Request would have succeeded, but DryRun flag is set.")]
    DryRunOperation,
    /// An unexpected failure inside the controller.
    #[error("An internal error has occurred")]
    Internal(String),
    /// A request EC2 refuses with a specific code and a 400 status
    /// (`IncorrectInstanceState`, `InsufficientInstanceCapacity`,
    /// `UnsupportedOperation`, …), with EC2's message.
    #[error("{message}")]
    Refused {
        /// EC2's error code.
        code: &'static str,
        /// EC2's message.
        message: String,
    },
}

impl Ec2Error {
    /// A [`Ec2Error::Refused`] with `code` and `message`.
    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }
}

impl From<mallee_store::StoreError> for Ec2Error {
    fn from(err: mallee_store::StoreError) -> Self {
        match err {
            mallee_store::StoreError::TagLimitExceeded(_) => Self::TagLimitExceeded,
            other => Self::Internal(other.to_string()),
        }
    }
}

/// EC2's code for a resource that was not found.
fn not_found_code(kind: Kind) -> &'static str {
    match kind {
        Kind::Instance => "InvalidInstanceID.NotFound",
        Kind::Reservation => "InvalidReservationID.NotFound",
        Kind::Image | Kind::ImageName => "InvalidAMIID.NotFound",
        Kind::AttributeValue => "InvalidAMIAttributeItemValue",
        Kind::Volume => "InvalidVolume.NotFound",
        Kind::Attachment => "InvalidAttachment.NotFound",
        Kind::Snapshot => "InvalidSnapshot.NotFound",
        Kind::ImportTask => "InvalidConversionTaskId",
        Kind::KeyPair => "InvalidKeyPair.NotFound",
        Kind::SecurityGroup => "InvalidGroup.NotFound",
        Kind::SecurityGroupRule => "InvalidSecurityGroupRuleId.NotFound",
        Kind::Permission => "InvalidPermission.NotFound",
        Kind::Vpc => "InvalidVpcID.NotFound",
        Kind::Subnet => "InvalidSubnetID.NotFound",
        Kind::NetworkInterface => "InvalidNetworkInterfaceID.NotFound",
        Kind::DhcpOptions => "InvalidDhcpOptionID.NotFound",
        Kind::NetworkAcl => "InvalidNetworkAclID.NotFound",
        Kind::Address => "InvalidAddress.NotFound",
        Kind::Allocation => "InvalidAllocationID.NotFound",
        Kind::Association => "InvalidAssociationID.NotFound",
        Kind::Account => "InvalidUserID.NotFound",
        Kind::System => "InvalidSystem.NotFound",
        Kind::Profile => "InvalidProfile.NotFound",
        Kind::Distro => "InvalidDistro.NotFound",
        Kind::SystemGroup => "InvalidGroup.NotFound",
        Kind::Resource => "InvalidID",
        Kind::InstanceType => "InvalidInstanceType",
        Kind::LaunchTemplate => "InvalidLaunchTemplateId.NotFound",
        Kind::LaunchTemplateName => "InvalidLaunchTemplateName.NotFoundException",
        Kind::LaunchTemplateVersion => "InvalidLaunchTemplateId.VersionNotFound",
        Kind::MetalRecord => "InvalidParameterValue",
        Kind::InternetGateway => "InvalidInternetGatewayID.NotFound",
        Kind::Gateway => "InvalidGatewayID.NotFound",
        Kind::RouteTable => "InvalidRouteTableID.NotFound",
        Kind::Route => "InvalidRoute.NotFound",
        Kind::RouteTableAssociation => "InvalidAssociationID.NotFound",
        Kind::NatGateway => "NatGatewayNotFound",
        Kind::VolumeModification => "InvalidVolumeModification.NotFound",
    }
}

/// EC2's code for an id or name of the wrong form.
fn malformed_code(kind: Kind) -> &'static str {
    match kind {
        Kind::Instance => "InvalidInstanceID.Malformed",
        Kind::Image => "InvalidAMIID.Malformed",
        Kind::ImageName => "InvalidAMIName.Malformed",
        Kind::Volume => "InvalidVolumeID.Malformed",
        Kind::Snapshot => "InvalidSnapshotID.Malformed",
        Kind::ImportTask => "InvalidConversionTaskId.Malformed",
        Kind::SecurityGroup => "InvalidGroupId.Malformed",
        Kind::Permission => "InvalidPermission.Malformed",
        Kind::Allocation => "InvalidAllocationID.Malformed",
        Kind::Association => "InvalidAssociationID.Malformed",
        Kind::Account => "InvalidUserID.Malformed",
        Kind::KeyPair => "InvalidKeyPair.Format",
        Kind::Resource => "InvalidID",
        Kind::LaunchTemplate => "InvalidLaunchTemplateId.Malformed",
        Kind::LaunchTemplateName => "InvalidLaunchTemplateName.MalformedException",
        Kind::InternetGateway => "InvalidInternetGatewayID.Malformed",
        Kind::RouteTable => "InvalidRouteTableID.Malformed",
        _ => "InvalidParameterValue",
    }
}

/// EC2's code and status for a domain error.
fn cloud_code(err: &CloudError) -> (&'static str, StatusCode) {
    let bad = StatusCode::BAD_REQUEST;
    match err {
        CloudError::Invalid(_) => ("InvalidParameterValue", bad),
        CloudError::InvalidCombination(_) => ("InvalidParameterCombination", bad),
        CloudError::InvalidParameter(_) => ("InvalidParameter", bad),
        CloudError::Missing(_) => ("MissingParameter", bad),
        CloudError::Malformed { kind, .. } => (malformed_code(*kind), bad),
        CloudError::NotFound { kind, .. } => (not_found_code(*kind), bad),
        CloudError::Duplicate { kind, .. } => (
            match kind {
                Kind::KeyPair => "InvalidKeyPair.Duplicate",
                Kind::SecurityGroup => "InvalidGroup.Duplicate",
                Kind::ImageName => "InvalidAMIName.Duplicate",
                Kind::Permission => "InvalidPermission.Duplicate",
                Kind::LaunchTemplateName => "InvalidLaunchTemplateName.AlreadyExistsException",
                Kind::Subnet => "InvalidSubnet.Conflict",
                Kind::Route => "RouteAlreadyExists",
                _ => "InvalidParameterValue",
            },
            bad,
        ),
        CloudError::InUse { kind, .. } => (
            match kind {
                Kind::Volume => "VolumeInUse",
                Kind::Snapshot => "InvalidSnapshot.InUse",
                Kind::Address => "InvalidIPAddress.InUse",
                Kind::Association => "Resource.AlreadyAssociated",
                _ => "DependencyViolation",
            },
            bad,
        ),
        CloudError::Dependency { .. } => ("DependencyViolation", bad),
        CloudError::IncorrectState { kind, .. } => (
            match kind {
                Kind::Instance => "IncorrectInstanceState",
                Kind::InternetGateway => "Gateway.NotAttached",
                Kind::VolumeModification => "IncorrectModificationState",
                _ => "IncorrectState",
            },
            bad,
        ),
        CloudError::Unavailable { .. } => ("InvalidAMIID.Unavailable", bad),
        CloudError::Reserved { .. } => ("InvalidGroup.Reserved", bad),
        CloudError::ZoneMismatch { .. } => ("InvalidVolume.ZoneMismatch", bad),
        CloudError::Range { kind, .. } => (
            match kind {
                Kind::Subnet => "InvalidSubnet.Range",
                _ => "InvalidVpc.Range",
            },
            bad,
        ),
        CloudError::Undeletable { .. } => ("CannotDelete", bad),
        CloudError::LimitExceeded { limit, .. } => (
            match limit {
                Limit::Instances => "InstanceLimitExceeded",
                Limit::Addresses => "AddressLimitExceeded",
                Limit::Tags => "TagLimitExceeded",
                Limit::LaunchTemplateVersions => "LaunchTemplateVersionLimitExceeded",
            },
            bad,
        ),
        CloudError::InsufficientCapacity { capacity, .. } => match capacity {
            Capacity::Instances | Capacity::Systems => (
                "InsufficientInstanceCapacity",
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            Capacity::Addresses => (
                "InsufficientAddressCapacity",
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            Capacity::Volumes => (
                "InsufficientVolumeCapacity",
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            Capacity::SubnetAddresses => ("InsufficientFreeAddressesInSubnet", bad),
        },
        CloudError::IdempotencyMismatch(_) => ("IdempotentParameterMismatch", bad),
        CloudError::Unsupported(_) => ("UnsupportedOperation", bad),
        CloudError::NotOwner { .. } => ("AuthFailure", bad),
        CloudError::NotPermitted(_) => ("OperationNotPermitted", bad),
        CloudError::Unauthorized => ("UnauthorizedOperation", StatusCode::FORBIDDEN),
        CloudError::BadContent { kind, .. } => (
            match kind {
                Kind::KeyPair => "InvalidKey.Format",
                _ => "InvalidManifest",
            },
            bad,
        ),
        CloudError::Contended(_) | CloudError::Internal(_) => {
            ("InternalError", StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

impl From<FilterError> for Ec2Error {
    fn from(err: FilterError) -> Self {
        match err {
            FilterError::UnknownName(_) => Self::InvalidParameterValue(err.to_string()),
            FilterError::Query(q) => Self::Query(q),
        }
    }
}

impl From<PageError> for Ec2Error {
    fn from(err: PageError) -> Self {
        match err {
            PageError::MaxResults { .. } => Self::InvalidParameterValue(err.to_string()),
            PageError::InvalidToken(token) => Self::InvalidPaginationToken(token),
            PageError::Query(q) => Self::Query(q),
        }
    }
}

impl AwsError for Ec2Error {
    fn code(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Self::Cloud(e) => cloud_code(e).0,
            Self::InvalidAction(_) => "InvalidAction",
            Self::Query(QueryError::Missing(_)) => "MissingParameter",
            Self::Query(_) | Self::InvalidParameterValue(_) => "InvalidParameterValue",
            Self::InvalidParameterCombination(_) => "InvalidParameterCombination",
            Self::InvalidPaginationToken(_) => "InvalidPaginationToken",
            Self::KeyFormat(_) => "InvalidKey.Format",
            Self::TagLimitExceeded => "TagLimitExceeded",
            Self::DryRunOperation => "DryRunOperation",
            Self::Internal(_) => "InternalError",
            Self::Refused { code, .. } => code,
        })
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Cloud(e) => cloud_code(e).1,
            Self::DryRunOperation => StatusCode::PRECONDITION_FAILED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}
