//! The `masked_bert_tokenizer` caption processor: exact outputs under scripted random draws,
//! MLM statistics on a large seeded sample, whole-word masking, truncation windows.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use antmmf_data::segment::WordSegmenter;
use antmmf_data::text::{
    CaptionProcessor, CaptionProcessorParams, IGNORE_LABEL, TokenizerConfig, word_spans,
};
use antmmf_data::tokenizer::BertTokenizer;
use rand::rand_core::TryRng;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A generator that returns scripted `f64` draws (`random::<f64>()` uses the top 53 bits).
struct Scripted(VecDeque<f64>);

impl Scripted {
    fn new(draws: &[f64]) -> Self {
        Self(draws.iter().copied().collect())
    }
}

impl TryRng for Scripted {
    type Error = Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let x = self.0.pop_front().expect("script has enough draws");
        Ok(((x * (1u64 << 53) as f64) as u64) << 11)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

const TOY: [&str; 16] = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "man", "plays", "guitar", "un", "##aff",
    "##able", "中", "文", "is", "##s",
];

fn toy_tokenizer() -> Arc<BertTokenizer> {
    Arc::new(
        BertTokenizer::from_tokens(TOY.iter().map(|s| s.to_string()).collect(), true)
            .expect("toy vocab"),
    )
}

fn params(max_seq_length: usize, mask_probability: f64) -> CaptionProcessorParams {
    CaptionProcessorParams {
        max_seq_length,
        mask_probability,
        random_truncate: false,
        trim_start_token: false,
        random_mask_chinese: false,
        whole_word_masking: false,
        word_segmenter: None,
        intra_vtm: None,
        tokenizer_config: TokenizerConfig::default(),
        preprocessor: None,
    }
}

fn uncased_tokenizer() -> Arc<BertTokenizer> {
    let dir = std::env::var_os("ANTMMF_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets")));
    let path = dir.join("minilm/vocab.txt");
    assert!(
        path.is_file(),
        "missing asset {}: run scripts/setup.sh to fetch it",
        path.display()
    );
    Arc::new(BertTokenizer::from_vocab_file(&path, true).expect("vocab loads"))
}

const CAPTIONS: [&str; 6] = [
    "a man is playing a guitar on stage in front of a large crowd",
    "two dogs run across the snowy field while children watch",
    "a woman slices an onion and puts it into a hot frying pan",
    "the unaffordable hyperparameters of a supercalifragilistic model",
    "a little girl does gymnastics on a mat in the gym",
    "a person is connecting something to a computer system",
];

#[test]
fn scripted_draws_give_hand_checked_output() {
    let proc = CaptionProcessor::new(params(8, 0.15), toy_tokenizer()).expect("valid");
    // draws / 0.15: "a" 0.5 no; "man" 0.2 -> [MASK]; "plays" 0.9 no; "guitar" 0.95 -> kept.
    let mut rng = Scripted::new(&[0.5, 0.03, 0.9, 0.1425]);
    let out = proc.process("A man plays guitar", &mut rng);
    assert_eq!(out.input_ids, [2, 5, 4, 7, 8, 3, 0, 0]);
    assert_eq!(out.input_ids_unmasked, [2, 5, 6, 7, 8, 3, 0, 0]);
    assert_eq!(out.lm_label_ids, [-1, -1, 6, -1, 8, -1, -1, -1]);
    assert_eq!(out.input_mask, [1, 1, 1, 1, 1, 1, 0, 0]);
    assert_eq!(out.segment_ids, [0; 8]);
    assert_eq!(out.source_len, 6);
    assert_eq!(
        out.tokens,
        ["[CLS]", "a", "[MASK]", "plays", "guitar", "[SEP]"]
    );
    assert!(rng.0.is_empty(), "one draw per token");
}

#[test]
fn scripted_whole_word_masking_masks_every_piece() {
    let mut p = params(8, 0.15);
    p.whole_word_masking = true;
    let proc = CaptionProcessor::new(p, toy_tokenizer()).expect("valid");
    // Only "##aff" (the middle piece of "unaffable") is drawn: the whole word is masked.
    let mut rng = Scripted::new(&[0.5, 0.5, 0.03, 0.5, 0.5]);
    let out = proc.process("a unaffable man", &mut rng);
    assert_eq!(out.input_ids, [2, 5, 4, 4, 4, 6, 3, 0]);
    assert_eq!(out.input_ids_unmasked, [2, 5, 9, 10, 11, 6, 3, 0]);
    assert_eq!(out.lm_label_ids, [-1, -1, 9, 10, 11, -1, -1, -1]);
}

#[test]
fn scripted_trim_start_token_and_chinese_only() {
    let mut p = params(6, 1.0);
    p.trim_start_token = true;
    p.random_mask_chinese = true;
    let proc = CaptionProcessor::new(p, toy_tokenizer()).expect("valid");
    // Every draw selects (p = 1) and 0.1 -> [MASK]; but only CJK tokens may be targets.
    let mut rng = Scripted::new(&[0.1, 0.1, 0.1, 0.1]);
    let out = proc.process("a 中 文 man", &mut rng);
    assert_eq!(out.input_ids, [5, 4, 4, 6, 3, 0]);
    assert_eq!(out.input_ids_unmasked, [5, 12, 13, 6, 3, 0]);
    assert_eq!(out.lm_label_ids, [-1, 12, 13, -1, -1, -1]);
    assert_eq!(out.input_mask, [1, 1, 1, 1, 1, 0]);
}

#[test]
fn mlm_statistics_on_a_large_seeded_sample() {
    let tok = uncased_tokenizer();
    let mask_id = i64::from(tok.mask_id());
    let proc = CaptionProcessor::new(params(40, 0.15), tok).expect("valid");
    let (mut total, mut selected, mut masked, mut replaced, mut kept) = (0usize, 0, 0, 0, 0);
    for i in 0..6000u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(i);
        let out = proc.process(CAPTIONS[i as usize % CAPTIONS.len()], &mut rng);
        for pos in 1..out.source_len - 1 {
            total += 1;
            let label = out.lm_label_ids[pos];
            if label == IGNORE_LABEL {
                assert_eq!(out.input_ids[pos], out.input_ids_unmasked[pos]);
                continue;
            }
            selected += 1;
            assert_eq!(
                label, out.input_ids_unmasked[pos],
                "label is the original id"
            );
            if out.input_ids[pos] == mask_id {
                masked += 1;
            } else if out.input_ids[pos] == out.input_ids_unmasked[pos] {
                kept += 1;
            } else {
                replaced += 1;
            }
        }
        for pos in [0, out.source_len - 1] {
            assert_eq!(out.lm_label_ids[pos], IGNORE_LABEL, "special tokens");
        }
        assert!(out.lm_label_ids[out.source_len..].iter().all(|&l| l == -1));
    }
    let frac = selected as f64 / total as f64;
    let (m, r, k) = (
        masked as f64 / selected as f64,
        replaced as f64 / selected as f64,
        kept as f64 / selected as f64,
    );
    assert!(total > 70_000, "{total} tokens");
    assert!((frac - 0.15).abs() < 0.005, "selected fraction {frac}");
    assert!((m - 0.8).abs() < 0.015, "[MASK] share {m}");
    assert!((r - 0.1).abs() < 0.012, "random share {r}");
    assert!((k - 0.1).abs() < 0.012, "kept share {k}");
}

#[test]
fn same_seed_same_output_and_zero_probability_is_plain_encoding() {
    let tok = uncased_tokenizer();
    let proc = CaptionProcessor::new(params(16, 0.15), tok.clone()).expect("valid");
    for (i, caption) in CAPTIONS.iter().enumerate() {
        let a = proc.process(caption, &mut ChaCha8Rng::seed_from_u64(i as u64));
        let b = proc.process(caption, &mut ChaCha8Rng::seed_from_u64(i as u64));
        assert_eq!(a, b);
        let plain = tok.encode(caption, 16).expect("encode");
        let expect: Vec<i64> = plain.input_ids.iter().map(|&x| i64::from(x)).collect();
        assert_eq!(a.input_ids_unmasked, expect, "{caption}");
        let mask: Vec<i64> = plain.attention_mask.iter().map(|&x| i64::from(x)).collect();
        assert_eq!(a.input_mask, mask);
        let raw = proc.process_with_probability(caption, 0.0, &mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(raw.input_ids, expect);
        assert!(raw.lm_label_ids.iter().all(|&l| l == IGNORE_LABEL));
    }
}

#[test]
fn random_truncation_keeps_contiguous_windows() {
    let tok = uncased_tokenizer();
    let caption = CAPTIONS.join(" ");
    let full: Vec<i64> = tok
        .convert_tokens_to_ids(&tok.tokenize(&caption))
        .into_iter()
        .map(i64::from)
        .collect();
    let mut p = params(12, 0.0);
    p.random_truncate = true;
    let proc = CaptionProcessor::new(p, tok.clone()).expect("valid");
    let last_start = full.len() - 10;
    let mut starts = std::collections::BTreeSet::new();
    for seed in 0..2000 {
        let out = proc.process(&caption, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(out.source_len, 12);
        assert_eq!(out.input_ids.len(), 12);
        let window = &out.input_ids_unmasked[1..11];
        let start = (0..=last_start)
            .find(|&s| full[s..s + 10] == *window)
            .expect("window is a contiguous slice of the caption");
        starts.insert(start);
    }
    // Starts are uniform over 0..=len-10: both ends and most positions are reached.
    assert_eq!(starts.first(), Some(&0));
    assert_eq!(starts.last(), Some(&last_start));
    assert!(
        starts.len() > last_start * 9 / 10,
        "{} starts",
        starts.len()
    );

    // Without random_truncate the head is kept, like transformers' truncation.
    let head = CaptionProcessor::new(params(12, 0.0), tok.clone()).expect("valid");
    let out = head.process(&caption, &mut ChaCha8Rng::seed_from_u64(0));
    assert_eq!(&out.input_ids_unmasked[1..11], &full[..10]);
    // A short caption is never truncated.
    let out = proc.process("a man", &mut ChaCha8Rng::seed_from_u64(0));
    assert_eq!(out.source_len, 4);
}

#[test]
fn whole_word_masking_never_splits_a_word() {
    let tok = uncased_tokenizer();
    let caption = CAPTIONS[3];
    let tokens = tok.tokenize(caption);
    let spans = word_spans(&tokens);
    assert!(
        spans.iter().any(|s| s.len() > 2),
        "caption has multi-piece words"
    );
    let mut p = params(40, 0.3);
    p.whole_word_masking = true;
    let wwm = CaptionProcessor::new(p, tok.clone()).expect("valid");
    let plain = CaptionProcessor::new(params(40, 0.3), tok).expect("valid");
    let mut plain_splits = 0;
    for seed in 0..500 {
        let out = wwm.process(caption, &mut ChaCha8Rng::seed_from_u64(seed));
        let labels = &out.lm_label_ids[1..=tokens.len()];
        for span in &spans {
            let n = span.clone().filter(|&i| labels[i] != IGNORE_LABEL).count();
            assert!(
                n == 0 || n == span.len(),
                "seed {seed}: word {span:?} split"
            );
        }
        let out = plain.process(caption, &mut ChaCha8Rng::seed_from_u64(seed));
        let labels = &out.lm_label_ids[1..=tokens.len()];
        plain_splits += spans
            .iter()
            .filter(|s| {
                let n = labels[s.start..s.end]
                    .iter()
                    .filter(|&&l| l != IGNORE_LABEL)
                    .count();
                n > 0 && n < s.len()
            })
            .count();
    }
    assert!(
        plain_splits > 100,
        "without wwm words do get split ({plain_splits})"
    );
}

#[test]
fn bad_parameters_are_errors() {
    let err = CaptionProcessor::new(params(1, 0.15), toy_tokenizer()).expect_err("too short");
    assert!(err.to_string().contains("max_seq_length is 1"), "{err}");
    let err = CaptionProcessor::new(params(8, 1.5), toy_tokenizer()).expect_err("bad p");
    assert!(err.to_string().contains("mask_probability is 1.5"), "{err}");
}

#[test]
fn processor_from_params_finds_the_vocabulary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model_dir = dir.path().join("tiny-bert-cased");
    std::fs::create_dir(&model_dir).expect("mkdir");
    std::fs::write(model_dir.join("vocab.txt"), TOY.join("\n")).expect("write vocab");
    let mut p = params(8, 0.0);
    p.tokenizer_config.type_ = "tiny-bert-cased".into();
    let proc = CaptionProcessor::from_params(p.clone(), &[dir.path()]).expect("found");
    assert!(!proc.tokenizer().do_lower_case(), "cased model name");
    let out = proc.process("a Man", &mut ChaCha8Rng::seed_from_u64(0));
    assert_eq!(out.input_ids, [2, 5, 1, 3, 0, 0, 0, 0]);
    let err = CaptionProcessor::from_params(p, &[]).expect_err("no vocab");
    assert!(
        err.to_string()
            .contains("no vocab.txt found for tokenizer_config.type \"tiny-bert-cased\""),
        "{err}"
    );
}

/// bert-base-chinese's vocabulary (ids: 一 671, 个 702, 男 4511, 人 782, 在 1762, 舞 5659,
/// 台 1378, 上 677, 弹 2486, 吉 1395, 他 800; [CLS] 101, [SEP] 102, [MASK] 103).
fn chinese_tokenizer() -> Arc<BertTokenizer> {
    let dir = std::env::var_os("ANTMMF_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets")));
    let path = dir.join("vocab_zh/vocab.txt");
    assert!(
        path.is_file(),
        "missing asset {}: run scripts/setup.sh to fetch it",
        path.display()
    );
    Arc::new(BertTokenizer::from_vocab_file(&path, false).expect("vocab loads"))
}

/// jieba: 一个 / 男人 / 在 / 舞台 / 上 / 弹 / 吉他.
const ZH_CAPTION: &str = "一个男人在舞台上弹吉他";

fn chinese_wwm(segmenter: bool) -> CaptionProcessor {
    let mut p = params(13, 0.15);
    p.whole_word_masking = true;
    p.word_segmenter = segmenter.then_some(WordSegmenter::Jieba);
    CaptionProcessor::new(p, chinese_tokenizer()).expect("valid")
}

#[test]
fn scripted_chinese_whole_words_are_masked_together() {
    // Draws / 0.15: 男 0.2 -> [MASK]; 他 0.933 -> kept as is; the others are not selected.
    let draws = [0.5, 0.5, 0.03, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.14];
    let out = chinese_wwm(true).process(ZH_CAPTION, &mut Scripted::new(&draws));
    // 男人 and 吉他 are words: 人 and 吉 join them as [MASK] with their labels.
    assert_eq!(
        out.input_ids,
        [
            101, 671, 702, 103, 103, 1762, 5659, 1378, 677, 2486, 103, 800, 102
        ]
    );
    assert_eq!(
        out.lm_label_ids,
        [-1, -1, -1, 4511, 782, -1, -1, -1, -1, -1, 1395, 800, -1]
    );
    assert_eq!(
        out.input_ids_unmasked,
        [
            101, 671, 702, 4511, 782, 1762, 5659, 1378, 677, 2486, 1395, 800, 102
        ]
    );
    // Without the segmenter every character is a word: only the drawn ones are targets.
    let out = chinese_wwm(false).process(ZH_CAPTION, &mut Scripted::new(&draws));
    assert_eq!(
        out.input_ids,
        [
            101, 671, 702, 103, 782, 1762, 5659, 1378, 677, 2486, 1395, 800, 102
        ]
    );
    assert_eq!(
        out.lm_label_ids,
        [-1, -1, -1, 4511, -1, -1, -1, -1, -1, -1, -1, 800, -1]
    );
}

#[test]
fn seeded_chinese_whole_word_masking_hand_checked() {
    // ChaCha8 seed 0 draws, one per character: only 人 (0.060 < 0.15; 0.060 / 0.15 = 0.4 ->
    // [MASK]) is selected; 吉's 0.154 just misses. Whole-word masking adds 男 of 男人.
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let draws: Vec<f64> = (0..11).map(|_| rng.random::<f64>()).collect();
    let expected = [
        0.709, 0.466, 0.699, 0.060, 0.879, 0.550, 0.829, 0.935, 0.804, 0.154, 0.881,
    ];
    for (d, e) in draws.iter().zip(expected) {
        assert!((d - e).abs() < 5e-4, "{draws:?}");
    }
    let out = chinese_wwm(true).process(ZH_CAPTION, &mut ChaCha8Rng::seed_from_u64(0));
    assert_eq!(
        out.input_ids,
        [
            101, 671, 702, 103, 103, 1762, 5659, 1378, 677, 2486, 1395, 800, 102
        ]
    );
    assert_eq!(
        out.lm_label_ids,
        [-1, -1, -1, 4511, 782, -1, -1, -1, -1, -1, -1, -1, -1]
    );
    assert_eq!(
        out.tokens,
        [
            "[CLS]", "一", "个", "[MASK]", "[MASK]", "在", "舞", "台", "上", "弹", "吉", "他",
            "[SEP]"
        ]
    );
    let out = chinese_wwm(false).process(ZH_CAPTION, &mut ChaCha8Rng::seed_from_u64(0));
    assert_eq!(
        out.lm_label_ids,
        [-1, -1, -1, -1, 782, -1, -1, -1, -1, -1, -1, -1, -1]
    );
}

#[test]
fn chinese_whole_word_masking_never_splits_a_segmented_word() {
    let proc = chinese_wwm(true);
    let words = [1..3, 3..5, 6..8, 10..12]; // 一个, 男人, 舞台, 吉他 (after [CLS])
    let mut grouped = 0;
    for seed in 0..300 {
        let out = proc.process(ZH_CAPTION, &mut ChaCha8Rng::seed_from_u64(seed));
        for w in &words {
            let n = w
                .clone()
                .filter(|&i| out.lm_label_ids[i] != IGNORE_LABEL)
                .count();
            assert!(n == 0 || n == 2, "seed {seed}: word {w:?} split");
            grouped += usize::from(n == 2);
        }
        // The same caption without masking needs no segmentation and is the plain encoding.
        let raw =
            proc.process_with_probability(ZH_CAPTION, 0.0, &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(raw.input_ids, out.input_ids_unmasked);
    }
    assert!(grouped > 100, "words are selected ({grouped})");
}

#[test]
fn chinese_words_follow_a_random_truncation_window() {
    // 8 content tokens of 11: the window starts at 0..=3; words cut by it stay grouped.
    let mut p = params(10, 0.5);
    p.whole_word_masking = true;
    p.random_truncate = true;
    p.word_segmenter = Some(WordSegmenter::Jieba);
    let proc = CaptionProcessor::new(p, chinese_tokenizer()).expect("valid");
    let all = chinese_tokenizer().tokenize(ZH_CAPTION);
    for seed in 0..200 {
        let out = proc.process(ZH_CAPTION, &mut ChaCha8Rng::seed_from_u64(seed));
        let start = (0..=3)
            .find(|&s| {
                let ids = chinese_tokenizer().convert_tokens_to_ids(&all[s..s + 8]);
                ids.iter()
                    .zip(&out.input_ids_unmasked[1..9])
                    .all(|(&a, &b)| i64::from(a) == b)
            })
            .expect("a contiguous window");
        // Word pairs inside the window (full-caption indices) are never split.
        for w in [0..2, 2..4, 5..7, 9..11] {
            let inside: Vec<usize> = w.filter(|i| (start..start + 8).contains(i)).collect();
            let n = inside
                .iter()
                .filter(|&&i| out.lm_label_ids[1 + i - start] != IGNORE_LABEL)
                .count();
            assert!(n == 0 || n == inside.len(), "seed {seed}, start {start}");
        }
    }
}
