//! SNP-S3 data side: significant-word mining on a small corpus with known counts, the
//! same-lemma table, and important-word MLM through the caption processor.

use std::path::PathBuf;
use std::sync::Arc;

use antmmf_data::iw_mlm::{ImportantWords, IntraVtmParams, IwMlm, masked_count};
use antmmf_data::text::{CaptionProcessor, CaptionProcessorParams, IGNORE_LABEL};
use antmmf_data::tokenizer::BertTokenizer;
use antmmf_data::words::{MineOptions, mine_to_files, mine_words, same_lemma_table};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn vocab_path() -> PathBuf {
    std::env::var_os("ANTMMF_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets")))
        .join("minilm/vocab.txt")
}

fn tokenizer() -> Arc<BertTokenizer> {
    Arc::new(BertTokenizer::from_vocab_file(vocab_path(), true).expect("vocab"))
}

fn id(t: &BertTokenizer, w: &str) -> usize {
    t.token_to_id(w)
        .unwrap_or_else(|| panic!("{w} not in vocab")) as usize
}

#[test]
fn mining_counts_ranks_and_skips_function_words() {
    let t = tokenizer();
    let corpus = [
        "A man rides a bicycle.",
        "a man rides a horse",
        "the dog runs",
    ];
    let w = mine_words(corpus, &t);
    let n = t.vocab_size();
    let count = |s: &str| w.total_count[id(&t, s)];
    let rank = |s: &str| w.rank[id(&t, s)];
    assert_eq!((count("man"), count("rides")), (2, 2));
    assert_eq!((count("bicycle"), count("horse"), count("dog")), (1, 1, 1));
    assert_eq!((count("a"), count("the"), count(".")), (0, 0, 0));
    // Competition ranks: two words at 0, the four singletons share rank 2.
    assert_eq!((rank("man"), rank("rides")), (0, 0));
    assert_eq!((rank("bicycle"), rank("runs")), (2, 2));
    assert_eq!(rank("a"), n as u32, "unseen words rank last");
    assert_eq!(w.ranked.len(), 6);
    assert_eq!(w.ranked[0].1, 2);
    assert_eq!(w.name[id(&t, "dog")], "dog");
}

#[test]
fn same_lemma_table_groups_stems() {
    let t = tokenizer();
    let table = same_lemma_table(&t);
    let seat = &table[id(&t, "seat")];
    for v in ["seat", "seats", "seated"] {
        assert!(seat.contains(&v.to_string()), "{seat:?} lacks {v}");
    }
    assert_eq!(&table[id(&t, "seats")], seat);
    assert!(table[id(&t, "[CLS]")].is_empty());
}

/// Writes ranked counts where `important` rank 0 and everything else is unseen, and the lemma
/// table; returns the intra_VTM params.
fn word_files(dir: &std::path::Path, t: &BertTokenizer, important: &[&str]) -> IntraVtmParams {
    let corpus: Vec<String> = important.iter().map(|w| w.to_string()).collect();
    let ann = dir.join("ann.jsonl");
    let lines: Vec<String> = corpus
        .iter()
        .map(|c| serde_json::json!({ "caption": c }).to_string())
        .collect();
    std::fs::write(&ann, lines.join("\n")).expect("write");
    let opts = MineOptions {
        annotations: vec![ann],
        vocab: vocab_path(),
        do_lower_case: true,
        out: dir.join("words.json"),
        lemmas_out: dir.join("lemmas.json"),
    };
    let counts = mine_to_files(&opts).expect("mine");
    for w in important {
        assert_eq!(counts.rank[id(t, w)], 0);
    }
    IntraVtmParams {
        iw_mlm: true,
        words_file: Some(opts.out),
        lemma_file: Some(opts.lemmas_out),
        words_top_k: 0,
    }
}

fn processor(intra: IntraVtmParams, max_seq_length: usize) -> CaptionProcessor {
    let yaml = format!("max_seq_length: {max_seq_length}\nmask_probability: 0.15\n");
    let mut params: CaptionProcessorParams = serde_yaml_ng::from_str(&yaml).expect("params");
    params.intra_vtm = Some(intra);
    CaptionProcessor::new(params, tokenizer()).expect("processor")
}

#[test]
fn intra_vtm_keys_parse_with_antmmf_names() {
    let yaml = "max_seq_length: 30\nintra_VTM:\n  IW_MLM: true\n  HT_words_count_file_dir: a.json\n  vocab_same_lema_dir: b.json\n  words_top_k: 3000\n";
    let p: CaptionProcessorParams = serde_yaml_ng::from_str(yaml).expect("parse");
    let v = p.intra_vtm.expect("intra_VTM");
    assert!(v.iw_mlm && v.words_top_k == 3000);
    assert_eq!(v.words_file, Some(PathBuf::from("a.json")));
    let bad = "max_seq_length: 30\nintra_VTM:\n  IW_MLMM: true\n";
    let e = serde_yaml_ng::from_str::<CaptionProcessorParams>(bad).unwrap_err();
    assert!(e.to_string().contains("IW_MLMM"), "{e}");
}

#[test]
fn missing_word_file_is_an_error_naming_it() {
    let intra = IntraVtmParams {
        iw_mlm: true,
        words_file: Some(PathBuf::from("/nonexistent/words.json")),
        lemma_file: Some(PathBuf::from("/nonexistent/lemmas.json")),
        words_top_k: 3000,
    };
    let yaml = "max_seq_length: 20\nmask_probability: 0.15\n";
    let mut params: CaptionProcessorParams = serde_yaml_ng::from_str(yaml).expect("params");
    params.intra_vtm = Some(intra);
    let e = CaptionProcessor::new(params, tokenizer()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/words.json"), "{e}");
}

#[test]
fn iw_mlm_masks_important_words_first() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = tokenizer();
    let intra = word_files(dir.path(), &t, &["bicycle", "street"]);
    let p = processor(intra, 40);
    // 10 caption tokens: int(1.5) = 1, fraction 0.5 >= 0.3 -> 2 masked: exactly the two
    // important words, every time.
    let caption = "a man in a suit rides a bicycle down street";
    let bike = id(&t, "bicycle") as i64;
    let street = id(&t, "street") as i64;
    let mut replaced = 0usize;
    let mut kept = 0usize;
    let runs = 400;
    for seed in 0..runs {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let enc = p.process(caption, &mut rng);
        let labelled: Vec<i64> = enc
            .lm_label_ids
            .iter()
            .copied()
            .filter(|&l| l != IGNORE_LABEL)
            .collect();
        assert_eq!(labelled, vec![bike, street], "seed {seed}");
        for (i, &l) in enc.lm_label_ids.iter().enumerate() {
            if l == IGNORE_LABEL {
                assert_eq!(enc.input_ids[i], enc.input_ids_unmasked[i]);
            } else if enc.input_ids[i] == l {
                kept += 1;
            } else if enc.input_ids[i] != t.mask_id() as i64 {
                // 10 %: a same-lemma variant of an important word.
                let tok = t.id_to_token(enc.input_ids[i] as u32).expect("token");
                assert!(
                    ["bicycle", "bicycles", "bicycling", "street", "streets"].contains(&tok),
                    "{tok}"
                );
                replaced += 1;
            }
        }
    }
    let total = 2 * runs as usize;
    // kept includes the 10 % replacements that drew the word itself.
    let r = (replaced + kept) as f64 / total as f64;
    assert!((0.12..0.28).contains(&r), "replaced {replaced} kept {kept}");
}

#[test]
fn iw_mlm_fills_up_with_other_tokens_when_important_words_are_few() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = tokenizer();
    let intra = word_files(dir.path(), &t, &["bicycle"]);
    let p = processor(intra, 40);
    // 22 tokens: 22 * 0.15 = 3.2999999999999998 in f64 (as in AntMMF's Python), fraction
    // < 0.3 -> 3 masked: the one important word and 2 others, the others as [MASK] labelled
    // with their own ids.
    let caption = "one two three four five six seven eight nine ten eleven twelve thirteen \
                   fourteen fifteen sixteen seventeen eighteen nineteen twenty bicycle end";
    assert_eq!(t.tokenize(caption).len(), 22);
    assert_eq!(masked_count(22, 0.15), 3);
    let bike = id(&t, "bicycle") as i64;
    for seed in 0..50 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let enc = p.process(caption, &mut rng);
        let labelled: Vec<usize> = (0..enc.lm_label_ids.len())
            .filter(|&i| enc.lm_label_ids[i] != IGNORE_LABEL)
            .collect();
        assert_eq!(labelled.len(), 3);
        assert!(enc.lm_label_ids.contains(&bike));
        for i in labelled {
            assert_eq!(enc.lm_label_ids[i], enc.input_ids_unmasked[i]);
            if enc.lm_label_ids[i] != bike {
                assert_eq!(enc.input_ids[i], t.mask_id() as i64);
            }
        }
    }
}

#[test]
fn important_words_follow_rank_threshold() {
    let w = ImportantWords::from_ranks(&[5, 0, 3000, 3001, -1], 3000);
    assert_eq!(w.ids(), &[0, 1, 2]);
    let iw = IwMlm::new(w, vec![]);
    assert!(iw.words().is_important(2) && !iw.words().is_important(3));
}
