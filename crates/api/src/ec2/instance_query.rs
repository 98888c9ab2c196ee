//! DescribeInstances' filters as a store query: the filters the store can
//! answer (by index) go to it with the page, so a filtered DescribeInstances
//! costs what it returns, not what the account owns (issue 18). Filters it
//! cannot answer are applied afterwards to what it returned; the page is
//! then cut in memory, because the store could not know which rows those
//! filters drop.

use mallee_store::{InstanceCondition, InstanceField, InstanceQuery};

use crate::filter::Filter;
use crate::pagination::PageRequest;

/// The store condition with exactly the meaning `filter` has for
/// DescribeInstances (`InstanceView`'s values), if the store has one.
fn condition(filter: &Filter) -> Option<InstanceCondition> {
    let patterns = filter.values.clone();
    if let Some(key) = filter.name.strip_prefix("tag:") {
        return Some(InstanceCondition::Tag {
            key: key.to_owned(),
            values: patterns,
        });
    }
    let field = match filter.name.as_str() {
        "tag-key" => return Some(InstanceCondition::TagKey(patterns)),
        "tag-value" => return Some(InstanceCondition::TagValue(patterns)),
        "instance-id" => InstanceField::InstanceId,
        "reservation-id" => InstanceField::ReservationId,
        "instance-state-name" => InstanceField::State,
        "availability-zone" => InstanceField::Zone,
        "private-ip-address" => InstanceField::LivePrivateIp,
        "instance-type" => InstanceField::InstanceType,
        "image-id" => InstanceField::ImageId,
        "key-name" => InstanceField::KeyName,
        "subnet-id" => InstanceField::SubnetId,
        "vpc-id" => InstanceField::VpcId,
        _ => return None,
    };
    Some(InstanceCondition::Field { field, patterns })
}

/// The store query for `ids`, `filters` and `page`. It pages only when
/// every filter went to the store; either way the caller filters and pages
/// what it returns (a no-op for what the store already did).
pub(crate) fn query(ids: &[String], filters: &[Filter], page: &PageRequest) -> InstanceQuery {
    let conditions: Vec<InstanceCondition> = filters.iter().filter_map(condition).collect();
    let complete = conditions.len() == filters.len();
    let mut query = InstanceQuery {
        ids: ids.to_vec(),
        conditions,
        ..InstanceQuery::default()
    };
    if complete {
        query.after = page.after.clone();
        // One more than the page: whether another follows.
        query.limit = page.max_results.map(|m| m + 1);
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, values: &[&str]) -> Filter {
        Filter {
            name: name.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn answerable_filters_page_in_the_store() {
        let page = PageRequest {
            max_results: Some(5),
            after: Some("i-1".into()),
        };
        let q = query(
            &[],
            &[
                f("vpc-id", &["vpc-1"]),
                f("tag:Name", &["web*"]),
                f("tag-key", &["k"]),
            ],
            &page,
        );

        assert_eq!(q.limit, Some(6));
        assert_eq!(q.after.as_deref(), Some("i-1"));
        assert_eq!(
            q.conditions,
            [
                InstanceCondition::Field {
                    field: InstanceField::VpcId,
                    patterns: vec!["vpc-1".into()]
                },
                InstanceCondition::Tag {
                    key: "Name".into(),
                    values: vec!["web*".into()]
                },
                InstanceCondition::TagKey(vec!["k".into()]),
            ]
        );
    }

    #[test]
    fn other_filters_leave_the_page_to_the_caller() {
        let page = PageRequest {
            max_results: Some(5),
            after: None,
        };
        let q = query(
            &[],
            &[
                f("instance-type", &["t3.*"]),
                f("architecture", &["x86_64"]),
            ],
            &page,
        );
        assert_eq!(q.after, None);
        assert_eq!(q.limit, None);
        assert_eq!(q.conditions.len(), 1);
    }
}
