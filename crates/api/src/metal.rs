//! The `metal` API: an AWS Query-style API (SigV4 service name `metal`,
//! `Action=…`, XML answers) for the bare-metal zone. Parsing produces a
//! typed [`MetalAction`]; [`execute`] runs it against the [`Metal`] zone.
//!
//! Who may do what: inventory edits (groups, distros, profiles, systems)
//! are for administrator accounts. Every account may describe the
//! inventory and run, describe and terminate instances. Owners are the
//! seed's free-form user strings (`-u USER`); an administrator's owner is
//! `USER`, another account's is `ACCOUNT:USER`, and such an account sees
//! and touches only systems whose owner starts with `ACCOUNT:`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use futures_util::StreamExt;
use http::StatusCode;
use mallee_metal::EngineError;
use mallee_metal::engine::{ImageSource, now_millis};
use mallee_metal::inventory::{Inventory, InventoryError, Selection};
use mallee_metal::model::{
    DEFAULT_CHECK_IN_PORT, Install, Mac, Profile, State, System, Wipe, check_digest, check_name,
};
use mallee_metal::power::{self, PowerSpec};
use mallee_metal::store::{from_record, to_record};
use mallee_metal::template;
use mallee_store::StoreError;
use mallee_store::metal::MetalDistro;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::query::{QueryError, QueryParams};
use crate::xml::XmlWriter;
use mallee_cloud::Principal;
use mallee_cloud::metal::Metal;
use mallee_cloud::metal::images::{OBJECT_PREFIX, object_location};

/// The XML namespace of the metal API's answers.
pub const NAMESPACE: &str = "http://mallee.dev/doc/metal/2024-06-01/";

/// Errors of the metal API.
#[derive(Debug, thiserror::Error)]
pub enum MetalApiError {
    /// A parameter is missing or malformed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// No such action.
    #[error("The action {0} is not valid for this web service.")]
    InvalidAction(String),
    /// A value is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The caller may not do this.
    #[error("{0}")]
    Unauthorized(String),
    /// Something named does not exist.
    #[error("{message}")]
    NotFound {
        /// AWS-style code (`InvalidSystem.NotFound`, …).
        code: &'static str,
        /// What was missing.
        message: String,
    },
    /// Fewer free systems than asked for; nothing was reserved.
    #[error("{0}")]
    Capacity(String),
    /// The system is not in a state that allows this.
    #[error("{0}")]
    IncorrectState(String),
    /// The name, MAC, IP or token is taken, or the thing is in use.
    #[error("{0}")]
    Conflict(String),
    /// Provisioning is off on this controller.
    #[error(
        "bare-metal provisioning is not enabled on this controller (start it with --metal-interface and --metal-address)"
    )]
    NotEnabled,
    /// An unexpected failure (logged, not sent).
    #[error("internal error: {0}")]
    Internal(String),
}

impl MetalApiError {
    fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    /// The AWS-style code.
    pub fn code(&self) -> Cow<'static, str> {
        match self {
            Self::Query(QueryError::Missing(_)) => "MissingParameter".into(),
            Self::Query(_) | Self::Invalid(_) => "InvalidParameterValue".into(),
            Self::InvalidAction(_) => "InvalidAction".into(),
            Self::Unauthorized(_) => "UnauthorizedOperation".into(),
            Self::NotFound { code, .. } => (*code).into(),
            Self::Capacity(_) => "InsufficientSystemCapacity".into(),
            Self::IncorrectState(_) => "IncorrectState".into(),
            Self::Conflict(_) => "Conflict".into(),
            Self::NotEnabled => "MetalNotEnabled".into(),
            Self::Internal(_) => "InternalError".into(),
        }
    }
}

impl From<MetalApiError> for ApiError {
    fn from(e: MetalApiError) -> Self {
        let status = match &e {
            MetalApiError::Unauthorized(_) => StatusCode::FORBIDDEN,
            MetalApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            MetalApiError::NotEnabled => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let message = match &e {
            MetalApiError::Internal(_) => "An internal error has occurred.".to_owned(),
            other => other.to_string(),
        };
        ApiError::new(status, e.code(), message)
    }
}

impl From<InventoryError> for MetalApiError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::NotEnoughFree { .. } => Self::Capacity(e.to_string()),
            InventoryError::NotFree { .. } => Self::IncorrectState(e.to_string()),
            InventoryError::NotFound { what, .. } => Self::not_found(
                match what {
                    "system" => "InvalidSystem.NotFound",
                    "profile" => "InvalidProfile.NotFound",
                    "group" => "InvalidGroup.NotFound",
                    _ => "NotFound",
                },
                e.to_string(),
            ),
            InventoryError::Exists { .. } => Self::Conflict(e.to_string()),
            InventoryError::Backend(detail) => Self::Internal(detail),
        }
    }
}

impl From<EngineError> for MetalApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Inventory(i) => i.into(),
            EngineError::Rejected(msg) => Self::IncorrectState(msg),
            EngineError::NotFound(msg) => Self::not_found("NotFound", msg),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<StoreError> for MetalApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::Conflict(what),
            StoreError::NotFound(what) => Self::not_found("NotFound", what),
            other => Self::Internal(other.to_string()),
        }
    }
}

type Result<T, E = MetalApiError> = std::result::Result<T, E>;

/// One system, by the seed's `-n NAME` or `-i IP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// By name.
    Name(String),
    /// By provisioning address.
    Ip(Ipv4Addr),
}

/// Which systems a reservation takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// `count` free systems of the first of `groups` that has that many.
    Groups {
        /// Groups, tried in order.
        groups: Vec<String>,
        /// How many systems.
        count: usize,
    },
    /// These systems (all must be free).
    Systems(Vec<Target>),
}

/// Which owned systems a release or terminate gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every system of this user.
    User(String),
    /// These systems.
    Systems(Vec<Target>),
}

/// Administrative fields of a system an edit changes (`None`: kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemEdit {
    /// New MAC.
    pub mac: Option<Mac>,
    /// New address.
    pub ip: Option<Ipv4Addr>,
    /// New host name.
    pub hostname: Option<String>,
    /// New group.
    pub group: Option<String>,
    /// New power settings.
    pub power: Option<PowerSpec>,
    /// New target disk (empty: the agent picks).
    pub disk: Option<String>,
    /// New answer-file variables (replace the old ones; `{}` clears).
    pub variables: Option<BTreeMap<String, String>>,
    /// New disk wipe policy (`Some(None)`: the group's).
    pub wipe: Option<Option<Wipe>>,
}

/// A parsed metal API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetalAction {
    /// `describe-distros`.
    DescribeDistros,
    /// `describe-profiles`.
    DescribeProfiles,
    /// `describe-systems` (all, or these).
    DescribeSystems(Vec<Target>),
    /// `describe-system-groups [-g GROUP] [-f]`.
    DescribeSystemGroups {
        /// Only this group.
        group: Option<String>,
        /// Only free systems.
        free_only: bool,
    },
    /// `describe-system-users [-u USER]`.
    DescribeSystemUsers(Option<String>),
    /// `set-profile -n|-i -p`.
    SetProfile {
        /// The system.
        target: Target,
        /// The profile.
        profile: String,
    },
    /// `enable-netboot` / `disable-netboot -n|-i`.
    SetNetboot {
        /// The system.
        target: Target,
        /// On or off.
        on: bool,
    },
    /// `reboot-system -n|-i`.
    RebootSystem(Target),
    /// `reserve-systems`.
    ReserveSystems {
        /// Which.
        pick: Pick,
        /// For whom.
        user: String,
    },
    /// `release-systems`.
    ReleaseSystems(Scope),
    /// `run-instances`.
    RunInstances {
        /// Which.
        pick: Pick,
        /// What to install.
        profile: String,
        /// For whom.
        user: String,
    },
    /// `describe-instances [-u USER]`.
    DescribeInstances(Option<String>),
    /// `terminate-instances -u USER | -i IP…`.
    TerminateInstances(Scope),
    /// Admin: add or describe a group.
    AddGroup {
        /// Name.
        name: String,
        /// Free text.
        description: String,
        /// Disk wipe policy of its systems (`None`: a stored one is kept).
        wipe: Option<Wipe>,
    },
    /// Admin: remove an empty group.
    RemoveGroup(String),
    /// Admin: add or replace a distro.
    AddDistro {
        /// Name.
        name: String,
        /// Kernel location.
        kernel: String,
        /// Initrd location.
        initrd: String,
        /// Kernel arguments.
        kernel_args: String,
    },
    /// Admin: remove a distro.
    RemoveDistro(String),
    /// Admin: add or replace an image profile.
    AddProfile {
        /// Name.
        name: String,
        /// Absolute path on the controller, or `object:BUCKET/KEY`.
        location: String,
        /// Its SHA-256, when the caller knows it (else the controller
        /// reads the image and computes it).
        sha256: Option<String>,
        /// Extra deploy agent kernel arguments.
        agent_args: String,
        /// Answer-file variables of the profile (unused by image profiles
        /// but kept with them).
        variables: BTreeMap<String, String>,
        /// The check-in fallback port (`None`: only a check-in POST counts).
        check_in_port: Option<u16>,
    },
    /// Admin: add or replace an installer profile (a distro's installer
    /// with an answer-file template).
    AddInstallerProfile {
        /// Name.
        name: String,
        /// The distro it boots.
        distro: String,
        /// The answer-file template.
        template: String,
        /// Kernel arguments after the distro's (a template).
        kernel_args: String,
        /// The profile's answer-file variables.
        variables: BTreeMap<String, String>,
        /// The check-in fallback port.
        check_in_port: Option<u16>,
    },
    /// Admin: the answer file a system would get with a profile (its own,
    /// by default), rendered now.
    RenderAnswerFile {
        /// The system.
        target: Target,
        /// The profile (default: the system's).
        profile: Option<String>,
    },
    /// Admin: remove a profile.
    RemoveProfile(String),
    /// Admin: add a system.
    AddSystem(Box<System>),
    /// Admin: change a system's administrative fields.
    EditSystem {
        /// The system.
        name: String,
        /// What changes.
        edit: Box<SystemEdit>,
    },
    /// Admin: remove a free system.
    RemoveSystem(String),
    /// Admin: the operator switched a manually powered system off.
    ConfirmPoweredOff(Target),
}

fn name_param(params: &QueryParams, param: &str, what: &'static str) -> Result<String> {
    let value = params.required_non_empty(param)?;
    check_name(what, value).map_err(|e| MetalApiError::Invalid(e.to_string()))?;
    Ok(value.to_owned())
}

fn opt_name(params: &QueryParams, param: &str, what: &'static str) -> Result<Option<String>> {
    match params.get(param) {
        None | Some("") => Ok(None),
        Some(v) => {
            check_name(what, v).map_err(|e| MetalApiError::Invalid(e.to_string()))?;
            Ok(Some(v.to_owned()))
        }
    }
}

fn ip(params: &QueryParams, param: &str, value: &str) -> Result<Ipv4Addr> {
    value.parse().map_err(|_| {
        params
            .invalid(param, value, "Expected an IPv4 address.")
            .into()
    })
}

/// A user string: 1-64 characters of `A-Z a-z 0-9 . _ - @`.
fn check_user(user: &str) -> Result<()> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(MetalApiError::Invalid(format!(
            "bad user {user:?}: use 1-64 characters of A-Z a-z 0-9 . _ - @"
        )))
    }
}

fn user_param(params: &QueryParams) -> Result<String> {
    let user = params.required_non_empty("User")?;
    check_user(user)?;
    Ok(user.to_owned())
}

fn opt_user(params: &QueryParams) -> Result<Option<String>> {
    match params.get("User") {
        None | Some("") => Ok(None),
        Some(u) => {
            check_user(u)?;
            Ok(Some(u.to_owned()))
        }
    }
}

/// `Name` or `Ip` (exactly one).
fn target(params: &QueryParams) -> Result<Target> {
    match (params.get("Name"), params.get("Ip")) {
        (Some(n), None) => {
            check_name("system name", n).map_err(|e| MetalApiError::Invalid(e.to_string()))?;
            Ok(Target::Name(n.to_owned()))
        }
        (None, Some(i)) => Ok(Target::Ip(ip(params, "Ip", i)?)),
        (Some(_), Some(_)) => Err(MetalApiError::Invalid(
            "give either Name or Ip, not both".into(),
        )),
        (None, None) => Err(QueryError::Missing("Name".into()).into()),
    }
}

/// `Name.N` and `Ip.N`.
fn targets(params: &QueryParams) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for n in params.list("Name")? {
        check_name("system name", &n).map_err(|e| MetalApiError::Invalid(e.to_string()))?;
        out.push(Target::Name(n));
    }
    for i in params.list("Ip")? {
        out.push(Target::Ip(ip(params, "Ip", &i)?));
    }
    Ok(out)
}

fn pick(params: &QueryParams) -> Result<Pick> {
    let systems = targets(params)?;
    let groups = params.list("Group")?;
    let count = params.int("Count")?;
    match (systems.is_empty(), groups.is_empty(), count) {
        (false, true, None) => Ok(Pick::Systems(systems)),
        (true, false, Some(c)) => {
            let count = usize::try_from(c)
                .ok()
                .filter(|c| (1..=1000).contains(c))
                .ok_or_else(|| {
                    params.invalid("Count", &c.to_string(), "Expected 1 to 1000 systems.")
                })?;
            for g in &groups {
                check_name("group name", g).map_err(|e| MetalApiError::Invalid(e.to_string()))?;
            }
            Ok(Pick::Groups { groups, count })
        }
        (true, false, None) => Err(QueryError::Missing("Count".into()).into()),
        (true, true, _) => Err(MetalApiError::Invalid(
            "give Count with Group.N, or the systems (Name.N or Ip.N)".into(),
        )),
        _ => Err(MetalApiError::Invalid(
            "give either Count with Group.N or the systems (Name.N or Ip.N), not both".into(),
        )),
    }
}

fn scope(params: &QueryParams) -> Result<Scope> {
    let systems = targets(params)?;
    match (opt_user(params)?, systems.is_empty()) {
        (Some(u), true) => Ok(Scope::User(u)),
        (None, false) => Ok(Scope::Systems(systems)),
        (None, true) => Err(QueryError::Missing("User".into()).into()),
        (Some(_), false) => Err(MetalApiError::Invalid(
            "give either User or the systems (Name.N or Ip.N), not both".into(),
        )),
    }
}

fn power_param(params: &QueryParams, value: &str) -> Result<PowerSpec> {
    serde_json::from_str(value).map_err(|e| {
        params
            .invalid(
                "Power",
                value,
                &format!(
                    "Expected JSON power settings, e.g. {{\"driver\":\"ipmi\",\"host\":…}} ({e})."
                ),
            )
            .into()
    })
}

/// `Variables`: a JSON object of strings; names as templates take them.
/// A disk wipe policy (`none`, `zero`).
fn wipe_param(value: &str) -> Result<Wipe> {
    value.parse::<Wipe>().map_err(MetalApiError::Invalid)
}

fn variables_param(params: &QueryParams) -> Result<Option<BTreeMap<String, String>>> {
    let Some(value) = params.get("Variables") else {
        return Ok(None);
    };
    let invalid =
        |why: String| -> MetalApiError { params.invalid("Variables", value, &why).into() };
    let vars: BTreeMap<String, String> = if value.trim().is_empty() {
        BTreeMap::new()
    } else {
        serde_json::from_str(value).map_err(|e| {
            invalid(format!(
                "Expected a JSON object of strings, e.g. {{\"role\":\"db\"}} ({e})."
            ))
        })?
    };
    for k in vars.keys() {
        let probe = format!("{{{{{k}}}}}");
        if template::check(&probe).is_err() {
            return Err(invalid(format!(
                "Bad variable name {k:?}: use 1-64 characters of A-Z a-z 0-9 _ . -"
            )));
        }
    }
    Ok(Some(vars))
}

/// `CheckInPort`: a TCP port, or `none`/`0` for no fallback (default 22).
fn check_in_port_param(params: &QueryParams) -> Result<Option<u16>> {
    match params.get("CheckInPort") {
        None | Some("") => Ok(Some(DEFAULT_CHECK_IN_PORT)),
        Some("none" | "0") => Ok(None),
        Some(v) => v.parse::<u16>().map(Some).map_err(|_| {
            params
                .invalid("CheckInPort", v, "Expected a TCP port (1-65535) or none.")
                .into()
        }),
    }
}

fn template_param(params: &QueryParams, param: &str, value: &str) -> Result<()> {
    template::check(value).map_err(|e| params.invalid(param, value, &e.to_string()).into())
}

fn mac_param(params: &QueryParams, value: &str) -> Result<Mac> {
    value.parse().map_err(|e: mallee_metal::model::ModelError| {
        params.invalid("Mac", value, &e.to_string()).into()
    })
}

impl MetalAction {
    /// Parses a request's `Action` and parameters.
    pub fn parse(action: &str, p: &QueryParams) -> Result<Self> {
        Ok(match action {
            "DescribeDistros" => Self::DescribeDistros,
            "DescribeProfiles" => Self::DescribeProfiles,
            "DescribeSystems" => Self::DescribeSystems(targets(p)?),
            "DescribeSystemGroups" => Self::DescribeSystemGroups {
                group: opt_name(p, "Group", "group name")?,
                free_only: p.bool("FreeOnly")?.unwrap_or(false),
            },
            "DescribeSystemUsers" => Self::DescribeSystemUsers(opt_user(p)?),
            "SetProfile" => Self::SetProfile {
                target: target(p)?,
                profile: name_param(p, "Profile", "profile name")?,
            },
            "EnableNetboot" | "DisableNetboot" => Self::SetNetboot {
                target: target(p)?,
                on: action == "EnableNetboot",
            },
            "RebootSystem" => Self::RebootSystem(target(p)?),
            "ReserveSystems" => Self::ReserveSystems {
                pick: pick(p)?,
                user: user_param(p)?,
            },
            "ReleaseSystems" => Self::ReleaseSystems(scope(p)?),
            "RunInstances" => Self::RunInstances {
                pick: pick(p)?,
                profile: name_param(p, "Profile", "profile name")?,
                user: user_param(p)?,
            },
            "DescribeInstances" => Self::DescribeInstances(opt_user(p)?),
            "TerminateInstances" => Self::TerminateInstances(scope(p)?),
            "AddGroup" => Self::AddGroup {
                name: name_param(p, "Name", "group name")?,
                description: p.get("Description").unwrap_or_default().to_owned(),
                wipe: match p.get("Wipe") {
                    None | Some("") => None,
                    Some(w) => Some(wipe_param(w)?),
                },
            },
            "RemoveGroup" => Self::RemoveGroup(name_param(p, "Name", "group name")?),
            "AddDistro" => Self::AddDistro {
                name: name_param(p, "Name", "distro name")?,
                kernel: p.required_non_empty("Kernel")?.to_owned(),
                initrd: p.required_non_empty("Initrd")?.to_owned(),
                kernel_args: p.get("KernelArgs").unwrap_or_default().to_owned(),
            },
            "RemoveDistro" => Self::RemoveDistro(name_param(p, "Name", "distro name")?),
            "AddProfile" if p.get("Distro").is_some() => {
                if p.get("Location").is_some() {
                    return Err(MetalApiError::Invalid(
                        "give Location (an image profile) or Distro and Template (an installer profile), not both".into(),
                    ));
                }
                let template = p.required_non_empty("Template")?.to_owned();
                template_param(p, "Template", &template)?;
                let kernel_args = p.get("KernelArgs").unwrap_or_default().to_owned();
                template_param(p, "KernelArgs", &kernel_args)?;
                Self::AddInstallerProfile {
                    name: name_param(p, "Name", "profile name")?,
                    distro: name_param(p, "Distro", "distro name")?,
                    template,
                    kernel_args,
                    variables: variables_param(p)?.unwrap_or_default(),
                    check_in_port: check_in_port_param(p)?,
                }
            }
            "AddProfile" => {
                let location = p.required_non_empty("Location")?.to_owned();
                let is_object = location.starts_with(OBJECT_PREFIX);
                if (is_object && object_location(&location).is_none())
                    || (!is_object && !location.starts_with('/'))
                {
                    return Err(p
                        .invalid(
                            "Location",
                            &location,
                            "Expected an absolute path on the controller or object:BUCKET/KEY.",
                        )
                        .into());
                }
                let sha256 = match p.get("Sha256") {
                    None | Some("") => None,
                    Some(d) => {
                        let d = d.to_ascii_lowercase();
                        check_digest(&d).map_err(|e| MetalApiError::Invalid(e.to_string()))?;
                        Some(d)
                    }
                };
                Self::AddProfile {
                    name: name_param(p, "Name", "profile name")?,
                    location,
                    sha256,
                    agent_args: p.get("AgentArgs").unwrap_or_default().to_owned(),
                    variables: variables_param(p)?.unwrap_or_default(),
                    check_in_port: check_in_port_param(p)?,
                }
            }
            "RenderAnswerFile" => Self::RenderAnswerFile {
                target: target(p)?,
                profile: opt_name(p, "Profile", "profile name")?,
            },
            "RemoveProfile" => Self::RemoveProfile(name_param(p, "Name", "profile name")?),
            "AddSystem" => {
                let name = name_param(p, "Name", "system name")?;
                let mac = mac_param(p, p.required_non_empty("Mac")?)?;
                let address = ip(p, "Ip", p.required_non_empty("Ip")?)?;
                let group = name_param(p, "Group", "group name")?;
                let power = match p.get("Power") {
                    None | Some("") => PowerSpec::Manual,
                    Some(v) => power_param(p, v)?,
                };
                let mut system = System::new(&name, mac, address, &group, power)
                    .map_err(|e| MetalApiError::Invalid(e.to_string()))?;
                if let Some(h) = opt_name(p, "Hostname", "host name")? {
                    system.hostname = h;
                }
                system.disk = p.get("Disk").filter(|d| !d.is_empty()).map(str::to_owned);
                system.variables = variables_param(p)?.unwrap_or_default();
                system.wipe = match p.get("Wipe") {
                    None | Some("" | "group") => None,
                    Some(w) => Some(wipe_param(w)?),
                };
                Self::AddSystem(Box::new(system))
            }
            "EditSystem" => {
                let name = name_param(p, "Name", "system name")?;
                let edit = SystemEdit {
                    mac: p.get("Mac").map(|m| mac_param(p, m)).transpose()?,
                    ip: p.get("Ip").map(|i| ip(p, "Ip", i)).transpose()?,
                    hostname: opt_name(p, "Hostname", "host name")?,
                    group: opt_name(p, "Group", "group name")?,
                    power: p.get("Power").map(|v| power_param(p, v)).transpose()?,
                    disk: p.get("Disk").map(str::to_owned),
                    variables: variables_param(p)?,
                    wipe: match p.get("Wipe") {
                        None => None,
                        Some("" | "group") => Some(None),
                        Some(w) => Some(Some(wipe_param(w)?)),
                    },
                };
                if edit == SystemEdit::default() {
                    return Err(MetalApiError::Invalid(
                        "nothing to change: give Mac, Ip, Hostname, Group, Power, Disk, Variables or Wipe"
                            .into(),
                    ));
                }
                Self::EditSystem {
                    name,
                    edit: Box::new(edit),
                }
            }
            "RemoveSystem" => Self::RemoveSystem(name_param(p, "Name", "system name")?),
            "ConfirmPoweredOff" => Self::ConfirmPoweredOff(target(p)?),
            other => return Err(MetalApiError::InvalidAction(other.to_owned())),
        })
    }

    /// Whether only administrator accounts may run it.
    pub fn admin_only(&self) -> bool {
        matches!(
            self,
            Self::AddGroup { .. }
                | Self::RemoveGroup(_)
                | Self::AddDistro { .. }
                | Self::RemoveDistro(_)
                | Self::AddProfile { .. }
                | Self::AddInstallerProfile { .. }
                | Self::RenderAnswerFile { .. }
                | Self::RemoveProfile(_)
                | Self::AddSystem(_)
                | Self::EditSystem { .. }
                | Self::RemoveSystem(_)
                | Self::ConfirmPoweredOff(_)
        )
    }
}

/// The owner string `user` stands for when `principal` says it.
fn owner_of(principal: &Principal, user: &str) -> String {
    if principal.account.is_admin {
        user.to_owned()
    } else {
        format!("{}:{user}", principal.account.name)
    }
}

/// Whether `principal` may see and touch what `owner` has.
fn may_touch(principal: &Principal, owner: Option<&str>) -> bool {
    principal.account.is_admin
        || owner.is_some_and(|o| {
            o.strip_prefix(principal.account.name.as_str())
                .is_some_and(|rest| rest.starts_with(':'))
        })
}

fn find<'a>(systems: &'a [System], target: &Target) -> Result<&'a System> {
    systems
        .iter()
        .find(|s| match target {
            Target::Name(n) => &s.name == n,
            Target::Ip(i) => &s.ip == i,
        })
        .ok_or_else(|| {
            MetalApiError::not_found(
                "InvalidSystem.NotFound",
                match target {
                    Target::Name(n) => format!("no system named {n}"),
                    Target::Ip(i) => format!("no system with address {i}"),
                },
            )
        })
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

fn write_system(w: &mut XmlWriter, s: &System) {
    w.text("name", &s.name);
    w.text("mac", &s.mac);
    w.text("ip", s.ip);
    w.text("hostname", &s.hostname);
    w.text("group", &s.group);
    w.text("powerDriver", s.power.driver_name());
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
    w.text("stateSince", s.state_since);
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

fn respond(action: &str, request_id: &str, body: impl FnOnce(&mut XmlWriter)) -> String {
    let mut w = XmlWriter::new();
    w.root(&format!("{action}Response"), NAMESPACE, |w| {
        w.text("requestId", request_id);
        body(w);
    });
    w.finish()
}

fn systems_response(action: &str, request_id: &str, set: &str, systems: &[System]) -> String {
    respond(action, request_id, |w| {
        w.items(set, systems, write_system);
    })
}

/// Streams an image and computes its size and SHA-256.
async fn digest(metal: &Metal, location: &str) -> Result<(u64, String)> {
    let (declared, mut stream) = metal.images().open(location).await?;
    let mut hasher = Sha256::new();
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| MetalApiError::Internal(format!("read {location}: {e}")))?;
        read += chunk.len() as u64;
        hasher.update(&chunk);
    }
    if read != declared {
        return Err(MetalApiError::Invalid(format!(
            "the image {location} changed while it was read ({declared} bytes announced, {read} read)"
        )));
    }
    Ok((read, hex::encode(hasher.finalize())))
}

/// Resolves a pick to a selection the inventory reserves, trying groups in
/// order: the first group with enough free systems is taken.
async fn reserve_pick<F, Fut>(
    systems: &[System],
    pick: &Pick,
    mut reserve: F,
) -> Result<Vec<System>>
where
    F: FnMut(Selection) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<System>>>,
{
    match pick {
        Pick::Systems(targets) => {
            let mut names = Vec::new();
            for t in targets {
                names.push(find(systems, t)?.name.clone());
            }
            reserve(Selection::Names(names)).await
        }
        Pick::Groups { groups, count } => {
            let mut last = None;
            for g in groups {
                match reserve(Selection::Group {
                    group: g.clone(),
                    count: *count,
                })
                .await
                {
                    Ok(r) => return Ok(r),
                    Err(e @ MetalApiError::Capacity(_)) => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            Err(last.unwrap_or_else(|| MetalApiError::Invalid("no group given".into())))
        }
    }
}

/// The owned systems a scope names, checked against the caller's rights.
fn scoped(principal: &Principal, systems: &[System], scope: &Scope) -> Result<Vec<String>> {
    match scope {
        Scope::User(user) => {
            let owner = owner_of(principal, user);
            Ok(systems
                .iter()
                .filter(|s| s.owner.as_deref() == Some(owner.as_str()))
                .map(|s| s.name.clone())
                .collect())
        }
        Scope::Systems(targets) => {
            let mut names = Vec::new();
            for t in targets {
                let s = find(systems, t)?;
                if s.owner.is_none() {
                    return Err(MetalApiError::IncorrectState(format!(
                        "system {} is not reserved by anyone",
                        s.name
                    )));
                }
                if !may_touch(principal, s.owner.as_deref()) {
                    return Err(MetalApiError::Unauthorized(format!(
                        "system {} is not yours",
                        s.name
                    )));
                }
                names.push(s.name.clone());
            }
            Ok(names)
        }
    }
}

fn not_busy(s: &System) -> Result<(), EngineError> {
    if s.state.is_busy() {
        Err(EngineError::Rejected(format!(
            "system {} is {}; wait until it is done",
            s.name,
            s.state.name()
        )))
    } else {
        Ok(())
    }
}

/// Changes a system's ownership/provisioning fields: through the engine
/// (under its lock) when provisioning is on, else in the inventory.
async fn edit_state(
    metal: &Metal,
    name: &str,
    edit: impl FnOnce(&mut System) -> Result<(), EngineError> + Send,
) -> Result<System> {
    if let Some(engine) = metal.engine() {
        return Ok(engine.edit(name, edit).await?);
    }
    let mut s = metal
        .inventory()
        .system(name)
        .await?
        .ok_or_else(|| MetalApiError::not_found("InvalidSystem.NotFound", name))?;
    edit(&mut s)?;
    metal.inventory().save_state(&s).await?;
    Ok(s)
}

async fn sync_dhcp(metal: &Metal) -> Result<()> {
    if let Some(engine) = metal.engine() {
        engine.sync_dhcp().await?;
    }
    Ok(())
}

/// Runs `action` for `principal`; returns the response document.
pub async fn execute(
    metal: &Metal,
    principal: &Principal,
    request_id: &str,
    action_name: &str,
    action: MetalAction,
) -> Result<String> {
    if action.admin_only() && !principal.account.is_admin {
        return Err(MetalApiError::Unauthorized(format!(
            "You are not authorized to perform {action_name}: inventory changes are for administrators."
        )));
    }
    let inv = metal.inventory();
    let store = metal.store();
    let rid = request_id;
    match action {
        MetalAction::DescribeDistros => {
            let distros = store.metal_distros().await?;
            Ok(respond(action_name, rid, |w| {
                w.items("distroSet", &distros, |w, d| {
                    w.text("name", &d.name);
                    w.text("kernel", &d.kernel);
                    w.text("initrd", &d.initrd);
                    w.text("kernelArgs", &d.kernel_args);
                });
            }))
        }
        MetalAction::DescribeProfiles => {
            let profiles = inv.profiles().await?;
            Ok(respond(action_name, rid, |w| {
                w.items("profileSet", &profiles, |w, p| {
                    w.text("name", &p.name);
                    w.text("kind", p.install.kind());
                    match &p.install {
                        Install::Image {
                            location,
                            size,
                            sha256,
                        } => {
                            w.text("location", location);
                            w.text("size", size);
                            w.text("sha256", sha256);
                            w.text("agentArgs", &p.agent_args);
                        }
                        Install::Installer {
                            distro,
                            template,
                            kernel_args,
                        } => {
                            w.text("distro", distro);
                            w.text("template", template);
                            w.text("kernelArgs", kernel_args);
                        }
                    }
                    w.opt_text("checkInPort", p.check_in_port);
                    write_variables(w, &p.variables);
                });
            }))
        }
        MetalAction::DescribeSystems(targets) => {
            let all = inv.systems().await?;
            let chosen = if targets.is_empty() {
                all
            } else {
                let mut out = Vec::new();
                for t in &targets {
                    out.push(find(&all, t)?.clone());
                }
                out
            };
            Ok(systems_response(action_name, rid, "systemSet", &chosen))
        }
        MetalAction::DescribeSystemGroups { group, free_only } => {
            let mut groups = store.metal_groups().await?;
            if let Some(g) = &group {
                groups.retain(|x| &x.name == g);
                if groups.is_empty() {
                    return Err(MetalApiError::not_found(
                        "InvalidGroup.NotFound",
                        format!("no group named {g}"),
                    ));
                }
            }
            let systems = inv.systems().await?;
            let is_free = |s: &System| s.state == State::Free && s.owner.is_none();
            let shown: Vec<&System> = systems
                .iter()
                .filter(|s| groups.iter().any(|g| g.name == s.group))
                .filter(|s| !free_only || is_free(s))
                .collect();
            Ok(respond(action_name, rid, |w| {
                w.items("groupSet", &groups, |w, g| {
                    let members = systems.iter().filter(|s| s.group == g.name);
                    w.text("name", &g.name);
                    w.text("description", &g.description);
                    w.text("wipe", g.wipe.as_deref().unwrap_or("none"));
                    w.text("total", members.clone().count());
                    w.text("free", members.filter(|s| is_free(s)).count());
                });
                w.items("systemSet", shown, write_system);
            }))
        }
        MetalAction::DescribeSystemUsers(user) => {
            let owner = user.as_deref().map(|u| owner_of(principal, u));
            let systems: Vec<System> = inv
                .systems()
                .await?
                .into_iter()
                .filter(|s| s.owner.is_some() && may_touch(principal, s.owner.as_deref()))
                .filter(|s| owner.is_none() || s.owner == owner)
                .collect();
            Ok(systems_response(action_name, rid, "systemSet", &systems))
        }
        MetalAction::SetProfile { target, profile } => {
            let all = inv.systems().await?;
            let s = find(&all, &target)?;
            if !may_touch(principal, s.owner.as_deref()) {
                return Err(MetalApiError::Unauthorized(format!(
                    "system {} is not yours",
                    s.name
                )));
            }
            if inv.profile(&profile).await?.is_none() {
                return Err(MetalApiError::not_found(
                    "InvalidProfile.NotFound",
                    format!("no profile named {profile}"),
                ));
            }
            let s = edit_state(metal, &s.name, |s| {
                not_busy(s)?;
                s.profile = Some(profile);
                Ok(())
            })
            .await?;
            Ok(systems_response(action_name, rid, "systemSet", &[s]))
        }
        MetalAction::SetNetboot { target, on } => {
            let all = inv.systems().await?;
            let s = find(&all, &target)?;
            if !may_touch(principal, s.owner.as_deref()) {
                return Err(MetalApiError::Unauthorized(format!(
                    "system {} is not yours",
                    s.name
                )));
            }
            let s = edit_state(metal, &s.name, |s| {
                not_busy(s)?;
                s.netboot = on;
                Ok(())
            })
            .await?;
            Ok(systems_response(action_name, rid, "systemSet", &[s]))
        }
        MetalAction::RebootSystem(target) => {
            let all = inv.systems().await?;
            let s = find(&all, &target)?.clone();
            if !may_touch(principal, s.owner.as_deref()) {
                return Err(MetalApiError::Unauthorized(format!(
                    "system {} is not yours",
                    s.name
                )));
            }
            not_busy(&s)?;
            let engine = metal.engine().ok_or(MetalApiError::NotEnabled)?;
            // With netboot on, an owned system with a profile reboots into
            // the installer: a reinstall through the state machine.
            let reinstall = s.netboot
                && matches!(s.state, State::Reserved | State::Running)
                && s.profile.is_some();
            let s = if let (true, Some(profile)) = (reinstall, s.profile.clone()) {
                engine.provision(&s.name, &profile).await?
            } else {
                let driver = power::driver(&s.name, &s.mac, &s.power);
                driver
                    .power_on_netboot()
                    .await
                    .map_err(|e| MetalApiError::IncorrectState(format!("power: {e}")))?;
                s
            };
            Ok(systems_response(action_name, rid, "systemSet", &[s]))
        }
        MetalAction::ReserveSystems { pick, user } => {
            let owner = owner_of(principal, &user);
            let all = inv.systems().await?;
            let reserved = reserve_pick(&all, &pick, |sel| {
                let owner = owner.clone();
                async move {
                    match metal.engine() {
                        Some(e) => Ok(e.reserve(&sel, &owner).await?),
                        None => Ok(inv.reserve(&sel, &owner, now_millis()).await?),
                    }
                }
            })
            .await?;
            Ok(systems_response(action_name, rid, "systemSet", &reserved))
        }
        MetalAction::RunInstances {
            pick,
            profile,
            user,
        } => {
            let engine = metal.engine().ok_or(MetalApiError::NotEnabled)?;
            if inv.profile(&profile).await?.is_none() {
                return Err(MetalApiError::not_found(
                    "InvalidProfile.NotFound",
                    format!("no profile named {profile}"),
                ));
            }
            let owner = owner_of(principal, &user);
            let all = inv.systems().await?;
            let started = reserve_pick(&all, &pick, |sel| {
                let (owner, profile) = (owner.clone(), profile.clone());
                async move { Ok(engine.run_instances(&sel, &profile, &owner).await?) }
            })
            .await?;
            Ok(systems_response(action_name, rid, "instancesSet", &started))
        }
        MetalAction::DescribeInstances(user) => {
            let owner = user.as_deref().map(|u| owner_of(principal, u));
            let systems: Vec<System> = inv
                .systems()
                .await?
                .into_iter()
                .filter(|s| s.owner.is_some() && may_touch(principal, s.owner.as_deref()))
                .filter(|s| owner.is_none() || s.owner == owner)
                .collect();
            Ok(systems_response(action_name, rid, "instancesSet", &systems))
        }
        MetalAction::ReleaseSystems(scope) | MetalAction::TerminateInstances(scope) => {
            let engine = metal.engine().ok_or(MetalApiError::NotEnabled)?;
            let all = inv.systems().await?;
            let mut out = Vec::new();
            for name in scoped(principal, &all, &scope)? {
                out.push(engine.release(&name).await?);
            }
            let set = if action_name == "TerminateInstances" {
                "instancesSet"
            } else {
                "systemSet"
            };
            Ok(systems_response(action_name, rid, set, &out))
        }
        MetalAction::AddGroup {
            name,
            description,
            wipe,
        } => {
            inv.put_group_with_wipe(&name, &description, wipe).await?;
            Ok(respond(action_name, rid, |w| w.text("return", true)))
        }
        MetalAction::RemoveGroup(name) => {
            if !store.delete_metal_group(&name).await? {
                return Err(MetalApiError::not_found(
                    "InvalidGroup.NotFound",
                    format!("no group named {name}"),
                ));
            }
            Ok(respond(action_name, rid, |w| w.text("return", true)))
        }
        MetalAction::AddDistro {
            name,
            kernel,
            initrd,
            kernel_args,
        } => {
            store
                .put_metal_distro(&MetalDistro {
                    name,
                    kernel,
                    initrd,
                    kernel_args,
                    created_at: now_millis(),
                })
                .await?;
            Ok(respond(action_name, rid, |w| w.text("return", true)))
        }
        MetalAction::RemoveDistro(name) => {
            if !store.delete_metal_distro(&name).await? {
                return Err(MetalApiError::not_found(
                    "InvalidDistro.NotFound",
                    format!("no distro named {name}"),
                ));
            }
            Ok(respond(action_name, rid, |w| w.text("return", true)))
        }
        MetalAction::AddProfile {
            name,
            location,
            sha256,
            agent_args,
            variables,
            check_in_port,
        } => {
            let (size, sha256) = match sha256 {
                Some(d) => {
                    let (size, _) = metal.images().open(&location).await?;
                    (size, d)
                }
                None => digest(metal, &location).await?,
            };
            let mut profile = Profile::image(&name, &location, size, &sha256);
            profile.agent_args = agent_args;
            profile.variables = variables;
            profile.check_in_port = check_in_port;
            inv.put_profile(&profile).await?;
            Ok(respond(action_name, rid, |w| {
                w.text("name", &profile.name);
                w.text("kind", "image");
                w.text("size", size);
                w.text("sha256", &sha256);
            }))
        }
        MetalAction::AddInstallerProfile {
            name,
            distro,
            template,
            kernel_args,
            variables,
            check_in_port,
        } => {
            if !store
                .metal_distros()
                .await?
                .iter()
                .any(|d| d.name == distro)
            {
                return Err(MetalApiError::not_found(
                    "InvalidDistro.NotFound",
                    format!("no distro named {distro}"),
                ));
            }
            let mut profile = Profile::image(&name, "", 0, "");
            profile.install = Install::Installer {
                distro: distro.clone(),
                template,
                kernel_args,
            };
            profile.variables = variables;
            profile.check_in_port = check_in_port;
            inv.put_profile(&profile).await?;
            Ok(respond(action_name, rid, |w| {
                w.text("name", &profile.name);
                w.text("kind", "installer");
                w.text("distro", &distro);
            }))
        }
        MetalAction::RenderAnswerFile { target, profile } => {
            let engine = metal.engine().ok_or(MetalApiError::NotEnabled)?;
            let all = inv.systems().await?;
            let s = find(&all, &target)?;
            let profile = profile.or_else(|| s.profile.clone()).ok_or_else(|| {
                MetalApiError::Invalid(format!(
                    "system {} has no profile: name one with Profile",
                    s.name
                ))
            })?;
            if inv.profile(&profile).await?.is_none() {
                return Err(MetalApiError::not_found(
                    "InvalidProfile.NotFound",
                    format!("no profile named {profile}"),
                ));
            }
            let text = engine.preview_answer_file(&s.name, &profile).await?;
            Ok(respond(action_name, rid, |w| {
                w.text("name", &s.name);
                w.text("profile", &profile);
                w.text("answerFile", &text);
            }))
        }
        MetalAction::RemoveProfile(name) => {
            let in_use = inv
                .systems()
                .await?
                .into_iter()
                .find(|s| s.profile.as_deref() == Some(&name) && s.state.is_busy());
            if let Some(s) = in_use {
                return Err(MetalApiError::Conflict(format!(
                    "profile {name} is being installed on {}",
                    s.name
                )));
            }
            if !store.delete_metal_profile(&name).await? {
                return Err(MetalApiError::not_found(
                    "InvalidProfile.NotFound",
                    format!("no profile named {name}"),
                ));
            }
            Ok(respond(action_name, rid, |w| w.text("return", true)))
        }
        MetalAction::AddSystem(system) => {
            inv.add_system(&system).await?;
            sync_dhcp(metal).await?;
            Ok(systems_response(
                action_name,
                rid,
                "systemSet",
                std::slice::from_ref(&system),
            ))
        }
        MetalAction::EditSystem { name, edit } => {
            let record = store
                .metal_system(&name)
                .await?
                .ok_or_else(|| MetalApiError::not_found("InvalidSystem.NotFound", &name))?;
            let mut s = from_record(&record)?;
            not_busy(&s)?;
            let e = *edit;
            if let Some(m) = e.mac {
                s.mac = m;
            }
            if let Some(i) = e.ip {
                s.ip = i;
            }
            if let Some(h) = e.hostname {
                s.hostname = h;
            }
            if let Some(g) = e.group {
                s.group = g;
            }
            if let Some(p) = e.power {
                s.power = p;
            }
            if let Some(d) = e.disk {
                s.disk = (!d.is_empty()).then_some(d);
            }
            if let Some(v) = e.variables {
                s.variables = v;
            }
            if let Some(w) = e.wipe {
                s.wipe = w;
            }
            let mut updated = to_record(&s, now_millis())?;
            updated.created_at = record.created_at;
            if !store.update_metal_system_admin(&updated).await? {
                return Err(MetalApiError::not_found("InvalidSystem.NotFound", &name));
            }
            sync_dhcp(metal).await?;
            Ok(systems_response(action_name, rid, "systemSet", &[s]))
        }
        MetalAction::RemoveSystem(name) => {
            if !store.delete_metal_system(&name).await? {
                return Err(MetalApiError::not_found(
                    "InvalidSystem.NotFound",
                    format!("no system named {name}"),
                ));
            }
            sync_dhcp(metal).await?;
            Ok(respond(action_name, rid, |w| w.text("return", true)))
        }
        MetalAction::ConfirmPoweredOff(target) => {
            let engine = metal.engine().ok_or(MetalApiError::NotEnabled)?;
            let all = inv.systems().await?;
            let name = find(&all, &target)?.name.clone();
            let s = engine.confirm_powered_off(&name).await?;
            Ok(systems_response(action_name, rid, "systemSet", &[s]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .expect("params")
    }

    fn principal(admin: bool) -> Principal {
        Principal {
            account: mallee_store::Account {
                account_id: "000000000001".into(),
                name: "qa".into(),
                is_admin: admin,
                created_at: 0,
            },
            user_name: "admin".into(),
            access_key_id: "AKIA".into(),
        }
    }

    #[test]
    fn parses_run_instances_by_group_and_by_ip() {
        let a = MetalAction::parse(
            "RunInstances",
            &params(&[
                ("Count", "2"),
                ("Group.1", "test01"),
                ("Profile", "qa-centos6u3-x86_64-striped-drives"),
                ("User", "kyo_machines_for_demo"),
            ]),
        )
        .expect("parse");
        assert_eq!(
            a,
            MetalAction::RunInstances {
                pick: Pick::Groups {
                    groups: vec!["test01".into()],
                    count: 2
                },
                profile: "qa-centos6u3-x86_64-striped-drives".into(),
                user: "kyo_machines_for_demo".into(),
            }
        );
        let a = MetalAction::parse(
            "RunInstances",
            &params(&[
                ("Ip.1", "10.0.0.5"),
                ("Ip.2", "10.0.0.6"),
                ("Profile", "p"),
                ("User", "u"),
            ]),
        )
        .expect("parse");
        assert!(
            matches!(a, MetalAction::RunInstances { pick: Pick::Systems(t), .. } if t.len() == 2)
        );
    }

    #[test]
    fn refuses_ambiguous_or_incomplete_requests() {
        let both = MetalAction::parse(
            "RunInstances",
            &params(&[
                ("Count", "1"),
                ("Group.1", "g"),
                ("Ip.1", "10.0.0.5"),
                ("Profile", "p"),
                ("User", "u"),
            ]),
        );
        assert!(matches!(both, Err(MetalApiError::Invalid(_))), "{both:?}");
        let no_count = MetalAction::parse(
            "RunInstances",
            &params(&[("Group.1", "g"), ("Profile", "p"), ("User", "u")]),
        );
        assert!(
            matches!(no_count, Err(MetalApiError::Query(QueryError::Missing(ref n))) if n == "Count")
        );
        let zero = MetalAction::parse(
            "ReserveSystems",
            &params(&[("Count", "0"), ("Group.1", "g"), ("User", "u")]),
        );
        assert!(matches!(zero, Err(MetalApiError::Query(_))), "{zero:?}");
        let bad_user = MetalAction::parse("TerminateInstances", &params(&[("User", "a b")]));
        assert!(matches!(bad_user, Err(MetalApiError::Invalid(_))));
        let target = MetalAction::parse("RebootSystem", &params(&[]));
        assert!(matches!(
            target,
            Err(MetalApiError::Query(QueryError::Missing(_)))
        ));
        assert!(matches!(
            MetalAction::parse("Frobnicate", &params(&[])),
            Err(MetalApiError::InvalidAction(_))
        ));
        let rel = MetalAction::parse(
            "AddProfile",
            &params(&[("Name", "p"), ("Location", "disk.raw")]),
        );
        assert!(matches!(
            rel,
            Err(MetalApiError::Query(QueryError::Invalid { .. }))
        ));
    }

    #[test]
    fn parses_systems_with_power_settings() {
        let a = MetalAction::parse(
            "AddSystem",
            &params(&[
                ("Name", "m1"),
                ("Mac", "52-54-00-AA-00-01"),
                ("Ip", "10.254.0.11"),
                ("Group", "test01"),
                (
                    "Power",
                    r#"{"driver":"ipmi","host":"10.1.0.5","user":"root","password":"pw"}"#,
                ),
            ]),
        )
        .expect("parse");
        let MetalAction::AddSystem(s) = a else {
            panic!("{a:?}")
        };
        assert_eq!(s.mac.as_str(), "52:54:00:aa:00:01");
        assert_eq!(s.power.driver_name(), "ipmi");
        assert_eq!(s.state, State::Free);
        let bad = MetalAction::parse(
            "AddSystem",
            &params(&[
                ("Name", "m1"),
                ("Mac", "52:54:00:aa:00:01"),
                ("Ip", "10.254.0.11"),
                ("Group", "test01"),
                ("Power", r#"{"driver":"telepathy"}"#),
            ]),
        );
        assert!(matches!(
            bad,
            Err(MetalApiError::Query(QueryError::Invalid { .. }))
        ));
        assert!(
            MetalAction::parse("EditSystem", &params(&[("Name", "m1")])).is_err(),
            "an edit that changes nothing is refused"
        );
    }

    #[test]
    fn parses_installer_profiles_and_variables() {
        let a = MetalAction::parse(
            "AddProfile",
            &params(&[
                ("Name", "d12"),
                ("Distro", "debian12"),
                (
                    "Template",
                    "hostname={{ hostname }}\nrole={{ role | web }}\n",
                ),
                ("KernelArgs", "auto=true url={{ answer_url }}"),
                ("Variables", r#"{"role":"db","tz":"UTC"}"#),
                ("CheckInPort", "none"),
            ]),
        )
        .expect("installer profile");
        let MetalAction::AddInstallerProfile {
            name,
            distro,
            variables,
            check_in_port,
            ..
        } = &a
        else {
            panic!("{a:?}")
        };
        assert_eq!((name.as_str(), distro.as_str()), ("d12", "debian12"));
        assert_eq!(variables.get("role").map(String::as_str), Some("db"));
        assert_eq!(*check_in_port, None);
        assert!(a.admin_only());

        // Image profiles keep the SSH fallback unless told otherwise.
        let a = MetalAction::parse(
            "AddProfile",
            &params(&[("Name", "img"), ("Location", "/srv/i.raw")]),
        )
        .expect("image profile");
        assert!(matches!(
            a,
            MetalAction::AddProfile {
                check_in_port: Some(22),
                ..
            }
        ));
        let a = MetalAction::parse(
            "AddProfile",
            &params(&[
                ("Name", "img"),
                ("Location", "/srv/i.raw"),
                ("CheckInPort", "2222"),
            ]),
        )
        .expect("image profile");
        assert!(matches!(
            a,
            MetalAction::AddProfile {
                check_in_port: Some(2222),
                ..
            }
        ));

        for bad in [
            // A template that does not parse.
            vec![("Name", "x"), ("Distro", "d"), ("Template", "a={{ b")],
            vec![
                ("Name", "x"),
                ("Distro", "d"),
                ("Template", "ok"),
                ("KernelArgs", "{{ bad name }}"),
            ],
            // No template.
            vec![("Name", "x"), ("Distro", "d")],
            // Both kinds at once.
            vec![
                ("Name", "x"),
                ("Distro", "d"),
                ("Template", "t"),
                ("Location", "/srv/i.raw"),
            ],
            vec![("Name", "x"), ("Location", "/i"), ("CheckInPort", "http")],
            vec![("Name", "x"), ("Location", "/i"), ("Variables", "[1]")],
            vec![
                ("Name", "x"),
                ("Location", "/i"),
                ("Variables", r#"{"bad name":"v"}"#),
            ],
        ] {
            assert!(
                MetalAction::parse("AddProfile", &params(&bad)).is_err(),
                "{bad:?}"
            );
        }

        let a = MetalAction::parse(
            "AddSystem",
            &params(&[
                ("Name", "m1"),
                ("Mac", "52:54:00:00:00:01"),
                ("Ip", "10.0.0.1"),
                ("Group", "g"),
                ("Variables", r#"{"slot":"u07"}"#),
            ]),
        )
        .expect("system");
        let MetalAction::AddSystem(s) = a else {
            panic!()
        };
        assert_eq!(s.variables.get("slot").map(String::as_str), Some("u07"));
        let a = MetalAction::parse(
            "EditSystem",
            &params(&[("Name", "m1"), ("Variables", "{}")]),
        )
        .expect("clear variables");
        let MetalAction::EditSystem { edit, .. } = a else {
            panic!()
        };
        assert_eq!(edit.variables, Some(BTreeMap::new()));
        let a = MetalAction::parse(
            "RenderAnswerFile",
            &params(&[("Name", "m1"), ("Profile", "d12")]),
        )
        .expect("render");
        assert!(a.admin_only());
    }

    #[test]
    fn parses_wipe_policies() {
        let a = MetalAction::parse("AddGroup", &params(&[("Name", "test01"), ("Wipe", "zero")]))
            .expect("group");
        assert_eq!(
            a,
            MetalAction::AddGroup {
                name: "test01".into(),
                description: String::new(),
                wipe: Some(Wipe::Zero),
            }
        );
        assert!(a.admin_only());
        assert!(
            MetalAction::parse("AddGroup", &params(&[("Name", "g"), ("Wipe", "shred")])).is_err()
        );
        let edit = |w: &str| {
            let a = MetalAction::parse("EditSystem", &params(&[("Name", "m1"), ("Wipe", w)]))
                .expect("edit");
            let MetalAction::EditSystem { edit, .. } = a else {
                panic!("{a:?}")
            };
            edit.wipe
        };
        assert_eq!(edit("zero"), Some(Some(Wipe::Zero)));
        assert_eq!(edit("none"), Some(Some(Wipe::None)));
        assert_eq!(edit("group"), Some(None));
        let a = MetalAction::parse(
            "AddSystem",
            &params(&[
                ("Name", "m1"),
                ("Mac", "52:54:00:00:00:01"),
                ("Ip", "10.254.0.11"),
                ("Group", "test01"),
                ("Wipe", "zero"),
            ]),
        )
        .expect("add");
        let MetalAction::AddSystem(s) = a else {
            panic!("{a:?}")
        };
        assert_eq!(s.wipe, Some(Wipe::Zero));
    }

    #[test]
    fn admin_only_actions_and_owner_scoping() {
        assert!(
            MetalAction::parse("RemoveSystem", &params(&[("Name", "m1")]))
                .expect("parse")
                .admin_only()
        );
        assert!(
            !MetalAction::parse("DescribeInstances", &params(&[]))
                .expect("parse")
                .admin_only()
        );
        assert_eq!(owner_of(&principal(true), "demo"), "demo");
        assert_eq!(owner_of(&principal(false), "demo"), "qa:demo");
        assert!(may_touch(&principal(true), Some("anyone")));
        assert!(may_touch(&principal(false), Some("qa:demo")));
        assert!(!may_touch(&principal(false), Some("qa2:demo")));
        assert!(!may_touch(&principal(false), Some("qademo")));
        assert!(!may_touch(&principal(false), None));
    }

    #[test]
    fn error_codes_and_statuses() {
        let e: ApiError = MetalApiError::from(InventoryError::NotEnoughFree {
            group: "test01".into(),
            wanted: 3,
            free: 2,
        })
        .into();
        assert_eq!(e.code, "InsufficientSystemCapacity");
        assert!(e.message.contains("nothing reserved"), "{}", e.message);
        let e: ApiError = MetalApiError::Unauthorized("no".into()).into();
        assert_eq!(e.status, StatusCode::FORBIDDEN);
        let e: ApiError = MetalApiError::Internal("disk on fire".into()).into();
        assert!(!e.message.contains("disk on fire"));
    }
}
