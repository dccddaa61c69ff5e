//! neptune-crds (work in progress).
