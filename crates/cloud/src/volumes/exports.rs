//! Volumes a storage host keeps: which node an export must reach before
//! the volume reconciler's usual steps apply ([`plumb`], a pure function),
//! and the one view of the volume those steps decide on ([`compose`]).
//!
//! The storage host holds the data and reports each volume with the node it
//! is exported to. A compute node that has the export recorded (a *remote
//! record*) reports the volume too, with its attachment. The volume belongs
//! on one node at a time, the *target*: the node its instance runs on. An
//! export or a record anywhere else is ended first, so the data is never
//! open on two nodes (no Multi-Attach), and a node that is down loses its
//! export before the volume is exported elsewhere (it cannot write to the
//! volume after an instance moved).

use std::collections::{HashMap, HashSet};

use mallee_node_api::{NbdExport, ObservedVolume, VolumeState};

use super::model::{Volume, VolumeDesired};
use crate::instances::model::{Instance, InstanceState};

/// A step that moves a storage host's volume toward its target node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plumb {
    /// Forget the remote record on `node_id` (it holds nothing).
    Release {
        /// The compute node.
        node_id: String,
    },
    /// End the storage host's export.
    Unexport,
    /// Export the volume to `node_id`.
    Export {
        /// The compute node.
        node_id: String,
    },
    /// Record the export on `node_id`.
    Record {
        /// The compute node.
        node_id: String,
        /// Where it connects.
        export: NbdExport,
    },
    /// Nothing can be done until the target node answers again.
    Wait,
}

/// What the compute nodes said about one volume this pass.
#[derive(Debug, Default)]
pub struct Remotes {
    /// Remote records by node id, from the nodes that answered.
    pub records: HashMap<String, ObservedVolume>,
    /// Every node that answered this pass.
    pub answered: HashSet<String>,
}

fn holds(observed: &ObservedVolume) -> bool {
    matches!(
        observed.state,
        VolumeState::Attaching { .. } | VolumeState::InUse { .. } | VolumeState::Detaching { .. }
    )
}

/// The node `volume` belongs on: its instance's node while it is attached
/// (or being attached or detached) to an instance that exists; `None`
/// otherwise.
pub fn target<'a>(volume: &Volume, instance: Option<&'a Instance>) -> Option<&'a str> {
    if volume.desired == VolumeDesired::Deleted {
        return None;
    }
    volume.instance_id()?;
    let instance = instance?;
    if instance.state == InstanceState::Terminated || instance.record.node_id.is_empty() {
        return None;
    }
    Some(instance.record.node_id.as_str())
}

/// The next plumbing step for `volume`, whose storage host reports `data`
/// (`None`: it does not hold it), toward node `target`; `None` when the
/// exports are where they belong and [`super::decide`] takes over.
pub fn plumb(
    data: Option<&ObservedVolume>,
    remotes: &Remotes,
    target: Option<&str>,
) -> Option<Plumb> {
    let data = data?;
    if data.state != VolumeState::Available {
        return None;
    }
    let mut records: Vec<(&String, &ObservedVolume)> = remotes.records.iter().collect();
    records.sort_by(|a, b| a.0.cmp(b.0));
    if let Some((node_id, _)) = records
        .iter()
        .find(|(node_id, o)| Some(node_id.as_str()) != target && !holds(o))
    {
        return Some(Plumb::Release {
            node_id: (*node_id).clone(),
        });
    }
    if records
        .iter()
        .any(|(node_id, o)| Some(node_id.as_str()) != target && holds(o))
    {
        // The volume is still attached elsewhere: `decide` detaches it.
        return None;
    }
    match (&data.export, target) {
        (Some(e), _) if Some(e.node_id.as_str()) != target => Some(Plumb::Unexport),
        (_, None) => None,
        (_, Some(node_id)) if !remotes.answered.contains(node_id) => Some(Plumb::Wait),
        (None, Some(node_id)) => Some(Plumb::Export {
            node_id: node_id.to_owned(),
        }),
        (Some(e), Some(node_id)) if !remotes.records.contains_key(node_id) => Some(Plumb::Record {
            node_id: node_id.to_owned(),
            export: e.export.clone(),
        }),
        (Some(_), Some(_)) => None,
    }
}

/// What [`super::decide`] sees of a storage host's volume once its exports
/// are in place: the storage host's view while the data is being created,
/// deleted or has failed; else the attachment a compute node holds (the
/// target's record when none holds it); else the storage host's view.
/// Returns the node the view came from (`None`: the storage host).
pub fn compose(
    data: Option<&ObservedVolume>,
    remotes: &Remotes,
    target: Option<&str>,
) -> Option<(ObservedVolume, Option<String>)> {
    let data = data?;
    if data.state != VolumeState::Available {
        return Some((data.clone(), None));
    }
    if let Some((node_id, o)) = remotes.records.iter().find(|(_, o)| holds(o)) {
        return Some((o.clone(), Some(node_id.clone())));
    }
    if let Some(node_id) = target
        && let Some(o) = remotes.records.get(node_id)
    {
        return Some((o.clone(), Some(node_id.to_owned())));
    }
    Some((data.clone(), None))
}

#[cfg(test)]
mod tests {
    use mallee_node_api::ObservedExport;

    use super::*;

    fn observed(state: VolumeState) -> ObservedVolume {
        ObservedVolume {
            volume_id: "vol-0123456789abcdef0".into(),
            state,
            size_gib: 1,
            generation: 1,
            export: None,
            remote: false,
        }
    }

    fn exported_to(node_id: &str) -> ObservedVolume {
        ObservedVolume {
            export: Some(ObservedExport {
                node_id: node_id.into(),
                export: nbd(),
                serving: true,
            }),
            ..observed(VolumeState::Available)
        }
    }

    fn nbd() -> NbdExport {
        NbdExport {
            host: "192.0.2.1".into(),
            port: 10810,
            name: "vol-0123456789abcdef0".into(),
            server_node_id: "st".into(),
        }
    }

    fn in_use() -> VolumeState {
        VolumeState::InUse {
            instance_id: "i-1".into(),
            device: "/dev/sdf".into(),
            guest_device: "/dev/vdb".into(),
        }
    }

    fn remotes(records: &[(&str, VolumeState)], answered: &[&str]) -> Remotes {
        Remotes {
            records: records
                .iter()
                .map(|(n, s)| {
                    let mut o = observed(s.clone());
                    o.remote = true;
                    ((*n).to_owned(), o)
                })
                .collect(),
            answered: answered.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    #[test]
    fn an_attachment_is_exported_then_recorded_then_left_to_decide() {
        let data = observed(VolumeState::Available);
        let none = remotes(&[], &["n1", "n2"]);
        assert_eq!(
            plumb(Some(&data), &none, Some("n1")),
            Some(Plumb::Export {
                node_id: "n1".into()
            })
        );
        let exported = exported_to("n1");
        assert_eq!(
            plumb(Some(&exported), &none, Some("n1")),
            Some(Plumb::Record {
                node_id: "n1".into(),
                export: nbd()
            })
        );
        let recorded = remotes(&[("n1", VolumeState::Available)], &["n1", "n2"]);
        assert_eq!(plumb(Some(&exported), &recorded, Some("n1")), None);
        let (view, from) = compose(Some(&exported), &recorded, Some("n1")).expect("view");
        assert!(view.remote);
        assert_eq!(from.as_deref(), Some("n1"));
        // Nothing to plumb while the data is not available.
        let creating = observed(VolumeState::Creating);
        assert_eq!(plumb(Some(&creating), &none, Some("n1")), None);
        assert_eq!(
            compose(Some(&creating), &recorded, Some("n1")).map(|v| v.1),
            Some(None)
        );
        assert_eq!(plumb(None, &none, Some("n1")), None);
    }

    #[test]
    fn a_detached_volume_is_released_then_unexported() {
        let exported = exported_to("n1");
        let recorded = remotes(&[("n1", VolumeState::Available)], &["n1"]);
        assert_eq!(
            plumb(Some(&exported), &recorded, None),
            Some(Plumb::Release {
                node_id: "n1".into()
            })
        );
        let released = remotes(&[], &["n1"]);
        assert_eq!(
            plumb(Some(&exported), &released, None),
            Some(Plumb::Unexport)
        );
        let data = observed(VolumeState::Available);
        assert_eq!(plumb(Some(&data), &released, None), None);
    }

    #[test]
    fn a_volume_moves_only_once_the_old_node_lets_go() {
        let exported = exported_to("n1");
        // Still attached on n1 while its instance now belongs on n2:
        // decide detaches it (from the holder's view).
        let held = remotes(&[("n1", in_use())], &["n1", "n2"]);
        assert_eq!(plumb(Some(&exported), &held, Some("n2")), None);
        let (view, from) = compose(Some(&exported), &held, Some("n2")).expect("view");
        assert_eq!((view.state, from.as_deref()), (in_use(), Some("n1")));
        // Let go: released, unexported, exported to n2, recorded there.
        let let_go = remotes(&[("n1", VolumeState::Available)], &["n1", "n2"]);
        assert_eq!(
            plumb(Some(&exported), &let_go, Some("n2")),
            Some(Plumb::Release {
                node_id: "n1".into()
            })
        );
        assert_eq!(
            plumb(Some(&exported), &remotes(&[], &["n1", "n2"]), Some("n2")),
            Some(Plumb::Unexport)
        );
    }

    #[test]
    fn a_node_that_is_down_loses_its_export_and_the_target_is_awaited() {
        // n1 is down (did not answer): its export ends before the volume
        // goes to n2.
        let exported = exported_to("n1");
        let n2_only = remotes(&[], &["n2"]);
        assert_eq!(
            plumb(Some(&exported), &n2_only, Some("n2")),
            Some(Plumb::Unexport)
        );
        // The target itself is down: wait rather than attach blindly.
        let data = observed(VolumeState::Available);
        assert_eq!(
            plumb(Some(&data), &remotes(&[], &["n1"]), Some("n2")),
            Some(Plumb::Wait)
        );
    }
}
