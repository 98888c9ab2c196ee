//! Who may see, restore and change a snapshot: EC2's visibility (an
//! account sees its own snapshots and those shared with it or public; only
//! the owner changes or deletes one), DescribeSnapshots' selection, and the
//! checks on snapshot ids and descriptions every snapshot action shares.

use mallee_store::SnapshotRecord;

use super::{Snapshot, SnapshotDesired};
use crate::sharing::{Admins, Grants, Selection, Shared};
use crate::{Cloud, CloudError, Kind, Principal};

/// Longest description EC2 accepts.
const MAX_DESCRIPTION: usize = 255;

pub fn is_hex_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Checks that `id` looks like a snapshot id (`snap-` + 8 or 17 hex).
pub fn validate_snapshot_id(id: &str) -> Result<(), CloudError> {
    if is_hex_id(id, "snap-") {
        Ok(())
    } else {
        Err(CloudError::malformed(
            Kind::Snapshot,
            format!("Invalid id: \"{id}\" (expecting \"snap-...\")"),
        ))
    }
}

pub fn not_found(id: &str) -> CloudError {
    CloudError::not_found(
        Kind::Snapshot,
        format!("The snapshot '{id}' does not exist."),
    )
}

pub fn contended(id: &str) -> CloudError {
    CloudError::Contended(format!("snapshot {id} kept changing; try again"))
}

pub fn decode(record: SnapshotRecord) -> Result<Snapshot, CloudError> {
    Snapshot::decode(record).map_err(|e| CloudError::Internal(e.to_string()))
}

pub fn validate_description(description: &str) -> Result<(), CloudError> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(CloudError::Invalid(format!(
            "Value for parameter description is too long: at most {MAX_DESCRIPTION} characters."
        )));
    }
    Ok(())
}

/// Snapshots the caller may see: its own, and those shared with it or
/// public, each with whether the caller owns it.
pub async fn visible(cloud: &Cloud, caller: &Principal) -> Result<Vec<Snapshot>, CloudError> {
    let store = &cloud.store;
    let caller = caller.account_id();
    let mut records = store.snapshots(Some(caller)).await?;
    records.extend(store.snapshots_shared_with(caller).await?);
    records.sort_by(|a, b| a.snapshot_id.cmp(&b.snapshot_id));
    records
        .into_iter()
        .map(decode)
        .filter(|s| {
            s.as_ref()
                .map_or(true, |s| s.desired != SnapshotDesired::Deleted)
        })
        .collect()
}

/// A snapshot the caller may create volumes from (its own, shared with
/// it, or public); any other is not found.
pub async fn load_restorable(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
) -> Result<Snapshot, CloudError> {
    let caller = caller.account_id();
    let Some(record) = cloud.store.snapshot(id).await? else {
        return Err(not_found(id));
    };
    let snapshot = decode(record)?;
    if snapshot.desired == SnapshotDesired::Deleted {
        return Err(not_found(id));
    }
    if snapshot.record.account_id == caller {
        return Ok(snapshot);
    }
    let grantees = cloud.store.snapshot_permissions(id).await?;
    if grantees.iter().any(|g| g == caller || g == "all") {
        Ok(snapshot)
    } else {
        Err(not_found(id))
    }
}

/// The caller's snapshot `id`: one shared with it is `AuthFailure`
/// (visible, not the caller's to change), any other not found.
pub async fn load_owned(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
) -> Result<Snapshot, CloudError> {
    let snapshot = load_restorable(cloud, caller, id).await?;
    if snapshot.record.account_id == caller.account_id() {
        Ok(snapshot)
    } else {
        Err(CloudError::NotOwner {
            kind: Kind::Snapshot,
            message: format!("Not authorized for snapshot {id}"),
        })
    }
}

/// A snapshot as DescribeSnapshots lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedSnapshot {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// `amazon` when an administrator account owns it.
    pub owner_alias: Option<&'static str>,
}

/// The snapshots the caller may see, of those named (`ids`, every one when
/// empty; one it may not see is not found), that `selection` selects:
/// `RestorableBy` names the accounts that may create volumes from them.
pub async fn describe(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
    selection: &Selection,
) -> Result<Vec<ListedSnapshot>, CloudError> {
    let snapshots = visible(cloud, caller).await?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !snapshots.iter().any(|s| s.id() == id.as_str()))
    {
        return Err(not_found(missing));
    }
    let caller = caller.account_id();
    let admins = Admins::load(cloud).await?;
    let mut selected = Vec::new();
    for snapshot in snapshots {
        let owner = snapshot.record.account_id.as_str();
        if !(ids.is_empty() || ids.iter().any(|id| id == snapshot.id()))
            || !selection.owner_selected(owner, caller, &admins)
        {
            continue;
        }
        if !selection.users.is_empty() {
            let grantees = cloud.store.snapshot_permissions(snapshot.id()).await?;
            let shared = Shared {
                owner,
                public: grantees.iter().any(|g| g == "all"),
                accounts: &grantees,
            };
            if !selection.users_selected(&shared, caller, Grants::Usable) {
                continue;
            }
        }
        selected.push(ListedSnapshot {
            owner_alias: admins.alias_of(owner),
            snapshot,
        });
    }
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharing::{Owner, User};
    use crate::snapshots::attributes;
    use crate::snapshots::create::testing;
    use crate::testkit::{TestCloud, principal};

    fn ids(listed: &[ListedSnapshot]) -> Vec<&str> {
        let mut ids: Vec<&str> = listed.iter().map(|l| l.snapshot.id()).collect();
        ids.sort_unstable();
        ids
    }

    fn sorted(mut ids: Vec<&str>) -> Vec<&str> {
        ids.sort_unstable();
        ids
    }

    #[tokio::test]
    async fn describe_selects_by_owner_and_restorable_by() {
        let cloud = TestCloud::new().await;
        let owner = cloud.principal("owner").await;
        let other = cloud.principal("other").await;
        let admin = principal(&cloud, "admin", true).await;
        let own = testing::snapshot(&cloud, owner.account_id(), 1, true).await;
        let shared = testing::snapshot(&cloud, owner.account_id(), 1, true).await;
        let public = testing::snapshot(&cloud, admin.account_id(), 1, true).await;
        attributes::change_create_volume_permissions(
            &cloud,
            &owner,
            shared.id(),
            &[other.account_id().to_owned()],
            &[],
        )
        .await
        .expect("share");
        let err = attributes::change_create_volume_permissions(
            &cloud,
            &other,
            shared.id(),
            &["all".into()],
            &[],
        )
        .await
        .expect_err("only the owner shares");
        assert!(matches!(err, CloudError::NotOwner { .. }), "{err:?}");
        attributes::change_create_volume_permissions(
            &cloud,
            &admin,
            public.id(),
            &["all".into()],
            &[],
        )
        .await
        .expect("publish");

        let select = |owners: Vec<Owner>, users: Vec<User>| Selection { owners, users };
        let all = describe(&cloud, &other, &[], &Selection::default())
            .await
            .expect("describe");
        assert_eq!(ids(&all), sorted(vec![shared.id(), public.id()]));
        let by_admins = describe(&cloud, &other, &[], &select(vec![Owner::Admins], vec![]))
            .await
            .expect("amazon");
        assert_eq!(ids(&by_admins), vec![public.id()]);
        assert_eq!(by_admins[0].owner_alias, Some("amazon"));
        let restorable = describe(&cloud, &other, &[], &select(vec![], vec![User::Caller]))
            .await
            .expect("restorable by self");
        assert_eq!(ids(&restorable), sorted(vec![shared.id(), public.id()]));
        let public_only = describe(&cloud, &other, &[], &select(vec![], vec![User::All]))
            .await
            .expect("restorable by all");
        assert_eq!(ids(&public_only), vec![public.id()]);
        let others_shares = describe(
            &cloud,
            &other,
            &[],
            &select(vec![], vec![User::Account(owner.account_id().into())]),
        )
        .await
        .expect("another owner's shares");
        assert!(others_shares.is_empty());
        let mine_shared = describe(
            &cloud,
            &owner,
            &[],
            &select(
                vec![Owner::Caller],
                vec![User::Account(other.account_id().into())],
            ),
        )
        .await
        .expect("shared with other");
        assert_eq!(ids(&mine_shared), vec![shared.id()]);
        let err = describe(
            &cloud,
            &other,
            &[own.id().to_owned()],
            &Selection::default(),
        )
        .await
        .expect_err("not visible");
        assert_eq!(err, not_found(own.id()));

        let grantees = attributes::create_volume_permissions(&cloud, &owner, shared.id())
            .await
            .expect("permissions");
        assert_eq!(grantees, vec![other.account_id().to_owned()]);
        attributes::reset_create_volume_permissions(&cloud, &owner, shared.id())
            .await
            .expect("reset");
        let err = describe(
            &cloud,
            &other,
            &[shared.id().to_owned()],
            &Selection::default(),
        )
        .await
        .expect_err("no longer shared");
        assert_eq!(err, not_found(shared.id()));
    }
}
