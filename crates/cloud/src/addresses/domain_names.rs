//! Elastic IP domain names (the reverse DNS `PTR` record AWS keeps per
//! allocation): DescribeAddressesAttribute, ModifyAddressAttribute and
//! ResetAddressAttribute for `domain-name`. mallee serves no reverse DNS
//! zone, so a name is recorded and answered at once (no pending
//! `PtrRecordUpdate`) and AWS's forward-lookup requirement is not checked;
//! an address without one answers its default public host name, as AWS
//! answers its `ec2-…` name.

use mallee_store::{AddressChange, AddressRecord};

use super::{ATTEMPTS, AddressRef, commit, contended, public_hostname};
use crate::{Cloud, CloudError, Principal};

/// The longest domain name (without the root dot), as DNS allows.
const MAX_NAME: usize = 253;

/// A domain name as AWS stores it (lowercase, ending in the root dot), or
/// AWS's refusal: dot-separated labels of letters, digits and hyphens, each
/// 1 to 63 characters and not starting or ending with a hyphen, at least
/// two labels, at most 253 characters.
pub fn canonical_domain_name(given: &str) -> Result<String, CloudError> {
    let name = given.strip_suffix('.').unwrap_or(given);
    let labels: Vec<&str> = name.split('.').collect();
    let valid_label = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > MAX_NAME || labels.len() < 2 || !labels.iter().all(valid_label) {
        return Err(CloudError::Invalid(format!(
            "Value ({given}) for parameter domainName is invalid. The domain name must be a fully qualified domain name of at most {MAX_NAME} characters."
        )));
    }
    Ok(format!("{}.", name.to_ascii_lowercase()))
}

/// The PTR record an address answers: its own, else its default public
/// host name, ending in the root dot as AWS writes them.
pub fn ptr_record(cloud: &Cloud, address: &AddressRecord) -> String {
    address.ptr_record.clone().unwrap_or_else(|| {
        format!(
            "{}.",
            public_hostname(&address.public_ip, &cloud.config.public_domain())
        )
    })
}

/// Sets (or with `None` resets) the domain name of the caller's elastic
/// IP `allocation_id`; returns the address as stored.
pub async fn set_domain_name(
    cloud: &Cloud,
    caller: &Principal,
    allocation_id: &str,
    domain_name: Option<String>,
) -> Result<AddressRecord, CloudError> {
    let named = AddressRef::Allocation(allocation_id.to_owned());
    for _ in 0..ATTEMPTS {
        let current = named.resolve(cloud, caller.account_id()).await?;
        if current.ptr_record == domain_name {
            return Ok(current);
        }
        let updated = AddressRecord {
            ptr_record: domain_name.clone(),
            ..current
        };
        let change = AddressChange {
            update: vec![updated.clone()],
            ..AddressChange::default()
        };
        if commit(cloud, &change).await? {
            return Ok(AddressRecord {
                revision: updated.revision + 1,
                ..updated
            });
        }
    }
    Err(contended())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;
    use crate::addresses::{Allocate, allocate};
    use crate::testkit::TestCloud;

    #[test]
    fn domain_names_are_checked_and_canonical() {
        assert_eq!(
            canonical_domain_name("Mail.Example.com").expect("ok"),
            "mail.example.com."
        );
        assert_eq!(
            canonical_domain_name("a-1.example.org.").expect("ok"),
            "a-1.example.org."
        );
        for bad in [
            "",
            "localhost",
            "-a.example.com",
            "a-.example.com",
            "a..example.com",
            "under_score.example.com",
            &format!("{}.com", "a".repeat(64)),
            &format!("{}com", "abcdefghi.".repeat(26)),
        ] {
            assert!(
                matches!(canonical_domain_name(bad), Err(CloudError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn set_and_reset_only_the_callers_addresses() {
        let tc = TestCloud::new().await;
        let owner = tc.principal("owner").await;
        let other = tc.principal("other").await;
        let address = allocate(
            &tc,
            &owner,
            Allocate {
                domain: "vpc".into(),
                address: None,
                border_group: None,
                tags: vec![],
            },
        )
        .await
        .expect("allocate");
        let id = address.allocation_id.clone();
        let default = ptr_record(&tc, &address);
        assert!(
            default.starts_with("ec2-") && default.ends_with('.'),
            "{default}"
        );

        let named = set_domain_name(&tc, &owner, &id, Some("mail.example.com.".into()))
            .await
            .expect("set");
        assert_eq!(ptr_record(&tc, &named), "mail.example.com.");
        let stored = tc.store.address(&id).await.expect("store").expect("kept");
        assert_eq!(stored, named);

        let refused = set_domain_name(&tc, &other, &id, None).await;
        assert!(matches!(
            refused,
            Err(CloudError::NotFound {
                kind: Kind::Allocation,
                ..
            })
        ));
        let reset = set_domain_name(&tc, &owner, &id, None)
            .await
            .expect("reset");
        assert_eq!(ptr_record(&tc, &reset), default);
    }
}
