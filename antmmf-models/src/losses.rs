//! losses (in progress).
