//! [`MetalIndex`] on SQLite.

use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Row, Sqlite};

use super::{SqliteStore, is_foreign_key_violation, is_unique_violation};
use crate::metal::{
    MetalDistro, MetalGroup, MetalIndex, MetalProfile, MetalReservation, MetalSelection,
    MetalSystemRecord,
};
use crate::shared::metal::{self as sql, profile_from_row, system_from_row};
use crate::{StoreError, StoreResult, UnixMillis};

type SqliteQuery<'q> = Query<'q, Sqlite, SqliteArguments>;

impl SqliteStore {
    /// Runs `update`, an UPDATE bound up to the name of the system (`s`)
    /// it changes. `false` if there is none.
    async fn update_metal_system(
        &self,
        update: SqliteQuery<'_>,
        s: &MetalSystemRecord,
    ) -> StoreResult<bool> {
        let done = update
            .bind(&s.name)
            .execute(&self.pool)
            .await
            .map_err(system_conflict(s))?;
        Ok(done.rows_affected() > 0)
    }
}

/// Which unique column of `metal_systems` a violation is about.
fn system_conflict(system: &MetalSystemRecord) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |err| {
        if is_unique_violation(&err) {
            let msg = err.to_string();
            let what = ["mac", "ip", "token"]
                .into_iter()
                .find(|c| msg.contains(&format!("metal_systems.{c}")))
                .map_or_else(
                    || format!("system {}", system.name),
                    |c| format!("{c} of system {}", system.name),
                );
            StoreError::Conflict(what)
        } else if is_foreign_key_violation(&err) {
            StoreError::NotFound(format!("group {}", system.group_name))
        } else {
            StoreError::Database(err)
        }
    }
}

#[async_trait]
impl MetalIndex for SqliteStore {
    async fn put_metal_group(&self, group: &MetalGroup) -> StoreResult<()> {
        sqlx::query(sql::PUT_METAL_GROUP)
            .bind(&group.name)
            .bind(&group.description)
            .bind(group.created_at)
            .bind(&group.wipe)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn metal_groups(&self) -> StoreResult<Vec<MetalGroup>> {
        let rows = sqlx::query(sql::METAL_GROUPS).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(MetalGroup {
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    created_at: r.try_get("created_at")?,
                    wipe: r.try_get("wipe")?,
                })
            })
            .collect()
    }

    async fn delete_metal_group(&self, name: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let used: i64 = sqlx::query_scalar(sql::DELETE_METAL_GROUP_SELECT_METAL_SYSTEMS)
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        if used > 0 {
            return Err(StoreError::Conflict(format!(
                "group {name} has {used} system(s)"
            )));
        }
        let done = sqlx::query(sql::DELETE_METAL_GROUP_DELETE_METAL_GROUPS)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_metal_distro(&self, d: &MetalDistro) -> StoreResult<()> {
        sqlx::query(sql::PUT_METAL_DISTRO)
            .bind(&d.name)
            .bind(&d.kernel)
            .bind(&d.initrd)
            .bind(&d.kernel_args)
            .bind(d.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn metal_distros(&self) -> StoreResult<Vec<MetalDistro>> {
        let rows = sqlx::query(sql::METAL_DISTROS)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MetalDistro {
                    name: r.try_get("name")?,
                    kernel: r.try_get("kernel")?,
                    initrd: r.try_get("initrd")?,
                    kernel_args: r.try_get("kernel_args")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn delete_metal_distro(&self, name: &str) -> StoreResult<bool> {
        match sqlx::query(sql::DELETE_METAL_DISTRO)
            .bind(name)
            .execute(&self.pool)
            .await
        {
            Ok(done) => Ok(done.rows_affected() > 0),
            Err(e) if is_foreign_key_violation(&e) => Err(StoreError::Conflict(format!(
                "distro {name} is used by a profile"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    async fn put_metal_profile(&self, p: &MetalProfile) -> StoreResult<()> {
        sqlx::query(sql::PUT_METAL_PROFILE)
            .bind(&p.name)
            .bind(&p.distro)
            .bind(&p.spec)
            .bind(p.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_foreign_key_violation(&e) {
                    StoreError::NotFound(format!("distro {}", p.distro.as_deref().unwrap_or("")))
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    async fn metal_profiles(&self) -> StoreResult<Vec<MetalProfile>> {
        let rows = sqlx::query(sql::METAL_PROFILES)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(profile_from_row).collect()
    }

    async fn metal_profile(&self, name: &str) -> StoreResult<Option<MetalProfile>> {
        sqlx::query(sql::METAL_PROFILE)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(profile_from_row)
            .transpose()
    }

    async fn delete_metal_profile(&self, name: &str) -> StoreResult<bool> {
        let done = sqlx::query(sql::DELETE_METAL_PROFILE)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_metal_system(&self, s: &MetalSystemRecord) -> StoreResult<()> {
        let insert = sqlx::query(sql::INSERT_SYSTEM)
            .bind(&s.name)
            .bind(s.created_at)
            .bind(s.updated_at);
        sql::bind_state(sql::bind_admin(insert, s), s)
            .execute(&self.pool)
            .await
            .map_err(system_conflict(s))?;
        Ok(())
    }

    async fn update_metal_system_admin(&self, s: &MetalSystemRecord) -> StoreResult<bool> {
        self.update_metal_system(
            sql::bind_admin(sqlx::query(sql::UPDATE_ADMIN).bind(s.updated_at), s),
            s,
        )
        .await
    }

    async fn save_metal_state(&self, s: &MetalSystemRecord) -> StoreResult<bool> {
        self.update_metal_system(
            sql::bind_state(sqlx::query(sql::UPDATE_STATE).bind(s.updated_at), s),
            s,
        )
        .await
    }

    async fn metal_system(&self, name: &str) -> StoreResult<Option<MetalSystemRecord>> {
        sqlx::query(sql::SYSTEM_BY_NAME)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(system_from_row)
            .transpose()
    }

    async fn metal_systems(&self) -> StoreResult<Vec<MetalSystemRecord>> {
        let rows = sqlx::query(sql::SYSTEMS).fetch_all(&self.pool).await?;
        rows.iter().map(system_from_row).collect()
    }

    async fn delete_metal_system(&self, name: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let owner: Option<Option<String>> =
            sqlx::query_scalar(sql::DELETE_METAL_SYSTEM_SELECT_METAL_SYSTEMS)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        match owner {
            None => return Ok(false),
            Some(Some(owner)) => {
                return Err(StoreError::Conflict(format!(
                    "system {name} is owned by {owner}"
                )));
            }
            Some(None) => {}
        }
        sqlx::query(sql::DELETE_METAL_SYSTEM_DELETE_METAL_SYSTEMS)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn reserve_metal_systems(
        &self,
        selection: &MetalSelection,
        owner: &str,
        reserved_state_name: &str,
        reserved_state: &str,
        now: UnixMillis,
    ) -> StoreResult<MetalReservation> {
        // BEGIN IMMEDIATE: two reservations never read the same free rows.
        let mut tx = self.write_tx().await?;
        let names: Vec<String> = match selection {
            MetalSelection::Group { group, count } => {
                let exists: Option<String> =
                    sqlx::query_scalar(sql::RESERVE_METAL_SYSTEMS_SELECT_METAL_GROUPS)
                        .bind(group)
                        .fetch_optional(&mut *tx)
                        .await?;
                if exists.is_none() {
                    return Ok(MetalReservation::Unknown(format!("group {group}")));
                }
                let free: Vec<String> =
                    sqlx::query_scalar(sql::RESERVE_METAL_SYSTEMS_FREE_IN_GROUP)
                        .bind(group)
                        .fetch_all(&mut *tx)
                        .await?;
                if *count == 0 || free.len() < *count {
                    return Ok(MetalReservation::NotEnoughFree { free: free.len() });
                }
                free.into_iter().take(*count).collect()
            }
            MetalSelection::Names(names) => {
                for n in names {
                    let row: Option<(String, Option<String>)> =
                        sqlx::query_as(sql::RESERVE_METAL_SYSTEMS_STATE_OF_SYSTEM)
                            .bind(n)
                            .fetch_optional(&mut *tx)
                            .await?;
                    match row {
                        None => return Ok(MetalReservation::Unknown(format!("system {n}"))),
                        Some((state, owner)) if state != "free" || owner.is_some() => {
                            return Ok(MetalReservation::NotFree {
                                name: n.clone(),
                                state_name: state,
                            });
                        }
                        Some(_) => {}
                    }
                }
                names.clone()
            }
        };
        let mut out = Vec::new();
        for n in &names {
            sqlx::query(sql::RESERVE_METAL_SYSTEMS_UPDATE_METAL_SYSTEMS)
                .bind(owner)
                .bind(reserved_state_name)
                .bind(reserved_state)
                .bind(now)
                .bind(now)
                .bind(n)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query(sql::SYSTEM_BY_NAME)
                .bind(n)
                .fetch_one(&mut *tx)
                .await?;
            out.push(system_from_row(&row)?);
        }
        tx.commit().await?;
        Ok(MetalReservation::Reserved(out))
    }
}
