//! Which controller runs the background work (reconcilers, lifecycle
//! passes) when several share one PostgreSQL database (issue 18): the one
//! holding the store's background lease (`mallee_store::lease`).
//!
//! Every controller serves the API; each runs a [`Leadership`] loop that
//! tries to acquire the lease every [`RETRY`], starts the background tasks
//! the moment it does (under the lease's generation as their fence), renews
//! every [`RENEW`] for [`TTL`], and aborts the tasks as soon as a renewal
//! fails or cannot be made for a whole TTL. A leader killed outright stops
//! renewing, so its lease lapses within TTL and another controller's next
//! try (at most RETRY later) takes it: under 10 s. A leader that is only
//! frozen or cut off may still have writes in flight when it wakes up;
//! the fence refuses them in the store.
//!
//! With SQLite only one process opens the database, so the lease is taken
//! at once ([`Mode::Exclusive`]), whoever the file says held it last: the
//! controller behaves as it did before leases existed.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use mallee_store::lease::{self, BACKGROUND_LEASE, Fence};
use mallee_store::{Lease, Store, StoreResult};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often a controller that does not hold the lease tries to take it.
pub const RETRY: Duration = Duration::from_secs(2);
/// How long a lease lasts unless renewed.
pub const TTL: Duration = Duration::from_secs(6);
/// How often the holder renews it.
pub const RENEW: Duration = Duration::from_secs(2);

/// How the lease is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only this process opens the store (SQLite): take it at once.
    Exclusive,
    /// Controllers share the store (PostgreSQL): take it when free.
    Shared,
}

/// Timings of the loop (the defaults above; tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// See [`RETRY`].
    pub retry: Duration,
    /// See [`TTL`].
    pub ttl: Duration,
    /// See [`RENEW`].
    pub renew: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            retry: RETRY,
            ttl: TTL,
            renew: RENEW,
        }
    }
}

/// A running leadership loop.
#[derive(Debug)]
pub struct Leadership {
    holder: String,
    /// The generation held now; 0 while not leading.
    generation: Arc<AtomicI64>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// This controller's holder id: host name, process id and a random
/// suffix (two controllers on one host, or a restarted one that got the
/// same pid, are still told apart).
pub fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

impl Leadership {
    /// Starts the loop. `start` spawns the background tasks (through
    /// `mallee_store::lease::spawn`, so they keep the fence) each time the
    /// lease is acquired; they are aborted when it is lost or on
    /// [`Leadership::stop`].
    pub fn spawn<F>(
        store: Arc<dyn Store>,
        holder: String,
        mode: Mode,
        timing: Timing,
        start: F,
    ) -> Self
    where
        F: Fn() -> Vec<JoinHandle<()>> + Send + Sync + 'static,
    {
        let generation = Arc::new(AtomicI64::new(0));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(
            store,
            holder.clone(),
            mode,
            timing,
            start,
            generation.clone(),
            stopped,
        ));
        Self {
            holder,
            generation,
            stop,
            task,
        }
    }

    /// This controller's holder id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The generation of the lease held now, if leading.
    pub fn generation(&self) -> Option<i64> {
        match self.generation.load(Ordering::SeqCst) {
            0 => None,
            g => Some(g),
        }
    }

    /// Clean shutdown: stops the background tasks and releases the lease,
    /// so another controller takes it at its next try.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Stops renewing without releasing the lease or stopping the tasks
    /// already started: what a frozen or partitioned leader looks like
    /// from the database (tests of hand-over and fencing).
    pub fn abandon(self) {
        self.task.abort();
    }
}

async fn run<F>(
    store: Arc<dyn Store>,
    holder: String,
    mode: Mode,
    timing: Timing,
    start: F,
    current: Arc<AtomicI64>,
    mut stopped: watch::Receiver<bool>,
) where
    F: Fn() -> Vec<JoinHandle<()>>,
{
    loop {
        let acquired: StoreResult<Option<Lease>> = match mode {
            Mode::Exclusive => store
                .take_lease(BACKGROUND_LEASE, &holder, timing.ttl)
                .await
                .map(Some),
            Mode::Shared => {
                store
                    .acquire_lease(BACKGROUND_LEASE, &holder, timing.ttl)
                    .await
            }
        };
        let lease = match acquired {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                if wait(&mut stopped, timing.retry).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not try the background lease");
                if wait(&mut stopped, timing.retry).await {
                    return;
                }
                continue;
            }
        };
        tracing::info!(
            holder = %holder,
            generation = lease.generation,
            "acquired the background lease: running reconcilers and lifecycle passes here"
        );
        let fence = Fence {
            lease: BACKGROUND_LEASE.to_owned(),
            generation: lease.generation,
        };
        current.store(lease.generation, Ordering::SeqCst);
        let tasks = lease::sync_scope(fence, &start);
        let stopping = hold(&*store, &holder, &lease, timing, &mut stopped).await;
        current.store(0, Ordering::SeqCst);
        for task in &tasks {
            task.abort();
        }
        if stopping {
            match store
                .release_lease(BACKGROUND_LEASE, &holder, lease.generation)
                .await
            {
                Ok(true) => {
                    tracing::info!(holder = %holder, generation = lease.generation, "released the background lease");
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not release the background lease"),
            }
            return;
        }
        tracing::warn!(
            holder = %holder,
            generation = lease.generation,
            "lost the background lease: background work stopped here"
        );
    }
}

/// Renews `lease` until it is lost (`false`) or the loop is stopped
/// (`true`). A renewal that fails with an error is retried; once a whole
/// TTL has passed since the last one that worked, another controller may
/// hold the lease, so it counts as lost.
async fn hold(
    store: &dyn Store,
    holder: &str,
    lease: &Lease,
    timing: Timing,
    stopped: &mut watch::Receiver<bool>,
) -> bool {
    let mut renewed = Instant::now();
    loop {
        if wait(stopped, timing.renew).await {
            return true;
        }
        match store
            .renew_lease(BACKGROUND_LEASE, holder, lease.generation, timing.ttl)
            .await
        {
            Ok(Some(_)) => renewed = Instant::now(),
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the background lease");
                if renewed.elapsed() >= timing.ttl {
                    return false;
                }
            }
        }
    }
}

/// Sleeps `period`; `true` when the loop was told to stop meanwhile.
async fn wait(stopped: &mut watch::Receiver<bool>, period: Duration) -> bool {
    if *stopped.borrow() {
        return true;
    }
    tokio::select! {
        changed = stopped.changed() => changed.is_err() || *stopped.borrow(),
        () = tokio::time::sleep(period) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite: a lease a killed predecessor left in the file (valid for
    /// another minute) does not delay this process's background work.
    #[tokio::test]
    async fn an_exclusive_store_leads_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            mallee_store::sqlite::SqliteStore::open(&dir.path().join("m.db"))
                .await
                .expect("open"),
        );
        let left = store
            .acquire_lease(BACKGROUND_LEASE, "killed", Duration::from_secs(60))
            .await
            .expect("acquire")
            .expect("free");
        let (started, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
        let leadership = Leadership::spawn(
            store.clone(),
            holder_id(),
            Mode::Exclusive,
            Timing::default(),
            move || {
                let started = started.clone();
                vec![lease::spawn(async move {
                    let _ = started.send(lease::current());
                })]
            },
        );
        let fence = tokio::time::timeout(Duration::from_millis(500), started_rx.recv())
            .await
            .expect("background work starts at once")
            .expect("sent")
            .expect("under a fence");
        assert_eq!(fence.generation, left.generation + 1);
        assert_eq!(leadership.generation(), Some(fence.generation));
        leadership.stop().await;
        let released = store
            .lease(BACKGROUND_LEASE)
            .await
            .expect("lease")
            .expect("row");
        assert_eq!(released.expires_at, 0);
    }
}
