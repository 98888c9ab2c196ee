//! Who may do what in the bare-metal zone.
//!
//! Inventory edits (groups, distros, profiles, systems) are for
//! administrator accounts: [`authorize`] refuses the others before the
//! operation runs. Every account may describe the inventory and reserve,
//! run, describe and give back systems. Owners are the seed's free-form
//! user strings (`-u USER`): an administrator's owner is `USER`, another
//! account's is `ACCOUNT:USER` ([`owner_of`]), and such an account sees and
//! touches only systems whose owner starts with `ACCOUNT:` ([`may_touch`]).
//! The inventory shows it the other accounts' systems as taken, but not by
//! whom or with what ([`as_seen_by`]).

use crate::{CloudError, Principal};

/// The metal API's operations only administrators may run.
pub const ADMIN_ONLY: &[&str] = &[
    "AddGroup",
    "RemoveGroup",
    "AddDistro",
    "RemoveDistro",
    "AddProfile",
    "RenderAnswerFile",
    "RemoveProfile",
    "AddSystem",
    "EditSystem",
    "RemoveSystem",
    "ConfirmPoweredOff",
];

/// Whether only administrator accounts may run `operation`.
pub fn admin_only(operation: &str) -> bool {
    ADMIN_ONLY.contains(&operation)
}

/// Refuses `caller` an administrator's `operation` unless it is an
/// administrator.
pub fn authorize(caller: &Principal, operation: &str) -> Result<(), CloudError> {
    if admin_only(operation) && !caller.account.is_admin {
        return Err(CloudError::NotPermitted(format!(
            "You are not authorized to perform {operation}: inventory changes are for administrators."
        )));
    }
    Ok(())
}

/// Checks a user string: 1-64 characters of `A-Z a-z 0-9 . _ - @`.
pub fn check_user(user: &str) -> Result<(), CloudError> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(CloudError::Invalid(format!(
            "bad user {user:?}: use 1-64 characters of A-Z a-z 0-9 . _ - @"
        )))
    }
}

/// The owner string `user` stands for when `caller` says it.
pub fn owner_of(caller: &Principal, user: &str) -> String {
    if caller.account.is_admin {
        user.to_owned()
    } else {
        format!("{}:{user}", caller.account.name)
    }
}

/// Whether `caller` may see and touch what `owner` has.
pub fn may_touch(caller: &Principal, owner: Option<&str>) -> bool {
    caller.account.is_admin
        || owner.is_some_and(|o| {
            o.strip_prefix(caller.account.name.as_str())
                .is_some_and(|rest| rest.starts_with(':'))
        })
}

/// `system` as `caller` sees it in the inventory: a system another
/// account holds shows that it is taken (its state), not the holder's
/// owner string, the profile it chose or what its installed system last
/// said.
pub fn as_seen_by(caller: &Principal, mut system: mallee_metal::System) -> mallee_metal::System {
    if system.owner.is_some() && !may_touch(caller, system.owner.as_deref()) {
        system.owner = None;
        system.profile = None;
        system.last_event = None;
    }
    system
}

/// Refuses `caller` a system it may not touch.
pub(crate) fn require_touch(
    caller: &Principal,
    system: &mallee_metal::System,
) -> Result<(), CloudError> {
    if may_touch(caller, system.owner.as_deref()) {
        Ok(())
    } else {
        Err(CloudError::NotPermitted(format!(
            "system {} is not yours",
            system.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(admin: bool) -> Principal {
        Principal {
            account: mallee_store::Account {
                account_id: "000000000001".into(),
                name: "qa".into(),
                is_admin: admin,
                created_at: 0,
                iam_generation: 0,
            },
            user_name: "admin".into(),
            access_key_id: "AKIA".into(),
            session: None,
        }
    }

    #[test]
    fn inventory_edits_are_for_administrators() {
        assert!(authorize(&principal(true), "RemoveSystem").is_ok());
        let refused = authorize(&principal(false), "RemoveSystem");
        assert_eq!(
            refused,
            Err(CloudError::NotPermitted(
                "You are not authorized to perform RemoveSystem: inventory changes are for administrators.".into()
            ))
        );
        assert!(authorize(&principal(false), "DescribeSystems").is_ok());
        assert!(authorize(&principal(false), "RunInstances").is_ok());
    }

    #[test]
    fn users_and_owners() {
        assert!(check_user("kyo_machines_for_demo").is_ok());
        assert!(check_user("a@b.c-d").is_ok());
        for bad in ["", "a b", "a:b", &"x".repeat(65)] {
            assert!(check_user(bad).is_err(), "{bad:?}");
        }
        assert_eq!(owner_of(&principal(true), "demo"), "demo");
        assert_eq!(owner_of(&principal(false), "demo"), "qa:demo");
        assert!(may_touch(&principal(true), Some("anyone")));
        assert!(may_touch(&principal(true), None));
        assert!(may_touch(&principal(false), Some("qa:demo")));
        assert!(!may_touch(&principal(false), Some("qa2:demo")));
        assert!(!may_touch(&principal(false), Some("qademo")));
        assert!(!may_touch(&principal(false), None));
    }
}
