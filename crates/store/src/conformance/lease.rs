//! Leadership leases: acquire, renew, release, expiry, generations, and
//! the fencing of writes made under a generation that is no longer
//! current.

use std::time::Duration;

use crate::lease::{self, Fence};
use crate::{Store, StoreError};

const NAME: &str = "conformance-lease";
const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_millis(300);

pub(super) async fn run(store: &dyn Store) {
    acquire_renew_release(store).await;
    expiry(store).await;
    fencing(store).await;
}

async fn acquire_renew_release(store: &dyn Store) {
    assert_eq!(store.lease(NAME).await.expect("lease"), None);
    let a = store
        .acquire_lease(NAME, "a", LONG)
        .await
        .expect("acquire")
        .expect("a free lease is acquired");
    assert_eq!((a.holder.as_str(), a.generation), ("a", 1));
    assert_eq!(store.lease(NAME).await.expect("lease"), Some(a.clone()));
    // Another holder is refused while it is held.
    assert_eq!(store.acquire_lease(NAME, "b", LONG).await.expect("b"), None);
    // Its holder acquiring again keeps the generation.
    let again = store.acquire_lease(NAME, "a", LONG).await.expect("again");
    assert_eq!(again.map(|l| l.generation), Some(1));
    let renewed = store
        .renew_lease(NAME, "a", 1, LONG)
        .await
        .expect("renew")
        .expect("the holder renews");
    assert_eq!(renewed.generation, 1);
    assert!(renewed.expires_at >= a.expires_at);
    // Renewing someone else's lease, or at another generation, fails.
    assert_eq!(
        store.renew_lease(NAME, "b", 1, LONG).await.expect("b"),
        None
    );
    assert_eq!(
        store.renew_lease(NAME, "a", 2, LONG).await.expect("a2"),
        None
    );
    assert!(!store.release_lease(NAME, "b", 1).await.expect("b release"));
    assert!(store.release_lease(NAME, "a", 1).await.expect("release"));
    // Released: renewing fails, the next holder gets the next generation.
    assert_eq!(
        store.renew_lease(NAME, "a", 1, LONG).await.expect("a"),
        None
    );
    let b = store
        .acquire_lease(NAME, "b", LONG)
        .await
        .expect("acquire")
        .expect("a released lease is acquired");
    assert_eq!((b.holder.as_str(), b.generation), ("b", 2));
    // Taking by force (a store one process opens) bumps it too.
    let c = store.take_lease(NAME, "c", LONG).await.expect("take");
    assert_eq!((c.holder.as_str(), c.generation), ("c", 3));
    assert_eq!(
        store.renew_lease(NAME, "b", 2, LONG).await.expect("b"),
        None
    );
    assert!(store.release_lease(NAME, "c", 3).await.expect("release"));
}

async fn expiry(store: &dyn Store) {
    let name = "conformance-expiry";
    let a = store
        .acquire_lease(name, "a", SHORT)
        .await
        .expect("acquire")
        .expect("free");
    assert_eq!(
        store.acquire_lease(name, "b", SHORT).await.expect("b"),
        None
    );
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    // Expired but not taken: its holder may still renew.
    let renewed = store
        .renew_lease(name, "a", a.generation, SHORT)
        .await
        .expect("renew");
    assert_eq!(renewed.map(|l| l.generation), Some(a.generation));
    tokio::time::sleep(SHORT + Duration::from_millis(100)).await;
    let b = store
        .acquire_lease(name, "b", LONG)
        .await
        .expect("acquire")
        .expect("an expired lease is taken over");
    assert_eq!(b.generation, a.generation + 1);
    // Once taken, the old holder's renewal fails.
    assert_eq!(
        store
            .renew_lease(name, "a", a.generation, SHORT)
            .await
            .expect("renew"),
        None
    );
    assert!(
        store
            .release_lease(name, "b", b.generation)
            .await
            .expect("release")
    );
}

async fn fencing(store: &dyn Store) {
    let name = "conformance-fence";
    let first = store
        .acquire_lease(name, "a", LONG)
        .await
        .expect("acquire")
        .expect("free");
    let fence = |generation| Fence {
        lease: name.into(),
        generation,
    };
    // A write under the current generation lands.
    let (account, user) = super::account("210000000001", "fenced-one");
    lease::scope(
        fence(first.generation),
        store.create_account(&account, &user),
    )
    .await
    .expect("a write under the current generation");
    let second = store.take_lease(name, "b", LONG).await.expect("take");
    // Under the old generation: refused, and nothing is written.
    let (account, user) = super::account("210000000002", "fenced-two");
    let refused = lease::scope(
        fence(first.generation),
        store.create_account(&account, &user),
    )
    .await;
    assert!(
        matches!(refused, Err(StoreError::Fenced(ref v)) if v.generation == first.generation
            && v.current == Some(second.generation)),
        "{refused:?}"
    );
    assert_eq!(
        store.account_by_id("210000000002").await.expect("read"),
        None
    );
    // So is a fence on a lease that does not exist.
    let ghost = Fence {
        lease: "no-such-lease".into(),
        generation: 1,
    };
    let refused = lease::scope(ghost, store.create_account(&account, &user)).await;
    assert!(matches!(refused, Err(StoreError::Fenced(_))), "{refused:?}");
    // The new generation writes; unfenced writes (API requests) always do.
    lease::scope(
        fence(second.generation),
        store.create_account(&account, &user),
    )
    .await
    .expect("a write under the new generation");
    store
        .delete_account("210000000002")
        .await
        .expect("unfenced write");
    store
        .delete_account("210000000001")
        .await
        .expect("unfenced write");
    assert!(
        store
            .release_lease(name, "b", second.generation)
            .await
            .expect("release")
    );
}
