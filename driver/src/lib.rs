//! neptune-driver (work in progress).
