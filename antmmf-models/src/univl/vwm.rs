//! SNP-S3 vision-word matching (`model_attributes.univl.pretraining_heads.Vision_Word_Matching`;
//! AntMMF's `VWM_forward_stage` in `prj/snps3_vtp/roi_univl/univl/model/univl_video_ret.py`).
//!
//! `K` significant words of each caption (`MASK_All_IWords_info.Word_Chosen_Num`) are taken
//! from the caption's embeddings: before the text encoder (`VWM_count_stage: before`, the BERT
//! embedding layer) or after it (`after`, the encoder's last layer), or both. Each word scores
//! every clip of every video as the L1 text embedding does (a dot product with the L2-normalised
//! clip features); the word scores are reduced by logsumexp over the `K` words, then the
//! `[texts, videos, clips]` scores take the L1 MIL-NCE loss (`VWM_<stage>_similarity_loss`).
//! As in AntMMF, the word vectors are the raw hidden states (not normalised).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::{PADDED_CLIP_SCORE, Univl};
use crate::losses::{LossError, l1_mil_nce_loss, logsumexp, reduce_clips};

/// The vectors of the chosen word positions.
///
/// # Shapes
/// - `sequence`: `[B, L, H]`; `positions`: `[B, K]` (indices into `L`)
/// - output: `[B, K, H]`
pub fn gather_words<B: Backend>(
    sequence: Tensor<B, 3>,
    positions: Tensor<B, 2, Int>,
) -> Tensor<B, 3> {
    let [b, k] = positions.dims();
    let h = sequence.dims()[2];
    sequence.gather(1, positions.unsqueeze_dim::<3>(2).expand([b, k, h]))
}

/// Clip-level word scores, logsumexp over the words; padded clips score
/// [`PADDED_CLIP_SCORE`].
///
/// # Shapes
/// - `words`: `[Nt, K, H]`; `video_l1`: `[Nv, C, H]`; `clip_mask`: `[Nv, C]` (1 = clip)
/// - output: `[Nt, Nv, C]`
pub fn vwm_clip_similarity<B: Backend>(
    words: Tensor<B, 3>,
    video_l1: Tensor<B, 3>,
    clip_mask: Option<Tensor<B, 2, Int>>,
) -> Tensor<B, 3> {
    let [nt, k, h] = words.dims();
    let [nv, c, _] = video_l1.dims();
    let scores = Univl::<B>::l1_clip_similarity(words.reshape([nt * k, h]), video_l1, None)
        .reshape([nt, k, nv, c]);
    let scores = logsumexp(scores, 1).reshape([nt, nv, c]);
    match clip_mask {
        Some(mask) => {
            let padded = mask.equal_elem(0).reshape([1, nv, c]).expand([nt, nv, c]);
            scores.mask_fill(padded, PADDED_CLIP_SCORE)
        }
        None => scores,
    }
}

/// The VWM loss of matched pairs (text `i` with video `i`) and its video-level similarity
/// (logsumexp over clips, AntMMF's `VWM_<stage>_simi`).
///
/// # Shapes
/// - `words`: `[B, K, H]`; `video_l1`: `[B, C, H]`; `clip_mask`: `[B, C]`
/// - output: (loss `[1]`, similarity `[B, B]`)
pub fn vwm_loss<B: Backend>(
    words: Tensor<B, 3>,
    video_l1: Tensor<B, 3>,
    clip_mask: Option<Tensor<B, 2, Int>>,
) -> Result<(Tensor<B, 1>, Tensor<B, 2>), LossError> {
    let sim = vwm_clip_similarity(words, video_l1, clip_mask);
    let loss = l1_mil_nce_loss(sim.clone())?;
    Ok((loss, reduce_clips(sim)))
}

/// Text-to-video recall of a matched-pair similarity (AntMMF's `cal_ret_metric` on
/// `VWM_<stage>_simi`): median rank (1-based) and R@1, R@5, R@10 in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VwmRecall {
    /// Median rank of the matched video.
    pub median_rank: f64,
    /// R@1 (%).
    pub r1: f64,
    /// R@5 (%).
    pub r5: f64,
    /// R@10 (%).
    pub r10: f64,
}

/// [`VwmRecall`] of a row-major `[n, n]` similarity (text rows, matched on the diagonal); ties
/// rank the matched video first.
pub fn vwm_recall(sim: &[f32], n: usize) -> VwmRecall {
    if n == 0 || sim.len() != n * n {
        return VwmRecall {
            median_rank: f64::NAN,
            r1: f64::NAN,
            r5: f64::NAN,
            r10: f64::NAN,
        };
    }
    let mut ranks: Vec<usize> = (0..n)
        .map(|i| {
            let row = &sim[i * n..(i + 1) * n];
            1 + row.iter().filter(|&&s| s > row[i]).count()
        })
        .collect();
    ranks.sort_unstable();
    let at = |k: usize| 100.0 * ranks.iter().filter(|&&r| r <= k).count() as f64 / n as f64;
    let median_rank = if n % 2 == 1 {
        ranks[n / 2] as f64
    } else {
        (ranks[n / 2 - 1] + ranks[n / 2]) as f64 / 2.0
    };
    VwmRecall {
        median_rank,
        r1: at(1),
        r5: at(5),
        r10: at(10),
    }
}
