//! Installer answer-file templates (kickstart, preseed, autoinstall, or the
//! test installer's `key=value` file) rendered per system.
//!
//! Syntax, deliberately small:
//!
//! | text | becomes |
//! |---|---|
//! | `{{ name }}` | the variable `name`; rendering fails if it is not set |
//! | `{{ name \| fallback text }}` | `name`, or `fallback text` (may be empty) when it is not set |
//! | `{{{{` | a literal `{{` |
//!
//! Names are 1–64 characters of `A-Z a-z 0-9 _ . -`; spaces around names
//! and the `|` are ignored. Everything else is copied as it is. The same
//! syntax renders the kernel arguments of installer profiles and distros.

use std::collections::BTreeMap;

/// Errors in a template or while rendering it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{{` without a closing `}}`.
    #[error("line {line}: {{{{ is not closed by }}}}")]
    Unclosed {
        /// 1-based line of the `{{`.
        line: usize,
    },
    /// A bad variable name.
    #[error("line {line}: bad variable name {name:?} (use A-Z a-z 0-9 _ . -)")]
    BadName {
        /// 1-based line.
        line: usize,
        /// The text between the braces.
        name: String,
    },
    /// A variable without a value or a fallback.
    #[error(
        "line {line}: variable {name} is not set (set it on the system or the profile, or write {{{{ {name} | fallback }}}})"
    )]
    Unset {
        /// 1-based line.
        line: usize,
        /// The variable.
        name: String,
    },
}

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Var {
        name: &'a str,
        fallback: Option<&'a str>,
        line: usize,
    },
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn parse(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut consumed = 0usize;
    let line_at = |offset: usize| template[..offset].matches('\n').count() + 1;
    while let Some(open) = rest.find("{{") {
        if rest[open..].starts_with("{{{{") {
            out.push(Piece::Text(&rest[..open + 2]));
            consumed += open + 4;
            rest = &rest[open + 4..];
            continue;
        }
        out.push(Piece::Text(&rest[..open]));
        let line = line_at(consumed + open);
        let inner_start = open + 2;
        let close = rest[inner_start..]
            .find("}}")
            .ok_or(TemplateError::Unclosed { line })?;
        let inner = &rest[inner_start..inner_start + close];
        let (name, fallback) = match inner.split_once('|') {
            Some((n, f)) => (n.trim(), Some(f.trim())),
            None => (inner.trim(), None),
        };
        if !valid_name(name) {
            return Err(TemplateError::BadName {
                line,
                name: inner.trim().to_owned(),
            });
        }
        out.push(Piece::Var {
            name,
            fallback,
            line,
        });
        let end = inner_start + close + 2;
        consumed += end;
        rest = &rest[end..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// Checks a template's syntax (not whether its variables will be set).
pub fn check(template: &str) -> Result<(), TemplateError> {
    parse(template).map(|_| ())
}

/// The variables a template uses, with whether each has a fallback.
pub fn variables(template: &str) -> Result<BTreeMap<String, bool>, TemplateError> {
    let mut out = BTreeMap::new();
    for p in parse(template)? {
        if let Piece::Var { name, fallback, .. } = p {
            let e = out.entry(name.to_owned()).or_insert(true);
            *e = *e && fallback.is_some();
        }
    }
    Ok(out)
}

/// Renders `template` with `vars`.
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    for p in parse(template)? {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Var {
                name,
                fallback,
                line,
            } => match (vars.get(name), fallback) {
                (Some(v), _) => out.push_str(v),
                (None, Some(f)) => out.push_str(f),
                (None, None) => {
                    return Err(TemplateError::Unset {
                        line,
                        name: name.to_owned(),
                    });
                }
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn substitutes_variables_and_fallbacks() {
        let v = vars(&[("hostname", "m1"), ("ip", "10.0.0.5"), ("empty", "")]);
        assert_eq!(
            render("host={{hostname}} ip={{ ip }}\n", &v).expect("render"),
            "host=m1 ip=10.0.0.5\n"
        );
        assert_eq!(
            render("role={{ role | web server }};", &v).expect("render"),
            "role=web server;"
        );
        assert_eq!(render("x={{role|}}.", &v).expect("render"), "x=.");
        // A set variable wins over the fallback, even when empty.
        assert_eq!(render("[{{empty|dflt}}]", &v).expect("render"), "[]");
        assert_eq!(
            render("a {{{{literal}} b {{hostname}}", &v).expect("render"),
            "a {{literal}} b m1"
        );
        assert_eq!(
            render("no braces } { here", &v).expect("render"),
            "no braces } { here"
        );
    }

    #[test]
    fn reports_errors_with_lines() {
        let v = vars(&[]);
        assert_eq!(
            render("a\nb {{ role }}\n", &v),
            Err(TemplateError::Unset {
                line: 2,
                name: "role".into()
            })
        );
        assert_eq!(
            check("ok\n\n{{ host"),
            Err(TemplateError::Unclosed { line: 3 })
        );
        assert_eq!(
            check("{{ bad name }}"),
            Err(TemplateError::BadName {
                line: 1,
                name: "bad name".into()
            })
        );
        assert!(check("{{}}").is_err());
        assert!(check("{{{{ not a var }}").is_ok());
    }

    #[test]
    fn lists_variables() {
        let used = variables("{{a}} {{b|x}} {{a}} {{c|}} {{ b }}").expect("parse");
        assert_eq!(
            used.into_iter().collect::<Vec<_>>(),
            [("a".into(), false), ("b".into(), false), ("c".into(), true)]
        );
    }
}
