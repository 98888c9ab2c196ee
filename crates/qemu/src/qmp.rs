//! A small asynchronous client for the QEMU Machine Protocol (QMP).
//!
//! QMP is line-delimited JSON over a Unix socket: QEMU sends a greeting, the
//! client negotiates capabilities with `qmp_capabilities`, then sends
//! `{"execute": ..., "arguments": ..., "id": N}` commands and receives
//! `{"return": ...}` / `{"error": ...}` replies carrying the same id, with
//! asynchronous `{"event": ...}` messages interleaved at any time.
//!
//! [`QmpClient`] owns one connection. A background reader task routes replies
//! to the waiting [`QmpClient::execute`] call by id, publishes events on a
//! broadcast channel ([`QmpClient::subscribe`]), remembers the latest event,
//! and marks the connection closed when QEMU goes away
//! ([`QmpClient::closed`]), which is how a VM's death is noticed at once.
//!
//! QEMU serves one QMP client per socket at a time: a second connection is
//! accepted by the kernel but gets no greeting until the first one closes, so
//! [`QmpClient::connect`] gives up after a timeout instead of hanging.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;

/// How long [`QmpClient::connect`] waits for the greeting by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors from the QMP client.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Connecting to or talking over the socket failed.
    #[error("QMP socket {path}: {source}")]
    Io {
        /// The socket path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No greeting arrived in time (QEMU busy, or another client connected).
    #[error("QMP socket {0}: no greeting within the timeout (is another client connected?)")]
    GreetingTimeout(String),
    /// QEMU sent something that is not QMP.
    #[error("QMP protocol error: {0}")]
    Protocol(String),
    /// QEMU answered a command with an error.
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        /// The command that failed.
        command: String,
        /// QMP error class (e.g. `GenericError`, `DeviceNotFound`).
        class: String,
        /// Human-readable description from QEMU.
        desc: String,
    },
    /// The connection closed (QEMU exited or closed the socket).
    #[error("QMP connection closed")]
    Disconnected,
    /// A reply did not have the expected shape.
    #[error("unexpected QMP reply to {command}: {source}")]
    Decode {
        /// The command whose reply failed to decode.
        command: String,
        /// The decoding error.
        source: serde_json::Error,
    },
    /// An expected event did not arrive in time.
    #[error("timed out waiting for QMP event {0}")]
    EventTimeout(String),
}

/// An asynchronous QMP event (`SHUTDOWN`, `STOP`, `RESET`, `DEVICE_DELETED`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QmpEvent {
    /// Event name, e.g. `SHUTDOWN`.
    pub event: String,
    /// Event data (`Value::Null` when the event has none).
    #[serde(default)]
    pub data: Value,
    /// QEMU's timestamp of the event in microseconds since the Unix epoch.
    pub timestamp_us: u64,
}

/// The run state reported by `query-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunState {
    /// The guest is running.
    Running,
    /// Paused by `stop` (or started with `-S` and not yet continued).
    Paused,
    /// The guest shut down and QEMU was told not to exit (`-no-shutdown`).
    Shutdown,
    /// The guest panicked (with a pvpanic device).
    GuestPanicked,
    /// QEMU hit an internal error (e.g. a KVM emulation failure).
    InternalError,
    /// Not yet started.
    Prelaunch,
    /// Any other QEMU run state, by its QAPI name.
    Other(String),
}

impl RunState {
    /// Parses QEMU's QAPI `RunState` name.
    pub fn from_qapi(s: &str) -> Self {
        match s {
            "running" => Self::Running,
            "paused" => Self::Paused,
            "shutdown" => Self::Shutdown,
            "guest-panicked" => Self::GuestPanicked,
            "internal-error" => Self::InternalError,
            "prelaunch" => Self::Prelaunch,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// The reply to `query-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmStatus {
    /// The run state.
    pub state: RunState,
    /// Whether the vCPUs are running.
    pub running: bool,
}

/// One block job as `query-jobs` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// Job type (`backup`, `mirror`, …).
    #[serde(rename = "type")]
    pub job_type: String,
    /// QAPI `JobStatus`: `created`, `running`, `paused`, `ready`,
    /// `waiting`, `pending`, `aborting`, `concluded`, `null`, …
    pub status: String,
    /// Work done so far, in the job's unit (bytes for backups).
    #[serde(rename = "current-progress")]
    pub current_progress: u64,
    /// Work to do in all (may grow while the job runs).
    #[serde(rename = "total-progress")]
    pub total_progress: u64,
    /// Why the job failed, once it has concluded with an error.
    #[serde(default)]
    pub error: Option<String>,
}

impl JobInfo {
    /// Whether the job has ended (successfully or not) and only waits to be
    /// dismissed.
    pub fn concluded(&self) -> bool {
        matches!(self.status.as_str(), "concluded" | "null")
    }
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, (String, String)>>>>>;

/// One QMP connection, ready for commands (capabilities already negotiated).
#[derive(Debug)]
pub struct QmpClient {
    path: String,
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    next_id: AtomicU64,
    pending: Pending,
    events: broadcast::Sender<QmpEvent>,
    last_event: Arc<Mutex<Option<QmpEvent>>>,
    closed: watch::Receiver<bool>,
    greeting: Value,
    reader: JoinHandle<()>,
}

impl Drop for QmpClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl QmpClient {
    /// Connects to a QMP socket, reads the greeting and negotiates
    /// capabilities, waiting at most [`DEFAULT_CONNECT_TIMEOUT`].
    pub async fn connect(path: &Path) -> Result<Self, QmpError> {
        Self::connect_timeout(path, DEFAULT_CONNECT_TIMEOUT).await
    }

    /// Like [`QmpClient::connect`] with an explicit timeout for the greeting.
    pub async fn connect_timeout(path: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let shown = path.display().to_string();
        let io = |source| QmpError::Io {
            path: shown.clone(),
            source,
        };
        let stream = UnixStream::connect(path).await.map_err(io)?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);

        let greeting = match tokio::time::timeout(timeout, read_message(&mut read)).await {
            Err(_) => return Err(QmpError::GreetingTimeout(shown)),
            Ok(r) => r.map_err(io)?.ok_or(QmpError::Disconnected)?,
        };
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!(
                "expected greeting, got {greeting}"
            )));
        }
        // Negotiate synchronously, before the reader task exists.
        let mut line = json!({"execute": "qmp_capabilities", "id": 0}).to_string();
        line.push('\n');
        write.write_all(line.as_bytes()).await.map_err(io)?;
        loop {
            let msg = tokio::time::timeout(timeout, read_message(&mut read))
                .await
                .map_err(|_| QmpError::GreetingTimeout(shown.clone()))?
                .map_err(io)?
                .ok_or(QmpError::Disconnected)?;
            if msg.get("event").is_some() {
                continue;
            }
            if let Some(err) = msg.get("error") {
                let (class, desc) = error_parts(err);
                return Err(QmpError::Command {
                    command: "qmp_capabilities".into(),
                    class,
                    desc,
                });
            }
            if msg.get("return").is_some() {
                break;
            }
            return Err(QmpError::Protocol(format!("unexpected message {msg}")));
        }

        let pending: Pending = Arc::default();
        let (events, _) = broadcast::channel(64);
        let last_event = Arc::new(Mutex::new(None));
        let (closed_tx, closed) = watch::channel(false);
        let reader = tokio::spawn(reader_task(
            read,
            pending.clone(),
            events.clone(),
            last_event.clone(),
            closed_tx,
        ));
        Ok(Self {
            path: shown,
            writer: tokio::sync::Mutex::new(write),
            next_id: AtomicU64::new(1),
            pending,
            events,
            last_event,
            closed,
            greeting,
            reader,
        })
    }

    /// The greeting QEMU sent (contains the QEMU version).
    pub fn greeting(&self) -> &Value {
        &self.greeting
    }

    /// Executes a command and returns its `return` value.
    ///
    /// `args` may be `Value::Null` for commands without arguments. Waits until
    /// QEMU answers or the connection closes; wrap in
    /// [`tokio::time::timeout`] to bound the wait.
    pub async fn execute(&self, command: &str, args: Value) -> Result<Value, QmpError> {
        if self.is_closed() {
            return Err(QmpError::Disconnected);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let mut msg = Map::new();
        msg.insert("execute".into(), Value::String(command.into()));
        if !args.is_null() {
            msg.insert("arguments".into(), args);
        }
        msg.insert("id".into(), Value::from(id));
        let mut line = Value::Object(msg).to_string();
        line.push('\n');
        {
            let mut w = self.writer.lock().await;
            if let Err(source) = w.write_all(line.as_bytes()).await {
                lock(&self.pending).remove(&id);
                return Err(if source.kind() == std::io::ErrorKind::BrokenPipe {
                    QmpError::Disconnected
                } else {
                    QmpError::Io {
                        path: self.path.clone(),
                        source,
                    }
                });
            }
        }
        // The reader may have seen EOF between our check and the insert: it
        // drops every pending sender on EOF, which makes `rx` fail below.
        if self.is_closed() {
            lock(&self.pending).remove(&id);
        }
        match rx.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err((class, desc))) => Err(QmpError::Command {
                command: command.into(),
                class,
                desc,
            }),
            Err(_) => Err(QmpError::Disconnected),
        }
    }

    /// Executes a command and decodes its `return` value.
    pub async fn execute_as<T: serde::de::DeserializeOwned>(
        &self,
        command: &str,
        args: Value,
    ) -> Result<T, QmpError> {
        let v = self.execute(command, args).await?;
        serde_json::from_value(v).map_err(|source| QmpError::Decode {
            command: command.into(),
            source,
        })
    }

    /// Subscribes to asynchronous events received from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<QmpEvent> {
        self.events.subscribe()
    }

    /// The most recent event received on this connection, if any.
    pub fn last_event(&self) -> Option<QmpEvent> {
        lock(&self.last_event).clone()
    }

    /// Whether the connection has closed (QEMU exited or hung up).
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves once the connection has closed, typically because QEMU exited.
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        // An error means the reader task ended, which also means closed.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Waits for an event named `name` whose data satisfies `filter`, at most
    /// `timeout`. Only events arriving after `events` was subscribed count:
    /// subscribe before issuing the command that triggers the event.
    pub async fn wait_event(
        events: &mut broadcast::Receiver<QmpEvent>,
        name: &str,
        timeout: Duration,
        filter: impl Fn(&Value) -> bool,
    ) -> Result<QmpEvent, QmpError> {
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(ev) if ev.event == name && filter(&ev.data) => return Ok(ev),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return Err(QmpError::Disconnected),
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| QmpError::EventTimeout(name.into()))?
    }

    /// `query-status`: the VM's run state.
    pub async fn query_status(&self) -> Result<VmStatus, QmpError> {
        #[derive(Deserialize)]
        struct Raw {
            status: String,
            running: bool,
        }
        let raw: Raw = self.execute_as("query-status", Value::Null).await?;
        Ok(VmStatus {
            state: RunState::from_qapi(&raw.status),
            running: raw.running,
        })
    }

    /// `system_powerdown`: presses the ACPI power button (the guest decides).
    pub async fn system_powerdown(&self) -> Result<(), QmpError> {
        self.execute("system_powerdown", Value::Null)
            .await
            .map(drop)
    }

    /// `system_reset`: hard-resets the guest (like the reset button).
    pub async fn system_reset(&self) -> Result<(), QmpError> {
        self.execute("system_reset", Value::Null).await.map(drop)
    }

    /// `stop`: pauses the vCPUs.
    pub async fn stop(&self) -> Result<(), QmpError> {
        self.execute("stop", Value::Null).await.map(drop)
    }

    /// `cont`: resumes paused vCPUs.
    pub async fn cont(&self) -> Result<(), QmpError> {
        self.execute("cont", Value::Null).await.map(drop)
    }

    /// `quit`: makes QEMU exit at once. The connection closing before the
    /// reply arrives counts as success.
    pub async fn quit(&self) -> Result<(), QmpError> {
        match self.execute("quit", Value::Null).await {
            Ok(_) | Err(QmpError::Disconnected) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `blockdev-add` with raw QAPI `BlockdevOptions` arguments.
    pub async fn blockdev_add(&self, options: Value) -> Result<(), QmpError> {
        self.execute("blockdev-add", options).await.map(drop)
    }

    /// `blockdev-add` of an image file as block node `node_name` (format
    /// driver on top of a `file` protocol node), as volume hot-plug needs.
    pub async fn blockdev_add_file(
        &self,
        node_name: &str,
        path: &Path,
        format: crate::vm::DiskFormat,
        read_only: bool,
    ) -> Result<(), QmpError> {
        self.blockdev_add(crate::vm::blockdev_json(node_name, path, format, read_only))
            .await
    }

    /// `object-add` with raw QAPI `ObjectOptions` arguments (`qom-type`,
    /// `id` and the type's properties), e.g.
    /// [`crate::vm::nbd_tls_object_json`]. An id in use fails with a
    /// [`QmpError::Command`] whose `desc` says "duplicate property".
    pub async fn object_add(&self, options: Value) -> Result<(), QmpError> {
        self.execute("object-add", options).await.map(drop)
    }

    /// `blockdev-del`: removes a block node that no device uses any more.
    /// Closing the node flushes it first (for an NBD client: a flush
    /// request to the server, then the disconnect).
    pub async fn blockdev_del(&self, node_name: &str) -> Result<(), QmpError> {
        self.execute("blockdev-del", json!({ "node-name": node_name }))
            .await
            .map(drop)
    }

    /// `device_add`: hot-plugs device `driver` with id `id` and extra
    /// properties `props` (a JSON object, or `Value::Null` for none), e.g.
    /// `device_add("virtio-blk-pci", "vol-1", json!({"drive": "vol-1"}))`.
    pub async fn device_add(&self, driver: &str, id: &str, props: Value) -> Result<(), QmpError> {
        let mut args = match props {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(QmpError::Protocol(format!(
                    "device_add properties must be an object, got {other}"
                )));
            }
        };
        args.insert("driver".into(), Value::String(driver.into()));
        args.insert("id".into(), Value::String(id.into()));
        self.execute("device_add", Value::Object(args))
            .await
            .map(drop)
    }

    /// `device_del`: asks the guest to release device `id`. Returns once the
    /// request is accepted; removal completes when QEMU emits
    /// `DEVICE_DELETED` (see [`QmpClient::device_del_wait`]).
    pub async fn device_del(&self, id: &str) -> Result<(), QmpError> {
        self.execute("device_del", json!({ "id": id }))
            .await
            .map(drop)
    }

    /// `blockdev-backup` with `sync: full`: starts job `job_id` that copies
    /// block node `device` as it is at this instant into block node
    /// `target` (of the same size) while the guest keeps writing (writes to
    /// regions not yet copied are copied first). `speed` limits the copy
    /// rate in bytes per second (0: unlimited). The job is finalized
    /// automatically but not dismissed: it stays in
    /// [`QmpClient::query_jobs`] as `concluded` (with its error, if any)
    /// until [`QmpClient::job_dismiss`], so its outcome cannot be missed.
    pub async fn blockdev_backup(
        &self,
        job_id: &str,
        device: &str,
        target: &str,
        speed: u64,
    ) -> Result<(), QmpError> {
        self.execute(
            "blockdev-backup",
            json!({
                "job-id": job_id,
                "device": device,
                "target": target,
                "sync": "full",
                "speed": speed,
                "auto-finalize": true,
                "auto-dismiss": false,
            }),
        )
        .await
        .map(drop)
    }

    /// `query-jobs`: every job of the VM.
    pub async fn query_jobs(&self) -> Result<Vec<JobInfo>, QmpError> {
        self.execute_as("query-jobs", Value::Null).await
    }

    /// `job-cancel`: stops job `id` (it concludes with an error).
    pub async fn job_cancel(&self, id: &str) -> Result<(), QmpError> {
        self.execute("job-cancel", json!({ "id": id }))
            .await
            .map(drop)
    }

    /// `job-dismiss`: removes a concluded job from [`QmpClient::query_jobs`].
    pub async fn job_dismiss(&self, id: &str) -> Result<(), QmpError> {
        self.execute("job-dismiss", json!({ "id": id }))
            .await
            .map(drop)
    }

    /// `device_del` and wait up to `timeout` for its `DEVICE_DELETED` event
    /// (the guest must cooperate: ACPI hot-unplug).
    pub async fn device_del_wait(&self, id: &str, timeout: Duration) -> Result<(), QmpError> {
        let mut events = self.subscribe();
        self.device_del(id).await?;
        Self::wait_event(&mut events, "DEVICE_DELETED", timeout, |d| {
            d.get("device").and_then(Value::as_str) == Some(id)
        })
        .await
        .map(drop)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it;
    // the maps it guards stay consistent, so keep going.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn error_parts(err: &Value) -> (String, String) {
    let s = |k: &str| {
        err.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (s("class"), s("desc"))
}

/// Reads one JSON message; `Ok(None)` on EOF.
async fn read_message(read: &mut BufReader<OwnedReadHalf>) -> std::io::Result<Option<Value>> {
    let mut line = String::new();
    loop {
        line.clear();
        if read.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        if line.trim().is_empty() {
            continue;
        }
        return serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e));
    }
}

/// Whether a read error is only the peer going away (QEMU exited).
fn connection_ended(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof | K::BrokenPipe
    )
}

async fn reader_task(
    mut read: BufReader<OwnedReadHalf>,
    pending: Pending,
    events: broadcast::Sender<QmpEvent>,
    last_event: Arc<Mutex<Option<QmpEvent>>>,
    closed: watch::Sender<bool>,
) {
    loop {
        let msg = match read_message(&mut read).await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            // QEMU exiting (after `quit`, or a guest powering off) resets
            // or cuts the connection: that is the end of the stream, not a
            // fault. Anything else (a line that is not JSON) is.
            Err(e) if connection_ended(&e) => {
                tracing::debug!(error = %e, "QMP connection ended");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "QMP read failed; closing connection");
                break;
            }
        };
        if let Some(name) = msg.get("event").and_then(Value::as_str) {
            let ts = msg.get("timestamp");
            let part = |k| {
                ts.and_then(|t| t.get(k))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            let ev = QmpEvent {
                event: name.to_owned(),
                data: msg.get("data").cloned().unwrap_or(Value::Null),
                timestamp_us: part("seconds") * 1_000_000 + part("microseconds"),
            };
            tracing::debug!(event = %ev.event, data = %ev.data, "QMP event");
            *lock(&last_event) = Some(ev.clone());
            // No subscribers is fine.
            let _ = events.send(ev);
            continue;
        }
        let Some(id) = msg.get("id").and_then(Value::as_u64) else {
            tracing::warn!(message = %msg, "QMP message without id ignored");
            continue;
        };
        let Some(tx) = lock(&pending).remove(&id) else {
            continue;
        };
        let result = if let Some(err) = msg.get("error") {
            Err(error_parts(err))
        } else {
            Ok(msg.get("return").cloned().unwrap_or(Value::Null))
        };
        let _ = tx.send(result);
    }
    let _ = closed.send(true);
    // Dropping the senders wakes every waiting command with Disconnected.
    lock(&pending).clear();
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};

    #[test]
    fn qemu_exiting_is_not_a_read_failure() {
        assert!(super::connection_ended(&Error::from(
            ErrorKind::ConnectionReset
        )));
        assert!(super::connection_ended(&Error::from(
            ErrorKind::UnexpectedEof
        )));
        assert!(!super::connection_ended(&Error::new(
            ErrorKind::InvalidData,
            "not JSON"
        )));
    }
}
