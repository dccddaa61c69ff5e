//! Shared, versioned broadcast state (`State<T>` in the app model): written by one job on the
//! driver (e.g. batch training publishes a model), read by tasks of other jobs on executors.
//!
//! Values travel as postcard bytes; each executor decodes a version once and hands the decoded
//! value to every task that asks for it.

use serde::de::DeserializeOwned;
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// One version of one broadcast variable.
struct Entry {
    version: u64,
    bytes: Arc<Vec<u8>>,
    decoded: OnceLock<Arc<dyn Any + Send + Sync>>,
}

/// The broadcast variables an executor (or the driver) holds: name → latest version.
#[derive(Default)]
pub struct Broadcasts {
    entries: RwLock<HashMap<String, Arc<Entry>>>,
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
            return false;
        }
        let entry = Entry {
            version,
            bytes: Arc::new(bytes),
            decoded: OnceLock::new(),
        };
        map.insert(name.to_string(), Arc::new(entry));
        true
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
        if let Some(Ok(t)) = entry.decoded.get().map(|v| v.clone().downcast::<T>()) {
            return Ok(Some((entry.version, t)));
        }
        let value: Arc<T> = Arc::new(postcard::from_bytes(&entry.bytes)?);
        let _ = entry.decoded.set(value.clone());
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
}
