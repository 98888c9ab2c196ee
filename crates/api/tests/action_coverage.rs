//! Every action declared in a Query API's table is tested twice over:
//! an acceptance test in `tests/acceptance` calls it (with boto3, awscli,
//! a raw Query request, or for the metal API its command line), and the
//! account-isolation table of `tests/acceptance/test_isolation.py` has an
//! entry proving that another account can neither see nor touch a
//! caller's resources through it. IAM will widen that second half to
//! policies. The names come from the declaration tables
//! ([`Ec2Action::NAMES`], [`MetalAction::NAMES`]), so a new action fails
//! here until both tests exist.
//!
//! The Python files are read without their comments and docstrings, and a
//! call must have the shape a client gives it (`.run_instances(`, `"ec2",
//! "run-instances"`, `"Action": "RunInstances"`, `Action=RunInstances`,
//! `metaleuca-run-instances`, `.run("run-instances"` …): naming an
//! action in prose is not testing it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mallee_api::ec2::Ec2Action;
use mallee_api::metal::MetalAction;

/// The isolation test module, relative to `tests/acceptance`. It calls
/// every action too, but only to be refused: it is no acceptance test.
const ISOLATION: &str = "test_isolation.py";

/// Its tables: action name → check, one per API.
const EC2_TABLE: &str = "EC2_CHECKS";
const METAL_TABLE: &str = "METAL_CHECKS";

fn acceptance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/acceptance")
}

/// Every `.py` file under `dir`, recursively, sorted.
fn python_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "py") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Python source without its comments and docstrings (string literals
/// that open a logical line outside brackets), every other string literal
/// kept with `"` as its quote.
fn code_of(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut depth = 0usize;
    // Only whitespace since the last line break outside brackets.
    let mut line_start = true;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '"' | '\'' => {
                let (body, end, triple) = string_literal(&chars, i);
                let docstring = triple && depth == 0 && line_start;
                if !docstring {
                    out.push('"');
                    out.push_str(&body);
                    out.push('"');
                }
                line_start = false;
                i = end;
                continue;
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if c == '\n' {
            // A backslash continues the logical line.
            line_start = depth == 0 && !out.ends_with('\\');
        } else if !c.is_whitespace() && !string_prefix(&chars[i..]) {
            line_start = false;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The string literal whose quote is at `chars[start]`: its text (escapes
/// as written), the index after it, and whether it is triple-quoted.
fn string_literal(chars: &[char], start: usize) -> (String, usize, bool) {
    let quote = chars[start];
    let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
    let quote_len = if triple { 3 } else { 1 };
    let closes = |j: usize| {
        chars[j] == quote
            && (!triple || (chars.get(j + 1) == Some(&quote) && chars.get(j + 2) == Some(&quote)))
    };
    let mut body = String::new();
    let mut j = start + quote_len;
    while let Some(&d) = chars.get(j) {
        if d == '\\' {
            body.extend(chars.get(j..j + 2).unwrap_or(&chars[j..]));
            j += 2;
            continue;
        }
        if closes(j) {
            return (body, j + quote_len, triple);
        }
        if d == '\n' && !triple {
            break;
        }
        body.push(d);
        j += 1;
    }
    (body, j.min(chars.len()), triple)
}

/// Whether `rest` starts with a string prefix (`r`, `b`, `f`, `rb` …)
/// and its quote.
fn string_prefix(rest: &[char]) -> bool {
    let letters = rest
        .iter()
        .take_while(|c| matches!(c, 'r' | 'R' | 'b' | 'B' | 'u' | 'U' | 'f' | 'F'))
        .count();
    (1..=2).contains(&letters) && matches!(rest.get(letters), Some('"' | '\''))
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Whether `code` holds `tokens` in order, separated by nothing but
/// whitespace, and not as part of a longer word.
fn has_call(code: &str, tokens: &[String]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return false;
    };
    code.match_indices(first.as_str()).any(|(start, _)| {
        let before = code[..start].chars().next_back();
        if first.starts_with(is_word) && before.is_some_and(is_word) {
            return false;
        }
        let mut at = start + first.len();
        for token in rest {
            at += code[at..].len() - code[at..].trim_start().len();
            if !code[at..].starts_with(token.as_str()) {
                return false;
            }
            at += token.len();
        }
        let last = tokens.last().map_or("", String::as_str);
        !(last.ends_with(is_word) && code[at..].starts_with(is_word))
    })
}

/// `RunInstances` → `run_instances` (boto3's method name).
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `RunInstances` → `run-instances` (awscli's and the metal CLI's name).
fn kebab(name: &str) -> String {
    snake(name).replace('_', "-")
}

fn seq(tokens: &[&str]) -> Vec<String> {
    tokens.iter().map(|t| (*t).to_owned()).collect()
}

/// The shapes of a call of an EC2 action.
fn ec2_calls(action: &str) -> Vec<Vec<String>> {
    let (snake, kebab) = (snake(action), kebab(action));
    let quoted = format!("\"{action}\"");
    vec![
        seq(&[&format!(".{snake}(")]),
        seq(&["get_paginator(", &format!("\"{snake}\"")]),
        seq(&["\"ec2\"", ",", &format!("\"{kebab}\"")]),
        seq(&["\"Action\"", ":", &quoted]),
        seq(&["\"Action\"", ",", &quoted]),
        seq(&[&format!("Action={action}")]),
    ]
}

/// The shapes of a call of a metal action: its command
/// (`metaleuca-run-instances`, `mallee metal run-instances`), or the
/// acceptance tests' `Metaleuca` runner given its name.
fn metal_calls(action: &str) -> Vec<Vec<String>> {
    let kebab = kebab(action);
    let quoted = format!("\"{kebab}\"");
    let mut out = vec![
        seq(&[&format!("metaleuca-{kebab}")]),
        seq(&["mallee", "metal", &kebab]),
        seq(&["\"metal\"", ",", &quoted]),
    ];
    for method in ["run", "mallee", "lines", "json", "link"] {
        out.push(seq(&[&format!(".{method}("), &quoted]));
    }
    out
}

/// The actions of `names` that no file of `code` calls in any shape.
fn uncalled(
    names: &[&str],
    shapes: impl Fn(&str) -> Vec<Vec<String>>,
    code: &[String],
) -> Vec<String> {
    names
        .iter()
        .filter(|name| {
            !shapes(name)
                .iter()
                .any(|tokens| code.iter().any(|c| has_call(c, tokens)))
        })
        .map(|name| (*name).to_owned())
        .collect()
}

/// The keys of the dict literal `table = {…}` in `code`, in order.
fn table_keys(code: &str, table: &str) -> Result<Vec<String>, String> {
    let opening = format!("{table} = {{");
    let starts: Vec<usize> = code
        .match_indices(&opening)
        .map(|(at, _)| at)
        .filter(|at| code[..*at].ends_with('\n'))
        .collect();
    let [start] = starts[..] else {
        return Err(format!(
            "{ISOLATION} must define {table} once, as `{opening}` at the start of a line; found {}",
            starts.len()
        ));
    };
    let body = &code[start + opening.len()..];
    let bytes = body.as_bytes();
    let mut keys = Vec::new();
    let mut depth = 1usize;
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(keys);
                }
            }
            b'"' => {
                let len = body[at + 1..].find('"').ok_or("unterminated string")?;
                let after = body[at + 2 + len..].trim_start();
                if depth == 1 && after.starts_with(':') {
                    keys.push(body[at + 1..at + 1 + len].to_owned());
                }
                at += len + 1;
            }
            _ => {}
        }
        at += 1;
    }
    Err(format!("{table} in {ISOLATION} is not closed"))
}

/// What is wrong with `table`'s keys against the declared `names`.
fn table_problems(api: &str, names: &[&str], table: &str, keys: &[String]) -> Vec<String> {
    let declared: BTreeSet<&str> = names.iter().copied().collect();
    let mut seen = BTreeSet::new();
    let mut problems = Vec::new();
    for key in keys {
        if !seen.insert(key.as_str()) {
            problems.push(format!("{api} {key}: two entries in {table}"));
        }
        if !declared.contains(key.as_str()) {
            problems.push(format!("{api} {key}: in {table} but no declared action"));
        }
    }
    for name in names {
        if !seen.contains(name) {
            problems.push(format!(
                "{api} {name}: no entry in {table} (tests/acceptance/{ISOLATION})"
            ));
        }
    }
    problems
}

/// Documentation an acceptance test runs command by command: the test
/// file, and the page whose `$ command` lines it executes and checks
/// (docs/baremetal.md's walkthrough is run by test_metal_lab.py). Those
/// lines count as calls, as long as the test still names the page.
const EXECUTED_DOCS: &[(&str, &str)] = &[("test_metal_lab.py", "docs/baremetal.md")];

/// The `$ …` command lines of the pages [`EXECUTED_DOCS`] names, for each
/// whose test reads it.
fn executed_doc_commands(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (test, doc) in EXECUTED_DOCS {
        let test_code = code_of(&read(&dir.join(test)));
        let page = doc.rsplit('/').next().unwrap_or(doc);
        if !test_code.contains(&format!("\"{page}\"")) {
            continue;
        }
        let text = read(&dir.join("../..").join(doc));
        let commands: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("$ "))
            .collect();
        out.push(commands.join("\n"));
    }
    out
}

/// The code of every acceptance file but the isolation module, and the
/// commands of the documentation pages acceptance tests execute.
fn acceptance_code() -> Vec<String> {
    let dir = acceptance_dir();
    let files: Vec<PathBuf> = python_files(&dir)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != ISOLATION))
        .collect();
    assert!(
        files.len() > 10,
        "too few acceptance test files under {}: {files:?}",
        dir.display()
    );
    let mut code: Vec<String> = files.iter().map(|p| code_of(&read(p))).collect();
    code.extend(executed_doc_commands(&dir));
    code
}

#[test]
fn every_action_has_an_acceptance_test() {
    let code = acceptance_code();
    let mut missing: Vec<String> = uncalled(Ec2Action::NAMES, ec2_calls, &code)
        .into_iter()
        .map(|a| {
            format!(
                "EC2 {a}: no boto3 `.{}(`, awscli `\"ec2\", \"{}\"` or raw `Action={a}` call",
                snake(&a),
                kebab(&a)
            )
        })
        .collect();
    missing.extend(
        uncalled(MetalAction::NAMES, metal_calls, &code)
            .into_iter()
            .map(|a| {
                let k = kebab(&a);
                format!("metal {a}: no `metaleuca-{k}`, `mallee metal {k}` or `Metaleuca` `.run(\"{k}\"` call")
            }),
    );
    assert!(
        missing.is_empty(),
        "actions without an acceptance test in tests/acceptance (the isolation module does not count):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_action_has_an_isolation_test() {
    let path = acceptance_dir().join(ISOLATION);
    let code = code_of(&read(&path));
    let mut problems = Vec::new();
    for (api, names, table) in [
        ("EC2", Ec2Action::NAMES, EC2_TABLE),
        ("metal", MetalAction::NAMES, METAL_TABLE),
    ] {
        match table_keys(&code, table) {
            Ok(keys) => problems.extend(table_problems(api, names, table, &keys)),
            Err(e) => problems.push(e),
        }
    }
    assert!(
        problems.is_empty(),
        "the account-isolation tables of {} do not match the declared actions:\n  {}",
        path.display(),
        problems.join("\n  ")
    );
}

#[test]
fn names_convert_to_the_clients_names() {
    assert_eq!(snake("DescribeInstanceTypes"), "describe_instance_types");
    assert_eq!(kebab("RenderAnswerFile"), "render-answer-file");
    assert_eq!(kebab("ConfirmPoweredOff"), "confirm-powered-off");
}

#[test]
fn only_calls_count() {
    let src = r#""""Module docstring: ec2.reboot_instances(InstanceIds=ids) and metaleuca-add-group."""
import boto3  # ec2.stop_instances(...) in a comment


def test_x(ec2, ml, cli, raw):
    """Docstring: `aws ec2 start-instances`."""
    ec2.terminate_instances(InstanceIds=["i-1"])  # the call counts, not this: .get_console_output(
    ml.run('add-system', "--name", "s1")
    cli.json(
        "ec2", "describe-volumes"
    )
    raw({"Action": "DescribeRegions"})
    raw([("Action", 'CreateTags')])
    requests.get(url + "?Action=DescribeKeyPairs&Version=1")
    msg = "metaleuca-remove-systems, a command of another name"


def helper():
    r"""A raw docstring: ec2.describe_snapshots(SnapshotIds=ids)."""
"#;
    let code = code_of(src);
    let ec2 = |a: &str| ec2_calls(a).iter().any(|t| has_call(&code, t));
    let metal = |a: &str| metal_calls(a).iter().any(|t| has_call(&code, t));
    for called in [
        "TerminateInstances",
        "DescribeVolumes",
        "DescribeRegions",
        "CreateTags",
        "DescribeKeyPairs",
    ] {
        assert!(ec2(called), "{called} is called:\n{code}");
    }
    for mentioned in [
        "RebootInstances",
        "StopInstances",
        "StartInstances",
        "GetConsoleOutput",
        "DescribeKeyPair",
        "DescribeSnapshots",
    ] {
        assert!(!ec2(mentioned), "{mentioned} is only mentioned:\n{code}");
    }
    assert!(metal("AddSystem"));
    assert!(!metal("AddGroup"), "a docstring is no call");
    assert!(!metal("RemoveSystem"), "a longer name is another command");
}

#[test]
fn table_keys_are_the_top_level_strings_before_a_colon() {
    let code = code_of(
        r#"
EC2_CHECKS = {
    "DescribeRegions": describe_regions,  # "NotAKey": x,
    "AddGroup": partial(admin_only, "add-group", {"x": 1}),
    "RunInstances": lambda w: check(w, "y"),
}
"#,
    );
    assert_eq!(
        table_keys(&code, "EC2_CHECKS"),
        Ok(vec![
            "DescribeRegions".to_owned(),
            "AddGroup".to_owned(),
            "RunInstances".to_owned()
        ])
    );
    assert!(table_keys(&code, "METAL_CHECKS").is_err());
    let problems = table_problems(
        "EC2",
        &["DescribeRegions", "RunInstances", "StopInstances"],
        "EC2_CHECKS",
        &table_keys(&code, "EC2_CHECKS").expect("keys"),
    );
    assert_eq!(
        problems,
        [
            "EC2 AddGroup: in EC2_CHECKS but no declared action",
            "EC2 StopInstances: no entry in EC2_CHECKS (tests/acceptance/test_isolation.py)"
        ]
    );
}
