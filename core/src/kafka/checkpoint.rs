//! The durable offset log of one Kafka source (Spark's offset and commit logs, in one
//! directory): `plan-B.json` holds micro-batch `B`'s planned ranges, written before any of its
//! tasks runs; `commit-B.json` the offsets where the next micro-batch starts, written when `B`
//! commits. Each file is written under a temporary name, synced and renamed, so a driver killed
//! at any point leaves whole files only.
//!
//! On start the driver reads the newest commit (where to resume) and a plan logged after it, if
//! any: that micro-batch was planned and may have run in part (its tasks may have written to a
//! sink) but did not commit, so it runs again with exactly the same ranges and batch number.
//! Files older than the newest commit by more than [`KEEP`] batches are removed. `metadata.json`
//! holds the checkpoint's id ([`Checkpoint::id`]).
//!
//! Both files also carry the shared state the source's job publishes from its commits
//! ([`SavedState`]; e.g. fraud-detection's pinned model): a plan the state its micro-batch's tasks
//! read, a commit the state its commit left. A restarted driver restores the replayed plan's, else
//! the newest commit's, before any task runs, so a micro-batch run again reads what its first
//! attempt read and its output (a sink's exactly-once rests on it) is the same.

use super::KafkaError;
use super::plan::{BatchPlan, PartitionOffsets};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Committed batches whose files are kept (for inspection) besides the newest.
pub const KEEP: u64 = 10;

/// What a commit file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The micro-batch.
    pub batch: u64,
    /// Where the next micro-batch starts, per partition.
    pub next: PartitionOffsets,
    /// The job's shared state as this commit left it (absent in files of older versions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state: Vec<SavedState>,
}

/// One shared-state variable's version and value (postcard bytes, base64 in the file), as
/// [`crate::state::Broadcasts`] holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    /// The variable's name.
    pub name: String,
    /// Its version.
    pub version: u64,
    /// Its value.
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
}

/// Bytes as one base64 string: a third more than the bytes, where serde_json's default (an
/// array of numbers) takes up to four times as much.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// The checkpoint's metadata file.
const METADATA: &str = "metadata.json";

/// What `metadata.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Metadata {
    id: String,
}

/// What a checkpoint holds: the newest commit and the plans logged after it.
pub type Loaded = (Option<Committed>, Vec<(u64, BatchPlan)>);

/// A source's checkpoint directory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    dir: PathBuf,
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> KafkaError {
    KafkaError::Checkpoint(format!("{what} {}: {e}", path.display()))
}

/// The batch number in `plan-B.json` / `commit-B.json`.
fn batch_of(name: &str, prefix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

impl Checkpoint {
    /// The checkpoint in `dir`, created when missing.
    ///
    /// # Errors
    /// [`KafkaError::Checkpoint`] naming the directory.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, KafkaError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, e))?;
        Ok(Self { dir })
    }

    fn batches(&self, prefix: &str) -> Result<Vec<u64>, KafkaError> {
        let mut out: Vec<u64> = std::fs::read_dir(&self.dir)
            .map_err(|e| io_err("list", &self.dir, e))?
            .filter_map(Result::ok)
            .filter_map(|e| batch_of(&e.file_name().to_string_lossy(), prefix))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    fn read<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, KafkaError> {
        let path = self.dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| io_err("read", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| io_err("parse", &path, e))
    }

    fn write<T: Serialize>(&self, name: &str, value: &T) -> Result<(), KafkaError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let bytes = serde_json::to_vec(value).map_err(|e| io_err("encode", &path, e))?;
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_err("create", &tmp, e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io_err("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_err("rename", &path, e))?;
        // The rename itself must survive a crash: sync the directory.
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// The checkpoint's id (`metadata.json`, as Spark's query id): drawn when the checkpoint is
    /// first used and kept for its life, it names the numbering of its micro-batches (a new
    /// checkpoint numbers from 0 again) in output deduplicated by micro-batch (the Kafka sink).
    ///
    /// # Errors
    /// [`KafkaError::Checkpoint`] naming the file.
    pub fn id(&self) -> Result<String, KafkaError> {
        if self.dir.join(METADATA).exists() {
            return Ok(self.read::<Metadata>(METADATA)?.id);
        }
        let m = Metadata {
            id: super::new_epoch(),
        };
        self.write(METADATA, &m)?;
        Ok(m.id)
    }

    /// The newest committed micro-batch, and the micro-batches planned after it, in order.
    ///
    /// # Errors
    /// [`KafkaError::Checkpoint`] naming an unreadable file.
    pub fn load(&self) -> Result<Loaded, KafkaError> {
        let committed = match self.batches("commit-")?.last() {
            Some(&b) => Some(self.read::<Committed>(&format!("commit-{b:012}.json"))?),
            None => None,
        };
        let after = committed.as_ref().map_or(0, |c| c.batch + 1);
        let mut pending = Vec::new();
        for b in self.batches("plan-")?.into_iter().filter(|&b| b >= after) {
            pending.push((b, self.read::<BatchPlan>(&format!("plan-{b:012}.json"))?));
        }
        Ok((committed, pending))
    }

    /// Log micro-batch `batch`'s plan (before any of its tasks runs).
    ///
    /// # Errors
    /// [`KafkaError::Checkpoint`] naming the file.
    pub fn log_plan(&self, batch: u64, plan: &BatchPlan) -> Result<(), KafkaError> {
        self.write(&format!("plan-{batch:012}.json"), plan)
    }

    /// Mark micro-batch `c.batch` committed, and prune old files.
    ///
    /// # Errors
    /// [`KafkaError::Checkpoint`] naming the file.
    pub fn commit(&self, c: &Committed) -> Result<(), KafkaError> {
        self.write(&format!("commit-{:012}.json", c.batch), c)?;
        for prefix in ["plan-", "commit-"] {
            for b in self.batches(prefix)? {
                if b.saturating_add(KEEP) < c.batch {
                    let _ = std::fs::remove_file(self.dir.join(format!("{prefix}{b:012}.json")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::plan::OffsetRange;

    fn plan(until: i64) -> BatchPlan {
        let r = OffsetRange {
            partition: 0,
            from: 0,
            until,
        };
        BatchPlan {
            ranges: [(0, r)].into(),
            slots: vec![vec![r]],
            lost: 0,
            state: Vec::new(),
        }
    }

    #[test]
    fn a_planned_batch_without_commit_is_replayed_and_a_committed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::open(dir.path().join("src")).unwrap();
        assert_eq!(cp.load().unwrap(), (None, vec![]));
        cp.log_plan(0, &plan(5)).unwrap();
        assert_eq!(cp.load().unwrap(), (None, vec![(0, plan(5))]));
        let c = Committed {
            batch: 0,
            next: [(0, 5)].into(),
            state: Vec::new(),
        };
        cp.commit(&c).unwrap();
        assert_eq!(cp.load().unwrap(), (Some(c.clone()), vec![]));
        cp.log_plan(1, &plan(9)).unwrap();
        // A reopened checkpoint (a restarted driver) sees the same.
        let again = Checkpoint::open(dir.path().join("src")).unwrap();
        assert_eq!(again.load().unwrap(), (Some(c), vec![(1, plan(9))]));
    }

    #[test]
    fn the_id_is_drawn_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let id = Checkpoint::open(dir.path()).unwrap().id().unwrap();
        assert_eq!(id.len(), 16, "{id}");
        assert_eq!(Checkpoint::open(dir.path()).unwrap().id().unwrap(), id);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(Checkpoint::open(other.path()).unwrap().id().unwrap(), id);
    }

    #[test]
    fn old_batches_are_pruned_and_a_corrupt_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::open(dir.path()).unwrap();
        for b in 0..30 {
            cp.log_plan(b, &plan(b as i64)).unwrap();
            cp.commit(&Committed {
                batch: b,
                next: [(0, b as i64)].into(),
                state: Vec::new(),
            })
            .unwrap();
        }
        assert_eq!(cp.batches("commit-").unwrap().len() as u64, KEEP + 1);
        std::fs::write(dir.path().join("commit-000000000031.json"), b"{").unwrap();
        let e = cp.load().unwrap_err().to_string();
        assert!(e.contains("commit-000000000031.json"), "{e}");
    }

    #[test]
    fn state_is_kept_with_plans_and_commits_and_files_without_it_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::open(dir.path()).unwrap();
        let pin = |version: u64, bytes: &[u8]| SavedState {
            name: "pin".into(),
            version,
            bytes: bytes.to_vec(),
        };
        let mut p = plan(5);
        p.state = vec![pin(3, &[0, 1, 255])];
        cp.log_plan(0, &p).unwrap();
        let text = std::fs::read_to_string(dir.path().join("plan-000000000000.json")).unwrap();
        assert!(
            text.contains(r#""bytes":"AAH/""#),
            "base64 in the file: {text}"
        );
        assert_eq!(cp.load().unwrap().1, vec![(0, p)]);
        let c = Committed {
            batch: 0,
            next: [(0, 5)].into(),
            state: vec![pin(4, b"next")],
        };
        cp.commit(&c).unwrap();
        assert_eq!(cp.load().unwrap().0, Some(c));

        // Files written before the state was kept.
        std::fs::write(
            dir.path().join("commit-000000000001.json"),
            r#"{"batch":1,"next":{"0":9}}"#,
        )
        .unwrap();
        let (c, _) = cp.load().unwrap();
        assert_eq!(c.unwrap().state, vec![]);
        // Bytes that are not base64 are named.
        std::fs::write(
            dir.path().join("commit-000000000002.json"),
            r#"{"batch":2,"next":{},"state":[{"name":"pin","version":1,"bytes":"*"}]}"#,
        )
        .unwrap();
        let e = cp.load().unwrap_err().to_string();
        assert!(e.contains("commit-000000000002.json"), "{e}");
    }
}
