//! The SNP-S3 configs (`configs/snps3_vtp`, ported from AntMMF's `prj/snps3_vtp/configs`) read
//! as a run reads them: the pretraining ones turn on important-word MLM, vision-word matching
//! after the text encoder and the text encoder's MLM, without L2 hard negative mining; the
//! fine-tuning ones use none of the SNP-S3 heads. The word files are mined from the sample
//! captions into a temporary folder (the configs' `data/snps3` files are placeholders).

use crate::common;
use antmmf_core::{Config, ConfigSources};
use antmmf_data::words::{MineOptions, mine_to_files};
use antmmf_tasks::run::RunPlan;
use antmmf_tasks::snps3::VwmStage;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(rel: &str, overrides: Vec<String>) -> Result<RunPlan, String> {
    let config = Config::load(&ConfigSources {
        config: Some(root().join("configs").join(rel)),
        overrides,
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    RunPlan::from_config(&config).map_err(|e| e.to_string())
}

/// Ranked counts and same-lemma table of the sample captions (bert-base-uncased vocabulary).
fn mined_words(dir: &Path) -> (PathBuf, PathBuf) {
    let sample = root().join("data/sample");
    let opts = MineOptions {
        annotations: vec![
            sample.join("pretrain_video.jsonl"),
            sample.join("pretrain_image.jsonl"),
        ],
        vocab: root().join("assets/minilm/vocab.txt"),
        do_lower_case: true,
        out: dir.join("count_reprocess.json"),
        lemmas_out: dir.join("vocab_simi_list.json"),
    };
    mine_to_files(&opts).expect("the sample captions mine");
    (opts.out, opts.lemmas_out)
}

const INTRA_VTM: &str = "task_attributes.univl_task.dataset_attributes.video_text_pretrain.\
                         processors.caption_processor.params.intra_VTM";
const VWM_WORDS: &str =
    "model_attributes.univl.pretraining_heads.MASK_All_IWords_info.HT_words_count_file_dir";

const PRETRAIN: [&str; 2] = [
    "snps3_vtp/pretrain/base.yml",
    "snps3_vtp/pretrain/webvid_videoswin.yml",
];

#[test]
fn snps3_pretraining_configs_turn_iw_mlm_and_vwm_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (words, lemmas) = mined_words(dir.path());
    let overrides = vec![
        format!("{INTRA_VTM}.HT_words_count_file_dir"),
        words.to_string_lossy().into_owned(),
        format!("{INTRA_VTM}.vocab_same_lema_dir"),
        lemmas.to_string_lossy().into_owned(),
        VWM_WORDS.to_string(),
        words.to_string_lossy().into_owned(),
    ];
    for rel in PRETRAIN {
        let p = load(rel, overrides.clone()).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(p.dataset_name, "video_text_pretrain", "{rel}");
        let vwm = p.task.snps3.vwm.as_ref().expect("Vision_Word_Matching on");
        assert_eq!(vwm.stage, VwmStage::After, "{rel}");
        assert_eq!(vwm.word_chosen_num, 3, "{rel}");
        // words_top_k 3000 exceeds the sample's distinct words: every mined word is important.
        assert!(!vwm.important_ids.is_empty(), "{rel}");
        assert!(p.task.snps3.text_encoder_mlm, "{rel}");
        // SNP-S3's base turns off base_vtp's L2 hard negative mining, also under the WebVid
        // chain, whose base_vtp base sets it.
        assert!(!p.task.hard_example_mining, "{rel}");
        let cap = common::caption_params(&p);
        let iw = cap.intra_vtm.as_ref().expect("intra_VTM");
        assert!(iw.iw_mlm, "{rel}");
        assert_eq!(iw.words_top_k, 3000, "{rel}");
        assert_eq!(iw.words_file.as_deref(), Some(words.as_path()), "{rel}");
        assert_eq!(iw.lemma_file.as_deref(), Some(lemmas.as_path()), "{rel}");
        assert_eq!(cap.max_seq_length, 30, "{rel}");
    }
    // The WebVid run keeps base_vtp's WebVid data and schedule.
    let p = load(PRETRAIN[1], overrides).expect("webvid");
    assert_eq!(p.training.batch_size, 128);
    let train = p.dataset.annotations.train.clone();
    assert!(
        format!("{train:?}").contains("webvid/annotations/train.jsonl"),
        "{train:?}"
    );
}

#[test]
fn snps3_pretraining_without_word_files_names_the_key() {
    // The placeholders under data/snps3 do not exist until mined.
    let err = load(PRETRAIN[0], Vec::new()).expect_err("no word files");
    assert!(
        err.contains("HT_words_count_file_dir") && err.contains("count_reprocess_webvid.json"),
        "{err}"
    );
}

#[test]
fn snps3_finetuning_configs_use_no_snps3_head() {
    for (rel, dataset) in [
        (
            "snps3_vtp/finetune_retrieval/msvd_videoswin.yml",
            "video_text_retrieval",
        ),
        (
            "snps3_vtp/finetune_retrieval/didemo_videoswin.yml",
            "video_text_retrieval",
        ),
        (
            "snps3_vtp/finetune_vqa/msvd_qa_videoswin.yml",
            "video_text_classification",
        ),
    ] {
        let p = load(rel, Vec::new()).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(p.dataset_name, dataset, "{rel}");
        assert_eq!(p.task.snps3.vwm, None, "{rel}");
        assert!(!p.task.snps3.text_encoder_mlm, "{rel}");
        let cap = common::caption_params(&p);
        assert!(
            cap.intra_vtm.as_ref().is_none_or(|v| !v.iw_mlm),
            "{rel}: {cap:?}"
        );
    }
    let qa = load("snps3_vtp/finetune_vqa/msvd_qa_videoswin.yml", Vec::new()).expect("msvd qa");
    assert_eq!(qa.model.num_labels, Some(1000));
    let msvd = load(
        "snps3_vtp/finetune_retrieval/msvd_videoswin.yml",
        Vec::new(),
    )
    .expect("msvd");
    assert_eq!(msvd.dataset.train_ensemble_n_clips, 16);
    assert_eq!(msvd.training.max_iterations, Some(16000));
}
