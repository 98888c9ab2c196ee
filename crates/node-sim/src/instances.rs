//! Instances of the simulated node: the real agent's per-instance state
//! machine (`crates/node/src/instance.rs`), with the VM process replaced by
//! a flag and its boot and shutdown by timed effects.
//!
//! - A spec applies only if its generation is higher than the one held;
//!   the answer is the instance as observed right after it applied, before
//!   the step it starts (as the real runner answers).
//! - Pending + desired running starts a boot (`boot_delay`), which ends
//!   running, or failed when a queued boot failure or a missing EBS root
//!   says so. Running + desired stopped goes stopping (`stop_delay`), then
//!   stopped, or pending again if a newer spec asked to run meanwhile.
//! - A newer spec asking to run a stopped, shut-down or failed instance is
//!   the controller's retry: it goes pending and boots again.
//! - The guest may power off (guest-shutdown) and a VM may die (failed)
//!   on command.

use mallee_node_api::{
    BootImage, ConsoleOutput, DesiredState, InstanceSpec, NodeError, ObservedInstance, VmState,
    VolumeState,
};

use crate::SimError;
use crate::state::{Effect, Op, Process, State, Vm, valid_id};

/// What GetConsoleOutput returns at most.
const CONSOLE_MAX: usize = 64 * 1024;
/// Where the guest sees an EBS root volume (the first virtio disk).
pub(crate) const ROOT_GUEST_DEVICE: &str = "/dev/vda";

/// The root volume of an EBS-backed instance.
pub(crate) fn root_volume(spec: &InstanceSpec) -> Option<&str> {
    match &spec.image {
        BootImage::Ebs { root_volume_id, .. } => Some(root_volume_id),
        BootImage::Paravirtual { .. } | BootImage::Hvm { .. } => None,
    }
}

impl Vm {
    pub fn observed(&self) -> ObservedInstance {
        ObservedInstance {
            instance_id: self.spec.instance_id.clone(),
            state: self.state.clone(),
            generation: self.spec.generation,
        }
    }

    fn busy(&self) -> bool {
        self.op.is_some()
    }

    /// Appends a line to the serial console, keeping a bounded tail.
    pub fn console_line(&mut self, line: &str) {
        self.console.push_str(line);
        self.console.push('\n');
        if self.console.len() > 2 * CONSOLE_MAX {
            let mut cut = self.console.len() - CONSOLE_MAX;
            while !self.console.is_char_boundary(cut) {
                cut += 1;
            }
            self.console.drain(..cut);
        }
    }
}

impl State {
    fn vm(&mut self, id: &str) -> Result<&mut Vm, NodeError> {
        self.instances
            .get_mut(id)
            .ok_or_else(|| NodeError::NotFound(id.to_owned()))
    }

    pub fn put_instance(&mut self, spec: InstanceSpec) -> Result<ObservedInstance, NodeError> {
        if !valid_id(&spec.instance_id) {
            return Err(NodeError::BadRequest(format!(
                "bad instance id {:?}",
                spec.instance_id
            )));
        }
        if let Some(root) = root_volume(&spec) {
            self.claim_root(&spec, root)?;
        }
        let id = spec.instance_id.clone();
        self.instances.entry(id.clone()).or_insert_with(|| Vm {
            // Generation 0 below any real spec, so the first put applies.
            spec: InstanceSpec {
                generation: 0,
                ..spec.clone()
            },
            state: VmState::Pending,
            process: Process::None,
            op: None,
            volumes: Vec::new(),
            console: String::new(),
            boots: 0,
            reboots: 0,
        });
        Ok(self.apply_spec(&id, spec))
    }

    pub fn set_desired(
        &mut self,
        id: &str,
        desired: DesiredState,
        generation: u64,
    ) -> Result<ObservedInstance, NodeError> {
        let vm = self.vm(id)?;
        if generation <= vm.spec.generation {
            return Ok(vm.observed());
        }
        let spec = InstanceSpec {
            desired,
            generation,
            ..vm.spec.clone()
        };
        Ok(self.apply_spec(id, spec))
    }

    /// The real runner's `put`: a newer spec replaces the held one; the
    /// answer is the state before the step it starts.
    fn apply_spec(&mut self, id: &str, spec: InstanceSpec) -> ObservedInstance {
        let Some(vm) = self.instances.get_mut(id) else {
            return ObservedInstance {
                instance_id: id.to_owned(),
                state: VmState::Pending,
                generation: 0,
            };
        };
        if spec.generation <= vm.spec.generation {
            return vm.observed();
        }
        let wants_run = spec.desired == DesiredState::Running;
        vm.spec = spec;
        let idle = !vm.busy() && vm.process == Process::None;
        if wants_run
            && idle
            && matches!(
                vm.state,
                VmState::Stopped | VmState::GuestShutdown | VmState::Failed(_)
            )
        {
            vm.state = VmState::Pending;
        }
        if !wants_run && idle && vm.state == VmState::Pending {
            vm.state = VmState::Stopped;
        }
        let observed = vm.observed();
        self.drive(id);
        observed
    }

    /// Starts the step the instance needs now, if any (the real runner's
    /// `next_op`). Nothing moves while the agent is down.
    pub(crate) fn drive(&mut self, id: &str) {
        if !self.up {
            return;
        }
        let token = self.token();
        let delays = self.delays;
        let Some(vm) = self.instances.get_mut(id) else {
            return;
        };
        if vm.busy() {
            return;
        }
        let running = vm.process == Process::Running;
        match (&vm.state, vm.spec.desired, running) {
            (VmState::Pending, DesiredState::Running, false) => {
                vm.op = Some((Op::Start, token));
                vm.console_line(&format!(
                    "[sim] {id}: starting ({} vCPUs, {} MiB)",
                    vm.spec.vcpus, vm.spec.memory_mib
                ));
                self.effects.push(Effect::Boot {
                    instance_id: id.to_owned(),
                    token,
                    delay: delays.boot,
                });
            }
            (_, DesiredState::Stopped, true) => {
                vm.op = Some((Op::Stop, token));
                vm.state = VmState::Stopping;
                vm.console_line(&format!("[sim] {id}: ACPI power button"));
                self.effects.push(Effect::Stop {
                    instance_id: id.to_owned(),
                    token,
                    delay: delays.stop,
                });
            }
            (VmState::Pending | VmState::Failed(_), DesiredState::Stopped, false) => {
                vm.state = VmState::Stopped;
            }
            _ => {}
        }
    }

    fn current(&mut self, id: &str, op: Op, token: u64) -> Option<&mut Vm> {
        if !self.up {
            return None;
        }
        self.instances
            .get_mut(id)
            .filter(|vm| vm.op == Some((op, token)))
    }

    /// A boot ended.
    pub fn boot_done(&mut self, id: &str, token: u64) {
        let failure = self.boot_failures.pop_front();
        let missing_root = self
            .instances
            .get(id)
            .and_then(|vm| root_volume(&vm.spec))
            .filter(|root| !self.volumes.contains_key(*root))
            .map(|root| format!("the root volume {root} is not on this node"));
        let Some(vm) = self.current(id, Op::Start, token) else {
            if let Some(reason) = failure {
                self.boot_failures.push_front(reason);
            }
            return;
        };
        vm.op = None;
        match failure.or(missing_root) {
            Some(reason) => {
                vm.console_line(&format!("[sim] {id}: start failed: {reason}"));
                vm.state = VmState::Failed(reason);
            }
            None => {
                vm.process = Process::Running;
                vm.boots += 1;
                vm.state = VmState::Running;
                vm.console_line(&format!("[sim] {id}: running (boot {})", vm.boots));
                // As the real agent logs it (what bench/burst.py times the
                // controller's `running` against).
                tracing::info!(instance = %id, state = ?vm.state, "instance state");
            }
        }
        self.drive(id);
    }

    /// A shutdown ended.
    pub fn stop_done(&mut self, id: &str, token: u64) {
        let Some(vm) = self.current(id, Op::Stop, token) else {
            return;
        };
        vm.op = None;
        vm.process = Process::None;
        vm.console_line(&format!("[sim] {id}: powered off"));
        // Asked to run again while it was stopping.
        vm.state = if vm.spec.desired == DesiredState::Running {
            VmState::Pending
        } else {
            VmState::Stopped
        };
        self.drive(id);
    }

    pub fn reboot(&mut self, id: &str) -> Result<(), NodeError> {
        let vm = self.vm(id)?;
        if vm.process != Process::Running || vm.busy() {
            return Err(NodeError::Conflict(format!(
                "instance {id} is not running ({:?})",
                vm.state
            )));
        }
        vm.reboots += 1;
        vm.console_line(&format!("[sim] {id}: reset"));
        Ok(())
    }

    /// Removes an instance; the volumes it held stay, available.
    pub fn delete_instance(&mut self, id: &str) {
        if self.instances.remove(id).is_none() {
            return;
        }
        for volume in self.volumes.values_mut() {
            if volume_holder(&volume.state) == Some(id) {
                volume.state = VolumeState::Available;
            }
        }
    }

    pub fn console_output(&self, id: &str) -> Result<ConsoleOutput, NodeError> {
        let vm = self
            .instances
            .get(id)
            .ok_or_else(|| NodeError::NotFound(id.to_owned()))?;
        let mut start = vm.console.len().saturating_sub(CONSOLE_MAX);
        while !vm.console.is_char_boundary(start) {
            start += 1;
        }
        Ok(ConsoleOutput {
            instance_id: id.to_owned(),
            output: vm.console[start..].to_owned(),
        })
    }

    /// The guest powers itself off.
    pub fn guest_poweroff(&mut self, id: &str) -> Result<(), SimError> {
        let up = self.up;
        let vm = self
            .instances
            .get_mut(id)
            .ok_or_else(|| SimError::NoSuchInstance(id.to_owned()))?;
        if vm.process != Process::Running || vm.busy() {
            return Err(SimError::NotRunning {
                instance_id: id.to_owned(),
                state: vm.state.clone(),
            });
        }
        vm.console_line(&format!("[sim] {id}: reboot: Power down"));
        if up {
            vm.process = Process::None;
            vm.state = VmState::GuestShutdown;
        } else {
            // Noticed when the agent adopts the VM.
            vm.process = Process::PoweredOff;
        }
        Ok(())
    }

    /// The VM dies (or its boot under way fails) with `reason`.
    pub fn fail_vm(&mut self, id: &str, reason: &str) -> Result<(), SimError> {
        let up = self.up;
        let vm = self
            .instances
            .get_mut(id)
            .ok_or_else(|| SimError::NoSuchInstance(id.to_owned()))?;
        let booting = matches!(vm.op, Some((Op::Start, _)));
        if vm.process == Process::None && !booting {
            return Err(SimError::NotRunning {
                instance_id: id.to_owned(),
                state: vm.state.clone(),
            });
        }
        vm.op = None;
        vm.process = Process::None;
        vm.console_line(&format!("[sim] {id}: {reason}"));
        if up {
            vm.state = VmState::Failed(reason.to_owned());
        }
        // While the agent is down the death is only found at adoption, as
        // a VM gone (started again if it should run).
        Ok(())
    }

    /// Makes `root` the root disk of the instance of `spec` (the real
    /// agent's `claim_root`).
    fn claim_root(&mut self, spec: &InstanceSpec, root: &str) -> Result<(), NodeError> {
        if !valid_id(root) {
            return Err(NodeError::BadRequest(format!(
                "bad root volume id {root:?}"
            )));
        }
        if let Some(held) = self
            .instances
            .get(&spec.instance_id)
            .and_then(|vm| root_volume(&vm.spec))
            && held != root
        {
            return Err(NodeError::BadRequest(format!(
                "{} boots from {held}, not {root}",
                spec.instance_id
            )));
        }
        let volume = self.volumes.get_mut(root).ok_or_else(|| {
            NodeError::Conflict(format!(
                "the root volume {root} of {} is not on this node",
                spec.instance_id
            ))
        })?;
        match &volume.state {
            VolumeState::Available => {
                volume.state = VolumeState::InUse {
                    instance_id: spec.instance_id.clone(),
                    device: spec.metadata.root_device_name.clone(),
                    guest_device: ROOT_GUEST_DEVICE.to_owned(),
                };
                Ok(())
            }
            VolumeState::InUse { instance_id, .. } if *instance_id == spec.instance_id => Ok(()),
            state => Err(NodeError::Conflict(format!(
                "the root volume {root} of {} is not available ({state:?})",
                spec.instance_id
            ))),
        }
    }
}

/// The instance a volume is attached (or being attached or detached) to.
pub(crate) fn volume_holder(state: &VolumeState) -> Option<&str> {
    match state {
        VolumeState::Attaching { instance_id }
        | VolumeState::InUse { instance_id, .. }
        | VolumeState::Detaching { instance_id } => Some(instance_id),
        _ => None,
    }
}
