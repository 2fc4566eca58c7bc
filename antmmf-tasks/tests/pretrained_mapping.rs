//! `training_parameters.load_pretrained` + `pretrained_mapping` on a `resume_file`: AntMMF's
//! `load_model_weights` (load by name, then copy `key.`-named tensors to `value.`-named
//! parameters) for antmmf-rs checkpoints (module paths) and AntMMF files (PyTorch names), and the
//! warnings for mappings that copy nothing or cannot apply.

use antmmf_core::checkpoint::Checkpoint;
use antmmf_core::{Config, ConfigSources};
use antmmf_tasks::run::{
    ACTED_ON_KEYS, RunPlan, build_model, load_resume_weights, pretrained_mapping_warnings,
};
use burn::backend::Flex;
use burn::module::Module;
use burn::nn::LinearConfig;
use burn::record::{BinBytesRecorder, FullPrecisionSettings, Recorder};
use burn::tensor::Tensor;
use std::path::{Path, PathBuf};

type B = Flex;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tiny randomly initialised UniVL plan from `configs/synthetic/<name>.yml` (the model is all
/// these tests build: no data or vocabulary is read), with `yaml` merged on top when given.
fn plan(name: &str, yaml: Option<&str>, overrides: &[&str]) -> RunPlan {
    let base = root().join(format!("configs/synthetic/{name}.yml"));
    let dir = tempfile::tempdir().unwrap();
    let config = match yaml {
        Some(text) => {
            let file = dir.path().join("c.yml");
            let text = format!("includes:\n  - {}\n{text}", base.display());
            std::fs::write(&file, text).unwrap();
            file
        }
        None => base,
    };
    let config = Config::load(&ConfigSources {
        config: Some(config),
        config_override: None,
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
    })
    .unwrap();
    RunPlan::from_config(&config).unwrap()
}

fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

/// Writes `model` as an antmmf-rs checkpoint (the `model` section of the trainer's container).
fn save_native(model: antmmf_tasks::univl_task::UnivlTask<B>, path: &Path) {
    let bytes = BinBytesRecorder::<FullPrecisionSettings>::default()
        .record(model.into_record(), ())
        .unwrap();
    Checkpoint::new(serde_json::json!({}))
        .with_section("model", bytes)
        .save(path)
        .unwrap();
}

const MAPPED_POOLER: &str = "
training_parameters:
  load_pretrained: true
  restart: true
  pretrained_mapping:
    bert.pooler: cross_pooler
    no_such.module: clf
";

#[test]
fn native_checkpoint_loads_by_name_then_copies_mapped_module_paths() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    // The "pretraining" run: retrieval head (no classifier), seed 1, with a cross pooler that is
    // not a copy of the text pooler so that the mapped copy is told from the by-name load.
    let mut source = build_model::<B>(&plan("retrieval", None, &[]), &device).unwrap();
    source.univl.cross_pooler.dense = LinearConfig::new(64, 64).init(&device);
    // Read before cloning: a clone of a lazy parameter would draw its own values.
    let own_cross_pooler = values(source.univl.cross_pooler.dense.weight.val());
    let _ = source.univl.cross_pooler.dense.bias.as_ref().unwrap().val();
    let ckpt = dir.path().join("univl_final.ckpt");
    save_native(source.clone(), &ckpt);
    let text_pooler = values(
        source
            .univl
            .bert
            .pooler
            .as_ref()
            .expect("pooler")
            .dense
            .weight
            .val(),
    );
    assert_ne!(text_pooler, own_cross_pooler);

    // The "fine-tuning" run: open QA (a classifier the checkpoint lacks), seed 2, with the
    // retrieval config's one BERT layer (vqa.yml has two).
    let target_plan = plan(
        "vqa",
        Some(MAPPED_POOLER),
        &[
            "training_parameters.seed",
            "2",
            "model_attributes.univl.text_encoder.params.num_hidden_layers",
            "1",
            "model_attributes.univl.cross_encoder.params.num_hidden_layers",
            "1",
        ],
    );
    assert!(target_plan.training.load_pretrained);
    assert_eq!(target_plan.training.pretrained_mapping.len(), 2);
    let fresh = build_model::<B>(&target_plan, &device).unwrap();
    let fresh_clf = values(fresh.univl.clf.as_ref().unwrap().weight.val());
    let fresh_words = values(fresh.univl.bert.embeddings.word_embeddings.weight.val());
    let (model, report) =
        load_resume_weights(fresh, &ckpt, &target_plan.training, &device).unwrap();

    // By name: the word embeddings are the checkpoint's.
    let words = values(model.univl.bert.embeddings.word_embeddings.weight.val());
    assert_ne!(words, fresh_words);
    assert_eq!(
        words,
        values(source.univl.bert.embeddings.word_embeddings.weight.val())
    );
    // Mapped: the cross pooler is the checkpoint's text pooler, over its own by-name copy.
    assert_eq!(
        values(model.univl.cross_pooler.dense.weight.val()),
        text_pooler
    );
    assert_eq!(
        values(model.univl.cross_pooler.dense.bias.as_ref().unwrap().val()),
        values(
            source
                .univl
                .bert
                .pooler
                .as_ref()
                .unwrap()
                .dense
                .bias
                .as_ref()
                .unwrap()
                .val()
        )
    );
    // Not in the checkpoint: the classifier keeps its initial weights (and is still there).
    let clf = model
        .univl
        .clf
        .as_ref()
        .expect("the classifier survives the load");
    assert_eq!(values(clf.weight.val()), fresh_clf);
    assert!(report.load.missing.iter().any(|p| p == "clf.weight"));

    // Per entry: what it copied; the entry that matched nothing is a warning naming it.
    let entries: Vec<(&str, &str, usize)> = report
        .mapped
        .iter()
        .map(|m| (m.from.as_str(), m.to.as_str(), m.copied.len()))
        .collect();
    assert_eq!(
        entries,
        vec![
            ("bert.pooler", "cross_pooler", 2),
            ("no_such.module", "clf", 0)
        ]
    );
    assert_eq!(
        report.mapped[0].copied,
        vec!["cross_pooler.dense.bias", "cross_pooler.dense.weight"]
    );
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("`no_such.module: clf` copied no tensor")
            && report.warnings[0].contains(&ckpt.display().to_string()),
        "{}",
        report.warnings[0]
    );

    // load_pretrained False: the same mapping is not applied (AntMMF), only the by-name load.
    let mut off = target_plan.training.clone();
    off.load_pretrained = false;
    let fresh = build_model::<B>(&target_plan, &device).unwrap();
    let (model, report) = load_resume_weights(fresh, &ckpt, &off, &device).unwrap();
    assert!(report.mapped.is_empty() && report.warnings.is_empty());
    assert_eq!(
        values(model.univl.cross_pooler.dense.weight.val()),
        own_cross_pooler
    );
}

#[test]
fn native_mapping_onto_a_different_shape_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let source = build_model::<B>(&plan("retrieval", None, &[]), &device).unwrap();
    let ckpt = dir.path().join("model.ckpt");
    save_native(source.clone(), &ckpt);
    let mut target_plan = plan("retrieval", None, &["training_parameters.seed", "3"]);
    target_plan.training.load_pretrained = true;
    // dense1 is [64, 128], dense2 [128, 1]: the copy cannot fit.
    target_plan.training.pretrained_mapping.insert(
        "similarity_dense.dense1".into(),
        "similarity_dense.dense2".into(),
    );
    let fresh = build_model::<B>(&target_plan, &device).unwrap();
    let (model, report) =
        load_resume_weights(fresh, &ckpt, &target_plan.training, &device).unwrap();
    // dense2 keeps what loaded by name.
    assert_eq!(
        values(model.univl.similarity_dense.dense2.weight.val()),
        values(source.univl.similarity_dense.dense2.weight.val())
    );
    assert_eq!(
        values(
            model
                .univl
                .similarity_dense
                .dense2
                .bias
                .as_ref()
                .unwrap()
                .val()
        ),
        values(
            source
                .univl
                .similarity_dense
                .dense2
                .bias
                .as_ref()
                .unwrap()
                .val()
        )
    );
    let mut mismatches: Vec<(&str, Vec<usize>, Vec<usize>)> = report
        .load
        .shape_mismatched
        .iter()
        .map(|m| (m.key.as_str(), m.expected.clone(), m.found.clone()))
        .collect();
    mismatches.sort();
    assert_eq!(
        mismatches,
        vec![
            ("similarity_dense.dense2.bias", vec![1], vec![128]),
            (
                "similarity_dense.dense2.weight",
                vec![128, 1],
                vec![64, 128]
            ),
        ]
    );
    assert!(report.mapped[0].copied.is_empty());
    assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
    assert!(report.warnings[0].contains("shapes differ"));
    assert!(
        report.warnings[1].contains("`similarity_dense.dense1: similarity_dense.dense2`"),
        "{}",
        report.warnings[1]
    );
}

/// Writes a safetensors file of f32 tensors.
fn write_safetensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            (
                name.to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// A pattern of `n` distinct values from `seed`.
fn pattern(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| seed + (i % 97) as f32 * 0.01).collect()
}

/// Rows of a `[rows, cols]` row-major matrix transposed to `[cols, rows]`.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| v[r * cols + c]))
        .collect()
}

const PORTED_MAPPING: &str = "
training_parameters:
  load_pretrained: true
  pretrained_mapping:
    module.model.model.module: module.model.module
    module.model.model: module.model
    module.no_such: module.model
";

#[test]
fn antmmf_file_maps_pretraining_names_before_the_key_table() {
    let dir = tempfile::tempdir().unwrap();
    let device = Default::default();
    let target_plan = plan("retrieval", Some(PORTED_MAPPING), &[]);
    let fresh = build_model::<B>(&target_plan, &device).unwrap();
    let vocab = fresh
        .univl
        .bert
        .embeddings
        .word_embeddings
        .weight
        .val()
        .dims()[0];
    let positions = fresh
        .univl
        .bert
        .embeddings
        .position_embeddings
        .weight
        .val()
        .dims()[0];
    let init_dense2 = values(fresh.univl.similarity_dense.dense2.weight.val());

    // A DDP pretraining checkpoint (UnivlForVideoPretraining under Univl under DDP) with one
    // tensor also under the fine-tuning name, which the mapping overrides.
    let pre_words = pattern(vocab * 64, 1.0);
    let ft_words = pattern(vocab * 64, -5.0);
    let ft_positions = pattern(positions * 64, 3.0);
    let pre_dense1 = pattern(128 * 64, 7.0); // PyTorch [out, in]
    let pre_dense1_bias = pattern(128, 9.0);
    let file = dir.path().join("pretrain.safetensors");
    write_safetensors(
        &file,
        &[
            (
                "module.model.model.module.text_encoder.embeddings.word_embeddings.weight",
                vec![vocab, 64],
                pre_words.clone(),
            ),
            (
                "module.model.module.text_encoder.embeddings.word_embeddings.weight",
                vec![vocab, 64],
                ft_words.clone(),
            ),
            (
                "module.model.module.text_encoder.embeddings.position_embeddings.weight",
                vec![positions, 64],
                ft_positions.clone(),
            ),
            (
                "module.model.model.similarity_dense.0.weight",
                vec![128, 64],
                pre_dense1.clone(),
            ),
            (
                "module.model.model.similarity_dense.0.bias",
                vec![128],
                pre_dense1_bias.clone(),
            ),
        ],
    );

    let (model, report) =
        load_resume_weights(fresh, &file, &target_plan.training, &device).unwrap();
    let u = &model.univl;
    assert_eq!(
        values(u.bert.embeddings.word_embeddings.weight.val()),
        pre_words,
        "the mapped pretraining tensor overrides the by-name one"
    );
    assert_eq!(
        values(u.bert.embeddings.position_embeddings.weight.val()),
        ft_positions
    );
    assert_eq!(
        values(u.similarity_dense.dense1.weight.val()),
        transpose(&pre_dense1, 128, 64)
    );
    assert_eq!(
        values(u.similarity_dense.dense1.bias.as_ref().unwrap().val()),
        pre_dense1_bias
    );
    assert_eq!(values(u.similarity_dense.dense2.weight.val()), init_dense2);

    let entries: Vec<(&str, usize)> = report
        .mapped
        .iter()
        .map(|m| (m.from.as_str(), m.copied.len()))
        .collect();
    assert_eq!(
        entries,
        vec![
            ("module.model.model", 3),
            ("module.model.model.module", 1),
            ("module.no_such", 0)
        ]
    );
    assert_eq!(
        report.mapped[1].copied,
        vec!["bert.embeddings.word_embeddings.weight"]
    );
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("`module.no_such: module.model` copied no tensor"),
        "{}",
        report.warnings[0]
    );

    // Without load_pretrained only the fine-tuning names load.
    let mut off = target_plan.training.clone();
    off.load_pretrained = false;
    let fresh = build_model::<B>(&target_plan, &device).unwrap();
    let init_dense1 = values(fresh.univl.similarity_dense.dense1.weight.val());
    let (model, report) = load_resume_weights(fresh, &file, &off, &device).unwrap();
    assert_eq!(
        values(model.univl.bert.embeddings.word_embeddings.weight.val()),
        ft_words
    );
    assert_eq!(
        values(model.univl.similarity_dense.dense1.weight.val()),
        init_dense1
    );
    assert!(report.mapped.is_empty());
}

#[test]
fn warnings_when_the_mapping_cannot_apply() {
    let dir = tempfile::tempdir().unwrap();
    // Defaults: no mapping, nothing to say.
    let base = plan("retrieval", None, &[]);
    assert!(base.training.pretrained_mapping.is_empty());
    assert!(!base.training.load_pretrained);
    assert!(pretrained_mapping_warnings(&base.training).is_empty());

    let mapped = plan("retrieval", Some(PORTED_MAPPING), &[]);
    // load_pretrained without a resume_file.
    let w = pretrained_mapping_warnings(&mapped.training);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("resume_file is not set"), "{}", w[0]);

    // With a resume_file, the ported mapping applies: no warning.
    let torch = dir.path().join("pretrain.pth");
    std::fs::write(&torch, b"PK not read here").unwrap();
    let mut t = mapped.training.clone();
    t.resume_file = Some(torch.display().to_string());
    assert!(pretrained_mapping_warnings(&t).is_empty());

    // An empty mapping.
    let mut empty = t.clone();
    empty.pretrained_mapping.clear();
    let w = pretrained_mapping_warnings(&empty);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("pretrained_mapping is empty"), "{}", w[0]);

    // A mapping with load_pretrained False.
    let mut off = t.clone();
    off.load_pretrained = false;
    let w = pretrained_mapping_warnings(&off);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("load_pretrained is False"), "{}", w[0]);

    // An antmmf-rs checkpoint resumed whole (restart False).
    let native = dir.path().join("model_10.ckpt");
    Checkpoint::new(serde_json::json!({}))
        .save(&native)
        .unwrap();
    let mut resume = t.clone();
    resume.resume_file = Some(native.display().to_string());
    resume.restart = false;
    let w = pretrained_mapping_warnings(&resume);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("restart True"), "{}", w[0]);
    resume.restart = true;
    assert!(pretrained_mapping_warnings(&resume).is_empty());
}

#[test]
fn ported_configs_mapping_is_read_and_acted_on() {
    let config = Config::load(&ConfigSources {
        config: Some(root().join("configs/finetune_retrieval/msr_vtt_videoswin.yml")),
        config_override: None,
        overrides: Vec::new(),
    })
    .unwrap();
    let t = config.training_parameters().unwrap();
    assert!(t.load_pretrained);
    let mapping: Vec<(&str, &str)> = t
        .pretrained_mapping
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        mapping,
        vec![
            ("module.model.model", "module.model"),
            ("module.model.model.module", "module.model.module")
        ]
    );
    let ignored = config.ignored_keys(ACTED_ON_KEYS);
    assert!(
        !ignored
            .iter()
            .any(|k| k.contains("pretrained_mapping") || k.contains("load_pretrained")),
        "{ignored:?}"
    );
}
