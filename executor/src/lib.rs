//! neptune-executor (work in progress).
