//! Tags on the caller's resources: which strings are resource ids, the
//! rules for keys and values, and tagging only resources that exist and
//! are the caller's, within the limit of tags per resource. The store
//! checks ownership and the limit in the transaction that writes the tags,
//! so requests racing each other cannot pass the limit together, and a
//! request either tags every resource it names or none.

use mallee_store::{StoreError, Tag, TagPair, TagSelector};

use crate::Cloud;
use crate::{CloudError, Kind, Principal};

/// AWS limits on tag keys and values (characters).
pub const MAX_KEY_LEN: usize = 128;
/// See [`MAX_KEY_LEN`].
pub const MAX_VALUE_LEN: usize = 256;

/// Checks a tag key and, when given, its value.
pub fn validate_tag(key: &str, value: Option<&str>) -> Result<(), CloudError> {
    if key.is_empty() {
        return Err(CloudError::invalid("Tag key cannot be empty"));
    }
    if key.chars().count() > MAX_KEY_LEN {
        return Err(CloudError::invalid(format!(
            "Tag key exceeds the maximum length of {MAX_KEY_LEN} characters"
        )));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(CloudError::invalid(
            "Tag keys starting with 'aws:' are reserved for internal use",
        ));
    }
    if value.is_some_and(|v| v.chars().count() > MAX_VALUE_LEN) {
        return Err(CloudError::invalid(format!(
            "Tag value exceeds the maximum length of {MAX_VALUE_LEN} characters"
        )));
    }
    Ok(())
}

/// Whether `id` has the shape of an AWS resource id: a lowercase prefix, a
/// dash, and 8 or 17 lowercase hex digits.
pub fn is_resource_id(id: &str) -> bool {
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

fn not_an_id(id: &str) -> CloudError {
    CloudError::malformed(Kind::Resource, format!("The ID '{id}' is not valid"))
}

/// Checks that every string of `ids` is a resource id.
pub fn validate_resource_ids(ids: &[String]) -> Result<(), CloudError> {
    match ids.iter().find(|id| !is_resource_id(id)) {
        Some(bad) => Err(not_an_id(bad)),
        None => Ok(()),
    }
}

/// The kind of resource an id names, by its prefix.
pub fn kind_of(id: &str) -> Option<Kind> {
    Some(match id.split_once('-').map(|(prefix, _)| prefix)? {
        "key" => Kind::KeyPair,
        "i" => Kind::Instance,
        "ami" | "aki" | "ari" | "emi" | "eki" | "eri" => Kind::Image,
        "vol" => Kind::Volume,
        "snap" => Kind::Snapshot,
        "sg" => Kind::SecurityGroup,
        "sgr" => Kind::SecurityGroupRule,
        "vpc" => Kind::Vpc,
        "subnet" => Kind::Subnet,
        "eni" => Kind::NetworkInterface,
        "dopt" => Kind::DhcpOptions,
        "acl" => Kind::NetworkAcl,
        "eipalloc" => Kind::Allocation,
        "igw" => Kind::InternetGateway,
        "rtb" => Kind::RouteTable,
        "nat" => Kind::NatGateway,
        "r" => Kind::Reservation,
        "lt" => Kind::LaunchTemplate,
        _ => return None,
    })
}

/// The refusal of a resource id that names nothing of the caller's, of
/// the kind its prefix says (an unknown prefix names no resource at all).
pub fn not_found(id: &str) -> CloudError {
    match kind_of(id) {
        Some(kind) => CloudError::not_found(kind, format!("The ID '{id}' does not exist")),
        None => not_an_id(id),
    }
}

fn refused(err: StoreError) -> CloudError {
    match err {
        StoreError::NotFound(id) => not_found(&id),
        other => other.into(),
    }
}

/// Tags every resource of `resource_ids` (all the caller's) with `tags`,
/// replacing values of keys they have; all or none.
pub async fn create(
    cloud: &Cloud,
    caller: &Principal,
    resource_ids: &[String],
    tags: &[TagPair],
) -> Result<(), CloudError> {
    cloud
        .store
        .put_tags(caller.account_id(), resource_ids, tags)
        .await
        .map_err(refused)
}

/// Removes `tags` from every resource of `resource_ids` (all the
/// caller's); a tag given with a value goes only when its value matches.
pub async fn delete(
    cloud: &Cloud,
    caller: &Principal,
    resource_ids: &[String],
    tags: &[TagSelector],
) -> Result<(), CloudError> {
    cloud
        .store
        .delete_tags(caller.account_id(), resource_ids, tags)
        .await
        .map_err(refused)
}

/// Every tag of the caller's resources, ordered by resource then key.
pub async fn list(cloud: &Cloud, caller: &Principal) -> Result<Vec<Tag>, CloudError> {
    Ok(cloud.store.tags(caller.account_id()).await?)
}

/// The caller's tags `query` selects, ordered by resource then key: the
/// store looks them up, so the cost follows what is returned rather than
/// everything the account has tagged.
pub async fn find(
    cloud: &Cloud,
    caller: &Principal,
    query: &mallee_store::TagQuery,
) -> Result<Vec<Tag>, CloudError> {
    Ok(cloud
        .store
        .tags_matching(caller.account_id(), query)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Limit;
    use crate::testkit::{InstanceBuilder, TestCloud};

    #[test]
    fn resource_id_shapes() {
        assert!(is_resource_id("key-0123456789abcdef0"));
        assert!(is_resource_id("i-12345678"));
        assert!(!is_resource_id("key-XYZ"));
        assert!(!is_resource_id("foo"));
        assert!(!is_resource_id("-0123456789abcdef0"));
        assert!(validate_resource_ids(&["i-12345678".into(), "foo".into()]).is_err());
        assert_eq!(kind_of("eipalloc-12345678"), Some(Kind::Allocation));
        assert_eq!(kind_of("zz-12345678"), None);
    }

    #[test]
    fn tag_validation() {
        assert!(validate_tag("ok", Some("v")).is_ok());
        assert!(validate_tag("", None).is_err());
        assert!(validate_tag("aws:x", None).is_err());
        assert!(validate_tag(&"k".repeat(129), None).is_err());
        assert!(validate_tag("k", Some(&"v".repeat(257))).is_err());
    }

    #[tokio::test]
    async fn only_the_callers_resources_within_the_limit() {
        let cloud = TestCloud::new().await;
        let owner = cloud.principal("owner").await;
        let other = cloud.principal("other").await;
        let id = "i-0000000000000000a";
        InstanceBuilder::new(id, owner.account_id())
            .store(&cloud)
            .await;
        let tag = |n: usize| TagPair {
            key: format!("k{n}"),
            value: "v".into(),
        };
        let ids = [id.to_owned()];
        assert_eq!(
            create(&cloud, &other, &ids, &[tag(0)]).await,
            Err(not_found(id))
        );
        let fifty: Vec<TagPair> = (0..50).map(tag).collect();
        create(&cloud, &owner, &ids, &fifty).await.expect("fifty");
        assert!(matches!(
            create(&cloud, &owner, &ids, &[tag(50)]).await,
            Err(CloudError::LimitExceeded {
                limit: Limit::Tags,
                ..
            })
        ));
        assert_eq!(list(&cloud, &owner).await.expect("tags").len(), 50);
        let selector = TagSelector {
            key: "k0".into(),
            value: Some("other".into()),
        };
        delete(&cloud, &owner, &ids, std::slice::from_ref(&selector))
            .await
            .expect("a value that does not match");
        assert_eq!(list(&cloud, &owner).await.expect("tags").len(), 50);
        delete(
            &cloud,
            &owner,
            &ids,
            &[TagSelector {
                value: None,
                ..selector
            }],
        )
        .await
        .expect("by key");
        assert_eq!(list(&cloud, &owner).await.expect("tags").len(), 49);
        assert!(list(&cloud, &other).await.expect("tags").is_empty());
    }
}
