//! Agent settings, from flags or `FLOE_*` environment variables.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use floe_compactor::CompactorSettings;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompactorMode {
    /// Run the compactor inside this agent.
    Embedded,
    /// Leave compaction to a standalone `floe-compactor` (or another agent).
    Off,
}

#[derive(Args, Clone, Debug, serde::Serialize)]
pub struct AgentArgs {
    /// Address to serve the HTTP API on (port 0 picks a free port).
    #[arg(long, env = "FLOE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Object store: file://./dir, file:///abs/dir, memory://, or s3://bucket[/prefix]
    /// (S3 settings from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION, AWS_ALLOW_HTTP).
    #[arg(long, env = "FLOE_STORE", default_value = "file://./floe-data")]
    pub store: String,

    /// Flush the open buffer this long after its first record.
    #[arg(long, env = "FLOE_FLUSH_INTERVAL_MS", default_value_t = 250)]
    pub flush_interval_ms: u64,

    /// Flush the open buffer as soon as it holds this many bytes.
    #[arg(long, env = "FLOE_FLUSH_BYTES", default_value_t = 8 << 20)]
    pub flush_bytes: usize,

    /// RAM for records not yet acknowledged and the segments they become (each counts twice its size); produce answers 503 when it is full.
    #[arg(long, env = "FLOE_BUFFER_BYTES", default_value_t = 128 << 20)]
    pub buffer_bytes: usize,

    /// A directory on local disk (NVMe) for the spool: each sealed flush is
    /// synced there before its upload, so the store can be slow or away
    /// without refusing producers until the spool is full, and `acks=local`
    /// can be offered. Off by default (the agent keeps nothing on disk).
    #[arg(long, env = "FLOE_SPOOL_DIR")]
    pub spool_dir: Option<std::path::PathBuf>,

    /// Bytes the spool may hold; sealed flushes wait for room (and produce
    /// answers 503 once the write buffer is full too).
    #[arg(long, env = "FLOE_SPOOL_BYTES", default_value_t = 4 << 30)]
    pub spool_bytes: usize,

    /// When the native produce answers, unless a request says (`?acks=`):
    /// `committed` (after the log entry, with offsets) or `local` (after the
    /// spool's fsync, with a flush id; needs --spool-dir).
    #[arg(long, env = "FLOE_ACKS", value_enum, default_value_t = crate::writer::Acks::Committed)]
    pub acks: crate::writer::Acks,

    /// Segments encoded or uploaded at once.
    #[arg(long, env = "FLOE_MAX_UPLOADS", default_value_t = 4)]
    pub max_uploads: usize,

    /// RAM for the decoded-batch read cache.
    #[arg(long, env = "FLOE_CACHE_BYTES", default_value_t = 256 << 20)]
    pub cache_bytes: u64,

    /// A directory on local NVMe for a second cache tier (emptied at start).
    #[arg(long, env = "FLOE_CACHE_DIR")]
    pub cache_dir: Option<std::path::PathBuf>,

    /// Bytes the NVMe cache tier may hold.
    #[arg(long, env = "FLOE_CACHE_DIR_BYTES", default_value_t = 10 << 30)]
    pub cache_dir_bytes: u64,

    /// Largest accepted request body.
    #[arg(long, env = "FLOE_MAX_REQUEST_BYTES", default_value_t = 16 << 20)]
    pub max_request_bytes: usize,

    /// Request bodies being read and handled at once, in bytes (at least
    /// --max-request-bytes); further requests wait before their bodies are
    /// read, as with Kafka's queued.max.request.bytes.
    #[arg(long, env = "FLOE_REQUEST_MEMORY_BYTES", default_value_t = 32 << 20)]
    pub request_memory_bytes: usize,

    /// Fetched records held until their answers are sent, in bytes; further
    /// fetches wait before they read (a fetch waiting for records to arrive
    /// holds none). One fetch larger than all of it takes all of it.
    #[arg(long, env = "FLOE_FETCH_MEMORY_BYTES", default_value_t = 64 << 20)]
    pub fetch_memory_bytes: usize,

    /// How often the agent looks for log entries committed by others while a
    /// reader waits for new records or entries keep arriving; an idle agent
    /// backs off to once a second (reads past what it knows catch up first).
    #[arg(long, env = "FLOE_LOG_POLL_MS", default_value_t = 250)]
    pub log_poll_ms: u64,

    /// How long after its upload a segment may still be committed; recorded
    /// in the bucket when this agent creates the cluster, ignored otherwise.
    #[arg(long, env = "FLOE_COMMIT_WINDOW_MS", default_value_t = floe_broker::state::DEFAULT_COMMIT_WINDOW_MS)]
    pub commit_window_ms: u64,

    /// Take part in the commit lease: one agent group-commits the others'
    /// entries (fewer metadata PUTs); needs agents to reach each other at
    /// --advertise-url.
    #[arg(long, env = "FLOE_COMMIT_LEASE", default_value_t = false)]
    pub commit_lease: bool,

    /// The URL other agents use to reach this one (default: http:// and the
    /// listening address).
    #[arg(long, env = "FLOE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// Group commit: after an entry is ready, wait this long for more before
    /// writing them as one log entry (0: at once). With the lease, this caps
    /// the whole cluster near one metadata PUT per window.
    #[arg(long, env = "FLOE_GROUP_COMMIT_MS", default_value_t = 0)]
    pub group_commit_ms: u64,

    /// The commit lease's term, on the log clock.
    #[arg(long, env = "FLOE_LEASE_TERM_MS", default_value_t = 10_000)]
    pub lease_term_ms: u64,

    /// How long a consumer group's coordinator keeps the group after it
    /// stops renewing (on the log clock); another agent takes over after that.
    #[arg(long, env = "FLOE_GROUP_COORDINATOR_TERM_MS", default_value_t = 10_000)]
    pub group_coordinator_term_ms: u64,

    /// A connection that has not sent a whole request head (request line and
    /// headers) this long after it opened, or after its previous request, is
    /// closed; so is an HTTP/2 connection with no request in flight and no
    /// answer going out this long. One whose client has taken nothing of its
    /// answers this long is dropped.
    #[arg(long, env = "FLOE_REQUEST_HEADER_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_header_timeout_ms: u64,

    /// A request body that has not arrived whole this long after the agent
    /// starts reading it fails the request (408) and closes its connection.
    #[arg(long, env = "FLOE_REQUEST_BODY_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_body_timeout_ms: u64,

    /// Requests served at once (long-polls and tails included); more are
    /// answered 503 with Retry-After.
    #[arg(long, env = "FLOE_MAX_CONCURRENT_REQUESTS", default_value_t = 4096)]
    pub max_concurrent_requests: usize,

    /// Connections open at once. The last eighth (at most 64) serves only
    /// other agents, health checks and scrapes, and answers clients 503;
    /// beyond all, connections wait, not yet accepted, until one closes.
    /// Default: half the process's open-file limit (`ulimit -n`), at most
    /// 8192, so that connections cannot take the file descriptors the store
    /// needs.
    #[arg(long, env = "FLOE_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// On SIGTERM or SIGINT: how long in-flight requests and writing out
    /// what was accepted may take before the agent exits anyway.
    #[arg(long, env = "FLOE_DRAIN_TIMEOUT_MS", default_value_t = 30_000)]
    pub drain_timeout_ms: u64,

    /// Clients' bearer tokens: a TOML file of token hashes and permissions
    /// (`floe-agent token new` makes entries; docs/security.md). Read again
    /// on SIGHUP. Without it, every client may do everything.
    #[arg(long, env = "FLOE_AUTH_TOKENS")]
    pub auth_tokens: Option<std::path::PathBuf>,

    /// With --auth-tokens: the endpoints that still answer without a token,
    /// comma-separated (or the flag repeated), of healthz, readyz and
    /// metrics ('' for none).
    #[arg(long, env = "FLOE_AUTH_OPEN", value_parser = open_endpoints, default_value = "healthz,readyz,metrics")]
    #[serde(serialize_with = "open_endpoints_flat")]
    pub auth_open: Vec<OpenEndpoints>,

    /// Serve HTTPS with this PEM certificate chain (with --tls-key). Read
    /// again on SIGHUP.
    #[arg(long, env = "FLOE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The PEM private key for --tls-cert.
    #[arg(long, env = "FLOE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// PEM certificates this agent trusts, beside the system's, when it calls
    /// other agents (their CA, when it is a private one).
    #[arg(long, env = "FLOE_TLS_CA")]
    pub tls_ca: Option<std::path::PathBuf>,

    /// Where compaction runs.
    #[arg(long, env = "FLOE_COMPACTOR", value_enum, default_value_t = CompactorMode::Embedded)]
    pub compactor: CompactorMode,

    #[command(flatten)]
    #[serde(flatten)]
    pub compaction: CompactorSettings,

    /// Testing only: run this agent's clock this many milliseconds off
    /// (negative: behind), to check that a skewed node stops committing.
    #[arg(long, env = "FLOE_TEST_CLOCK_OFFSET_MS", hide = true, allow_hyphen_values = true)]
    pub test_clock_offset_ms: Option<i64>,

    /// Testing only: make this fraction of object-store requests on log and
    /// segment keys fail (half of the failed PUTs after they landed).
    #[arg(long, env = "FLOE_INJECT_STORE_FAULTS", hide = true)]
    pub inject_store_faults: Option<f64>,

    /// Testing and benchmarks only: the object store is unreachable for
    /// FOR_MS milliseconds starting AFTER_MS after start-up (`AFTER_MS:FOR_MS`).
    #[arg(long, env = "FLOE_TEST_STORE_OUTAGE", hide = true, value_parser = parse_outage)]
    pub test_store_outage: Option<(u64, u64)>,
}

fn parse_outage(s: &str) -> Result<(u64, u64), String> {
    let (after, length) = s.split_once(':').ok_or("expected AFTER_MS:FOR_MS")?;
    let ms = |v: &str| v.trim().parse::<u64>().map_err(|e| format!("{v:?}: {e}"));
    Ok((ms(after)?, ms(length)?))
}

impl AgentArgs {
    /// `--request-header-timeout-ms`, at least a millisecond.
    pub fn request_header_timeout(&self) -> Duration {
        Duration::from_millis(self.request_header_timeout_ms.max(1))
    }

    /// The URL other agents reach this one at: `--advertise-url`, else the
    /// address it listens on. A wildcard address (0.0.0.0, [::]) reaches no
    /// one, so it must be named explicitly.
    pub fn advertised_url(&self, bound: SocketAddr) -> Result<String, String> {
        let scheme = if self.tls_cert.is_some() { "https" } else { "http" };
        let url = self.advertise_url.clone().unwrap_or_else(|| format!("{scheme}://{bound}"));
        let parsed = reqwest::Url::parse(&url).map_err(|e| format!("--advertise-url {url:?} is not a URL: {e}"))?;
        // A host is a name, an IPv4 address, or an IPv6 address in brackets.
        let unusable = match parsed.host_str().map(|h| h.trim_start_matches('[').trim_end_matches(']')) {
            Some(host) => host.parse::<std::net::IpAddr>().map_or(host.is_empty(), |ip| ip.is_unspecified()),
            None => true,
        };
        if self.tls_cert.is_some() && parsed.scheme() == "http" {
            return Err(format!(
                "with --tls-cert this agent serves HTTPS only: --advertise-url {url:?} must be an https:// URL"
            ));
        }
        if unusable || !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "other agents cannot reach this agent at {url}: listening on {bound}, set --advertise-url \
                 (FLOE_ADVERTISE_URL) to an http(s):// URL with this agent's reachable address (see docs/deploy.md)"
            ));
        }
        Ok(url.trim_end_matches('/').to_owned())
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms.max(1))
    }

    pub fn log_poll_interval(&self) -> Duration {
        Duration::from_millis(self.log_poll_ms.max(1))
    }
}

/// `--auth-open`'s list: a type of its own because clap's list of an
/// enum refuses the empty value that says "none".
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct OpenEndpoints(pub Vec<crate::auth::OpenEndpoint>);

impl AgentArgs {
    /// `--auth-open`'s endpoints, over every time the flag was given.
    pub fn open_endpoints(&self) -> Vec<crate::auth::OpenEndpoint> {
        self.auth_open.iter().flat_map(|list| list.0.iter().copied()).collect()
    }
}

fn open_endpoints_flat<S: serde::Serializer>(lists: &[OpenEndpoints], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(lists.iter().flat_map(|list| &list.0))
}

fn open_endpoints(text: &str) -> Result<OpenEndpoints, String> {
    use clap::ValueEnum;
    let parse = |name: &str| {
        crate::auth::OpenEndpoint::from_str(name.trim(), true)
            .map_err(|_| format!("{name:?} is not one of healthz, readyz and metrics"))
    };
    text.split(',').filter(|name| !name.trim().is_empty()).map(parse).collect::<Result<_, _>>().map(OpenEndpoints)
}

/// Settings parsed from `extra` flags, as the agent's command line parses
/// them (for unit tests).
#[cfg(test)]
pub(crate) fn try_args(extra: &[&str]) -> Result<AgentArgs, clap::Error> {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }
    <Cli as clap::Parser>::try_parse_from([&["floe-agent"], extra].concat()).map(|c| c.agent)
}

#[cfg(test)]
mod tests {
    use super::AgentArgs;

    fn args(extra: &[&str]) -> AgentArgs {
        super::try_args(extra).unwrap()
    }

    /// `--auth-open ''` (so `FLOE_AUTH_OPEN=` and `auth_open = []` in a
    /// config file) leaves no endpoint open.
    #[test]
    fn an_empty_auth_open_list_closes_every_open_endpoint() {
        use crate::auth::OpenEndpoint::{Healthz, Metrics, Readyz};
        let open = |extra: &[&str]| super::try_args(extra).map(|a| a.open_endpoints());
        assert_eq!(open(&[]).ok(), Some(vec![Healthz, Readyz, Metrics]));
        assert_eq!(open(&["--auth-open", ""]).ok(), Some(vec![]));
        assert_eq!(open(&["--auth-open="]).ok(), Some(vec![]));
        assert_eq!(open(&["--auth-open", "healthz"]).ok(), Some(vec![Healthz]));
        assert_eq!(open(&["--auth-open", "readyz,metrics"]).ok(), Some(vec![Readyz, Metrics]));
        assert_eq!(open(&["--auth-open", "healthz", "--auth-open", "metrics"]).ok(), Some(vec![Healthz, Metrics]));
        assert!(open(&["--auth-open", "everything"]).is_err());
    }

    /// Hole 10: behind a wildcard address an agent would advertise a URL nobody can reach.
    #[test]
    fn hole10_wildcard_addresses_need_an_advertise_url() {
        let bound = "0.0.0.0:8080".parse().unwrap();
        assert!(args(&["--listen", "0.0.0.0:8080"]).advertised_url(bound).is_err());
        assert!(args(&["--listen", "[::]:8080"]).advertised_url("[::]:8080".parse().unwrap()).is_err());
        assert!(args(&["--advertise-url", "http://0.0.0.0:1"]).advertised_url("127.0.0.1:1".parse().unwrap()).is_err());
        let ok = args(&["--listen", "0.0.0.0:8080", "--advertise-url", "http://agent-1:8080/"]).advertised_url(bound);
        assert_eq!(ok.as_deref(), Ok("http://agent-1:8080"));
        assert_eq!(args(&[]).advertised_url("127.0.0.1:9".parse().unwrap()).as_deref(), Ok("http://127.0.0.1:9"));
    }
}
