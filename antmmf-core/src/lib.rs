//! antmmf-core.
