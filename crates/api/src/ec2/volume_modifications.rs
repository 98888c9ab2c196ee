//! ModifyVolume and DescribeVolumesModifications on the wire. What a
//! modification may change, and how a volume grows, is
//! `mallee_cloud::volumes::modify`.

use mallee_cloud::volumes::model::Modification;
use mallee_cloud::volumes::modify::{self, ModifyRequest};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::volumes::validate_volume_id;
use super::{Ec2Context, Ec2Error, iso8601};

/// A modification's fields, as both actions show them.
fn write_modification(w: &mut XmlWriter, volume_id: &str, m: &Modification) {
    w.text("volumeId", volume_id);
    w.text("modificationState", &m.state);
    w.opt_text("statusMessage", m.status_message.as_deref());
    w.text("targetSize", m.target_size);
    w.opt_text("targetIops", m.target_iops);
    w.text("targetVolumeType", &m.target_type);
    w.opt_text("targetThroughput", m.target_throughput);
    w.text("targetMultiAttachEnabled", false);
    w.text("originalSize", m.original_size);
    w.opt_text("originalIops", m.original_iops);
    w.text("originalVolumeType", &m.original_type);
    w.opt_text("originalThroughput", m.original_throughput);
    w.text("originalMultiAttachEnabled", false);
    w.text(
        "progress",
        match m.state.as_str() {
            "completed" | "optimizing" => 100,
            _ => 0,
        },
    );
    w.text("startTime", iso8601(m.start_time));
    w.opt_text("endTime", m.end_time.map(iso8601));
}

/// ModifyVolume input.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifyVolume {
    id: String,
    request: ModifyRequest,
}

impl ModifyVolume {
    /// Reads `VolumeId`, `Size`, `VolumeType`, `Iops`, `Throughput`,
    /// `MultiAttachEnabled`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = params.required_non_empty("VolumeId")?.to_owned();
        validate_volume_id(&id)?;
        Ok(Self {
            id,
            request: ModifyRequest {
                size_gib: params.int("Size")?,
                volume_type: params
                    .get("VolumeType")
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned),
                iops: params.int("Iops")?,
                throughput: params.int("Throughput")?,
                multi_attach: params.bool("MultiAttachEnabled")?,
            },
        })
    }

    /// Records the modification; a new size is grown by the volume's node.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let m = modify::modify(ctx.cloud, ctx.principal, &self.id, &self.request).await?;
        Ok(ctx.respond("ModifyVolume", |w| {
            w.elem("volumeModification", |w| {
                write_modification(w, &self.id, &m)
            });
        }))
    }
}

struct ModificationView<'a> {
    volume_id: &'a str,
    m: &'a Modification,
}

impl Filterable for ModificationView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let m = self.m;
        Some(vec![match name {
            "volume-id" => self.volume_id.to_owned(),
            "modification-state" => m.state.clone(),
            "target-size" => m.target_size.to_string(),
            "target-volume-type" => m.target_type.clone(),
            "target-iops" => m.target_iops?.to_string(),
            "target-throughput" => m.target_throughput?.to_string(),
            "original-size" => m.original_size.to_string(),
            "original-volume-type" => m.original_type.clone(),
            "original-iops" => m.original_iops?.to_string(),
            "original-throughput" => m.original_throughput?.to_string(),
            "start-time" => iso8601(m.start_time),
            _ => return None,
        }])
    }
}

const MODIFICATION_FILTERS: &[&str] = &[
    "volume-id",
    "modification-state",
    "target-size",
    "target-volume-type",
    "target-iops",
    "target-throughput",
    "original-size",
    "original-volume-type",
    "original-iops",
    "original-throughput",
    "start-time",
];

/// DescribeVolumesModifications input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeVolumesModifications {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeVolumesModifications {
    /// Reads `VolumeId.N`, `Filter.N`, `MaxResults`, `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, MODIFICATION_FILTERS, false)?;
        let ids = params.list("VolumeId")?;
        for id in &ids {
            validate_volume_id(id)?;
        }
        Ok(Self {
            ids,
            filters,
            page: PageRequest::parse_capped(params, 5, 500)?,
        })
    }

    /// The latest modification of each named (or every) volume of the
    /// caller.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let found = modify::modifications(ctx.cloud, ctx.principal, &self.ids).await?;
        let selected: Vec<ModificationView<'_>> = found
            .iter()
            .map(|(volume_id, m)| ModificationView { volume_id, m })
            .filter(|v| filter::matches(&self.filters, v))
            .collect();
        let (page, next) = self.page.apply(selected, |v| v.volume_id.to_owned());
        Ok(ctx.respond("DescribeVolumesModifications", |w| {
            w.items("volumeModificationSet", page, |w, v| {
                write_modification(w, v.volume_id, v.m);
            });
            w.opt_text("nextToken", next);
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::test_params as params;

    #[test]
    fn parse_reads_what_modify_volume_takes() {
        let m = ModifyVolume::parse(&params(&[
            ("VolumeId", "vol-0123456789abcdef0"),
            ("Size", "20"),
            ("VolumeType", "gp3"),
        ]))
        .expect("parses");
        assert_eq!(m.request.size_gib, Some(20));
        assert_eq!(m.request.volume_type.as_deref(), Some("gp3"));
        assert!(ModifyVolume::parse(&params(&[("VolumeId", "bogus")])).is_err());
        assert!(ModifyVolume::parse(&params(&[("Size", "2")])).is_err());
        assert!(
            DescribeVolumesModifications::parse(&params(&[
                ("Filter.1.Name", "nope"),
                ("Filter.1.Value.1", "x")
            ]))
            .is_err()
        );
    }
}
