//! media (in progress).
