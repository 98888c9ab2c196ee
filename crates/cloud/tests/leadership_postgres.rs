//! Two controllers' leadership loops over one PostgreSQL database (a
//! throw-away server, crates/store/tests/support): exactly one runs the
//! background work; when the leader stops renewing without releasing (a
//! SIGKILLed or frozen process), the other takes over within 10 s, and
//! writes the old leader's work still makes under its generation are
//! refused by the fence.

#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mallee_cloud::leadership::{Leadership, Mode, Timing};
use mallee_store::lease::{self, BACKGROUND_LEASE, Fence};
use mallee_store::postgres::PostgresStore;
use mallee_store::{Store, StoreError};
use support::PgServer;

/// What one controller's background work saw: the writes it made and the
/// errors its writes got.
#[derive(Default)]
struct Seen {
    written: usize,
    fenced: usize,
    other_errors: Vec<String>,
}

/// Background work that records, every 50 ms, which controller last ran
/// it: a setting write, fenced like every background write.
fn worker(
    store: Arc<dyn Store>,
    name: &'static str,
    seen: Arc<Mutex<Seen>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    vec![lease::spawn(async move {
        loop {
            let result = store.set_setting("background-owner", name).await;
            {
                let mut seen = seen.lock().expect("lock");
                match result {
                    Ok(()) => seen.written += 1,
                    Err(e) if e.is_fenced() => seen.fenced += 1,
                    Err(e) => seen.other_errors.push(e.to_string()),
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })]
}

async fn until(deadline: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if done() {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_moves_to_the_other_controller_and_fences_the_old_one() {
    let server = PgServer::start();
    let url = server.create_database().await;
    // Two pools: two controller processes.
    let store_a: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).await.expect("open a"));
    let store_b: Arc<dyn Store> = Arc::new(PostgresStore::open(&url).await.expect("open b"));
    // The production timings: a killed leader's work must move within 10 s.
    let timing = Timing::default();

    let seen_a = Arc::new(Mutex::new(Seen::default()));
    let a = {
        let (store, seen) = (store_a.clone(), seen_a.clone());
        Leadership::spawn(
            store_a.clone(),
            "controller-a".into(),
            Mode::Shared,
            timing,
            move || worker(store.clone(), "a", seen.clone()),
        )
    };
    until(Duration::from_secs(5), || a.generation().is_some())
        .await
        .expect("the first controller acquires the free lease");
    let first = a.generation().expect("leading");

    let seen_b = Arc::new(Mutex::new(Seen::default()));
    let b = {
        let (store, seen) = (store_b.clone(), seen_b.clone());
        Leadership::spawn(
            store_b.clone(),
            "controller-b".into(),
            Mode::Shared,
            timing,
            move || worker(store.clone(), "b", seen.clone()),
        )
    };
    // B tries at once and every 2 s; across several renewals it never
    // gets the lease while A holds it, and its work never starts.
    tokio::time::sleep(timing.retry * 2 + Duration::from_millis(500)).await;
    assert_eq!(b.generation(), None, "only one controller leads");
    assert_eq!(seen_b.lock().expect("lock").written, 0);
    assert!(seen_a.lock().expect("lock").written > 0, "A's work runs");
    assert_eq!(
        store_b
            .lease(BACKGROUND_LEASE)
            .await
            .expect("lease")
            .map(|l| l.holder),
        Some("controller-a".to_owned())
    );

    // A stops renewing and does not release; its work keeps running, as a
    // frozen leader's would when it wakes.
    a.abandon();
    let took = until(Duration::from_secs(10), || b.generation().is_some())
        .await
        .expect("the other controller takes the lease within 10 s");
    eprintln!("hand-over took {took:?}");
    let second = b.generation().expect("leading");
    assert!(second > first, "a new holder gets a new generation");

    // A's work is now refused by the fence; B's lands.
    let fenced_by = |seen: &Arc<Mutex<Seen>>| seen.lock().expect("lock").fenced;
    until(Duration::from_secs(2), || fenced_by(&seen_a) > 0)
        .await
        .expect("the old leader's background writes are fenced");
    let b_writes = seen_b.lock().expect("lock").written;
    until(Duration::from_secs(2), || {
        seen_b.lock().expect("lock").written > b_writes
    })
    .await
    .expect("the new leader's work writes");
    // Whatever interleaving, the last write is B's: A's can no longer land.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        store_a
            .setting("background-owner")
            .await
            .expect("read")
            .as_deref(),
        Some("b")
    );
    // A write made directly under the stale generation: the fencing error,
    // naming both generations; unfenced writes (the API) still work on A.
    let stale = lease::scope(
        Fence {
            lease: BACKGROUND_LEASE.into(),
            generation: first,
        },
        store_a.set_setting("stale", "a"),
    )
    .await;
    assert!(
        matches!(&stale, Err(StoreError::Fenced(v)) if v.generation == first && v.current == Some(second)),
        "{stale:?}"
    );
    assert_eq!(store_a.setting("stale").await.expect("read"), None);
    store_a
        .set_setting("api", "a")
        .await
        .expect("an unfenced write");
    for seen in [&seen_a, &seen_b] {
        let errors = &seen.lock().expect("lock").other_errors;
        assert!(errors.is_empty(), "{errors:?}");
    }

    // A clean stop releases the lease at once.
    b.stop().await;
    let released = store_a
        .lease(BACKGROUND_LEASE)
        .await
        .expect("lease")
        .expect("row");
    assert_eq!(
        (released.holder.as_str(), released.expires_at),
        ("controller-b", 0)
    );
}
