//! SNP-S3 significant-word mining (TCSVT, `prj/snps3_vtp/auxiliary_files/generate_ss_word_json/`):
//! count the words of a caption corpus, rank them, and write the two files the SNP-S3 recipe
//! reads: the ranked counts (`count_reprocess_webvid.json`'s role and layout: per vocabulary id
//! `id`, `name`, `total_count`, `rank`) and the table of same-lemma variants
//! (`vocab_simi_list_new.json`'s layout: per vocabulary id, the vocabulary words sharing its
//! lemma, itself included, or `[]`).
//!
//! Differences from AntMMF, on purpose:
//! - AntMMF tags the corpus with spaCy and counts only VERB / NOUN / ADJ words. Without a POS
//!   tagger, the proxy here counts every whole-word vocabulary token (one WordPiece, no `##`
//!   continuation) except a fixed list of English function words ([`FUNCTION_WORDS`]: articles,
//!   pronouns, prepositions, conjunctions, auxiliaries), numbers, punctuation and one-character
//!   words. AntMMF also drops one-character words and the forms of "be".
//! - Lemmas: AntMMF's table groups inflections; here the Snowball English stemmer
//!   (`rust-stemmers`) is the lemma proxy: vocabulary words with the same stem are one group
//!   (`seat`, `seats`, `seated`), which also groups some derivations (`act`, `active`).
//! - Rank: as AntMMF, `rank[id]` is the 0-based competition rank of the word's count (the number
//!   of words counted strictly more often). Words never counted get `rank = vocab_size`, so they
//!   are never important; AntMMF gives them the rank of the first zero count, which in a small
//!   corpus lies within `words_top_k` and would make unseen words important.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tokenizer::BertTokenizer;

/// English function words left out of the counts (the POS proxy of AntMMF's VERB / NOUN / ADJ
/// filter).
pub const FUNCTION_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "this",
    "that",
    "these",
    "those",
    "some",
    "any",
    "each",
    "every",
    "no",
    "all",
    "both",
    "either",
    "neither",
    "another",
    "such",
    "i",
    "me",
    "my",
    "mine",
    "myself",
    "you",
    "your",
    "yours",
    "yourself",
    "he",
    "him",
    "his",
    "himself",
    "she",
    "her",
    "hers",
    "herself",
    "it",
    "its",
    "itself",
    "we",
    "us",
    "our",
    "ours",
    "they",
    "them",
    "their",
    "theirs",
    "themselves",
    "who",
    "whom",
    "whose",
    "which",
    "what",
    "where",
    "when",
    "why",
    "how",
    "there",
    "here",
    "of",
    "in",
    "on",
    "at",
    "by",
    "for",
    "with",
    "about",
    "against",
    "between",
    "into",
    "through",
    "during",
    "before",
    "after",
    "above",
    "below",
    "to",
    "from",
    "up",
    "down",
    "out",
    "off",
    "over",
    "under",
    "along",
    "across",
    "past",
    "near",
    "around",
    "behind",
    "beside",
    "towards",
    "toward",
    "onto",
    "upon",
    "within",
    "without",
    "while",
    "and",
    "or",
    "but",
    "nor",
    "so",
    "yet",
    "if",
    "than",
    "then",
    "as",
    "because",
    "though",
    "although",
    "until",
    "unless",
    "be",
    "is",
    "am",
    "are",
    "was",
    "were",
    "been",
    "being",
    "do",
    "does",
    "did",
    "have",
    "has",
    "had",
    "having",
    "will",
    "would",
    "shall",
    "should",
    "can",
    "could",
    "may",
    "might",
    "must",
    "not",
    "very",
    "too",
    "also",
    "just",
    "only",
    "s",
    "t",
    "'",
    "one",
    "two",
    "three",
];

/// Word mining failed: a file could not be read or a line is not a caption record.
#[derive(Debug, thiserror::Error)]
pub enum WordsError {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line or file does not hold what it should.
    #[error("{path}:{line}: {message}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// 1-based line (0: the whole file).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The ranked counts (`count_reprocess_webvid.json`'s keys that SNP-S3 reads, plus `ranked`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordCounts {
    /// Vocabulary ids `0..vocab_size`.
    pub id: Vec<u32>,
    /// The vocabulary token of each id.
    pub name: Vec<String>,
    /// Count of each id in the corpus (0 for ids not counted).
    pub total_count: Vec<u64>,
    /// Competition rank (0 = most frequent); `vocab_size` for words never counted.
    pub rank: Vec<u32>,
    /// Counted words, most frequent first (ties by vocabulary id): `(word, count)`.
    #[serde(default)]
    pub ranked: Vec<(String, u64)>,
}

/// Whether `token` is counted: a whole vocabulary word (no `##`, not `[..]`), with a letter,
/// longer than one character (so not a number) and not a [`FUNCTION_WORDS`] entry.
pub fn is_countable(token: &str) -> bool {
    token.chars().count() > 1
        && !token.starts_with("##")
        && !(token.starts_with('[') && token.ends_with(']'))
        && token.chars().any(char::is_alphabetic)
        && !FUNCTION_WORDS.contains(&token)
}

/// Counts the countable whole words of `captions` per vocabulary id (a word split into pieces
/// is not a vocabulary word and is not counted, as AntMMF skips names outside the vocabulary).
///
/// Output: `counts[id]`, `vocab_size` long.
pub fn count_words<'a>(
    captions: impl IntoIterator<Item = &'a str>,
    tokenizer: &BertTokenizer,
) -> Vec<u64> {
    let mut counts = vec![0u64; tokenizer.vocab_size()];
    for caption in captions {
        let tokens = tokenizer.tokenize(caption);
        for (i, tok) in tokens.iter().enumerate() {
            let whole = tokens.get(i + 1).is_none_or(|next| !next.starts_with("##"));
            if whole
                && is_countable(tok)
                && let Some(id) = tokenizer.token_to_id(tok)
            {
                counts[id as usize] += 1;
            }
        }
    }
    counts
}

/// Competition ranks of `counts` (0-based, descending); zero counts get `counts.len()`.
pub fn rank_counts(counts: &[u64]) -> Vec<u32> {
    let mut sorted: Vec<u64> = counts.iter().copied().filter(|&c| c > 0).collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                counts.len() as u32
            } else {
                // Number of counts strictly greater than c.
                sorted.partition_point(|&s| s > c) as u32
            }
        })
        .collect()
}

/// The ranked counts of `captions` over the vocabulary of `tokenizer`.
pub fn mine_words<'a>(
    captions: impl IntoIterator<Item = &'a str>,
    tokenizer: &BertTokenizer,
) -> WordCounts {
    let total_count = count_words(captions, tokenizer);
    let rank = rank_counts(&total_count);
    let n = total_count.len();
    let name: Vec<String> = (0..n)
        .map(|i| tokenizer.id_to_token(i as u32).unwrap_or("").to_owned())
        .collect();
    let mut ranked: Vec<(String, u64)> = (0..n)
        .filter(|&i| total_count[i] > 0)
        .map(|i| (name[i].clone(), total_count[i]))
        .collect();
    ranked.sort_by_key(|w| std::cmp::Reverse(w.1));
    WordCounts {
        id: (0..n as u32).collect(),
        name,
        total_count,
        rank,
        ranked,
    }
}

/// The same-lemma table: for each vocabulary id, the whole vocabulary words with its Snowball
/// English stem (itself included, vocabulary order) when there are at least two, else `[]`.
pub fn same_lemma_table(tokenizer: &BertTokenizer) -> Vec<Vec<String>> {
    let stemmer = rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English);
    let n = tokenizer.vocab_size();
    let mut stems: Vec<Option<String>> = Vec::with_capacity(n);
    let mut groups: HashMap<String, Vec<u32>> = HashMap::new();
    for id in 0..n as u32 {
        let tok = tokenizer.id_to_token(id).unwrap_or("");
        let word = tok.chars().count() > 1
            && !tok.starts_with("##")
            && !(tok.starts_with('[') && tok.ends_with(']'))
            && tok.chars().all(char::is_alphabetic);
        if word {
            let stem = stemmer.stem(tok).into_owned();
            groups.entry(stem.clone()).or_default().push(id);
            stems.push(Some(stem));
        } else {
            stems.push(None);
        }
    }
    stems
        .iter()
        .map(|stem| match stem.as_ref().and_then(|s| groups.get(s)) {
            Some(ids) if ids.len() >= 2 => ids
                .iter()
                .map(|&i| tokenizer.id_to_token(i).unwrap_or("").to_owned())
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Reads the captions of AntMMF jsonl annotation files: each line's `caption`, a string or a
/// list of strings. Errors name the file and line.
pub fn read_captions(paths: &[PathBuf]) -> Result<Vec<String>, WordsError> {
    let mut captions = Vec::new();
    for path in paths {
        let file = std::fs::File::open(path).map_err(|source| WordsError::Io {
            path: path.clone(),
            source,
        })?;
        for (i, line) in BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| WordsError::Io {
                path: path.clone(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |message: String| WordsError::Bad {
                path: path.clone(),
                line: i + 1,
                message,
            };
            let value: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| bad(format!("not JSON: {e}")))?;
            match value.get("caption") {
                Some(serde_json::Value::String(s)) => captions.push(s.clone()),
                Some(serde_json::Value::Array(items)) => {
                    for item in items {
                        let s = item
                            .as_str()
                            .ok_or_else(|| bad("`caption` list holds a non-string".into()))?;
                        captions.push(s.to_owned());
                    }
                }
                Some(_) => return Err(bad("`caption` is not a string or a list".into())),
                None => return Err(bad("no `caption` key".into())),
            }
        }
    }
    Ok(captions)
}

/// Writes `value` as JSON to `path`.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), WordsError> {
    let text = serde_json::to_string(value).map_err(|e| WordsError::Bad {
        path: path.to_owned(),
        line: 0,
        message: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(|source| WordsError::Io {
        path: path.to_owned(),
        source,
    })
}

/// What `antmmf-data words` does: the inputs and the two outputs.
#[derive(Debug, Clone)]
pub struct MineOptions {
    /// AntMMF jsonl annotation files (their `caption`s are the corpus).
    pub annotations: Vec<PathBuf>,
    /// The BERT `vocab.txt` the ids refer to.
    pub vocab: PathBuf,
    /// Lower-case captions (bert-base-uncased).
    pub do_lower_case: bool,
    /// The ranked counts (`HT_words_count_file_dir`).
    pub out: PathBuf,
    /// The same-lemma table (`vocab_same_lema_dir`).
    pub lemmas_out: PathBuf,
}

/// Reads the captions, mines and writes both files; returns the counts.
pub fn mine_to_files(opts: &MineOptions) -> Result<WordCounts, WordsError> {
    let tokenizer =
        BertTokenizer::from_vocab_file(&opts.vocab, opts.do_lower_case).map_err(|e| {
            WordsError::Bad {
                path: opts.vocab.clone(),
                line: 0,
                message: e.to_string(),
            }
        })?;
    let captions = read_captions(&opts.annotations)?;
    let counts = mine_words(captions.iter().map(String::as_str), &tokenizer);
    write_json(&opts.out, &counts)?;
    write_json(&opts.lemmas_out, &same_lemma_table(&tokenizer))?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_competition_ranks_and_unseen_words_are_last() {
        assert_eq!(rank_counts(&[0, 5, 2, 5, 1, 0]), vec![6, 0, 2, 0, 3, 6]);
    }

    #[test]
    fn countable_words_skip_function_words_numbers_and_pieces() {
        assert!(is_countable("bicycle"));
        assert!(!is_countable("the") && !is_countable("##ing") && !is_countable("[CLS]"));
        assert!(!is_countable("12") && !is_countable("x") && !is_countable(","));
    }
}
