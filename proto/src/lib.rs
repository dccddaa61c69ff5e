//! neptune-proto (work in progress).
