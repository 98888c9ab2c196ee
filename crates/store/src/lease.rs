//! Leadership leases with fencing (issue 18): several controllers share one
//! PostgreSQL database, all serve the API, but background work
//! (reconcilers, lifecycle passes) must run on exactly one of them.
//!
//! A lease is a row (name, holder, generation, expiry). A holder acquires
//! it when it is free or expired, renews it while it holds it, and releases
//! it on a clean shutdown. Every acquisition by a holder that did not hold
//! it bumps the generation, and that generation is the fencing token: a
//! leader that stalled (a long GC-like pause, a network partition, a
//! SIGSTOP) past its expiry may still have writes in flight when another
//! controller has taken over, and those writes must not land.
//!
//! Why a task-local rather than a parameter: the background work reaches
//! the store through dozens of methods of the [`Store`](crate::Store)
//! trait. Threading a token through every one of them would touch every
//! method of both backends. Instead the work runs inside [`scope`] with
//! the generation it was started under, and the one place every write
//! passes through checks it against the lease row *inside the same
//! transaction*, after taking the write lock: PostgreSQL's `lock_writes`
//! (every write transaction takes the advisory lock there), SQLite's
//! `write_tx` (`BEGIN IMMEDIATE`). Because acquisitions are themselves
//! writes under the same lock, a write either commits before a takeover
//! or is refused with [`StoreError::Fenced`](crate::StoreError::Fenced);
//! it can never commit after one. Writes made outside any scope (API
//! requests, which every controller serves) are not fenced.
//!
//! Tasks the background work spawns must keep the token: they start
//! through [`spawn`], which carries the current fence into the new task
//! (tokio's task-locals are not inherited by `tokio::spawn`).
//!
//! SQLite: only one process opens a database file (the controller claims
//! its data directory), so its lease never really moves between
//! processes; SQLite's single-statement writes outside `write_tx` and its
//! group-committed object writes are therefore not checked. PostgreSQL
//! checks every write.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

use crate::{StoreResult, UnixMillis};

/// The lease whose holder runs a controller's background work.
pub const BACKGROUND_LEASE: &str = "background";

/// A lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What the lease is for (e.g. [`BACKGROUND_LEASE`]).
    pub name: String,
    /// Who holds (or last held) it.
    pub holder: String,
    /// The fencing token: bumped by every acquisition by a new holder.
    pub generation: i64,
    /// When it lapses unless renewed, in milliseconds of the database's
    /// clock (0 once released).
    pub expires_at: UnixMillis,
}

/// The leases of the store.
#[async_trait]
pub trait LeaseIndex {
    /// Takes lease `name` for `holder` for `ttl` when nobody holds it, its
    /// holder let it expire or released it, or `holder` already holds it
    /// (then it is renewed and keeps its generation). A holder that did
    /// not hold it gets the next generation. `None` while another holder
    /// has it.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<Option<Lease>>;
    /// Takes lease `name` for `holder` whoever holds it, with the next
    /// generation: for a store only one process can open (SQLite), where a
    /// lease left by a killed predecessor must not delay the new process.
    async fn take_lease(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<Lease>;
    /// Extends the lease by `ttl` from now if `holder` still holds it at
    /// `generation` (even past its expiry, as long as nobody took it since);
    /// `None` once someone else has taken it.
    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        generation: i64,
        ttl: Duration,
    ) -> StoreResult<Option<Lease>>;
    /// Lets the lease go at once (clean shutdown) if `holder` still holds
    /// it at `generation`; returns whether it did.
    async fn release_lease(&self, name: &str, holder: &str, generation: i64) -> StoreResult<bool>;
    /// The lease as stored, if it was ever taken.
    async fn lease(&self, name: &str) -> StoreResult<Option<Lease>>;
}

/// The lease generation a piece of background work runs under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease's name.
    pub lease: String,
    /// The generation it was acquired at.
    pub generation: i64,
}

tokio::task_local! {
    static FENCE: Fence;
}

/// Runs `work` with its store writes fenced by `fence`.
pub async fn scope<F: Future>(fence: Fence, work: F) -> F::Output {
    FENCE.scope(fence, work).await
}

/// Runs `start` (which spawns the background tasks through [`spawn`])
/// with `fence` current, so every task it spawns is fenced by it.
pub fn sync_scope<R>(fence: Fence, start: impl FnOnce() -> R) -> R {
    FENCE.sync_scope(fence, start)
}

/// The fence the current task runs under, if any.
pub fn current() -> Option<Fence> {
    FENCE.try_with(Fence::clone).ok()
}

/// `tokio::spawn` that keeps the caller's fence (if any) in the new task.
pub fn spawn<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match current() {
        Some(fence) => tokio::spawn(FENCE.scope(fence, work)),
        None => tokio::spawn(work),
    }
}

/// A write refused because the lease generation it ran under is no longer
/// the current one. Carried inside `sqlx::Error::Database` where the
/// check runs in code that returns sqlx errors (PostgreSQL's
/// `lock_writes`), and turned into [`StoreError::Fenced`](crate::StoreError::Fenced)
/// by the conversion from `sqlx::Error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lease {lease} is no longer held at generation {generation} (now {current:?})")]
pub struct FenceViolation {
    /// The lease's name.
    pub lease: String,
    /// The generation the write ran under.
    pub generation: i64,
    /// The lease's generation now (`None`: the lease does not exist).
    pub current: Option<i64>,
}

impl sqlx::error::DatabaseError for FenceViolation {
    fn message(&self) -> &str {
        "write fenced: the lease generation it ran under is no longer current"
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}

/// `Err` when the current task runs under a fence whose generation is not
/// `current` (the lease's generation read inside the write transaction).
pub(crate) fn check(fence: &Fence, current: Option<i64>) -> Result<(), FenceViolation> {
    if current == Some(fence.generation) {
        Ok(())
    } else {
        Err(FenceViolation {
            lease: fence.lease.clone(),
            generation: fence.generation,
            current,
        })
    }
}

/// A TTL as whole milliseconds (at least 1).
pub(crate) fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// What an acquisition does to the lease row, decided the same way by
/// both backends from the row read inside the write transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acquisition {
    /// No row yet: insert it at generation 1.
    Insert,
    /// The holder still holds it: extend the expiry, same generation.
    Extend,
    /// Free, expired, released or taken by force: a new generation.
    TakeOver {
        /// The generation the new holder gets.
        generation: i64,
    },
    /// Another holder has it.
    Refuse,
}

/// Decides an acquisition by `holder` at `now` of the lease stored as
/// `row` (holder, generation, expiry); `force` takes it from anyone.
pub(crate) fn decide(
    row: Option<(&str, i64, UnixMillis)>,
    holder: &str,
    now: UnixMillis,
    force: bool,
) -> Acquisition {
    match row {
        None => Acquisition::Insert,
        Some((held_by, _, expires_at)) if !force && held_by == holder && expires_at > now => {
            Acquisition::Extend
        }
        Some((_, generation, expires_at)) if force || expires_at <= now => Acquisition::TakeOver {
            generation: generation + 1,
        },
        Some(_) => Acquisition::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquisitions() {
        assert_eq!(decide(None, "a", 10, false), Acquisition::Insert);
        assert_eq!(
            decide(Some(("a", 3, 20)), "a", 10, false),
            Acquisition::Extend
        );
        assert_eq!(
            decide(Some(("b", 3, 20)), "a", 10, false),
            Acquisition::Refuse
        );
        assert_eq!(
            decide(Some(("b", 3, 10)), "a", 10, false),
            Acquisition::TakeOver { generation: 4 }
        );
        // Its own expired lease: someone may have written meanwhile under
        // nothing, but its old work was stopped; a new generation anyway.
        assert_eq!(
            decide(Some(("a", 3, 5)), "a", 10, false),
            Acquisition::TakeOver { generation: 4 }
        );
        assert_eq!(
            decide(Some(("b", 3, 20)), "a", 10, true),
            Acquisition::TakeOver { generation: 4 }
        );
    }

    #[tokio::test]
    async fn spawned_tasks_keep_the_fence() {
        let fence = Fence {
            lease: BACKGROUND_LEASE.into(),
            generation: 7,
        };
        assert_eq!(current(), None);
        let seen = scope(fence.clone(), async { spawn(async { current() }).await })
            .await
            .expect("join");
        assert_eq!(seen, Some(fence));
        assert_eq!(spawn(async { current() }).await.expect("join"), None);
    }
}
