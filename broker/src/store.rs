//! Opening an object store from a URL, and small helpers every caller needs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, RetryConfig};

use crate::{Error, Result};

/// Opens the store named by `url`:
/// - `file://./dir`, `file:///abs/dir` or a bare path: a local directory (created if missing);
/// - `memory://`: in-process, gone when the process exits (tests and demos);
/// - `s3://bucket[/prefix]`: S3 or an S3-compatible server, configured by the
///   usual `AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
///   `AWS_REGION` and `AWS_ALLOW_HTTP` variables.
pub fn open(url: &str) -> Result<Arc<dyn ObjectStore>> {
    let invalid = |reason: &str| Error::InvalidStoreUrl { url: url.to_owned(), reason: reason.to_owned() };
    if url == "memory://" {
        return Ok(Arc::new(InMemory::new()));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("no bucket name"));
        }
        // Names or values that are not UTF-8 are skipped, as `from_env` does.
        let vars = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        let s3 = s3_builder(vars)
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 5,
                retry_timeout: Duration::from_secs(30),
            })
            .build()?;
        let prefix = prefix.trim_matches('/');
        return Ok(if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix)) });
    }
    let dir = local_dir(url).map_err(invalid)?;
    std::fs::create_dir_all(dir).map_err(|e| invalid(&format!("cannot create directory: {e}")))?;
    // Synced before a PUT returns (data, then the directory entry): an
    // acknowledged record must survive a power loss, as it would on S3.
    let local = LocalFileSystem::new_with_prefix(dir)?.with_fsync(true);
    // Segments bypass the page cache where the file system allows it.
    #[cfg(target_os = "linux")]
    return Ok(Arc::new(crate::direct::DirectLocal::new(local)));
    #[cfg(not(target_os = "linux"))]
    Ok(Arc::new(local))
}

/// The directory of a local store's URL (`file://DIR` or a bare path), or
/// why the URL names none (other schemes are handled before).
fn local_dir(url: &str) -> std::result::Result<&str, &'static str> {
    let dir = match url.strip_prefix("file://") {
        Some(dir) => dir,
        None if url.contains("://") => return Err("supported schemes are file://, memory:// and s3://"),
        None => url,
    };
    if dir.is_empty() { Err("no directory") } else { Ok(dir) }
}

/// For a local directory store: removes, on a thread of its own, the
/// segment staging files that crashed writers left in it
/// ([`crate::staging`]), as of `now_ms` (milliseconds since the epoch), and
/// logs what it removed. Other stores have none (an unfinished S3 upload is
/// not an object). The thread is not waited for: a process that exits
/// before it is done leaves the rest to the next start.
pub fn sweep_leftovers(url: &str, now_ms: u64) {
    let Ok(dir) = local_dir(url).map(std::path::PathBuf::from) else { return };
    let now = std::time::UNIX_EPOCH + Duration::from_millis(now_ms);
    let sweep = move || match crate::staging::sweep(&dir, now, crate::staging::MIN_AGE) {
        Ok(swept) if swept.files > 0 => {
            tracing::info!(files = swept.files, bytes = swept.bytes, "removed staging files left by a crashed writer")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot sweep leftover staging files"),
    };
    if let Err(e) = std::thread::Builder::new().name("floe-sweep".into()).spawn(sweep) {
        tracing::warn!(error = %e, "cannot start the sweep of leftover staging files");
    }
}

/// An S3 client configured by the `AWS_*` variables among `vars`, over
/// Floe's default for payload signing: over TLS (`https` endpoints, and AWS
/// itself when no endpoint is set) payloads are not signed
/// (`UNSIGNED-PAYLOAD`), over plain HTTP they are. Signing hashes every byte
/// uploaded with SHA-256, about a tenth of an agent's CPU; TLS already
/// guards the bytes on the wire, and without TLS the signature is the only
/// check on log entries and snapshots, which carry no checksum of their own
/// (decision 0020). `AWS_UNSIGNED_PAYLOAD` overrides the default either way.
pub fn s3_builder(vars: impl IntoIterator<Item = (String, String)>) -> AmazonS3Builder {
    let mut builder = AmazonS3Builder::new();
    let mut signing_chosen = false;
    for (name, value) in vars {
        if name.starts_with("AWS_")
            && let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>()
        {
            signing_chosen |= key == AmazonS3ConfigKey::UnsignedPayload;
            builder = builder.with_config(key, value);
        }
    }
    // `AWS_ENDPOINT_URL_S3` wins over `AWS_ENDPOINT_URL` when the client is built.
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
    let over_tls = endpoint.is_none_or(|e| e.to_ascii_lowercase().starts_with("https://"));
    if !signing_chosen && over_tls {
        builder = builder.with_unsigned_payload(true);
    }
    builder
}

/// GETs a whole object; `None` if it does not exist.
pub async fn get_if_exists(store: &dyn ObjectStore, key: &Path) -> Result<Option<Bytes>> {
    match store.get(key).await {
        Ok(got) => Ok(Some(got.bytes().await?)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Create-only PUT (`If-None-Match: *`): `Ok(false)` if the key already exists.
pub async fn put_if_absent(store: &dyn ObjectStore, key: &Path, body: Bytes) -> Result<bool> {
    match store.put_opts(key, body.into(), PutMode::Create.into()).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Errors after which a PUT certainly did not write anything. Any other error
/// (a timeout, a reset connection, a 5xx) leaves the outcome unknown.
pub fn definitely_not_written(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    matches!(
        e,
        E::NotFound { .. }
            | E::InvalidPath { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. }
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::UnknownConfigurationKey { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_payloads_are_unsigned_over_tls_unless_the_environment_says_otherwise() {
        use object_store::aws::AmazonS3ConfigKey::{Region, UnsignedPayload};
        let var = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let unsigned = |b: &AmazonS3Builder| b.get_config_value(&UnsignedPayload).as_deref() == Some("true");
        let aws = s3_builder([var("AWS_REGION", "eu-west-1"), var("HOME", "/root")]);
        assert!(unsigned(&aws), "AWS itself is reached over TLS");
        assert_eq!(aws.get_config_value(&Region).as_deref(), Some("eu-west-1"), "AWS_* variables apply");
        assert!(unsigned(&s3_builder([var("AWS_ENDPOINT_URL", "https://minio.internal:9000")])));
        assert!(unsigned(&s3_builder([var("AWS_ENDPOINT", "HTTPS://minio.internal")])));
        // Without TLS the signature is the only check on log entries.
        let plain = s3_builder([var("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"), var("AWS_ALLOW_HTTP", "true")]);
        assert!(!unsigned(&plain));
        // The S3-only endpoint variable is the one the client uses.
        assert!(!unsigned(&s3_builder([var("AWS_ENDPOINT_URL_S3", "http://minio:9000")])));
        let s3_only = [var("AWS_ENDPOINT_URL", "http://a:9000"), var("AWS_ENDPOINT_URL_S3", "https://b")];
        assert!(unsigned(&s3_builder(s3_only)));
        // The environment decides when it says.
        assert!(!unsigned(&s3_builder([var("AWS_UNSIGNED_PAYLOAD", "false")])));
        let asked = s3_builder([var("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"), var("AWS_UNSIGNED_PAYLOAD", "true")]);
        assert!(unsigned(&asked));
    }

    #[test]
    fn urls_open_the_right_store() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        let url = format!("file://{}", nested.display());
        assert!(open(&url).unwrap().to_string().starts_with("LocalFileSystem"));
        assert!(nested.is_dir(), "file:// creates the directory");
        assert!(open("memory://").unwrap().to_string().starts_with("InMemory"));
    }

    /// Hole 6: the embedded default store must sync what it writes before
    /// a PUT returns (object_store's `LocalFileSystem` does not by default).
    #[test]
    fn hole6_the_local_directory_store_syncs_before_acknowledging() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&format!("file://{}", dir.path().display())).unwrap();
        assert!(format!("{store:?}").contains("fsync: true"), "{store:?}");
    }

    #[test]
    fn bad_urls_are_explained() {
        for url in ["gs://bucket", "s3://", "file://"] {
            let err = open(url).err().unwrap_or_else(|| panic!("{url} should not open"));
            assert!(matches!(err, Error::InvalidStoreUrl { .. }), "{url}: {err}");
        }
    }
}
