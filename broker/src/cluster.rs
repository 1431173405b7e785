//! Bucket set-up: the create-only safety probe and the `cluster` object.

use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use ulid::Ulid;

use crate::components::Components;
use crate::store::{get_if_exists, put_if_absent};
use crate::{Error, Result, keys};

pub const CLUSTER_FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub cluster_id: Ulid,
    pub format: u32,
    /// See `State::commit_window_ms`; fixed when the cluster is created.
    #[serde(default = "default_commit_window")]
    pub commit_window_ms: u64,
}

fn default_commit_window() -> u64 {
    crate::state::DEFAULT_COMMIT_WINDOW_MS
}

/// Refuses a store that ignores `If-None-Match: *`: creates one fresh key
/// twice; the second create must fail. Every invariant rests on this.
pub async fn probe_create_only(store: &dyn ObjectStore, node: &Components) -> Result<()> {
    let key = keys::probe(node.ulid());
    let body = bytes::Bytes::from_static(b"create-only probe");
    if !put_if_absent(store, &key, body.clone()).await? {
        return Err(Error::UnsafeStore { key: key.to_string() });
    }
    let second = put_if_absent(store, &key, body).await;
    // The probe key is unique to this run; deleting it cannot affect anyone.
    if let Err(e) = store.delete(&key).await {
        tracing::debug!(%key, error = %e, "could not delete probe key");
    }
    match second? {
        false => Ok(()),
        true => Err(Error::UnsafeStore { key: key.to_string() }),
    }
}

/// The cluster's agent-to-agent token: created by the first agent that asks
/// (create-only, so every agent ends up with the same one), read by the rest.
pub async fn internal_secret(store: &dyn ObjectStore, node: &Components) -> Result<String> {
    let mine: String = (0..4).map(|_| format!("{:016x}", node.random.next_u64())).collect();
    if put_if_absent(store, &keys::secret(), mine.clone().into()).await? {
        return Ok(mine);
    }
    let bytes = get_if_exists(store, &keys::secret())
        .await?
        .ok_or_else(|| Error::corrupt("secret", "reported as existing, then not found"))?;
    let secret = String::from_utf8(bytes.to_vec()).map_err(|e| Error::corrupt("secret", e))?;
    if secret.len() < 32 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::corrupt("secret", "not a hex token of at least 32 digits"));
    }
    Ok(secret)
}

/// Creates the `cluster` object on a fresh bucket (with `commit_window_ms`),
/// or reads and checks the existing one.
pub async fn init(store: &dyn ObjectStore, node: &Components, commit_window_ms: u64) -> Result<ClusterInfo> {
    let mine = ClusterInfo { cluster_id: node.ulid(), format: CLUSTER_FORMAT, commit_window_ms };
    let body = serde_json::to_vec(&mine).map_err(|e| Error::encode("cluster", e))?;
    if put_if_absent(store, &keys::cluster(), body.into()).await? {
        return Ok(mine);
    }
    let bytes = get_if_exists(store, &keys::cluster())
        .await?
        .ok_or_else(|| Error::corrupt("cluster", "reported as existing, then not found"))?;
    let info: ClusterInfo = serde_json::from_slice(&bytes).map_err(|e| Error::corrupt("cluster", e))?;
    if info.format != CLUSTER_FORMAT {
        return Err(Error::UnsupportedFormat(format!(
            "bucket has cluster format {}, this build supports {CLUSTER_FORMAT}",
            info.format
        )));
    }
    Ok(info)
}
