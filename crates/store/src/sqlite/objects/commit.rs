//! Group commit of object-index writes.
//!
//! Every write of object versions, parts and uploads (PUT, DELETE,
//! completing or aborting a multipart upload, storing a part, a lifecycle
//! expiry) is queued to one committer, which applies whatever is queued
//! when it gets to it as one [`Batch`]: one transaction, so one WAL fsync
//! (`synchronous=FULL`) for all of them, and each account's storage use
//! read and written once. A caller gets its own result only after the
//! transaction holding its change committed, so an acknowledged write is as
//! durable as it was with a transaction of its own.
//!
//! A change the batch refuses (bucket or upload gone, quota exceeded) fails
//! alone: its step wrote nothing ([`Failure::Refused`]). When the database
//! fails instead, or the commit does, the batch is rolled back and its
//! changes are applied again one transaction each, so every caller gets the
//! error of its own change, and the changes that can succeed do.
//!
//! The queue is bounded: a caller waits for room before it queues
//! (backpressure). The committer is a task spawned when a change finds
//! none running, which ends when the queue is empty; a caller that goes
//! away after queuing does not take its change out of the batch (it may
//! still commit, as a request whose answer was lost may have taken effect).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use sqlx::SqlitePool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use super::tx::{Batch, Change, Failure, Outcome};
use crate::{StoreError, StoreResult};

/// Most changes queued at once; callers beyond wait for room.
pub(super) const QUEUE_LIMIT: usize = 1024;
/// Most changes in one transaction (a long batch delays its first caller).
const BATCH_LIMIT: usize = 256;

/// A queued change and where its result goes.
#[derive(Debug)]
struct Job {
    change: Change,
    reply: oneshot::Sender<StoreResult<Outcome>>,
    /// The job's room in the queue, given back once it is answered.
    _room: OwnedSemaphorePermit,
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Whether a committer task is running (it takes every job queued).
    running: bool,
}

/// The object index's committer (one per store; clones share it).
#[derive(Debug)]
pub(crate) struct Committer {
    pool: SqlitePool,
    queue: Mutex<Queue>,
    room: Arc<Semaphore>,
    /// Batches taken off the queue so far (each one or more changes).
    batches: AtomicU64,
}

impl Committer {
    /// A committer writing through `pool`.
    pub(crate) fn new(pool: SqlitePool) -> Arc<Self> {
        Arc::new(Self {
            pool,
            queue: Mutex::new(Queue::default()),
            room: Arc::new(Semaphore::new(QUEUE_LIMIT)),
            batches: AtomicU64::new(0),
        })
    }

    /// How many batches the committer has taken off its queue.
    #[cfg(test)]
    pub(super) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // A panic never happens while the lock is held (only queue
        // operations run under it), so a poisoned lock is still consistent.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `change` and returns its outcome once the transaction that
    /// applied it committed (or its error).
    pub(super) async fn submit(self: &Arc<Self>, change: Change) -> StoreResult<Outcome> {
        let room = Arc::clone(&self.room)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut queue = self.queue();
            queue.jobs.push_back(Job {
                change,
                reply,
                _room: room,
            });
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            let committer = Arc::clone(self);
            tokio::spawn(async move { committer.run().await });
        }
        // The committer answers every job it takes; a dropped answer means
        // it was stopped (its runtime shut down) with the outcome unknown.
        answer
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
    }

    /// Commits batches until the queue is empty.
    async fn run(self: Arc<Self>) {
        // If this task is dropped or panics part-way, the next change
        // starts a new committer, and the jobs still queued are dropped
        // (their callers get an error, as for a lost connection).
        let mut stopped = Stopped {
            committer: &self,
            armed: true,
        };
        loop {
            let jobs: Vec<Job> = {
                let mut queue = self.queue();
                if queue.jobs.is_empty() {
                    queue.running = false;
                    stopped.armed = false;
                    return;
                }
                let n = queue.jobs.len().min(BATCH_LIMIT);
                queue.jobs.drain(..n).collect()
            };
            self.batches.fetch_add(1, Ordering::Relaxed);
            let changes: Vec<&Change> = jobs.iter().map(|job| &job.change).collect();
            let outcomes = apply(&self.pool, &changes).await;
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                // A caller that went away no longer wants its answer.
                let _ = job.reply.send(outcome);
            }
        }
    }
}

/// Marks the committer stopped when its task ends other than by finding
/// the queue empty.
struct Stopped<'a> {
    committer: &'a Committer,
    armed: bool,
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut queue = self.committer.queue();
            queue.running = false;
            queue.jobs.clear();
        }
    }
}

/// Applies `changes` in one transaction, or each in its own when that
/// fails; the outcomes are in the changes' order.
async fn apply(pool: &SqlitePool, changes: &[&Change]) -> Vec<StoreResult<Outcome>> {
    if changes.len() > 1 {
        match apply_together(pool, changes).await {
            Ok(outcomes) => return outcomes,
            Err(err) => tracing::debug!(
                changes = changes.len(),
                error = %err,
                "object index batch failed, applying its changes one by one"
            ),
        }
    }
    let mut outcomes = Vec::with_capacity(changes.len());
    for change in changes {
        outcomes.push(apply_alone(pool, change).await);
    }
    outcomes
}

/// All `changes` in one transaction; refused changes fail alone. `Err`
/// when the transaction failed (nothing of it is kept).
async fn apply_together(
    pool: &SqlitePool,
    changes: &[&Change],
) -> StoreResult<Vec<StoreResult<Outcome>>> {
    let mut batch = Batch::begin(pool).await?;
    let mut outcomes = Vec::with_capacity(changes.len());
    for change in changes {
        match batch.apply(change).await {
            Ok(outcome) => outcomes.push(Ok(outcome)),
            Err(Failure::Refused(err)) => outcomes.push(Err(err)),
            // Dropping the batch rolls its transaction back.
            Err(Failure::Broken(err)) => return Err(err),
        }
    }
    batch.commit().await?;
    Ok(outcomes)
}

/// One change in its own transaction.
async fn apply_alone(pool: &SqlitePool, change: &Change) -> StoreResult<Outcome> {
    let mut batch = Batch::begin(pool).await?;
    match batch.apply(change).await {
        Ok(outcome) => {
            batch.commit().await?;
            Ok(outcome)
        }
        Err(Failure::Refused(err) | Failure::Broken(err)) => Err(err),
    }
}
