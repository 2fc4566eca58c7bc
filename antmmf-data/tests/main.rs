//! The integration tests of antmmf-data, built as one test binary: every binary links Burn and
//! FFmpeg, so one per crate keeps the test build small and quick to link. Each module is one
//! file of this folder; `every_test_file_is_a_module` (tests/main.rs) checks none is left out.

mod annotations;
mod check;
mod dataset;
mod fuzz_regressions;
mod loader;
mod media_decode;
mod media_sources;
mod pack;
mod snps3_words;
mod synthetic;
mod text;
mod tokenizer;
mod transforms;
