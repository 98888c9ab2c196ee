//! `mallee metal import FILE`: an inventory file as the commands it stands for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::request::{load_files, request};
use super::{MetalCmdError, MetalCommand, SystemArgs};
use crate::client::Client;

#[derive(Debug, Default, serde::Deserialize)]
struct ImportFile {
    #[serde(default)]
    groups: Vec<ImportGroup>,
    #[serde(default)]
    distros: Vec<ImportDistro>,
    #[serde(default)]
    profiles: Vec<ImportProfile>,
    #[serde(default)]
    systems: Vec<ImportSystem>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportGroup {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    wipe: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportDistro {
    name: String,
    kernel: String,
    initrd: String,
    #[serde(default)]
    kernel_args: String,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportProfile {
    name: String,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    agent_args: String,
    #[serde(default)]
    distro: Option<String>,
    /// The answer-file template, inline.
    #[serde(default)]
    template: Option<String>,
    /// The answer-file template, from a file (relative to the import file).
    #[serde(default)]
    template_file: Option<PathBuf>,
    #[serde(default)]
    kernel_args: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// A port, or null for no check-in fallback (absent: 22).
    #[serde(default, deserialize_with = "some_port")]
    check_in_port: Option<Option<u16>>,
}

/// `"check_in_port": null` → `Some(None)`; absent → `None` (the default).
fn some_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u16>>, D::Error> {
    use serde::Deserialize;
    Option::<u16>::deserialize(d).map(Some)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportSystem {
    name: String,
    mac: String,
    ip: String,
    group: String,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    disk: Option<String>,
    #[serde(default)]
    wipe: Option<String>,
    #[serde(default)]
    power: Option<serde_json::Value>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// The commands an import file stands for, in dependency order.
pub(super) fn import_commands(file: &Path) -> Result<Vec<MetalCommand>, MetalCmdError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| MetalCmdError::Local(format!("{}: {e}", file.display())))?;
    let f: ImportFile = serde_json::from_str(&text)
        .map_err(|e| MetalCmdError::Local(format!("{}: {e}", file.display())))?;
    let mut out = Vec::new();
    for g in f.groups {
        out.push(MetalCommand::AddGroup {
            name: g.name,
            description: g.description,
            wipe: g.wipe,
        });
    }
    for d in f.distros {
        out.push(MetalCommand::AddDistro {
            name: d.name,
            kernel: d.kernel,
            initrd: d.initrd,
            kernel_args: d.kernel_args,
        });
    }
    let kv = |vars: BTreeMap<String, String>| -> Vec<String> {
        vars.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
    };
    for p in f.profiles {
        let template_text = match (p.template, &p.template_file) {
            (Some(t), None) => Some(t),
            (None, Some(path)) => {
                let path = file.parent().unwrap_or(Path::new(".")).join(path);
                Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| MetalCmdError::Local(format!("{}: {e}", path.display())))?,
                )
            }
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(MetalCmdError::Local(format!(
                    "{}: profile {}: give template or template_file, not both",
                    file.display(),
                    p.name
                )));
            }
        };
        if p.location.is_some() == p.distro.is_some()
            || p.distro.is_some() != template_text.is_some()
        {
            return Err(MetalCmdError::Local(format!(
                "{}: profile {}: give location (an image), or distro and template (an installer)",
                file.display(),
                p.name
            )));
        }
        out.push(MetalCommand::AddProfile {
            name: p.name,
            location: p.location,
            sha256: p.sha256,
            agent_args: p.agent_args,
            distro: p.distro,
            template: None,
            kernel_args: p.kernel_args,
            var: kv(p.variables),
            check_in_port: p
                .check_in_port
                .map(|port| port.map_or_else(|| "none".to_owned(), |n| n.to_string())),
            template_text,
        });
    }
    for s in f.systems {
        out.push(MetalCommand::AddSystem(SystemArgs {
            name: s.name,
            mac: s.mac,
            ip: s.ip,
            group: s.group,
            hostname: s.hostname,
            disk: s.disk,
            power: s.power.map(|v| v.to_string()),
            var: kv(s.variables),
            wipe: s.wipe,
        }));
    }
    Ok(out)
}

/// Imports `file` into the cloud at `endpoint` as its administrator
/// (credentials `credentials`), for `mallee up --metal-import`: groups and
/// profiles are added or described anew, systems are added unless one of
/// that name is already in the inventory (it is left as it is, with
/// whatever it is doing), so the same command starts the cloud again.
/// Errors are logged: the cloud serves on without the missing entries.
pub async fn import_at_start(endpoint: String, credentials: PathBuf, file: PathBuf) {
    match import_missing(&endpoint, &credentials, &file).await {
        Ok((added, kept)) => tracing::info!(
            file = %file.display(),
            commands = added,
            systems_already_there = kept,
            "bare-metal inventory imported"
        ),
        Err(e) => tracing::error!(
            file = %file.display(),
            error = %e,
            "bare-metal inventory import failed"
        ),
    }
}

/// The commands of `file` that were run, and the systems skipped.
async fn import_missing(
    endpoint: &str,
    credentials: &Path,
    file: &Path,
) -> Result<(usize, usize), MetalCmdError> {
    let dir = credentials.parent().unwrap_or(Path::new("."));
    let client = Client::connect(Some(endpoint), Some(credentials), dir)?;
    let known = client
        .query("metal", "DescribeSystems", &[] as &[(String, String)])
        .await?;
    let known: Vec<String> = known
        .items("systemSet")
        .into_iter()
        .filter_map(|mut s| s.remove("name"))
        .collect();
    let (mut ran, mut kept) = (0, 0);
    for cmd in import_commands(file)? {
        if let MetalCommand::AddSystem(s) = &cmd
            && known.contains(&s.name)
        {
            kept += 1;
            continue;
        }
        let cmd = load_files(&cmd)?;
        let (action, params, _) = request(&cmd);
        client.query("metal", action, &params).await?;
        ran += 1;
    }
    Ok((ran, kept))
}
