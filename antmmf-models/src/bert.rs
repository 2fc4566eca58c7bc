//! bert (in progress).
