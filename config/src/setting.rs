//! Setting descriptors: a key with its doc, type, default and range, and the typed getters that
//! read it from a [`Config`] (marking it used, parsing, range-checking, naming the key on error).
//!
//! Descriptors are `static`s so the config store can remember which ones a process read (for
//! the generated reference and for "did you mean" hints on unknown keys). A key may contain
//! `<job>`, replaced by a job name in the `*_for` getters (`jobs.<job>.interval_ms`).

use crate::quantity::{format_bytes, parse_bytes};
use crate::store::{Config, ConfigError};
use std::fmt::Display;
use std::str::FromStr;
use strum::VariantNames;

/// What every setting has, whatever its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// The `--set` key (may contain `<job>`); for flag-only settings, the flag's name.
    pub key: &'static str,
    /// One sentence for users.
    pub doc: &'static str,
    /// The CLI flag that sets it, if any (`--executors`).
    pub flag: Option<&'static str>,
    /// Whether `--set KEY=...` sets it (false for flag-only settings such as `--cores`).
    pub set: bool,
    /// The `StreamBatchApp` field the operator maps onto it (`spec.scheduling.quantumMs`).
    pub crd: Option<&'static str>,
    /// Whether a running driver applies a change without restarting.
    pub live: bool,
    /// How the default is derived, when it is not a constant.
    pub default_doc: Option<&'static str>,
}

impl Meta {
    /// A `--set` key.
    pub const fn new(key: &'static str, doc: &'static str) -> Self {
        Self {
            key,
            doc,
            flag: None,
            set: true,
            crd: None,
            live: false,
            default_doc: None,
        }
    }

    /// A setting only a CLI flag sets (no `--set` key).
    pub const fn flag_only(flag: &'static str, doc: &'static str) -> Self {
        Self {
            key: flag,
            doc,
            flag: Some(flag),
            set: false,
            crd: None,
            live: false,
            default_doc: None,
        }
    }

    /// Also set by this CLI flag.
    pub const fn flag(mut self, flag: &'static str) -> Self {
        self.flag = Some(flag);
        self
    }

    /// Mapped from this `StreamBatchApp` field.
    pub const fn crd(mut self, path: &'static str) -> Self {
        self.crd = Some(path);
        self
    }

    /// Applied by a running driver.
    pub const fn live(mut self) -> Self {
        self.live = true;
        self
    }

    /// The default is derived as described.
    pub const fn default_doc(mut self, how: &'static str) -> Self {
        self.default_doc = Some(how);
        self
    }

    /// The key with `<job>` replaced by `job`.
    pub fn key_for(&self, job: &str) -> String {
        self.key.replace("<job>", job)
    }
}

/// What the reference table and the CRD contract test need to know of any setting.
pub trait Describe: Sync + std::fmt::Debug {
    /// Key, doc and where it appears.
    fn meta(&self) -> &Meta;
    /// The type as users read it (`integer (ms)`, `one of: a, b`).
    fn type_text(&self) -> String;
    /// The default, or empty when there is none.
    fn default_text(&self) -> String;
    /// The accepted range, or empty when any value of the type is accepted.
    fn range_text(&self) -> String;
    /// Numeric bounds `(min, max)`, for the CRD contract test.
    fn bounds(&self) -> Option<(f64, f64)> {
        None
    }
    /// Accepted names, for enumerated settings.
    fn choices(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether `raw` is a valid value for `key` (for checks that see a value before any process
    /// reads it, such as the operator's). Cross-key rules are not checked here.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    fn check(&self, key: &str, raw: &str) -> Result<(), ConfigError>;
}

fn invalid(key: &str, value: &str, reason: impl Display) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// An unsigned integer setting (counts, milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UInt {
    /// Key, doc, flag, CRD field.
    pub meta: Meta,
    /// Default value (`None`: unset unless given, or derived — see `meta.default_doc`).
    pub default: Option<u64>,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// Unit shown in docs (`ms`), empty for counts.
    pub unit: &'static str,
}

impl UInt {
    /// A setting accepting `min..=max`, without default.
    pub const fn new(meta: Meta, min: u64, max: u64) -> Self {
        Self {
            meta,
            default: None,
            min,
            max,
            unit: "",
        }
    }

    /// With this default.
    pub const fn default(mut self, value: u64) -> Self {
        self.default = Some(value);
        self
    }

    /// Measured in `unit`.
    pub const fn unit(mut self, unit: &'static str) -> Self {
        self.unit = unit;
        self
    }

    /// Parses and range-checks `raw` as the value of `key`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key, the value and the range.
    pub fn parse_as(&self, key: &str, raw: &str) -> Result<u64, ConfigError> {
        let v: u64 = raw.trim().parse().map_err(|e| invalid(key, raw, e))?;
        self.check_as(key, v)
    }

    /// Range-checks a value of `key`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and the range.
    pub fn check_as(&self, key: &str, v: u64) -> Result<u64, ConfigError> {
        if v < self.min || v > self.max {
            return Err(invalid(
                key,
                &v.to_string(),
                format!("must be between {} and {}", self.min, self.max),
            ));
        }
        Ok(v)
    }

    /// Parses a flag or admin value for this setting (errors name the setting's key or flag).
    ///
    /// # Errors
    /// See [`UInt::parse_as`].
    pub fn parse(&self, raw: &str) -> Result<u64, ConfigError> {
        self.parse_as(self.meta.key, raw)
    }

    /// The value from `cfg`, or the default.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key; [`ConfigError::Missing`] when the key is not set
    /// and has no default.
    pub fn get(&'static self, cfg: &Config) -> Result<u64, ConfigError> {
        self.get_at(cfg, self.meta.key)
    }

    /// The value of the key for `job` (`jobs.<job>.…`), or the default.
    ///
    /// # Errors
    /// As [`UInt::get`].
    pub fn get_for(&'static self, cfg: &Config, job: &str) -> Result<u64, ConfigError> {
        self.get_at(cfg, &self.meta.key_for(job))
    }

    /// The value if set (`None` when absent), range-checked.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn get_opt(&'static self, cfg: &Config) -> Result<Option<u64>, ConfigError> {
        self.opt_at(cfg, self.meta.key)
    }

    /// [`UInt::get_opt`] for the key of `job`.
    ///
    /// # Errors
    /// As [`UInt::get_opt`].
    pub fn get_opt_for(&'static self, cfg: &Config, job: &str) -> Result<Option<u64>, ConfigError> {
        self.opt_at(cfg, &self.meta.key_for(job))
    }

    fn opt_at(&'static self, cfg: &Config, key: &str) -> Result<Option<u64>, ConfigError> {
        cfg.read(key, self)
            .map(|raw| self.parse_as(key, raw))
            .transpose()
    }

    fn get_at(&'static self, cfg: &Config, key: &str) -> Result<u64, ConfigError> {
        match self.opt_at(cfg, key)? {
            Some(v) => Ok(v),
            None => self.default.ok_or_else(|| ConfigError::Missing {
                key: key.to_string(),
            }),
        }
    }
}

impl Describe for UInt {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn check(&self, key: &str, raw: &str) -> Result<(), ConfigError> {
        self.parse_as(key, raw).map(|_| ())
    }
    fn type_text(&self) -> String {
        if self.unit.is_empty() {
            "integer".into()
        } else {
            format!("integer ({})", self.unit)
        }
    }
    fn default_text(&self) -> String {
        match (self.meta.default_doc, self.default) {
            (Some(how), _) => how.to_string(),
            (None, Some(v)) => v.to_string(),
            (None, None) => String::new(),
        }
    }
    fn range_text(&self) -> String {
        if self.max == u64::MAX {
            format!("≥ {}", self.min)
        } else {
            format!("{} – {}", self.min, self.max)
        }
    }
    fn bounds(&self) -> Option<(f64, f64)> {
        Some((self.min as f64, self.max as f64))
    }
}

/// A byte-count setting, written as a Kubernetes quantity (`512Mi`, `2Gi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bytes {
    /// Key, doc, flag, CRD field.
    pub meta: Meta,
    /// Default in bytes.
    pub default: Option<u64>,
    /// Smallest accepted value, bytes.
    pub min: u64,
    /// Largest accepted value, bytes.
    pub max: u64,
}

impl Bytes {
    /// A byte setting accepting `min..=max`, without default.
    pub const fn new(meta: Meta, min: u64, max: u64) -> Self {
        Self {
            meta,
            default: None,
            min,
            max,
        }
    }

    /// With this default.
    pub const fn default(mut self, bytes: u64) -> Self {
        self.default = Some(bytes);
        self
    }

    /// Parses and range-checks a quantity given for `key`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key, the value and what was expected.
    pub fn parse_as(&self, key: &str, raw: &str) -> Result<u64, ConfigError> {
        let v = parse_bytes(raw).map_err(|e| invalid(key, raw, e))?;
        if v < self.min || v > self.max {
            return Err(invalid(
                key,
                raw,
                format!(
                    "must be between {} and {}",
                    format_bytes(self.min),
                    format_bytes(self.max)
                ),
            ));
        }
        Ok(v)
    }

    /// Parses a flag value for this setting.
    ///
    /// # Errors
    /// See [`Bytes::parse_as`].
    pub fn parse(&self, raw: &str) -> Result<u64, ConfigError> {
        self.parse_as(self.meta.key, raw)
    }

    /// The value from `cfg`, or the default.
    ///
    /// # Errors
    /// As [`UInt::get`].
    pub fn get(&'static self, cfg: &Config) -> Result<u64, ConfigError> {
        let key = self.meta.key;
        match cfg.read(key, self) {
            Some(raw) => self.parse_as(key, raw),
            None => self.default.ok_or_else(|| ConfigError::Missing {
                key: key.to_string(),
            }),
        }
    }
}

impl Describe for Bytes {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn check(&self, key: &str, raw: &str) -> Result<(), ConfigError> {
        self.parse_as(key, raw).map(|_| ())
    }
    fn type_text(&self) -> String {
        "bytes (quantity: 512Mi, 2Gi)".into()
    }
    fn default_text(&self) -> String {
        self.meta
            .default_doc
            .map(str::to_string)
            .or_else(|| self.default.map(format_bytes))
            .unwrap_or_default()
    }
    fn range_text(&self) -> String {
        format!("{} – {}", format_bytes(self.min), format_bytes(self.max))
    }
    fn bounds(&self) -> Option<(f64, f64)> {
        Some((self.min as f64, self.max as f64))
    }
}

/// A floating-point setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Float {
    /// Key, doc.
    pub meta: Meta,
    /// Default.
    pub default: f64,
    /// Smallest accepted value.
    pub min: f64,
    /// Largest accepted value.
    pub max: f64,
}

impl Float {
    /// A setting accepting finite values in `min..=max`.
    pub const fn new(meta: Meta, default: f64, min: f64, max: f64) -> Self {
        Self {
            meta,
            default,
            min,
            max,
        }
    }

    /// The value from `cfg`, or the default.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn get(&'static self, cfg: &Config) -> Result<f64, ConfigError> {
        let key = self.meta.key;
        let Some(raw) = cfg.read(key, self) else {
            return Ok(self.default);
        };
        let v: f64 = raw.trim().parse().map_err(|e| invalid(key, raw, e))?;
        if !v.is_finite() || v < self.min || v > self.max {
            return Err(invalid(
                key,
                raw,
                format!("must be between {} and {}", self.min, self.max),
            ));
        }
        Ok(v)
    }
}

impl Describe for Float {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn check(&self, key: &str, raw: &str) -> Result<(), ConfigError> {
        match raw.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= self.min && v <= self.max => Ok(()),
            _ => Err(invalid(
                key,
                raw,
                format!("must be a number between {} and {}", self.min, self.max),
            )),
        }
    }
    fn type_text(&self) -> String {
        "number".into()
    }
    fn default_text(&self) -> String {
        self.default.to_string()
    }
    fn range_text(&self) -> String {
        format!("{} – {}", self.min, self.max)
    }
    fn bounds(&self) -> Option<(f64, f64)> {
        Some((self.min, self.max))
    }
}

/// A boolean setting (`true` / `false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    /// Key, doc.
    pub meta: Meta,
    /// Default.
    pub default: bool,
}

impl Flag {
    /// A boolean setting.
    pub const fn new(meta: Meta, default: bool) -> Self {
        Self { meta, default }
    }

    /// The value from `cfg`, or the default.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn get(&'static self, cfg: &Config) -> Result<bool, ConfigError> {
        let key = self.meta.key;
        match cfg.read(key, self) {
            None => Ok(self.default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|_| invalid(key, raw, "expected `true` or `false`")),
        }
    }
}

impl Describe for Flag {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn check(&self, key: &str, raw: &str) -> Result<(), ConfigError> {
        raw.trim()
            .parse::<bool>()
            .map(|_| ())
            .map_err(|_| invalid(key, raw, "expected `true` or `false`"))
    }
    fn type_text(&self) -> String {
        "true | false".into()
    }
    fn default_text(&self) -> String {
        self.default.to_string()
    }
    fn range_text(&self) -> String {
        String::new()
    }
}

/// A free-text setting (paths, addresses), bounded in length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    /// Key, doc.
    pub meta: Meta,
    /// Default (`None`: unset).
    pub default: Option<&'static str>,
    /// Longest accepted value, bytes.
    pub max_len: usize,
}

impl Text {
    /// A text setting of at most 4096 bytes, unset by default.
    pub const fn new(meta: Meta) -> Self {
        Self {
            meta,
            default: None,
            max_len: 4096,
        }
    }

    /// With this default.
    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }

    /// The value if set (else the default, if any).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key when the value is empty or too long.
    pub fn get_opt(&'static self, cfg: &Config) -> Result<Option<String>, ConfigError> {
        let key = self.meta.key;
        match cfg.read(key, self) {
            None => Ok(self.default.map(str::to_string)),
            Some(raw) if raw.is_empty() => Err(invalid(key, raw, "must not be empty")),
            Some(raw) if raw.len() > self.max_len => Err(invalid(
                key,
                &format!("{}…", raw.chars().take(32).collect::<String>()),
                format!("longer than {} bytes", self.max_len),
            )),
            Some(raw) => Ok(Some(raw.to_string())),
        }
    }
}

impl Describe for Text {
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn check(&self, key: &str, raw: &str) -> Result<(), ConfigError> {
        if raw.is_empty() || raw.len() > self.max_len {
            return Err(invalid(
                key,
                raw,
                format!("must be 1 to {} bytes", self.max_len),
            ));
        }
        Ok(())
    }
    fn type_text(&self) -> String {
        "text".into()
    }
    fn default_text(&self) -> String {
        self.default.unwrap_or_default().to_string()
    }
    fn range_text(&self) -> String {
        String::new()
    }
}

/// A setting with a fixed set of names (an enum deriving `strum`'s `EnumString` and
/// `VariantNames`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice<E: 'static> {
    /// Key, doc, flag, CRD field.
    pub meta: Meta,
    /// Default.
    pub default: E,
}

impl<E> Choice<E>
where
    E: Copy + FromStr + Display + VariantNames + Sync + std::fmt::Debug + 'static,
    E::Err: Display,
{
    /// A choice with a default.
    pub const fn new(meta: Meta, default: E) -> Self {
        Self { meta, default }
    }

    /// Parses a value given for `key`.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key and the accepted names.
    pub fn parse_as(&self, key: &str, raw: &str) -> Result<E, ConfigError> {
        raw.trim().parse().map_err(|e| invalid(key, raw, e))
    }

    /// Parses a flag or admin value for this setting.
    ///
    /// # Errors
    /// See [`Choice::parse_as`].
    pub fn parse(&self, raw: &str) -> Result<E, ConfigError> {
        self.parse_as(self.meta.key, raw)
    }

    /// The value from `cfg`, or the default.
    ///
    /// # Errors
    /// As [`Choice::parse_as`].
    pub fn get(&'static self, cfg: &Config) -> Result<E, ConfigError> {
        Ok(self.get_opt(cfg)?.unwrap_or(self.default))
    }

    /// The value if set.
    ///
    /// # Errors
    /// As [`Choice::parse_as`].
    pub fn get_opt(&'static self, cfg: &Config) -> Result<Option<E>, ConfigError> {
        let key = self.meta.key;
        cfg.read(key, self)
            .map(|raw| self.parse_as(key, raw))
            .transpose()
    }

    /// The value of the key for `job`, or `default`.
    ///
    /// # Errors
    /// As [`Choice::parse_as`].
    pub fn get_for(&'static self, cfg: &Config, job: &str, default: E) -> Result<E, ConfigError> {
        let key = self.meta.key_for(job);
        match cfg.read(&key, self) {
            Some(raw) => self.parse_as(&key, raw),
            None => Ok(default),
        }
    }
}

impl<E> Describe for Choice<E>
where
    E: Copy + FromStr + Display + VariantNames + Sync + std::fmt::Debug + 'static,
    E::Err: Display,
{
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn check(&self, key: &str, raw: &str) -> Result<(), ConfigError> {
        self.parse_as(key, raw).map(|_| ())
    }
    fn type_text(&self) -> String {
        format!("one of: {}", E::VARIANTS.join(", "))
    }
    fn default_text(&self) -> String {
        self.meta
            .default_doc
            .map_or_else(|| self.default.to_string(), str::to_string)
    }
    fn range_text(&self) -> String {
        String::new()
    }
    fn choices(&self) -> &'static [&'static str] {
        E::VARIANTS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Policy;

    static N: UInt = UInt::new(Meta::new("n", "a count"), 1, 3).default(2);
    static REQUIRED: UInt = UInt::new(Meta::new("req", "required"), 0, 9);
    static IV: UInt = UInt::new(Meta::new("jobs.<job>.interval_ms", "interval"), 1, 100);
    static MEM: Bytes = Bytes::new(Meta::new("mem", "memory"), 1 << 20, 1 << 30).default(1 << 25);
    static POL: Choice<Policy> = Choice::new(Meta::new("p", "policy"), Policy::Neptune);
    static RATE: Float = Float::new(Meta::new("r", "rate"), 0.5, 0.0, 1.0);
    static ON: Flag = Flag::new(Meta::new("on", "switch"), false);
    static PATH: Text = Text::new(Meta::new("path", "a path"));

    fn cfg(args: &[&str]) -> Config {
        Config::from_args(args).unwrap()
    }

    #[test]
    fn values_are_typed_defaulted_and_range_checked() {
        assert_eq!(N.get(&cfg(&[])).unwrap(), 2);
        assert_eq!(N.get(&cfg(&["n=3"])).unwrap(), 3);
        let e = N.get(&cfg(&["n=4"])).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid value `4` for config key `n`: must be between 1 and 3"
        );
        assert!(
            N.get(&cfg(&["n=x"]))
                .unwrap_err()
                .to_string()
                .contains("`n`")
        );
        assert_eq!(
            REQUIRED.get(&cfg(&[])).unwrap_err().to_string(),
            "config key `req` is required"
        );
        assert_eq!(REQUIRED.get_opt(&cfg(&[])).unwrap(), None);
        assert_eq!(IV.get_for(&cfg(&["jobs.a.interval_ms=7"]), "a").unwrap(), 7);
        let e = IV
            .get_for(&cfg(&["jobs.a.interval_ms=0"]), "a")
            .unwrap_err();
        assert!(e.to_string().contains("`jobs.a.interval_ms`"), "{e}");
        assert_eq!(MEM.get(&cfg(&["mem=2Mi"])).unwrap(), 2 << 20);
        assert!(
            MEM.get(&cfg(&["mem=2Gi"]))
                .unwrap_err()
                .to_string()
                .contains("1Mi and 1Gi")
        );
        assert_eq!(POL.get(&cfg(&["p=fifo"])).unwrap(), Policy::Fifo);
        assert!(
            POL.get(&cfg(&["p=lifo"]))
                .unwrap_err()
                .to_string()
                .contains("`p`")
        );
        assert_eq!(RATE.get(&cfg(&["r=0.25"])).unwrap(), 0.25);
        assert!(RATE.get(&cfg(&["r=NaN"])).is_err());
        assert!(ON.get(&cfg(&["on=true"])).unwrap());
        assert!(ON.get(&cfg(&["on=yes"])).is_err());
        assert_eq!(PATH.get_opt(&cfg(&[])).unwrap(), None);
        assert!(PATH.get_opt(&cfg(&["path="])).is_err());
    }

    #[test]
    fn reading_a_setting_marks_its_key_used() {
        let c = cfg(&["n=1", "jobs.a.interval_ms=5", "typo=1"]);
        N.get(&c).unwrap();
        IV.get_for(&c, "a").unwrap();
        assert_eq!(c.unused_keys(), vec!["typo".to_string()]);
    }

    #[test]
    fn descriptions_carry_type_default_and_range() {
        assert_eq!(N.type_text(), "integer");
        assert_eq!(N.range_text(), "1 – 3");
        assert_eq!(MEM.default_text(), "32Mi");
        assert_eq!(POL.type_text(), "one of: neptune, fifo, fair, kill, static");
        assert_eq!(POL.choices().len(), 5);
    }
}
