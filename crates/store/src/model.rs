//! The records the store keeps. Plain data: validation and id generation
//! happen in the layers above.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch; every timestamp in the store.
pub type UnixMillis = i64;

/// A tenant: owns resources and has users with access keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// 12-digit account number.
    pub account_id: String,
    /// Unique account name (Eucalyptus' account alias).
    pub name: String,
    /// Administrators see cloud-wide information (for example zone capacity).
    pub is_admin: bool,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Changes with every change to the account's IAM identities and
    /// policies (see [`crate::IdentityIndex`]).
    #[serde(default)]
    pub iam_generation: i64,
}

/// A user inside an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Owning account.
    pub account_id: String,
    /// Name, unique in the account.
    pub user_name: String,
    /// Globally unique id (AWS's `AIDA…`).
    pub user_id: String,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// An access key id and its secret, for signing requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// `AKIA…` id.
    pub access_key_id: String,
    /// The secret used to verify signatures.
    pub secret_access_key: String,
    /// Owning account.
    pub account_id: String,
    /// Owning user.
    pub user_name: String,
    /// Inactive keys are refused.
    pub active: bool,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// Owner and type of a resource id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// AWS-style id (`key-…`, `i-…`).
    pub resource_id: String,
    /// Owning account.
    pub account_id: String,
    /// AWS resource type name as DescribeTags reports it (`key-pair`, `instance`, …).
    pub resource_type: String,
}

/// A tag key and value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagPair {
    /// Tag key.
    pub key: String,
    /// Tag value (may be empty).
    pub value: String,
}

/// Which tag DeleteTags removes: a key, or a key only with a given value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagSelector {
    /// Tag key.
    pub key: String,
    /// When set, the tag is removed only if its value is this.
    pub value: Option<String>,
}

/// A tag on a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Tagged resource.
    pub resource_id: String,
    /// Its type.
    pub resource_type: String,
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

/// Which tags [`crate::Store::tags_matching`] returns: every condition
/// holds, each by any of its patterns. A pattern is AWS's filter syntax:
/// `*` any run of characters, `?` one, `\` makes the next one literal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagQuery {
    /// Conditions, all of which hold.
    pub conditions: Vec<TagCondition>,
    /// Only tags after this (resource id, key), in that order.
    pub after: Option<(String, String)>,
    /// At most this many tags.
    pub limit: Option<usize>,
}

/// One condition of a [`TagQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagCondition {
    /// The tag's resource id matches a pattern.
    ResourceId(Vec<String>),
    /// The tag's resource type matches a pattern.
    ResourceType(Vec<String>),
    /// The tag's key matches a pattern.
    Key(Vec<String>),
    /// The tag's value matches a pattern.
    Value(Vec<String>),
    /// The tag's resource has the tag `key` with a value matching a
    /// pattern.
    ResourceTag {
        /// The other tag's key (exact).
        key: String,
        /// Patterns of its value.
        values: Vec<String>,
    },
}

/// Whether `text` matches an AWS filter pattern: `*` any run of
/// characters, `?` exactly one, `\\` makes the next character literal. The
/// meaning of every pattern in a store query, whatever the backend turns
/// it into.
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum Token {
        Char(char),
        One,
        Any,
    }
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '\\' => Token::Char(chars.next().unwrap_or('\\')),
            '*' => Token::Any,
            '?' => Token::One,
            c => Token::Char(c),
        });
    }
    let text: Vec<char> = text.chars().collect();
    // One backtrack point: linear in practice, never exponential.
    let (mut t, mut p) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Token::One) => {
                p += 1;
                t += 1;
            }
            Some(Token::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|t| *t == Token::Any)
}

/// The text a pattern stands for when it has no wildcard (escapes
/// resolved), so a backend can look it up exactly (by index); `None` when
/// it has `*` or `?`.
pub fn pattern_literal(pattern: &str) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().unwrap_or('\\')),
            '*' | '?' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// A column of a key pair that [`KeyPairQuery`] can select on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPairField {
    /// `key_pair_id`.
    KeyPairId,
    /// `name`.
    Name,
    /// `fingerprint`.
    Fingerprint,
    /// `key_type`.
    KeyType,
}

impl KeyPairField {
    /// This field of `key_pair`.
    pub fn value_of(self, key_pair: &KeyPair) -> &str {
        match self {
            Self::KeyPairId => &key_pair.key_pair_id,
            Self::Name => &key_pair.name,
            Self::Fingerprint => &key_pair.fingerprint,
            Self::KeyType => &key_pair.key_type,
        }
    }
}

/// One condition of a [`KeyPairQuery`]; patterns as in [`TagQuery`] (a
/// condition holds when any of its patterns matches, never when it has
/// none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPairCondition {
    /// A column matches a pattern.
    Field {
        /// Which column.
        field: KeyPairField,
        /// Its patterns.
        patterns: Vec<String>,
    },
    /// The key pair has the tag `key` with a value matching a pattern.
    Tag {
        /// The key (exact).
        key: String,
        /// Patterns of its value.
        values: Vec<String>,
    },
    /// The key pair has a tag whose key matches a pattern.
    TagKey(Vec<String>),
    /// The key pair has a tag whose value matches a pattern.
    TagValue(Vec<String>),
}

/// Which key pairs of an account [`crate::Store::key_pairs_matching`]
/// returns: those whose name is one of `names` (when not empty), whose id
/// is one of `ids` (when not empty) and for which every condition holds,
/// ordered by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPairQuery {
    /// Only these names (exact), when not empty.
    pub names: Vec<String>,
    /// Only these ids (exact), when not empty.
    pub ids: Vec<String>,
    /// Conditions, all of which hold.
    pub conditions: Vec<KeyPairCondition>,
}

impl KeyPairQuery {
    /// Whether `key_pair`, with its `tags`, is selected: the meaning every
    /// backend's query must have.
    pub fn selects(&self, key_pair: &KeyPair, tags: &[Tag]) -> bool {
        let any =
            |patterns: &[String], value: &str| patterns.iter().any(|p| pattern_matches(p, value));
        (self.names.is_empty() || self.names.contains(&key_pair.name))
            && (self.ids.is_empty() || self.ids.contains(&key_pair.key_pair_id))
            && self.conditions.iter().all(|c| match c {
                KeyPairCondition::Field { field, patterns } => {
                    any(patterns, field.value_of(key_pair))
                }
                KeyPairCondition::Tag { key, values } => {
                    tags.iter().any(|t| &t.key == key && any(values, &t.value))
                }
                KeyPairCondition::TagKey(p) => tags.iter().any(|t| any(p, &t.key)),
                KeyPairCondition::TagValue(p) => tags.iter().any(|t| any(p, &t.value)),
            })
    }
}

/// An SSH key pair; only the public half is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPair {
    /// `key-…` id.
    pub key_pair_id: String,
    /// Owning account.
    pub account_id: String,
    /// Name, unique in the account.
    pub name: String,
    /// `rsa` or `ed25519`.
    pub key_type: String,
    /// Fingerprint as AWS computes it.
    pub fingerprint: String,
    /// OpenSSH public key line.
    pub public_key: String,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// A node agent and the capacity it last reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Node id.
    pub node_id: String,
    /// Availability zone the node serves.
    pub zone: String,
    /// Where the controller reaches its agent.
    pub address: String,
    /// Total and free virtual cores.
    pub cores_max: i64,
    /// Free cores.
    pub cores_free: i64,
    /// Total memory for instances.
    pub memory_mib_max: i64,
    /// Free memory.
    pub memory_mib_free: i64,
    /// Total instance disk.
    pub disk_gib_max: i64,
    /// Free disk.
    pub disk_gib_free: i64,
    /// Time of the last report (registration or heartbeat).
    pub updated_at: UnixMillis,
    /// The agent's mallee release, as it last registered.
    pub version: String,
    /// The accelerator it uses (`kvm`, `tcg`) and why, as it last
    /// registered.
    pub accel: String,
    /// Its address on the network between nodes (the VXLAN underlay);
    /// `None`: it takes no part in the overlay.
    #[serde(default)]
    pub underlay_ip: Option<String>,
    /// Set by an administrator for maintenance: nothing new is placed on
    /// the node (what it runs stays). Registration and heartbeats leave it
    /// as it is.
    #[serde(default)]
    pub disabled: bool,
    /// `compute` (runs instances) or `storage` (holds the zone's volumes),
    /// as it last registered.
    #[serde(default = "compute_role")]
    pub role: String,
}

fn compute_role() -> String {
    "compute".into()
}
