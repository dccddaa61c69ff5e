//! Key/value configuration (`--set k=v`), read with typed getters whose errors name the key.
//!
//! Every key a process reads is remembered; after the app and the driver have read theirs,
//! [`Config::unused_keys`] lists the ones nobody asked for, so a typo (`jobs.socre.kind`) is an
//! error instead of being silently ignored.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::str::FromStr;
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
    /// Keys nobody reads.
    #[error("unknown config key(s): {}", .0.join(", "))]
    Unknown(Vec<String>),
}

/// `--set` values, kept sorted by key (a key set twice keeps the last value).
#[derive(Debug, Default)]
pub struct Config {
    values: BTreeMap<String, String>,
    used: Mutex<BTreeSet<String>>,
}

impl Clone for Config {
    fn clone(&self) -> Self {
        Self {
            values: self.values.clone(),
            used: Mutex::new(self.used.lock().unwrap_or_else(|e| e.into_inner()).clone()),
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
            used: Mutex::default(),
        })
    }

    /// Build from pairs (e.g. received from the driver).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            values: pairs.into_iter().collect(),
            used: Mutex::default(),
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

    fn mark(&self, key: &str) {
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string());
    }

    /// Raw value of `key`, marking it used.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.mark(key);
        self.values.get(key).map(String::as_str)
    }

    /// Value of `key` parsed as `T`, or `default` when absent.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key when the value does not parse.
    pub fn get<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v.parse::<T>().map_err(|e| ConfigError::Invalid {
                key: key.to_string(),
                value: v.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Like [`Config::get`] but also checks `lo <= value <= hi`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key when the value does not parse or is out of range.
    pub fn get_in<T>(&self, key: &str, default: T, lo: T, hi: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
        T::Err: Display,
    {
        let v = self.get(key, default)?;
        if v < lo || v > hi {
            return Err(ConfigError::Invalid {
                key: key.to_string(),
                value: v.to_string(),
                reason: format!("must be between {lo} and {hi}"),
            });
        }
        Ok(v)
    }

    /// Keys set but never read.
    pub fn unused_keys(&self) -> Vec<String> {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        self.values
            .keys()
            .filter(|k| !used.contains(*k))
            .cloned()
            .collect()
    }

    /// Error if any key was set but never read.
    ///
    /// # Errors
    /// [`ConfigError::Unknown`] listing them.
    pub fn check_all_used(&self) -> Result<(), ConfigError> {
        let unused = self.unused_keys();
        if unused.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Unknown(unused))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_key() {
        let c = Config::from_args(&["rate=fast", "n=5"]).unwrap();
        let e = c.get::<u64>("rate", 1).unwrap_err();
        assert!(e.to_string().contains("`rate`"), "{e}");
        let e = c.get_in::<u64>("n", 1, 1, 3).unwrap_err();
        assert!(
            e.to_string().contains("`n`") && e.to_string().contains("between"),
            "{e}"
        );
    }

    #[test]
    fn unread_keys_are_reported() {
        let c = Config::from_args(&["a=1", "typo=2"]).unwrap();
        assert_eq!(c.get::<u32>("a", 0).unwrap(), 1);
        assert_eq!(c.unused_keys(), vec!["typo".to_string()]);
        assert!(c.check_all_used().unwrap_err().to_string().contains("typo"));
    }

    #[test]
    fn set_without_equals_is_refused() {
        assert_eq!(
            Config::from_args(&["novalue"]).unwrap_err(),
            ConfigError::Malformed("novalue".into())
        );
    }
}
