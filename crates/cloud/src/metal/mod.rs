//! The bare-metal zone (Metaleuca) in the controller: the provisioning
//! engine of `mallee-metal` over the controller's store, its profile images
//! read from files or from the object store ([`images`]), and the
//! bare-metal availability zone of EC2 ([`zone`]). What the metal API
//! does is here too, one file per concern: who may do what ([`access`]),
//! the inventory ([`inventory`]), profiles ([`profiles`]) and systems as
//! their users reserve, install and give them back ([`systems`]), failing
//! with [`crate::CloudError`]s ([`errors`]).
//!
//! Provisioning is off unless the administrator names a provisioning
//! network (`mallee up --metal-interface …`): without it the inventory can
//! still be described and edited, but nothing is powered or installed.

pub mod access;
pub mod errors;
pub mod images;
pub mod inventory;
pub mod names;
pub mod profiles;
pub mod systems;
pub mod zone;

use std::path::PathBuf;
use std::sync::Arc;

use mallee_metal::netboot::ProvisioningNetwork;
use mallee_metal::store::StoreInventory;
use mallee_metal::{Engine, EngineConfig, Timeouts};
use mallee_store::{MetalIndex, Store};

pub use mallee_metal;

/// Errors starting the bare-metal zone.
#[derive(Debug, thiserror::Error)]
pub enum MetalStartError {
    /// A file the engine needs is missing.
    #[error("bare-metal zone: {0}")]
    Missing(String),
    /// The engine did not start.
    #[error("bare-metal zone: {0}")]
    Engine(#[from] mallee_metal::EngineError),
}

/// How the controller runs the provisioning network.
#[derive(Debug, Clone)]
pub struct MetalConfig {
    /// The provisioning network (interface, address, namespace, HTTP port,
    /// dnsmasq state directory).
    pub network: ProvisioningNetwork,
    /// The deploy agent's kernel.
    pub agent_kernel: PathBuf,
    /// The deploy agent's initramfs.
    pub agent_initrd: PathBuf,
    /// Deadlines of the busy states.
    pub timeouts: Timeouts,
}

/// The bare-metal zone of a controller: the inventory, and the engine when
/// provisioning is enabled.
#[derive(Debug)]
pub struct Metal {
    inventory: StoreInventory,
    store: Arc<dyn Store>,
    images: Arc<images::ControllerImages>,
    engine: Option<Engine>,
}

impl Metal {
    /// The inventory only: describe and edit, no provisioning.
    pub fn disabled(store: Arc<dyn Store>, blobs: Arc<mallee_blobs::BlobStore>) -> Self {
        let index: Arc<dyn MetalIndex> = store.clone();
        Self {
            inventory: StoreInventory::new(index),
            images: Arc::new(images::ControllerImages::new(store.clone(), blobs)),
            store,
            engine: None,
        }
    }

    /// Starts the provisioning engine (dnsmasq, the provisioning HTTP
    /// server, the clock) and resumes what was under way before a restart.
    pub async fn start(
        store: Arc<dyn Store>,
        blobs: Arc<mallee_blobs::BlobStore>,
        config: MetalConfig,
    ) -> Result<Self, MetalStartError> {
        for (what, path) in [
            ("deploy agent kernel", &config.agent_kernel),
            ("deploy agent initramfs", &config.agent_initrd),
        ] {
            if !path.is_file() {
                return Err(MetalStartError::Missing(format!(
                    "the {what} {} does not exist (build it with guest/metal/build.sh)",
                    path.display()
                )));
            }
        }
        let mut metal = Self::disabled(store, blobs);
        let engine_config = EngineConfig {
            network: config.network,
            agent_kernel: config.agent_kernel,
            agent_initrd: config.agent_initrd,
            timeouts: config.timeouts,
            tick: std::time::Duration::from_millis(500),
        };
        let engine = Engine::start(
            engine_config,
            Arc::new(metal.inventory.clone()),
            metal.images.clone(),
        )
        .await?;
        metal.engine = Some(engine);
        Ok(metal)
    }

    /// The inventory.
    pub fn inventory(&self) -> &StoreInventory {
        &self.inventory
    }

    /// The store (groups, distros, raw records).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Where profile images are read from.
    pub fn images(&self) -> &Arc<images::ControllerImages> {
        &self.images
    }

    /// The engine, when provisioning is enabled.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    /// Stops the engine and its dnsmasq (a controller that stops; machines
    /// keep running, and a restarted controller carries on).
    pub async fn shutdown(&self) {
        if let Some(engine) = &self.engine {
            engine.shutdown(true).await;
        }
    }
}

/// The bare-metal zone of a controller, once provisioning is enabled.
#[derive(Debug, Default)]
pub struct MetalSlot(std::sync::OnceLock<Arc<Metal>>);

impl MetalSlot {
    /// Makes `metal` the controller's bare-metal zone (once).
    pub fn enable(&self, metal: Arc<Metal>) {
        if self.0.set(metal).is_err() {
            tracing::warn!("the bare-metal zone was already enabled");
        }
    }

    /// The zone, when provisioning is enabled.
    pub fn get(&self) -> Option<&Arc<Metal>> {
        self.0.get().filter(|m| m.engine().is_some())
    }
}
