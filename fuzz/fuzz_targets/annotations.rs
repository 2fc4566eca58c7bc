//! Each annotation reader (pretraining, retrieval train/eval, classification with and without a
//! label list, MC-QA, ASR transcripts) on arbitrary file bytes: records or an `AnnotationError`
//! naming the line, never a panic.
#![no_main]

use antmmf_data::annotations::asr::AsrTranscript;
use antmmf_data::annotations::classification::{ClassificationAnnotations, LabelSpace};
use antmmf_data::annotations::mcqa::McQaAnnotations;
use antmmf_data::annotations::pretrain::PretrainAnnotations;
use antmmf_data::annotations::retrieval::{RetrievalAnnotations, RetrievalMode};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("antmmf-fuzz-ann-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temporary folder");
        d.join("ann.jsonl")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = file();
    if std::fs::write(path, data).is_err() {
        return;
    }
    let paths = [path.as_path()];
    let _ = PretrainAnnotations::load(&paths).map(|a| a.len());
    for mode in [RetrievalMode::Train, RetrievalMode::Eval] {
        if let Ok(a) = RetrievalAnnotations::load(&paths, mode) {
            for v in 0..a.num_videos() {
                let _ = a.video_items(v);
            }
        }
    }
    let named = LabelSpace {
        names: vec!["bicycle".into(), "street".into(), "car".into()],
        num_classes: None,
    };
    let counted = LabelSpace {
        names: Vec::new(),
        num_classes: Some(5),
    };
    let open = LabelSpace::default();
    for labels in [&named, &counted, &open] {
        let _ = ClassificationAnnotations::load(&paths, labels).map(|a| a.len());
    }
    let _ = McQaAnnotations::load(&paths).map(|a| a.len());
    let _ = AsrTranscript::load(path).map(|t| t.len());
});
