//! The integration tests of antmmf-models, built as one test binary: every binary links Burn and
//! FFmpeg, so one per crate keeps the test build small and quick to link. Each module is one
//! file of this folder; `every_test_file_is_a_module` (tests/main.rs) checks none is left out.

mod bert_parity;
mod clip_parity;
mod import_keys;
mod import_support;
mod import_vision_models;
mod losses;
mod pvt_resnet_parity;
mod univl;
mod univl_encoders;
mod video_swin_parity;
mod violet_swin_parity;
mod vwm;
