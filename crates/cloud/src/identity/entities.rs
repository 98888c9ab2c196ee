//! The steps every IAM entity kind (groups, roles, managed policies,
//! instance profiles) shares: create under a unique name, load with its
//! typed document, edit by compare-and-set, delete once a check passes.

use mallee_store::{IamEntity, Store, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{CAS_ATTEMPTS, IdentityError, Result, decode, encode};
use crate::ids;

/// What the API calls an entity of `kind` in messages.
fn noun(kind: &str) -> &str {
    match kind {
        super::GROUP => "group",
        super::ROLE => "role",
        super::POLICY => "policy",
        super::INSTANCE_PROFILE => "Instance Profile",
        other => other,
    }
}

/// `NoSuchEntity` for a missing entity, in IAM's words.
pub fn missing(kind: &str, name: &str) -> IdentityError {
    IdentityError::NoSuchEntity(format!(
        "The {} with name {name} cannot be found.",
        noun(kind)
    ))
}

/// A new unique id: `prefix` (`AGPA`, `AROA`, `ANPA`, `AIPA`) and 17
/// base-32 characters, as IAM's ids look.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", &ids::user_id()[4..])
}

/// Stores a new entity; `EntityAlreadyExists` when the name is taken.
pub async fn create<T: Serialize>(
    store: &dyn Store,
    account_id: &str,
    kind: &str,
    name: &str,
    id_prefix: &str,
    details: &T,
) -> Result<IamEntity> {
    let entity = IamEntity {
        account_id: account_id.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        entity_id: new_id(id_prefix),
        details: encode(kind, details)?,
        revision: 0,
        created_at: ids::now_millis(),
    };
    match store.create_entity(&entity).await {
        Ok(()) => Ok(entity),
        Err(StoreError::Conflict(_)) => {
            let mut noun = noun(kind).to_owned();
            if let Some(first) = noun.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            Err(IdentityError::EntityAlreadyExists(format!(
                "{noun} with name {name} already exists."
            )))
        }
        Err(e) => Err(e.into()),
    }
}

/// A stored entity and its document; `NoSuchEntity` when there is none.
pub async fn load<T: DeserializeOwned + Default>(
    store: &dyn Store,
    account_id: &str,
    kind: &str,
    name: &str,
) -> Result<(IamEntity, T)> {
    let entity = store
        .entity(account_id, kind, name)
        .await?
        .ok_or_else(|| missing(kind, name))?;
    let details = decode(kind, &entity.details)?;
    Ok((entity, details))
}

/// Applies `change` to an entity's document and stores it, retrying when
/// another request changed it meanwhile (`change` sees the latest).
pub async fn modify<T, R>(
    store: &dyn Store,
    account_id: &str,
    kind: &str,
    name: &str,
    mut change: impl FnMut(&mut T) -> Result<R>,
) -> Result<R>
where
    T: DeserializeOwned + Default + Serialize,
{
    for _ in 0..CAS_ATTEMPTS {
        let (mut entity, mut details) = load::<T>(store, account_id, kind, name).await?;
        let out = change(&mut details)?;
        entity.details = encode(kind, &details)?;
        if store.update_entity(&entity).await? {
            return Ok(out);
        }
    }
    Err(IdentityError::Concurrent(format!("{} {name}", noun(kind))))
}

/// Deletes an entity once `check` accepts its latest document.
pub async fn delete<T: DeserializeOwned + Default>(
    store: &dyn Store,
    account_id: &str,
    kind: &str,
    name: &str,
    mut check: impl FnMut(&T) -> Result<()>,
) -> Result<()> {
    for _ in 0..CAS_ATTEMPTS {
        let (entity, details) = load::<T>(store, account_id, kind, name).await?;
        check(&details)?;
        if store
            .delete_entity(account_id, kind, name, entity.revision)
            .await?
        {
            return Ok(());
        }
    }
    Err(IdentityError::Concurrent(format!("{} {name}", noun(kind))))
}

/// The account's entities of a kind with their documents.
pub async fn list<T: DeserializeOwned + Default>(
    store: &dyn Store,
    account_id: &str,
    kind: &str,
) -> Result<Vec<(IamEntity, T)>> {
    store
        .entities(account_id, kind)
        .await?
        .into_iter()
        .map(|e| {
            let d = decode(kind, &e.details)?;
            Ok((e, d))
        })
        .collect()
}

/// `DeleteConflict` in IAM's words (`Cannot delete entity, must … first.`).
pub fn conflict(what: &str) -> IdentityError {
    IdentityError::DeleteConflict(format!("Cannot delete entity, must {what} first."))
}

/// Refuses to delete an entity that still has inline or attached policies.
pub fn no_policies_left(
    inline: &std::collections::BTreeMap<String, String>,
    attached: &std::collections::BTreeSet<String>,
) -> Result<()> {
    if !inline.is_empty() {
        return Err(conflict("delete policies"));
    }
    if !attached.is_empty() {
        return Err(conflict("detach all policies"));
    }
    Ok(())
}
