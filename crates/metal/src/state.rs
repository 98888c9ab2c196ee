//! The provisioning state machine: a pure [`decide`] from a system's state
//! and an event to the next state and the actions that carry it out, and
//! the events that drive it (all observed, none guessed: DHCP answers from
//! dnsmasq's log, iPXE script fetches and deploy-agent reports on the
//! provisioning HTTP server, the installed system's check-in, power-driver
//! results, and the clock for deadlines).
//!
//! ```text
//! free --reserve--> reserved --provision--> provisioning(powering-on)
//!   provisioning: dhcp -> netboot -> deploying -> rebooting --check-in--> running
//! reserved|provisioning|running|failed --release--> releasing --powered-off--> free
//! reserved|provisioning|running|failed --wipe--> wiping(netboot the agent in wipe mode)
//!   wiping --agent wiped--> releasing --powered-off--> free
//! provisioning|releasing|wiping --deadline passed / agent failed--> failed{reason}
//! ```

use std::time::Duration;

use crate::model::{State, Step, System, Wipe};

/// Deadlines of the busy states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// From power-on to the image being written and verified.
    pub deploy: Duration,
    /// From the image being written to the installed system's check-in.
    pub check_in: Duration,
    /// From release to the machine being powered off (a disk wipe, from
    /// release to the agent's `wiped` report, has the `deploy` deadline).
    pub release: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            deploy: Duration::from_secs(30 * 60),
            check_in: Duration::from_secs(20 * 60),
            release: Duration::from_secs(5 * 60),
        }
    }
}

/// Something that happened to a system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A user takes the free system.
    Reserve {
        /// The new owner.
        owner: String,
    },
    /// Install `profile` on the (reserved) system.
    Provision {
        /// The profile.
        profile: String,
        /// A fresh per-provisioning token.
        token: String,
    },
    /// dnsmasq acknowledged a DHCP lease to the system's MAC.
    DhcpAck,
    /// The system fetched its iPXE script.
    IpxeFetched,
    /// The deploy agent started.
    AgentStarted,
    /// The deploy agent wrote this many bytes.
    AgentProgress {
        /// Bytes written so far.
        bytes: u64,
    },
    /// The deploy agent wrote the image and read back this digest.
    AgentWritten {
        /// SHA-256 of what is on the disk (image length).
        sha256: String,
        /// The profile image's SHA-256.
        expected: String,
    },
    /// The deploy agent gave up.
    AgentFailed {
        /// Its reason.
        reason: String,
    },
    /// The installed system checked in.
    CheckedIn,
    /// The installer of an installer profile fetched its answer file.
    AnswerFetched,
    /// The installer of an installer profile reports that it installed
    /// the system (and is about to reboot into it).
    Installed,
    /// The check-in fallback: the installed system accepted a TCP
    /// connection on this port (SSH) without checking in.
    PortAnswered {
        /// The port.
        port: u16,
    },
    /// Give the system back to the pool.
    Release,
    /// Give the system back to the pool after wiping its disk with `mode`
    /// ([`Wipe::None`] is a plain [`Event::Release`]): the deploy agent is
    /// netbooted in wipe mode with `token`.
    Wipe {
        /// How to wipe.
        mode: Wipe,
        /// A fresh token for the wipe run.
        token: String,
    },
    /// The deploy agent wiped the disk and read it back as zeros.
    AgentWiped,
    /// The power driver switched the system off (or an operator confirmed it).
    PoweredOff,
    /// A power driver call failed.
    PowerFailed {
        /// The driver's error.
        reason: String,
    },
    /// Time passed (checks deadlines).
    Tick,
}

/// A side effect the engine performs after storing the new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Power the system on (or reset it if it is on) to boot from the network.
    PowerCycleNetboot,
    /// Power the system off.
    PowerOff,
}

/// The outcome of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing changes (duplicate or irrelevant event).
    Ignore,
    /// The event does not apply in this state: refused with this message.
    Reject(String),
    /// Store `system` (changed) and perform `actions` in order.
    Apply {
        /// The system's new record.
        system: Box<System>,
        /// What to do.
        actions: Vec<Action>,
    },
}

fn deadline(now: i64, after: Duration) -> Option<i64> {
    Some(now.saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX)))
}

/// The next state of `system` after `event` at `now` (Unix ms). Pure.
pub fn decide(system: &System, event: &Event, now: i64, timeouts: &Timeouts) -> Decision {
    let mut next = system.clone();
    let moved = |next: &mut System, state: State, until: Option<Duration>| {
        next.state = state;
        next.state_since = now;
        next.deadline = until.and_then(|d| deadline(now, d));
    };
    let step = match &system.state {
        State::Provisioning { step } => Some(*step),
        _ => None,
    };
    let actions = match (&system.state, event) {
        (State::Free, Event::Reserve { owner }) => {
            next.owner = Some(owner.clone());
            moved(&mut next, State::Reserved, None);
            vec![]
        }
        (_, Event::Reserve { .. }) => {
            return Decision::Reject(format!(
                "system {} is not free (it is {})",
                system.name,
                system.state.name()
            ));
        }
        (State::Reserved | State::Running, Event::Provision { profile, token }) => {
            next.profile = Some(profile.clone());
            next.token = Some(token.clone());
            next.netboot = true;
            next.last_event = Some("power on with netboot".into());
            moved(
                &mut next,
                State::Provisioning {
                    step: Step::PoweringOn,
                },
                Some(timeouts.deploy),
            );
            vec![Action::PowerCycleNetboot]
        }
        (_, Event::Provision { .. }) => {
            return Decision::Reject(format!(
                "system {} cannot be provisioned while {} (reserve it first)",
                system.name,
                system.state.name()
            ));
        }
        (State::Provisioning { .. }, Event::DhcpAck) if step == Some(Step::PoweringOn) => {
            next.state = State::Provisioning { step: Step::Dhcp };
            next.last_event = Some("DHCP lease".into());
            vec![]
        }
        (State::Provisioning { .. }, Event::IpxeFetched)
            if matches!(step, Some(Step::PoweringOn | Step::Dhcp)) =>
        {
            next.state = State::Provisioning {
                step: Step::Netboot,
            };
            next.last_event = Some("iPXE script fetched".into());
            vec![]
        }
        (State::Provisioning { .. }, Event::AnswerFetched)
            if matches!(step, Some(Step::PoweringOn | Step::Dhcp | Step::Netboot)) =>
        {
            next.state = State::Provisioning {
                step: Step::Deploying,
            };
            next.last_event = Some("installer fetched its answer file".into());
            vec![]
        }
        (State::Provisioning { .. }, Event::AnswerFetched) if step == Some(Step::Deploying) => {
            next.last_event = Some("installer fetched its answer file again".into());
            vec![]
        }
        (State::Provisioning { .. }, Event::Installed)
            if matches!(step, Some(Step::Deploying | Step::Netboot)) =>
        {
            next.netboot = false;
            next.last_event = Some("installer finished".into());
            moved(
                &mut next,
                State::Provisioning {
                    step: Step::Rebooting,
                },
                Some(timeouts.check_in),
            );
            vec![]
        }
        (State::Provisioning { .. }, Event::PortAnswered { port })
            if step == Some(Step::Rebooting) =>
        {
            next.last_event = Some(format!(
                "installed system answers on port {port} (no check-in)"
            ));
            moved(&mut next, State::Running, None);
            vec![]
        }
        (State::Provisioning { .. }, Event::AgentStarted)
            if step != Some(Step::Rebooting) && step != Some(Step::Deploying) =>
        {
            next.state = State::Provisioning {
                step: Step::Deploying,
            };
            next.last_event = Some("deploy agent started".into());
            vec![]
        }
        (State::Provisioning { .. }, Event::AgentProgress { bytes })
            if step == Some(Step::Deploying) =>
        {
            next.last_event = Some(format!("deploy agent wrote {bytes} bytes"));
            vec![]
        }
        (State::Provisioning { .. }, Event::AgentWritten { sha256, expected })
            if matches!(step, Some(Step::Deploying | Step::Netboot)) =>
        {
            next.netboot = false;
            if sha256 != expected {
                next.last_event = Some(format!("image digest {sha256}"));
                moved(
                    &mut next,
                    State::Failed {
                        reason: format!(
                            "image verification failed: disk has sha256 {sha256}, profile image has {expected}"
                        ),
                    },
                    None,
                );
                vec![Action::PowerOff]
            } else {
                next.last_event = Some("image written and verified".into());
                moved(
                    &mut next,
                    State::Provisioning {
                        step: Step::Rebooting,
                    },
                    Some(timeouts.check_in),
                );
                vec![]
            }
        }
        (State::Provisioning { .. }, Event::AgentFailed { reason }) => {
            next.netboot = false;
            next.last_event = Some(format!("deploy agent failed: {reason}"));
            moved(
                &mut next,
                State::Failed {
                    reason: format!("deploy agent failed: {reason}"),
                },
                None,
            );
            vec![Action::PowerOff]
        }
        (State::Provisioning { .. }, Event::CheckedIn) if step == Some(Step::Rebooting) => {
            next.last_event = Some("installed system checked in".into());
            moved(&mut next, State::Running, None);
            vec![]
        }
        (State::Provisioning { .. }, Event::PowerFailed { reason }) => {
            next.netboot = false;
            moved(
                &mut next,
                State::Failed {
                    reason: format!("power on failed: {reason}"),
                },
                None,
            );
            vec![]
        }
        (
            State::Reserved | State::Provisioning { .. } | State::Running | State::Failed { .. },
            Event::Release,
        ) => {
            next.netboot = false;
            next.last_event = Some("release: power off".into());
            moved(&mut next, State::Releasing, Some(timeouts.release));
            vec![Action::PowerOff]
        }
        (State::Free | State::Releasing | State::Wiping { .. }, Event::Release) => {
            return Decision::Ignore;
        }
        (
            _,
            Event::Wipe {
                mode: Wipe::None, ..
            },
        ) => {
            return decide(system, &Event::Release, now, timeouts);
        }
        (
            State::Reserved | State::Provisioning { .. } | State::Running | State::Failed { .. },
            Event::Wipe { mode, token },
        ) => {
            next.token = Some(token.clone());
            next.netboot = true;
            next.last_event = Some(format!("release: wipe the disk ({mode}), netboot"));
            moved(
                &mut next,
                State::Wiping { mode: *mode },
                Some(timeouts.deploy),
            );
            vec![Action::PowerCycleNetboot]
        }
        (_, Event::Wipe { .. }) => return Decision::Ignore,
        (State::Wiping { .. }, Event::DhcpAck) => {
            next.last_event = Some("DHCP lease (wipe)".into());
            vec![]
        }
        (State::Wiping { .. }, Event::IpxeFetched) => {
            next.last_event = Some("iPXE script fetched (wipe)".into());
            vec![]
        }
        (State::Wiping { .. }, Event::AgentStarted) => {
            next.last_event = Some("deploy agent started wiping".into());
            vec![]
        }
        (State::Wiping { .. }, Event::AgentProgress { bytes }) => {
            next.last_event = Some(format!("deploy agent wiped {bytes} bytes"));
            vec![]
        }
        (State::Wiping { .. }, Event::AgentWiped) => {
            next.netboot = false;
            next.last_event = Some("disk wiped and verified: power off".into());
            moved(&mut next, State::Releasing, Some(timeouts.release));
            vec![Action::PowerOff]
        }
        (State::Wiping { .. }, Event::AgentFailed { reason }) => {
            next.netboot = false;
            next.last_event = Some(format!("deploy agent failed: {reason}"));
            moved(
                &mut next,
                State::Failed {
                    reason: format!("disk wipe failed: {reason}"),
                },
                None,
            );
            vec![Action::PowerOff]
        }
        (State::Wiping { .. }, Event::PowerFailed { reason }) => {
            next.netboot = false;
            moved(
                &mut next,
                State::Failed {
                    reason: format!("power on for the disk wipe failed: {reason}"),
                },
                None,
            );
            vec![]
        }
        (State::Wiping { mode }, Event::Tick) if system.deadline.is_some_and(|d| now >= d) => {
            let waited = system
                .deadline
                .map_or(0, |d| (d - system.state_since).max(0) / 1000);
            next.netboot = false;
            moved(
                &mut next,
                State::Failed {
                    reason: format!(
                        "timeout: the disk was not wiped ({mode}) within {waited}s (last: {})",
                        system.last_event.as_deref().unwrap_or("nothing")
                    ),
                },
                None,
            );
            vec![Action::PowerOff]
        }
        (State::Releasing, Event::PoweredOff) => {
            next.owner = None;
            next.token = None;
            next.last_event = Some("powered off".into());
            moved(&mut next, State::Free, None);
            vec![]
        }
        (State::Releasing, Event::PowerFailed { reason }) => {
            moved(
                &mut next,
                State::Failed {
                    reason: format!("power off failed: {reason}"),
                },
                None,
            );
            vec![]
        }
        (State::Provisioning { step }, Event::Tick)
            if system.deadline.is_some_and(|d| now >= d) =>
        {
            let waited = system
                .deadline
                .map_or(0, |d| (d - system.state_since).max(0) / 1000);
            let what = match step {
                Step::Rebooting => "the installed system did not check in",
                Step::PoweringOn => "the machine never asked for DHCP",
                Step::Dhcp => "the machine never fetched its iPXE script",
                Step::Netboot => "the deploy agent never started",
                Step::Deploying => "the deploy agent did not finish",
            };
            next.netboot = false;
            moved(
                &mut next,
                State::Failed {
                    reason: format!(
                        "timeout: {what} within {waited}s (last: {})",
                        system.last_event.as_deref().unwrap_or("nothing")
                    ),
                },
                None,
            );
            vec![Action::PowerOff]
        }
        (State::Releasing, Event::Tick) if system.deadline.is_some_and(|d| now >= d) => {
            moved(
                &mut next,
                State::Failed {
                    reason: "timeout: the machine was not powered off".into(),
                },
                None,
            );
            vec![]
        }
        _ => return Decision::Ignore,
    };
    if next == *system {
        return Decision::Ignore;
    }
    Decision::Apply {
        system: Box::new(next),
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mac;
    use crate::power::PowerSpec;

    const T: Timeouts = Timeouts {
        deploy: Duration::from_secs(100),
        check_in: Duration::from_secs(50),
        release: Duration::from_secs(10),
    };

    fn system(state: State) -> System {
        let mut s = System::new(
            "m1",
            "52:54:00:00:00:01".parse::<Mac>().expect("mac"),
            "10.254.0.11".parse().expect("ip"),
            "test01",
            PowerSpec::Manual,
        )
        .expect("system");
        s.state = state;
        s
    }

    fn apply(s: &System, e: Event, now: i64) -> (System, Vec<Action>) {
        match decide(s, &e, now, &T) {
            Decision::Apply { system, actions } => (*system, actions),
            other => panic!("{e:?} in {:?}: {other:?}", s.state),
        }
    }

    fn provisioning(step: Step) -> State {
        State::Provisioning { step }
    }

    #[test]
    fn happy_path_free_to_running_to_free() {
        let s = system(State::Free);
        let (s, a) = apply(
            &s,
            Event::Reserve {
                owner: "demo".into(),
            },
            1,
        );
        assert_eq!(
            (s.state.clone(), s.owner.as_deref(), a),
            (State::Reserved, Some("demo"), vec![])
        );
        let (s, a) = apply(
            &s,
            Event::Provision {
                profile: "p".into(),
                token: "tok".into(),
            },
            2,
        );
        assert_eq!(s.state, provisioning(Step::PoweringOn));
        assert!(s.netboot);
        assert_eq!(s.deadline, Some(100_002));
        assert_eq!(a, vec![Action::PowerCycleNetboot]);
        let (s, _) = apply(&s, Event::DhcpAck, 3);
        assert_eq!(s.state, provisioning(Step::Dhcp));
        let (s, _) = apply(&s, Event::IpxeFetched, 4);
        assert_eq!(s.state, provisioning(Step::Netboot));
        let (s, _) = apply(&s, Event::AgentStarted, 5);
        assert_eq!(s.state, provisioning(Step::Deploying));
        assert_eq!(s.deadline, Some(100_002), "steps keep the deploy deadline");
        let (s, _) = apply(&s, Event::AgentProgress { bytes: 42 }, 6);
        assert_eq!(s.last_event.as_deref(), Some("deploy agent wrote 42 bytes"));
        let (s, a) = apply(
            &s,
            Event::AgentWritten {
                sha256: "ab".into(),
                expected: "ab".into(),
            },
            7,
        );
        assert_eq!(s.state, provisioning(Step::Rebooting));
        assert!(!s.netboot, "netboot goes off once the image is written");
        assert_eq!(s.deadline, Some(50_007));
        assert_eq!(a, vec![]);
        let (s, a) = apply(&s, Event::CheckedIn, 8);
        assert_eq!(
            (s.state.clone(), s.deadline, a),
            (State::Running, None, vec![])
        );
        assert_eq!(decide(&s, &Event::CheckedIn, 9, &T), Decision::Ignore);
        let (s, a) = apply(&s, Event::Release, 10);
        assert_eq!(s.state, State::Releasing);
        assert_eq!(a, vec![Action::PowerOff]);
        let (s, _) = apply(&s, Event::PoweredOff, 11);
        assert_eq!((s.state, s.owner, s.token), (State::Free, None, None));
    }

    #[test]
    fn installer_path_and_port_fallback() {
        let mut s = system(provisioning(Step::Netboot));
        s.netboot = true;
        s.deadline = Some(100);
        let (s, a) = apply(&s, Event::AnswerFetched, 5);
        assert_eq!(
            (s.state.clone(), a),
            (provisioning(Step::Deploying), vec![])
        );
        assert_eq!(s.deadline, Some(100), "the deploy deadline still runs");
        // An installer that fetches its answer file twice stays deploying.
        let (s, _) = apply(&s, Event::AnswerFetched, 6);
        assert_eq!(s.state, provisioning(Step::Deploying));
        assert_eq!(
            decide(&s, &Event::PortAnswered { port: 22 }, 7, &T),
            Decision::Ignore,
            "a port answering before the install is done means nothing"
        );
        let (s, a) = apply(&s, Event::Installed, 8);
        assert_eq!(s.state, provisioning(Step::Rebooting));
        assert!(!s.netboot, "netboot goes off once the installer is done");
        assert_eq!((s.deadline, a), (Some(50_008), vec![]));
        assert_eq!(decide(&s, &Event::AnswerFetched, 9, &T), Decision::Ignore);
        let (r, _) = apply(&s, Event::PortAnswered { port: 22 }, 10);
        assert_eq!((r.state.clone(), r.deadline), (State::Running, None));
        assert_eq!(
            r.last_event.as_deref(),
            Some("installed system answers on port 22 (no check-in)")
        );
        assert_eq!(
            decide(&r, &Event::PortAnswered { port: 22 }, 11, &T),
            Decision::Ignore
        );
        assert_eq!(decide(&r, &Event::CheckedIn, 11, &T), Decision::Ignore);
        // The POST check-in still works the same way.
        let (c, _) = apply(&s, Event::CheckedIn, 12);
        assert_eq!(c.state, State::Running);
        for st in [State::Free, State::Reserved, provisioning(Step::PoweringOn)] {
            assert_eq!(
                decide(&system(st), &Event::Installed, 0, &T),
                Decision::Ignore
            );
        }
    }

    #[test]
    fn reserve_only_when_free() {
        for st in [
            State::Reserved,
            State::Running,
            State::Releasing,
            provisioning(Step::Dhcp),
        ] {
            assert!(matches!(
                decide(&system(st), &Event::Reserve { owner: "x".into() }, 0, &T),
                Decision::Reject(_)
            ));
        }
        let provision = Event::Provision {
            profile: "p".into(),
            token: "t".into(),
        };
        assert!(matches!(
            decide(&system(State::Free), &provision, 0, &T),
            Decision::Reject(_)
        ));
    }

    #[test]
    fn out_of_order_and_duplicate_events_are_ignored() {
        let s = system(provisioning(Step::Deploying));
        assert_eq!(decide(&s, &Event::DhcpAck, 0, &T), Decision::Ignore);
        assert_eq!(decide(&s, &Event::IpxeFetched, 0, &T), Decision::Ignore);
        assert_eq!(decide(&s, &Event::AgentStarted, 0, &T), Decision::Ignore);
        assert_eq!(decide(&s, &Event::CheckedIn, 0, &T), Decision::Ignore);
        let free = system(State::Free);
        for e in [
            Event::DhcpAck,
            Event::IpxeFetched,
            Event::CheckedIn,
            Event::PoweredOff,
            Event::Tick,
            Event::Release,
        ] {
            assert_eq!(decide(&free, &e, 0, &T), Decision::Ignore, "{e:?}");
        }
    }

    #[test]
    fn wrong_digest_fails_and_powers_off() {
        let s = system(provisioning(Step::Deploying));
        let (s, a) = apply(
            &s,
            Event::AgentWritten {
                sha256: "aa".into(),
                expected: "bb".into(),
            },
            1,
        );
        let State::Failed { reason } = &s.state else {
            panic!("{:?}", s.state)
        };
        assert!(reason.contains("verification failed"), "{reason}");
        assert_eq!(a, vec![Action::PowerOff]);
    }

    #[test]
    fn agent_failure_is_the_reason() {
        let mut s = system(provisioning(Step::Deploying));
        s.netboot = true;
        let (s, a) = apply(
            &s,
            Event::AgentFailed {
                reason: "no disk".into(),
            },
            1,
        );
        assert_eq!(
            s.state,
            State::Failed {
                reason: "deploy agent failed: no disk".into()
            }
        );
        assert!(!s.netboot);
        assert_eq!(a, vec![Action::PowerOff]);
    }

    #[test]
    fn deadlines() {
        let mut s = system(provisioning(Step::Rebooting));
        s.state_since = 1_000;
        s.deadline = Some(31_000);
        s.last_event = Some("image written and verified".into());
        assert_eq!(decide(&s, &Event::Tick, 30_999, &T), Decision::Ignore);
        let (f, a) = apply(&s, Event::Tick, 31_000);
        assert_eq!(
            f.state,
            State::Failed {
                reason: "timeout: the installed system did not check in within 30s (last: image written and verified)".into()
            }
        );
        assert_eq!(a, vec![Action::PowerOff]);
        // A failed system can be released and goes back to the pool.
        let (r, _) = apply(&f, Event::Release, 32_000);
        assert_eq!(r.state, State::Releasing);
        let (free, _) = apply(&r, Event::PoweredOff, 33_000);
        assert_eq!(free.state, State::Free);

        let mut rel = system(State::Releasing);
        rel.deadline = Some(10);
        let (f, _) = apply(&rel, Event::Tick, 10);
        assert!(matches!(f.state, State::Failed { .. }));
        let no_deadline = system(State::Running);
        assert_eq!(
            decide(&no_deadline, &Event::Tick, i64::MAX, &T),
            Decision::Ignore
        );
    }

    #[test]
    fn power_failures() {
        let s = system(provisioning(Step::PoweringOn));
        let (f, _) = apply(
            &s,
            Event::PowerFailed {
                reason: "bmc down".into(),
            },
            1,
        );
        assert_eq!(
            f.state,
            State::Failed {
                reason: "power on failed: bmc down".into()
            }
        );
        let r = system(State::Releasing);
        let (f, _) = apply(
            &r,
            Event::PowerFailed {
                reason: "bmc down".into(),
            },
            1,
        );
        assert_eq!(
            f.state,
            State::Failed {
                reason: "power off failed: bmc down".into()
            }
        );
    }

    fn wipe(token: &str) -> Event {
        Event::Wipe {
            mode: Wipe::Zero,
            token: token.into(),
        }
    }

    #[test]
    fn wipe_path_running_to_wiping_to_free() {
        let mut s = system(State::Running);
        s.owner = Some("demo".into());
        s.token = Some("old".into());
        let (s, a) = apply(&s, wipe("w1"), 10);
        assert_eq!(s.state, State::Wiping { mode: Wipe::Zero });
        assert_eq!((s.token.as_deref(), s.netboot), (Some("w1"), true));
        assert_eq!(s.owner.as_deref(), Some("demo"), "owned until freed");
        assert_eq!(
            s.deadline,
            Some(100_010),
            "the wipe has the deploy deadline"
        );
        assert_eq!(a, vec![Action::PowerCycleNetboot]);
        assert!(s.state.is_busy());
        // The agent's boot and reports move nothing but the last event.
        let (s, a) = apply(&s, Event::DhcpAck, 11);
        assert_eq!(
            (s.state.clone(), a),
            (State::Wiping { mode: Wipe::Zero }, vec![])
        );
        let (s, _) = apply(&s, Event::IpxeFetched, 12);
        let (s, _) = apply(&s, Event::AgentStarted, 13);
        let (s, _) = apply(&s, Event::AgentProgress { bytes: 7 }, 14);
        assert_eq!(s.state, State::Wiping { mode: Wipe::Zero });
        assert_eq!(s.last_event.as_deref(), Some("deploy agent wiped 7 bytes"));
        // Not a provisioning run: image and check-in events mean nothing.
        for e in [
            Event::CheckedIn,
            Event::Installed,
            Event::AgentWritten {
                sha256: "a".into(),
                expected: "a".into(),
            },
            Event::Release,
            wipe("w2"),
            Event::PoweredOff,
        ] {
            assert_eq!(decide(&s, &e, 15, &T), Decision::Ignore, "{e:?}");
        }
        // Not free before the report.
        assert_eq!(decide(&s, &Event::Tick, 100_009, &T), Decision::Ignore);
        let (s, a) = apply(&s, Event::AgentWiped, 20);
        assert_eq!(s.state, State::Releasing);
        assert!(!s.netboot);
        assert_eq!((s.deadline, a), (Some(10_020), vec![Action::PowerOff]));
        let (s, _) = apply(&s, Event::PoweredOff, 21);
        assert_eq!((s.state, s.owner, s.token), (State::Free, None, None));
    }

    #[test]
    fn wipe_none_is_a_plain_release_and_free_systems_are_not_wiped() {
        let s = system(State::Reserved);
        let plain = decide(&s, &Event::Release, 1, &T);
        let none = decide(
            &s,
            &Event::Wipe {
                mode: Wipe::None,
                token: "t".into(),
            },
            1,
            &T,
        );
        assert_eq!(plain, none);
        for st in [State::Free, State::Releasing] {
            assert_eq!(decide(&system(st), &wipe("t"), 1, &T), Decision::Ignore);
        }
        for st in [
            State::Reserved,
            provisioning(Step::Deploying),
            State::Failed { reason: "x".into() },
        ] {
            let (w, _) = apply(&system(st), wipe("t"), 1);
            assert_eq!(w.state, State::Wiping { mode: Wipe::Zero });
        }
    }

    #[test]
    fn wipe_failures_fail_and_can_be_released_again() {
        let mut s = system(State::Running);
        s.state_since = 0;
        let (w, _) = apply(&s, wipe("t"), 1_000);
        let (f, a) = apply(&w, Event::Tick, 101_000);
        assert_eq!(
            f.state,
            State::Failed {
                reason: "timeout: the disk was not wiped (zero) within 100s (last: release: wipe the disk (zero), netboot)".into()
            }
        );
        assert!(!f.netboot);
        assert_eq!(a, vec![Action::PowerOff]);
        let (f, a) = apply(
            &w,
            Event::AgentFailed {
                reason: "last MiB not zero".into(),
            },
            2_000,
        );
        assert_eq!(
            f.state,
            State::Failed {
                reason: "disk wipe failed: last MiB not zero".into()
            }
        );
        assert_eq!(a, vec![Action::PowerOff]);
        let (p, _) = apply(
            &w,
            Event::PowerFailed {
                reason: "bmc down".into(),
            },
            2_000,
        );
        assert!(matches!(p.state, State::Failed { .. }));
        // Releasable again: with a wipe, or plainly.
        let (again, a) = apply(&f, wipe("t2"), 3_000);
        assert_eq!(again.state, State::Wiping { mode: Wipe::Zero });
        assert_eq!(a, vec![Action::PowerCycleNetboot]);
        let (r, _) = apply(&f, Event::Release, 3_000);
        assert_eq!(r.state, State::Releasing);
    }

    #[test]
    fn reprovision_a_running_system() {
        let s = system(State::Running);
        let (s, a) = apply(
            &s,
            Event::Provision {
                profile: "q".into(),
                token: "t2".into(),
            },
            5,
        );
        assert_eq!(s.state, provisioning(Step::PoweringOn));
        assert_eq!(s.profile.as_deref(), Some("q"));
        assert_eq!(a, vec![Action::PowerCycleNetboot]);
    }
}
