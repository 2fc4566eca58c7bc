//! Parity of `BertTokenizer` with transformers' slow Python BertTokenizer.
//!
//! Fixture: `fixtures/bert_tokenizer.json` (every section, sentence and pair); tolerance: exact.
//! Vocabularies: `assets/minilm/vocab.txt` (bert-base-uncased) and `assets/vocab_zh/vocab.txt`
//! (bert-base-chinese), fetched by `scripts/setup.sh`.

use std::path::PathBuf;

use antmmf_data::tokenizer::BertTokenizer;
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    std::env::var_os("ANTMMF_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures")))
}

fn assets_dir() -> PathBuf {
    std::env::var_os("ANTMMF_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets")))
}

fn asset(rel: &str) -> PathBuf {
    let path = assets_dir().join(rel);
    assert!(
        path.is_file(),
        "missing asset {}: run scripts/setup.sh to fetch it",
        path.display()
    );
    path
}

fn fixture() -> Value {
    let path = fixtures_dir().join("bert_tokenizer.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("string").to_owned())
        .collect()
}

fn ints(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| u32::try_from(x.as_u64().expect("integer")).expect("fits u32"))
        .collect()
}

fn check_section(name: &str, vocab: &str) -> (usize, usize) {
    let fx = fixture();
    let section = &fx[name];
    let cfg = &section["tokenizer"];
    let lower = cfg["do_lower_case"].as_bool().expect("do_lower_case");
    let tok = BertTokenizer::from_vocab_file(asset(vocab), lower).expect("vocab loads");
    assert_eq!(
        tok.vocab_size() as u64,
        cfg["vocab_size"].as_u64().expect("vocab_size"),
        "{name}: vocab size"
    );
    for (token, id) in cfg["special_ids"].as_object().expect("special_ids") {
        assert_eq!(
            tok.token_to_id(token).map(u64::from),
            id.as_u64(),
            "{name}: id of {token}"
        );
    }

    let sentences = section["sentences"].as_array().expect("sentences");
    assert!(!sentences.is_empty());
    for s in sentences {
        let text = s["text"].as_str().expect("text");
        let tokens = tok.tokenize(text);
        assert_eq!(tokens, strings(&s["tokens"]), "{name}: tokens of {text:?}");
        let ids = tok.encode_with_special(text);
        assert_eq!(ids, ints(&s["ids_with_special"]), "{name}: ids of {text:?}");
        assert_eq!(
            tok.convert_ids_to_tokens(&ids),
            strings(&s["tokens_with_special"]),
            "{name}: tokens_with_special of {text:?}"
        );
        let enc = tok.encode(text, 16).expect("max_length 16");
        let m = &s["max_length_16"];
        assert_eq!(enc.input_ids, ints(&m["input_ids"]), "{name}: {text:?}");
        assert_eq!(
            enc.attention_mask,
            ints(&m["attention_mask"]),
            "{name}: {text:?}"
        );
        assert_eq!(
            enc.token_type_ids,
            ints(&m["token_type_ids"]),
            "{name}: {text:?}"
        );
    }

    let pairs = section["pairs"].as_array().expect("pairs");
    for p in pairs {
        let a = p["text_a"].as_str().expect("text_a");
        let b = p["text_b"].as_str().expect("text_b");
        let (ids, types) = tok.encode_pair_with_special(a, b);
        assert_eq!(
            ids,
            ints(&p["ids_with_special"]),
            "{name}: pair {a:?} / {b:?}"
        );
        assert_eq!(
            types,
            ints(&p["token_type_ids"]),
            "{name}: pair {a:?} / {b:?}"
        );
        let enc = tok.encode_pair(a, b, 16).expect("max_length 16");
        let m = &p["max_length_16_longest_first"];
        assert_eq!(enc.input_ids, ints(&m["input_ids"]), "{name}: pair {a:?}");
        assert_eq!(
            enc.attention_mask,
            ints(&m["attention_mask"]),
            "{name}: pair {a:?}"
        );
        assert_eq!(
            enc.token_type_ids,
            ints(&m["token_type_ids"]),
            "{name}: pair {a:?}"
        );
        assert_eq!(
            tok.convert_ids_to_tokens(&enc.input_ids),
            strings(&m["tokens"]),
            "{name}: pair tokens {a:?}"
        );
    }
    (sentences.len(), pairs.len())
}

#[test]
fn uncased_canonical_vocab_matches_reference() {
    let (s, p) = check_section("uncased_canonical_vocab", "minilm/vocab.txt");
    assert_eq!((s, p), (20, 3));
}

#[test]
fn chinese_cased_matches_reference() {
    let (s, p) = check_section("chinese", "vocab_zh/vocab.txt");
    assert_eq!((s, p), (15, 2));
}

#[test]
fn chinese_lowercased_matches_reference() {
    let (s, p) = check_section("chinese_lowercased", "vocab_zh/vocab.txt");
    assert_eq!((s, p), (15, 2));
}

#[test]
fn missing_vocab_and_missing_special_token_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope.txt");
    let err = BertTokenizer::from_vocab_file(&missing, true).expect_err("missing file");
    assert!(err.to_string().contains("nope.txt"), "{err}");

    let partial = dir.path().join("vocab.txt");
    std::fs::write(&partial, "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n").expect("write");
    let err = BertTokenizer::from_vocab_file(&partial, true).expect_err("no [MASK]");
    assert!(err.to_string().contains("[MASK]"), "{err}");

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, b"[PAD]\n[UNK]\n\xff\xfe\n").expect("write");
    let err = BertTokenizer::from_vocab_file(&bad, true).expect_err("not utf-8");
    assert!(err.to_string().contains("bad.txt:3"), "{err}");
}

#[test]
fn crlf_vocab_is_read_like_python() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("vocab.txt");
    std::fs::write(
        &path,
        "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nhi\r\n",
    )
    .expect("write");
    let tok = BertTokenizer::from_vocab_file(&path, true).expect("loads");
    assert_eq!(tok.vocab_size(), 6);
    assert_eq!(tok.token_to_id("hi"), Some(5));
    assert_eq!(
        tok.encode("HI there", 6).expect("enc").input_ids,
        [2, 5, 1, 3, 0, 0]
    );
}
