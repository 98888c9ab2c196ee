//! Resources one account owns and may share with others (images,
//! snapshots): the owner aliases of the cloud's administrator accounts, and
//! the Owner, ExecutableBy and RestorableBy selections of DescribeImages
//! and DescribeSnapshots, which work alike on both.

use std::collections::HashSet;

use crate::{Cloud, CloudError, Kind};

/// Owner aliases for resources of the cloud's administrator accounts, the
/// counterpart of AWS's `amazon` images (Eucalyptus called them
/// `eucalyptus`). Responses show the first.
pub const ADMIN_ALIASES: &[&str] = &["amazon", "mallee", "eucalyptus"];

/// AWS owner aliases of images that name nobody here.
pub const FOREIGN_ALIASES: &[&str] = &["aws-marketplace", "aws-backup-vault", "microsoft"];

/// Whether `id` is an account id (12 digits).
pub fn is_account_id(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

/// `value` names no owner or user.
pub fn malformed_user(value: &str) -> CloudError {
    CloudError::malformed(Kind::Account, format!("Invalid user id: '{value}'"))
}

/// An owner a Describe request selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// `self`: the caller.
    Caller,
    /// An alias of the administrator accounts ([`ADMIN_ALIASES`]).
    Admins,
    /// An AWS alias that names nobody here ([`FOREIGN_ALIASES`]).
    Nobody,
    /// One account.
    Account(String),
}

impl Owner {
    /// The owner `value` names: `self`, an administrators' alias or an
    /// account id; with `foreign_aliases` also an AWS alias naming nobody
    /// here (EC2 knows those for images, not for snapshots).
    pub fn named(value: &str, foreign_aliases: bool) -> Result<Self, CloudError> {
        Ok(match value {
            "self" => Self::Caller,
            alias if ADMIN_ALIASES.contains(&alias) => Self::Admins,
            alias if foreign_aliases && FOREIGN_ALIASES.contains(&alias) => Self::Nobody,
            id if is_account_id(id) => Self::Account(id.to_owned()),
            other => return Err(malformed_user(other)),
        })
    }
}

/// An account a Describe request asks about (`ExecutableBy`,
/// `RestorableBy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum User {
    /// `all`: public resources.
    All,
    /// `self`: the caller.
    Caller,
    /// One account.
    Account(String),
}

impl User {
    /// The user `value` names: `all`, `self` or an account id.
    pub fn named(value: &str) -> Result<Self, CloudError> {
        Ok(match value {
            "all" => Self::All,
            "self" => Self::Caller,
            id if is_account_id(id) => Self::Account(id.to_owned()),
            other => return Err(malformed_user(other)),
        })
    }
}

/// What counts as granted to an account when a request asks who may use a
/// resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grants {
    /// Only explicit grants (images' `ExecutableBy`: the owner's own and
    /// public images are not "executable by" it unless shared with it).
    Explicit,
    /// Every account that may use it: its owner, everyone when it is
    /// public, and those it is shared with (snapshots' `RestorableBy`).
    Usable,
}

/// How one resource is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shared<'a> {
    /// The owning account.
    pub owner: &'a str,
    /// Whether every account may use it.
    pub public: bool,
    /// The accounts it is shared with.
    pub accounts: &'a [String],
}

impl Shared<'_> {
    fn granted(&self, account: &str, grants: Grants) -> bool {
        let shared = self.accounts.iter().any(|a| a == account);
        match grants {
            Grants::Explicit => shared,
            Grants::Usable => shared || self.public || self.owner == account,
        }
    }
}

/// The owners and users a Describe request selects; empty lists select
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// `Owner.N`.
    pub owners: Vec<Owner>,
    /// `ExecutableBy.N` or `RestorableBy.N`.
    pub users: Vec<User>,
}

impl Selection {
    /// Whether a resource of `owner` is selected by the owners.
    pub fn owner_selected(&self, owner: &str, caller: &str, admins: &Admins) -> bool {
        self.owners.is_empty()
            || self.owners.iter().any(|o| match o {
                Owner::Caller => owner == caller,
                Owner::Admins => admins.owns(owner),
                Owner::Nobody => false,
                Owner::Account(id) => owner == id,
            })
    }

    /// Whether `shared` is selected by the users: `all` selects public
    /// resources, `self` (or the caller's id) those granted to the caller,
    /// another account the caller's own resources granted to that account
    /// (other owners' share lists are private).
    pub fn users_selected(&self, shared: &Shared<'_>, caller: &str, grants: Grants) -> bool {
        self.users.is_empty()
            || self.users.iter().any(|u| match u {
                User::All => shared.public,
                User::Caller => shared.granted(caller, grants),
                User::Account(id) if id == caller => shared.granted(caller, grants),
                User::Account(id) => shared.owner == caller && shared.granted(id, grants),
            })
    }
}

/// The cloud's administrator accounts, whose resources the
/// [`ADMIN_ALIASES`] name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Admins(HashSet<String>);

impl Admins {
    /// Reads the administrator accounts.
    pub async fn load(cloud: &Cloud) -> Result<Self, CloudError> {
        Ok(Self(
            cloud
                .store
                .accounts()
                .await?
                .into_iter()
                .filter(|a| a.is_admin)
                .map(|a| a.account_id)
                .collect(),
        ))
    }

    /// Whether an administrator account is `owner`.
    pub fn owns(&self, owner: &str) -> bool {
        self.0.contains(owner)
    }

    /// The owner alias responses show for a resource of `owner`.
    pub fn alias_of(&self, owner: &str) -> Option<&'static str> {
        self.owns(owner).then_some(ADMIN_ALIASES[0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: &str = "111111111111";
    const OTHER: &str = "222222222222";
    const ADMIN: &str = "999999999999";

    fn users(values: &[&str]) -> Selection {
        Selection {
            owners: Vec::new(),
            users: values
                .iter()
                .map(|v| User::named(v).expect("user"))
                .collect(),
        }
    }

    #[test]
    fn names() {
        assert_eq!(Owner::named("self", false), Ok(Owner::Caller));
        assert_eq!(Owner::named("eucalyptus", false), Ok(Owner::Admins));
        assert_eq!(Owner::named("aws-marketplace", true), Ok(Owner::Nobody));
        assert_eq!(
            Owner::named("aws-marketplace", false),
            Err(malformed_user("aws-marketplace"))
        );
        assert_eq!(
            Owner::named(CALLER, false),
            Ok(Owner::Account(CALLER.into()))
        );
        assert!(Owner::named("12345", true).is_err());
        assert_eq!(User::named("all"), Ok(User::All));
        assert!(User::named("amazon").is_err());
    }

    #[test]
    fn owners() {
        let admins = Admins([ADMIN.to_owned()].into());
        let selection = |values: &[&str]| Selection {
            owners: values
                .iter()
                .map(|v| Owner::named(v, true).expect("owner"))
                .collect(),
            users: Vec::new(),
        };
        assert!(selection(&[]).owner_selected(OTHER, CALLER, &admins));
        assert!(selection(&["self"]).owner_selected(CALLER, CALLER, &admins));
        assert!(!selection(&["self"]).owner_selected(OTHER, CALLER, &admins));
        assert!(selection(&["amazon"]).owner_selected(ADMIN, CALLER, &admins));
        assert!(!selection(&["mallee"]).owner_selected(OTHER, CALLER, &admins));
        assert!(!selection(&["microsoft"]).owner_selected(ADMIN, CALLER, &admins));
        assert!(selection(&[OTHER]).owner_selected(OTHER, CALLER, &admins));
        assert_eq!(admins.alias_of(ADMIN), Some("amazon"));
        assert_eq!(admins.alias_of(OTHER), None);
    }

    #[test]
    fn explicit_and_usable_grants() {
        let shared_with_caller = [CALLER.to_owned()];
        let shared_with_other = [OTHER.to_owned()];
        let own = Shared {
            owner: CALLER,
            public: false,
            accounts: &shared_with_other,
        };
        let theirs = Shared {
            owner: OTHER,
            public: false,
            accounts: &shared_with_caller,
        };
        let public = Shared {
            owner: OTHER,
            public: true,
            accounts: &[],
        };
        let check = |values: &[&str], shared: &Shared<'_>, grants| {
            users(values).users_selected(shared, CALLER, grants)
        };
        use Grants::{Explicit, Usable};
        // `all`: public only, either way.
        assert!(check(&["all"], &public, Explicit));
        assert!(!check(&["all"], &own, Usable));
        // `self`: explicit grants only for images, any use for snapshots.
        assert!(check(&["self"], &theirs, Explicit));
        assert!(!check(&["self"], &own, Explicit));
        assert!(!check(&["self"], &public, Explicit));
        assert!(check(&["self"], &own, Usable));
        assert!(check(&["self"], &public, Usable));
        assert!(check(&[CALLER], &theirs, Explicit));
        // Another account: only the caller's own resources shared with it.
        assert!(check(&[OTHER], &own, Explicit));
        assert!(!check(&[OTHER], &theirs, Usable));
        let own_public = Shared {
            owner: CALLER,
            public: true,
            accounts: &[],
        };
        assert!(!check(&[OTHER], &own_public, Explicit));
        assert!(check(&[OTHER], &own_public, Usable));
        assert!(check(&[], &theirs, Explicit));
    }
}
