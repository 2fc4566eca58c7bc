//! The integration tests of antmmf-tasks, built as one test binary: every binary links Burn and
//! FFmpeg, so one per crate keeps the test build small and quick to link. Each module is one
//! file of this folder; `every_test_file_is_a_module` (tests/main.rs) checks none is left out.
//! Many tests seed Burn's process-wide RNG and compare two runs: scripts/test.sh runs this
//! binary with `--test-threads=1`, and so should a direct `cargo test -p antmmf-tasks`.

mod checkpointing;
mod cnvid;
mod common;
mod data_parallel;
mod eval;
mod learning;
mod pretrained_mapping;
mod retrieval_metrics;
mod schedule;
mod snps3;
mod trainer;
mod vocab_check;
