//! The evaluation entry points that need no model (`--task` against the config's head, where the
//! checkpoint comes from, the embedding files `antmmf-extract` writes) and the split of
//! retrieval's L2 pair list across devices.

use crate::common;

use antmmf_core::{Config, ConfigSources};
use antmmf_data::dataset_config::Split;
use antmmf_tasks::eval::{
    Embeddings, EvalOptions, EvalTask, ExtractWhat, HEAD_KEY, apply_task, evaluate_run,
    resolve_checkpoint, write_embeddings,
};
use antmmf_tasks::run::RunPlan;
use std::path::{Path, PathBuf};

fn quickstart(overrides: &[&str]) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/quickstart.yml");
    Config::load(&ConfigSources {
        config: Some(path),
        config_override: None,
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
    })
    .unwrap()
}

#[test]
fn task_sets_an_unset_head_and_rejects_a_different_one() {
    // quickstart.yml sets video_pretraining: --task retrieval disagrees.
    let mut c = quickstart(&[]);
    let err = apply_task(&mut c, EvalTask::Retrieval)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(HEAD_KEY) && err.contains("video_pretraining"),
        "{err}"
    );
    // A matching head passes.
    let mut c = quickstart(&[HEAD_KEY, "video_multi_choice_qa"]);
    apply_task(&mut c, EvalTask::Mcqa).unwrap();
    // A config that leaves the head out gets the task's.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.yml");
    std::fs::write(&file, "training_parameters:\n  batch_size: 2\n").unwrap();
    let mut c = Config::load(&ConfigSources {
        config: Some(file),
        config_override: None,
        overrides: Vec::new(),
    })
    .unwrap();
    apply_task(&mut c, EvalTask::Vqa).unwrap();
    assert_eq!(
        c.get(HEAD_KEY).and_then(|v| v.as_str()),
        Some("video_text_classification")
    );
}

#[test]
fn checkpoint_from_flag_then_resume_file_else_an_error_naming_both() {
    let plan = RunPlan::from_config(&quickstart(&[])).unwrap();
    let err = resolve_checkpoint(None, &plan, false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--checkpoint") && err.contains("resume_file"),
        "{err}"
    );
    assert_eq!(resolve_checkpoint(None, &plan, true).unwrap(), None);
    assert!(resolve_checkpoint(Some(Path::new("a.ckpt")), &plan, true).is_err());
    let plan =
        RunPlan::from_config(&quickstart(&["training_parameters.resume_file", "r.ckpt"])).unwrap();
    assert_eq!(
        resolve_checkpoint(None, &plan, false).unwrap(),
        Some(PathBuf::from("r.ckpt"))
    );
    assert_eq!(
        resolve_checkpoint(Some(Path::new("f.ckpt")), &plan, false).unwrap(),
        Some(PathBuf::from("f.ckpt"))
    );
}

#[test]
fn embeddings_files_by_extension() {
    let dir = tempfile::tempdir().unwrap();
    let e = Embeddings {
        what: ExtractWhat::Video,
        ids: vec!["a".into(), "b".into()],
        values: (0..12).map(|v| v as f32 * 0.5).collect(),
        shape: vec![2, 2, 3],
        clip_mask: Some(vec![1, 1, 1, 0]),
    };
    let st = dir.path().join("v.safetensors");
    assert_eq!(write_embeddings(&st, &e).unwrap(), vec![st.clone()]);
    let bytes = std::fs::read(&st).unwrap();
    let t = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let emb = t.tensor("embeddings").unwrap();
    assert_eq!(emb.shape(), &[2, 2, 3]);
    assert_eq!(&emb.data()[4..8], &0.5f32.to_le_bytes());
    assert_eq!(t.tensor("clip_mask").unwrap().shape(), &[2, 2]);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["ids"], "[\"a\",\"b\"]");
    assert_eq!(meta["what"], "video");

    let npy = dir.path().join("v.npy");
    let files = write_embeddings(&npy, &e).unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("v.ids.txt")).unwrap(),
        "a\nb\n"
    );
    let b = std::fs::read(&npy).unwrap();
    let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
    assert_eq!(b.len(), 10 + hl + 12 * 4);
    assert!(dir.path().join("v.clip_mask.npy").is_file());
    assert!(write_embeddings(&dir.path().join("v.bin"), &e).is_err());
}

#[test]
fn l2_pairs_split_across_devices_gather_to_the_single_device_result() {
    use burn::backend::{Flex, flex::FlexDevice};
    let tmp = tempfile::tempdir().unwrap();
    let plan = common::synthetic_retrieval(tmp.path(), None);
    // The training split holds 16 videos (one caption drawn per video): every pair is 256 pairs,
    // four cross-encoder passes, so three devices get two, two and no passes.
    let eval = |devices: &[FlexDevice], out: &str| {
        let options = EvalOptions {
            split: Split::Train,
            checkpoint: None,
            l2_topk: None,
            out_dir: Some(tmp.path().join(out)),
            save_embeddings: false,
        };
        evaluate_run::<Flex>(&plan, &options, devices).unwrap()
    };
    let one = eval(&[FlexDevice], "one");
    let three = eval(&[FlexDevice, FlexDevice, FlexDevice], "three");
    assert_eq!(one.predictions, 16);
    assert_eq!(one.metrics, three.metrics);
    assert!(one.metrics["train/l2_simi_t2v-r@1"] >= 0.0);
    let read = |dir: &Path| std::fs::read_to_string(dir.join("predictions.jsonl")).unwrap();
    let (a, b) = (read(&one.out_dir), read(&three.out_dir));
    assert_eq!(a.lines().count(), 16);
    assert!(a.contains("\"l2_score\":"));
    assert_eq!(a, b, "the gathered L2 scores equal the single-device ones");
}
