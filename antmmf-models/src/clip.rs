//! clip (in progress).
