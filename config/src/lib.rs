//! Neptune's settings: one typed model of every configuration key.
//!
//! Each setting is declared once, as a `static` descriptor ([`UInt`], [`Bytes`], [`Choice`],
//! [`Flag`], [`Float`], [`Text`]) holding its key, doc, type, default and range, plus where else it
//! appears: the CLI flag that sets it and the `StreamBatchApp` field the operator maps onto it.
//! Everything that reads or checks a setting goes through its descriptor:
//!
//! - the CLI (`--executors`, `--cores`, `--memory`, `--policy`) parses flags with
//!   [`UInt::parse`] and friends, so a flag and its `--set` key share range and message;
//! - the driver, executors and apps read `--set` values with [`UInt::get`] (typed, range-checked,
//!   errors naming the key) from the [`Config`] store, which also reports keys nobody read;
//! - the CRD crate takes its schema bounds from the same statics (`range(min = X.min, ...)`) and
//!   its cross-field CEL rules from [`rules`], and a test checks the generated schema against
//!   [`keys::ENGINE`] both ways;
//! - `docs/config.md` is generated from the descriptors ([`reference::markdown`]) and checked for
//!   drift by a test.
//!
//! Apps declare their own keys the same way (see the built-in apps), so `neptune config --app`
//! lists them too.

pub mod choice;
pub mod keys;
pub mod quantity;
pub mod reference;
pub mod rules;
mod setting;
mod store;

pub use choice::{ChoiceError, JobKind, Placement, Policy};
pub use setting::{Bytes, Choice, Describe, Flag, Float, Meta, Text, UInt};
pub use store::{Config, ConfigError, UnknownKey};
