//! The metal API's parameters shared by several actions: names, users,
//! systems (`Name`/`Ip`, `Name.N`/`Ip.N`), picks and scopes, and the JSON
//! and template values of the inventory (power settings, variables,
//! check-in port, wipe policy, MAC).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use mallee_cloud::metal::access::check_user;
use mallee_cloud::metal::systems::{Pick, Scope, Target};
use mallee_metal::model::{DEFAULT_CHECK_IN_PORT, Mac, Wipe, check_name};
use mallee_metal::power::PowerSpec;
use mallee_metal::power_settings;
use mallee_metal::template;

use super::MetalApiError;
use crate::query::{QueryError, QueryParams};

type Result<T, E = MetalApiError> = std::result::Result<T, E>;

/// Checks a name of the inventory (`what`: "system name", …).
pub(super) fn check(what: &'static str, value: &str) -> Result<()> {
    check_name(what, value).map_err(|e| MetalApiError::Invalid(e.to_string()))
}

/// A required name.
pub(super) fn name_param(params: &QueryParams, param: &str, what: &'static str) -> Result<String> {
    let value = params.required_non_empty(param)?;
    check(what, value)?;
    Ok(value.to_owned())
}

/// An optional name (empty: none).
pub(super) fn opt_name(
    params: &QueryParams,
    param: &str,
    what: &'static str,
) -> Result<Option<String>> {
    match params.get(param) {
        None | Some("") => Ok(None),
        Some(v) => {
            check(what, v)?;
            Ok(Some(v.to_owned()))
        }
    }
}

/// An IPv4 address.
pub(super) fn ip(params: &QueryParams, param: &str, value: &str) -> Result<Ipv4Addr> {
    value.parse().map_err(|_| {
        params
            .invalid(param, value, "Expected an IPv4 address.")
            .into()
    })
}

/// The required `User`.
pub(super) fn user_param(params: &QueryParams) -> Result<String> {
    let user = params.required_non_empty("User")?;
    check_user(user)?;
    Ok(user.to_owned())
}

/// An optional `User` (empty: none).
pub(super) fn opt_user(params: &QueryParams) -> Result<Option<String>> {
    match params.get("User") {
        None | Some("") => Ok(None),
        Some(u) => {
            check_user(u)?;
            Ok(Some(u.to_owned()))
        }
    }
}

/// `Name` or `Ip` (exactly one).
pub(super) fn target(params: &QueryParams) -> Result<Target> {
    match (params.get("Name"), params.get("Ip")) {
        (Some(n), None) => {
            check("system name", n)?;
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
pub(super) fn targets(params: &QueryParams) -> Result<Vec<Target>> {
    let mut out = Vec::new();
    for n in params.list("Name")? {
        check("system name", &n)?;
        out.push(Target::Name(n));
    }
    for i in params.list("Ip")? {
        out.push(Target::Ip(ip(params, "Ip", &i)?));
    }
    Ok(out)
}

/// `Count` with `Group.N`, or the systems.
pub(super) fn pick(params: &QueryParams) -> Result<Pick> {
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
                check("group name", g)?;
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

/// `User`, or the systems.
pub(super) fn scope(params: &QueryParams) -> Result<Scope> {
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

/// `Power`: JSON power settings; every missing or unknown field is named
/// at once, with the driver's own example. The value is echoed with its
/// secrets redacted.
pub(super) fn power_param(params: &QueryParams, value: &str) -> Result<PowerSpec> {
    power_settings::parse(value).map_err(|e| {
        let shown = serde_json::from_str(value)
            .map(|v| power_settings::redact(v).to_string())
            .unwrap_or_else(|_| value.to_owned());
        params.invalid("Power", &shown, &format!("{e}.")).into()
    })
}

/// A disk wipe policy (`none`, `zero`).
pub(super) fn wipe_param(value: &str) -> Result<Wipe> {
    value.parse::<Wipe>().map_err(MetalApiError::Invalid)
}

/// `Variables`: a JSON object of strings; names as templates take them.
pub(super) fn variables_param(params: &QueryParams) -> Result<Option<BTreeMap<String, String>>> {
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
pub(super) fn check_in_port_param(params: &QueryParams) -> Result<Option<u16>> {
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

/// A template (the answer file, kernel arguments) that must parse.
pub(super) fn template_param(params: &QueryParams, param: &str, value: &str) -> Result<()> {
    template::check(value).map_err(|e| params.invalid(param, value, &e.to_string()).into())
}

/// `Mac`.
pub(super) fn mac_param(params: &QueryParams, value: &str) -> Result<Mac> {
    value.parse().map_err(|e: mallee_metal::model::ModelError| {
        params.invalid("Mac", value, &e.to_string()).into()
    })
}
