//! Segment staging files that a crashed writer left in a local directory
//! store.
//!
//! `LocalFileSystem` and `DirectLocal` write an object to `<key>#<n>`, sync
//! it, and publish it by `link(2)` or `rename(2)`. A process killed in
//! between (SIGKILL, the OOM killer, a power cut) leaves the staging file
//! behind. Listings skip such names, so no compaction or retention ever
//! removes them: each held up to a segment's size of disk for good.
//!
//! Only segments' are removed. A segment's key is a ULID of one writer's
//! making, so its staging name is that writer's alone: removed under a
//! writer that was only paused, its publish fails and the PUT is an error.
//! Other keys are contended (log entries, snapshots): another writer could
//! take a removed staging name, and the paused one would then publish the
//! other's bytes as its own. Those stay (a log entry's are a few KiB, a
//! snapshot's can be larger).

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// A staging file modified this recently may belong to a PUT still in
/// progress, in this process or another on the same directory; a PUT
/// takes seconds, so one untouched for this long is a leftover.
pub const MIN_AGE: Duration = Duration::from_secs(3600);

/// What a sweep removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub files: u64,
    pub bytes: u64,
}

/// Removes the segment staging files of the local store at `root` last
/// modified more than `min_age` before `now`. Entries that vanish or cannot
/// be read meanwhile are skipped; symbolic links are not followed.
pub fn sweep(root: &Path, now: SystemTime, min_age: Duration) -> io::Result<Swept> {
    let mut swept = Swept::default();
    let entries = match fs::read_dir(root.join(crate::keys::segments_prefix().as_ref())) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(swept),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        let staging =
            entry.file_type().is_ok_and(|t| t.is_file()) && entry.file_name().to_str().is_some_and(is_staging_name);
        let Some(meta) = staging.then(|| entry.metadata().ok()).flatten() else { continue };
        let old = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|age| age > min_age);
        if old && fs::remove_file(entry.path()).is_ok() {
            swept.files += 1;
            swept.bytes += meta.len();
        }
    }
    Ok(swept)
}

/// A name `LocalFileSystem` treats as a staging file, not an object: a
/// `#` followed by digits only (`<key>#<n>`).
fn is_staging_name(name: &str) -> bool {
    name.split_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use futures::TryStreamExt;
    use object_store::ObjectStore;
    use object_store::local::LocalFileSystem;

    use super::*;

    /// A file of `len` bytes last modified at `at`.
    fn file(path: &Path, len: usize, at: SystemTime) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, vec![7; len]).unwrap();
        File::options().write(true).open(path).unwrap().set_modified(at).unwrap();
    }

    #[tokio::test]
    async fn old_segment_staging_files_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let now = then + MIN_AGE + Duration::from_secs(1);
        file(&root.join("segments/01J0.seg#1"), 1000, then);
        file(&root.join("segments/01J1.seg#12"), 24, then);
        file(&root.join("segments/01J3.seg#1"), 10, now - Duration::from_secs(5));
        file(&root.join("segments/01J2.seg"), 100, then);
        // Contended keys: another writer could take the name.
        file(&root.join("log/00000000000000000007#1"), 10, then);
        file(&root.join("segments/nested/01J4.seg#1"), 10, then);
        // Names LocalFileSystem lists as objects.
        file(&root.join("segments/a#b"), 3, then);
        file(&root.join("segments/a#"), 3, then);
        let store = LocalFileSystem::new_with_prefix(root).unwrap();
        let objects = || async {
            let mut listed: Vec<String> =
                store.list(None).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
            listed.sort();
            listed
        };
        let before = objects().await;

        let swept = sweep(root, now, MIN_AGE).unwrap();

        assert_eq!(swept, Swept { files: 2, bytes: 1024 });
        assert!(!root.join("segments/01J0.seg#1").exists() && !root.join("segments/01J1.seg#12").exists());
        assert!(root.join("segments/01J3.seg#1").exists(), "young: perhaps a PUT in progress");
        assert!(root.join("log/00000000000000000007#1").exists(), "a log entry's staging file stays");
        assert!(root.join("segments/nested/01J4.seg#1").exists(), "no segment key has a directory");
        assert_eq!(objects().await, before, "no object removed");
        assert_eq!(before, ["segments/01J2.seg", "segments/a#", "segments/a#b"]);
        assert_eq!(sweep(root, now, MIN_AGE).unwrap(), Swept::default(), "nothing left to sweep");
    }

    #[test]
    fn a_store_without_segments_has_nothing_to_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let swept = sweep(dir.path(), SystemTime::UNIX_EPOCH, MIN_AGE).unwrap();
        assert_eq!(swept, Swept::default());
    }
}
