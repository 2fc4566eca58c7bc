//! BERT WordPiece tokenizer, written from transformers' pure-Python slow `BertTokenizer`
//! (`tokenization_bert.py`: `BasicTokenizer` + `WordpieceTokenizer`), which is what AntMMF's
//! `masked_bert_tokenizer` processor builds through `build_tokenizer`.
//!
//! Behaviour mirrored exactly (checked against `fixtures/bert_tokenizer.json`):
//! - special tokens (`[PAD] [UNK] [CLS] [SEP] [MASK]`) written in the text are split out first and
//!   kept whole, like transformers' added-token trie;
//! - `_clean_text`: NUL, U+FFFD and control characters (category `C*` other than `\t \n \r`) are
//!   dropped, whitespace (`\t \n \r`, category `Zs`) becomes a space;
//! - `_tokenize_chinese_chars`: every character of the CJK ranges of `_is_chinese_char` becomes
//!   its own word;
//! - NFC normalisation, then per word: lower-casing and accent stripping (NFD, drop `Mn`) when
//!   `do_lower_case`, then splitting on punctuation (ASCII 33-47, 58-64, 91-96, 123-126 or
//!   Unicode category `P*`);
//! - WordPiece: greedy longest match with `##` continuations; a word with a piece that is not in
//!   the vocabulary, or longer than 100 characters, becomes `[UNK]`;
//! - pairs are truncated with `longest_first`: one token at a time from the longer sequence, from
//!   the second one on ties.
//!
//! Unicode tables come from the `unicode-general-category` and `unicode-normalization` crates
//! (Unicode 16); Python 3.11 uses Unicode 14, so characters assigned after Unicode 14 may be
//! classified differently from the reference.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

/// Index of a token in the vocabulary.
pub type TokenId = u32;

/// Padding token.
pub const PAD_TOKEN: &str = "[PAD]";
/// Unknown-word token.
pub const UNK_TOKEN: &str = "[UNK]";
/// Sequence-start (classification) token.
pub const CLS_TOKEN: &str = "[CLS]";
/// Separator token.
pub const SEP_TOKEN: &str = "[SEP]";
/// MLM mask token.
pub const MASK_TOKEN: &str = "[MASK]";

/// The special tokens, in the order transformers lists them, that are never split.
const SPECIAL_TOKENS: [&str; 5] = [UNK_TOKEN, SEP_TOKEN, PAD_TOKEN, CLS_TOKEN, MASK_TOKEN];

/// Words longer than this many characters become `[UNK]` (transformers' default).
pub const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// Errors of vocabulary loading and encoding.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The vocabulary file could not be read.
    #[error("cannot read vocabulary {path}: {source}")]
    Io {
        /// The vocabulary file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of the vocabulary is not UTF-8.
    #[error("vocabulary {path}:{line}: not valid UTF-8")]
    NotUtf8 {
        /// The vocabulary file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// The vocabulary lacks a special token the tokenizer needs.
    #[error("vocabulary {path} has no special token {token}")]
    MissingSpecialToken {
        /// The vocabulary file.
        path: PathBuf,
        /// The missing token.
        token: &'static str,
    },
    /// The vocabulary has more entries than a token id can hold.
    #[error("vocabulary {path} has more than u32::MAX entries")]
    TooLarge {
        /// The vocabulary file.
        path: PathBuf,
    },
    /// `max_length` cannot even hold the special tokens.
    #[error("max_length {max_length} is smaller than the {needed} special tokens it must hold")]
    MaxLengthTooSmall {
        /// The requested maximum length.
        max_length: usize,
        /// Number of special tokens of the encoding.
        needed: usize,
    },
}

/// A padded model input: what transformers returns for
/// `tok(text, max_length=n, truncation=True, padding="max_length")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// Token ids, `[CLS] ... [SEP]` then `[PAD]` (0) up to `max_length`.
    pub input_ids: Vec<TokenId>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// 0 for the first sequence (and padding), 1 for the second sequence of a pair.
    pub token_type_ids: Vec<u32>,
}

/// A BERT WordPiece tokenizer loaded from a `vocab.txt` (one token per line, id = line index).
#[derive(Debug, Clone)]
pub struct BertTokenizer {
    vocab: HashMap<String, TokenId>,
    ids_to_tokens: Vec<String>,
    do_lower_case: bool,
    pad_id: TokenId,
    unk_id: TokenId,
    cls_id: TokenId,
    sep_id: TokenId,
    mask_id: TokenId,
}

impl BertTokenizer {
    /// Loads `vocab.txt`; `do_lower_case` also strips accents, as in transformers.
    pub fn from_vocab_file(
        path: impl AsRef<Path>,
        do_lower_case: bool,
    ) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| TokenizerError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut lines: Vec<String> = Vec::new();
        let mut rest: &[u8] = &bytes;
        while !rest.is_empty() {
            let (line, tail) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text = std::str::from_utf8(line).map_err(|_| TokenizerError::NotUtf8 {
                path: path.to_path_buf(),
                line: lines.len() + 1,
            })?;
            lines.push(text.to_owned());
            rest = tail;
        }
        Self::from_tokens(lines, do_lower_case).map_err(|e| match e {
            TokenizerError::MissingSpecialToken { token, .. } => {
                TokenizerError::MissingSpecialToken {
                    path: path.to_path_buf(),
                    token,
                }
            }
            TokenizerError::TooLarge { .. } => TokenizerError::TooLarge {
                path: path.to_path_buf(),
            },
            other => other,
        })
    }

    /// Builds a tokenizer from the vocabulary tokens in id order (for tests and tools).
    pub fn from_tokens(tokens: Vec<String>, do_lower_case: bool) -> Result<Self, TokenizerError> {
        if u32::try_from(tokens.len()).is_err() {
            return Err(TokenizerError::TooLarge {
                path: PathBuf::new(),
            });
        }
        let mut vocab = HashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            // Later duplicates win, as in transformers' `load_vocab` dict.
            vocab.insert(t.clone(), i as TokenId);
        }
        let special = |token: &'static str| {
            vocab
                .get(token)
                .copied()
                .ok_or(TokenizerError::MissingSpecialToken {
                    path: PathBuf::new(),
                    token,
                })
        };
        Ok(Self {
            pad_id: special(PAD_TOKEN)?,
            unk_id: special(UNK_TOKEN)?,
            cls_id: special(CLS_TOKEN)?,
            sep_id: special(SEP_TOKEN)?,
            mask_id: special(MASK_TOKEN)?,
            vocab,
            ids_to_tokens: tokens,
            do_lower_case,
        })
    }

    /// Number of vocabulary entries (lines of `vocab.txt`).
    pub fn vocab_size(&self) -> usize {
        self.ids_to_tokens.len()
    }

    /// Whether text is lower-cased and accent-stripped.
    pub fn do_lower_case(&self) -> bool {
        self.do_lower_case
    }

    /// Id of `[PAD]`.
    pub fn pad_id(&self) -> TokenId {
        self.pad_id
    }

    /// Id of `[UNK]`.
    pub fn unk_id(&self) -> TokenId {
        self.unk_id
    }

    /// Id of `[CLS]`.
    pub fn cls_id(&self) -> TokenId {
        self.cls_id
    }

    /// Id of `[SEP]`.
    pub fn sep_id(&self) -> TokenId {
        self.sep_id
    }

    /// Id of `[MASK]`.
    pub fn mask_id(&self) -> TokenId {
        self.mask_id
    }

    /// Id of a token, `None` when it is not in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<TokenId> {
        self.vocab.get(token).copied()
    }

    /// Token of an id, `None` when out of range.
    pub fn id_to_token(&self, id: TokenId) -> Option<&str> {
        self.ids_to_tokens.get(id as usize).map(String::as_str)
    }

    /// Ids of tokens; tokens outside the vocabulary map to `[UNK]` (as transformers does).
    pub fn convert_tokens_to_ids<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<TokenId> {
        tokens
            .iter()
            .map(|t| self.token_to_id(t.as_ref()).unwrap_or(self.unk_id))
            .collect()
    }

    /// Tokens of ids; out-of-range ids map to `[UNK]`.
    pub fn convert_ids_to_tokens(&self, ids: &[TokenId]) -> Vec<String> {
        ids.iter()
            .map(|&id| self.id_to_token(id).unwrap_or(UNK_TOKEN).to_owned())
            .collect()
    }

    /// WordPiece tokens of a text, without special tokens (`tok.tokenize(text)`).
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.tokenize_into(text, &mut out, None);
        out
    }

    /// [`BertTokenizer::tokenize`], plus for each token whether it stands for one Chinese (CJK)
    /// character of the text: the character itself, or `[UNK]` for one missing from the
    /// vocabulary. The flagged tokens are the text's CJK characters, one each, in order (the
    /// basic tokenizer splits every CJK character into its own word).
    pub fn tokenize_flagging_chinese(&self, text: &str) -> (Vec<String>, Vec<bool>) {
        let mut out = Vec::new();
        let mut flags = Vec::new();
        self.tokenize_into(text, &mut out, Some(&mut flags));
        (out, flags)
    }

    fn tokenize_into(&self, text: &str, out: &mut Vec<String>, mut flags: Option<&mut Vec<bool>>) {
        for segment in split_special_tokens(text) {
            match segment {
                Segment::Special(token) => out.push(token.to_owned()),
                Segment::Text(chunk) => {
                    for word in self.basic_tokenize(chunk) {
                        self.wordpiece(&word, out);
                        if let Some(flags) = flags.as_deref_mut() {
                            let mut chars = word.chars();
                            let chinese = matches!(
                                (chars.next(), chars.next()),
                                (Some(c), None) if is_chinese_char(c)
                            );
                            flags.resize(out.len(), chinese);
                        }
                    }
                }
            }
            if let Some(flags) = flags.as_deref_mut() {
                flags.resize(out.len(), false);
            }
        }
    }

    /// Ids of `[CLS] tokens [SEP]`, untruncated (`tok.encode(text)`).
    pub fn encode_with_special(&self, text: &str) -> Vec<TokenId> {
        let mut ids = vec![self.cls_id];
        ids.extend(self.convert_tokens_to_ids(&self.tokenize(text)));
        ids.push(self.sep_id);
        ids
    }

    /// `[CLS] text [SEP]` truncated and padded to `max_length`.
    pub fn encode(&self, text: &str, max_length: usize) -> Result<Encoding, TokenizerError> {
        let budget = max_length
            .checked_sub(2)
            .ok_or(TokenizerError::MaxLengthTooSmall {
                max_length,
                needed: 2,
            })?;
        let mut ids = self.convert_tokens_to_ids(&self.tokenize(text));
        ids.truncate(budget);
        Ok(self.assemble(&ids, None, max_length))
    }

    /// `[CLS] a [SEP] b [SEP]` with `longest_first` truncation, padded to `max_length`.
    pub fn encode_pair(
        &self,
        text_a: &str,
        text_b: &str,
        max_length: usize,
    ) -> Result<Encoding, TokenizerError> {
        let budget = max_length
            .checked_sub(3)
            .ok_or(TokenizerError::MaxLengthTooSmall {
                max_length,
                needed: 3,
            })?;
        let mut a = self.convert_tokens_to_ids(&self.tokenize(text_a));
        let mut b = self.convert_tokens_to_ids(&self.tokenize(text_b));
        truncate_longest_first(&mut a, &mut b, budget);
        Ok(self.assemble(&a, Some(&b), max_length))
    }

    /// Ids and segment ids of `[CLS] a [SEP] b [SEP]`, untruncated.
    pub fn encode_pair_with_special(&self, text_a: &str, text_b: &str) -> (Vec<TokenId>, Vec<u32>) {
        let a = self.convert_tokens_to_ids(&self.tokenize(text_a));
        let b = self.convert_tokens_to_ids(&self.tokenize(text_b));
        let enc = self.assemble(&a, Some(&b), 0);
        (enc.input_ids, enc.token_type_ids)
    }

    /// `[CLS] a [SEP] (b [SEP])` padded with `[PAD]` up to `max_length` (never truncates).
    fn assemble(&self, a: &[TokenId], b: Option<&[TokenId]>, max_length: usize) -> Encoding {
        let mut input_ids = Vec::with_capacity(max_length);
        let mut token_type_ids = Vec::with_capacity(max_length);
        input_ids.push(self.cls_id);
        input_ids.extend_from_slice(a);
        input_ids.push(self.sep_id);
        token_type_ids.resize(input_ids.len(), 0);
        if let Some(b) = b {
            input_ids.extend_from_slice(b);
            input_ids.push(self.sep_id);
            token_type_ids.resize(input_ids.len(), 1);
        }
        let mut attention_mask = vec![1; input_ids.len()];
        if input_ids.len() < max_length {
            input_ids.resize(max_length, self.pad_id);
            attention_mask.resize(max_length, 0);
            token_type_ids.resize(max_length, 0);
        }
        Encoding {
            input_ids,
            attention_mask,
            token_type_ids,
        }
    }

    /// `BasicTokenizer.tokenize`: clean, split CJK, normalise, lower/strip accents, split punctuation.
    fn basic_tokenize(&self, text: &str) -> Vec<String> {
        let mut cleaned = String::with_capacity(text.len());
        for c in text.chars() {
            if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                continue;
            }
            if is_chinese_char(c) {
                cleaned.push(' ');
                cleaned.push(c);
                cleaned.push(' ');
            } else if is_whitespace(c) {
                cleaned.push(' ');
            } else {
                cleaned.push(c);
            }
        }
        let normalized: String = cleaned.nfc().collect();
        let mut words = Vec::new();
        for token in normalized.split_whitespace() {
            let token = if self.do_lower_case {
                strip_accents(&token.to_lowercase())
            } else {
                token.to_owned()
            };
            split_on_punctuation(&token, &mut words);
        }
        words
    }

    /// `WordpieceTokenizer.tokenize` of one word, appended to `out`.
    fn wordpiece(&self, word: &str, out: &mut Vec<String>) {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > MAX_INPUT_CHARS_PER_WORD {
            out.push(UNK_TOKEN.to_owned());
            return;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        let mut candidate = String::new();
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while start < end {
                candidate.clear();
                if start > 0 {
                    candidate.push_str("##");
                }
                candidate.extend(&chars[start..end]);
                if self.vocab.contains_key(candidate.as_str()) {
                    found = Some(candidate.clone());
                    break;
                }
                end -= 1;
            }
            match found {
                Some(piece) => {
                    pieces.push(piece);
                    start = end;
                }
                None => {
                    out.push(UNK_TOKEN.to_owned());
                    return;
                }
            }
        }
        out.extend(pieces);
    }
}

/// Removes tokens one at a time from the longer sequence (from `b` on ties) until
/// `a.len() + b.len() <= budget`: transformers' `longest_first` strategy.
pub fn truncate_longest_first<T>(a: &mut Vec<T>, b: &mut Vec<T>, budget: usize) {
    while a.len() + b.len() > budget {
        if a.len() > b.len() {
            a.pop();
        } else {
            b.pop();
        }
    }
}

/// A piece of input text: plain text or a special token written in it.
enum Segment<'a> {
    Text(&'a str),
    Special(&'a str),
}

/// Splits out special tokens written in the text (leftmost, longest match), like the added-token
/// trie of transformers' `PreTrainedTokenizer.tokenize`.
fn split_special_tokens(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with('[')
            && let Some(tok) = SPECIAL_TOKENS
                .iter()
                .filter(|t| rest.starts_with(**t))
                .max_by_key(|t| t.len())
        {
            if start < i {
                out.push(Segment::Text(&text[start..i]));
            }
            out.push(Segment::Special(&text[i..i + tok.len()]));
            i += tok.len();
            start = i;
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    if start < text.len() {
        out.push(Segment::Text(&text[start..]));
    }
    out
}

/// `_is_whitespace`: space, tab, newline, carriage return or category `Zs`.
fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
        || get_general_category(c) == GeneralCategory::SpaceSeparator
}

/// `_is_control`: category `C*` except tab, newline and carriage return.
fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
    )
}

/// `_is_punctuation`: the ASCII symbol ranges or category `P*`.
pub fn is_punctuation(c: char) -> bool {
    let cp = c as u32;
    if (33..=47).contains(&cp)
        || (58..=64).contains(&cp)
        || (91..=96).contains(&cp)
        || (123..=126).contains(&cp)
    {
        return true;
    }
    matches!(
        get_general_category(c),
        GeneralCategory::ConnectorPunctuation
            | GeneralCategory::DashPunctuation
            | GeneralCategory::OpenPunctuation
            | GeneralCategory::ClosePunctuation
            | GeneralCategory::InitialPunctuation
            | GeneralCategory::FinalPunctuation
            | GeneralCategory::OtherPunctuation
    )
}

/// `_is_chinese_char`: the CJK Unified Ideographs blocks BERT splits into single characters.
pub fn is_chinese_char(c: char) -> bool {
    let cp = c as u32;
    (0x4E00..=0x9FFF).contains(&cp)
        || (0x3400..=0x4DBF).contains(&cp)
        || (0x20000..=0x2A6DF).contains(&cp)
        || (0x2A700..=0x2B73F).contains(&cp)
        || (0x2B740..=0x2B81F).contains(&cp)
        || (0x2B820..=0x2CEAF).contains(&cp)
        || (0xF900..=0xFAFF).contains(&cp)
        || (0x2F800..=0x2FA1F).contains(&cp)
}

/// `_run_strip_accents`: NFD, then drop nonspacing marks (`Mn`).
fn strip_accents(text: &str) -> String {
    text.nfd()
        .filter(|&c| get_general_category(c) != GeneralCategory::NonspacingMark)
        .collect()
}

/// `_run_split_on_punc`: every punctuation character becomes its own word.
fn split_on_punctuation(word: &str, out: &mut Vec<String>) {
    let mut current = String::new();
    for c in word.chars() {
        if is_punctuation(c) {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            out.push(c.to_string());
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> BertTokenizer {
        let tokens = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "a", "b", ",",
            "中", "文",
        ];
        BertTokenizer::from_tokens(tokens.iter().map(|s| s.to_string()).collect(), true)
            .expect("toy vocab has all special tokens")
    }

    #[test]
    fn wordpiece_greedy_longest_match() {
        let tok = toy();
        assert_eq!(tok.tokenize("Unaffable"), ["un", "##aff", "##able"]);
        assert_eq!(tok.tokenize("unaffablex"), ["[UNK]"]);
        assert_eq!(tok.tokenize("a,b 中文"), ["a", ",", "b", "中", "文"]);
    }

    #[test]
    fn chinese_flags_mark_one_token_per_cjk_character() {
        let tok = toy();
        // 字 is not in the vocabulary: its `[UNK]` still stands for one CJK character, unlike
        // the `[UNK]` of an unknown Latin word; `[MASK]` written in the text is not CJK.
        let (tokens, flags) = tok.tokenize_flagging_chinese("中字 unaffable xyz[MASK]文");
        assert_eq!(
            tokens,
            [
                "中", "[UNK]", "un", "##aff", "##able", "[UNK]", "[MASK]", "文"
            ]
        );
        assert_eq!(flags, [true, true, false, false, false, false, false, true]);
        assert_eq!(tokens, tok.tokenize("中字 unaffable xyz[MASK]文"));
    }

    #[test]
    fn special_tokens_in_text_are_kept() {
        let tok = toy();
        assert_eq!(
            tok.tokenize("a[MASK]b [SEP]"),
            ["a", "[MASK]", "b", "[SEP]"]
        );
    }

    #[test]
    fn longest_first_removes_from_second_on_ties() {
        let mut a = vec![1; 11];
        let mut b = vec![2; 18];
        truncate_longest_first(&mut a, &mut b, 13);
        assert_eq!((a.len(), b.len()), (7, 6));
    }

    #[test]
    fn too_small_max_length_is_an_error() {
        let tok = toy();
        assert!(matches!(
            tok.encode("a", 1),
            Err(TokenizerError::MaxLengthTooSmall { needed: 2, .. })
        ));
    }
}
