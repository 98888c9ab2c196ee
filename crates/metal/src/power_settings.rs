//! A system's power settings as JSON, the way administrators write them
//! (`{"driver":"ipmi","host":…}`): each driver's complete example, parsing
//! that names every missing and unknown field at once with that driver's
//! example (serde alone stops at the first and knows no examples), and the
//! settings with their secrets redacted for describing.
//!
//! The examples are the one description of the fields: a field an example
//! has is known, and it is required when the example without it does not
//! parse. A unit test keeps them complete.

use serde_json::{Map, Value, json};

use crate::power::PowerSpec;

/// Errors in power settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Not a JSON object.
    #[error("power settings must be a JSON object ({reason}); e.g. {example}")]
    NotAnObject {
        /// The parser's complaint.
        reason: String,
        /// An example.
        example: String,
    },
    /// No `driver`, or one that does not exist.
    #[error("{problem}: the drivers are {drivers}; e.g. {example}")]
    Driver {
        /// What is wrong with it.
        problem: String,
        /// The drivers, comma-separated.
        drivers: String,
        /// An example.
        example: String,
    },
    /// Fields missing or unknown, or of the wrong type.
    #[error("{driver} power settings: {problems}; a complete example: {example}")]
    Fields {
        /// The driver.
        driver: String,
        /// Every problem found, `; `-separated.
        problems: String,
        /// The driver's complete example.
        example: String,
    },
}

/// The drivers, in the order the documentation lists them.
pub const DRIVERS: [&str; 4] = ["ipmi", "redfish", "qemu", "manual"];

/// Field names whose values are secrets: never shown back.
const SECRETS: [&str; 3] = ["password", "token", "secret"];

/// What a secret is shown as.
pub const REDACTED: &str = "(redacted)";

/// A complete example of `driver`'s settings (every field, optional ones
/// too), or `None` for a driver that does not exist.
pub fn example(driver: &str) -> Option<Value> {
    Some(match driver {
        "ipmi" => json!({
            "driver": "ipmi", "host": "10.1.0.11", "user": "root",
            "password": "secret", "interface": "lanplus",
        }),
        "redfish" => json!({
            "driver": "redfish", "url": "http://10.1.0.21", "user": "root",
            "password": "secret", "system": "/redfish/v1/Systems/1",
        }),
        "qemu" => json!({
            "driver": "qemu", "run_dir": "/var/lib/mallee-lab/m1",
            "disk": "/var/lib/mallee-lab/m1/disk.qcow2", "disk_format": "qcow2",
            "tap": "mtap0", "netns": "mallee-lab", "memory_mib": 256, "accel": "tcg",
        }),
        "manual" => json!({"driver": "manual"}),
        _ => return None,
    })
}

/// The fields of `driver`'s settings and whether each is required.
fn fields(driver: &str) -> Vec<(String, bool)> {
    let Some(Value::Object(full)) = example(driver) else {
        return Vec::new();
    };
    full.keys()
        .filter(|k| *k != "driver")
        .map(|k| {
            let mut without = full.clone();
            without.remove(k);
            let required = serde_json::from_value::<PowerSpec>(Value::Object(without)).is_err();
            (k.clone(), required)
        })
        .collect()
}

/// Parses power settings, naming every problem at once.
pub fn parse(text: &str) -> Result<PowerSpec, SettingsError> {
    let ipmi = || example("ipmi").map(|e| e.to_string()).unwrap_or_default();
    let obj: Map<String, Value> = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => o,
        Ok(other) => {
            return Err(SettingsError::NotAnObject {
                reason: format!("got {other}"),
                example: ipmi(),
            });
        }
        Err(e) => {
            return Err(SettingsError::NotAnObject {
                reason: e.to_string(),
                example: ipmi(),
            });
        }
    };
    let drivers = DRIVERS.join(", ");
    let driver = match obj.get("driver") {
        Some(Value::String(d)) if example(d).is_some() => d.clone(),
        other => {
            return Err(SettingsError::Driver {
                problem: match other {
                    None => "no \"driver\"".to_owned(),
                    Some(d) => format!("unknown driver {d}"),
                },
                drivers,
                example: ipmi(),
            });
        }
    };
    let known = fields(&driver);
    let mut problems = Vec::new();
    let missing: Vec<&str> = known
        .iter()
        .filter(|(k, required)| *required && !obj.contains_key(k))
        .map(|(k, _)| k.as_str())
        .collect();
    if !missing.is_empty() {
        problems.push(format!("missing {}", missing.join(", ")));
    }
    let unknown: Vec<&str> = obj
        .keys()
        .filter(|k| *k != "driver" && !known.iter().any(|(f, _)| f == *k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        problems.push(format!("unknown {}", unknown.join(", ")));
    }
    let parsed = if problems.is_empty() {
        serde_json::from_value::<PowerSpec>(Value::Object(obj))
            .map_err(|e| problems.push(e.to_string()))
            .ok()
    } else {
        None
    };
    parsed.ok_or_else(|| SettingsError::Fields {
        example: example(&driver).map(|e| e.to_string()).unwrap_or_default(),
        driver,
        problems: problems.join("; "),
    })
}

/// `value` with every secret field's value replaced by [`REDACTED`].
pub fn redact(mut value: Value) -> Value {
    if let Value::Object(o) = &mut value {
        for (k, v) in o.iter_mut() {
            if SECRETS.contains(&k.as_str()) {
                *v = Value::String(REDACTED.into());
            }
        }
    }
    value
}

impl PowerSpec {
    /// The settings as JSON with their secrets redacted.
    pub fn redacted(&self) -> Value {
        redact(serde_json::to_value(self).unwrap_or(Value::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_parses_and_every_driver_has_one() {
        for d in DRIVERS {
            let e = example(d).expect("example");
            let spec = parse(&e.to_string()).expect("example parses");
            assert_eq!(spec.driver_name(), d);
            // Complete: serialising the parsed settings gives the example back.
            assert_eq!(serde_json::to_value(&spec).expect("json"), e, "{d}");
        }
        assert_eq!(example("nope"), None);
    }

    #[test]
    fn all_missing_fields_at_once_with_the_drivers_own_example() {
        let err = parse(r#"{"driver":"qemu","tap":"mtap0","colour":"red"}"#)
            .expect_err("incomplete")
            .to_string();
        assert!(
            err.starts_with(
                "qemu power settings: missing accel, disk, disk_format, memory_mib, run_dir; unknown colour; a complete example: {"
            ),
            "{err}"
        );
        assert!(
            err.contains(r#""driver":"qemu""#) && !err.contains("ipmi"),
            "{err}"
        );
        assert!(!err.contains("netns,"), "netns is optional: {err}");
        let err = parse(r#"{"driver":"redfish"}"#)
            .expect_err("empty")
            .to_string();
        assert!(err.contains("missing password, url, user;"), "{err}");
        let err = parse(r#"{"driver":"ipmi","host":"h","user":"u","password":1}"#)
            .expect_err("type")
            .to_string();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn bad_drivers_and_non_objects() {
        let err = parse(r#"{"host":"h"}"#).expect_err("no driver").to_string();
        assert!(
            err.starts_with("no \"driver\": the drivers are ipmi, redfish, qemu, manual; e.g. "),
            "{err}"
        );
        let err = parse(r#"{"driver":"ilo"}"#)
            .expect_err("unknown")
            .to_string();
        assert!(err.starts_with("unknown driver \"ilo\""), "{err}");
        assert!(parse("[1]").is_err() && parse("{").is_err());
        assert_eq!(parse(r#"{"driver":"manual"}"#), Ok(PowerSpec::Manual));
    }

    #[test]
    fn secrets_are_redacted() {
        for d in ["ipmi", "redfish"] {
            let spec = parse(&example(d).expect("example").to_string()).expect("parse");
            let shown = spec.redacted();
            assert_eq!(shown["password"], REDACTED, "{d}");
            assert_eq!(shown["user"], "root", "{d}");
            assert!(!shown.to_string().contains("secret"), "{shown}");
        }
        let qemu = parse(&example("qemu").expect("example").to_string()).expect("parse");
        assert_eq!(qemu.redacted(), example("qemu").expect("example"));
    }
}
