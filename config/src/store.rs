//! The `--set` store: key/value pairs, read through setting descriptors.
//!
//! Every key a process reads is remembered with the descriptor that read it; after the app and
//! the driver have read theirs, [`Config::check_all_used`] lists the ones nobody asked for, with
//! the closest known key as a hint, so a typo (`jobs.socre.kind`) is an error instead of being
//! silently ignored.

use crate::setting::Describe;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A configuration error naming the key (or the `--set` argument) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A `--set` argument without `=`.
    #[error("invalid --set `{0}`: expected KEY=VALUE")]
    Malformed(String),
    /// A value that does not parse as the key's type or lies outside its range.
    #[error("invalid value `{value}` for config key `{key}`: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A key without default that must be given.
    #[error("config key `{key}` is required")]
    Missing {
        /// The key.
        key: String,
    },
    /// Keys nobody reads.
    #[error("unknown config key(s): {}", .0.iter().map(UnknownKey::to_string).collect::<Vec<_>>().join(", "))]
    Unknown(Vec<UnknownKey>),
}

/// A key that was set but that no setting reads, with the closest key that is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// The key as given.
    pub key: String,
    /// The closest known key, when one is close.
    pub suggestion: Option<String>,
}

impl std::fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.suggestion {
            Some(s) => write!(f, "`{}` (did you mean `{s}`?)", self.key),
            None => write!(f, "`{}`", self.key),
        }
    }
}

/// `--set` values, kept sorted by key (a key set twice keeps the last value).
#[derive(Debug, Default)]
pub struct Config {
    values: BTreeMap<String, String>,
    /// Keys read so far, with the descriptor that read them (`None`: read raw).
    read: Mutex<BTreeMap<String, Option<&'static dyn Describe>>>,
}

impl Clone for Config {
    fn clone(&self) -> Self {
        Self {
            values: self.values.clone(),
            read: Mutex::new(self.read_keys().clone()),
        }
    }
}

impl Config {
    /// Parse `KEY=VALUE` arguments.
    ///
    /// # Errors
    /// [`ConfigError::Malformed`] naming the first argument without `=` or with an empty key.
    pub fn from_args<S: AsRef<str>>(args: &[S]) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        for a in args {
            let a = a.as_ref();
            match a.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => {
                    values.insert(k.trim().to_string(), v.trim().to_string());
                }
                _ => return Err(ConfigError::Malformed(a.to_string())),
            }
        }
        Ok(Self {
            values,
            read: Mutex::default(),
        })
    }

    /// Build from pairs (e.g. received from the driver).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            values: pairs.into_iter().collect(),
            read: Mutex::default(),
        }
    }

    /// All pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter()
    }

    /// Set a value (later `--set` wins).
    pub fn set(&mut self, key: &str, value: &str) {
        self.values.insert(key.to_string(), value.to_string());
    }

    fn read_keys(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, Option<&'static dyn Describe>>> {
        self.read.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Raw value of `key` as read by `setting`, marking it used. Settings call this; apps use
    /// the settings' typed getters.
    pub fn read(&self, key: &str, setting: &'static dyn Describe) -> Option<&str> {
        self.read_keys().insert(key.to_string(), Some(setting));
        self.values.get(key).map(String::as_str)
    }

    /// Raw value of `key`, marking it used (for keys that are not settings, such as the app
    /// arguments the driver forwards).
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.read_keys().entry(key.to_string()).or_insert(None);
        self.values.get(key).map(String::as_str)
    }

    /// The descriptors of the settings read so far, by key (a `jobs.<job>` setting appears once
    /// per job it was read for).
    pub fn settings_read(&self) -> Vec<(String, &'static dyn Describe)> {
        self.read_keys()
            .iter()
            .filter_map(|(k, d)| d.map(|d| (k.clone(), d)))
            .collect()
    }

    /// Keys set but never read.
    pub fn unused_keys(&self) -> Vec<String> {
        let read = self.read_keys();
        self.values
            .keys()
            .filter(|k| !read.contains_key(*k))
            .cloned()
            .collect()
    }

    /// Error if any key was set but never read.
    ///
    /// # Errors
    /// [`ConfigError::Unknown`] listing them, each with the closest key that was read.
    pub fn check_all_used(&self) -> Result<(), ConfigError> {
        let unused = self.unused_keys();
        if unused.is_empty() {
            return Ok(());
        }
        let read = self.read_keys();
        let unknown = unused
            .into_iter()
            .map(|key| {
                let suggestion = read
                    .keys()
                    .map(|k| (strsim::jaro_winkler(&key, k), k))
                    .filter(|(score, _)| *score > 0.85)
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, k)| k.clone());
                UnknownKey { key, suggestion }
            })
            .collect();
        Err(ConfigError::Unknown(unknown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Meta, UInt};

    static RATE: UInt = UInt::new(Meta::new("stream.rate", "rate"), 1, 10).default(1);

    #[test]
    fn unread_keys_are_reported_with_a_hint() {
        let c = Config::from_args(&["stream.rate=2", "stream.rte=3", "zzz=1"]).unwrap();
        assert_eq!(RATE.get(&c).unwrap(), 2);
        assert_eq!(
            c.unused_keys(),
            vec!["stream.rte".to_string(), "zzz".to_string()]
        );
        let e = c.check_all_used().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown config key(s): `stream.rte` (did you mean `stream.rate`?), `zzz`"
        );
    }

    #[test]
    fn set_without_equals_is_refused() {
        assert_eq!(
            Config::from_args(&["novalue"]).unwrap_err(),
            ConfigError::Malformed("novalue".into())
        );
        assert!(Config::from_args(&["=1"]).is_err());
    }

    #[test]
    fn clones_keep_what_was_read() {
        let c = Config::from_args(&["stream.rate=2"]).unwrap();
        RATE.get(&c).unwrap();
        assert!(c.clone().unused_keys().is_empty());
        assert_eq!(c.settings_read().len(), 1);
    }
}
