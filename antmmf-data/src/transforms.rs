//! transforms (in progress).
