//! Shared, versioned broadcast state (`State<T>` in the app model): written by one job on the
//! driver (e.g. batch training publishes a model), read by tasks of other jobs on executors.
//!
//! Values travel as postcard bytes; each executor decodes a version once and hands the decoded
//! value to every task that asks for it. [`Broadcasts::stats`] counts versions stored, deliveries
//! of versions already held and decodes, so "once per executor, not per task" is observable.

use serde::de::DeserializeOwned;
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// One version of one broadcast variable.
struct Entry {
    version: u64,
    bytes: Arc<Vec<u8>>,
    /// Held while decoding, so concurrent first readers decode the version once, not each.
    decoded: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
}

/// Counters of what a [`Broadcasts`] received and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BroadcastStats {
    /// Versions stored (each a `put` of a version newer than the one held).
    pub stored: u64,
    /// `put`s of a version already held (or older): redundant deliveries.
    pub duplicates: u64,
    /// Versions decoded for readers (at most one per stored version and type).
    pub decodes: u64,
}

/// The broadcast variables an executor (or the driver) holds: name → latest version.
#[derive(Default)]
pub struct Broadcasts {
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    stored: AtomicU64,
    duplicates: AtomicU64,
    decodes: AtomicU64,
}

impl std::fmt::Debug for Broadcasts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.versions()).finish()
    }
}

impl Broadcasts {
    /// Store `bytes` as `version` of `name` unless a newer or equal version is held. Returns whether
    /// it was stored.
    pub fn put(&self, name: &str, version: u64, bytes: Vec<u8>) -> bool {
        let mut map = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if map.get(name).is_some_and(|e| e.version >= version) {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let entry = Entry {
            version,
            bytes: Arc::new(bytes),
            decoded: Mutex::new(None),
        };
        map.insert(name.to_string(), Arc::new(entry));
        self.stored.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// What this holder has received and decoded so far.
    pub fn stats(&self) -> BroadcastStats {
        BroadcastStats {
            stored: self.stored.load(Ordering::Relaxed),
            duplicates: self.duplicates.load(Ordering::Relaxed),
            decodes: self.decodes.load(Ordering::Relaxed),
        }
    }

    /// Latest version held of every variable.
    pub fn versions(&self) -> Vec<(String, u64)> {
        let map = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map.iter().map(|(k, e)| (k.clone(), e.version)).collect();
        v.sort();
        v
    }

    /// Version held of `name`, if any.
    pub fn version(&self, name: &str) -> Option<u64> {
        let map = self.entries.read().unwrap_or_else(|e| e.into_inner());
        map.get(name).map(|e| e.version)
    }

    /// Raw bytes of the latest version of `name`.
    pub fn bytes(&self, name: &str) -> Option<(u64, Arc<Vec<u8>>)> {
        let map = self.entries.read().unwrap_or_else(|e| e.into_inner());
        map.get(name).map(|e| (e.version, e.bytes.clone()))
    }

    /// Latest version of `name` decoded as `T` (decoded once per version, then shared).
    ///
    /// # Errors
    /// Returns an error when the bytes do not decode as `T` (a programming error: the writer and
    /// the reader disagree on the type).
    pub fn get<T>(&self, name: &str) -> Result<Option<(u64, Arc<T>)>, postcard::Error>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let entry = {
            let map = self.entries.read().unwrap_or_else(|e| e.into_inner());
            match map.get(name) {
                Some(e) => e.clone(),
                None => return Ok(None),
            }
        };
        let mut decoded = entry.decoded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Ok(t)) = decoded.as_ref().map(|v| v.clone().downcast::<T>()) {
            return Ok(Some((entry.version, t)));
        }
        let value: Arc<T> = Arc::new(postcard::from_bytes(&entry.bytes)?);
        self.decodes.fetch_add(1, Ordering::Relaxed);
        *decoded = Some(value.clone());
        Ok(Some((entry.version, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_replace_older_ones_only() {
        let b = Broadcasts::default();
        assert!(b.put("m", 1, postcard::to_stdvec(&vec![1.0f64]).unwrap()));
        assert!(!b.put("m", 1, postcard::to_stdvec(&vec![2.0f64]).unwrap()));
        assert!(b.put("m", 3, postcard::to_stdvec(&vec![3.0f64]).unwrap()));
        let (v, m) = b.get::<Vec<f64>>("m").unwrap().unwrap();
        assert_eq!((v, m.as_slice()), (3, &[3.0][..]));
        assert!(b.get::<Vec<f64>>("other").unwrap().is_none());
    }

    #[test]
    fn a_version_is_decoded_once_however_many_tasks_read_it() {
        let b = Arc::new(Broadcasts::default());
        b.put("m", 1, postcard::to_stdvec(&vec![1.0f64]).unwrap());
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        assert_eq!(b.get::<Vec<f64>>("m").unwrap().unwrap().0, 1);
                    }
                })
            })
            .collect();
        for r in readers {
            r.join().unwrap();
        }
        assert!(!b.put("m", 1, Vec::new()));
        let s = b.stats();
        assert_eq!((s.stored, s.duplicates, s.decodes), (1, 1, 1));
        b.put("m", 2, postcard::to_stdvec(&vec![2.0f64]).unwrap());
        b.get::<Vec<f64>>("m").unwrap();
        assert_eq!(b.stats().decodes, 2);
    }
}
