//! The bare-metal zone's failures as [`CloudError`]s. The inventory, the
//! engine and the store each have their own error type; [`MetalResult`]
//! turns any of their results into the domain's, naming the resource
//! ([`Kind::System`], [`Kind::Profile`], [`Kind::SystemGroup`], else
//! [`Kind::MetalRecord`]) so the metal API can give each its code.
//!
//! These are not `From` impls on purpose: the EC2 bare-metal zone reports
//! the same engine errors differently (as internal errors), so each use
//! says which reading it wants.

use mallee_metal::{EngineError, InventoryError};
use mallee_store::StoreError;

use crate::error::Capacity;
use crate::{CloudError, Kind};

/// Why the metal API cannot provision: the engine is off.
pub const NOT_ENABLED: &str = "bare-metal provisioning is not enabled on this controller (start it with --metal-interface and --metal-address)";

/// [`CloudError::Unsupported`] for a request that needs the provisioning
/// engine on a controller without one.
pub fn not_enabled() -> CloudError {
    CloudError::Unsupported(NOT_ENABLED.to_owned())
}

/// The kind of inventory record the inventory's `what` names.
fn kind_of(what: &str) -> Kind {
    match what {
        "system" => Kind::System,
        "profile" => Kind::Profile,
        "group" => Kind::SystemGroup,
        _ => Kind::MetalRecord,
    }
}

/// The inventory's error in the domain's terms.
pub fn from_inventory(e: InventoryError) -> CloudError {
    let message = e.to_string();
    match e {
        InventoryError::NotEnoughFree { .. } => CloudError::InsufficientCapacity {
            capacity: Capacity::Systems,
            message,
        },
        InventoryError::NotFree { .. } => CloudError::incorrect_state(Kind::System, message),
        InventoryError::NotFound { what, .. } => CloudError::not_found(kind_of(what), message),
        InventoryError::Exists { what, .. } => CloudError::duplicate(kind_of(what), message),
        InventoryError::Backend(detail) => CloudError::Internal(detail),
    }
}

/// The engine's error in the domain's terms: a refused event is a system
/// in the wrong state.
pub fn from_engine(e: EngineError) -> CloudError {
    match e {
        EngineError::Inventory(i) => from_inventory(i),
        EngineError::Rejected(message) => CloudError::incorrect_state(Kind::System, message),
        EngineError::NotFound(message) => CloudError::not_found(Kind::MetalRecord, message),
        other => CloudError::internal(other),
    }
}

/// A store error of the metal tables: a conflict is a name, MAC, address
/// or token taken (or a record in use), not an internal error.
pub fn from_store(e: StoreError) -> CloudError {
    match e {
        StoreError::Conflict(message) => CloudError::duplicate(Kind::MetalRecord, message),
        StoreError::NotFound(message) => CloudError::not_found(Kind::MetalRecord, message),
        other => CloudError::internal(other),
    }
}

/// Results of the inventory, the engine or the store as domain results.
pub trait MetalResult<T> {
    /// This result with its error in the domain's terms.
    fn metal(self) -> Result<T, CloudError>;
}

impl<T> MetalResult<T> for Result<T, InventoryError> {
    fn metal(self) -> Result<T, CloudError> {
        self.map_err(from_inventory)
    }
}

impl<T> MetalResult<T> for Result<T, EngineError> {
    fn metal(self) -> Result<T, CloudError> {
        self.map_err(from_engine)
    }
}

impl<T> MetalResult<T> for Result<T, StoreError> {
    fn metal(self) -> Result<T, CloudError> {
        self.map_err(from_store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventory_and_engine_errors_name_their_resource() {
        let e = from_inventory(InventoryError::NotFound {
            what: "profile",
            name: "p".into(),
        });
        assert_eq!(
            e,
            CloudError::not_found(Kind::Profile, "no profile named p")
        );
        let e = from_inventory(InventoryError::NotFound {
            what: "record",
            name: "x".into(),
        });
        assert!(matches!(
            e,
            CloudError::NotFound {
                kind: Kind::MetalRecord,
                ..
            }
        ));
        let e = from_engine(EngineError::Rejected("busy".into()));
        assert_eq!(e, CloudError::incorrect_state(Kind::System, "busy"));
        let e = from_engine(EngineError::NotFound("no system named m1".into()));
        assert!(
            matches!(
                e,
                CloudError::NotFound {
                    kind: Kind::MetalRecord,
                    ..
                }
            ),
            "the engine's look-ups keep their generic code: {e:?}"
        );
        let e = from_store(StoreError::Conflict("mac taken".into()));
        assert_eq!(e, CloudError::duplicate(Kind::MetalRecord, "mac taken"));
        let e = from_inventory(InventoryError::Backend("disk".into()));
        assert_eq!(e, CloudError::Internal("disk".into()));
    }
}
