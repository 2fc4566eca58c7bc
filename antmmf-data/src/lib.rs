//! antmmf-data: AntMMF datasets turned into batches.
//!
//! Annotations (one module per AntMMF jsonl format), media (FFmpeg video decoding through
//! video-rs, frame sampling, images, keyframe folders), frame transforms, the BERT WordPiece
//! tokenizer and the caption processor (MLM masking), burn-dataset `Dataset`s and `Batcher`s.

pub mod annotations;
pub mod batch;
pub mod check;
pub mod dataset;
pub mod dataset_config;
pub mod iw_mlm;
pub mod loader;
pub mod media;
pub mod pack;
pub mod segment;
pub mod synthetic;
pub mod text;
pub mod tokenizer;
pub mod transforms;
pub mod words;
