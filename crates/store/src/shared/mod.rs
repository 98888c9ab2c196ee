//! What the SQLite and PostgreSQL backends share: row decoders, SQL text
//! that reads the same in both dialects, and parameter-binding sequences.
//! One file per group of operations, as in `crate::sqlite` and
//! `crate::postgres`; what really differs between the dialects (locking,
//! RETURNING, upserts, JSON functions, BLOB vs BYTEA) stays in the backend.
//!
//! Placeholders: shared SQL numbers them `$1`, `$2`, … (PostgreSQL's
//! form). SQLite reads `$NNN` too, and sqlx binds it by its number, so one
//! text serves both without a rewriting helper.
//!
//! The two traits here let one function serve both backends without
//! sqlx's per-database bounds at every use: [`StoreRow`] reads a column of
//! either backend's row, [`Binder`] binds a value to either backend's query.

use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Decode, Encode, Postgres, Row, Sqlite, Type};

pub(crate) mod accounts;
pub(crate) mod addresses;
pub(crate) mod enrolment;
pub(crate) mod identity;
pub(crate) mod images;
pub(crate) mod instances;
pub(crate) mod launch_templates;
pub(crate) mod lease;
pub(crate) mod metal;
pub(crate) mod network;
pub(crate) mod objects;
pub(crate) mod routing;
pub(crate) mod snapshots;
pub(crate) mod volumes;
pub(crate) mod vpcs;

/// A type both backends decode from a column.
pub(crate) trait Column:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

impl<T> Column for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A row of either backend, read by column name.
pub(crate) trait StoreRow {
    /// The value of `column`, as [`sqlx::Row::try_get`] reads it.
    fn try_get<T: Column>(&self, column: &str) -> Result<T, sqlx::Error>;
}

impl StoreRow for SqliteRow {
    fn try_get<T: Column>(&self, column: &str) -> Result<T, sqlx::Error> {
        Row::try_get(self, column)
    }
}

impl StoreRow for PgRow {
    fn try_get<T: Column>(&self, column: &str) -> Result<T, sqlx::Error> {
        Row::try_get(self, column)
    }
}

/// A type both backends bind as a parameter. `Option<&str>` is not one
/// (sqlx encodes a borrow inside an `Option` for every lifetime only when
/// it is `'static`): bind `Option<String>` or `&Option<String>` instead.
pub(crate) trait Value:
    for<'t> Encode<'t, Sqlite> + Type<Sqlite> + for<'t> Encode<'t, Postgres> + Type<Postgres>
{
}

impl<T> Value for T where
    T: for<'t> Encode<'t, Sqlite> + Type<Sqlite> + for<'t> Encode<'t, Postgres> + Type<Postgres>
{
}

/// A query of either backend that takes parameters in order.
pub(crate) trait Binder: Sized {
    /// Binds `value` to the next parameter, as [`Query::bind`] does.
    fn arg<T: Value>(self, value: T) -> Self;
}

impl Binder for Query<'_, Sqlite, SqliteArguments> {
    fn arg<T: Value>(self, value: T) -> Self {
        self.bind(value)
    }
}

impl Binder for Query<'_, Postgres, PgArguments> {
    fn arg<T: Value>(self, value: T) -> Self {
        self.bind(value)
    }
}
