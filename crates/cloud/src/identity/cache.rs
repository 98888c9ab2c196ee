//! Callers' parsed identities, kept between requests: loading a user's
//! policies (its row, its groups, its managed policies) and parsing them
//! costs more than deciding a request. An entry is good for as long as its
//! account's IAM generation — read with the access key that signed the
//! request, and bumped by the store with every change to the account's
//! identities, by whichever process — is the one it was loaded under.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use mallee_store::Store;

use super::Result;
use super::authorize::CallerIdentity;
use crate::Principal;

/// Entries kept before the cache starts over (a bound on memory, not a
/// tuning knob: a busy cloud has far fewer active callers).
const MAX_ENTRIES: usize = 10_000;

/// Who a cached identity is: account, user, and the role session if any.
type Key = (String, String, Option<(String, String)>);

/// The cache.
#[derive(Debug, Default)]
pub struct IdentityCache {
    entries: Mutex<HashMap<Key, (i64, Arc<CallerIdentity>)>>,
}

impl IdentityCache {
    /// The identity of `principal`, loaded unless a copy loaded under the
    /// account's current IAM generation is held.
    pub async fn caller(
        &self,
        store: &dyn Store,
        principal: &Principal,
    ) -> Result<Arc<CallerIdentity>> {
        let key: Key = (
            principal.account_id().to_owned(),
            principal.user_name.clone(),
            principal
                .session
                .as_ref()
                .and_then(|s| s.role_name.clone().map(|r| (r, s.session_name.clone()))),
        );
        let generation = principal.account.iam_generation;
        if let Some((held, identity)) = self.lock().get(&key)
            && *held == generation
        {
            return Ok(Arc::clone(identity));
        }
        let identity = Arc::new(CallerIdentity::load(store, principal).await?);
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (generation, Arc::clone(&identity)));
        Ok(identity)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (i64, Arc<CallerIdentity>)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{policies, users};
    use crate::testkit::TestCloud;

    #[tokio::test]
    async fn held_until_the_account_changes() {
        let cloud = TestCloud::new().await;
        let admin = cloud.principal("acme").await;
        let store = &*cloud.store;
        let account = admin.account_id().to_owned();
        users::create(store, &account, "ci", None, Default::default())
            .await
            .expect("user");
        let caller = |account: mallee_store::Account| Principal {
            account,
            user_name: "ci".into(),
            access_key_id: "AKIACI".into(),
            session: None,
        };
        let now = || async {
            store
                .account_by_id(&account)
                .await
                .expect("read")
                .expect("account")
        };
        let first = caller(now().await);
        let a = cloud.identities.caller(store, &first).await.expect("load");
        let b = cloud.identities.caller(store, &first).await.expect("held");
        assert!(
            Arc::ptr_eq(&a, &b),
            "the same generation is served from the cache"
        );
        policies::put(
            store,
            &account,
            &policies::Holder::User("ci".into()),
            "p",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}"#,
        )
        .await
        .expect("policy");
        let second = caller(now().await);
        assert!(second.account.iam_generation > first.account.iam_generation);
        let c = cloud
            .identities
            .caller(store, &second)
            .await
            .expect("reload");
        assert!(
            !Arc::ptr_eq(&a, &c),
            "a change to the account's identities is seen at once"
        );
        let target = super::super::authorize::Target {
            arn: "*".into(),
            context: mallee_policy::Context::new(),
        };
        let ctx = mallee_policy::Context::new();
        assert_eq!(
            a.decide("ec2:RunInstances", &target, &ctx).verdict,
            mallee_policy::Verdict::ImplicitDeny
        );
        assert_eq!(
            c.decide("ec2:RunInstances", &target, &ctx).verdict,
            mallee_policy::Verdict::Allow
        );
    }
}
