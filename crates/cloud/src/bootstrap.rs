//! First start: creates the administrator account (`eucalyptus`) with an
//! access key, and on every start writes ready-to-use credential files (AWS
//! CLI profile, `eucarc`, boto3 environment, JSON) for it. Idempotent: a
//! crash at any point is finished by the next start.

use std::io::Write;
use std::path::{Path, PathBuf};

use mallee_store::{AccessKey, Account, Store};
use serde::Serialize;

use crate::Config;
use crate::accounts::{self, AdminError};

/// Name of the administrator account (as in Eucalyptus).
pub const ADMIN_ACCOUNT: &str = "eucalyptus";
const ADMIN_KEY_SETTING: &str = "bootstrap.admin_access_key_id";

/// Errors during bootstrap.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Creating the account or key failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] mallee_store::StoreError),
    /// Writing a credential file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The bundling or the administrator's signing certificate could not
    /// be made.
    #[error("certificates: {0}")]
    Certificate(String),
}

/// The cloud's image-bundling certificate, in the credentials directory.
pub const CLOUD_CERT_FILE: &str = "cloud-cert.pem";
/// The administrator's signing certificate and its key.
pub const ADMIN_CERT_FILE: &str = "admin-cert.pem";
/// The administrator's signing key.
pub const ADMIN_KEY_FILE: &str = "admin-pk.pem";

/// The administrator's credentials, as written to `credentials/admin.json`.
#[derive(Debug, Clone, Serialize)]
pub struct AdminCredentials {
    /// Account number.
    pub account_id: String,
    /// Account name.
    pub account_name: String,
    /// User name.
    pub user_name: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret key.
    pub secret_access_key: String,
    /// API endpoint.
    pub endpoint: String,
    /// Region name.
    pub region: String,
}

/// What bootstrap did.
#[derive(Debug, Clone)]
pub struct Bootstrapped {
    /// Whether the admin account was created by this start.
    pub first_start: bool,
    /// The credentials.
    pub credentials: AdminCredentials,
    /// Where the files are.
    pub credentials_dir: PathBuf,
}

/// The setting holding the region's name, fixed at the first start.
const REGION_SETTING: &str = "cloud.region";
/// The setting holding the domain of public DNS names, fixed at the first
/// start (names already handed out keep working).
const PUBLIC_DOMAIN_SETTING: &str = "cloud.public_domain";
/// The setting holding the zones' names (comma-separated), fixed at the
/// first start.
const ZONES_SETTING: &str = "cloud.zones";

/// The region and zone names recorded at the first start (`None` before
/// it). Admin commands on a data directory use these, not the defaults.
pub async fn recorded_names(
    store: &dyn Store,
) -> Result<Option<(String, Vec<String>)>, mallee_store::StoreError> {
    let region = store.setting(REGION_SETTING).await?;
    let zones = store.setting(ZONES_SETTING).await?;
    Ok(region
        .zip(zones)
        .map(|(region, zones)| (region, zones.split(',').map(str::to_owned).collect())))
}

/// Fixes the domain of public DNS names: the first start records the
/// configured one (or the region's default, for clouds started before the
/// setting existed); later starts keep it, because instances, addresses
/// and PTR records already carry names in it. Returns whether it differed
/// from the configuration.
async fn fix_public_domain(store: &dyn Store, config: &mut Config) -> Result<bool, BootstrapError> {
    let Some(recorded) = store.setting(PUBLIC_DOMAIN_SETTING).await? else {
        // The region recorded before this setting existed decides the
        // default domain such clouds have been using.
        let default = match recorded_names(store).await? {
            Some((region, _)) if config.public_domain.is_none() => {
                format!("{region}.compute.mallee")
            }
            _ => config.public_domain(),
        };
        store.set_setting(PUBLIC_DOMAIN_SETTING, &default).await?;
        config.public_domain = Some(default);
        return Ok(false);
    };
    let differs = config
        .public_domain
        .as_ref()
        .is_some_and(|d| *d != recorded);
    if differs {
        tracing::warn!(
            domain = %recorded,
            configured = %config.public_domain(),
            "the public DNS domain is fixed at the first start: keeping the recorded one"
        );
    }
    config.public_domain = Some(recorded);
    Ok(differs)
}

/// Fixes the region and zone names: at the first start the configured
/// ones are recorded; at every later start the recorded ones replace the
/// configured ones (a zone renamed later would orphan its nodes, volumes
/// and addresses), and settings keyed by a configured zone move to the
/// recorded zone in the same position. Returns whether names differed from
/// the configuration.
pub async fn fix_names(store: &dyn Store, config: &mut Config) -> Result<bool, BootstrapError> {
    let domain_changed = fix_public_domain(store, config).await?;
    let Some((region, zones)) = recorded_names(store).await? else {
        store
            .set_setting(ZONES_SETTING, &config.zones.join(","))
            .await?;
        store.set_setting(REGION_SETTING, &config.region).await?;
        return Ok(domain_changed);
    };
    if region == config.region && zones == config.zones {
        return Ok(domain_changed);
    }
    tracing::warn!(
        region = %region,
        zones = %zones.join(","),
        configured_region = %config.region,
        configured_zones = %config.zones.join(","),
        "region and zone names are fixed at the first start: keeping the recorded ones"
    );
    let renamed = |zone: &str| {
        config
            .zones
            .iter()
            .position(|z| z == zone)
            .and_then(|i| zones.get(i))
            .cloned()
    };
    for range in &mut config.public_ranges {
        if let Some(fixed) = renamed(&range.zone) {
            range.zone = fixed;
        }
    }
    config.placement = std::mem::take(&mut config.placement)
        .into_iter()
        .filter_map(|(zone, policy)| renamed(&zone).map(|z| (z, policy)))
        .collect();
    config.region = region;
    config.zones = zones;
    Ok(true)
}

/// Ensures the admin account and key exist and writes the credential files.
pub async fn bootstrap(store: &dyn Store, config: &Config) -> Result<Bootstrapped, BootstrapError> {
    let (account, key, first_start) = ensure_admin(store).await?;
    let credentials = AdminCredentials {
        account_id: account.account_id,
        account_name: account.name,
        user_name: key.user_name.clone(),
        access_key_id: key.access_key_id,
        secret_access_key: key.secret_access_key,
        endpoint: config.endpoint(),
        region: config.region.clone(),
    };
    let dir = config.credentials_dir();
    write_credential_files(&dir, &credentials)?;
    write_certificates(store, &dir, &credentials).await?;
    Ok(Bootstrapped {
        first_start,
        credentials,
        credentials_dir: dir,
    })
}

async fn ensure_admin(store: &dyn Store) -> Result<(Account, AccessKey, bool), BootstrapError> {
    if let Some(key_id) = store.setting(ADMIN_KEY_SETTING).await?
        && let Some((key, account)) = store.access_key(&key_id).await?
    {
        return Ok((account, key, false));
    }
    // Either a fresh store, or a previous start died half-way: reuse what it
    // made and finish.
    if store.account_by_name(ADMIN_ACCOUNT).await?.is_none() {
        match accounts::create_account(store, ADMIN_ACCOUNT, true).await {
            Ok(_) | Err(AdminError::AccountExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (key, account) = accounts::create_access_key(store, ADMIN_ACCOUNT).await?;
    store
        .set_setting(ADMIN_KEY_SETTING, &key.access_key_id)
        .await?;
    Ok((account, key, true))
}

/// Writes a file with owner-only permissions via a temporary file and a
/// rename, so a reader never sees half a file.
fn write_private(path: &Path, contents: &str) -> Result<(), BootstrapError> {
    let err = |source| BootstrapError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        file.write_all(contents.as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

/// The cloud's bundling certificate (`cloud-cert.pem`, for euca2ools'
/// `EUCALYPTUS_CERT`) and, made once, the administrator's signing
/// certificate and key (`admin-cert.pem`, `admin-pk.pem`: `EC2_CERT`,
/// `EC2_PRIVATE_KEY`), with which the administrator bundles images.
async fn write_certificates(
    store: &dyn Store,
    dir: &Path,
    c: &AdminCredentials,
) -> Result<(), BootstrapError> {
    let cloud = crate::images::bundled::cloud_certificate(store)
        .await
        .map_err(|e| BootstrapError::Certificate(e.to_string()))?;
    write_private(&dir.join(CLOUD_CERT_FILE), &cloud.cert_pem)?;
    if dir.join(ADMIN_CERT_FILE).exists() && dir.join(ADMIN_KEY_FILE).exists() {
        return Ok(());
    }
    let (cert, key_pem) = crate::identity::signing::create(store, &c.account_id, &c.user_name)
        .await
        .map_err(|e| BootstrapError::Certificate(e.to_string()))?;
    write_private(&dir.join(ADMIN_KEY_FILE), &key_pem)?;
    write_private(&dir.join(ADMIN_CERT_FILE), &cert.body)
}

/// The eucarc text (`dir`: the credentials directory, where the
/// certificates are).
pub fn eucarc(c: &AdminCredentials, dir: &Path) -> String {
    let e = &c.endpoint;
    let d = dir.display();
    format!(
        "# mallee credentials for {user}@{account} ({account_id})\n\
         export EC2_URL={e}/services/compute\n\
         export S3_URL={e}/\n\
         export EUARE_URL={e}/services/Euare\n\
         export TOKEN_URL={e}/services/Tokens\n\
         export AWS_ENDPOINT_URL={e}\n\
         export AWS_DEFAULT_REGION={region}\n\
         export AWS_ACCESS_KEY_ID={ak}\n\
         export AWS_SECRET_ACCESS_KEY={sk}\n\
         export EC2_ACCESS_KEY={ak}\n\
         export EC2_SECRET_KEY={sk}\n\
         export AWS_ACCESS_KEY={ak}\n\
         export AWS_SECRET_KEY={sk}\n\
         export EC2_ACCOUNT_NUMBER={account_id}\n\
         export EC2_USER_ID={account_id}\n\
         export EUCA_REGION={region}\n\
         export EUCALYPTUS_CERT={d}/{CLOUD_CERT_FILE}\n\
         export EC2_CERT={d}/{ADMIN_CERT_FILE}\n\
         export EC2_PRIVATE_KEY={d}/{ADMIN_KEY_FILE}\n",
        user = c.user_name,
        account = c.account_name,
        account_id = c.account_id,
        region = c.region,
        ak = c.access_key_id,
        sk = c.secret_access_key,
    )
}

/// The AWS CLI profile snippet (for `~/.aws/config`).
pub fn aws_profile(c: &AdminCredentials) -> String {
    format!(
        "[profile mallee]\nregion = {}\nendpoint_url = {}\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        c.region, c.endpoint, c.access_key_id, c.secret_access_key
    )
}

/// Environment variables boto3 (and awscli) read.
pub fn boto3_env(c: &AdminCredentials) -> String {
    format!(
        "AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\nAWS_DEFAULT_REGION={}\nAWS_ENDPOINT_URL={}\n",
        c.access_key_id, c.secret_access_key, c.region, c.endpoint
    )
}

fn write_credential_files(dir: &Path, c: &AdminCredentials) -> Result<(), BootstrapError> {
    std::fs::create_dir_all(dir).map_err(|source| BootstrapError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let json = serde_json::to_string_pretty(c).unwrap_or_default() + "\n";
    write_private(&dir.join("admin.json"), &json)?;
    write_private(&dir.join("eucarc"), &eucarc(c, dir))?;
    write_private(&dir.join("aws-config"), &aws_profile(c))?;
    write_private(&dir.join("boto3.env"), &boto3_env(c))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mallee_store::sqlite::SqliteStore;

    #[tokio::test]
    async fn names_are_fixed_at_the_first_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(
            "127.0.0.1:9999".parse().expect("addr"),
            dir.path().to_owned(),
        );
        config
            .set_names("us-east-1", &["us-east-1a".into(), "us-east-1b".into()])
            .expect("names");
        let store = SqliteStore::open(&config.database_path())
            .await
            .expect("open");
        assert!(!fix_names(&store, &mut config).await.expect("first"));
        let mut later = Config::new(
            "127.0.0.1:9999".parse().expect("addr"),
            dir.path().to_owned(),
        );
        later
            .set_names("eu-west-1", &["eu-west-1c".into(), "eu-west-1d".into()])
            .expect("names");
        later.placement.insert(
            "eu-west-1d".into(),
            crate::instances::placement::Policy::Greedy,
        );
        assert!(fix_names(&store, &mut later).await.expect("later"));
        assert_eq!(later.region, "us-east-1");
        assert_eq!(later.zones, ["us-east-1a", "us-east-1b"]);
        assert_eq!(later.public_ranges[0].zone, "us-east-1a");
        assert_eq!(
            later.placement_policy("us-east-1b"),
            crate::instances::placement::Policy::Greedy
        );
        assert!(
            config.set_names("US", &[]).is_err()
                && config.set_names("r", &["a".into(), "a".into()]).is_err()
        );
    }

    #[tokio::test]
    async fn the_public_domain_is_fixed_at_the_first_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let new_config = || {
            Config::new(
                "127.0.0.1:9999".parse().expect("addr"),
                dir.path().to_owned(),
            )
        };
        let store = SqliteStore::open(&new_config().database_path())
            .await
            .expect("open");
        // A cloud first started before the setting existed keeps the
        // domain of its recorded region.
        store
            .set_setting(REGION_SETTING, "old-1")
            .await
            .expect("region");
        store
            .set_setting(ZONES_SETTING, "old-1a")
            .await
            .expect("zones");
        let mut first = new_config();
        fix_names(&store, &mut first).await.expect("first");
        assert_eq!(first.public_domain(), "old-1.compute.mallee");
        // An admin's domain given later does not replace it.
        let mut later = new_config();
        later
            .set_public_domain("Cloud.Example.TEST.")
            .expect("domain");
        assert_eq!(later.public_domain(), "cloud.example.test");
        assert!(fix_names(&store, &mut later).await.expect("later"));
        assert_eq!(later.public_domain(), "old-1.compute.mallee");
        for bad in ["", "a..b", "-a.b", "a_b.c", &"x".repeat(64)] {
            assert!(new_config().set_public_domain(bad).is_err(), "{bad}");
        }
        // A new cloud records the admin's.
        let fresh = tempfile::tempdir().expect("tempdir");
        let mut config = Config::new(
            "127.0.0.1:9999".parse().expect("addr"),
            fresh.path().to_owned(),
        );
        let store = SqliteStore::open(&config.database_path())
            .await
            .expect("open");
        config
            .set_public_domain("cloud.example.test")
            .expect("domain");
        assert!(!fix_names(&store, &mut config).await.expect("first"));
        let mut again = Config::new(
            "127.0.0.1:9999".parse().expect("addr"),
            fresh.path().to_owned(),
        );
        fix_names(&store, &mut again).await.expect("again");
        assert_eq!(again.public_domain(), "cloud.example.test");
    }

    #[tokio::test]
    async fn first_start_creates_then_reuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::new(
            "127.0.0.1:9999".parse().expect("addr"),
            dir.path().to_owned(),
        );
        let store = SqliteStore::open(&config.database_path())
            .await
            .expect("open");
        let first = bootstrap(&store, &config).await.expect("first");
        assert!(first.first_start);
        let second = bootstrap(&store, &config).await.expect("second");
        assert!(!second.first_start);
        assert_eq!(
            first.credentials.access_key_id,
            second.credentials.access_key_id
        );
        let eucarc =
            std::fs::read_to_string(dir.path().join("credentials/eucarc")).expect("eucarc");
        assert!(eucarc.contains("EC2_URL=http://127.0.0.1:9999/services/compute"));
        assert!(eucarc.contains(&first.credentials.secret_access_key));
    }

    #[tokio::test]
    async fn finishes_an_interrupted_bootstrap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Config::new(
            "127.0.0.1:9999".parse().expect("addr"),
            dir.path().to_owned(),
        );
        let store = SqliteStore::open(&config.database_path())
            .await
            .expect("open");
        // A previous start that died after creating the account.
        accounts::create_account(&store, ADMIN_ACCOUNT, true)
            .await
            .expect("account");
        let done = bootstrap(&store, &config).await.expect("bootstrap");
        assert_eq!(done.credentials.account_name, ADMIN_ACCOUNT);
        assert_eq!(store.accounts().await.expect("accounts").len(), 1);
    }
}
