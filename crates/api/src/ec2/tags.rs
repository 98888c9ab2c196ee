//! CreateTags, DeleteTags and DescribeTags over every taggable resource, and
//! the tag helpers other actions share (`TagSpecification.N`, `tagSet`).

use std::collections::HashMap;

use mallee_store::{StoreError, Tag, TagPair, TagSelector};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::{QueryError, QueryParams};
use crate::xml::XmlWriter;

use super::{Ec2Context, Ec2Error};

/// AWS limits on tag keys and values (characters).
const MAX_KEY_LEN: usize = 128;
const MAX_VALUE_LEN: usize = 256;

fn validate_tag(key: &str, value: Option<&str>) -> Result<(), Ec2Error> {
    if key.is_empty() {
        return Err(Ec2Error::InvalidParameterValue(
            "Tag key cannot be empty".into(),
        ));
    }
    if key.chars().count() > MAX_KEY_LEN {
        return Err(Ec2Error::InvalidParameterValue(format!(
            "Tag key exceeds the maximum length of {MAX_KEY_LEN} characters"
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(Ec2Error::InvalidParameterValue(
            "Tag keys starting with 'aws:' are reserved for internal use".into(),
        ));
    }
    if value.is_some_and(|v| v.chars().count() > MAX_VALUE_LEN) {
        return Err(Ec2Error::InvalidParameterValue(format!(
            "Tag value exceeds the maximum length of {MAX_VALUE_LEN} characters"
        )));
    }
    Ok(())
}

/// Reads `Tag.N.Key` / `Tag.N.Value` from `params` (a request or a tag
/// specification), validating each and refusing repeated keys.
fn parse_tag_list(params: &QueryParams) -> Result<Vec<TagPair>, Ec2Error> {
    let mut tags: Vec<TagPair> = Vec::new();
    for tag in params.structs("Tag")? {
        let key = tag.required("Key")?.to_owned();
        let value = tag.get("Value").unwrap_or_default().to_owned();
        validate_tag(&key, Some(&value))?;
        if tags.iter().any(|t| t.key == key) {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Duplicate tag key '{key}' specified."
            )));
        }
        tags.push(TagPair { key, value });
    }
    Ok(tags)
}

/// Reads `TagSpecification.N` for a create action whose resource type is
/// `resource_type`; other types are refused as EC2 does.
pub fn parse_tag_specifications(
    params: &QueryParams,
    resource_type: &str,
) -> Result<Vec<TagPair>, Ec2Error> {
    let mut tags = Vec::new();
    for spec in params.structs("TagSpecification")? {
        let given = spec.required_non_empty("ResourceType")?;
        if given != resource_type {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "'{given}' is not a valid taggable resource type for this operation."
            )));
        }
        for tag in parse_tag_list(&spec)? {
            if tags.iter().any(|t: &TagPair| t.key == tag.key) {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Duplicate tag key '{}' specified.",
                    tag.key
                )));
            }
            tags.push(tag);
        }
    }
    Ok(tags)
}

/// Writes `<tagSet>` (omitted when empty, as EC2 does).
pub fn write_tag_set<'a>(w: &mut XmlWriter, tags: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let tags: Vec<_> = tags.into_iter().collect();
    if tags.is_empty() {
        return;
    }
    w.items("tagSet", tags, |w, (k, v)| {
        w.text("key", k);
        w.text("value", v);
    });
}

/// An account's tags grouped by resource, for Describe responses.
#[derive(Debug, Default)]
pub struct TagsByResource {
    by_resource: HashMap<String, Vec<(String, String)>>,
}

impl TagsByResource {
    /// Loads every tag of `account_id`.
    pub async fn load(ctx: &Ec2Context<'_>, account_id: &str) -> Result<Self, Ec2Error> {
        let mut by_resource: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for tag in ctx.cloud.store.tags(account_id).await? {
            by_resource
                .entry(tag.resource_id)
                .or_default()
                .push((tag.key, tag.value));
        }
        Ok(Self { by_resource })
    }

    /// Tags of one resource.
    pub fn of(&self, resource_id: &str) -> &[(String, String)] {
        self.by_resource
            .get(resource_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// The NotFound error EC2 gives for a missing resource, by id prefix.
fn not_found(id: &str) -> Ec2Error {
    let code = match id.split_once('-').map(|(prefix, _)| prefix) {
        Some("key") => "InvalidKeyPair.NotFound",
        Some("i") => "InvalidInstanceID.NotFound",
        Some("ami" | "aki" | "ari" | "emi" | "eki" | "eri") => "InvalidAMIID.NotFound",
        Some("vol") => "InvalidVolume.NotFound",
        Some("snap") => "InvalidSnapshot.NotFound",
        Some("sg") => "InvalidGroup.NotFound",
        Some("sgr") => "InvalidSecurityGroupRuleId.NotFound",
        Some("vpc") => "InvalidVpcID.NotFound",
        Some("subnet") => "InvalidSubnetID.NotFound",
        Some("eipalloc") => "InvalidAllocationID.NotFound",
        Some("r") => "InvalidReservationID.NotFound",
        _ => return Ec2Error::InvalidId(id.to_owned()),
    };
    Ec2Error::ResourceNotFound {
        code,
        id: id.to_owned(),
    }
}

/// Whether `id` has the shape of an AWS resource id: a lowercase prefix, a
/// dash, and 8 or 17 lowercase hex digits.
fn looks_like_resource_id(id: &str) -> bool {
    match id.split_once('-') {
        Some((prefix, hex)) => {
            !prefix.is_empty()
                && prefix.bytes().all(|b| b.is_ascii_lowercase())
                && (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        None => false,
    }
}

fn parse_resource_ids(params: &QueryParams) -> Result<Vec<String>, Ec2Error> {
    let ids = params.list("ResourceId")?;
    if ids.is_empty() {
        return Err(QueryError::Missing("ResourceId".into()).into());
    }
    if let Some(bad) = ids.iter().find(|id| !looks_like_resource_id(id)) {
        return Err(Ec2Error::InvalidId(bad.clone()));
    }
    Ok(ids)
}

fn map_store_error(err: StoreError) -> Ec2Error {
    match err {
        StoreError::NotFound(id) => not_found(&id),
        other => other.into(),
    }
}

/// CreateTags input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTags {
    resource_ids: Vec<String>,
    tags: Vec<TagPair>,
}

impl CreateTags {
    /// Reads `ResourceId.N`, `Tag.N.Key`, `Tag.N.Value`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let resource_ids = parse_resource_ids(params)?;
        let tags = parse_tag_list(params)?;
        if tags.is_empty() {
            return Err(QueryError::Missing("Tag".into()).into());
        }
        Ok(Self { resource_ids, tags })
    }

    /// Tags every resource, all or none.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        ctx.cloud
            .store
            .put_tags(account, &self.resource_ids, &self.tags)
            .await
            .map_err(map_store_error)?;
        Ok(ctx.respond_true("CreateTags"))
    }
}

/// DeleteTags input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteTags {
    resource_ids: Vec<String>,
    tags: Vec<TagSelector>,
}

impl DeleteTags {
    /// Reads `ResourceId.N` and optional `Tag.N.Key` / `Tag.N.Value` (a
    /// value, even empty, limits deletion to tags with that value).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let resource_ids = parse_resource_ids(params)?;
        let mut tags = Vec::new();
        for tag in params.structs("Tag")? {
            let key = tag.required("Key")?.to_owned();
            let value = tag.get("Value").map(str::to_owned);
            validate_tag(&key, value.as_deref())?;
            tags.push(TagSelector { key, value });
        }
        Ok(Self { resource_ids, tags })
    }

    /// Removes the tags, all or none.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        ctx.cloud
            .store
            .delete_tags(account, &self.resource_ids, &self.tags)
            .await
            .map_err(map_store_error)?;
        Ok(ctx.respond_true("DeleteTags"))
    }
}

/// A tag seen by filters, with its resource's other tags so `tag:KEY`
/// selects the tags of resources that carry KEY with a matching value.
struct TagView<'a> {
    tag: &'a Tag,
    resource_tags: &'a [(String, String)],
}

impl Filterable for TagView<'_> {
    fn tags(&self) -> &[(String, String)] {
        self.resource_tags
    }

    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let tag = self.tag;
        Some(vec![match name {
            "key" => tag.key.clone(),
            "value" => tag.value.clone(),
            "resource-id" => tag.resource_id.clone(),
            "resource-type" => tag.resource_type.clone(),
            _ => return None,
        }])
    }
}

/// DescribeTags input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeTags {
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeTags {
    /// Reads `Filter.N`, `MaxResults` (5–1000), `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        // DescribeTags takes `tag:KEY` but not `tag-key` / `tag-value`.
        const NAMES: &[&str] = &["key", "value", "resource-id", "resource-type"];
        if let Some(bad) = filters
            .iter()
            .find(|f| !f.name.starts_with("tag:") && !NAMES.contains(&f.name.as_str()))
        {
            return Err(filter::FilterError::UnknownName(bad.name.clone()).into());
        }
        Ok(Self {
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Lists the caller's tags, ordered by resource then key.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let tags = ctx
            .cloud
            .store
            .tags(&ctx.principal.account.account_id)
            .await?;
        let mut by_resource: HashMap<&str, Vec<(String, String)>> = HashMap::new();
        for t in &tags {
            by_resource
                .entry(&t.resource_id)
                .or_default()
                .push((t.key.clone(), t.value.clone()));
        }
        let matching: Vec<&Tag> = tags
            .iter()
            .filter(|t| {
                let resource_tags = by_resource
                    .get(t.resource_id.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                filter::matches(
                    &self.filters,
                    &TagView {
                        tag: t,
                        resource_tags,
                    },
                )
            })
            .collect();
        let (page, next) = self
            .page
            .apply(matching, |t| format!("{}\u{0}{}", t.resource_id, t.key));
        Ok(ctx.respond("DescribeTags", |w| {
            w.items("tagSet", page, |w, t| {
                w.text("resourceId", &t.resource_id);
                w.text("resourceType", &t.resource_type);
                w.text("key", &t.key);
                w.text("value", &t.value);
            });
            w.opt_text("nextToken", next);
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_id_shapes() {
        assert!(looks_like_resource_id("key-0123456789abcdef0"));
        assert!(looks_like_resource_id("i-12345678"));
        assert!(!looks_like_resource_id("key-XYZ"));
        assert!(!looks_like_resource_id("foo"));
        assert!(!looks_like_resource_id("-0123456789abcdef0"));
    }

    #[test]
    fn not_found_codes_follow_prefix() {
        assert_eq!(
            crate::error::AwsError::code(&not_found("i-12345678")),
            "InvalidInstanceID.NotFound"
        );
        assert_eq!(
            crate::error::AwsError::code(&not_found("zz-12345678")),
            "InvalidID"
        );
    }

    #[test]
    fn tag_validation() {
        assert!(validate_tag("ok", Some("v")).is_ok());
        assert!(validate_tag("", None).is_err());
        assert!(validate_tag("aws:x", None).is_err());
        assert!(validate_tag(&"k".repeat(129), None).is_err());
        assert!(validate_tag("k", Some(&"v".repeat(257))).is_err());
    }
}
