//! mallee's bare-metal zone (Metaleuca): physical machines provisioned over
//! the network.
//!
//! - [`model`]: systems, profiles, provisioning states.
//! - [`state`]: the provisioning state machine, a pure [`state::decide`].
//! - [`power`]: power drivers (QEMU/QMP, IPMI, Redfish, manual) behind
//!   [`power::PowerDriver`]; [`power_settings`]: their JSON settings
//!   (examples, complete error messages, secrets redacted).
//! - [`netboot`]: dnsmasq (DHCP for known MACs only, iPXE) and iPXE scripts.
//! - [`http`]: the provisioning HTTP server (iPXE scripts, deploy agent
//!   downloads and reports, check-ins).
//! - [`inventory`]: where systems and profiles are kept; [`store`]: the
//!   inventory over the controller's store.
//! - [`engine`]: events → state machine → inventory → actions.
//! - [`template`]: installer answer-file templates.
//! - [`lab`]: a provisioning network in a namespace with QEMU machines, for
//!   tests, benchmarks and demos.

pub mod engine;
pub mod http;
pub mod inventory;
pub mod lab;
pub mod model;
pub mod netboot;
pub mod power;
pub mod power_settings;
pub mod state;
pub mod store;
pub mod template;

pub use engine::{Engine, EngineConfig, EngineError, FileImages, ImageSource};
pub use inventory::{Inventory, InventoryError, MemoryInventory, Selection};
pub use model::{Distro, Install, Mac, Profile, State, Step, System, Wipe};
pub use power::{PowerDriver, PowerSpec, PowerState};
pub use state::{Event, Timeouts};
