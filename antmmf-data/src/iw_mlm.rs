//! SNP-S3 important-word MLM (`caption_processor.params.intra_VTM.IW_MLM`; AntMMF's
//! `MaskedTokenProcessor._random_word_IW_MLM` in `antmmf/datasets/processors/text_processors.py`).
//!
//! A caption of `n` tokens gets `int(n * p)` masked tokens, one more when the fraction part of
//! `n * p` is at least 0.3 ([`masked_count`]). They are drawn first among its important tokens
//! (`rank[id] <= words_top_k` in the ranked word counts of [`crate::words`]); when it has fewer,
//! all of them are taken and the rest are drawn among the other tokens. A chosen important token
//! becomes `[MASK]` (80 %), a same-lemma variant of a uniformly drawn important vocabulary word
//! (10 %; the word itself when its lemma table entry is empty) or stays (10 %); its label is its
//! original id.
//!
//! Differences from AntMMF, on purpose:
//! - When a caption has too few important tokens AntMMF uses the indices drawn from the list of
//!   other tokens as token positions (so it may mask important or special positions) and labels
//!   them after masking (with the `[MASK]` id). Here the fill-up tokens are the drawn other
//!   tokens, each becomes `[MASK]` and is labelled with its original id.
//! - Whole-word masking is not applied on top (AntMMF's IW-MLM path replaces `_random_word`).

use std::path::{Path, PathBuf};

use rand::{Rng, RngExt};
use serde::Deserialize;

use crate::tokenizer::{BertTokenizer, MASK_TOKEN};
use crate::words::WordsError;

/// AntMMF's `words_top_k` default of the SNP-S3 configs.
pub const DEFAULT_WORDS_TOP_K: u32 = 3000;

fn default_top_k() -> u32 {
    DEFAULT_WORDS_TOP_K
}

/// `caption_processor.params.intra_VTM`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntraVtmParams {
    /// `IW_MLM`: mask important words first.
    #[serde(rename = "IW_MLM", default)]
    pub iw_mlm: bool,
    /// `HT_words_count_file_dir`: the ranked word counts (`antmmf-data words --out`).
    #[serde(rename = "HT_words_count_file_dir", default)]
    pub words_file: Option<PathBuf>,
    /// `vocab_same_lema_dir`: the same-lemma table (`antmmf-data words --lemmas-out`).
    #[serde(rename = "vocab_same_lema_dir", default)]
    pub lemma_file: Option<PathBuf>,
    /// `words_top_k`: a token is important when its rank is at most this.
    #[serde(default = "default_top_k")]
    pub words_top_k: u32,
}

/// The important vocabulary ids: rank at most `words_top_k` in a ranked word-count file.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportantWords {
    /// `important[id]`.
    important: Vec<bool>,
    /// The important ids, ascending.
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct RankFile {
    rank: Vec<i64>,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, WordsError> {
    let text = std::fs::read_to_string(path).map_err(|source| WordsError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| WordsError::Bad {
        path: path.to_owned(),
        line: e.line(),
        message: e.to_string(),
    })
}

impl ImportantWords {
    /// From per-id ranks: `rank[id] <= top_k` is important (AntMMF's comparison).
    pub fn from_ranks(rank: &[i64], top_k: u32) -> Self {
        let important: Vec<bool> = rank
            .iter()
            .map(|&r| r >= 0 && r <= i64::from(top_k))
            .collect();
        let ids = (0..important.len() as u32)
            .filter(|&i| important[i as usize])
            .collect();
        Self { important, ids }
    }

    /// Reads the `rank` list of a ranked word-count file (ours or AntMMF's
    /// `count_reprocess_*.json`); it must have one rank per vocabulary id.
    pub fn load(path: &Path, top_k: u32, vocab_size: usize) -> Result<Self, WordsError> {
        let file: RankFile = read_json(path)?;
        if file.rank.len() != vocab_size {
            return Err(WordsError::Bad {
                path: path.to_owned(),
                line: 0,
                message: format!(
                    "`rank` has {} entries, the vocabulary has {vocab_size} tokens (mined with another vocabulary?)",
                    file.rank.len()
                ),
            });
        }
        Ok(Self::from_ranks(&file.rank, top_k))
    }

    /// Whether vocabulary id `id` is important.
    pub fn is_important(&self, id: i64) -> bool {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.important.get(i))
            .copied()
            .unwrap_or(false)
    }

    /// The important ids, ascending.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}

/// `int(n * p)`, plus one when the fraction part of `n * p` is at least 0.3 (computed in `f64`
/// as AntMMF computes it in Python: `22 * 0.15` has fraction 0.2999999999999998, so 3).
pub fn masked_count(n: usize, probability: f64) -> usize {
    let x = n as f64 * probability;
    let whole = x.trunc();
    let count = whole as usize + usize::from(x - whole >= 0.3);
    count.min(n)
}

/// Draws `k` distinct items of `pool` (partial Fisher-Yates; `k` is capped at its length).
fn sample<R: Rng + ?Sized>(pool: &[usize], k: usize, rng: &mut R) -> Vec<usize> {
    let mut pool = pool.to_vec();
    let k = k.min(pool.len());
    for i in 0..k {
        let j = rng.random_range(i..pool.len());
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool
}

/// The important-word masker: important ids and the same-lemma variants of each id.
#[derive(Debug, Clone)]
pub struct IwMlm {
    words: ImportantWords,
    /// `same_lemma[id]`: vocabulary ids of its variants (empty: none).
    same_lemma: Vec<Vec<u32>>,
}

impl IwMlm {
    /// From parts (`same_lemma[id]` lists variant ids; shorter than the vocabulary is allowed).
    pub fn new(words: ImportantWords, same_lemma: Vec<Vec<u32>>) -> Self {
        Self { words, same_lemma }
    }

    /// Loads the files `params` names, resolving the lemma words with `tokenizer`. Errors name
    /// the missing key or the file and entry.
    pub fn load(params: &IntraVtmParams, tokenizer: &BertTokenizer) -> Result<Self, WordsError> {
        let missing = |key: &str| WordsError::Bad {
            path: PathBuf::from("caption_processor.params.intra_VTM"),
            line: 0,
            message: format!("IW_MLM is on but `{key}` is not set"),
        };
        let words_file = params
            .words_file
            .as_deref()
            .ok_or_else(|| missing("HT_words_count_file_dir"))?;
        let lemma_file = params
            .lemma_file
            .as_deref()
            .ok_or_else(|| missing("vocab_same_lema_dir"))?;
        let words = ImportantWords::load(words_file, params.words_top_k, tokenizer.vocab_size())?;
        let table: Vec<Vec<String>> = read_json(lemma_file)?;
        let same_lemma = table
            .iter()
            .enumerate()
            .map(|(id, variants)| {
                variants
                    .iter()
                    .map(|w| {
                        tokenizer.token_to_id(w).ok_or_else(|| WordsError::Bad {
                            path: lemma_file.to_owned(),
                            line: 0,
                            message: format!("entry {id}: {w:?} is not in the vocabulary"),
                        })
                    })
                    .collect::<Result<Vec<u32>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(words, same_lemma))
    }

    /// The important words.
    pub fn words(&self) -> &ImportantWords {
        &self.words
    }

    /// A same-lemma variant of `id` (uniform among its table entry), or `id` itself.
    fn variant<R: Rng + ?Sized>(&self, id: u32, rng: &mut R) -> u32 {
        match self.same_lemma.get(id as usize) {
            Some(v) if !v.is_empty() => v[rng.random_range(0..v.len())],
            _ => id,
        }
    }

    /// Masks caption tokens (no special tokens): masked `(token, id)` pairs and labels (the
    /// original id where chosen, `ignore` elsewhere). See the module documentation.
    pub fn mask<R: Rng + ?Sized>(
        &self,
        tokens: &[String],
        ids: &[i64],
        probability: f64,
        tokenizer: &BertTokenizer,
        ignore: i64,
        rng: &mut R,
    ) -> (Vec<(String, i64)>, Vec<i64>) {
        let n = tokens.len();
        let mut out: Vec<(String, i64)> = tokens.iter().cloned().zip(ids.iter().copied()).collect();
        let mut labels = vec![ignore; n];
        let k = masked_count(n, probability);
        if k == 0 {
            return (out, labels);
        }
        let (important, other): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| self.words.is_important(ids[i]));
        let mask_id = i64::from(tokenizer.mask_id());
        let chosen = if k > important.len() {
            for i in sample(&other, k - important.len(), rng) {
                out[i] = (MASK_TOKEN.to_owned(), mask_id);
                labels[i] = ids[i];
            }
            important
        } else {
            sample(&important, k, rng)
        };
        for i in chosen {
            let draw: f64 = rng.random();
            if draw < 0.8 {
                out[i] = (MASK_TOKEN.to_owned(), mask_id);
            } else if draw < 0.9 && !self.words.ids().is_empty() {
                let root = self.words.ids()[rng.random_range(0..self.words.ids().len())];
                let id = self.variant(root, rng);
                let tok = tokenizer.id_to_token(id).unwrap_or(MASK_TOKEN).to_owned();
                out[i] = (tok, i64::from(id));
            }
            labels[i] = ids[i];
        }
        (out, labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_count_rounds_up_from_three_tenths() {
        // 10 * 0.15 = 1.5 -> 2; 8 * 0.15 = 1.2 -> 1; 2 * 0.15 = 0.3 -> 1; 1 * 0.15 -> 0;
        // 9 * 0.15 = 1.35 -> 2; 20 * 0.15 = 3.0 -> 3; 22 * 0.15 is 3.2999999999999998 in
        // binary floating point (in Python too), fraction < 0.3 -> 3.
        let got: Vec<usize> = [10, 8, 2, 1, 9, 20, 22]
            .iter()
            .map(|&n| masked_count(n, 0.15))
            .collect();
        assert_eq!(got, vec![2, 1, 1, 0, 2, 3, 3]);
    }

    #[test]
    fn ranks_at_most_top_k_are_important() {
        let w = ImportantWords::from_ranks(&[0, 3, 2, 4, 9], 3);
        assert_eq!(w.ids(), &[0, 1, 2]);
        assert!(!w.is_important(-1) && !w.is_important(99));
    }
}
