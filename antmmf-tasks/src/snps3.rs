//! SNP-S3 pretraining heads (TCSVT; `prj/snps3_vtp/roi_univl/univl/model/univl_video_ret.py`,
//! `univl_video_pretrain.py`) on top of the UniVL pretraining losses of [`crate::univl_task`]:
//! - vision-word matching (`pretraining_heads.Vision_Word_Matching`, settings in
//!   `pretraining_heads.MASK_All_IWords_info`): per caption, `Word_Chosen_Num` positions of
//!   significant words (rank at most `words_top_k` in `HT_words_count_file_dir`) are chosen
//!   ([`choose_word_positions`]) and matched against the L1 clip features
//!   ([`antmmf_models::univl::vwm`]), loss `VWM_before_similarity_loss` and / or
//!   `VWM_after_similarity_loss` (`VWM_count_stage`: `before`, `after`, `both`);
//! - the text encoder's MLM (`pretraining_heads.text_encoder_mlm`, AntMMF's
//!   `masked_lm_text_encoder_loss`): MLM on the text encoder's output of the masked caption.
//!
//! Differences from AntMMF, on purpose:
//! - AntMMF's video pretraining always adds the text-encoder MLM; here it is on with
//!   `pretraining_heads.text_encoder_mlm.enabled: true` (an antmmf-rs key; default false, so
//!   the base pretraining keeps its cost), and it shares the `transformer_mlm` head (transform
//!   and tied decoder) instead of a second transform. It encodes the masked caption a second
//!   time, as the base pretraining computes L1 from the unmasked one.
//! - The word choice draws from the backend's generator (seeded per iteration), not Python's
//!   `random`, so resumed runs draw the same words.

use antmmf_core::Config;
use antmmf_data::batch::VideoTextBatch;
use antmmf_data::iw_mlm::ImportantWords;
use antmmf_models::losses::masked_cross_entropy;
use antmmf_models::univl::Univl;
use antmmf_models::univl::vwm::{gather_words, vwm_loss};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::univl_task::SpecialIds;

/// Where the VWM word vectors come from (`VWM_count_stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VwmStage {
    /// `before`: the BERT embedding layer.
    Before,
    /// `after`: the text encoder's last layer.
    After,
    /// `both`: one loss each.
    Both,
}

impl VwmStage {
    /// Parses `before`, `after`, `both` (AntMMF also logs 0 / 1 / 2 for them).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "before" | "0" => Some(Self::Before),
            "after" | "1" => Some(Self::After),
            "both" | "2" => Some(Self::Both),
            _ => None,
        }
    }
}

/// Vision-word matching settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct VwmSettings {
    /// `VWM_count_stage`.
    pub stage: VwmStage,
    /// `Word_Chosen_Num` (positive).
    pub word_chosen_num: usize,
    /// Vocabulary ids ranked within `words_top_k`, ascending.
    pub important_ids: Vec<u32>,
}

/// The SNP-S3 switches of a pretraining run.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snps3Settings {
    /// Vision-word matching, when on.
    pub vwm: Option<VwmSettings>,
    /// Add `masked_lm_text_encoder_loss`.
    pub text_encoder_mlm: bool,
}

const HEADS: &str = "model_attributes.univl.pretraining_heads";

impl Snps3Settings {
    /// Reads the settings; errors are `(key, message)`. `vocab_size` checks the word file.
    pub fn from_config(config: &Config, vocab_size: usize) -> Result<Self, (String, String)> {
        let get = |k: &str| config.get(&format!("{HEADS}.{k}")).cloned();
        let text_encoder_mlm = get("text_encoder_mlm.enabled")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let on = get("Vision_Word_Matching")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        if !on {
            return Ok(Self {
                vwm: None,
                text_encoder_mlm,
            });
        }
        let info = "MASK_All_IWords_info";
        let key = |k: &str| format!("{HEADS}.{info}.{k}");
        let stage_value = get(&format!("{info}.VWM_count_stage"));
        let stage_text = match &stage_value {
            Some(v) if v.is_i64() => v.as_i64().map(|i| i.to_string()),
            Some(v) => v.as_str().map(str::to_owned),
            None => Some("after".into()),
        };
        let stage = stage_text
            .as_deref()
            .and_then(VwmStage::parse)
            .ok_or_else(|| {
                (
                    key("VWM_count_stage"),
                    format!("{stage_value:?} is not before, after or both"),
                )
            })?;
        let word_chosen_num = get(&format!("{info}.Word_Chosen_Num"))
            .map(|v| v.as_u64().filter(|&n| n > 0))
            .unwrap_or(Some(3))
            .ok_or_else(|| (key("Word_Chosen_Num"), "must be a positive integer".into()))?
            as usize;
        let top_k = get(&format!("{info}.words_top_k"))
            .map(|v| v.as_u64().and_then(|n| u32::try_from(n).ok()))
            .unwrap_or(Some(antmmf_data::iw_mlm::DEFAULT_WORDS_TOP_K))
            .ok_or_else(|| (key("words_top_k"), "must be a non-negative integer".into()))?;
        let path = get(&format!("{info}.HT_words_count_file_dir"))
            .and_then(|v| v.as_str().map(std::path::PathBuf::from))
            .ok_or_else(|| {
                (
                    key("HT_words_count_file_dir"),
                    "Vision_Word_Matching needs the ranked word counts (antmmf-data words --out)"
                        .into(),
                )
            })?;
        let path = match config.config_dir() {
            Some(dir) if path.is_relative() && !path.exists() => dir.join(&path),
            _ => path,
        };
        let words = ImportantWords::load(&path, top_k, vocab_size)
            .map_err(|e| (key("HT_words_count_file_dir"), e.to_string()))?;
        Ok(Self {
            vwm: Some(VwmSettings {
                stage,
                word_chosen_num,
                important_ids: words.ids().to_vec(),
            }),
            text_encoder_mlm,
        })
    }
}

/// AntMMF's `VWM_get_cap_input` word choice, per caption row of `ids` (`[b, l]` row-major,
/// unmasked): the positions of important ids; with none, the positions of the other non-special
/// ids (`special`: `[PAD]` 0, `[CLS]`, `[SEP]`, `[MASK]`); with none either, positions `0..k`.
/// More than `k`: a random subset of `k` (the `k` largest of `noise[row, 0..l]`); fewer: the
/// pool then repeats of it drawn with `noise[row, l..l + k]`.
///
/// Output: `[b, k]` row-major positions.
pub fn choose_word_positions(
    ids: &[i64],
    b: usize,
    l: usize,
    important_ids: &[u32],
    special: &[i64],
    k: usize,
    noise: &[f32],
) -> Vec<i64> {
    let stride = l + k;
    let mut out = Vec::with_capacity(b * k);
    for row in 0..b {
        let row_ids = &ids[row * l..(row + 1) * l];
        let u = &noise[row * stride..(row + 1) * stride];
        let is_imp = |id: i64| {
            u32::try_from(id)
                .map(|i| important_ids.binary_search(&i).is_ok())
                .unwrap_or(false)
        };
        let mut pool: Vec<usize> = (0..l).filter(|&j| is_imp(row_ids[j])).collect();
        if pool.is_empty() {
            pool = (0..l).filter(|&j| !special.contains(&row_ids[j])).collect();
        }
        if pool.is_empty() {
            pool = (0..k).map(|j| j.min(l.saturating_sub(1))).collect();
        }
        if pool.len() >= k {
            pool.sort_by(|&a, &c| u[c].total_cmp(&u[a]));
            pool.truncate(k);
        } else {
            let n = pool.len();
            for t in 0..k - n {
                let pick = ((u[l + t].clamp(0.0, 0.999_999) as f64) * n as f64) as usize;
                pool.push(pool[pick.min(n - 1)]);
            }
        }
        out.extend(pool.into_iter().map(|j| j as i64));
    }
    out
}

/// The VWM losses of a batch: word positions from the unmasked caption, word vectors from the
/// embedding layer (`before`) and / or `after_sequence` (the text encoder's output on the
/// unmasked caption).
///
/// # Shapes
/// - `after_sequence`: `[B, L, H]`; `video_l1`: `[B, C, H]`
/// - output: named losses `[1]`
pub fn vwm_losses<B: Backend>(
    model: &Univl<B>,
    vwm: &VwmSettings,
    special: SpecialIds,
    batch: &VideoTextBatch<B>,
    after_sequence: Tensor<B, 3>,
    video_l1: Tensor<B, 3>,
) -> Result<VwmOutput<B>, String> {
    let ids = batch.input_ids_unmasked.clone();
    let [b, l] = ids.dims();
    let k = vwm.word_chosen_num;
    let device = ids.device();
    let ids_host: Vec<i64> = ids.clone().into_data().iter::<i64>().collect();
    let noise: Vec<f32> = Tensor::<B, 2>::random(
        [b, l + k],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        &device,
    )
    .into_data()
    .iter::<f32>()
    .collect();
    let specials = [0, special.cls, special.sep, special.mask];
    let positions =
        choose_word_positions(&ids_host, b, l, &vwm.important_ids, &specials, k, &noise);
    let positions = Tensor::<B, 2, Int>::from_data(TensorData::new(positions, [b, k]), &device);
    let mut parts = Vec::new();
    let mut metrics = Vec::new();
    if matches!(vwm.stage, VwmStage::Before | VwmStage::Both) {
        let types = Tensor::<B, 2, Int>::zeros([b, l], &device);
        let embedded = model.bert.embeddings.forward(ids, Some(types), None);
        let words = gather_words(embedded, positions.clone());
        let (loss, sim) = vwm_loss(words, video_l1.clone(), Some(batch.clip_mask.clone()))
            .map_err(|e| e.to_string())?;
        parts.push(("VWM_before_similarity_loss", loss));
        metrics.extend(recall_metrics(VWM_BEFORE_METRICS, sim, b));
    }
    if matches!(vwm.stage, VwmStage::After | VwmStage::Both) {
        let words = gather_words(after_sequence, positions);
        let (loss, sim) =
            vwm_loss(words, video_l1, Some(batch.clip_mask.clone())).map_err(|e| e.to_string())?;
        parts.push(("VWM_after_similarity_loss", loss));
        metrics.extend(recall_metrics(VWM_AFTER_METRICS, sim, b));
    }
    Ok(VwmOutput { parts, metrics })
}

/// What [`vwm_losses`] returns: the losses and the batch's word-to-video recall.
pub struct VwmOutput<B: Backend> {
    /// `VWM_<stage>_similarity_loss`.
    pub parts: Vec<(&'static str, Tensor<B, 1>)>,
    /// AntMMF's batch metrics `VWM_<stage>_mr`, `VWM_<stage>_r@1`, `r@5`, `r@10` (ranks of each
    /// caption's video among the batch's videos by the VWM similarity; recalls in percent).
    pub metrics: Vec<(&'static str, f64)>,
}

/// Metric names of the `before` stage: median rank, R@1, R@5, R@10.
pub const VWM_BEFORE_METRICS: [&str; 4] = [
    "VWM_before_mr",
    "VWM_before_r@1",
    "VWM_before_r@5",
    "VWM_before_r@10",
];
/// Metric names of the `after` stage: median rank, R@1, R@5, R@10.
pub const VWM_AFTER_METRICS: [&str; 4] = [
    "VWM_after_mr",
    "VWM_after_r@1",
    "VWM_after_r@5",
    "VWM_after_r@10",
];

/// The recall metrics of a `[b, b]` VWM similarity (caption `i` matches video `i`), named.
fn recall_metrics<B: Backend>(
    names: [&'static str; 4],
    sim: Tensor<B, 2>,
    b: usize,
) -> Vec<(&'static str, f64)> {
    let host: Vec<f32> = sim.into_data().iter::<f32>().collect();
    let r = antmmf_models::univl::vwm::vwm_recall(&host, b);
    names
        .into_iter()
        .zip([r.median_rank, r.r1, r.r5, r.r10])
        .collect()
}

/// `masked_lm_text_encoder_loss`: MLM on the text encoder's output of the masked caption.
///
/// # Shapes
/// - `masked_ids`, `lm_labels`: `[B, L]`
/// - output: `[1]`
pub fn text_encoder_mlm_loss<B: Backend>(
    model: &Univl<B>,
    batch: &VideoTextBatch<B>,
    masked_ids: Tensor<B, 2, Int>,
    lm_labels: Tensor<B, 2, Int>,
) -> Result<Tensor<B, 1>, String> {
    let text = model.encode_text(
        masked_ids,
        batch.input_mask.clone(),
        Some(batch.segment_ids.clone()),
    );
    let logits = model.mlm_logits(text.sequence);
    masked_cross_entropy(logits, lm_labels, antmmf_data::text::IGNORE_LABEL)
        .map(|m| m.loss)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_choice_prefers_important_then_others_then_pads() {
        // Row 0: important ids 7, 9 at positions 1, 3 (k = 3: both, then a repeat).
        // Row 1: no important id: the non-special ids at 1, 2, 3 (k = 3: all of them).
        // Row 2: only specials: positions 0..3.
        let ids = [101, 7, 5, 9, 102, 101, 4, 5, 6, 102, 101, 102, 0, 0, 0];
        let noise = vec![0.5f32; 3 * 8];
        let mut noise = noise;
        noise[5] = 0.9; // row 0 fill-up draw: 0.9 * 2 -> second pool entry (position 3)
        let got = choose_word_positions(&ids, 3, 5, &[7, 9], &[0, 101, 102, 103], 3, &noise);
        assert_eq!(&got[0..3], &[1, 3, 3]);
        let mut row1 = got[3..6].to_vec();
        row1.sort_unstable();
        assert_eq!(row1, vec![1, 2, 3]);
        assert_eq!(&got[6..9], &[0, 1, 2]);
    }

    #[test]
    fn more_important_words_than_k_take_the_largest_noise() {
        let ids = [7, 8, 9, 10];
        let noise = [0.1f32, 0.9, 0.2, 0.8, 0.0, 0.0];
        let got = choose_word_positions(&ids, 1, 4, &[7, 8, 9, 10], &[0], 2, &noise);
        assert_eq!(got, vec![1, 3]);
    }

    #[test]
    fn stages_parse_names_and_antmmf_numbers() {
        assert_eq!(VwmStage::parse("before"), Some(VwmStage::Before));
        assert_eq!(VwmStage::parse("2"), Some(VwmStage::Both));
        assert_eq!(VwmStage::parse("middle"), None);
    }
}
