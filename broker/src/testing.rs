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

/// Set in the child process that [`rerun_in_child`] starts.
const CHILD: &str = "FLOE_TEST_CHILD";

/// Whether this process is the child [`rerun_in_child`] started, for a test
/// to do there what should end its process. A child leaves no core file
/// (Linux); one that aborts leaves whatever it made (temporary directories
/// included), as no destructor runs.
pub fn in_child() -> bool {
    let child = std::env::var_os(CHILD).is_some();
    #[cfg(target_os = "linux")]
    if child {
        let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    }
    child
}

/// How a child process ended.
#[derive(Debug)]
pub struct ChildEnd {
    /// The signal that ended it, if one did (Unix).
    pub signal: Option<i32>,
    pub stderr: String,
}

impl ChildEnd {
    /// Asserts that the child aborted ([`crate::abort::abort`]) saying
    /// `what`: it died of `SIGABRT` (on Unix), its last words on stderr.
    pub fn assert_aborted(&self, what: &str) {
        if cfg!(unix) {
            // SIGABRT is 6 on Linux and macOS.
            assert_eq!(self.signal, Some(6), "SIGABRT: {self:?}");
        }
        assert!(self.stderr.contains(&format!("floe: {what}: aborting")), "{self:?}");
    }
}

/// Runs the test at `path` (within its crate, e.g. `module::tests::name`)
/// alone in a child process of this test binary, with [`in_child`] true
/// there, and says how that ended. A test renamed without its `path`
/// runs nothing in the child, which then ends normally. A child still
/// running after [`CHILD_DEADLINE`] is killed (`SIGKILL`), so a test
/// whose child hangs fails instead of hanging too.
#[allow(clippy::expect_used)] // only tests call it: a test that cannot start its child fails
pub fn rerun_in_child(path: &str) -> ChildEnd {
    let this = std::env::current_exe().expect("the test binary's path");
    let mut child = std::process::Command::new(this)
        .args(["--exact", path, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the child test process");
    // Read as it comes: a child that fills the pipe would otherwise block.
    let mut pipe = child.stderr.take().expect("the child's stderr");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = std::io::Read::read_to_end(&mut pipe, &mut text);
        text
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            break status;
        }
        if started.elapsed() > CHILD_DEADLINE {
            let _ = child.kill();
            break child.wait().expect("the killed child's status");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = reader.join().unwrap_or_default();
    #[cfg(unix)]
    let signal = std::os::unix::process::ExitStatusExt::signal(&status);
    #[cfg(not(unix))]
    let signal = None;
    ChildEnd { signal, stderr: String::from_utf8_lossy(&stderr).into_owned() }
}

/// How long [`rerun_in_child`] lets a child run.
pub const CHILD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// `count` records of `len` pseudo-random letters each (zstd shrinks them
/// to about 0.6), different for each `seed`: frames large enough to be
/// placed at block boundaries ([`crate::aligned::MIN_FRAME`]).
pub fn letter_records(seed: u64, count: usize, len: usize) -> Vec<crate::Record> {
    let mut state = seed | 1;
    (0..count)
        .map(|_| {
            let value: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    b'a' + (state % 26) as u8
                })
                .collect();
            crate::Record { key: None, value: value.into(), timestamp: 1, headers: Vec::new() }
        })
        .collect()
}
