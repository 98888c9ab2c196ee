//! CreateKeyPair, ImportKeyPair, DescribeKeyPairs and DeleteKeyPair. Private
//! keys are returned once and never stored; the public half is kept for the
//! metadata service.

use base64::Engine;
use mallee_keys::{KeyFormat, KeyType};
use mallee_store::{KeyPair, StoreError, TagPair};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::query::QueryParams;
use mallee_cloud::ids;

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error, iso8601};

/// AWS: "Up to 255 ASCII characters".
fn validate_key_name(name: &str) -> Result<(), Ec2Error> {
    if name.len() > 255 || !name.is_ascii() || name.chars().any(|c| c.is_ascii_control()) {
        return Err(Ec2Error::InvalidParameterValue(format!(
            "Value ({name}) for parameter keyName is invalid. Key names must be at most 255 printable ASCII characters."
        )));
    }
    Ok(())
}

fn required_key_name(params: &QueryParams) -> Result<String, Ec2Error> {
    let name = params.required_non_empty("KeyName")?;
    validate_key_name(name)?;
    Ok(name.to_owned())
}

/// CreateKeyPair input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateKeyPair {
    name: String,
    key_type: KeyType,
    format: KeyFormat,
    tags: Vec<TagPair>,
}

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
        Ok(Self {
            name: required_key_name(params)?,
            key_type,
            format,
            tags: parse_tag_specifications(params, "key-pair")?,
        })
    }

    /// Generates the key (off the async threads: RSA generation is slow),
    /// stores the public half with its tags, returns the private key.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let (key_type, format, comment) = (self.key_type, self.format, self.name.clone());
        let created =
            tokio::task::spawn_blocking(move || mallee_keys::create(key_type, format, &comment))
                .await
                .map_err(|e| Ec2Error::Internal(e.to_string()))?
                .map_err(|e| Ec2Error::Internal(e.to_string()))?;
        let key_pair = KeyPair {
            key_pair_id: ids::resource_id("key"),
            account_id: ctx.principal.account.account_id.clone(),
            name: self.name,
            key_type: self.key_type.as_str().to_owned(),
            fingerprint: created.fingerprint,
            public_key: created.public_key_openssh,
            created_at: ids::now_millis(),
        };
        store_key_pair(ctx, &key_pair, &self.tags).await?;
        Ok(ctx.respond("CreateKeyPair", |w| {
            w.text("keyName", &key_pair.name);
            w.text("keyFingerprint", &key_pair.fingerprint);
            w.text("keyMaterial", &created.key_material);
            w.text("keyPairId", &key_pair.key_pair_id);
            write_tag_set(
                w,
                self.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
            );
        }))
    }
}

async fn store_key_pair(
    ctx: &Ec2Context<'_>,
    key_pair: &KeyPair,
    tags: &[TagPair],
) -> Result<(), Ec2Error> {
    match ctx.cloud.store.create_key_pair(key_pair, tags).await {
        Err(StoreError::Conflict(_)) => Err(Ec2Error::KeyPairDuplicate(key_pair.name.clone())),
        other => Ok(other?),
    }
}

/// ImportKeyPair input.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportKeyPair {
    name: String,
    material: Vec<u8>,
    tags: Vec<TagPair>,
}

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
        Ok(Self {
            name: required_key_name(params)?,
            material,
            tags: parse_tag_specifications(params, "key-pair")?,
        })
    }

    /// Validates the public key, computes its fingerprint and stores it.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let imported = mallee_keys::import(&self.material).map_err(|e| match e.aws_code() {
            "InvalidKey.Format" => Ec2Error::KeyFormat(e.to_string()),
            _ => Ec2Error::InvalidParameterValue(e.to_string()),
        })?;
        let key_pair = KeyPair {
            key_pair_id: ids::resource_id("key"),
            account_id: ctx.principal.account.account_id.clone(),
            name: self.name,
            key_type: imported.key_type.as_str().to_owned(),
            fingerprint: imported.fingerprint,
            public_key: imported.public_key_openssh,
            created_at: ids::now_millis(),
        };
        store_key_pair(ctx, &key_pair, &self.tags).await?;
        Ok(ctx.respond("ImportKeyPair", |w| {
            w.text("keyName", &key_pair.name);
            w.text("keyFingerprint", &key_pair.fingerprint);
            w.text("keyPairId", &key_pair.key_pair_id);
            write_tag_set(
                w,
                self.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
            );
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

    /// Lists the caller's key pairs; a named one that is missing is an error.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        let key_pairs = ctx.cloud.store.key_pairs(account).await?;
        if let Some(missing) = self
            .names
            .iter()
            .find(|n| !key_pairs.iter().any(|k| &k.name == *n))
        {
            return Err(Ec2Error::KeyPairNotFound(missing.clone()));
        }
        if let Some(missing) = self
            .ids
            .iter()
            .find(|i| !key_pairs.iter().any(|k| &k.key_pair_id == *i))
        {
            return Err(Ec2Error::ResourceNotFound {
                code: "InvalidKeyPair.NotFound",
                id: missing.clone(),
            });
        }
        let tags = TagsByResource::load(ctx, account).await?;
        let selected: Vec<KeyPairView<'_>> = key_pairs
            .iter()
            .filter(|k| self.names.is_empty() || self.names.contains(&k.name))
            .filter(|k| self.ids.is_empty() || self.ids.contains(&k.key_pair_id))
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
        let account = &ctx.principal.account.account_id;
        let key_pairs = ctx.cloud.store.key_pairs(account).await?;
        let target = key_pairs.iter().find(|k| {
            self.id.as_ref().is_none_or(|id| &k.key_pair_id == id)
                && self.name.as_ref().is_none_or(|n| &k.name == n)
        });
        if let Some(key_pair) = target {
            ctx.cloud
                .store
                .delete_key_pair(account, &key_pair.key_pair_id)
                .await?;
        }
        Ok(ctx.respond("DeleteKeyPair", |w| {
            w.text("return", "true");
            w.opt_text("keyPairId", target.map(|k| &k.key_pair_id));
        }))
    }
}
