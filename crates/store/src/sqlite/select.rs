//! Building the WHERE clauses of the store's typed queries (instances, key
//! pairs, tags) for SQLite: AWS filter patterns become `=` / `IN` when they
//! have no wildcard (so an index answers them) and `GLOB` otherwise, and
//! rows come back as one JSON document, because sqlx-sqlite's per-row cost
//! dominates when a query returns hundreds of rows.

use crate::{StoreError, StoreResult, pattern_literal};

/// An AWS filter pattern (`*`, `?`, `\\` escapes) as an SQLite GLOB
/// pattern, which also has `[…]` classes: GLOB's special characters that
/// stand for themselves become one-character classes.
pub(super) fn glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('*' | '?' | '[')) => out.push_str(&format!("[{e}]")),
                Some(e) => out.push(e),
                None => out.push('\\'),
            },
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

/// A WHERE clause under construction: SQL text made only of fixed
/// fragments and `?` placeholders, and the values bound to them in order.
#[derive(Debug, Default)]
pub(super) struct Where {
    sql: String,
    binds: Vec<String>,
}

impl Where {
    /// Starts with a fixed condition and its values.
    pub(super) fn new(sql: &'static str, binds: impl IntoIterator<Item = String>) -> Self {
        Self {
            sql: sql.to_owned(),
            binds: binds.into_iter().collect(),
        }
    }

    /// `AND` a fixed fragment with its values.
    pub(super) fn and(&mut self, sql: &str, binds: impl IntoIterator<Item = String>) {
        self.sql.push_str(" AND ");
        self.sql.push_str(sql);
        self.binds.extend(binds);
    }

    /// `AND column IN (the JSON array bound)`: exact values, any number of
    /// them, with one placeholder.
    pub(super) fn and_in(&mut self, column: &str, values: &[String]) -> StoreResult<()> {
        let json = serde_json::to_string(values)
            .map_err(|e| StoreError::Corrupt(format!("query values: {e}")))?;
        self.and(
            &format!("{column} IN (SELECT value FROM json_each(?))"),
            [json],
        );
        Ok(())
    }

    /// `AND` (`column` matches any of `patterns`); never true without
    /// patterns, as an AWS filter with no values matches nothing.
    pub(super) fn and_any(&mut self, column: &str, patterns: &[String]) {
        let condition = self.any(column, patterns);
        self.sql.push_str(" AND ");
        self.sql.push_str(&condition);
    }

    /// `AND template`, whose `{}` becomes (`column` matches any of
    /// `patterns`) and whose placeholders before it take `first`: for
    /// conditions on a subquery (`… WHERE tag_key = ? AND {}`).
    pub(super) fn and_around(
        &mut self,
        template: &str,
        first: Option<String>,
        column: &str,
        patterns: &[String],
    ) {
        self.binds.extend(first);
        let condition = self.any(column, patterns);
        self.and(&template.replace("{}", &condition), []);
    }

    /// (`column` matches any of `patterns`), binding their values.
    pub(super) fn any(&mut self, column: &str, patterns: &[String]) -> String {
        let (literals, globs): (Vec<_>, Vec<_>) = patterns
            .iter()
            .map(|p| pattern_literal(p).ok_or_else(|| glob(p)))
            .partition(Result::is_ok);
        let literals: Vec<String> = literals.into_iter().flatten().collect();
        let globs: Vec<String> = globs.into_iter().filter_map(Result::err).collect();
        let mut ors = Vec::new();
        match literals.len() {
            0 => {}
            1 => ors.push(format!("{column} = ?")),
            n => ors.push(format!("{column} IN ({})", vec!["?"; n].join(", "))),
        }
        ors.extend(globs.iter().map(|_| format!("{column} GLOB ?")));
        self.binds.extend(literals);
        self.binds.extend(globs);
        if ors.is_empty() {
            "0".to_owned()
        } else {
            format!("({})", ors.join(" OR "))
        }
    }

    /// The clause's text.
    pub(super) fn sql(&self) -> &str {
        &self.sql
    }

    /// Runs `select` (whose text ends with this clause and may go on with
    /// fixed text) and returns its one string column of its one row.
    pub(super) async fn fetch_json(
        &self,
        pool: &sqlx::SqlitePool,
        select: String,
    ) -> StoreResult<String> {
        // Only fixed fragments, `?` placeholders and numbers: no input.
        let mut q = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(select));
        for b in &self.binds {
            q = q.bind(b);
        }
        Ok(q.fetch_one(pool).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_use_equality_and_wildcards_glob() {
        let mut w = Where::new("a = ?", ["x".to_owned()]);
        w.and_any(
            "c",
            &["p*".into(), "lit".into(), r"q\*".into(), "r?".into()],
        );
        assert_eq!(w.sql(), "a = ? AND (c IN (?, ?) OR c GLOB ? OR c GLOB ?)");
        assert_eq!(w.binds, ["x", "lit", "q*", "p*", "r?"]);
        let mut one = Where::default();
        one.and_any("c", &["v".into()]);
        assert_eq!(one.sql(), " AND (c = ?)");
        let mut none = Where::default();
        none.and_any("c", &[]);
        assert_eq!(none.sql(), " AND 0");
    }

    #[test]
    fn glob_escapes() {
        assert_eq!(glob(r"a\*[b"), "a[*][[]b");
        assert_eq!(glob("a*?"), "a*?");
    }
}
