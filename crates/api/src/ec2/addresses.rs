//! AllocateAddress, AssociateAddress, DisassociateAddress, ReleaseAddress
//! and DescribeAddresses on the wire: parameters in, XML out. What the
//! addresses mean (allocation, association, auto-assigned public IPs) is
//! `mallee_cloud::addresses`.

use std::net::Ipv4Addr;

use mallee_cloud::addresses::{self, AddressRef, Allocate, Associate, Disassociate};
use mallee_store::AddressRecord;

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::query::{QueryError, QueryParams};

use super::instances::validate_instance_id;
use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error};

pub(crate) fn validate_prefixed(
    id: &str,
    prefix: &str,
    code: &'static str,
) -> Result<(), Ec2Error> {
    let ok = id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
    if ok {
        Ok(())
    } else {
        Err(Ec2Error::refused(code, format!("Invalid id: \"{id}\"")))
    }
}

fn validate_public_ip(ip: &str) -> Result<(), Ec2Error> {
    ip.parse::<Ipv4Addr>()
        .map(|_| ())
        .map_err(|_| Ec2Error::InvalidParameterValue(format!("Invalid value '{ip}' for PublicIp.")))
}

/// Reads `AllocationId` or `PublicIp` (one is required).
fn parse_address_ref(params: &QueryParams) -> Result<AddressRef, Ec2Error> {
    let allocation = params.get("AllocationId").filter(|v| !v.is_empty());
    let public_ip = params.get("PublicIp").filter(|v| !v.is_empty());
    match (allocation, public_ip) {
        (Some(_), Some(_)) => Err(Ec2Error::InvalidParameterCombination(
            "You may specify either an allocation ID or a public IP address, not both.".into(),
        )),
        (Some(id), None) => {
            validate_prefixed(id, "eipalloc", "InvalidAllocationID.Malformed")?;
            Ok(AddressRef::Allocation(id.to_owned()))
        }
        (None, Some(ip)) => {
            validate_public_ip(ip)?;
            Ok(AddressRef::PublicIp(ip.to_owned()))
        }
        (None, None) => Err(QueryError::Missing("AllocationId".into()).into()),
    }
}

// --- AllocateAddress -----------------------------------------------------

/// AllocateAddress input.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocateAddress(Allocate);

impl AllocateAddress {
    /// Reads `Domain` (`vpc`, the default, or `standard`), `Address`,
    /// `PublicIpv4Pool` (`amazon` only), `NetworkBorderGroup` (a zone with
    /// a public range) and `TagSpecification.N` (`elastic-ip`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let domain = match params.get("Domain").filter(|d| !d.is_empty()) {
            None => "vpc",
            Some(d @ ("vpc" | "standard")) => d,
            Some(other) => {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Value ({other}) for parameter domain is invalid. Valid values: vpc, standard"
                )));
            }
        };
        if let Some(pool) = params.get("PublicIpv4Pool").filter(|p| !p.is_empty())
            && pool != "amazon"
        {
            return Err(Ec2Error::refused(
                "InvalidPublicIpv4PoolID.NotFound",
                format!("The pool ID '{pool}' does not exist"),
            ));
        }
        let address = params
            .get("Address")
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        if let Some(ip) = &address {
            validate_public_ip(ip)?;
        }
        Ok(Self(Allocate {
            domain: domain.to_owned(),
            address,
            border_group: params
                .get("NetworkBorderGroup")
                .filter(|g| !g.is_empty())
                .map(str::to_owned),
            tags: parse_tag_specifications(params, "elastic-ip")?,
        }))
    }

    /// Allocates and answers with the new address.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let record = addresses::allocate(ctx.cloud, ctx.principal, self.0).await?;
        Ok(ctx.respond("AllocateAddress", |w| {
            w.text("publicIp", &record.public_ip);
            w.text("domain", &record.domain);
            w.text("allocationId", &record.allocation_id);
            w.text("publicIpv4Pool", "amazon");
            w.text("networkBorderGroup", &record.zone);
        }))
    }
}

// --- AssociateAddress ----------------------------------------------------

/// AssociateAddress input.
#[derive(Debug, Clone, PartialEq)]
pub struct AssociateAddress(Associate);

impl AssociateAddress {
    /// Reads `AllocationId` or `PublicIp`, `InstanceId` (a
    /// `NetworkInterfaceId` names no interface mallee has),
    /// `PrivateIpAddress`, `AllowReassociation`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let address = parse_address_ref(params)?;
        if let Some(eni) = params.get("NetworkInterfaceId").filter(|v| !v.is_empty()) {
            return Err(Ec2Error::refused(
                "InvalidNetworkInterfaceID.NotFound",
                format!("The networkInterface ID '{eni}' does not exist"),
            ));
        }
        let instance_id = params.required_non_empty("InstanceId")?.to_owned();
        validate_instance_id(&instance_id)?;
        Ok(Self(Associate {
            address,
            instance_id,
            private_ip: params
                .get("PrivateIpAddress")
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            allow_reassociation: params.bool("AllowReassociation")?.unwrap_or(false),
        }))
    }

    /// Associates and answers with the association id.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let association = addresses::associate(ctx.cloud, ctx.principal, self.0).await?;
        Ok(ctx.respond("AssociateAddress", |w| {
            w.text("return", "true");
            w.text("associationId", &association);
        }))
    }
}

// --- DisassociateAddress -------------------------------------------------

/// DisassociateAddress input.
#[derive(Debug, Clone, PartialEq)]
pub struct DisassociateAddress(Disassociate);

impl DisassociateAddress {
    /// Reads `AssociationId` or `PublicIp`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let association_id = params.get("AssociationId").filter(|v| !v.is_empty());
        let public_ip = params.get("PublicIp").filter(|v| !v.is_empty());
        match (association_id, public_ip) {
            (Some(_), Some(_)) => Err(Ec2Error::InvalidParameterCombination(
                "You may specify either an association ID or a public IP address, not both.".into(),
            )),
            (Some(id), None) => {
                validate_prefixed(id, "eipassoc", "InvalidAssociationID.Malformed")?;
                Ok(Self(Disassociate::Association(id.to_owned())))
            }
            (None, Some(ip)) => {
                validate_public_ip(ip)?;
                Ok(Self(Disassociate::PublicIp(ip.to_owned())))
            }
            (None, None) => Err(QueryError::Missing("AssociationId".into()).into()),
        }
    }

    /// Disassociates (by public IP, an unassociated address is left as it
    /// is).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        addresses::disassociate(ctx.cloud, ctx.principal, self.0).await?;
        Ok(ctx.respond_true("DisassociateAddress"))
    }
}

// --- ReleaseAddress ------------------------------------------------------

/// ReleaseAddress input.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseAddress(AddressRef);

impl ReleaseAddress {
    /// Reads `AllocationId` or `PublicIp` (`NetworkBorderGroup` is
    /// accepted: an allocation id names one address anyway).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self(parse_address_ref(params)?))
    }

    /// Returns the address to the pool.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        addresses::release(ctx.cloud, ctx.principal, self.0).await?;
        Ok(ctx.respond_true("ReleaseAddress"))
    }
}

// --- DescribeAddresses ---------------------------------------------------
const ADDRESS_FILTERS: &[&str] = &[
    "allocation-id",
    "association-id",
    "domain",
    "instance-id",
    "network-border-group",
    "network-interface-id",
    "network-interface-owner-id",
    "private-ip-address",
    "public-ip",
];

struct AddressView<'a> {
    address: &'a AddressRecord,
    tags: &'a [(String, String)],
    interface: Option<&'a str>,
}

impl Filterable for AddressView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let a = self.address;
        let opt = |v: &Option<String>| Some(v.iter().cloned().collect());
        match name {
            "allocation-id" => Some(vec![a.allocation_id.clone()]),
            "association-id" => opt(&a.association_id),
            "domain" => Some(vec![a.domain.clone()]),
            "instance-id" => opt(&a.instance_id),
            "network-border-group" => Some(vec![a.zone.clone()]),
            "network-interface-id" => {
                Some(self.interface.iter().map(|i| (*i).to_owned()).collect())
            }
            "network-interface-owner-id" => Some(
                self.interface
                    .iter()
                    .map(|_| a.account_id.clone())
                    .collect(),
            ),
            "private-ip-address" => opt(&a.private_ip),
            "public-ip" => Some(vec![a.public_ip.clone()]),
            _ => None,
        }
    }

    fn tags(&self) -> &[(String, String)] {
        self.tags
    }

    fn taggable(&self) -> bool {
        true
    }
}

/// DescribeAddresses input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeAddresses {
    public_ips: Vec<String>,
    allocation_ids: Vec<String>,
    filters: Vec<Filter>,
}

impl DescribeAddresses {
    /// Reads `PublicIp.N`, `AllocationId.N`, `Filter.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, ADDRESS_FILTERS, true)?;
        let public_ips = params.list("PublicIp")?;
        for ip in &public_ips {
            validate_public_ip(ip)?;
        }
        let allocation_ids = params.list("AllocationId")?;
        for id in &allocation_ids {
            validate_prefixed(id, "eipalloc", "InvalidAllocationID.Malformed")?;
        }
        Ok(Self {
            public_ips,
            allocation_ids,
            filters,
        })
    }

    /// Lists the caller's elastic IPs; a named one that is missing is an
    /// error.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        let addresses: Vec<AddressRecord> = addresses::list(
            ctx.cloud,
            ctx.principal,
            &self.public_ips,
            &self.allocation_ids,
        )
        .await?;
        let tags = TagsByResource::load(ctx, account).await?;
        let interfaces =
            mallee_cloud::addresses::interfaces::interfaces(ctx.cloud, ctx.principal, &addresses)
                .await?;
        let selected: Vec<AddressView<'_>> = addresses
            .iter()
            .map(|a| AddressView {
                address: a,
                tags: tags.of(&a.allocation_id),
                interface: interfaces.get(&a.allocation_id).map(String::as_str),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        Ok(ctx.respond("DescribeAddresses", |w| {
            w.items("addressesSet", selected, |w, view| {
                let a = view.address;
                w.text("publicIp", &a.public_ip);
                w.text("allocationId", &a.allocation_id);
                w.text("domain", &a.domain);
                w.opt_text("instanceId", a.instance_id.as_deref());
                w.opt_text("associationId", a.association_id.as_deref());
                if let Some(interface) = view.interface {
                    w.text("networkInterfaceId", interface);
                    w.text("networkInterfaceOwnerId", &a.account_id);
                }
                w.opt_text("privateIpAddress", a.private_ip.as_deref());
                write_tag_set(w, view.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                w.text("publicIpv4Pool", "amazon");
                w.text("networkBorderGroup", &a.zone);
            });
        }))
    }
}

#[cfg(test)]
mod tests {
    use mallee_cloud::Principal;
    use mallee_cloud::addresses::{
        allocate_auto, auto_assign_public_ip, public_hostname, reclaim_orphans,
        reclaim_orphans_before, release_instance_addresses, set_public_ip,
    };
    use mallee_cloud::config::{PublicCidr, PublicRange};
    use mallee_cloud::ids;
    use mallee_cloud::instances::model::{Instance, InstanceDetails};
    use mallee_cloud::testkit::{InstanceBuilder, TestCloud, ZONE};
    use mallee_store::{InstanceRecord, Reservation};

    use super::*;

    struct Fixture {
        cloud: TestCloud,
        owner: Principal,
    }

    async fn fixture() -> Fixture {
        let cloud = TestCloud::with_config(|config| {
            let cidr: PublicCidr = "198.18.7.0/29".parse().expect("range");
            config.public_ranges = vec![PublicRange {
                zone: ZONE.into(),
                cidr,
            }];
        })
        .await;
        let owner = cloud.principal("owner").await;
        Fixture { cloud, owner }
    }

    fn details(id: &str, account: &str, ip: &str, public: Option<&str>) -> String {
        let details = InstanceBuilder::new(id, account)
            .address(ip, "02:00:00:00:00:01")
            .public_ip(public)
            .details();
        serde_json::to_string(&details).expect("serialize")
    }

    fn decode(record: InstanceRecord) -> Result<Instance, mallee_cloud::CloudError> {
        Instance::from_record(record)
    }

    /// Launches instances the way RunInstances is meant to: public IPs
    /// recorded first, then the reservation with them in the details.
    async fn launch(f: &Fixture, ids: &[&str]) -> Vec<Option<String>> {
        let account = &f.owner.account.account_id;
        let pairs: Vec<(String, String)> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| ((*id).to_owned(), format!("172.31.0.{}", n + 4)))
            .collect();
        let public = allocate_auto(&f.cloud, account, ZONE, &pairs)
            .await
            .expect("auto");
        let reservation = Reservation {
            reservation_id: format!("r-{}", &ids[0][2..]),
            account_id: account.clone(),
            client_token: None,
            request_hash: "h".into(),
            created_at: 1,
        };
        let records: Vec<InstanceRecord> = pairs
            .iter()
            .zip(&public)
            .enumerate()
            .map(|(n, ((id, ip), public))| InstanceRecord {
                instance_id: id.clone(),
                reservation_id: reservation.reservation_id.clone(),
                account_id: account.clone(),
                launch_index: i64::try_from(n).expect("index"),
                node_id: "node".into(),
                zone: ZONE.into(),
                network_id: "net".into(),
                private_ip: ip.clone(),
                mac: format!("02:00:00:00:01:{n:02x}"),
                state: "pending".into(),
                desired: "running".into(),
                generation: 1,
                revision: 0,
                details: details(id, account, ip, public.as_deref()),
                created_at: 1,
                updated_at: 1,
                terminated_at: None,
            })
            .collect();
        f.cloud
            .store
            .create_reservation(&reservation, &records, &[])
            .await
            .expect("reservation");
        public
    }

    async fn public_of(f: &Fixture, id: &str) -> (Option<String>, i64) {
        let instance = decode(
            f.cloud
                .store
                .instance(id)
                .await
                .expect("instance")
                .expect("exists"),
        )
        .expect("decode");
        let d = &instance.details.spec;
        assert_eq!(
            d.nics[0].public_ip, d.metadata.public_ipv4,
            "nic and metadata agree"
        );
        assert_eq!(
            d.metadata.public_hostname,
            d.metadata
                .public_ipv4
                .as_deref()
                .map(|ip| public_hostname(ip, "mallee-1.compute.mallee"))
        );
        (d.metadata.public_ipv4.clone(), instance.record.generation)
    }

    async fn run(f: &Fixture, action: &str, pairs: &[(&str, &str)]) -> Result<String, Ec2Error> {
        let params = QueryParams::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        )
        .expect("params");
        let ctx = Ec2Context {
            cloud: &f.cloud.cloud,
            principal: &f.owner,
            request_id: "req",
            namespace: super::super::namespace_for(None),
        };
        let parsed = super::super::Ec2Action::parse(action, &params)?;
        super::super::execute(&ctx, parsed, false).await
    }

    fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
        let open = format!("<{tag}>");
        let start = xml.find(&open).expect("tag present") + open.len();
        let end = xml[start..].find('<').expect("closing tag") + start;
        &xml[start..end]
    }

    #[test]
    fn public_ip_goes_to_nic_and_metadata() {
        let mut d: InstanceDetails =
            serde_json::from_str(&details("i-1", "1", "172.31.0.4", None)).expect("decode");
        assert!(set_public_ip(
            &mut d,
            Some("198.18.0.5"),
            "mallee-1.compute.mallee"
        ));
        assert_eq!(d.spec.nics[0].public_ip.as_deref(), Some("198.18.0.5"));
        assert_eq!(
            d.spec.metadata.public_hostname.as_deref(),
            Some("ec2-198-18-0-5.mallee-1.compute.mallee")
        );
        assert!(!set_public_ip(
            &mut d,
            Some("198.18.0.5"),
            "mallee-1.compute.mallee"
        ));
        assert!(set_public_ip(&mut d, None, "mallee-1.compute.mallee"));
        assert_eq!(d.spec.metadata.public_ipv4, None);
        assert_eq!(d.spec.nics[0].public_ip, None);
    }

    #[tokio::test]
    async fn elastic_ips_displace_and_give_back_auto_assigned_ones() {
        let f = fixture().await;
        let ids = ["i-0000000000000000a", "i-0000000000000000b"];
        let auto = launch(&f, &ids).await;
        let (auto_a, auto_b) = (
            auto[0].clone().expect("auto a"),
            auto[1].clone().expect("auto b"),
        );
        assert_ne!(auto_a, auto_b);
        assert_eq!(public_of(&f, ids[0]).await, (Some(auto_a.clone()), 1));

        // Auto-assigned addresses are not listed.
        let listed = run(&f, "DescribeAddresses", &[]).await.expect("describe");
        assert!(!listed.contains("<item>"), "{listed}");

        let allocated = run(&f, "AllocateAddress", &[]).await.expect("allocate");
        let (eip, alloc) = (
            between(&allocated, "publicIp").to_owned(),
            between(&allocated, "allocationId").to_owned(),
        );
        assert!(eip != auto_a && eip != auto_b && eip != "198.18.7.1");

        // Associating releases a's auto-assigned address.
        run(
            &f,
            "AssociateAddress",
            &[("AllocationId", &alloc), ("InstanceId", ids[0])],
        )
        .await
        .expect("associate");
        assert_eq!(public_of(&f, ids[0]).await, (Some(eip.clone()), 2));
        assert_eq!(
            f.cloud
                .store
                .address_by_public_ip(&auto_a)
                .await
                .expect("lookup"),
            None
        );

        // Moving it to b gives a an auto-assigned address again (its old
        // one, still free) and takes b's.
        run(
            &f,
            "AssociateAddress",
            &[
                ("AllocationId", &alloc),
                ("InstanceId", ids[1]),
                ("AllowReassociation", "true"),
            ],
        )
        .await
        .expect("reassociate");
        assert_eq!(public_of(&f, ids[0]).await, (Some(auto_a.clone()), 3));
        assert_eq!(public_of(&f, ids[1]).await, (Some(eip.clone()), 2));
        let held = f
            .cloud
            .store
            .address_by_public_ip(&auto_b)
            .await
            .expect("lookup");
        assert_eq!(held, None, "b's auto-assigned address was not released");

        // Disassociating gives b its auto-assigned address back.
        run(&f, "DisassociateAddress", &[("PublicIp", &eip)])
            .await
            .expect("disassociate");
        assert_eq!(public_of(&f, ids[1]).await, (Some(auto_b.clone()), 3));
        let eip_record = f
            .cloud
            .store
            .address(&alloc)
            .await
            .expect("get")
            .expect("kept");
        assert_eq!(eip_record.instance_id, None);

        // Termination: auto-assigned addresses go back to the pool, elastic
        // IPs stay allocated.
        run(
            &f,
            "AssociateAddress",
            &[("AllocationId", &alloc), ("InstanceId", ids[0])],
        )
        .await
        .expect("associate");
        for id in ids {
            release_instance_addresses(&f.cloud, id)
                .await
                .expect("release");
            release_instance_addresses(&f.cloud, id)
                .await
                .expect("idempotent");
        }
        let left = f.cloud.store.addresses(None).await.expect("list");
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].allocation_id, alloc);
        assert_eq!(left[0].instance_id, None);
        run(&f, "ReleaseAddress", &[("AllocationId", &alloc)])
            .await
            .expect("release");
        assert!(
            f.cloud
                .store
                .addresses(None)
                .await
                .expect("list")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn auto_assignment_stops_at_the_end_of_the_range_and_orphans_return() {
        let f = fixture().await;
        let account = f.owner.account.account_id.clone();
        let pairs: Vec<(String, String)> = (0..7)
            .map(|n| {
                (
                    format!("i-00000000000000{n:03}"),
                    format!("172.31.0.{}", n + 4),
                )
            })
            .collect();
        let got = allocate_auto(&f.cloud, &account, ZONE, &pairs)
            .await
            .expect("auto");
        let given: Vec<&String> = got.iter().flatten().collect();
        assert_eq!(given.len(), 5, "a /29 has five addresses to give");
        assert!(got[5].is_none() && got[6].is_none());
        let err = run(&f, "AllocateAddress", &[])
            .await
            .expect_err("exhausted");
        assert_eq!(
            crate::error::AwsError::code(&err),
            "InsufficientAddressCapacity"
        );
        assert_eq!(
            crate::error::AwsError::status(&err),
            http::StatusCode::INTERNAL_SERVER_ERROR
        );

        // None of these instances was ever stored: they are orphans once
        // old enough, and only then.
        assert_eq!(reclaim_orphans(&f.cloud).await.expect("reclaim"), 0);
        assert_eq!(
            reclaim_orphans_before(&f.cloud, ids::now_millis() + 1)
                .await
                .expect("reclaim"),
            5
        );
        assert!(
            f.cloud
                .store
                .addresses(None)
                .await
                .expect("list")
                .is_empty()
        );

        // An existing instance without a public address can get one.
        let ids = ["i-0000000000000000c"];
        launch(&f, &ids).await;
        release_instance_addresses(&f.cloud, ids[0])
            .await
            .expect("release");
        let ip = auto_assign_public_ip(&f.cloud, ids[0])
            .await
            .expect("assign")
            .expect("free address");
        assert_eq!(public_of(&f, ids[0]).await.0.as_deref(), Some(ip.as_str()));
        assert_eq!(
            auto_assign_public_ip(&f.cloud, ids[0])
                .await
                .expect("again"),
            Some(ip)
        );
    }

    #[test]
    fn address_parameters() {
        let parse = |pairs: &[(&str, &str)]| {
            parse_address_ref(
                &QueryParams::from_pairs(
                    pairs
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<Vec<_>>(),
                )
                .expect("params"),
            )
        };
        assert_eq!(
            parse(&[("PublicIp", "198.18.0.5")]).expect("ip"),
            AddressRef::PublicIp("198.18.0.5".into())
        );
        assert!(parse(&[("AllocationId", "eipalloc-0123456789abcdef0")]).is_ok());
        assert!(parse(&[("AllocationId", "eipalloc-zz")]).is_err());
        assert!(parse(&[("PublicIp", "not-an-ip")]).is_err());
        assert!(parse(&[]).is_err());
        assert!(
            parse(&[
                ("PublicIp", "198.18.0.5"),
                ("AllocationId", "eipalloc-0123456789abcdef0")
            ])
            .is_err()
        );
    }
}
