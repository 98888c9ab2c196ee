//! Which backend holds the metadata, chosen by the `--database` a
//! controller or admin command is given: a `postgres://` (or
//! `postgresql://`) URL selects PostgreSQL, anything else is a SQLite file
//! (a path, or `sqlite:PATH` / `sqlite://PATH`), SQLite's file under the data
//! directory being the default.

use std::path::PathBuf;
use std::sync::Arc;

use crate::postgres::PostgresStore;
use crate::sqlite::SqliteStore;
use crate::{Store, StoreResult};

/// Where the metadata lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite database file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database, by connection URL.
    Postgres(String),
}

impl Database {
    /// Reads a `--database` value: a PostgreSQL URL, `sqlite:PATH`, or a
    /// path.
    pub fn parse(value: &str) -> Self {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            Self::Postgres(value.to_owned())
        } else {
            let path = value
                .strip_prefix("sqlite://")
                .or_else(|| value.strip_prefix("sqlite:"))
                .unwrap_or(value);
            Self::Sqlite(PathBuf::from(path))
        }
    }

    /// Opens the store, bringing its schema up to date first.
    pub async fn open(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(match self {
            Self::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
            Self::Postgres(url) => Arc::new(PostgresStore::open(url).await?),
        })
    }

    /// Brings the schema up to date and returns its version (the number of
    /// the last migration, the same in both backends' directories).
    pub async fn migrate(&self) -> StoreResult<i64> {
        let migrations = match self {
            Self::Sqlite(path) => {
                SqliteStore::open(path).await?;
                sqlx::migrate!("./migrations")
            }
            Self::Postgres(url) => {
                PostgresStore::open(url).await?;
                sqlx::migrate!("./migrations-postgres")
            }
        };
        Ok(migrations.iter().map(|m| m.version).max().unwrap_or(0))
    }

    /// The database named for people: the URL without its password, or
    /// the file's path.
    pub fn display(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(url) => redact_password(url),
        }
    }
}

/// `scheme://user:password@host…` with the password replaced by `***`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend() {
        assert_eq!(
            Database::parse("postgres://m@db/mallee"),
            Database::Postgres("postgres://m@db/mallee".into())
        );
        assert_eq!(
            Database::parse("postgresql:///mallee?host=/run/postgresql"),
            Database::Postgres("postgresql:///mallee?host=/run/postgresql".into())
        );
        assert_eq!(
            Database::parse("sqlite:/var/lib/mallee/mallee.db"),
            Database::Sqlite("/var/lib/mallee/mallee.db".into())
        );
        assert_eq!(
            Database::parse("sqlite:///var/lib/mallee/mallee.db"),
            Database::Sqlite("/var/lib/mallee/mallee.db".into())
        );
        assert_eq!(
            Database::parse("data/mallee.db"),
            Database::Sqlite("data/mallee.db".into())
        );
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            Database::parse("postgres://mallee:secret@db/mallee").display(),
            "postgres://mallee:***@db/mallee"
        );
    }
}
