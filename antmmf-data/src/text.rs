//! AntMMF's caption processor `masked_bert_tokenizer` (`antmmf/datasets/processors/
//! text_processors.py`: `MaskedTokenProcessor` + `MaskedBertTokenizer`) and the typed view of its
//! `params` (`processors.caption_processor.params`).
//!
//! One call turns a caption into `[CLS] tokens [SEP] [PAD]...` (`[CLS]` left out with
//! `trim_start_token`) of exactly `max_seq_length` ids, with BERT MLM masking: every caption token
//! is selected with `mask_probability`; a selected token becomes `[MASK]` (80 %), a uniformly
//! random vocabulary id (10 %) or stays as is (10 %), and its label is its original id. Labels of
//! unselected tokens, `[CLS]`, `[SEP]` and padding are [`IGNORE_LABEL`] (-1, what AntMMF writes
//! into `lm_label_ids` and what its MLM heads ignore).
//!
//! Differences from AntMMF, on purpose:
//! - AntMMF builds the unmasked ids (`caption_raw_input_ids`) with a second processor call, which
//!   with `random_truncate` may pick a different window than the masked ids; here both come from
//!   one call and one window ([`CaptionEncoding::input_ids_unmasked`]).
//! - Whole-word masking: AntMMF only extends a selected *first* piece to the `##` pieces after it
//!   (looking at the already-masked tokens), so a word whose middle piece is selected is split.
//!   Here a word with any selected piece has all its pieces labelled, and the pieces that were not
//!   selected themselves become `[MASK]` (as AntMMF does for the pieces it adds).
//! - Chinese whole words (`word_segmenter: jieba`, not in AntMMF, whose `##` rule never groups
//!   the single-character tokens of bert-base-chinese): with `whole_word_masking`, the characters
//!   of one segmented Chinese word form a word like `##` pieces do (see [`crate::segment`]).
//!   Selection stays per token, so a word of `n` characters is selected with probability
//!   `1 - (1 - p)^n`: more tokens than `mask_probability` get labels (`1 - 0.85^2 = 0.28` of
//!   the tokens of two-character words at `p = 0.15`).
//! - Randomness comes only from the `Rng` the caller passes (seeded per sample), never a global
//!   generator, so resumed runs draw the same masks.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::{Rng, RngExt};
use serde::Deserialize;

use crate::segment::{WordSegmenter, token_words};
use crate::tokenizer::{BertTokenizer, MASK_TOKEN, TokenizerError, is_chinese_char};

/// Label of positions that take no part in the MLM loss (AntMMF's `-1`).
pub const IGNORE_LABEL: i64 = -1;

/// Errors of the caption processor's configuration.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// `max_seq_length` cannot hold the special tokens.
    #[error(
        "caption_processor.params.max_seq_length is {max_seq_length}, it must be at least {needed} to hold the special tokens"
    )]
    MaxSeqLengthTooSmall {
        /// The configured length.
        max_seq_length: usize,
        /// The number of special tokens.
        needed: usize,
    },
    /// `mask_probability` is not a probability.
    #[error("caption_processor.params.mask_probability is {0}, it must lie in [0, 1]")]
    BadProbability(f64),
    /// The vocabulary could not be loaded.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The SNP-S3 word files could not be read.
    #[error(transparent)]
    Words(#[from] crate::words::WordsError),
    /// No vocabulary file was found for `tokenizer_config`.
    #[error("no vocab.txt found for tokenizer_config.type {type_:?}; tried {tried:?}")]
    VocabNotFound {
        /// `tokenizer_config.type`.
        type_: String,
        /// Paths tried.
        tried: Vec<PathBuf>,
    },
}

/// `processors.caption_processor.params` of a `masked_bert_tokenizer`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptionProcessorParams {
    /// Total length of the output, special tokens included (AntMMF also reads `max_length`).
    #[serde(alias = "max_length")]
    pub max_seq_length: usize,
    /// Probability that a caption token is selected for MLM; `masked_bert_tokenizer`'s default is 0.
    #[serde(default)]
    pub mask_probability: f64,
    /// Keep a random window (instead of the head) of captions longer than the budget.
    #[serde(default)]
    pub random_truncate: bool,
    /// Leave `[CLS]` out (the caption is appended to other tokens later).
    #[serde(default)]
    pub trim_start_token: bool,
    /// Only select CJK characters for MLM (`random_mask_chinese`).
    #[serde(default)]
    pub random_mask_chinese: bool,
    /// Select whole words: all `##` pieces of a word together.
    #[serde(default)]
    pub whole_word_masking: bool,
    /// With `whole_word_masking`, also mask the characters of a segmented Chinese word together
    /// (`jieba`); unset: each Chinese character is a word of its own, as in AntMMF.
    #[serde(default)]
    pub word_segmenter: Option<WordSegmenter>,
    /// SNP-S3's `intra_VTM` (important-word MLM, [`crate::iw_mlm`]).
    #[serde(rename = "intra_VTM", default)]
    pub intra_vtm: Option<crate::iw_mlm::IntraVtmParams>,
    /// Which tokenizer to build.
    #[serde(default)]
    pub tokenizer_config: TokenizerConfig,
    /// AntMMF's text preprocessor (`simple_sentence`), kept as given.
    #[serde(default)]
    pub preprocessor: Option<serde_json::Value>,
}

/// `tokenizer_config` of a caption processor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerConfig {
    /// Pretrained model name (`bert-base-uncased`, `bert-base-chinese`) or a vocabulary path.
    #[serde(rename = "type", default = "default_tokenizer_type")]
    pub type_: String,
    /// Tokenizer parameters.
    #[serde(default)]
    pub params: TokenizerParams,
}

/// `tokenizer_config.params`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerParams {
    /// Model family (`bert`).
    #[serde(default)]
    pub model_type: Option<String>,
    /// Lower-case and strip accents; default from the model name (see [`TokenizerConfig::do_lower_case`]).
    #[serde(default)]
    pub do_lower_case: Option<bool>,
    /// Explicit path of `vocab.txt`.
    #[serde(default)]
    pub vocab_path: Option<String>,
    /// AntMMF's switch between a pretrained model directory and `vocab_path`.
    #[serde(default)]
    pub pretrained: Option<bool>,
}

fn default_tokenizer_type() -> String {
    "bert-base-uncased".to_owned()
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        Self {
            type_: default_tokenizer_type(),
            params: TokenizerParams::default(),
        }
    }
}

impl TokenizerConfig {
    /// `params.do_lower_case`, else the hub default of the model: `false` for cased and Chinese
    /// models, `true` otherwise.
    pub fn do_lower_case(&self) -> bool {
        if let Some(v) = self.params.do_lower_case {
            return v;
        }
        let name = self.type_.to_ascii_lowercase();
        !(name.contains("chinese") || (name.contains("cased") && !name.contains("uncased")))
    }

    /// Finds `vocab.txt`: `params.vocab_path`, `type` as a file, `type` as a directory holding
    /// `vocab.txt`, then `<dir>/<type>/vocab.txt` for each of `search_dirs`.
    pub fn resolve_vocab_file(&self, search_dirs: &[&Path]) -> Result<PathBuf, TextError> {
        let mut tried = Vec::new();
        if let Some(p) = &self.params.vocab_path {
            tried.push(PathBuf::from(p));
        }
        let ty = PathBuf::from(&self.type_);
        tried.push(ty.clone());
        tried.push(ty.join("vocab.txt"));
        for dir in search_dirs {
            tried.push(dir.join(&self.type_).join("vocab.txt"));
        }
        match tried.iter().find(|p| p.is_file()) {
            Some(p) => Ok(p.clone()),
            None => Err(TextError::VocabNotFound {
                type_: self.type_.clone(),
                tried,
            }),
        }
    }
}

/// One processed caption: AntMMF's `caption_*` fields, each `max_seq_length` long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptionEncoding {
    /// Ids after MLM masking (`caption_input_ids`).
    pub input_ids: Vec<i64>,
    /// Ids of the same window without masking (`caption_raw_input_ids`).
    pub input_ids_unmasked: Vec<i64>,
    /// 1 for tokens, 0 for padding (`caption_input_mask`).
    pub input_mask: Vec<i64>,
    /// Segment (token type) ids, all 0 for a single caption (`caption_segment_ids`).
    pub segment_ids: Vec<i64>,
    /// Original id at selected positions, [`IGNORE_LABEL`] elsewhere (`caption_lm_label_ids`).
    pub lm_label_ids: Vec<i64>,
    /// Masked tokens, special tokens included, without padding (`caption_tokens`).
    pub tokens: Vec<String>,
    /// Number of non-padding positions (`caption_source_len`).
    pub source_len: usize,
}

/// The `masked_bert_tokenizer` caption processor.
#[derive(Debug, Clone)]
pub struct CaptionProcessor {
    params: CaptionProcessorParams,
    tokenizer: Arc<BertTokenizer>,
    iw_mlm: Option<Arc<crate::iw_mlm::IwMlm>>,
}

impl CaptionProcessor {
    /// Checks the parameters and wraps the tokenizer.
    pub fn new(
        params: CaptionProcessorParams,
        tokenizer: Arc<BertTokenizer>,
    ) -> Result<Self, TextError> {
        let needed = if params.trim_start_token { 1 } else { 2 };
        if params.max_seq_length < needed {
            return Err(TextError::MaxSeqLengthTooSmall {
                max_seq_length: params.max_seq_length,
                needed,
            });
        }
        if !(0.0..=1.0).contains(&params.mask_probability) {
            return Err(TextError::BadProbability(params.mask_probability));
        }
        if params.word_segmenter.is_some() && !params.whole_word_masking {
            log::warn!(
                "caption_processor.params.word_segmenter is set but whole_word_masking is not: \
                 Chinese words are not masked whole"
            );
        }
        let iw_mlm = match params.intra_vtm.as_ref().filter(|v| v.iw_mlm) {
            Some(v) => Some(Arc::new(crate::iw_mlm::IwMlm::load(v, &tokenizer)?)),
            None => None,
        };
        Ok(Self {
            params,
            tokenizer,
            iw_mlm,
        })
    }

    /// Builds the tokenizer of `params.tokenizer_config` (vocabulary found by
    /// [`TokenizerConfig::resolve_vocab_file`] in `search_dirs`) and the processor.
    pub fn from_params(
        params: CaptionProcessorParams,
        search_dirs: &[&Path],
    ) -> Result<Self, TextError> {
        let cfg = &params.tokenizer_config;
        let vocab = cfg.resolve_vocab_file(search_dirs)?;
        let tokenizer = BertTokenizer::from_vocab_file(vocab, cfg.do_lower_case())?;
        Self::new(params, Arc::new(tokenizer))
    }

    /// The parameters.
    pub fn params(&self) -> &CaptionProcessorParams {
        &self.params
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &BertTokenizer {
        &self.tokenizer
    }

    /// Number of caption tokens that fit besides the special tokens.
    pub fn content_len(&self) -> usize {
        let specials = if self.params.trim_start_token { 1 } else { 2 };
        self.params.max_seq_length - specials
    }

    /// Processes a caption with the configured `mask_probability`.
    pub fn process<R: Rng + ?Sized>(&self, text: &str, rng: &mut R) -> CaptionEncoding {
        self.process_with_probability(text, self.params.mask_probability, rng)
    }

    /// Processes a caption with masking probability `probability` (0 gives no masking, as
    /// AntMMF's `probability=0.0` calls for raw and false captions); values outside [0, 1] are
    /// clamped.
    pub fn process_with_probability<R: Rng + ?Sized>(
        &self,
        text: &str,
        probability: f64,
        rng: &mut R,
    ) -> CaptionEncoding {
        let probability = if probability.is_nan() {
            0.0
        } else {
            probability.clamp(0.0, 1.0)
        };
        // Chinese words are only needed when something is masked (not for raw or false captions).
        let segmenter = self
            .params
            .word_segmenter
            .filter(|_| self.params.whole_word_masking && probability > 0.0);
        let (mut tokens, mut words) = match segmenter {
            Some(seg) => {
                let (tokens, chinese) = self.tokenizer.tokenize_flagging_chinese(text);
                let words = token_words(&chinese, &seg.chinese_char_words(text));
                (tokens, Some(words))
            }
            None => (self.tokenizer.tokenize(text), None),
        };
        let window = self.truncate_window(tokens.len(), rng);
        tokens.truncate(window.end);
        tokens.drain(..window.start);
        if let Some(w) = words.as_mut() {
            w.truncate(window.end);
            w.drain(..window.start);
        }
        let original_ids: Vec<i64> = self
            .tokenizer
            .convert_tokens_to_ids(&tokens)
            .into_iter()
            .map(i64::from)
            .collect();
        let (masked, labels) =
            self.mask(&tokens, &original_ids, words.as_deref(), probability, rng);

        let max_len = self.params.max_seq_length;
        let cls = i64::from(self.tokenizer.cls_id());
        let sep = i64::from(self.tokenizer.sep_id());
        let pad = i64::from(self.tokenizer.pad_id());
        let mut out = CaptionEncoding {
            input_ids: Vec::with_capacity(max_len),
            input_ids_unmasked: Vec::with_capacity(max_len),
            input_mask: Vec::with_capacity(max_len),
            segment_ids: Vec::with_capacity(max_len),
            lm_label_ids: Vec::with_capacity(max_len),
            tokens: Vec::with_capacity(tokens.len() + 2),
            source_len: 0,
        };
        if !self.params.trim_start_token {
            out.input_ids.push(cls);
            out.input_ids_unmasked.push(cls);
            out.lm_label_ids.push(IGNORE_LABEL);
            out.tokens.push(crate::tokenizer::CLS_TOKEN.to_owned());
        }
        for (((tok, id), orig), label) in masked.into_iter().zip(original_ids).zip(labels) {
            out.input_ids.push(id);
            out.input_ids_unmasked.push(orig);
            out.lm_label_ids.push(label);
            out.tokens.push(tok);
        }
        out.input_ids.push(sep);
        out.input_ids_unmasked.push(sep);
        out.lm_label_ids.push(IGNORE_LABEL);
        out.tokens.push(crate::tokenizer::SEP_TOKEN.to_owned());
        out.source_len = out.input_ids.len();
        out.input_mask.resize(out.source_len, 1);
        out.segment_ids.resize(out.source_len, 0);
        out.input_ids.resize(max_len, pad);
        out.input_ids_unmasked.resize(max_len, pad);
        out.input_mask.resize(max_len, 0);
        out.segment_ids.resize(max_len, 0);
        out.lm_label_ids.resize(max_len, IGNORE_LABEL);
        out
    }

    /// `_truncate_tokens`: the kept window of `len` tokens: the head, or with `random_truncate`
    /// a uniformly drawn window `s..s + content_len`, `s` in `0..=len - content_len`.
    fn truncate_window<R: Rng + ?Sized>(&self, len: usize, rng: &mut R) -> Range<usize> {
        let keep = self.content_len();
        if len <= keep {
            return 0..len;
        }
        let start = if self.params.random_truncate {
            rng.random_range(0..=len - keep)
        } else {
            0
        };
        start..start + keep
    }

    /// `_random_word` (+ whole-word masking): masked `(token, id)` pairs and labels. `words`:
    /// the segmented Chinese word of each token (see [`word_spans_with_chinese`]).
    fn mask<R: Rng + ?Sized>(
        &self,
        tokens: &[String],
        ids: &[i64],
        words: Option<&[Option<u32>]>,
        probability: f64,
        rng: &mut R,
    ) -> (Vec<(String, i64)>, Vec<i64>) {
        let mask_id = i64::from(self.tokenizer.mask_id());
        let vocab_size = self.tokenizer.vocab_size().max(1);
        let mut out: Vec<(String, i64)> = tokens.iter().cloned().zip(ids.iter().copied()).collect();
        let mut labels = vec![IGNORE_LABEL; tokens.len()];
        if probability <= 0.0 {
            return (out, labels);
        }
        if let Some(iw) = &self.iw_mlm {
            return iw.mask(tokens, ids, probability, &self.tokenizer, IGNORE_LABEL, rng);
        }
        for (i, token) in tokens.iter().enumerate() {
            let draw: f64 = rng.random();
            if self.params.random_mask_chinese && !token.chars().all(is_chinese_char) {
                continue;
            }
            if draw < probability {
                let action = draw / probability;
                if action < 0.8 {
                    out[i] = (MASK_TOKEN.to_owned(), mask_id);
                } else if action < 0.9 {
                    let id = rng.random_range(0..vocab_size);
                    let id = u32::try_from(id).unwrap_or(0);
                    let tok = self.tokenizer.id_to_token(id).unwrap_or(MASK_TOKEN);
                    out[i] = (tok.to_owned(), i64::from(id));
                }
                labels[i] = ids[i];
            }
        }
        if self.params.whole_word_masking {
            let spans = match words {
                Some(words) => word_spans_with_chinese(tokens, words),
                None => word_spans(tokens),
            };
            for word in spans {
                if word.clone().any(|i| labels[i] != IGNORE_LABEL) {
                    for i in word {
                        if labels[i] == IGNORE_LABEL {
                            labels[i] = ids[i];
                            out[i] = (MASK_TOKEN.to_owned(), mask_id);
                        }
                    }
                }
            }
        }
        (out, labels)
    }
}

/// Index ranges of words: a first piece followed by its `##` continuation pieces.
pub fn word_spans(tokens: &[String]) -> Vec<Range<usize>> {
    spans_by(tokens.len(), |i| tokens[i].starts_with("##"))
}

/// [`word_spans`], where consecutive tokens of one segmented Chinese word (`words[i]`, from
/// [`crate::segment::token_words`]) also form one word.
pub fn word_spans_with_chinese(tokens: &[String], words: &[Option<u32>]) -> Vec<Range<usize>> {
    spans_by(tokens.len(), |i| {
        tokens[i].starts_with("##")
            || (i > 0
                && words.get(i).copied().flatten().is_some()
                && words.get(i) == words.get(i - 1))
    })
}

/// Spans of `0..n` where `continues(i)` puts token `i` in the span of token `i - 1`.
fn spans_by(n: usize, continues: impl Fn(usize) -> bool) -> Vec<Range<usize>> {
    let mut spans: Vec<Range<usize>> = Vec::new();
    for i in 0..n {
        match spans.last_mut() {
            Some(last) if continues(i) => last.end = i + 1,
            _ => spans.push(i..i + 1),
        }
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_spans_group_continuation_pieces() {
        let toks: Vec<String> = ["a", "un", "##aff", "##able", "b", "##c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(word_spans(&toks), vec![0..1, 1..4, 4..6]);
    }

    #[test]
    fn lower_case_defaults_follow_model_name() {
        let mut cfg = TokenizerConfig::default();
        assert!(cfg.do_lower_case());
        cfg.type_ = "bert-base-chinese".into();
        assert!(!cfg.do_lower_case());
        cfg.type_ = "bert-base-cased".into();
        assert!(!cfg.do_lower_case());
        cfg.params.do_lower_case = Some(true);
        assert!(cfg.do_lower_case());
    }
}
