//! An answer as tab-separated lines (like euca2ools) or JSON.

use super::request::Shape;
use crate::client::xml::{Element, Item};

fn get<'a>(item: &'a Item, key: &str) -> &'a str {
    item.get(key).map_or("", String::as_str)
}

fn line(fields: &[&str]) -> String {
    fields.join("\t")
}

/// The tab-separated lines of an answer.
pub(super) fn render(shape: Shape, answer: &Element, params: &[(String, String)]) -> Vec<String> {
    let text = |name: &str| answer.text_of(name).unwrap_or_default().to_owned();
    match shape {
        Shape::Distros => answer
            .items("distroSet")
            .iter()
            .map(|d| {
                line(&[
                    "DISTRO",
                    get(d, "name"),
                    get(d, "kernel"),
                    get(d, "initrd"),
                    get(d, "kernelArgs"),
                ])
            })
            .collect(),
        Shape::Profiles => answer
            .items("profileSet")
            .iter()
            .map(profile_line)
            .collect(),
        Shape::Profile => vec![profile_line(&answer.answer_fields())],
        // The answer file as it is (no trailing newline added by the caller
        // for a file that ends with one).
        Shape::AnswerFile => vec![text("answerFile").trim_end_matches('\n').to_owned()],
        Shape::Systems => answer.items("systemSet").iter().map(system_line).collect(),
        Shape::Groups => {
            let mut out: Vec<String> = answer
                .items("groupSet")
                .iter()
                .map(|g| {
                    line(&[
                        "GROUP",
                        get(g, "name"),
                        get(g, "total"),
                        get(g, "free"),
                        get(g, "description"),
                        get(g, "wipe"),
                    ])
                })
                .collect();
            out.extend(answer.items("systemSet").iter().map(|s| {
                line(&[
                    "SYSTEM",
                    get(s, "group"),
                    get(s, "name"),
                    get(s, "ip"),
                    get(s, "state"),
                    get(s, "owner"),
                ])
            }));
            out
        }
        Shape::Users => answer
            .items("systemSet")
            .iter()
            .map(|s| {
                line(&[
                    "USER",
                    get(s, "owner"),
                    get(s, "name"),
                    get(s, "ip"),
                    get(s, "state"),
                    get(s, "profile"),
                ])
            })
            .collect(),
        Shape::Instances => answer
            .items("instancesSet")
            .iter()
            .map(|s| {
                let detail = if s.contains_key("reason") {
                    get(s, "reason")
                } else {
                    get(s, "step")
                };
                line(&[
                    "INSTANCE",
                    get(s, "name"),
                    get(s, "profile"),
                    get(s, "ip"),
                    get(s, "instanceState"),
                    get(s, "owner"),
                    detail,
                ])
            })
            .collect(),
        Shape::Return(kind) => {
            let name = params
                .iter()
                .find(|(k, _)| k == "Name")
                .map_or("", |(_, v)| v.as_str());
            vec![line(&[kind, name])]
        }
    }
}

/// `PROFILE name location size sha256` (an image), or `PROFILE name
/// installer:DISTRO`: what add-profile and describe-profiles print alike.
fn profile_line(p: &Item) -> String {
    if get(p, "kind") == "installer" {
        line(&[
            "PROFILE",
            get(p, "name"),
            &format!("installer:{}", get(p, "distro")),
        ])
    } else {
        line(&[
            "PROFILE",
            get(p, "name"),
            get(p, "location"),
            get(p, "size"),
            get(p, "sha256"),
        ])
    }
}

fn system_line(s: &Item) -> String {
    line(&[
        "SYSTEM",
        get(s, "name"),
        get(s, "mac"),
        get(s, "ip"),
        get(s, "group"),
        get(s, "powerDriver"),
        get(s, "state"),
        get(s, "owner"),
        get(s, "profile"),
        if get(s, "netboot") == "true" {
            "netboot"
        } else {
            "local"
        },
        get(s, "wipe"),
    ])
}

/// The answer as JSON: the items of each of its sets, or its fields.
pub(super) fn to_json(shape: Shape, answer: &Element) -> serde_json::Value {
    let items = |set: &str| serde_json::to_value(answer.items(set)).unwrap_or_default();
    match shape {
        Shape::Distros => items("distroSet"),
        Shape::Profiles => items("profileSet"),
        Shape::Systems | Shape::Users => items("systemSet"),
        Shape::Instances => items("instancesSet"),
        Shape::Groups => serde_json::json!({
            "groups": items("groupSet"),
            "systems": items("systemSet"),
        }),
        Shape::Profile | Shape::AnswerFile | Shape::Return(_) => {
            serde_json::to_value(answer.answer_fields()).unwrap_or_default()
        }
    }
}
