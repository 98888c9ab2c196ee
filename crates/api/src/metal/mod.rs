//! The `metal` API: an AWS Query-style API (SigV4 service name `metal`,
//! `Action=…`, XML answers) for the bare-metal zone. Every action is
//! declared once, in the table below: its name and its input type, whose
//! `parse` reads the parameters and whose `execute` calls the domain
//! (`mallee_cloud::metal`) and renders the answer. One file per group of
//! actions: the inventory ([`inventory`]), profiles ([`profiles`]),
//! systems as their users handle them ([`systems`]) and instances
//! ([`instances`]).
//!
//! Who may do what is the domain's ([`mallee_cloud::metal::access`]):
//! [`execute`] asks it before running an action, so inventory edits are
//! refused to other accounts than administrators before anything else
//! happens, and the domain scopes every account to its own systems.

pub mod error;
pub mod instances;
pub mod inventory;
mod params;
pub mod profiles;
pub mod systems;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod walkthrough;

use std::collections::BTreeMap;

use mallee_cloud::Principal;
use mallee_cloud::metal::Metal;
use mallee_cloud::metal::access;
use mallee_metal::model::{State, System, Wipe};

use crate::xml::XmlWriter;
pub use error::MetalApiError;

/// The XML namespace of the metal API's answers.
pub const NAMESPACE: &str = "http://mallee.dev/doc/metal/2024-06-01/";

crate::actions::declare! {
    /// One parsed metal API request.
    enum MetalAction;
    /// Runs an action whose caller [`execute`] let through.
    fn run(MetalContext, MetalApiError, invalid: MetalApiError::InvalidAction);
    service "metal";
    DescribeDistros => inventory::DescribeDistros,
    DescribeProfiles => profiles::DescribeProfiles,
    DescribeSystems => inventory::DescribeSystems,
    DescribeSystemGroups => inventory::DescribeSystemGroups,
    DescribeSystemUsers => systems::DescribeSystemUsers,
    SetProfile => systems::SetProfile,
    EnableNetboot => systems::EnableNetboot,
    DisableNetboot => systems::DisableNetboot,
    RebootSystem => systems::RebootSystem,
    ReserveSystems => systems::ReserveSystems,
    ReleaseSystems => systems::ReleaseSystems,
    RunInstances => instances::RunInstances,
    DescribeInstances => instances::DescribeInstances,
    TerminateInstances => instances::TerminateInstances,
    AddGroup => inventory::AddGroup,
    RemoveGroup => inventory::RemoveGroup,
    AddDistro => inventory::AddDistro,
    RemoveDistro => inventory::RemoveDistro,
    AddProfile => profiles::AddProfile,
    RenderAnswerFile => profiles::RenderAnswerFile,
    RemoveProfile => profiles::RemoveProfile,
    AddSystem => inventory::AddSystem,
    EditSystem => inventory::EditSystem,
    RemoveSystem => inventory::RemoveSystem,
    ConfirmPoweredOff => inventory::ConfirmPoweredOff,
}

impl MetalAction {
    /// Whether only administrator accounts may run it.
    pub fn admin_only(&self) -> bool {
        access::admin_only(self.name())
    }
}

/// Runs `action` for the context's caller, if the caller may run it at
/// all; returns the response document.
pub async fn execute(ctx: &MetalContext<'_>, action: MetalAction) -> Result<String, MetalApiError> {
    access::authorize(ctx.principal, action.name())?;
    run(ctx, action).await
}

/// What an action runs with.
#[derive(Debug)]
pub struct MetalContext<'a> {
    /// The bare-metal zone.
    pub metal: &'a Metal,
    /// Who is calling.
    pub principal: &'a Principal,
    /// This request's id.
    pub request_id: &'a str,
}

impl MetalContext<'_> {
    /// Writes `<{action}Response xmlns=…><requestId>…</requestId>…`.
    pub fn respond(&self, action: &str, body: impl FnOnce(&mut XmlWriter)) -> String {
        let mut w = XmlWriter::new();
        w.root(&format!("{action}Response"), NAMESPACE, |w| {
            w.text("requestId", self.request_id);
            body(w);
        });
        w.finish()
    }

    /// Writes a response whose only content is `<return>true</return>`.
    pub fn respond_true(&self, action: &str) -> String {
        self.respond(action, |w| w.text("return", true))
    }

    /// Writes a response listing `systems` in the set `set`.
    pub fn respond_systems(&self, action: &str, set: &str, systems: &[System]) -> String {
        let admin = self.principal.account.is_admin;
        self.respond(action, |w| {
            w.items(set, systems, |w, s| write_system(w, s, admin));
        })
    }
}

/// The instance-style state of an owned system.
fn instance_state(state: &State) -> &'static str {
    match state {
        State::Free => "free",
        State::Reserved => "reserved",
        State::Provisioning { .. } => "pending",
        State::Running => "running",
        State::Releasing | State::Wiping { .. } => "shutting-down",
        State::Failed { .. } => "failed",
    }
}

/// One system's fields; its power settings (secrets redacted) only for
/// administrators, who set them.
fn write_system(w: &mut XmlWriter, s: &System, admin: bool) {
    w.text("name", &s.name);
    w.text("mac", &s.mac);
    w.text("ip", s.ip);
    w.text("hostname", &s.hostname);
    w.text("group", &s.group);
    w.text("powerDriver", s.power.driver_name());
    if admin {
        w.text("power", s.power.redacted());
    }
    w.opt_text("disk", s.disk.as_deref());
    w.opt_text("wipe", s.wipe.map(Wipe::as_str));
    w.opt_text("owner", s.owner.as_deref());
    w.opt_text("profile", s.profile.as_deref());
    w.text("netboot", s.netboot);
    w.text("state", s.state.name());
    w.text("instanceState", instance_state(&s.state));
    match &s.state {
        State::Provisioning { step } => w.text("step", step.as_str()),
        State::Failed { reason } => w.text("reason", reason),
        _ => {}
    }
    // 0: the system has had no state change since it was added.
    w.opt_text("stateSince", (s.state_since > 0).then_some(s.state_since));
    w.opt_text("deadline", s.deadline);
    w.opt_text("lastEvent", s.last_event.as_deref());
    write_variables(w, &s.variables);
}

/// Template variables as one JSON object (`<variables>{"role":"db"}</variables>`).
fn write_variables(w: &mut XmlWriter, vars: &BTreeMap<String, String>) {
    w.text(
        "variables",
        serde_json::to_string(vars).unwrap_or_else(|_| "{}".into()),
    );
}
