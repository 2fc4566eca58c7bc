//! A text encoder with fewer word embeddings than the caption vocabulary is a config error
//! naming the key, before any step (token ids would index past the table: a panic on the CPU
//! backends, silent garbage on the GPU ones).

use antmmf_core::{Config, ConfigSources};
use antmmf_tasks::run::{RunPlan, run};
use burn::backend::{Autodiff, Flex};
use std::path::{Path, PathBuf};

#[test]
fn a_vocabulary_larger_than_the_embedding_table_is_an_error_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dataset = "task_attributes.univl_task.dataset_attributes.synthetic";
    let vocab = std::env::var_os("ANTMMF_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("assets"))
        .join("minilm/vocab.txt");
    assert!(
        vocab.is_file(),
        "missing {}: run scripts/setup.sh",
        vocab.display()
    );
    let extra = tmp.path().join("vocab.yml");
    std::fs::write(
        &extra,
        "model_attributes:\n  univl:\n    text_encoder:\n      params:\n        vocab_size: 100\n",
    )
    .unwrap();
    let config = Config::load(&ConfigSources {
        config: Some(root.join("configs/synthetic/retrieval.yml")),
        config_override: Some(extra),
        overrides: vec![
            format!("{dataset}.data_root_dir"),
            root.join("data/sample/synth").display().to_string(),
            format!(
                "{dataset}.processors.caption_processor.params.tokenizer_config.params.vocab_path"
            ),
            vocab.display().to_string(),
            "training_parameters.save_dir".into(),
            tmp.path().display().to_string(),
        ],
    })
    .unwrap();
    let plan = RunPlan::from_config(&config).unwrap();
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
