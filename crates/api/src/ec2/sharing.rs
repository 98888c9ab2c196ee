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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ec2::images::DescribeImages;
    use crate::ec2::snapshots::DescribeSnapshots;
    use crate::error::AwsError;

    fn params(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .expect("params")
    }

    #[test]
    fn images_know_aws_aliases_snapshots_do_not() {
        let foreign = params(&[("Owner.1", "self"), ("Owner.2", "aws-marketplace")]);
        assert_eq!(
            parse_selection(&foreign, "ExecutableBy", true).expect("images"),
            Selection {
                owners: vec![Owner::Caller, Owner::Nobody],
                users: Vec::new(),
            }
        );
        DescribeImages::parse(&foreign).expect("DescribeImages");
        let err = DescribeSnapshots::parse(&foreign).expect_err("DescribeSnapshots");
        assert_eq!(err.code(), "InvalidUserID.Malformed");
        assert_eq!(err.to_string(), "Invalid user id: 'aws-marketplace'");

        let users = params(&[
            ("RestorableBy.1", "all"),
            ("RestorableBy.2", "123456789012"),
        ]);
        assert_eq!(
            parse_selection(&users, "RestorableBy", false)
                .expect("users")
                .users,
            vec![User::All, User::Account("123456789012".into())]
        );
        for (name, value) in [("ExecutableBy.1", "amazon"), ("Owner.1", "12345")] {
            let err = DescribeImages::parse(&params(&[(name, value)])).expect_err(value);
            assert_eq!(err.code(), "InvalidUserID.Malformed", "{name}={value}");
        }
    }
}
