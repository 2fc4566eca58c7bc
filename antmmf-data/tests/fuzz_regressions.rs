//! Inputs of the `annotations` and `tokenizer` fuzz targets (`fuzz/`, `scripts/fuzz.sh`) checked
//! on every `cargo test` without a nightly toolchain: the seed files of `fuzz/corpus/annotations`
//! and a fixed, seeded stream of mutations of them (bytes flipped, lines cut, JSON tokens spliced
//! in) go through every annotation reader, and mutated text through the tokenizer. Each must give
//! a value or a typed error, never a panic. Crashing inputs the fuzzer finds are added here.

use antmmf_data::annotations::asr::AsrTranscript;
use antmmf_data::annotations::classification::{ClassificationAnnotations, LabelSpace};
use antmmf_data::annotations::mcqa::McQaAnnotations;
use antmmf_data::annotations::pretrain::PretrainAnnotations;
use antmmf_data::annotations::retrieval::{RetrievalAnnotations, RetrievalMode};
use antmmf_data::tokenizer::BertTokenizer;
use rand::{RngExt, SeedableRng};
use std::path::{Path, PathBuf};

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/annotations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut out: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    out.push(
        br#"{"clip_name": "bikes", "caption": "a man rides a bike", "label": 1, "answer": 0, "options": ["a", "b"], "sen_id": 0}"#
            .to_vec(),
    );
    out
}

/// Every annotation reader on one file's bytes (what the fuzz target does).
fn read_all(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).expect("write the annotation file");
    let paths = [path];
    let _ = PretrainAnnotations::load(&paths).map(|a| a.len());
    for mode in [RetrievalMode::Train, RetrievalMode::Eval] {
        if let Ok(a) = RetrievalAnnotations::load(&paths, mode) {
            for v in 0..a.num_videos() {
                let _ = a.video_items(v);
            }
        }
    }
    for labels in [
        LabelSpace {
            names: vec!["bicycle".into(), "street".into()],
            num_classes: None,
        },
        LabelSpace {
            names: Vec::new(),
            num_classes: Some(3),
        },
        LabelSpace::default(),
    ] {
        let _ = ClassificationAnnotations::load(&paths, &labels).map(|a| a.len());
    }
    let _ = McQaAnnotations::load(&paths).map(|a| a.len());
    let _ = AsrTranscript::load(path).map(|t| t.len());
}

const SPLICES: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\n",
    b"\r\n",
    b"\xEF\xBB\xBF",
    b"\xff",
    b"null",
    b"-1",
    b"1e400",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\"clip_name\"",
    b"\"label\"",
    b"\"answer\"",
    b"\"options\"",
    b"[]",
    b"{}",
];

fn mutate(rng: &mut rand_chacha::ChaCha8Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..rng.random_range(1..6) {
        let at = if b.is_empty() {
            0
        } else {
            rng.random_range(0..b.len())
        };
        match rng.random_range(0..4) {
            0 if !b.is_empty() => b[at] = rng.random(),
            1 => b.truncate(at),
            2 => {
                let s = SPLICES[rng.random_range(0..SPLICES.len())];
                b.splice(at..at, s.iter().copied());
            }
            _ => {
                let end = (at + rng.random_range(0..16)).min(b.len());
                b.drain(at..end);
            }
        }
    }
    b
}

#[test]
fn annotation_readers_never_panic_on_mutated_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ann.jsonl");
    let seeds = corpus();
    assert!(seeds.len() >= 4, "fuzz/corpus/annotations holds the seeds");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    for seed in &seeds {
        read_all(&path, seed);
        for _ in 0..150 {
            read_all(&path, &mutate(&mut rng, seed));
        }
    }
    // Edge files: empty, blank lines only, a BOM alone, one huge line of brackets.
    for bytes in [&b""[..], b"\n\n  \n", b"\xEF\xBB\xBF", &[b'['; 100_000][..]] {
        read_all(&path, bytes);
    }
}

#[test]
fn tokenizer_never_panics_and_encodings_have_their_length() {
    let small: Vec<String> = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "man", "ride", "##s", "bike",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let pieces = [
        "a",
        "man",
        "rides",
        "[MASK]",
        "[CLS",
        "##",
        "\u{0}",
        "\u{fffd}",
        "\u{301}",
        "é",
        "中",
        "\u{200b}",
        "\u{1F600}",
        " ",
        "\t",
        "\r\n",
        "İ",
        "ß",
        "!",
        "##s",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    ];
    for lower in [true, false] {
        let t = BertTokenizer::from_tokens(small.clone(), lower).expect("vocabulary");
        for _ in 0..400 {
            let n = rng.random_range(0..12);
            let text: String = (0..n)
                .map(|_| pieces[rng.random_range(0..pieces.len())])
                .collect();
            let max = rng.random_range(0..20usize);
            let ids = t.convert_tokens_to_ids(&t.tokenize(&text));
            let _ = t.convert_ids_to_tokens(&ids);
            if let Ok(e) = t.encode(&text, max) {
                assert_eq!(e.input_ids.len(), max, "{text:?}");
            }
            if let Ok(e) = t.encode_pair(&text, "a man", max) {
                assert_eq!(e.input_ids.len(), max, "{text:?}");
            }
        }
    }
}
