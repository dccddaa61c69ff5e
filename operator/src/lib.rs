//! neptune-operator (work in progress).
