//! Role credentials for instances with an instance profile: fetched from
//! the controller (`GET {controller}{INSTANCE_CREDENTIALS_PATH_PREFIX}{id}`
//! over mutual TLS) when an instance first asks the metadata service, kept
//! per instance, and replaced by fresh ones well before they expire, as
//! EC2 rotates them: a guest that re-reads
//! `iam/security-credentials/ROLE` whenever its copy nears expiry never
//! holds expired credentials.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use mallee_node_api::{INSTANCE_CREDENTIALS_PATH_PREFIX, InstanceCredentials};
use tokio::sync::Mutex;

/// Credentials are replaced once less than this much of their life is
/// left (EC2 makes new ones available at least five minutes before).
const REFRESH_BEFORE_MS: i64 = 15 * 60 * 1000;

/// Why there are no credentials for an instance.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The controller has none for it (no profile, no role, or a role
    /// that does not trust EC2).
    #[error("no role credentials for the instance: {0}")]
    None(String),
    /// The controller could not be asked or answered badly.
    #[error("fetching role credentials: {0}")]
    Fetch(String),
}

/// Where credentials come from.
#[async_trait]
pub trait CredentialSource: Send + Sync + std::fmt::Debug {
    /// Fresh credentials for `instance_id`.
    async fn fetch(&self, instance_id: &str) -> Result<InstanceCredentials, CredentialError>;
}

/// The controller's node endpoint.
#[derive(Debug, Clone)]
pub struct HttpCredentialSource {
    base_url: String,
    http: reqwest::Client,
}

impl HttpCredentialSource {
    /// A source asking the controller at `controller_url` with a client
    /// from `http` (the node's mutual-TLS client).
    pub fn new(controller_url: &str, http: reqwest::ClientBuilder) -> Result<Self, reqwest::Error> {
        Ok(Self {
            base_url: controller_url.trim_end_matches('/').to_owned(),
            http: http.build()?,
        })
    }
}

#[async_trait]
impl CredentialSource for HttpCredentialSource {
    async fn fetch(&self, instance_id: &str) -> Result<InstanceCredentials, CredentialError> {
        let url = format!(
            "{}{INSTANCE_CREDENTIALS_PATH_PREFIX}{instance_id}",
            self.base_url
        );
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| CredentialError::Fetch(format!("GET {url}: {e}")))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            let why = response.text().await.unwrap_or_default();
            return Err(CredentialError::None(why.trim().to_owned()));
        }
        if !status.is_success() {
            let body: String = response
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(CredentialError::Fetch(format!(
                "GET {url} answered {status}: {}",
                body.trim()
            )));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| CredentialError::Fetch(format!("GET {url}: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| CredentialError::Fetch(format!("GET {url}: {e}")))
    }
}

/// Credentials per instance, refreshed before they expire.
#[derive(Debug)]
pub struct CredentialCache {
    source: Arc<dyn CredentialSource>,
    held: Mutex<HashMap<String, InstanceCredentials>>,
}

impl CredentialCache {
    /// A cache over `source`.
    pub fn new(source: Arc<dyn CredentialSource>) -> Arc<Self> {
        Arc::new(Self {
            source,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// Credentials for `instance_id` valid for a while yet, at `now_ms`:
    /// the held ones, or new ones when those near expiry (and the held
    /// ones, still valid, when the controller cannot be reached).
    pub async fn get(
        &self,
        instance_id: &str,
        now_ms: i64,
    ) -> Result<InstanceCredentials, CredentialError> {
        let mut held = self.held.lock().await;
        if let Some(c) = held.get(instance_id)
            && c.expires_at - now_ms > REFRESH_BEFORE_MS.min((c.expires_at - c.issued_at) / 4)
        {
            return Ok(c.clone());
        }
        match self.source.fetch(instance_id).await {
            Ok(fresh) => {
                held.insert(instance_id.to_owned(), fresh.clone());
                Ok(fresh)
            }
            Err(e) => match held.get(instance_id) {
                Some(c) if c.expires_at > now_ms && matches!(e, CredentialError::Fetch(_)) => {
                    tracing::warn!(instance_id, error = %e, "serving held role credentials: refresh failed");
                    Ok(c.clone())
                }
                _ => {
                    held.remove(instance_id);
                    Err(e)
                }
            },
        }
    }

    /// Forgets an instance's credentials (it left the node).
    pub async fn forget(&self, instance_id: &str) {
        self.held.lock().await.remove(instance_id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

    use super::*;

    #[derive(Debug, Default)]
    struct Counting {
        calls: AtomicUsize,
        now: AtomicI64,
        fail: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl CredentialSource for Counting {
        async fn fetch(&self, instance_id: &str) -> Result<InstanceCredentials, CredentialError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(CredentialError::Fetch("controller down".into()));
            }
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let now = self.now.load(Ordering::SeqCst);
            Ok(InstanceCredentials {
                role_name: "app".into(),
                access_key_id: format!("ASIA{instance_id}{n}"),
                secret_access_key: "s".into(),
                token: "t".into(),
                expires_at: now + 3_600_000,
                issued_at: now,
            })
        }
    }

    #[tokio::test]
    async fn held_until_near_expiry_then_rotated() {
        let source = Arc::new(Counting::default());
        let cache = CredentialCache::new(source.clone());
        let first = cache.get("i-1", 0).await.expect("first");
        assert_eq!(cache.get("i-1", 30 * 60_000).await.expect("held"), first);
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);
        // 14 minutes before expiry: replaced by new ones.
        source.now.store(46 * 60_000, Ordering::SeqCst);
        let second = cache.get("i-1", 46 * 60_000).await.expect("rotated");
        assert_ne!(second.access_key_id, first.access_key_id);
        assert!(second.expires_at > first.expires_at);
        // Another instance has its own.
        assert_ne!(
            cache
                .get("i-2", 46 * 60_000)
                .await
                .expect("other")
                .access_key_id,
            second.access_key_id
        );
    }

    #[tokio::test]
    async fn held_credentials_outlive_a_failed_refresh_but_not_their_expiry() {
        let source = Arc::new(Counting::default());
        let cache = CredentialCache::new(source.clone());
        let first = cache.get("i-1", 0).await.expect("first");
        source.fail.store(true, Ordering::SeqCst);
        assert_eq!(cache.get("i-1", 50 * 60_000).await.expect("held"), first);
        assert!(
            cache.get("i-1", 61 * 60_000).await.is_err(),
            "expired ones are never served"
        );
    }
}
