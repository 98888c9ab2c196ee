//! CopySnapshot on the wire (`mallee_cloud::snapshots::copy` copies).

use mallee_cloud::snapshots::access::{validate_description, validate_snapshot_id};
use mallee_cloud::snapshots::copy::{self, Copy};

use crate::query::QueryParams;

use super::tags::{parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error};

/// CopySnapshot input.
#[derive(Debug, Clone, PartialEq)]
pub struct CopySnapshot {
    copy: Copy,
    source_region: String,
}

impl CopySnapshot {
    /// Reads `SourceSnapshotId`, `SourceRegion` (this region only: mallee
    /// has one), `Description`, `TagSpecification.N` (`snapshot`);
    /// `Encrypted`/`KmsKeyId` are refused (no key service), as is a
    /// destination outpost.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let source = params.required_non_empty("SourceSnapshotId")?.to_owned();
        validate_snapshot_id(&source)?;
        let source_region = params.required_non_empty("SourceRegion")?.to_owned();
        let description = params
            .get("Description")
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        if let Some(d) = &description {
            validate_description(d)?;
        }
        if params.bool("Encrypted")? == Some(true)
            || params.get("KmsKeyId").is_some_and(|k| !k.is_empty())
        {
            return Err(Ec2Error::refused(
                "UnsupportedOperation",
                "Encrypted snapshots are not supported by this cloud.",
            ));
        }
        if params
            .get("DestinationOutpostArn")
            .is_some_and(|a| !a.is_empty())
        {
            return Err(Ec2Error::refused(
                "UnsupportedOperation",
                "Outposts are not supported by this cloud.",
            ));
        }
        Ok(Self {
            copy: Copy {
                source_snapshot_id: source,
                description,
                tags: parse_tag_specifications(params, "snapshot")?,
            },
            source_region,
        })
    }

    /// Records the pending copy; the controller copies the data.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let region = ctx.cloud.config.region.as_str();
        // Only this region's snapshots exist.
        if self.source_region != region {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({}) for parameter sourceRegion is invalid. This cloud has one region, {region}.",
                self.source_region
            )));
        }
        let snapshot = copy::copy(ctx.cloud, ctx.principal, &self.copy).await?;
        Ok(ctx.respond("CopySnapshot", |w| {
            w.text("snapshotId", snapshot.id());
            write_tag_set(
                w,
                self.copy
                    .tags
                    .iter()
                    .map(|t| (t.key.as_str(), t.value.as_str())),
            );
        }))
    }
}
