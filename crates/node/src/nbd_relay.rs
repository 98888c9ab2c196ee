//! Relays from the node's QEMU processes to the storage hosts' NBD
//! exports. A VM's QEMU runs in its VPC's network namespace (where its tap
//! is), from which the storage hosts are out of reach; so every remote
//! volume gets a Unix socket, `RUN_ROOT/<node>/nbd/<vol-id>.sock`, that
//! QEMU's NBD client connects to, and the agent carries each connection's
//! bytes to the export's TCP address from the host's namespace. TLS runs
//! end to end between QEMU and the storage host's qemu-storage-daemon
//! (QEMU checks the server's certificate name, the server admits only this
//! node's certificate): the relay only ever sees ciphertext.
//!
//! Each new connection goes to the export's current address, so an export
//! that moved (another port after a storage host restart) is found by the
//! NBD client's next reconnection. The relays live in the agent: while it
//! is down (a restart), connections break and QEMU holds the guest's
//! requests and reconnects ([`mallee_qemu::vm::NBD_RECONNECT_DELAY_SECS`]);
//! an agent gone for longer than that fails the guest's I/O.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use mallee_node_api::NbdExport;
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Bytes each direction of a relay moves at a time: whole NBD requests of
/// a guest's sequential I/O (up to a few hundred KiB) in one read, not
/// tokio's default 8 KiB.
const COPY_BUFFER: usize = 256 * 1024;
/// TCP keepalive toward the storage host: idle time, probe interval and
/// probes before the connection is given up.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(20);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_PROBES: u32 = 6;
/// How long a relay waits for the storage host to accept a connection
/// (QEMU's NBD client retries a connection that closes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The TCP address an export is at.
type Address = (String, u16);

/// One remote volume's relay: its listening task and where it connects.
#[derive(Debug)]
struct Relay {
    target: watch::Sender<Address>,
    task: JoinHandle<()>,
}

/// The node's relays, one per remote volume record.
#[derive(Debug)]
pub(crate) struct NbdRelays {
    dir: PathBuf,
    relays: Mutex<HashMap<String, Relay>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl NbdRelays {
    /// Relays with their sockets in `dir` (created when the first starts).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            relays: Mutex::new(HashMap::new()),
        }
    }

    /// The socket QEMU connects to for `volume_id`.
    pub fn socket(&self, volume_id: &str) -> PathBuf {
        self.dir.join(format!("{volume_id}.sock"))
    }

    /// Relays `volume_id`'s socket to `export` from now on: starts the
    /// relay (replacing a socket file a previous agent left), or points a
    /// running one at the export's address for its next connections.
    /// Needs a Tokio runtime.
    pub fn ensure(&self, volume_id: &str, export: &NbdExport) -> std::io::Result<()> {
        let address = (export.host.clone(), export.port);
        let mut relays = lock(&self.relays);
        if let Some(relay) = relays.get(volume_id)
            && !relay.task.is_finished()
        {
            relay.target.send_if_modified(|current| {
                let changed = *current != address;
                *current = address.clone();
                changed
            });
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)?;
        let socket = self.socket(volume_id);
        match std::fs::remove_file(&socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = UnixListener::bind(&socket)?;
        let (target, targets) = watch::channel(address);
        let task = tokio::spawn(serve(listener, targets, volume_id.to_owned()));
        relays.insert(volume_id.to_owned(), Relay { target, task });
        tracing::info!(volume = %volume_id, host = %export.host, port = export.port,
            socket = %socket.display(), "NBD relay started");
        Ok(())
    }

    /// Stops `volume_id`'s relay (and its connections) and removes its
    /// socket.
    pub fn remove(&self, volume_id: &str) {
        if let Some(relay) = lock(&self.relays).remove(volume_id) {
            relay.task.abort();
        }
        let socket = self.socket(volume_id);
        match std::fs::remove_file(&socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(socket = %socket.display(), error = %e, "removing an NBD relay socket");
            }
            _ => {}
        }
    }

    /// Stops every relay (the agent stops; the next start relays again).
    pub fn shutdown(&self) {
        for (_, relay) in lock(&self.relays).drain() {
            relay.task.abort();
        }
    }
}

/// Accepts QEMU's connections until aborted (which ends them all).
async fn serve(listener: UnixListener, target: watch::Receiver<Address>, volume_id: String) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let address = target.borrow().clone();
                    connections.spawn(relay(stream, address, volume_id.clone()));
                }
                Err(e) => {
                    tracing::warn!(volume = %volume_id, error = %e, "NBD relay accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Carries one connection to the export; closing QEMU's side when the
/// storage host cannot be reached makes its NBD client try again.
async fn relay(mut qemu: UnixStream, (host, port): Address, volume_id: String) {
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)));
    let mut server = match connect.await {
        Ok(Ok(server)) => server,
        Ok(Err(e)) => {
            tracing::warn!(volume = %volume_id, %host, port, error = %e, "NBD relay cannot reach the storage host");
            return;
        }
        Err(_) => {
            tracing::warn!(volume = %volume_id, %host, port, "NBD relay: the storage host did not answer");
            return;
        }
    };
    if let Err(e) = server.set_nodelay(true) {
        tracing::debug!(volume = %volume_id, error = %e, "TCP_NODELAY");
    }
    // A storage host that vanishes without a word (power loss) is noticed
    // within a minute, and the NBD client reconnects.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket2::SockRef::from(&server).set_tcp_keepalive(&keepalive) {
        tracing::debug!(volume = %volume_id, error = %e, "TCP keepalive");
    }
    tracing::debug!(volume = %volume_id, %host, port, "NBD relay connected");
    match tokio::io::copy_bidirectional_with_sizes(&mut qemu, &mut server, COPY_BUFFER, COPY_BUFFER)
        .await
    {
        Ok(_) => tracing::debug!(volume = %volume_id, "NBD relay connection closed"),
        Err(e) => tracing::info!(volume = %volume_id, error = %e, "NBD relay connection broke"),
    }
}
