//! Chinese word segmentation for whole-word masking (`word_segmenter: jieba`).
//!
//! bert-base-chinese splits Chinese text into single characters, so AntMMF's `##`-based
//! whole-word masking never groups anything in Chinese captions. Following transformers'
//! `run_chinese_ref.py` (which `antmmf/utils/text_utils.py` cites), the caption is segmented
//! into words and the characters of one multi-character, all-Chinese word are masked together;
//! the BERT tokens themselves (and so the ids) do not change. The segmenter is jieba (jieba-rs,
//! its embedded default dictionary, HMM for unknown words, as Python's `jieba.cut` does by
//! default), built once per process on first use.
//!
//! Alignment: the BERT basic tokenizer makes every CJK character its own token (the character
//! or `[UNK]`), in text order, so the `k`-th flagged token of
//! [`BertTokenizer::tokenize_flagging_chinese`](crate::tokenizer::BertTokenizer::tokenize_flagging_chinese)
//! is the `k`-th CJK character of the text.

use std::sync::OnceLock;

use jieba_rs::Jieba;
use serde::Deserialize;

use crate::tokenizer::is_chinese_char;

/// A word segmenter for whole-word masking of Chinese (`caption_processor.params.word_segmenter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WordSegmenter {
    /// jieba with its default dictionary and HMM.
    Jieba,
}

fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

impl WordSegmenter {
    /// The words of `text`, in order (they concatenate back to `text`).
    pub fn words<'a>(&self, text: &'a str) -> Vec<&'a str> {
        match self {
            Self::Jieba => jieba()
                .cut(text, true)
                .into_iter()
                .map(|t| t.word)
                .collect(),
        }
    }

    /// For each CJK character of `text`, in order: the index (among the words of `text`) of the
    /// word holding it when that word has two or more characters, all CJK; `None` otherwise
    /// (a one-character word, or a word mixing CJK with other characters, such as `T恤`).
    pub fn chinese_char_words(&self, text: &str) -> Vec<Option<u32>> {
        let mut out = Vec::new();
        for (i, word) in self.words(text).into_iter().enumerate() {
            let mut chars = word.chars();
            let n = chars.clone().count();
            let grouped = n >= 2 && chars.all(is_chinese_char);
            let id = u32::try_from(i).ok().filter(|_| grouped);
            out.extend(word.chars().filter(|&c| is_chinese_char(c)).map(|_| id));
        }
        out
    }
}

/// The word of each token: the word index of [`WordSegmenter::chinese_char_words`] for tokens
/// flagged as CJK characters, `None` for the others. Tokens of one word are masked together.
/// When the flagged tokens and the characters do not pair up one to one (they always do for text
/// tokenized by this crate's tokenizer), no token gets a word.
pub fn token_words(chinese_flags: &[bool], char_words: &[Option<u32>]) -> Vec<Option<u32>> {
    let flagged = chinese_flags.iter().filter(|&&f| f).count();
    if flagged != char_words.len() {
        log::debug!(
            "word segmentation: {flagged} CJK tokens but {} CJK characters; no words grouped",
            char_words.len()
        );
        return vec![None; chinese_flags.len()];
    }
    let mut chars = char_words.iter();
    chinese_flags
        .iter()
        .map(|&f| {
            if f {
                chars.next().copied().flatten()
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jieba_segments_a_short_sentence_into_words() {
        let s = WordSegmenter::Jieba;
        let text = "一个男人在舞台上弹吉他";
        assert_eq!(
            s.words(text),
            ["一个", "男人", "在", "舞台", "上", "弹", "吉他"]
        );
        // 一个 (word 0), 男人 (1), 在, 舞台 (3), 上, 弹, 吉他 (6).
        let (a, b, d, g) = (Some(0), Some(1), Some(3), Some(6));
        assert_eq!(
            s.chinese_char_words(text),
            [a, a, b, b, None, d, d, None, None, g, g]
        );
        // Three-character words group all three.
        assert_eq!(
            s.chinese_char_words("我喜欢北京天安门"),
            [
                None,
                Some(1),
                Some(1),
                Some(2),
                Some(2),
                Some(3),
                Some(3),
                Some(3)
            ]
        );
    }

    #[test]
    fn mixed_and_non_chinese_words_group_nothing() {
        let s = WordSegmenter::Jieba;
        let words = s.words("买T恤 ok");
        assert_eq!(words.concat(), "买T恤 ok");
        // `T恤` mixes a Latin letter with a CJK character: its 恤 stands alone.
        let ids = s.chinese_char_words("买T恤 ok");
        assert_eq!(ids.len(), 2);
        assert!(ids.iter().all(Option::is_none), "{words:?} {ids:?}");
    }

    #[test]
    fn token_words_pair_flagged_tokens_with_characters() {
        let flags = [false, true, true, false, true];
        let words = [Some(3), Some(3), None];
        assert_eq!(
            token_words(&flags, &words),
            [None, Some(3), Some(3), None, None]
        );
        // A count mismatch groups nothing rather than misaligning.
        assert_eq!(token_words(&flags, &words[..2]), [None; 5]);
    }
}
