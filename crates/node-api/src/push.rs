//! State pushes from a node to its controller: the moment an instance's
//! observed state changes, the node posts a [`StateReport`] of what
//! changed to [`STATE_PATH`], so the controller records `running` (or
//! stopped, or failed) without waiting for its next reconciler pass.
//!
//! [`push_loop`] is shared by the real agent and the simulated one: it
//! waits on a change counter the agent bumps, diffs the agent's instances
//! against what the controller last accepted, and sends the difference
//! through a [`StateSink`] ([`HttpStateSink`] on the network). Pushes are
//! an optimisation, never the only path: a push that fails is retried with
//! backoff while the state differs, and the controller's periodic
//! reconcile repairs anything lost meanwhile.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::BodyExt;
use tokio::sync::watch;

use crate::tls::{HttpsClient, https_client};
use crate::version::{ApiVersion, VERSION_HEADER};
use crate::{NodeError, ObservedInstance, STATE_PATH, StateAccepted, StateReport, VmState};

/// How long one push may take.
const PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait after a failed push; doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// Longest wait between retries (an unreachable or older controller).
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Where pushes go.
#[async_trait]
pub trait StateSink: Send + Sync {
    /// Delivers `report`; an error leaves it to be sent again.
    async fn push(&self, report: StateReport) -> Result<StateAccepted, NodeError>;
}

/// The controller's [`STATE_PATH`] over HTTPS with the node's client
/// configuration (its certificate; trusting only the cluster CA).
#[derive(Debug, Clone)]
pub struct HttpStateSink {
    url: String,
    http: HttpsClient,
}

impl HttpStateSink {
    /// Pushes to the controller at `controller_url` with `tls`.
    pub fn new(controller_url: &str, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            url: format!("{}{STATE_PATH}", controller_url.trim_end_matches('/')),
            http: https_client(tls),
        }
    }
}

#[async_trait]
impl StateSink for HttpStateSink {
    async fn push(&self, report: StateReport) -> Result<StateAccepted, NodeError> {
        let body = serde_json::to_vec(&report).map_err(|e| NodeError::BadRequest(e.to_string()))?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(&self.url)
            .header(VERSION_HEADER, ApiVersion::current().to_string())
            .header(header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .map_err(|e| NodeError::BadRequest(e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| NodeError::Transport(crate::tls::error_chain(&e)))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| NodeError::Transport(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(NodeError::Transport(format!(
                "controller answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            )));
        }
        serde_json::from_slice(&body)
            .map_err(|e| NodeError::Transport(format!("bad answer from the controller: {e}")))
    }
}

/// What an agent gives [`push_loop`]: its node id, a fresh report
/// generation and its instances as observed now.
pub trait StateSource: Send + Sync {
    /// The node's id.
    fn node_id(&self) -> String;
    /// The next report generation (shared with the agent's reports).
    fn next_generation(&self) -> u64;
    /// Every instance as observed now.
    fn observed(&self) -> Vec<ObservedInstance>;
}

/// What the controller last accepted about an instance.
type Seen = (VmState, u64);

/// Pushes changes until `changes` closes: after each bump, the instances
/// whose state or generation differ from what `sink` last accepted.
/// Bumps that come while a push is in flight are coalesced into the next.
pub async fn push_loop(
    source: Arc<dyn StateSource>,
    sink: Arc<dyn StateSink>,
    mut changes: watch::Receiver<u64>,
) {
    let mut accepted: HashMap<String, Seen> = HashMap::new();
    let mut retry: Option<Duration> = None;
    loop {
        match retry {
            // Something is still unsent: try again after the backoff, or
            // at once when the state changes again.
            Some(wait) => {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    changed = changes.changed() => if changed.is_err() { return },
                }
            }
            None => {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        }
        changes.mark_unchanged();
        let observed = source.observed();
        accepted.retain(|id, _| observed.iter().any(|o| &o.instance_id == id));
        let changed: Vec<ObservedInstance> = observed
            .into_iter()
            .filter(|o| accepted.get(&o.instance_id) != Some(&(o.state.clone(), o.generation)))
            .collect();
        if changed.is_empty() {
            retry = None;
            continue;
        }
        let report = StateReport {
            node_id: source.node_id(),
            generation: source.next_generation(),
            instances: changed.clone(),
        };
        match tokio::time::timeout(PUSH_TIMEOUT, sink.push(report)).await {
            Ok(Ok(_)) => {
                for o in changed {
                    accepted.insert(o.instance_id, (o.state, o.generation));
                }
                retry = None;
            }
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                let wait = retry.map_or(RETRY_FIRST, |w| (w * 2).min(RETRY_MAX));
                tracing::debug!(error = %why, retry_in = ?wait, "state push failed; the reconciler will catch up");
                retry = Some(wait);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    struct Fixed(Mutex<Vec<ObservedInstance>>);

    impl StateSource for Fixed {
        fn node_id(&self) -> String {
            "nd-1".into()
        }
        fn next_generation(&self) -> u64 {
            7
        }
        fn observed(&self) -> Vec<ObservedInstance> {
            self.0.lock().expect("lock").clone()
        }
    }

    /// Records pushes; fails the first `fail` of them.
    struct Recorder {
        pushes: Mutex<Vec<StateReport>>,
        fail: Mutex<usize>,
        pushed: tokio::sync::Notify,
    }

    #[async_trait]
    impl StateSink for Recorder {
        async fn push(&self, report: StateReport) -> Result<StateAccepted, NodeError> {
            let applied = report.instances.len();
            self.pushes.lock().expect("lock").push(report);
            self.pushed.notify_one();
            let mut fail = self.fail.lock().expect("lock");
            if *fail > 0 {
                *fail -= 1;
                return Err(NodeError::Transport("down".into()));
            }
            Ok(StateAccepted { applied })
        }
    }

    fn vm(id: &str, state: VmState, generation: u64) -> ObservedInstance {
        ObservedInstance {
            instance_id: id.into(),
            generation,
            state,
        }
    }

    #[tokio::test]
    async fn pushes_what_changed_and_retries_what_failed() {
        let source = Arc::new(Fixed(Mutex::new(vec![
            vm("i-1", VmState::Pending, 1),
            vm("i-2", VmState::Running, 1),
        ])));
        let sink = Arc::new(Recorder {
            pushes: Mutex::new(Vec::new()),
            fail: Mutex::new(1),
            pushed: tokio::sync::Notify::new(),
        });
        let (tx, rx) = watch::channel(0u64);
        let task = tokio::spawn(push_loop(source.clone(), sink.clone(), rx));
        tx.send_modify(|n| *n += 1);
        // The first push fails; the retry sends the same two.
        sink.pushed.notified().await;
        sink.pushed.notified().await;
        {
            let pushes = sink.pushes.lock().expect("lock");
            assert_eq!(pushes.len(), 2);
            assert_eq!(pushes[1].instances.len(), 2);
            assert_eq!(pushes[1].node_id, "nd-1");
        }
        // Only i-1 changes: only i-1 goes.
        source.0.lock().expect("lock")[0].state = VmState::Running;
        tx.send_modify(|n| *n += 1);
        sink.pushed.notified().await;
        {
            let pushes = sink.pushes.lock().expect("lock");
            assert_eq!(pushes.len(), 3);
            assert_eq!(pushes[2].instances, vec![vm("i-1", VmState::Running, 1)]);
        }
        // A bump without a change sends nothing.
        tx.send_modify(|n| *n += 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sink.pushes.lock().expect("lock").len(), 3);
        drop(tx);
        task.await.expect("loop ends with its channel");
    }
}
