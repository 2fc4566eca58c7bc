//! Training losses of AntMMF's UniVL video-text models.
//!
//! Mirrors AntMMF's PyTorch code:
//! - `prj/base_vtp/roi_univl/univl/model/univl_video_ret.py`: `get_mil_nce_loss` (MIL-NCE with
//!   block-diagonal positives), `get_l1_simi_matrix` and `reduce_clips` (clip-level L1 similarity,
//!   logsumexp over clips), `_cross_similarity_hard_mining` (`re_sample_method: nearliest | top_k`)
//!   and the `re_weight_method: median` row weights of `forward_stage2`;
//! - `prj/base_vtp/roi_univl/univl/model/moco_utils.py`: `MocoUtils.moco_loss`, the two
//!   cross-modal queue losses that `get_simi_logits` builds from it, and `dequeue_and_enqueue`;
//! - `antmmf/modules/losses/mil_nce_loss.py`: the registry `mil-nce` loss on paired embeddings;
//! - CLIP-style symmetric InfoNCE, the masked-LM cross entropy (`ignore_index = -100`), BCE with
//!   logits (ITM / matching heads) and the multiple-choice softmax cross entropy.
//!
//! Every function is generic over Burn's [`Backend`], so the same code runs on `Autodiff<_>` for
//! training. Scalars are returned as tensors of shape `[1]` so that no host synchronisation is
//! forced; only the label checks of the classification losses read labels back to the host.

use std::str::FromStr;

use burn::tensor::activation::{log_sigmoid, log_softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

/// Label value that [`masked_cross_entropy`] skips (PyTorch's `ignore_index` default).
pub const IGNORE_INDEX: i64 = -100;

/// Default MoCo softmax temperature (`model_attributes.univl.T`, AntMMF default 0.05).
pub const MOCO_DEFAULT_TEMPERATURE: f64 = 0.05;

/// Value AntMMF uses to mask logits out of a softmax (`-1e12`, finite so rows never become NaN).
const MASK_VALUE: f32 = -1e12;

/// Lower bound of the vector norm in [`l2_normalize`] (`F.normalize`'s `eps`).
const NORMALIZE_EPS: f64 = 1e-12;

/// Errors raised by the losses on inconsistent inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    /// Tensor shapes do not fit together.
    #[error("{loss}: {detail}")]
    Shape {
        /// Loss that rejected its inputs.
        loss: &'static str,
        /// What is wrong, with the shapes seen.
        detail: String,
    },
    /// A class label is neither a valid class nor the ignore index.
    #[error(
        "{loss}: label {label} at flat position {position} is outside [0, {classes}) and is not the ignore index"
    )]
    LabelOutOfRange {
        /// Loss that rejected its inputs.
        loss: &'static str,
        /// The offending label.
        label: i64,
        /// Flat (row-major) position of the label.
        position: usize,
        /// Number of classes.
        classes: usize,
    },
    /// A scalar argument is out of its valid range.
    #[error("{loss}: {detail}")]
    InvalidArgument {
        /// Loss that rejected its inputs.
        loss: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// `re_sample_method` is not one AntMMF knows.
    #[error("unknown re_sample_method `{0}`: expected `nearliest` or `top_k`")]
    UnknownResampleMethod(String),
    /// `re_weight_method` is not one AntMMF knows.
    #[error("unknown re_weight_method `{0}`: expected `median`")]
    UnknownReweightMethod(String),
}

fn shape_error(loss: &'static str, detail: String) -> LossError {
    LossError::Shape { loss, detail }
}

fn invalid(loss: &'static str, detail: String) -> LossError {
    LossError::InvalidArgument { loss, detail }
}

/// Numerically stable `log(sum(exp(x)))` along `dim`, keeping `dim` with size 1.
///
/// The shift by the row maximum is detached, so the gradient is exactly `softmax(x)`.
/// A row made only of `-inf` gives NaN; the losses here mask with a finite `-1e12` instead.
///
/// # Shapes
/// - `x`: `[..., n, ...]`
/// - output: `[..., 1, ...]`
pub fn logsumexp<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let max = x.clone().detach().max_dim(dim);
    (x - max.clone()).exp().sum_dim(dim).log() + max
}

/// `F.normalize(x, p=2, dim)`: divides by `max(||x||_2, 1e-12)` along `dim`.
///
/// # Shapes
/// - `x`: any shape; output: the same shape
pub fn l2_normalize<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let norm = x
        .clone()
        .square()
        .sum_dim(dim)
        .sqrt()
        .clamp_min(NORMALIZE_EPS);
    x / norm
}

/// Per-row negative log-likelihood `-log_softmax(logits)[i, targets[i]]`.
///
/// # Shapes
/// - `logits`: `[n, classes]`, `targets`: `[n]` (every value in `[0, classes)`)
/// - output: `[n]`
fn nll_rows<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    log_softmax(logits, 1)
        .gather(1, targets.unsqueeze_dim(1))
        .squeeze_dim::<1>(1)
        .neg()
}

/// Reads integer labels back to the host and checks each is a class or `ignore`.
fn check_labels<B: Backend, const D: usize>(
    loss: &'static str,
    labels: &Tensor<B, D, Int>,
    classes: usize,
    ignore: Option<i64>,
) -> Result<(), LossError> {
    let data = labels.to_data();
    for (position, label) in data.iter::<i64>().enumerate() {
        let valid = usize::try_from(label).is_ok_and(|l| l < classes) || Some(label) == ignore;
        if !valid {
            return Err(LossError::LabelOutOfRange {
                loss,
                label,
                position,
                classes,
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Symmetric InfoNCE
// ---------------------------------------------------------------------------------------------

/// How similarities are scaled into logits for [`symmetric_infonce`].
#[derive(Debug, Clone)]
pub enum LogitScale<B: Backend> {
    /// CLIP's learned log-scale `s` (shape `[1]`): logits are `exp(s) * similarity`, no clamp.
    Log(Tensor<B, 1>),
    /// Fixed temperature `tau > 0`: logits are `similarity / tau`.
    Temperature(f64),
}

/// Output of [`symmetric_infonce`].
#[derive(Debug, Clone)]
pub struct InfoNceOutput<B: Backend> {
    /// `(loss_t2v + loss_v2t) / 2`, shape `[1]`.
    pub loss: Tensor<B, 1>,
    /// Text-to-video cross entropy (rows of `logits`), shape `[1]`.
    pub loss_t2v: Tensor<B, 1>,
    /// Video-to-text cross entropy (columns of `logits`), shape `[1]`.
    pub loss_v2t: Tensor<B, 1>,
    /// Scaled similarity logits, `[batch, batch]`, rows = texts.
    pub logits: Tensor<B, 2>,
}

/// CLIP-style symmetric InfoNCE over a batch of matched text/video embeddings.
///
/// `logits = scale * t @ v^T` (after L2-normalising both when `normalize`), then
/// `loss = (CE(logits, arange) + CE(logits^T, arange)) / 2`.
///
/// # Shapes
/// - `text`: `[batch, dim]`, `video`: `[batch, dim]`, `LogitScale::Log`: `[1]`
/// - output logits: `[batch, batch]`; losses: `[1]`
pub fn symmetric_infonce<B: Backend>(
    text: Tensor<B, 2>,
    video: Tensor<B, 2>,
    scale: LogitScale<B>,
    normalize: bool,
) -> Result<InfoNceOutput<B>, LossError> {
    const LOSS: &str = "symmetric_infonce";
    let [bt, dt] = text.dims();
    let [bv, dv] = video.dims();
    if bt != bv || dt != dv || bt == 0 {
        return Err(shape_error(
            LOSS,
            format!("text [{bt}, {dt}] and video [{bv}, {dv}] must be equal, non-empty shapes"),
        ));
    }
    let device = text.device();
    let (text, video) = if normalize {
        (l2_normalize(text, 1), l2_normalize(video, 1))
    } else {
        (text, video)
    };
    let similarity = text.matmul(video.transpose());
    let logits = match scale {
        LogitScale::Log(log_scale) => {
            let dims = log_scale.dims();
            if dims != [1] {
                return Err(shape_error(
                    LOSS,
                    format!("logit scale must have shape [1], got {dims:?}"),
                ));
            }
            similarity * log_scale.exp().reshape([1, 1])
        }
        LogitScale::Temperature(tau) => {
            if !(tau.is_finite() && tau > 0.0) {
                return Err(invalid(
                    LOSS,
                    format!("temperature must be finite and > 0, got {tau}"),
                ));
            }
            similarity.div_scalar(tau)
        }
    };
    let targets = Tensor::<B, 1, Int>::arange(0..bt as i64, &device);
    let loss_t2v = nll_rows(logits.clone(), targets.clone()).mean();
    let loss_v2t = nll_rows(logits.clone().transpose(), targets).mean();
    let loss = (loss_t2v.clone() + loss_v2t.clone()).div_scalar(2.0);
    Ok(InfoNceOutput {
        loss,
        loss_t2v,
        loss_v2t,
        logits,
    })
}

// ---------------------------------------------------------------------------------------------
// Classification losses: MLM, BCE, multiple choice
// ---------------------------------------------------------------------------------------------

/// Output of [`masked_cross_entropy`].
#[derive(Debug, Clone)]
pub struct MaskedCrossEntropy<B: Backend> {
    /// Mean over counted positions; **0 when every label is ignored** (PyTorch gives NaN), `[1]`.
    pub loss: Tensor<B, 1>,
    /// Sum over counted positions, `[1]`.
    pub loss_sum: Tensor<B, 1>,
    /// Number of counted positions, as a float tensor `[1]`.
    pub num_counted: Tensor<B, 1>,
}

/// Masked-LM cross entropy: mean of `-log_softmax(logits)[label]` over labels `!= ignore_index`.
///
/// Ignored positions get zero gradient. When every label is ignored the loss is 0 (not
/// PyTorch's NaN from 0/0), so a batch without masked tokens adds nothing to the total loss
/// instead of poisoning it. Labels are read back to the host once to reject out-of-range values.
///
/// # Shapes
/// - `logits`: `[batch, seq, vocab]`, `labels`: `[batch, seq]`
/// - outputs: `[1]`
pub fn masked_cross_entropy<B: Backend>(
    logits: Tensor<B, 3>,
    labels: Tensor<B, 2, Int>,
    ignore_index: i64,
) -> Result<MaskedCrossEntropy<B>, LossError> {
    const LOSS: &str = "masked_cross_entropy";
    let [b, l, v] = logits.dims();
    let label_dims = labels.dims();
    if label_dims != [b, l] || v == 0 {
        return Err(shape_error(
            LOSS,
            format!(
                "logits [{b}, {l}, {v}] need labels [{b}, {l}] and vocab > 0, got labels {label_dims:?}"
            ),
        ));
    }
    check_labels(LOSS, &labels, v, Some(ignore_index))?;
    let logits = logits.reshape([b * l, v]);
    let labels = labels.reshape([b * l]);
    let ignored = labels.clone().equal_elem(ignore_index);
    let safe_labels = labels.mask_fill(ignored.clone(), 0);
    let nll = nll_rows(logits, safe_labels).mask_fill(ignored.clone(), 0.0);
    let loss_sum = nll.sum();
    let num_counted = ignored.bool_not().float().sum();
    let loss = loss_sum.clone() / num_counted.clone().clamp_min(1.0);
    Ok(MaskedCrossEntropy {
        loss,
        loss_sum,
        num_counted,
    })
}

/// Cross entropy with integer targets, mean over rows (`F.cross_entropy`).
///
/// # Shapes
/// - `logits`: `[n, classes]`, `targets`: `[n]`
/// - output: `[1]`
pub fn cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
) -> Result<Tensor<B, 1>, LossError> {
    const LOSS: &str = "cross_entropy";
    let [n, c] = logits.dims();
    let [nt] = targets.dims();
    if n != nt || n == 0 || c == 0 {
        return Err(shape_error(
            LOSS,
            format!("logits [{n}, {c}] need non-empty targets [{n}], got [{nt}]"),
        ));
    }
    check_labels(LOSS, &targets, c, None)?;
    Ok(nll_rows(logits, targets).mean())
}

/// `binary_cross_entropy_with_logits`, mean: `mean((1 - y) * x - log_sigmoid(x))`.
///
/// Stable for saturated logits (`±40` stay finite); the gradient is `(sigmoid(x) - y) / N`.
///
/// # Shapes
/// - `logits`, `targets`: the same shape, targets in `[0, 1]`
/// - output: `[1]`
pub fn bce_with_logits<B: Backend, const D: usize>(
    logits: Tensor<B, D>,
    targets: Tensor<B, D>,
) -> Result<Tensor<B, 1>, LossError> {
    let (ld, td) = (logits.dims(), targets.dims());
    if ld != td {
        return Err(shape_error(
            "bce_with_logits",
            format!("logits {ld:?} and targets {td:?} differ"),
        ));
    }
    let loss = targets.neg().add_scalar(1.0) * logits.clone() - log_sigmoid(logits);
    Ok(loss.mean())
}

/// `F.binary_cross_entropy` on probabilities, with PyTorch's clamp of each log term at -100.
///
/// Differs from [`bce_with_logits`] on saturated wrong predictions (100 instead of `|x|`).
///
/// # Shapes
/// - `probs`, `targets`: the same shape, both in `[0, 1]`
/// - output: `[1]`
pub fn bce_on_probabilities<B: Backend, const D: usize>(
    probs: Tensor<B, D>,
    targets: Tensor<B, D>,
) -> Result<Tensor<B, 1>, LossError> {
    let (pd, td) = (probs.dims(), targets.dims());
    if pd != td {
        return Err(shape_error(
            "bce_on_probabilities",
            format!("probs {pd:?} and targets {td:?} differ"),
        ));
    }
    let log_p = probs.clone().log().clamp_min(-100.0);
    let log_1mp = probs.neg().add_scalar(1.0).log().clamp_min(-100.0);
    let loss = (targets.clone() * log_p + targets.neg().add_scalar(1.0) * log_1mp).neg();
    Ok(loss.mean())
}

/// Output of [`multiple_choice_loss`].
#[derive(Debug, Clone)]
pub struct MultipleChoiceOutput<B: Backend> {
    /// Softmax cross entropy over the options, mean over questions, `[1]`.
    pub loss: Tensor<B, 1>,
    /// Fraction of questions whose highest-scored option (first on ties) is the answer, `[1]`.
    pub accuracy: Tensor<B, 1>,
}

/// Multiple-choice QA (MSRVTT-MC): softmax CE over one score per option, and accuracy.
///
/// # Shapes
/// - `scores`: `[questions, options]`, `answer`: `[questions]`
/// - outputs: `[1]`
pub fn multiple_choice_loss<B: Backend>(
    scores: Tensor<B, 2>,
    answer: Tensor<B, 1, Int>,
) -> Result<MultipleChoiceOutput<B>, LossError> {
    let loss = cross_entropy(scores.clone(), answer.clone())?;
    let predicted = scores.argmax(1).squeeze_dim::<1>(1);
    let accuracy = predicted.equal(answer).float().mean();
    Ok(MultipleChoiceOutput { loss, accuracy })
}

// ---------------------------------------------------------------------------------------------
// MIL-NCE (AntMMF `get_mil_nce_loss`) and the L1 / L2 similarity helpers
// ---------------------------------------------------------------------------------------------

/// AntMMF's MIL-NCE over a square similarity matrix with an explicit positive mask.
///
/// For each row `r` of `rows`, with `S` the similarity (rows = texts, columns = videos):
/// `loss_r = logsumexp([S[:, r], S[r, j] for j not positive]) - logsumexp(S[t, r] for t positive)`
/// i.e. video `r` against every text, plus text `r` against its negative videos, with the texts
/// positive for video `r` as the (multiple-instance) numerator. `loss = mean_r(w_r * loss_r)`
/// (weights default to 1). `positives[r][t]` marks text `t` as positive for video `r`; every
/// chosen row needs at least one positive.
///
/// # Shapes
/// - `sim`: `[n, n]`, `positives`: `[n, n]`, `weights`: `[rows.len()]`
/// - output: `[1]`
pub fn mil_nce_loss_with_positives<B: Backend>(
    sim: Tensor<B, 2>,
    positives: Tensor<B, 2, Bool>,
    rows: &[usize],
    weights: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 1>, LossError> {
    const LOSS: &str = "mil_nce_loss";
    let [n, m] = sim.dims();
    let pd = positives.dims();
    if n != m || n == 0 || pd != [n, n] {
        return Err(shape_error(
            LOSS,
            format!(
                "similarity must be square and non-empty with a mask of the same shape, got [{n}, {m}] and {pd:?}"
            ),
        ));
    }
    if rows.is_empty() {
        return Err(invalid(LOSS, "no rows selected".to_string()));
    }
    if let Some(&bad) = rows.iter().find(|&&r| r >= n) {
        return Err(invalid(
            LOSS,
            format!("row {bad} is outside the {n}x{n} matrix"),
        ));
    }
    if let Some(w) = &weights {
        let wd = w.dims();
        if wd != [rows.len()] {
            return Err(shape_error(
                LOSS,
                format!("weights must have shape [{}], got {wd:?}", rows.len()),
            ));
        }
    }
    let device = sim.device();
    // [video r vs all texts | text r vs its negative videos]
    let from_text = sim.clone().mask_fill(positives.clone(), MASK_VALUE);
    let from_video = sim.transpose();
    let logpt = log_softmax(Tensor::cat(vec![from_video, from_text], 1), 1);
    let no_positive =
        Tensor::<B, 2, Bool>::from_bool(TensorData::new(vec![false; n * n], [n, n]), &device);
    let numerator_mask = Tensor::cat(vec![positives, no_positive], 1);
    let masked = logpt.mask_fill(numerator_mask.bool_not(), MASK_VALUE);
    let per_row = logsumexp(masked, 1).squeeze_dim::<1>(1).neg();
    let rows_i64: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    let row_index =
        Tensor::<B, 1, Int>::from_data(TensorData::new(rows_i64, [rows.len()]), &device);
    let chosen = per_row.select(0, row_index);
    Ok(match weights {
        Some(w) => (chosen * w).mean(),
        None => chosen.mean(),
    })
}

/// AntMMF's `get_mil_nce_loss(sim, batch_size, n_pair, weight_vector)`.
///
/// Positives are the `n_pair x n_pair` diagonal blocks (`kron(eye(batch), ones(n_pair, n_pair))`)
/// and the loss is taken on the middle row of each block (`b * n_pair + n_pair / 2`).
///
/// # Shapes
/// - `sim`: `[batch * n_pair, batch * n_pair]`, `weights`: `[batch]`
/// - output: `[1]`
pub fn mil_nce_loss<B: Backend>(
    sim: Tensor<B, 2>,
    batch_size: usize,
    n_pair: usize,
    weights: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 1>, LossError> {
    let [n, _] = sim.dims();
    if batch_size == 0 || n_pair == 0 || n != batch_size * n_pair {
        return Err(shape_error(
            "mil_nce_loss",
            format!("similarity has {n} rows, expected batch {batch_size} x n_pair {n_pair}"),
        ));
    }
    let mask: Vec<bool> = (0..n * n)
        .map(|k| (k / n) / n_pair == (k % n) / n_pair)
        .collect();
    let positives = Tensor::<B, 2, Bool>::from_bool(TensorData::new(mask, [n, n]), &sim.device());
    let rows: Vec<usize> = (0..batch_size).map(|b| b * n_pair + n_pair / 2).collect();
    mil_nce_loss_with_positives(sim, positives, &rows, weights)
}

/// Clip-level L1 similarity (`get_l1_simi_matrix` with `cal_cross=True`): `score[t, v, c] = <text_t, clip_{v,c}>`.
///
/// # Shapes
/// - `text`: `[texts, hidden]`, `clips`: `[videos * n_clips, hidden]` (clips of a video adjacent)
/// - output: `[texts, videos, n_clips]`
pub fn l1_clip_similarity<B: Backend>(
    text: Tensor<B, 2>,
    clips: Tensor<B, 2>,
    n_clips: usize,
) -> Result<Tensor<B, 3>, LossError> {
    let [t, h] = text.dims();
    let [vc, hc] = clips.dims();
    if h != hc || n_clips == 0 || !vc.is_multiple_of(n_clips) {
        return Err(shape_error(
            "l1_clip_similarity",
            format!("text [{t}, {h}] and clips [{vc}, {hc}] do not fit n_clips {n_clips}"),
        ));
    }
    let videos = vc / n_clips;
    Ok(clips
        .matmul(text.transpose())
        .reshape([videos, n_clips, t])
        .permute([2, 0, 1]))
}

/// Video-level L1 score from clip scores (`reduce_clips(.., "l1")`): logsumexp over clips.
///
/// # Shapes
/// - `clip_similarity`: `[texts, videos, n_clips]`
/// - output: `[texts, videos]`
pub fn reduce_clips<B: Backend>(clip_similarity: Tensor<B, 3>) -> Tensor<B, 2> {
    logsumexp(clip_similarity, 2).squeeze_dim::<2>(2)
}

/// Stage-1 (L1) MIL-NCE of `forward_stage1`: the clip scores are repeated to a
/// `[batch * n_clips, batch * n_clips]` matrix and passed to [`mil_nce_loss`] with `n_pair = n_clips`.
/// A `[texts, videos * n_clips]` matrix is `.reshape([batch, batch, n_clips])` first.
///
/// # Shapes
/// - `clip_similarity`: `[batch, batch, n_clips]` (texts x videos x clips, matched on the diagonal)
/// - output: `[1]`
pub fn l1_mil_nce_loss<B: Backend>(
    clip_similarity: Tensor<B, 3>,
) -> Result<Tensor<B, 1>, LossError> {
    let [b, bv, nc] = clip_similarity.dims();
    if b != bv || b == 0 || nc == 0 {
        return Err(shape_error(
            "l1_mil_nce_loss",
            format!("clip similarity must be [batch, batch, n_clips], got [{b}, {bv}, {nc}]"),
        ));
    }
    let mil = clip_similarity
        .unsqueeze_dim::<4>(1)
        .repeat_dim(1, nc)
        .reshape([b * nc, b * nc]);
    mil_nce_loss(mil, b, nc, None)
}

/// Stage-2 (L2, cross-encoder) MIL-NCE of `forward_stage2`, optionally with row weights.
///
/// # Shapes
/// - `l2_similarity`: `[batch, batch]`, `weights`: `[batch]`
/// - output: `[1]`
pub fn l2_mil_nce_loss<B: Backend>(
    l2_similarity: Tensor<B, 2>,
    weights: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 1>, LossError> {
    let [b, _] = l2_similarity.dims();
    mil_nce_loss(l2_similarity, b, 1, weights)
}

/// AntMMF's registry loss `mil-nce` (`antmmf/modules/losses/mil_nce_loss.py`, Miech et al. 2020).
///
/// Texts are repeated to one per clip, `x = video @ text_rep^T`, and for each clip row `i`
/// `loss_i = logsumexp([x[i, :], x[:, i]]) - x[i, i]`; `loss = mean_i(loss_i)`. As in AntMMF,
/// other clips of the same video count as negatives.
///
/// # Shapes
/// - `video`: `[batch * n_clips, dim]` (clips of a video adjacent), `text`: `[batch, dim]`
/// - output: `[1]`
pub fn mil_nce_loss_paired<B: Backend>(
    video: Tensor<B, 2>,
    text: Tensor<B, 2>,
) -> Result<Tensor<B, 1>, LossError> {
    let [n, d] = video.dims();
    let [b, dt] = text.dims();
    if b == 0 || d != dt || n == 0 || !n.is_multiple_of(b) {
        return Err(shape_error(
            "mil_nce_loss_paired",
            format!("video [{n}, {d}] must hold a whole number of clips per text [{b}, {dt}]"),
        ));
    }
    let n_clips = n / b;
    let text = text
        .unsqueeze_dim::<3>(1)
        .repeat_dim(1, n_clips)
        .reshape([n, d]);
    let x = video.matmul(text.transpose());
    let diagonal = Tensor::<B, 1, Int>::arange(0..n as i64, &x.device()).unsqueeze_dim(1);
    let nominator = x.clone().gather(1, diagonal);
    let denominator = logsumexp(Tensor::cat(vec![x.clone(), x.transpose()], 1), 1);
    Ok((denominator - nominator).mean())
}

// ---------------------------------------------------------------------------------------------
// MoCo queue losses (moco_utils.py)
// ---------------------------------------------------------------------------------------------

/// `MocoUtils.moco_loss`: `mean(logsumexp([pos, neg] / T) - logsumexp(pos / T))`.
///
/// Several positives per query act as a multiple-instance numerator. With `mining_top_k`, only
/// the `k` largest negatives of each row are kept.
///
/// # Shapes
/// - `pos`: `[queries, positives]`, `neg`: `[queries, negatives]`
/// - output: `[1]`
pub fn moco_loss<B: Backend>(
    pos: Tensor<B, 2>,
    neg: Tensor<B, 2>,
    temperature: f64,
    mining_top_k: Option<usize>,
) -> Result<Tensor<B, 1>, LossError> {
    const LOSS: &str = "moco_loss";
    let [b, p] = pos.dims();
    let [bn, k] = neg.dims();
    if b != bn || b == 0 || p == 0 {
        return Err(shape_error(
            LOSS,
            format!(
                "pos [{b}, {p}] and neg [{bn}, {k}] need the same, non-zero number of rows and >= 1 positive"
            ),
        ));
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(invalid(
            LOSS,
            format!("temperature must be finite and > 0, got {temperature}"),
        ));
    }
    let neg = match mining_top_k {
        Some(top) if top == 0 || top > k => {
            return Err(invalid(
                LOSS,
                format!("mining_top_k {top} must be in 1..={k}"),
            ));
        }
        // Burn 0.21's `topk` has no autodiff support and Flex lacks `argtopk`: sort detached
        // values, keep the first `top` indices and gather (gradient flows to the kept negatives).
        Some(top) if top < k => {
            let kept = neg.clone().detach().argsort_descending(1).narrow(1, 0, top);
            neg.gather(1, kept)
        }
        _ => neg,
    };
    let all = Tensor::cat(vec![pos.clone(), neg], 1).div_scalar(temperature);
    let denominator = logsumexp(all, 1);
    let numerator = logsumexp(pos.div_scalar(temperature), 1);
    Ok((denominator - numerator).mean())
}

/// Text-query MoCo loss with several positive clip keys (`q=text, k+=key_v, k-=img_queue`).
///
/// `pos[b, c] = <query_b, key_{b,c}>`, `neg = query @ queue`; keys and queue are detached.
///
/// # Shapes
/// - `text_query`: `[batch, hidden]`, `clip_keys`: `[batch * n_clips, hidden]`,
///   `clip_queue`: `[hidden, queue_len]`
/// - output: `[1]`
pub fn moco_text_to_video_loss<B: Backend>(
    text_query: Tensor<B, 2>,
    clip_keys: Tensor<B, 2>,
    clip_queue: Tensor<B, 2>,
    n_clips: usize,
    temperature: f64,
) -> Result<Tensor<B, 1>, LossError> {
    let [b, h] = text_query.dims();
    let [bk, hk] = clip_keys.dims();
    let [hq, _] = clip_queue.dims();
    if n_clips == 0 || bk != b * n_clips || hk != h || hq != h {
        return Err(shape_error(
            "moco_text_to_video_loss",
            format!(
                "query [{b}, {h}], keys [{bk}, {hk}] and queue [{hq}, _] do not fit n_clips {n_clips}"
            ),
        ));
    }
    let keys = clip_keys.detach().reshape([b, n_clips, h]);
    let pos = (keys * text_query.clone().unsqueeze_dim::<3>(1))
        .sum_dim(2)
        .reshape([b, n_clips]);
    let neg = text_query.matmul(clip_queue.detach());
    moco_loss(pos, neg, temperature, None)
}

/// Clip-query MoCo loss against text keys (`q=video clip, k+=key_t, k-=txt_queue`).
///
/// `pos[(b, c)] = <clip_{b,c}, key_b>` (one positive per clip), `neg = clips @ queue`.
///
/// # Shapes
/// - `clip_query`: `[batch * n_clips, hidden]`, `text_keys`: `[batch, hidden]`,
///   `text_queue`: `[hidden, queue_len]`
/// - output: `[1]`
pub fn moco_video_to_text_loss<B: Backend>(
    clip_query: Tensor<B, 2>,
    text_keys: Tensor<B, 2>,
    text_queue: Tensor<B, 2>,
    n_clips: usize,
    temperature: f64,
) -> Result<Tensor<B, 1>, LossError> {
    let [bc, h] = clip_query.dims();
    let [b, hk] = text_keys.dims();
    let [hq, _] = text_queue.dims();
    if n_clips == 0 || bc != b * n_clips || hk != h || hq != h {
        return Err(shape_error(
            "moco_video_to_text_loss",
            format!(
                "query [{bc}, {h}], keys [{b}, {hk}] and queue [{hq}, _] do not fit n_clips {n_clips}"
            ),
        ));
    }
    let keys = text_keys
        .detach()
        .unsqueeze_dim::<3>(1)
        .repeat_dim(1, n_clips)
        .reshape([bc, h]);
    let pos = (clip_query.clone() * keys).sum_dim(1);
    let neg = clip_query.matmul(text_queue.detach());
    moco_loss(pos, neg, temperature, None)
}

/// Inputs of [`moco_cross_modal_loss`]: online queries, momentum keys and the two queues.
#[derive(Debug, Clone)]
pub struct MocoInputs<B: Backend> {
    /// Online text embeddings, `[batch, hidden]`.
    pub text_query: Tensor<B, 2>,
    /// Online clip embeddings, `[batch * n_clips, hidden]`.
    pub clip_query: Tensor<B, 2>,
    /// Momentum-encoder text keys, `[batch, hidden]`.
    pub text_keys: Tensor<B, 2>,
    /// Momentum-encoder clip keys, `[batch * n_clips, hidden]`.
    pub clip_keys: Tensor<B, 2>,
    /// Queue of past text keys, `[hidden, K]`.
    pub text_queue: Tensor<B, 2>,
    /// Queue of past clip keys, `[hidden, K]`.
    pub clip_queue: Tensor<B, 2>,
}

/// The stage-1 MoCo loss of `get_simi_logits`: mean of [`moco_text_to_video_loss`] and
/// [`moco_video_to_text_loss`] (AntMMF's `(l1_simi_loss_t + l1_simi_loss_v) / 2`).
///
/// # Shapes
/// - see [`MocoInputs`]; output: `[1]`
pub fn moco_cross_modal_loss<B: Backend>(
    inputs: MocoInputs<B>,
    n_clips: usize,
    temperature: f64,
) -> Result<Tensor<B, 1>, LossError> {
    let MocoInputs {
        text_query,
        clip_query,
        text_keys,
        clip_keys,
        text_queue,
        clip_queue,
    } = inputs;
    let text_to_video =
        moco_text_to_video_loss(text_query, clip_keys, clip_queue, n_clips, temperature)?;
    let video_to_text =
        moco_video_to_text_loss(clip_query, text_keys, text_queue, n_clips, temperature)?;
    Ok((text_to_video + video_to_text).div_scalar(2.0))
}

/// `MocoUtils.dequeue_and_enqueue` for one queue: writes `keys` as columns ending at
/// `min(ptr + n, K)` and returns the new queue and pointer `end % K`.
///
/// As in AntMMF, a batch of keys containing NaN is skipped (queue and pointer unchanged); this
/// reads one flag back to the host. Keys are detached.
///
/// # Shapes
/// - `queue`: `[hidden, K]`, `keys`: `[n, hidden]` with `n <= K`
/// - output queue: `[hidden, K]`
pub fn moco_enqueue<B: Backend>(
    queue: Tensor<B, 2>,
    keys: Tensor<B, 2>,
    ptr: usize,
) -> Result<(Tensor<B, 2>, usize), LossError> {
    let [h, k] = queue.dims();
    let [n, hk] = keys.dims();
    if hk != h || n > k || ptr >= k {
        return Err(shape_error(
            "moco_enqueue",
            format!("keys [{n}, {hk}] and pointer {ptr} do not fit queue [{h}, {k}]"),
        ));
    }
    if n == 0 {
        return Ok((queue, ptr));
    }
    let keys = keys.detach();
    let nan_count = keys
        .clone()
        .is_nan()
        .int()
        .sum()
        .into_data()
        .iter::<i64>()
        .next()
        .unwrap_or(0);
    if nan_count > 0 {
        return Ok((queue, ptr));
    }
    let end = (ptr + n).min(k);
    let start = end - n;
    Ok((
        queue.slice_assign([0..h, start..end], keys.transpose()),
        end % k,
    ))
}

// ---------------------------------------------------------------------------------------------
// Hard negative mining for the L2 (cross-encoder) stage
// ---------------------------------------------------------------------------------------------

/// `model_attributes.univl.re_sample_method`: how stage-2 negatives are drawn from L1 scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResampleMethod {
    /// `nearliest`: videos whose L1 score is closest to the ground truth's.
    Nearest,
    /// `top_k`: videos with the highest L1 scores.
    TopK,
}

impl ResampleMethod {
    /// The config spelling AntMMF uses.
    pub fn config_name(self) -> &'static str {
        match self {
            Self::Nearest => "nearliest",
            Self::TopK => "top_k",
        }
    }
}

impl FromStr for ResampleMethod {
    type Err = LossError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nearliest" => Ok(Self::Nearest),
            "top_k" => Ok(Self::TopK),
            other => Err(LossError::UnknownResampleMethod(other.to_string())),
        }
    }
}

/// `model_attributes.univl.re_weight_method`: how stage-2 rows are re-weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReweightMethod {
    /// `median`: see [`median_reweight`].
    Median,
}

impl FromStr for ReweightMethod {
    type Err = LossError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "median" => Ok(Self::Median),
            other => Err(LossError::UnknownReweightMethod(other.to_string())),
        }
    }
}

/// Video indices to pair with each local text in the hard-mined L2 matrix.
///
/// `l1` is the detached `[n_text, n_video]` L1 video matrix (row-major, e.g. gathered over
/// devices); the local texts are rows `first_row..first_row + batch_size` and text
/// `first_row + i` matches video `first_row + i`. Row `i` of the result (`batch_size` indices,
/// row-major `[batch_size, batch_size]`) holds the ground truth at column `i` (the diagonal of the
/// L2 matrix) and the `batch_size - 1` hardest negatives elsewhere, hardest first:
/// `top_k` = highest L1 score, `nearliest` = smallest `|score - score_gt|`; ties by lower index.
///
/// Differences from AntMMF, which calls `topk(..., sorted=False)` on the row with the ground
/// truth pushed away by 100 and then overwrites position `i` with the ground truth: here the
/// ground truth never appears twice and no mined negative is overwritten, and the order is
/// deterministic.
pub fn hard_negative_indices(
    l1: &[f32],
    n_text: usize,
    n_video: usize,
    first_row: usize,
    batch_size: usize,
    method: ResampleMethod,
) -> Result<Vec<usize>, LossError> {
    const LOSS: &str = "hard_negative_indices";
    if l1.len() != n_text * n_video {
        return Err(shape_error(
            LOSS,
            format!("{} scores for a {n_text}x{n_video} matrix", l1.len()),
        ));
    }
    let end = first_row + batch_size;
    if batch_size == 0 || end > n_text || end > n_video || n_video < batch_size {
        return Err(invalid(
            LOSS,
            format!("rows {first_row}..{end} do not fit a {n_text}x{n_video} matrix"),
        ));
    }
    let mut out = Vec::with_capacity(batch_size * batch_size);
    let mut candidates: Vec<(f32, usize)> = Vec::with_capacity(n_video);
    for i in 0..batch_size {
        let gt = first_row + i;
        let row = &l1[gt * n_video..(gt + 1) * n_video];
        let gt_score = row[gt];
        candidates.clear();
        candidates.extend(
            row.iter()
                .enumerate()
                .filter(|&(j, _)| j != gt)
                .map(|(j, &s)| match method {
                    ResampleMethod::TopK => (-s, j),
                    ResampleMethod::Nearest => ((s - gt_score).abs(), j),
                }),
        );
        candidates.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let negatives = candidates.iter().take(batch_size - 1).map(|&(_, j)| j);
        out.extend(negatives.clone().take(i));
        out.push(gt);
        out.extend(negatives.skip(i));
    }
    Ok(out)
}

/// [`hard_negative_indices`] on a tensor: reads the detached L1 matrix back to the host once.
///
/// # Shapes
/// - `l1`: `[n_text, n_video]`
/// - output: `[batch_size, batch_size]` video indices
pub fn hard_negative_index_tensor<B: Backend>(
    l1: Tensor<B, 2>,
    first_row: usize,
    batch_size: usize,
    method: ResampleMethod,
) -> Result<Tensor<B, 2, Int>, LossError> {
    let [n_text, n_video] = l1.dims();
    let device = l1.device();
    let scores: Vec<f32> = l1.detach().into_data().iter::<f32>().collect();
    let idx = hard_negative_indices(&scores, n_text, n_video, first_row, batch_size, method)?;
    let idx: Vec<i64> = idx.into_iter().map(|j| j as i64).collect();
    Ok(Tensor::from_data(
        TensorData::new(idx, [batch_size, batch_size]),
        &device,
    ))
}

/// `re_weight_method: median` row weights from the diagonal L1 scores of the local batch.
///
/// As AntMMF computes it, the "median" is the **mean** `m` of the diagonal: rows with
/// `d_i > m` get `max((m - min) / (d_i - min), 0.2)`, the others 1. Easy pairs (high L1 score)
/// thus count less in the L2 loss. The result is detached.
///
/// # Shapes
/// - `l1_diagonal`: `[batch]`; output: `[batch]`
pub fn median_reweight<B: Backend>(l1_diagonal: Tensor<B, 1>) -> Tensor<B, 1> {
    let [n] = l1_diagonal.dims();
    let d = l1_diagonal.detach();
    if n == 0 {
        return d;
    }
    let mean = d.clone().mean().expand([n]);
    let min = d.clone().min().expand([n]);
    let weight = ((mean.clone() - min.clone()) / (d.clone() - min)).clamp_min(0.2);
    let above = d.clone().greater(mean);
    d.ones_like().mask_where(above, weight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

    type B = Flex;
    type AB = Autodiff<Flex>;

    fn t2(rows: &[&[f32]]) -> Tensor<B, 2> {
        let n = rows.len();
        let m = rows[0].len();
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_data(TensorData::new(flat, [n, m]), &Default::default())
    }

    fn scalar<Bk: Backend>(t: Tensor<Bk, 1>) -> f64 {
        t.into_data().iter::<f64>().next().unwrap_or(f64::NAN)
    }

    fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
        assert!(
            (got - want).abs() <= tol,
            "{what}: got {got}, want {want} (tol {tol})"
        );
    }

    #[test]
    fn mil_nce_2x2_hand_checked() {
        // S = [[2, 0], [1, 3]], n_pair = 1:
        // row 0: lse(S[:,0] = {2, 1}, S[0,1] = 0) - 2 = ln(e^2 + e + 1) - 2 = 0.4076059644
        // row 1: lse(S[:,1] = {0, 3}, S[1,0] = 1) - 3 = ln(1 + e^3 + e) - 3 = 0.1698460
        // mean = 0.2887259 (tolerance 1e-6: f32 arithmetic)
        let s = t2(&[&[2.0, 0.0], &[1.0, 3.0]]);
        let loss = scalar(mil_nce_loss(s.clone(), 2, 1, None).unwrap());
        let r0 = (2f64.exp() + 1f64.exp() + 1.0).ln() - 2.0;
        let r1 = (1.0 + 3f64.exp() + 1f64.exp()).ln() - 3.0;
        assert_close(loss, (r0 + r1) / 2.0, 1e-6, "mil-nce 2x2");
        assert_close(loss, 0.288_725_9, 1e-6, "mil-nce 2x2 literal");
        // weights [1, 0.5]: (r0 + 0.5 r1) / 2
        let w = Tensor::<B, 1>::from_data([1.0f32, 0.5], &Default::default());
        let loss = scalar(l2_mil_nce_loss(s, Some(w)).unwrap());
        assert_close(loss, (r0 + 0.5 * r1) / 2.0, 1e-6, "weighted mil-nce 2x2");
    }

    #[test]
    fn l1_mil_nce_with_two_clips_hand_checked() {
        // clip scores l1[t][v][c], batch 2, n_clips 2. After AntMMF's repeat, the middle row of
        // block b is video (b, clip 1); its positives are the 2 copies of text b, so
        // loss_b = lse({l1[t,b,1] + ln 2 : t} U {l1[b,v,c] : v != b, all c}) - (l1[b,b,1] + ln 2).
        let l1 = [[[1.0f32, 2.0], [0.5, -1.0]], [[0.0, 1.5], [3.0, 2.5]]];
        let flat: Vec<f32> = l1.iter().flatten().flatten().copied().collect();
        let clip = Tensor::<B, 3>::from_data(TensorData::new(flat, [2, 2, 2]), &Default::default());
        let got = scalar(l1_mil_nce_loss(clip.clone()).unwrap());
        let ln2 = 2f64.ln();
        let lse = |xs: &[f64]| xs.iter().map(|x| x.exp()).sum::<f64>().ln();
        let l = |t: usize, v: usize, c: usize| f64::from(l1[t][v][c]);
        let loss0 =
            lse(&[l(0, 0, 1) + ln2, l(1, 0, 1) + ln2, l(0, 1, 0), l(0, 1, 1)]) - (l(0, 0, 1) + ln2);
        let loss1 =
            lse(&[l(0, 1, 1) + ln2, l(1, 1, 1) + ln2, l(1, 0, 0), l(1, 0, 1)]) - (l(1, 1, 1) + ln2);
        assert_close(got, (loss0 + loss1) / 2.0, 1e-6, "l1 mil-nce");
        // video-level scores: logsumexp over clips
        let video: Vec<f32> = reduce_clips(clip).into_data().iter::<f32>().collect();
        assert_close(f64::from(video[1]), lse(&[0.5, -1.0]), 1e-6, "reduce_clips");
    }

    #[test]
    fn l1_clip_similarity_layout() {
        // text [2, 2], clips of 2 videos x 2 clips: score[t, v, c] = <text_t, clip_{v,c}>
        let text = t2(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let clips = t2(&[&[1.0, 2.0], &[3.0, 4.0], &[5.0, 6.0], &[7.0, 8.0]]);
        let s: Vec<f32> = l1_clip_similarity(text, clips, 2)
            .unwrap()
            .into_data()
            .iter::<f32>()
            .collect();
        assert_eq!(s, vec![1.0, 3.0, 5.0, 7.0, 2.0, 4.0, 6.0, 8.0]);
    }

    #[test]
    fn moco_multi_positive_hand_checked() {
        // query [1, 2] = (1, 0); clip keys (1, 0), (0.5, 0.5) => pos = {1, 0.5};
        // queue columns (0, 1), (-1, 0) => neg = {0, -1}; T = 0.5:
        // loss = ln(e^2 + e^1 + e^0 + e^-2) - ln(e^2 + e^1)
        let q = t2(&[&[1.0, 0.0]]);
        let keys = t2(&[&[1.0, 0.0], &[0.5, 0.5]]);
        let queue = t2(&[&[0.0, -1.0], &[1.0, 0.0]]);
        let got = scalar(moco_text_to_video_loss(q, keys, queue.clone(), 2, 0.5).unwrap());
        let e = f64::exp;
        let want = (e(2.0) + e(1.0) + e(0.0) + e(-2.0)).ln() - (e(2.0) + e(1.0)).ln();
        assert_close(got, want, 1e-6, "moco t2v");
        // clip queries against one text key: pos per clip, same queue.
        let clips = t2(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let text_key = t2(&[&[1.0, 0.0]]);
        let got = scalar(moco_video_to_text_loss(clips, text_key, queue, 2, 0.5).unwrap());
        // clip 0: pos 1, neg {0, -1}; clip 1: pos 0, neg {1, 0}
        let l0 = (e(2.0) + e(0.0) + e(-2.0)).ln() - 2.0;
        let l1 = (e(0.0) + e(2.0) + e(0.0)).ln();
        assert_close(got, (l0 + l1) / 2.0, 1e-6, "moco v2t");
        // mining keeps the largest negative only: clip 0 neg {0}
        let pos = t2(&[&[1.0]]);
        let neg = t2(&[&[0.0, -1.0]]);
        let got = scalar(moco_loss(pos, neg, 0.5, Some(1)).unwrap());
        assert_close(got, (e(2.0) + 1.0).ln() - 2.0, 1e-6, "moco top-k mining");
        // Both directions together: the mean of the two losses checked above.
        let both = moco_cross_modal_loss(
            MocoInputs {
                text_query: t2(&[&[1.0, 0.0]]),
                clip_query: t2(&[&[1.0, 0.0], &[0.0, 1.0]]),
                text_keys: t2(&[&[1.0, 0.0]]),
                clip_keys: t2(&[&[1.0, 0.0], &[0.5, 0.5]]),
                text_queue: t2(&[&[0.0, -1.0], &[1.0, 0.0]]),
                clip_queue: t2(&[&[0.0, -1.0], &[1.0, 0.0]]),
            },
            2,
            0.5,
        )
        .unwrap();
        let t2v = (e(2.0) + e(1.0) + e(0.0) + e(-2.0)).ln() - (e(2.0) + e(1.0)).ln();
        assert_close(
            scalar(both),
            (t2v + (l0 + l1) / 2.0) / 2.0,
            1e-6,
            "moco both",
        );
    }

    #[test]
    fn paired_mil_nce_hand_checked() {
        // video [[1, 0], [0, 1]], text [[2, 0], [0, 1]], one clip: x = [[2, 0], [0, 1]].
        // row 0: ln(e^2 + e^0 + e^2 + e^0) - 2; row 1: ln(e^0 + e^1 + e^0 + e^1) - 1.
        let video = t2(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let text = t2(&[&[2.0, 0.0], &[0.0, 1.0]]);
        let got = scalar(mil_nce_loss_paired(video, text).unwrap());
        let e = f64::exp;
        let want = ((2.0 * e(2.0) + 2.0).ln() - 2.0 + (2.0 + 2.0 * e(1.0)).ln() - 1.0) / 2.0;
        assert_close(got, want, 1e-6, "paired mil-nce");
        // two clips per text: text 0 = (1, 0) repeated; clips (1, 0), (0, 1).
        // x[i][j] = clip_i . text: [[1, 1], [0, 0]]; row 0: [x[0, :], x[:, 0]] = {1, 1, 1, 0},
        // ln(3e + 1) - 1; row 1: {0, 0, 1, 0}, ln(3 + e) - 0 (the other clip is a negative).
        let video = t2(&[&[1.0, 0.0], &[0.0, 1.0]]);
        let text = t2(&[&[1.0, 0.0]]);
        let got = scalar(mil_nce_loss_paired(video, text).unwrap());
        let want = ((3.0 * e(1.0) + 1.0).ln() - 1.0 + (3.0 + e(1.0)).ln()) / 2.0;
        assert_close(got, want, 1e-6, "paired mil-nce, 2 clips");
    }

    #[test]
    fn moco_enqueue_ring_buffer() {
        // queue [1 x 4] = [0, 0, 0, 0]; 2 keys at ptr 3: end = min(5, 4) = 4, start = 2.
        let queue = t2(&[&[0.0, 0.0, 0.0, 0.0]]);
        let keys = t2(&[&[7.0], &[8.0]]);
        let (queue, ptr) = moco_enqueue(queue, keys, 3).unwrap();
        let q: Vec<f32> = queue.clone().into_data().iter::<f32>().collect();
        assert_eq!((q, ptr), (vec![0.0, 0.0, 7.0, 8.0], 0));
        let (queue, ptr) = moco_enqueue(queue, t2(&[&[1.0]]), 0).unwrap();
        let q: Vec<f32> = queue.clone().into_data().iter::<f32>().collect();
        assert_eq!((q, ptr), (vec![1.0, 0.0, 7.0, 8.0], 1));
        // NaN keys are skipped.
        let (queue, ptr) = moco_enqueue(queue, t2(&[&[f32::NAN]]), 1).unwrap();
        let q: Vec<f32> = queue.clone().into_data().iter::<f32>().collect();
        assert_eq!((q, ptr), (vec![1.0, 0.0, 7.0, 8.0], 1));
        assert!(moco_enqueue(queue, t2(&[&[1.0f32][..]; 5]), 0).is_err());
    }

    /// Autodiff gradient of `f` at `x` against central finite differences (step 1e-2, f32).
    fn check_gradient<const D: usize>(
        x: Tensor<B, D>,
        f: impl Fn(Tensor<AB, D>) -> Tensor<AB, 1>,
        what: &str,
    ) {
        let xa = Tensor::<AB, D>::from_data(x.to_data(), &Default::default()).require_grad();
        let grads = f(xa.clone()).backward();
        let analytic: Vec<f64> = xa.grad(&grads).unwrap().into_data().iter::<f64>().collect();
        let base: Vec<f32> = x.to_data().iter::<f32>().collect();
        let shape = x.dims();
        let eps = 1e-2f32;
        let eval = |values: Vec<f32>| {
            scalar(f(Tensor::<AB, D>::from_data(
                TensorData::new(values, shape),
                &Default::default(),
            )))
        };
        for (k, &g) in analytic.iter().enumerate() {
            let mut plus = base.clone();
            plus[k] += eps;
            let mut minus = base.clone();
            minus[k] -= eps;
            let numeric = (eval(plus) - eval(minus)) / (2.0 * f64::from(eps));
            assert_close(g, numeric, 1e-3, what);
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        // MIL-NCE over repeated clip scores (mask_fill, cat, log_softmax, select on the tape).
        let clip: Vec<f32> = (0..18).map(|k| ((k * 7) % 11) as f32 / 5.0 - 1.0).collect();
        let clip = Tensor::<B, 3>::from_data(TensorData::new(clip, [3, 3, 2]), &Default::default());
        check_gradient(clip, |c| l1_mil_nce_loss(c).unwrap(), "l1 mil-nce grad");
        // Weighted L2 MIL-NCE.
        let s = t2(&[&[0.5, -0.2, 0.1], &[0.3, 0.9, -0.4], &[0.0, 0.2, 0.7]]);
        check_gradient(
            s,
            |s| {
                let w = Tensor::<AB, 1>::from_data([1.0f32, 0.4, 0.7], &Default::default());
                l2_mil_nce_loss(s, Some(w)).unwrap()
            },
            "l2 mil-nce grad",
        );
        // MoCo with top-k mining (gradient flows only through the kept negatives).
        let neg = t2(&[&[0.1, -0.3, 0.45, 0.2], &[-0.5, 0.05, 0.3, -0.1]]);
        check_gradient(
            neg,
            |n| {
                let pos =
                    Tensor::<AB, 2>::from_data([[0.6f32, 0.2], [0.4, 0.1]], &Default::default());
                moco_loss(pos, n, 0.5, Some(2)).unwrap()
            },
            "moco grad",
        );
        // Multi-positive MoCo w.r.t. the text queries (keys and queue are constants).
        let query = t2(&[&[0.3, -0.2], &[0.1, 0.6]]);
        check_gradient(
            query,
            |q| {
                let dev = Default::default();
                let keys = Tensor::<AB, 2>::from_data(
                    [[0.5f32, 0.1], [0.2, -0.4], [-0.3, 0.7], [0.6, 0.2]],
                    &dev,
                );
                let queue =
                    Tensor::<AB, 2>::from_data([[0.1f32, -0.6, 0.4], [0.5, 0.2, -0.3]], &dev);
                moco_text_to_video_loss(q, keys, queue, 2, 0.5).unwrap()
            },
            "moco t2v grad",
        );
        // Paired MIL-NCE w.r.t. the video clips.
        let video = t2(&[&[0.2, -0.1], &[0.4, 0.3], &[-0.3, 0.5], &[0.1, 0.1]]);
        check_gradient(
            video,
            |v| {
                let text =
                    Tensor::<AB, 2>::from_data([[0.5f32, -0.2], [0.1, 0.8]], &Default::default());
                mil_nce_loss_paired(v, text).unwrap()
            },
            "paired mil-nce grad",
        );
    }

    #[test]
    fn hard_negatives_hand_checked() {
        // 3x3 L1 video scores, local batch = all 3 rows.
        let l1 = [
            0.9f32, 0.1, 0.5, //
            0.2, 0.4, 0.8, //
            0.3, 0.35, 0.6,
        ];
        // top_k: row 0 negatives by score: 2 (0.5), 1 (0.1) -> [0, 2, 1]
        //        row 1: 2 (0.8), 0 (0.2) -> gt at column 1: [2, 1, 0]
        //        row 2: 1 (0.35), 0 (0.3) -> [1, 0, 2]
        let top = hard_negative_indices(&l1, 3, 3, 0, 3, ResampleMethod::TopK).unwrap();
        assert_eq!(top, vec![0, 2, 1, 2, 1, 0, 1, 0, 2]);
        // nearliest: row 0 |s - 0.9|: 1 -> 0.8, 2 -> 0.4 => [0, 2, 1]
        //            row 1 |s - 0.4|: 0 -> 0.2, 2 -> 0.4 => [0, 1, 2]
        //            row 2 |s - 0.6|: 0 -> 0.3, 1 -> 0.25 => [1, 0, 2]
        let near = hard_negative_indices(&l1, 3, 3, 0, 3, ResampleMethod::Nearest).unwrap();
        assert_eq!(near, vec![0, 2, 1, 0, 1, 2, 1, 0, 2]);
        // a local batch of 1 from row 1 of a gathered matrix keeps only the ground truth
        assert_eq!(
            hard_negative_indices(&l1, 3, 3, 1, 1, ResampleMethod::TopK).unwrap(),
            vec![1]
        );
        assert!(hard_negative_indices(&l1, 3, 3, 2, 2, ResampleMethod::TopK).is_err());
        assert_eq!("top_k".parse::<ResampleMethod>(), Ok(ResampleMethod::TopK));
        assert_eq!(
            "nearliest".parse::<ResampleMethod>(),
            Ok(ResampleMethod::Nearest)
        );
        assert!("nearest".parse::<ResampleMethod>().is_err());
        assert_eq!(
            "median".parse::<ReweightMethod>(),
            Ok(ReweightMethod::Median)
        );
    }

    #[test]
    fn median_reweight_hand_checked() {
        // d = [1, 2, 3, 6]: mean 3, min 1. Only 6 > 3: max((3-1)/(6-1), 0.2) = 0.4.
        // d = [0, 0, 10]: mean 10/3, 10 > 10/3: max((10/3)/10, 0.2) = 1/3.
        // d = [0, 0, 0, 0, 1000]: mean 200, min 0: max(200/1000, 0.2) = 0.2.
        let cases: [(&[f32], &[f64]); 3] = [
            (&[1.0, 2.0, 3.0, 6.0], &[1.0, 1.0, 1.0, 0.4]),
            (&[0.0, 0.0, 10.0], &[1.0, 1.0, 1.0 / 3.0]),
            (&[0.0, 0.0, 0.0, 0.0, 1000.0], &[1.0, 1.0, 1.0, 1.0, 0.2]),
        ];
        for (d, want) in cases {
            let t = Tensor::<B, 1>::from_data(
                TensorData::new(d.to_vec(), [d.len()]),
                &Default::default(),
            );
            let got: Vec<f64> = median_reweight(t).into_data().iter::<f64>().collect();
            for (g, w) in got.iter().zip(want) {
                assert_close(*g, *w, 1e-6, "median reweight");
            }
        }
        // all equal: no row above the mean, all weights 1 (no NaN from 0/0)
        let t = Tensor::<B, 1>::from_data([2.0f32, 2.0, 2.0], &Default::default());
        let got: Vec<f64> = median_reweight(t).into_data().iter::<f64>().collect();
        assert_eq!(got, vec![1.0, 1.0, 1.0]);
    }

    #[test]
    fn masked_cross_entropy_all_ignored_is_zero() {
        let logits = Tensor::<AB, 3>::from_data(
            TensorData::new(vec![0.5f32; 2 * 3 * 4], [2, 3, 4]),
            &Default::default(),
        )
        .require_grad();
        let labels = Tensor::<AB, 2, Int>::from_data(
            TensorData::new(vec![IGNORE_INDEX; 6], [2, 3]),
            &Default::default(),
        );
        let out = masked_cross_entropy(logits.clone(), labels, IGNORE_INDEX).unwrap();
        assert_eq!(scalar(out.loss.clone()), 0.0);
        assert_eq!(scalar(out.num_counted), 0.0);
        let grads = out.loss.backward();
        let g: Vec<f32> = logits
            .grad(&grads)
            .unwrap()
            .into_data()
            .iter::<f32>()
            .collect();
        assert!(g.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn label_and_shape_errors() {
        let logits = Tensor::<B, 3>::zeros([1, 2, 3], &Default::default());
        let labels = Tensor::<B, 2, Int>::from_data([[0i64, 3]], &Default::default());
        assert!(matches!(
            masked_cross_entropy(logits, labels, IGNORE_INDEX),
            Err(LossError::LabelOutOfRange {
                label: 3,
                position: 1,
                ..
            })
        ));
        let a = Tensor::<B, 2>::zeros([2, 4], &Default::default());
        let b = Tensor::<B, 2>::zeros([3, 4], &Default::default());
        assert!(symmetric_infonce(a.clone(), b, LogitScale::Temperature(0.1), true).is_err());
        assert!(
            symmetric_infonce(a.clone(), a.clone(), LogitScale::Temperature(0.0), true).is_err()
        );
        assert!(mil_nce_loss(a, 2, 2, None).is_err());
    }
}
