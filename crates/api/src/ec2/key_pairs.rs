//! CreateKeyPair, ImportKeyPair, DescribeKeyPairs and DeleteKeyPair on the
//! wire: parameters in, XML out. Generating, importing and storing keys
//! (the private key is returned once and never stored) is
//! `mallee_cloud::key_pairs`.

use base64::Engine;
use mallee_cloud::key_pairs::{self, ImportedKey, NewKeyPair, validate_key_name};
use mallee_keys::{KeyFormat, KeyType};
use mallee_store::{KeyPair, KeyPairCondition, KeyPairField, KeyPairQuery};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::query::QueryParams;

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error, iso8601};

fn required_key_name(params: &QueryParams) -> Result<String, Ec2Error> {
    let name = params.required_non_empty("KeyName")?;
    validate_key_name(name)?;
    Ok(name.to_owned())
}

/// CreateKeyPair input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateKeyPair(NewKeyPair);

impl CreateKeyPair {
    /// Reads `KeyName`, `KeyType`, `KeyFormat`, `TagSpecification.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let key_type = match params.get("KeyType") {
            None => KeyType::Rsa,
            Some(v) => v.parse().map_err(|_| {
                Ec2Error::InvalidParameterValue(format!(
                    "Value ({v}) for parameter KeyType is invalid. Valid values: rsa, ed25519"
                ))
            })?,
        };
        let format = match params.get("KeyFormat") {
            None => KeyFormat::Pem,
            Some(v) => v.parse().map_err(|_| {
                Ec2Error::InvalidParameterValue(format!(
                    "Value ({v}) for parameter KeyFormat is invalid. Valid values: pem, ppk"
                ))
            })?,
        };
        Ok(Self(NewKeyPair {
            name: required_key_name(params)?,
            key_type,
            format,
            tags: parse_tag_specifications(params, "key-pair")?,
        }))
    }

    /// Generates and stores the key pair, answers with the private key.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let tags = self.0.tags.clone();
        let generated = key_pairs::create(ctx.cloud, ctx.principal, self.0).await?;
        let key_pair = &generated.key_pair;
        Ok(ctx.respond("CreateKeyPair", |w| {
            w.text("keyName", &key_pair.name);
            w.text("keyFingerprint", &key_pair.fingerprint);
            w.text("keyMaterial", &generated.key_material);
            w.text("keyPairId", &key_pair.key_pair_id);
            write_tag_set(w, tags.iter().map(|t| (t.key.as_str(), t.value.as_str())));
        }))
    }
}

/// ImportKeyPair input.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportKeyPair(ImportedKey);

impl ImportKeyPair {
    /// Reads `KeyName`, `PublicKeyMaterial` (base64), `TagSpecification.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let encoded = params.required_non_empty("PublicKeyMaterial")?;
        let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
        let material = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|_| {
                Ec2Error::KeyFormat("Key is not in valid OpenSSH public key format".into())
            })?;
        Ok(Self(ImportedKey {
            name: required_key_name(params)?,
            material,
            tags: parse_tag_specifications(params, "key-pair")?,
        }))
    }

    /// Imports the public key and answers with its fingerprint.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let tags = self.0.tags.clone();
        let key_pair = key_pairs::import(ctx.cloud, ctx.principal, self.0).await?;
        Ok(ctx.respond("ImportKeyPair", |w| {
            w.text("keyName", &key_pair.name);
            w.text("keyFingerprint", &key_pair.fingerprint);
            w.text("keyPairId", &key_pair.key_pair_id);
            write_tag_set(w, tags.iter().map(|t| (t.key.as_str(), t.value.as_str())));
        }))
    }
}

struct KeyPairView<'a> {
    key_pair: &'a KeyPair,
    tags: &'a [(String, String)],
}

impl Filterable for KeyPairView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let kp = self.key_pair;
        Some(vec![match name {
            "key-pair-id" => kp.key_pair_id.clone(),
            "key-name" => kp.name.clone(),
            "fingerprint" => kp.fingerprint.clone(),
            "key-type" => kp.key_type.clone(),
            _ => return None,
        }])
    }
    fn tags(&self) -> &[(String, String)] {
        self.tags
    }
    fn taggable(&self) -> bool {
        true
    }
}

/// The store condition with the meaning `filter` has for DescribeKeyPairs
/// (`KeyPairView`'s values); `parse` admitted only names that have one.
fn condition(filter: &Filter) -> KeyPairCondition {
    let patterns = filter.values.clone();
    if let Some(key) = filter.name.strip_prefix("tag:") {
        return KeyPairCondition::Tag {
            key: key.to_owned(),
            values: patterns,
        };
    }
    let field = match filter.name.as_str() {
        "tag-key" => return KeyPairCondition::TagKey(patterns),
        "tag-value" => return KeyPairCondition::TagValue(patterns),
        "key-pair-id" => KeyPairField::KeyPairId,
        "key-name" => KeyPairField::Name,
        "fingerprint" => KeyPairField::Fingerprint,
        // The only name left, as `parse` checked.
        _ => KeyPairField::KeyType,
    };
    KeyPairCondition::Field { field, patterns }
}

/// DescribeKeyPairs input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeKeyPairs {
    names: Vec<String>,
    ids: Vec<String>,
    filters: Vec<Filter>,
    include_public_key: bool,
}

impl DescribeKeyPairs {
    /// Reads `KeyName.N`, `KeyPairId.N`, `Filter.N`, `IncludePublicKey`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(
            &filters,
            &["key-pair-id", "key-name", "fingerprint", "key-type"],
            true,
        )?;
        Ok(Self {
            names: params.list("KeyName")?,
            ids: params.list("KeyPairId")?,
            filters,
            include_public_key: params.bool("IncludePublicKey")?.unwrap_or(false),
        })
    }

    /// Lists the caller's key pairs; a named one that is missing is an
    /// error. The store applies the names, ids and filters, so only the
    /// key pairs returned (and their tags) are read.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let query = KeyPairQuery {
            names: self.names.clone(),
            ids: self.ids.clone(),
            conditions: self.filters.iter().map(condition).collect(),
        };
        let key_pairs = key_pairs::list(ctx.cloud, ctx.principal, &query).await?;
        let ids: Vec<String> = key_pairs.iter().map(|k| k.key_pair_id.clone()).collect();
        let tags = TagsByResource::load_for(ctx, &ids).await?;
        let selected: Vec<KeyPairView<'_>> = key_pairs
            .iter()
            .map(|k| KeyPairView {
                key_pair: k,
                tags: tags.of(&k.key_pair_id),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        Ok(ctx.respond("DescribeKeyPairs", |w| {
            w.items("keySet", selected, |w, view| {
                let kp = view.key_pair;
                w.text("keyPairId", &kp.key_pair_id);
                w.text("keyType", &kp.key_type);
                write_tag_set(w, view.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                w.text("keyName", &kp.name);
                w.text("keyFingerprint", &kp.fingerprint);
                if self.include_public_key {
                    w.text("publicKey", format!("{} {}", kp.public_key, kp.name));
                }
                w.text("createTime", iso8601(kp.created_at));
            })
        }))
    }
}

/// DeleteKeyPair input: by name or by id.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteKeyPair {
    name: Option<String>,
    id: Option<String>,
}

impl DeleteKeyPair {
    /// Reads `KeyName` or `KeyPairId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let name = params
            .get("KeyName")
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let id = params
            .get("KeyPairId")
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        if name.is_none() && id.is_none() {
            return Err(Ec2Error::Query(crate::query::QueryError::Missing(
                "KeyName".into(),
            )));
        }
        Ok(Self { name, id })
    }

    /// Deletes the key pair; deleting one that does not exist succeeds, as
    /// in EC2.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let deleted = key_pairs::delete(
            ctx.cloud,
            ctx.principal,
            self.name.as_deref(),
            self.id.as_deref(),
        )
        .await?;
        Ok(ctx.respond("DeleteKeyPair", |w| {
            w.text("return", "true");
            w.opt_text("keyPairId", deleted.map(|k| k.key_pair_id));
        }))
    }
}
