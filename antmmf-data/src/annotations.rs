//! annotations (in progress).
