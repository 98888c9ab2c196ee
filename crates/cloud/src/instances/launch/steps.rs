//! The machinery every launch shares, virtual and bare-metal alike: the
//! steps a launch has taken with their undo ([`Steps`]), what a launch
//! produces ([`Launched`]), and the answer to a retried request.

use mallee_store::{Reservation, TagPair};

use crate::faults::Step;
use crate::instances::model::Instance;
use crate::{Cloud, CloudError, Principal, addresses};

/// A reservation and its instances, as RunInstances answers them.
#[derive(Debug, Clone)]
pub struct Launched {
    /// The reservation.
    pub reservation: Reservation,
    /// Its instances, in launch order.
    pub instances: Vec<Instance>,
    /// Tags the request gave every instance; `None` for a retried request,
    /// whose instances' tags are in the store.
    pub tags: Option<Vec<TagPair>>,
}

/// What a step that changed something gives back when a later step fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// Give back the public addresses recorded for these instance ids.
    PublicAddresses(Vec<String>),
    /// Return these bare-metal machines to the pool.
    Machines(Vec<String>),
}

/// The steps a launch has taken, with their undo.
#[derive(Debug)]
pub struct Steps<'a> {
    cloud: &'a Cloud,
    undo: Vec<Undo>,
}

impl<'a> Steps<'a> {
    /// A launch that has taken no step yet.
    pub fn new(cloud: &'a Cloud) -> Self {
        Self {
            cloud,
            undo: Vec::new(),
        }
    }

    /// Takes `step`: runs `action` (after the cloud's fault point for it);
    /// on failure unwinds every step taken so far.
    pub async fn take<T>(
        &mut self,
        step: Step,
        action: impl Future<Output = Result<T, CloudError>>,
    ) -> Result<T, CloudError> {
        let result = match self.cloud.faults.at(step).await {
            Ok(()) => action.await,
            Err(e) => Err(e),
        };
        match result {
            Ok(value) => Ok(value),
            Err(e) => {
                self.unwind().await;
                Err(e)
            }
        }
    }

    /// Records the undo of a step just taken.
    pub fn taken(&mut self, undo: Undo) {
        self.undo.push(undo);
    }

    /// Undoes every step taken, newest first. Undo failures are logged:
    /// what they leave is repaired by the reconciler.
    pub async fn unwind(&mut self) {
        while let Some(undo) = self.undo.pop() {
            match &undo {
                Undo::PublicAddresses(instance_ids) => {
                    for id in instance_ids {
                        if let Err(e) = addresses::release_instance_addresses(self.cloud, id).await
                        {
                            tracing::warn!(instance = %id, error = %e, "could not give back a public address; the reconciler will");
                        }
                    }
                }
                Undo::Machines(systems) => {
                    crate::metal::names::release_machines(self.cloud, systems).await;
                }
            }
        }
    }

    /// The launch is complete: nothing will be undone.
    pub fn finish(mut self) {
        self.undo.clear();
    }
}

/// The reservation a retried request made before, with its instances; a
/// retry whose parameters differ (another `request_hash`) is refused.
pub async fn existing(
    cloud: &Cloud,
    caller: &Principal,
    reservation: Reservation,
    request_hash: &str,
) -> Result<Launched, CloudError> {
    if reservation.request_hash != request_hash {
        return Err(CloudError::IdempotencyMismatch(
            "The client token you have provided is associated with a resource that is already deleted or has different parameters. Please use a different client token.".into(),
        ));
    }
    let instances = cloud
        .store
        .instances(Some(caller.account_id()))
        .await?
        .into_iter()
        .filter(|r| r.reservation_id == reservation.reservation_id)
        .map(Instance::from_record)
        .collect::<Result<_, _>>()?;
    Ok(Launched {
        reservation,
        instances,
        tags: None,
    })
}

/// The answer to a request whose reservation lost a race with another
/// request of the same client token: the winner's reservation.
pub async fn lost_race(
    cloud: &Cloud,
    caller: &Principal,
    client_token: &str,
    request_hash: &str,
) -> Result<Launched, CloudError> {
    match cloud
        .store
        .reservation_by_client_token(caller.account_id(), client_token)
        .await?
    {
        Some(existing) => self::existing(cloud, caller, existing, request_hash).await,
        None => Err(CloudError::Internal("reservation conflict".into())),
    }
}
