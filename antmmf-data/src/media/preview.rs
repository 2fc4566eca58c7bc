//! The `frames` command's logic (in progress).
