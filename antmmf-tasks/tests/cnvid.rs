//! The CNVid-3.5M configs (`configs/cnvid_vtp`, ported from AntMMF's `prj/cnvid_vtp/configs`)
//! read as a run reads them: the pretraining ones turn the hard-sample curriculum on with
//! CNVid's settings, the Chinese pretraining one shards its annotations and masks whole Chinese
//! words, the Chinese retrieval ones use bert-base-chinese; no ported config gets a curriculum
//! it did not ask for.

use crate::common;
use antmmf_core::{Config, ConfigSources};
use antmmf_data::dataset_config::AnnotationsLoader;
use antmmf_data::segment::WordSegmenter;
use antmmf_tasks::run::RunPlan;
use antmmf_tasks::univl_task::HardSampleCurriculum;
use std::path::{Path, PathBuf};

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
}

fn plan(rel: &str) -> RunPlan {
    let config = Config::load(&ConfigSources {
        config: Some(configs().join(rel)),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{rel}: {e}"));
    RunPlan::from_config(&config).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn curriculum(p: &RunPlan) -> Option<HardSampleCurriculum> {
    HardSampleCurriculum::from_model_config(&p.model, p.seed).expect("valid curriculum")
}

#[test]
fn cnvid_pretraining_configs_turn_the_curriculum_on() {
    for rel in [
        "cnvid_vtp/pretrain/base.yml",
        "cnvid_vtp/pretrain/CN_video_videoswin.yml",
        "cnvid_vtp/pretrain/EN_coco_vg_cc_videoswin.yml",
        "cnvid_vtp/pretrain/EN_webvid_videoswin.yml",
    ] {
        let p = plan(rel);
        assert!(p.task.hard_example_mining, "{rel}");
        assert_eq!(p.task.re_weight_method.as_deref(), Some("median"), "{rel}");
        assert_eq!(
            curriculum(&p),
            Some(HardSampleCurriculum::cnvid(p.seed)),
            "{rel}"
        );
        // The run's task settings carry it.
        assert_eq!(
            p.task.curriculum,
            Some(HardSampleCurriculum::cnvid(p.seed)),
            "{rel}"
        );
    }
}

#[test]
fn cn_video_pretraining_shards_annotations_and_masks_chinese_words() {
    let p = plan("cnvid_vtp/pretrain/CN_video_videoswin.yml");
    assert_eq!(p.dataset_name, "video_text_pretrain");
    let d = &p.dataset;
    assert_eq!(d.annotations_loader, AnnotationsLoader::AutoSplit);
    assert!(d.use_asrs && d.use_videos && !d.use_images);
    assert_eq!((d.train_ensemble_n_clips, d.num_frm), (4, 1));
    let cap = common::caption_params(&p);
    assert_eq!(cap.max_seq_length, 50);
    assert_eq!(cap.mask_probability, 0.15);
    assert!(cap.random_truncate && cap.whole_word_masking);
    assert_eq!(cap.word_segmenter, Some(WordSegmenter::Jieba));
    assert_eq!(cap.tokenizer_config.type_, "bert-base-chinese");
    assert_eq!(p.model.text_encoder.params.vocab_size, 21128);
    assert_eq!(p.training.batch_size, 128);
}

#[test]
fn cnvid_retrieval_configs_read_their_data_and_text_side() {
    // (file, train annotations, clips per video (train and test), max_seq_length, Chinese)
    for (rel, train, clips, len, chinese) in [
        (
            "CN_vatex_videoswin.yml",
            "vatex_retrieval/train.jsonl",
            16,
            30,
            true,
        ),
        (
            "CN_msrvtt_videoswin.yml",
            "CN_msrvtt/CN_MSRVTT_RET_train.jsonl",
            4,
            30,
            true,
        ),
        (
            "CN_didemo_videoswin.yml",
            "chinese_retrieval/CN_Didemo_Ret_train.jsonl",
            4,
            30,
            true,
        ),
        (
            "EN_vatex_videoswin.yml",
            "vatex_ret_English/English_vatex_train.jsonl",
            4,
            30,
            false,
        ),
        (
            "EN_msr_vtt_videoswin.yml",
            "msrvtt_retrieval/train.jsonl",
            4,
            30,
            false,
        ),
        (
            "EN_didemo_videoswin.yml",
            "didemo_retrieval/train.jsonl",
            4,
            30,
            false,
        ),
    ] {
        let p = plan(&format!("cnvid_vtp/finetune_retrieval/{rel}"));
        assert_eq!(p.task.head.name(), "video_text_retrieval", "{rel}");
        assert_eq!(curriculum(&p), None, "{rel}: fine-tuning has no curriculum");
        let d = &p.dataset;
        assert_eq!(d.annotations_loader, AnnotationsLoader::Normal, "{rel}");
        let train_files = d
            .annotations
            .get(antmmf_data::dataset_config::Split::Train)
            .expect("train annotations");
        assert!(format!("{train_files:?}").contains(train), "{rel}");
        assert_eq!(
            (d.train_ensemble_n_clips, d.test_ensembel_n_clips),
            (clips, clips),
            "{rel}"
        );
        let cap = common::caption_params(&p);
        assert_eq!(
            (cap.max_seq_length, cap.mask_probability),
            (len, 0.0),
            "{rel}"
        );
        let (tokenizer, vocab) = if chinese {
            ("bert-base-chinese", 21128)
        } else {
            ("bert-base-uncased", 30522)
        };
        assert_eq!(cap.tokenizer_config.type_, tokenizer, "{rel}");
        assert_eq!(p.model.text_encoder.params.vocab_size, vocab, "{rel}");
        // The pyvideo_transform params lost base.yml's custom_transforms list.
        let train_proc = d
            .processors
            .train_frame_processor
            .as_ref()
            .expect("train frames");
        assert_eq!(train_proc["type"], "pyvideo_transform", "{rel}");
        assert!(train_proc["params"].get("transforms").is_none(), "{rel}");
    }
}

#[test]
fn other_ported_configs_get_no_curriculum() {
    // base_vtp's pretraining mines on every step (AntMMF's base_vtp has no change_iter).
    for rel in [
        "pretrain/CN_video_videoswin.yml",
        "pretrain/webvid_videoswin.yml",
        "quickstart.yml",
    ] {
        assert_eq!(curriculum(&plan(rel)), None, "{rel}");
    }
}
