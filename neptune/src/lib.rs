//! The neptune facade crate (work in progress).
