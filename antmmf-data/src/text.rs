//! text (in progress).
