//! A text encoder with fewer word embeddings than the caption vocabulary is a config error
//! naming the key, before any step (token ids would index past the table: a panic on the CPU
//! backends, silent garbage on the GPU ones).

use crate::common;

use antmmf_tasks::run::run;
use burn::backend::{Autodiff, Flex};

#[test]
fn a_vocabulary_larger_than_the_embedding_table_is_an_error_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = common::synthetic_retrieval(
        tmp.path(),
        Some(
            "model_attributes:\n  univl:\n    text_encoder:\n      params:\n        vocab_size: 100\n",
        ),
    );
    let err = match run::<Autodiff<Flex>>(&plan, Default::default()) {
        Ok(_) => panic!("the run must refuse the config"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("model_attributes.univl.text_encoder.params.vocab_size")
            && err.contains("100 word embeddings")
            && err.contains("30522 tokens"),
        "{err}"
    );
}
