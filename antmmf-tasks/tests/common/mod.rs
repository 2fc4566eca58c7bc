//! Shared by the integration tests: the synthetic retrieval config on the embedded set, the
//! caption processor's settings of a plan, and the toy regression model of the trainer tests
//! ([`toy`]).

use antmmf_core::{Config, ConfigSources};
use antmmf_data::text::CaptionProcessorParams;
use antmmf_tasks::run::RunPlan;
use std::path::{Path, PathBuf};

pub mod toy;

/// The `processors.caption_processor.params` of a plan's dataset (which must have one).
pub fn caption_params(plan: &RunPlan) -> &CaptionProcessorParams {
    &plan
        .dataset
        .processors
        .caption_processor
        .as_ref()
        .expect("caption processor")
        .params
}

/// `configs/synthetic/retrieval.yml` on the embedded synthetic set (`data/sample/synth`), the
/// uncased vocabulary (`ANTMMF_ASSETS`, default `<workspace>/assets`) and run folders under
/// `save`; `extra_yaml`, when given, is written beside them and applied as `--config_override`
/// (how a test sets keys the config file does not have).
pub fn synthetic_retrieval(save: &Path, extra_yaml: Option<&str>) -> RunPlan {
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
    let config_override = extra_yaml.map(|yaml| {
        let path = save.join("extra.yml");
        std::fs::write(&path, yaml).unwrap();
        path
    });
    let overrides = vec![
        format!("{dataset}.data_root_dir"),
        root.join("data/sample/synth").display().to_string(),
        format!("{dataset}.processors.caption_processor.params.tokenizer_config.params.vocab_path"),
        vocab.display().to_string(),
        "training_parameters.save_dir".into(),
        save.display().to_string(),
    ];
    let config = Config::load(&ConfigSources {
        config: Some(root.join("configs/synthetic/retrieval.yml")),
        config_override,
        overrides,
    })
    .unwrap();
    RunPlan::from_config(&config).unwrap()
}
