//! Test support shared by every crate's tests: the S3 endpoint the test script
//! provides, and stores that tests can point agents at.

use std::sync::Arc;

use object_store::ObjectStore;
use ulid::Ulid;

/// The S3-compatible server for protocol tests, from the environment:
/// `FLOE_TEST_S3` (endpoint URL) and `FLOE_TEST_S3_BUCKET` (default `floe-test`).
#[derive(Clone, Debug)]
pub struct S3Target {
    pub endpoint: String,
    pub bucket: String,
}

impl S3Target {
    /// `None` when `FLOE_TEST_S3` is unset, so S3 tests can skip; panics
    /// instead when `FLOE_REQUIRE_S3` is set, so a missing server never
    /// passes silently.
    pub fn from_env() -> Option<Self> {
        match std::env::var("FLOE_TEST_S3") {
            Ok(endpoint) if !endpoint.is_empty() => Some(Self {
                endpoint,
                bucket: std::env::var("FLOE_TEST_S3_BUCKET").unwrap_or_else(|_| "floe-test".to_owned()),
            }),
            _ => {
                assert!(
                    std::env::var_os("FLOE_REQUIRE_S3").is_none(),
                    "FLOE_REQUIRE_S3 is set but FLOE_TEST_S3 is not: the S3 protocol tests need a server"
                );
                eprintln!("skipping S3 protocol test: FLOE_TEST_S3 is unset");
                None
            }
        }
    }

    /// A fresh, empty prefix of the bucket, so tests never see each other's objects.
    #[allow(clippy::disallowed_methods)] // test prefixes
    pub fn fresh_prefix(&self) -> String {
        format!("test-{}", Ulid::new().to_string().to_lowercase())
    }

    /// A store rooted at `prefix`.
    pub fn store(&self, prefix: &str) -> Arc<dyn ObjectStore> {
        // Configured as `store::open` configures it from the environment.
        let vars = [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "floe-test"),
            ("AWS_SECRET_ACCESS_KEY", "floe-test"),
        ];
        let s3 = crate::store::s3_builder(vars.map(|(k, v)| (k.to_owned(), v.to_owned())))
            .with_bucket_name(&self.bucket)
            .build()
            .unwrap_or_else(|e| panic!("cannot build S3 client for {}: {e}", self.endpoint));
        Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
    }

    /// `(store URL, environment)` that make a `floe-agent` use `prefix`.
    pub fn agent_store(&self, prefix: &str) -> (String, Vec<(&'static str, String)>) {
        let env = vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "floe-test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "floe-test".to_owned()),
        ];
        (format!("s3://{}/{prefix}", self.bucket), env)
    }
}
