//! Wildcard patterns as IAM uses them: action names (`ec2:Describe*`,
//! case-insensitive), resource ARNs matched colon segment by colon segment
//! (case-sensitive), and the policy variables (`${aws:username}`, `${*}`,
//! `${key, 'default'}`) that resource and condition values may contain.
//!
//! A pattern is compiled once when its policy is parsed; matching it walks
//! the compiled tokens against the request's text without building strings.
//! A variable whose key the request does not carry (or carries with several
//! values) leaves the pattern unmatched, as AWS documents for policy
//! variables without a value.

use crate::context::Context;

/// One piece of a compiled pattern.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// Text matched literally (after `${*}`, `${?}`, `${$}` substitution).
    Lit(Box<str>),
    /// `${key}` or `${key, 'default'}`: the request's single value of `key`.
    /// `slot` numbers the pattern's variables, indexing their resolved values.
    Var {
        key: Box<str>,
        default: Option<Box<str>>,
        slot: usize,
    },
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `?`: exactly one character.
    One,
}

/// A compiled string pattern (one action, one condition value, one ARN
/// segment).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pattern {
    toks: Box<[Tok]>,
    /// Whether any token is a variable, so matching must resolve them first.
    has_vars: bool,
}

/// How a pattern's text is read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syntax {
    /// `*` and `?` are wildcards (otherwise literal characters).
    pub wildcards: bool,
    /// `${...}` is a policy variable (policy version 2012-10-17 only).
    pub variables: bool,
}

impl Pattern {
    /// Compiles `text`. Never fails: a `${` without its `}` is literal text,
    /// as it is in AWS.
    pub(crate) fn compile(text: &str, syntax: Syntax) -> Self {
        let mut toks: Vec<Tok> = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if syntax.variables
                && rest.starts_with("${")
                && let Some(end) = rest.find('}')
            {
                let inner = &rest[2..end];
                rest = &rest[end + 1..];
                match inner.trim() {
                    "*" => lit.push('*'),
                    "?" => lit.push('?'),
                    "$" => lit.push('$'),
                    _ => {
                        flush(&mut toks, &mut lit);
                        toks.push(parse_var(inner));
                    }
                }
                continue;
            }
            rest = &rest[c.len_utf8()..];
            match c {
                '*' if syntax.wildcards => {
                    flush(&mut toks, &mut lit);
                    if toks.last() != Some(&Tok::Star) {
                        toks.push(Tok::Star);
                    }
                }
                '?' if syntax.wildcards => {
                    flush(&mut toks, &mut lit);
                    toks.push(Tok::One);
                }
                _ => lit.push(c),
            }
        }
        flush(&mut toks, &mut lit);
        Pattern::from_toks(toks)
    }

    /// Numbers the variables' slots.
    fn from_toks(mut toks: Vec<Tok>) -> Self {
        let mut n = 0;
        for t in toks.iter_mut() {
            if let Tok::Var { slot, .. } = t {
                *slot = n;
                n += 1;
            }
        }
        Pattern {
            toks: toks.into_boxed_slice(),
            has_vars: n > 0,
        }
    }

    /// The pattern lowercased (its literal text only), for case-insensitive
    /// matching against lowercased input.
    pub(crate) fn lowercased(mut self) -> Self {
        for t in self.toks.iter_mut() {
            if let Tok::Lit(s) = t {
                *s = s.to_lowercase().into_boxed_str();
            }
        }
        self
    }

    /// Whether the pattern ends with a `*` wildcard.
    fn ends_with_star(&self) -> bool {
        self.toks.last() == Some(&Tok::Star)
    }

    /// Splits the pattern at the `:` characters of its literal text (never
    /// inside a variable's value), into at most `max` segments: the last one
    /// keeps any further colons.
    fn split_colons(self, max: usize) -> Vec<Pattern> {
        let mut segs: Vec<Vec<Tok>> = vec![Vec::new()];
        for tok in self.toks.into_vec() {
            match tok {
                Tok::Lit(s) => {
                    let mut piece = String::new();
                    for c in s.chars() {
                        if c == ':' && segs.len() < max {
                            if !piece.is_empty() {
                                push_tok(&mut segs, Tok::Lit(std::mem::take(&mut piece).into()));
                            }
                            segs.push(Vec::new());
                        } else {
                            piece.push(c);
                        }
                    }
                    if !piece.is_empty() {
                        push_tok(&mut segs, Tok::Lit(piece.into()));
                    }
                }
                other => push_tok(&mut segs, other),
            }
        }
        segs.into_iter().map(Pattern::from_toks).collect()
    }

    /// Whether `text` matches. `ignore_case` compares characters without
    /// case (the pattern should then be [`Pattern::lowercased`] or be
    /// compared both ways, which this does).
    pub(crate) fn matches(&self, text: &str, ctx: &Context, ignore_case: bool) -> bool {
        if !self.has_vars {
            return glob(&self.toks, &[], text, ignore_case);
        }
        let mut values: Vec<&str> = Vec::with_capacity(self.toks.len());
        for t in self.toks.iter() {
            if let Tok::Var { key, default, .. } = t {
                match resolve(ctx, key, default.as_deref()) {
                    Some(v) => values.push(v),
                    None => return false,
                }
            }
        }
        glob(&self.toks, &values, text, ignore_case)
    }
}

fn flush(toks: &mut Vec<Tok>, lit: &mut String) {
    if !lit.is_empty() {
        toks.push(Tok::Lit(std::mem::take(lit).into_boxed_str()));
    }
}

fn push_tok(segs: &mut [Vec<Tok>], tok: Tok) {
    if let Some(last) = segs.last_mut() {
        last.push(tok);
    }
}

/// `key` or `key, 'default'` (with `''` for a quote inside the default).
fn parse_var(inner: &str) -> Tok {
    let (key, default) = match inner.split_once(',') {
        Some((key, rest)) => {
            let rest = rest.trim();
            let default = rest
                .strip_prefix('\'')
                .and_then(|r| r.strip_suffix('\''))
                .map(|d| d.replace("''", "'").into_boxed_str());
            (key, default)
        }
        None => (inner, None),
    };
    Tok::Var {
        key: key.trim().to_ascii_lowercase().into_boxed_str(),
        default,
        slot: 0,
    }
}

/// A variable's value: the request's only value for the key, else the
/// default; a key with several values cannot stand in for one string.
fn resolve<'a>(ctx: &'a Context, key: &str, default: Option<&'a str>) -> Option<&'a str> {
    match ctx.get_lowercase(key) {
        Some([one]) => Some(one.as_str()),
        _ => default,
    }
}

/// One unit of the token stream at a cursor.
enum Unit {
    Char(char),
    Star,
    One,
}

/// A position in a token stream: token index and byte offset in the text of
/// a literal or variable token.
#[derive(Clone, Copy)]
struct Cursor {
    tok: usize,
    off: usize,
}

fn token_text<'a>(tok: &'a Tok, vars: &[&'a str]) -> Option<&'a str> {
    match tok {
        Tok::Lit(s) => Some(s),
        Tok::Var { slot, .. } => vars.get(*slot).copied(),
        Tok::Star | Tok::One => None,
    }
}

/// The unit at `cur` and the cursor after it; `None` at the end.
fn unit_at(toks: &[Tok], vars: &[&str], mut cur: Cursor) -> Option<(Unit, Cursor)> {
    loop {
        let tok = toks.get(cur.tok)?;
        match tok {
            Tok::Star => {
                return Some((
                    Unit::Star,
                    Cursor {
                        tok: cur.tok + 1,
                        off: 0,
                    },
                ));
            }
            Tok::One => {
                return Some((
                    Unit::One,
                    Cursor {
                        tok: cur.tok + 1,
                        off: 0,
                    },
                ));
            }
            _ => {
                let text = token_text(tok, vars).unwrap_or("");
                match text[cur.off..].chars().next() {
                    Some(c) => {
                        return Some((
                            Unit::Char(c),
                            Cursor {
                                tok: cur.tok,
                                off: cur.off + c.len_utf8(),
                            },
                        ));
                    }
                    None => {
                        cur = Cursor {
                            tok: cur.tok + 1,
                            off: 0,
                        }
                    }
                }
            }
        }
    }
}

fn same_char(a: char, b: char, ignore_case: bool) -> bool {
    if a == b {
        return true;
    }
    if !ignore_case {
        return false;
    }
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(&b);
    }
    a.to_lowercase().eq(b.to_lowercase())
}

/// Whole-string equality, optionally without case.
pub(crate) fn eq_chars(a: &str, b: &str, ignore_case: bool) -> bool {
    if !ignore_case {
        return a == b;
    }
    let (mut x, mut y) = (a.chars(), b.chars());
    loop {
        match (x.next(), y.next()) {
            (None, None) => return true,
            (Some(p), Some(q)) if same_char(p, q, true) => {}
            _ => return false,
        }
    }
}

/// Glob matching with `*` backtracking to the last star only, linear in
/// practice. `vars` holds the resolved variable values in token order.
fn glob(toks: &[Tok], vars: &[&str], text: &str, ignore_case: bool) -> bool {
    // Fast paths: a lone literal, a lone star.
    match toks {
        [] => return text.is_empty(),
        [Tok::Star] => return true,
        [Tok::Lit(s)] => return eq_chars(s, text, ignore_case),
        _ => {}
    }
    glob_units(toks, vars, text, ignore_case)
}

fn glob_units(toks: &[Tok], vars: &[&str], text: &str, ignore_case: bool) -> bool {
    let mut p = Cursor { tok: 0, off: 0 };
    let mut s = 0usize;
    let mut backtrack: Option<(Cursor, usize)> = None;
    loop {
        let here = text[s..].chars().next();
        match (unit_at(toks, vars, p), here) {
            (Some((Unit::Star, next)), _) => {
                backtrack = Some((next, s));
                p = next;
                continue;
            }
            (Some((Unit::One, next)), Some(c)) => {
                p = next;
                s += c.len_utf8();
                continue;
            }
            (Some((Unit::Char(pc), next)), Some(c)) if same_char(pc, c, ignore_case) => {
                p = next;
                s += c.len_utf8();
                continue;
            }
            (None, None) => return true,
            _ => {}
        }
        match backtrack {
            Some((bp, bs)) => match text[bs..].chars().next() {
                Some(c) => {
                    let nbs = bs + c.len_utf8();
                    backtrack = Some((bp, nbs));
                    p = bp;
                    s = nbs;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

/// A compiled action pattern (`ec2:Describe*`, `*`), matched without case.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ActionPattern(Pattern);

impl ActionPattern {
    pub(crate) fn compile(text: &str) -> Self {
        ActionPattern(
            Pattern::compile(
                text,
                Syntax {
                    wildcards: true,
                    variables: false,
                },
            )
            .lowercased(),
        )
    }

    /// Whether `action` (`service:Name`, any case) matches.
    pub(crate) fn matches(&self, action: &str, ctx: &Context) -> bool {
        self.0.matches(action, ctx, true)
    }
}

/// The number of colon-separated parts of an ARN
/// (`arn:partition:service:region:account:resource`).
const ARN_PARTS: usize = 6;

/// A compiled ARN pattern: each of the first five colon-separated segments
/// matched on its own, the resource part (which may hold more colons and
/// slashes) as a whole. A pattern with fewer segments whose last segment
/// ends in `*` matches the rest of the ARN, across colons, as IAM does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ArnPattern {
    segs: Box<[Pattern]>,
}

impl ArnPattern {
    pub(crate) fn compile(text: &str, variables: bool) -> Self {
        let whole = Pattern::compile(
            text,
            Syntax {
                wildcards: true,
                variables,
            },
        );
        ArnPattern {
            segs: whole.split_colons(ARN_PARTS).into_boxed_slice(),
        }
    }

    /// Whether the ARN `arn` matches (case-sensitive).
    pub(crate) fn matches(&self, arn: &str, ctx: &Context) -> bool {
        let mut starts = [0usize; ARN_PARTS];
        let mut ends = [arn.len(); ARN_PARTS];
        let mut n_in = 1;
        for (i, c) in arn.char_indices() {
            if c == ':' && n_in < ARN_PARTS {
                ends[n_in - 1] = i;
                starts[n_in] = i + 1;
                n_in += 1;
            }
        }
        let n_p = self.segs.len();
        for (i, seg) in self.segs.iter().enumerate() {
            if i + 1 == n_p && n_p < ARN_PARTS && seg.ends_with_star() {
                let rest = if i < n_in { &arn[starts[i]..] } else { "" };
                return seg.matches(rest, ctx, false);
            }
            if i >= n_in || !seg.matches(&arn[starts[i]..ends[i]], ctx, false) {
                return false;
            }
        }
        n_p == n_in
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        let mut c = Context::new();
        c.insert("aws:username", "alice");
        c.insert("aws:PrincipalTag/team", "blue");
        c.insert_many("aws:TagKeys", ["a", "b"]);
        c
    }

    fn like(pattern: &str, text: &str) -> bool {
        Pattern::compile(
            pattern,
            Syntax {
                wildcards: true,
                variables: true,
            },
        )
        .matches(text, &ctx(), false)
    }

    #[test]
    fn globs() {
        assert!(like("*", ""));
        assert!(like("*", "anything"));
        assert!(like("a*c", "abbbc"));
        assert!(like("a*c", "ac"));
        assert!(!like("a*c", "acb"));
        assert!(like("a?c", "abc"));
        assert!(!like("a?c", "ac"));
        assert!(like("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!like("*a*b*c*", "xxaxxcxxbxx"));
        assert!(like("h?llo*w*d", "héllo, world"));
        assert!(!like("abc", "abcd"));
        assert!(!like("abc", "ABC"));
        assert!(like("", ""));
        assert!(!like("", "x"));
        assert!(like("**a", "ba"));
    }

    #[test]
    fn variables() {
        assert!(like("home/${aws:username}/*", "home/alice/x"));
        assert!(like("home/${AWS:UserName}/*", "home/alice/x"));
        assert!(!like("home/${aws:username}/*", "home/bob/x"));
        // Missing and multi-valued keys never match; defaults stand in.
        assert!(!like("${aws:userid}", ""));
        assert!(!like("${aws:TagKeys}", "a"));
        assert!(like("${aws:userid, 'nobody'}", "nobody"));
        assert!(like("${aws:userid, 'it''s'}", "it's"));
        // Escapes are literal, not wildcards.
        assert!(like("a${*}b", "a*b"));
        assert!(!like("a${*}b", "axb"));
        assert!(like("a${?}b", "a?b"));
        assert!(!like("a${?}b", "axb"));
        assert!(like("cost${$}", "cost$"));
        // The variable's value is literal too.
        let mut c = Context::new();
        c.insert("aws:username", "a*");
        let p = Pattern::compile(
            "${aws:username}",
            Syntax {
                wildcards: true,
                variables: true,
            },
        );
        assert!(p.matches("a*", &c, false));
        assert!(!p.matches("ab", &c, false));
        // Unclosed: literal.
        assert!(like("${aws:username", "${aws:username"));
        // 2008-10-17: no variables.
        let p = Pattern::compile(
            "${aws:username}",
            Syntax {
                wildcards: true,
                variables: false,
            },
        );
        assert!(p.matches("${aws:username}", &ctx(), false));
        assert!(!p.matches("alice", &ctx(), false));
        assert!(like("${aws:principaltag/TEAM}-*", "blue-1"));
    }

    #[test]
    fn literal_syntax() {
        let p = Pattern::compile(
            "a*b",
            Syntax {
                wildcards: false,
                variables: true,
            },
        );
        assert!(p.matches("a*b", &ctx(), false));
        assert!(!p.matches("axb", &ctx(), false));
        assert!(p.matches("A*B", &ctx(), true));
    }

    #[test]
    fn actions() {
        let c = ctx();
        let a = ActionPattern::compile("ec2:Describe*");
        assert!(a.matches("ec2:DescribeInstances", &c));
        assert!(a.matches("EC2:describeinstances", &c));
        assert!(!a.matches("ec2:RunInstances", &c));
        assert!(!a.matches("ec2x:DescribeInstances", &c));
        assert!(ActionPattern::compile("*").matches("s3:GetObject", &c));
        assert!(ActionPattern::compile("s3:Get*Acl").matches("s3:GetObjectAcl", &c));
        assert!(ActionPattern::compile("iam:?etUser").matches("iam:GetUser", &c));
        assert!(ActionPattern::compile("S3:GETOBJECT").matches("s3:GetObject", &c));
        assert!(!ActionPattern::compile("s3:GetObject").matches("s3:GetObjectAcl", &c));
    }

    fn arn(pattern: &str, text: &str) -> bool {
        ArnPattern::compile(pattern, true).matches(text, &ctx())
    }

    #[test]
    fn arns() {
        assert!(arn("*", "arn:aws:s3:::b/k"));
        assert!(arn("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket/a/b:c"));
        assert!(!arn("arn:aws:s3:::bucket/*", "arn:aws:s3:::bucket"));
        assert!(arn("arn:aws:s3:::bucket", "arn:aws:s3:::bucket"));
        assert!(!arn("arn:aws:s3:::bucket", "arn:aws:s3:::Bucket"));
        assert!(arn("arn:aws:s3:::*", "arn:aws:s3:::bucket/key"));
        assert!(arn(
            "arn:aws:ec2:*:*:instance/*",
            "arn:aws:ec2:eu-1:111122223333:instance/i-1"
        ));
        assert!(!arn(
            "arn:aws:ec2:*:*:instance/*",
            "arn:aws:ec2:eu-1:111122223333:volume/vol-1"
        ));
        // A star inside a segment does not cross a colon ...
        assert!(!arn(
            "arn:aws:ec2:eu*:instance/*",
            "arn:aws:ec2:eu-1:1:instance/i"
        ));
        // ... but a trailing star of a shorter pattern does.
        assert!(arn("arn:aws:ec2:*", "arn:aws:ec2:eu-1:1:instance/i"));
        assert!(arn(
            "arn:aws:iam::*",
            "arn:aws:iam::111122223333:user/alice"
        ));
        assert!(!arn("arn:aws:iam::*", "arn:aws:s3:::b"));
        assert!(arn("arn:aws:ec2:*:*:*", "arn:aws:ec2:r:1:instance/i"));
        assert!(arn(
            "arn:aws:iam::111122223333:user/${aws:username}",
            "arn:aws:iam::111122223333:user/alice"
        ));
        assert!(!arn(
            "arn:aws:iam::111122223333:user/${aws:userid}",
            "arn:aws:iam::111122223333:user/"
        ));
        assert!(arn(
            "arn:aws:s3:::b/${aws:username}/*",
            "arn:aws:s3:::b/alice/x"
        ));
        assert!(!arn("arn:aws:s3:::b/*", "arn:aws:s3"));
        // The resource part keeps its colons.
        assert!(arn(
            "arn:aws:logs:r:1:log-group:g:*",
            "arn:aws:logs:r:1:log-group:g:log-stream:s"
        ));
    }
}
