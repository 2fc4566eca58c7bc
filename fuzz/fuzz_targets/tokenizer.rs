//! The BERT WordPiece tokenizer on arbitrary text (the all-MiniLM-L6-v2 uncased vocabulary when
//! `assets/` is there, else a small built-in one; both casings): tokenizing, encoding with a
//! length budget, pairs, and ids back to tokens; never a panic, and every encoding respects its
//! `max_length`.
#![no_main]

use antmmf_data::tokenizer::BertTokenizer;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn tokenizers() -> &'static [BertTokenizer] {
    static T: OnceLock<Vec<BertTokenizer>> = OnceLock::new();
    T.get_or_init(|| {
        let vocab =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/minilm/vocab.txt");
        let small: Vec<String> = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "man", "ride", "##s", "bike", "##r",
            "the", "caf", "##e", "\u{4e2d}", ",", ".", "!",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut out = Vec::new();
        for lower in [true, false] {
            match BertTokenizer::from_vocab_file(&vocab, lower) {
                Ok(t) => out.push(t),
                Err(_) => out.push(
                    BertTokenizer::from_tokens(small.clone(), lower).expect("built-in vocabulary"),
                ),
            }
        }
        out
    })
}

fuzz_target!(|input: (String, String, u8)| {
    let (a, b, max) = input;
    let max = max as usize;
    for t in tokenizers() {
        let tokens = t.tokenize(&a);
        let ids = t.convert_tokens_to_ids(&tokens);
        let _ = t.convert_ids_to_tokens(&ids);
        let _ = t.encode_with_special(&a);
        if let Ok(e) = t.encode(&a, max) {
            assert_eq!(e.input_ids.len(), max);
        }
        let _ = t.encode_pair(&a, &b, max);
        let _ = t.encode_pair_with_special(&a, &b);
    }
});
