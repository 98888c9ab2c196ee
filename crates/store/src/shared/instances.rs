//! Instances (`crate::instances`): what both backends share.

use super::{Binder, StoreRow};
use crate::StoreResult;
use crate::instances::{InstanceRecord, Reservation};

pub(crate) fn instance_from_row(row: &impl StoreRow) -> StoreResult<InstanceRecord> {
    Ok(InstanceRecord {
        instance_id: row.try_get("instance_id")?,
        reservation_id: row.try_get("reservation_id")?,
        account_id: row.try_get("account_id")?,
        launch_index: row.try_get("launch_index")?,
        node_id: row.try_get("node_id")?,
        zone: row.try_get("zone")?,
        network_id: row.try_get("network_id")?,
        private_ip: row.try_get("private_ip")?,
        mac: row.try_get("mac")?,
        state: row.try_get("state")?,
        desired: row.try_get("desired")?,
        generation: row.try_get("generation")?,
        revision: row.try_get("revision")?,
        details: row.try_get("details")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        terminated_at: row.try_get("terminated_at")?,
    })
}

pub(crate) fn reservation_from_row(row: &impl StoreRow) -> StoreResult<Reservation> {
    Ok(Reservation {
        reservation_id: row.try_get("reservation_id")?,
        account_id: row.try_get("account_id")?,
        client_token: row.try_get("client_token")?,
        request_hash: row.try_get("request_hash")?,
        created_at: row.try_get("created_at")?,
    })
}

// SQL that reads the same in both dialects, named after the `Store`
// method (or helper) that runs it and, where that runs several statements,
// after what the statement does.

pub(crate) const CREATE_LAUNCH_INSERT_RESERVATIONS: &str =
    "INSERT INTO reservations (reservation_id, account_id, client_token, request_hash, created_at)
    VALUES ($1, $2, $3, $4, $5)";

pub(crate) const CREATE_LAUNCH_INSERT_INSTANCES: &str =
    "INSERT INTO instances (instance_id, reservation_id, account_id, launch_index, node_id,
      zone, network_id, private_ip, mac, state, desired, generation, revision, details,
      created_at, updated_at, terminated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";

pub(crate) const CREATE_LAUNCH_INSERT_INSTANCE_INTERFACES: &str =
    "INSERT INTO instance_interfaces (interface_id, instance_id) VALUES ($1, $2)";

pub(crate) const RESERVATION_BY_CLIENT_TOKEN: &str =
    "SELECT * FROM reservations WHERE account_id = $1 AND client_token = $2";

pub(crate) const INSTANCE: &str = "SELECT * FROM instances WHERE instance_id = $1";

pub(crate) const INSTANCES_OF_ACCOUNT: &str = "SELECT * FROM instances WHERE account_id = $1
    ORDER BY created_at, reservation_id, launch_index";

pub(crate) const INSTANCES_OF_ALL_ACCOUNTS: &str =
    "SELECT * FROM instances ORDER BY created_at, reservation_id, launch_index";

pub(crate) const UPDATE_INSTANCE: &str =
    "UPDATE instances SET node_id = $1, zone = $2, network_id = $3, private_ip = $4, mac = $5,
      state = $6, desired = $7, generation = $8, revision = revision + 1, details = $9,
      updated_at = $10, terminated_at = $11
    WHERE instance_id = $12 AND revision = $13";

pub(crate) const DELETE_INSTANCE_SELECT_INSTANCES: &str =
    "SELECT reservation_id FROM instances WHERE instance_id = $1";

pub(crate) const DELETE_INSTANCE_DELETE_RESOURCES: &str =
    "DELETE FROM resources WHERE resource_type = 'network-interface' AND resource_id IN
    (SELECT interface_id FROM instance_interfaces WHERE instance_id = $1)";

pub(crate) const DELETE_INSTANCE_DELETE_INSTANCES: &str =
    "DELETE FROM instances WHERE instance_id = $1";

pub(crate) const PRIVATE_IPS_IN_USE: &str =
    "SELECT private_ip FROM instances WHERE network_id = $1 AND terminated_at IS NULL";

/// Binds [`CREATE_LAUNCH_INSERT_INSTANCES`]'s parameters.
pub(crate) fn bind_insert_instance<Q: Binder>(query: Q, instance: &InstanceRecord) -> Q {
    query
        .arg(&instance.instance_id)
        .arg(&instance.reservation_id)
        .arg(&instance.account_id)
        .arg(instance.launch_index)
        .arg(&instance.node_id)
        .arg(&instance.zone)
        .arg(&instance.network_id)
        .arg(&instance.private_ip)
        .arg(&instance.mac)
        .arg(&instance.state)
        .arg(&instance.desired)
        .arg(instance.generation)
        .arg(instance.revision)
        .arg(&instance.details)
        .arg(instance.created_at)
        .arg(instance.updated_at)
        .arg(instance.terminated_at)
}

/// Binds [`UPDATE_INSTANCE`]'s parameters.
pub(crate) fn bind_update_instance<Q: Binder>(query: Q, record: &InstanceRecord) -> Q {
    query
        .arg(&record.node_id)
        .arg(&record.zone)
        .arg(&record.network_id)
        .arg(&record.private_ip)
        .arg(&record.mac)
        .arg(&record.state)
        .arg(&record.desired)
        .arg(record.generation)
        .arg(&record.details)
        .arg(record.updated_at)
        .arg(record.terminated_at)
        .arg(&record.instance_id)
        .arg(record.revision)
}
