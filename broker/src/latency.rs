//! A latency-injecting `ObjectStore` wrapper, so S3-like request latency can
//! be studied on one machine with a local-directory store.
//!
//! Each request waits a first-byte delay drawn from a log-normal distribution
//! fitted to a median and a 99th percentile, then runs against the inner
//! store. The profiles are modelled on public latency reports for AWS S3
//! Standard and S3 Express One Zone, not measured here (see
//! `docs/benchmarks.md`). Delays are reproducible from a seed.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal};

/// z-score of the 99th percentile of the standard normal distribution.
const Z99: f64 = 2.326_347_874;

/// A log-normal first-byte latency, given by its median and 99th percentile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dist {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Dist {
    pub const fn new(p50_ms: f64, p99_ms: f64) -> Self {
        Self { p50_ms, p99_ms }
    }

    /// One sample, in milliseconds.
    pub fn sample_ms(&self, rng: &mut impl Rng) -> f64 {
        if self.p50_ms <= 0.0 {
            return 0.0;
        }
        // The median of a log-normal is e^mu; its 99th percentile e^(mu + Z99 sigma).
        let mu = self.p50_ms.ln();
        let sigma = (self.p99_ms.max(self.p50_ms) / self.p50_ms).ln() / Z99;
        match LogNormal::new(mu, sigma) {
            Ok(dist) => dist.sample(rng),
            // Only a non-finite sigma gets here (a p50 too small to divide by).
            Err(_) => self.p50_ms,
        }
    }
}

/// Which request a delay applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Put,
    /// A create-only PUT (`If-None-Match: *`), the metadata commit.
    ConditionalPut,
    Get,
    List,
    Delete,
}

/// A named latency profile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    #[default]
    None,
    S3Standard,
    S3Express,
}

impl Profile {
    pub const NAMES: [&'static str; 3] = ["none", "s3-standard", "s3-express"];

    pub fn name(self) -> &'static str {
        match self {
            Profile::None => "none",
            Profile::S3Standard => "s3-standard",
            Profile::S3Express => "s3-express",
        }
    }

    /// The distribution of `op`'s first-byte latency; `None` for no delay.
    pub fn dist(self, op: Op) -> Option<Dist> {
        match (self, op) {
            (Profile::None, _) => None,
            (Profile::S3Standard, Op::Put | Op::Delete) => Some(Dist::new(25.0, 80.0)),
            (Profile::S3Standard, Op::ConditionalPut) => Some(Dist::new(30.0, 90.0)),
            (Profile::S3Standard, Op::Get) => Some(Dist::new(15.0, 60.0)),
            (Profile::S3Standard, Op::List) => Some(Dist::new(25.0, 80.0)),
            (Profile::S3Express, Op::Put | Op::Delete | Op::List) => Some(Dist::new(5.0, 12.0)),
            (Profile::S3Express, Op::ConditionalPut) => Some(Dist::new(6.0, 14.0)),
            (Profile::S3Express, Op::Get) => Some(Dist::new(3.0, 8.0)),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Ok(Profile::None),
            "s3-standard" | "s3" => Ok(Profile::S3Standard),
            "s3-express" => Ok(Profile::S3Express),
            other => Err(format!("unknown store profile {other:?}; expected one of {}", Profile::NAMES.join(", "))),
        }
    }
}

/// Draws delays for a profile from one seeded generator.
pub struct Sampler {
    profile: Profile,
    rng: Mutex<StdRng>,
}

impl Sampler {
    pub fn new(profile: Profile, seed: u64) -> Self {
        Self { profile, rng: Mutex::new(StdRng::seed_from_u64(seed)) }
    }

    pub fn profile(&self) -> Profile {
        self.profile
    }

    pub fn sample(&self, op: Op) -> Duration {
        let Some(dist) = self.profile.dist(op) else { return Duration::ZERO };
        let mut rng = self.rng.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Duration::from_secs_f64(dist.sample_ms(&mut *rng) / 1000.0)
    }
}

/// Delays every request by a sample from its profile, then forwards it.
pub struct LatencyStore {
    inner: Arc<dyn ObjectStore>,
    sampler: Arc<Sampler>,
}

impl LatencyStore {
    pub fn new(inner: Arc<dyn ObjectStore>, profile: Profile, seed: u64) -> Self {
        Self { inner, sampler: Arc::new(Sampler::new(profile, seed)) }
    }

    /// Wraps `inner` unless the profile is `none`.
    pub fn wrap(inner: Arc<dyn ObjectStore>, profile: Profile, seed: u64) -> Arc<dyn ObjectStore> {
        if profile == Profile::None { inner } else { Arc::new(Self::new(inner, profile, seed)) }
    }

    async fn wait(&self, op: Op) {
        let d = self.sampler.sample(op);
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }

    /// A stream that starts after one `op` delay.
    fn delayed<T: Send + 'static>(&self, op: Op, inner: BoxStream<'static, T>) -> BoxStream<'static, T> {
        let d = self.sampler.sample(op);
        if d.is_zero() {
            return inner;
        }
        stream::once(tokio::time::sleep(d)).flat_map(move |()| stream::empty()).chain(inner).boxed()
    }
}

impl fmt::Display for LatencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LatencyStore({}, {})", self.sampler.profile(), self.inner)
    }
}

impl fmt::Debug for LatencyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LatencyStore({}, {:?})", self.sampler.profile(), self.inner)
    }
}

#[async_trait]
impl ObjectStore for LatencyStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        let op = if matches!(opts.mode, PutMode::Overwrite) { Op::Put } else { Op::ConditionalPut };
        self.wait(op).await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.wait(Op::Put).await;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.wait(Op::Get).await;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let sampler = self.sampler.clone();
        let delayed = locations
            .then(move |l| {
                let d = sampler.sample(Op::Delete);
                async move {
                    tokio::time::sleep(d).await;
                    l
                }
            })
            .boxed();
        self.inner.delete_stream(delayed)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.delayed(Op::List, self.inner.list(prefix))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.delayed(Op::List, self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.wait(Op::List).await;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.wait(Op::Put).await;
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    /// (p50, p99) in ms of `n` samples.
    fn percentiles(sampler: &Sampler, op: Op, n: usize) -> (f64, f64) {
        let mut v: Vec<f64> = (0..n).map(|_| sampler.sample(op).as_secs_f64() * 1000.0).collect();
        v.sort_by(f64::total_cmp);
        (v[n / 2], v[n * 99 / 100])
    }

    #[test]
    fn s3_standard_percentiles_are_in_band() {
        let s = Sampler::new(Profile::S3Standard, 7);
        let (p50, p99) = percentiles(&s, Op::Put, 10_000);
        assert!((22.0..28.0).contains(&p50), "PUT p50 {p50}");
        assert!((68.0..94.0).contains(&p99), "PUT p99 {p99}");
        let (p50, p99) = percentiles(&s, Op::Get, 10_000);
        assert!((13.0..17.0).contains(&p50), "GET p50 {p50}");
        assert!((50.0..72.0).contains(&p99), "GET p99 {p99}");
        let (p50, _) = percentiles(&s, Op::ConditionalPut, 10_000);
        assert!((27.0..33.0).contains(&p50), "conditional PUT p50 {p50}");
    }

    #[test]
    fn s3_express_percentiles_are_in_band() {
        let s = Sampler::new(Profile::S3Express, 11);
        let (p50, p99) = percentiles(&s, Op::Put, 10_000);
        assert!((4.5..5.5).contains(&p50), "PUT p50 {p50}");
        assert!((10.5..13.5).contains(&p99), "PUT p99 {p99}");
        let (p50, p99) = percentiles(&s, Op::Get, 10_000);
        assert!((2.7..3.3).contains(&p50), "GET p50 {p50}");
        assert!((7.0..9.0).contains(&p99), "GET p99 {p99}");
    }

    #[test]
    fn none_never_delays_and_seeds_reproduce() {
        let none = Sampler::new(Profile::None, 1);
        assert!((0..1000).all(|_| none.sample(Op::Put).is_zero()));
        let (a, b) = (Sampler::new(Profile::S3Standard, 42), Sampler::new(Profile::S3Standard, 42));
        let xs: Vec<Duration> = (0..100).map(|_| a.sample(Op::Get)).collect();
        let ys: Vec<Duration> = (0..100).map(|_| b.sample(Op::Get)).collect();
        assert_eq!(xs, ys);
        let c = Sampler::new(Profile::S3Standard, 43);
        let zs: Vec<Duration> = (0..100).map(|_| c.sample(Op::Get)).collect();
        assert_ne!(xs, zs);
    }

    #[test]
    fn parses_profile_names() {
        for name in Profile::NAMES {
            assert_eq!(name.parse::<Profile>().map(|p| p.name()), Ok(name));
        }
        assert!("s3-glacier".parse::<Profile>().is_err());
    }

    #[tokio::test]
    async fn wrapped_store_still_stores() {
        let store = LatencyStore::new(Arc::new(InMemory::new()), Profile::S3Express, 3);
        let key = Path::from("log/00000000000000000001");
        store.put_opts(&key, bytes::Bytes::from_static(b"abc").into(), PutMode::Create.into()).await.unwrap();
        assert!(store.put_opts(&key, bytes::Bytes::from_static(b"x").into(), PutMode::Create.into()).await.is_err());
        assert_eq!(store.get(&key).await.unwrap().bytes().await.unwrap().as_ref(), b"abc");
        let listed: Vec<_> = store.list(None).collect().await;
        assert_eq!(listed.len(), 1);
    }
}
