//! Leadership leases (`crate::lease`): the row decoder and the SQL both
//! backends run; each backend keeps its own clock query and write lock.

use super::StoreRow;
use crate::StoreResult;
use crate::lease::Lease;

pub(crate) fn lease_from_row(row: &impl StoreRow) -> StoreResult<Lease> {
    Ok(Lease {
        name: row.try_get("name")?,
        holder: row.try_get("holder")?,
        generation: row.try_get("generation")?,
        expires_at: row.try_get("expires_at")?,
    })
}

pub(crate) const LEASE: &str =
    "SELECT name, holder, generation, expires_at FROM leases WHERE name = $1";

pub(crate) const FENCE_GENERATION: &str = "SELECT generation FROM leases WHERE name = $1";

/// Keeps `acquired_at` while the generation stays (a holder extending its
/// own lease), and sets it when a new generation begins.
pub(crate) const ACQUIRE: &str =
    "INSERT INTO leases (name, holder, generation, expires_at, acquired_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
        generation = excluded.generation, expires_at = excluded.expires_at,
        acquired_at = CASE WHEN leases.generation = excluded.generation
                           THEN leases.acquired_at ELSE excluded.acquired_at END";

pub(crate) const RENEW: &str = "UPDATE leases SET expires_at = $4
     WHERE name = $1 AND holder = $2 AND generation = $3 AND expires_at > 0
     RETURNING name, holder, generation, expires_at";

pub(crate) const RELEASE: &str =
    "UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2 AND generation = $3";
