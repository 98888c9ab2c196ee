//! The `Owner.N` and `ExecutableBy.N` / `RestorableBy.N` parameters of
//! DescribeImages and DescribeSnapshots; what they select is
//! `mallee_cloud::sharing`.

use mallee_cloud::sharing::{Owner, Selection, User};

use super::Ec2Error;
use crate::query::QueryParams;

/// Reads `Owner.N` (with `foreign_aliases`, also AWS aliases that name
/// nobody here) and the user list `users` (`ExecutableBy`,
/// `RestorableBy`); a value naming no owner or user is
/// `InvalidUserID.Malformed`.
pub fn parse_selection(
    params: &QueryParams,
    users: &str,
    foreign_aliases: bool,
) -> Result<Selection, Ec2Error> {
    let owners = params
        .list("Owner")?
        .iter()
        .map(|o| Owner::named(o, foreign_aliases))
        .collect::<Result<_, _>>()?;
    let users = params
        .list(users)?
        .iter()
        .map(|u| User::named(u))
        .collect::<Result<_, _>>()?;
    Ok(Selection { owners, users })
}
