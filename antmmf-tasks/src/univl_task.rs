//! The four UniVL training heads on one skeleton: AntMMF's `video_pretraining`,
//! `video_text_retrieval`, `video_text_classification` (open QA) and `video_multi_choice_qa`
//! (`prj/base_vtp/roi_univl/univl/model/univl_video_{pretrain,ret,cls,multi_choice_qa}.py`).
//!
//! [`task_forward`] computes a head's losses (and its scores) from a batch on any backend, so the
//! training step (autodiff backend) and validation (inner backend) share it. Each head adds only
//! its forward and losses:
//! - retrieval: L1 MIL-NCE over the clip-level similarity (logsumexp over clips), L2 MIL-NCE of
//!   the cross encoder over a `[batch, batch]` matrix whose rows are the hard negatives mined
//!   from L1 (`hard_example_mining`, `re_sample_method`, `re_weight_method: median`) or all pairs;
//!   with CNVid-3.5M's hard-sample curriculum ([`HardSampleCurriculum`]) each training step
//!   draws which of the two it uses;
//!   With `with_moco` (AntMMF's default) the L1 loss is MoCo's, against the key queues, with its
//!   temperature `T`;
//! - pretraining: retrieval's losses on the masked caption (L1 from the unmasked ids), plus MLM on
//!   the positive pairs' cross output and ITM with false captions;
//! - open QA: cross-entropy (or BCE for multi-label) of the classifier on the cross pooled output;
//! - MC-QA: softmax over `similarity_dense` scores of (option, video) pairs.

use crate::distributed::gather_rows;
use antmmf_data::batch::VideoTextBatch;
use antmmf_models::losses::{
    MocoInputs, ResampleMethod, bce_with_logits, cross_entropy, hard_negative_index_tensor,
    l1_mil_nce_loss, l2_mil_nce_loss, masked_cross_entropy, median_reweight, moco_cross_modal_loss,
    multiple_choice_loss, reduce_clips,
};
use antmmf_models::univl::Univl;
use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Int, Tensor};
use burn::train::{InferenceStep, ItemLazy, TrainOutput, TrainStep};
use std::fmt;

/// `model_attributes.univl.training_head_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TaskHead {
    /// `video_pretraining`.
    Pretrain,
    /// `video_text_retrieval`.
    Retrieval,
    /// `video_text_classification` (open QA).
    Classification,
    /// `video_multi_choice_qa`.
    MultiChoice,
}

impl TaskHead {
    /// Parses AntMMF's `training_head_type`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "video_pretraining" | "pretraining" => Some(Self::Pretrain),
            "video_text_retrieval" => Some(Self::Retrieval),
            "video_text_classification" => Some(Self::Classification),
            "video_multi_choice_qa" => Some(Self::MultiChoice),
            _ => None,
        }
    }

    /// AntMMF's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pretrain => "video_pretraining",
            Self::Retrieval => "video_text_retrieval",
            Self::Classification => "video_text_classification",
            Self::MultiChoice => "video_multi_choice_qa",
        }
    }
}

/// Loss settings of a head (from `model_attributes.univl`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskSettings {
    /// The head.
    pub head: TaskHead,
    /// Mine L2 negatives from L1 scores.
    pub hard_example_mining: bool,
    /// `nearliest` or `top_k`.
    pub re_sample_method: String,
    /// `median` row weights (`None` for none).
    pub re_weight_method: Option<String>,
    /// Use MoCo queues for the pretraining L1 loss.
    pub with_moco: bool,
    /// MoCo temperature `T`.
    pub moco_temperature: f64,
    /// Temperature of the in-batch L1 MIL-NCE (`l1_temperature`, an antmmf-rs key): logits are
    /// `similarity / t`. 1 (the default) is AntMMF's loss on raw cosine similarities.
    #[serde(default = "one")]
    pub l1_temperature: f64,
    /// Multi-label classification (BCE) instead of single-label (CE).
    pub multi_label: bool,
    /// Pretraining: probability per step of attention-guided masking instead of the caption
    /// processor's random masks (AntMMF: 0.5).
    pub attentive_mask_prob: f64,
    /// `[CLS]`, `[SEP]`, `[MASK]` ids of the vocabulary.
    pub special_ids: SpecialIds,
    /// CNVid-3.5M's hard-sample curriculum (with `hard_example_mining`); `None`: every training
    /// step mines.
    #[serde(default)]
    pub curriculum: Option<HardSampleCurriculum>,
    /// SNP-S3's vision-word matching and text-encoder MLM ([`crate::snps3`]).
    #[serde(default)]
    pub snps3: crate::snps3::Snps3Settings,
}

/// The default L1 temperature (AntMMF's loss: no scaling).
fn one() -> f64 {
    1.0
}

/// Special token ids of the caption vocabulary (bert-base-uncased and bert-base-chinese share
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpecialIds {
    /// `[CLS]`.
    pub cls: i64,
    /// `[SEP]`.
    pub sep: i64,
    /// `[MASK]`.
    pub mask: i64,
}

impl Default for SpecialIds {
    fn default() -> Self {
        Self {
            cls: 101,
            sep: 102,
            mask: 103,
        }
    }
}

impl Default for TaskSettings {
    fn default() -> Self {
        Self {
            head: TaskHead::Retrieval,
            hard_example_mining: false,
            re_sample_method: "nearliest".into(),
            re_weight_method: None,
            with_moco: false,
            moco_temperature: 0.05,
            l1_temperature: 1.0,
            multi_label: false,
            attentive_mask_prob: 0.5,
            special_ids: SpecialIds::default(),
            curriculum: None,
            snps3: crate::snps3::Snps3Settings::default(),
        }
    }
}

/// CNVid-3.5M's hard-sample curriculum (`model_attributes.univl.change_iter`, `change_rate`;
/// CVPR 2023, `prj/cnvid_vtp/roi_univl/univl/model/univl_video_ret.py::forward_stage2` and
/// `antmmf/trainers/base_trainer.py`): at training iteration `i` (1-based, AntMMF's
/// `current_iteration`) the L2 loss uses the negatives mined from L1 with probability
/// `min(floor(i / change_iter) * change_rate, 1)` ([`HardSampleCurriculum::mining_probability`])
/// and all pairs otherwise, so mining ramps from never to always. The `median` row weights apply
/// on every step either way, as in AntMMF.
///
/// The step's draw is a pure function of `(seed, iteration)` ([`HardSampleCurriculum::draw`]):
/// a resumed run continues the same sequence and every device makes the same choice. AntMMF
/// instead averages one `randint(0, 100) / 100` per GPU, so with several GPUs its mining rate is
/// not the stated probability (the mean of the draws concentrates near 0.5); one shared draw
/// keeps it exact.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HardSampleCurriculum {
    /// Iterations per rise of the probability (`change_iter`, positive).
    pub change_iter: u64,
    /// Rise of the probability per `change_iter` iterations (`change_rate`, finite, >= 0).
    pub change_rate: f64,
    /// The run's seed, keying the per-iteration draws.
    pub seed: u64,
}

/// A curriculum setting is out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct CurriculumError {
    /// The config key.
    pub key: &'static str,
    /// What is wrong.
    pub message: String,
}

/// Keys the curriculum draws apart from the backend seed of the same iteration.
const CURRICULUM_STREAM: u64 = 0x4355_5252_4943_554C;

impl HardSampleCurriculum {
    /// CNVid-3.5M's `change_iter` (`prj/cnvid_vtp/configs/univl/video/pretrain/base.yml`).
    pub const CNVID_CHANGE_ITER: u64 = 5000;
    /// CNVid-3.5M's `change_rate`.
    pub const CNVID_CHANGE_RATE: f64 = 0.15;

    /// A curriculum, its settings checked.
    pub fn new(change_iter: u64, change_rate: f64, seed: u64) -> Result<Self, CurriculumError> {
        if change_iter == 0 {
            return Err(CurriculumError {
                key: "model_attributes.univl.change_iter",
                message: "must be positive, got 0".into(),
            });
        }
        if !change_rate.is_finite() || change_rate < 0.0 {
            return Err(CurriculumError {
                key: "model_attributes.univl.change_rate",
                message: format!("must be a finite rate >= 0, got {change_rate}"),
            });
        }
        Ok(Self {
            change_iter,
            change_rate,
            seed,
        })
    }

    /// CNVid-3.5M's settings (5000, 0.15) with `seed`.
    pub fn cnvid(seed: u64) -> Self {
        Self {
            change_iter: Self::CNVID_CHANGE_ITER,
            change_rate: Self::CNVID_CHANGE_RATE,
            seed,
        }
    }

    /// The curriculum a model configuration asks for: `Some` when `hard_example_mining` is on
    /// and `change_iter` is set (AntMMF's condition), `None` otherwise.
    pub fn from_model_config(
        config: &antmmf_models::univl::UnivlConfig,
        seed: u64,
    ) -> Result<Option<Self>, CurriculumError> {
        match config.change_iter {
            Some(change_iter) if config.hard_example_mining => {
                Self::new(change_iter, config.change_rate, seed).map(Some)
            }
            Some(_) => {
                log::warn!(
                    "model_attributes.univl.change_iter is set but hard_example_mining is off: \
                     no hard-sample curriculum"
                );
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Probability that iteration `iteration` mines its L2 negatives:
    /// `min(floor(iteration / change_iter) * change_rate, 1)`.
    pub fn mining_probability(&self, iteration: u64) -> f64 {
        ((iteration / self.change_iter) as f64 * self.change_rate).min(1.0)
    }

    /// The uniform draw in `[0, 1)` of iteration `iteration`, a function of `(seed,
    /// iteration)` only.
    pub fn draw(&self, iteration: u64) -> f64 {
        let bits = crate::trainer::derive_seed(self.seed ^ CURRICULUM_STREAM, iteration);
        (bits >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether iteration `iteration` mines: `draw < mining_probability`.
    pub fn mines(&self, iteration: u64) -> bool {
        self.draw(iteration) < self.mining_probability(iteration)
    }
}

/// A head's forward and loss failed (shapes, missing batch fields, missing model parts).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{head}: {message}")]
pub struct TaskError {
    /// The head.
    pub head: &'static str,
    /// What went wrong.
    pub message: String,
}

/// Losses and scores of one batch.
#[derive(Debug, Clone)]
pub struct TaskForward<B: Backend> {
    /// Sum of the losses `[1]`.
    pub total: Tensor<B, 1>,
    /// Named losses, AntMMF's names.
    pub parts: Vec<(&'static str, Tensor<B, 1>)>,
    /// Scores for evaluation: QA logits `[B, labels]`, MC-QA option scores `[B, K]`.
    pub scores: Option<Tensor<B, 2>>,
    /// Batch metrics that are not losses (SNP-S3's `VWM_<stage>_r@1`, ...), logged beside the
    /// losses and averaged over validation batches as AntMMF does.
    pub metrics: Vec<(&'static str, f64)>,
}

fn err(head: TaskHead, message: impl fmt::Display) -> TaskError {
    TaskError {
        head: head.name(),
        message: message.to_string(),
    }
}

/// Rows of `x` (first dim) picked by `index` (`[n]`).
fn take<B: Backend, const D: usize, K>(
    x: Tensor<B, D, K>,
    index: Tensor<B, 1, Int>,
) -> Tensor<B, D, K>
where
    K: burn::tensor::TensorKind<B> + burn::tensor::BasicOps<B>,
{
    x.select(0, index)
}

/// The L2 score matrix `[B, B]` of the cross encoder: row `i` pairs text `i` with the videos
/// `order[i, :]` (its ground truth at column `i`).
#[allow(clippy::too_many_arguments)]
fn l2_matrix<B: Backend>(
    model: &Univl<B>,
    head: TaskHead,
    ids: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Int>,
    segments: Tensor<B, 2, Int>,
    clip_tokens: Tensor<B, 3>,
    clip_mask: Tensor<B, 2, Int>,
    order: Tensor<B, 2, Int>,
) -> Result<(Tensor<B, 2>, antmmf_models::univl::CrossOutput<B>), TaskError> {
    let [b, l] = ids.dims();
    let [_, c, h] = clip_tokens.dims();
    let rep = |t: Tensor<B, 2, Int>| t.unsqueeze_dim::<3>(1).repeat_dim(1, b).reshape([b * b, l]);
    let flat = order.reshape([b * b]);
    let videos = take(clip_tokens, flat.clone()).reshape([b * b, c, h]);
    let vmask = take(clip_mask, flat);
    let cross = model
        .cross(rep(ids), rep(mask), Some(rep(segments)), videos, vmask)
        .map_err(|e| err(head, e))?;
    let scores = model.l2_score(cross.pooled.clone()).reshape([b, b]);
    Ok((scores, cross))
}

/// The identity arrangement: row `i` lists videos `0..B` (ground truth on the diagonal).
fn all_pairs<B: Backend>(b: usize, device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::<B, 1, Int>::arange(0..b as i64, device)
        .reshape([1, b])
        .repeat_dim(0, b)
}

/// Stage 1 and stage 2 of retrieval (and of pretraining), returning the L2 cross output too.
#[allow(clippy::type_complexity)]
fn retrieval_losses<B: Backend>(
    model: &Univl<B>,
    s: &TaskSettings,
    batch: &VideoTextBatch<B>,
    text: antmmf_models::univl::TextOutput<B>,
    l2_ids: Tensor<B, 2, Int>,
    training: bool,
    metrics: &mut Vec<(&'static str, f64)>,
) -> Result<
    (
        Vec<(&'static str, Tensor<B, 1>)>,
        antmmf_models::univl::CrossOutput<B>,
        Tensor<B, 3>,
        Tensor<B, 2>,
    ),
    TaskError,
> {
    let head = s.head;
    let device = batch.video.device();
    let video = model
        .encode_video(batch.video.clone(), batch.clip_mask.clone())
        .map_err(|e| err(head, e))?;
    let b = batch.len();
    let mut parts = Vec::new();
    let clip_sim = Univl::<B>::l1_clip_similarity(
        text.l1.clone(),
        video.l1.clone(),
        Some(batch.clip_mask.clone()),
    );
    let l1 = reduce_clips(clip_sim.clone());
    if s.with_moco {
        let keys = model
            .moco_keys(
                batch.input_ids_unmasked.clone(),
                batch.input_mask.clone(),
                batch.video.clone(),
                batch.clip_mask.clone(),
            )
            .map_err(|e| err(head, e))?;
        let (tq, vq) = match (model.text_queue(), model.video_queue()) {
            (Some(t), Some(v)) => (t, v),
            _ => {
                return Err(err(
                    head,
                    "with_moco is set but the model has no MoCo queues",
                ));
            }
        };
        let [_, c, h] = video.l1.dims();
        let loss = moco_cross_modal_loss(
            MocoInputs {
                text_query: text.l1.clone(),
                clip_query: video.l1.clone().reshape([b * c, h]),
                text_keys: keys.text.clone(),
                clip_keys: keys.video.clone().reshape([b * c, h]),
                text_queue: tq,
                clip_queue: vq,
            },
            c,
            s.moco_temperature,
        )
        .map_err(|e| err(head, e))?;
        parts.push(("level1_similarity_loss", loss));
        if training {
            let (mut text_keys, mut clip_keys) = (keys.text, keys.video.reshape([b * c, h]));
            // Data parallelism: every node enqueues the keys of the whole global batch
            // (AntMMF's `concat_all_gather`), so the queues stay the same on every node.
            if let Some(g) = crate::distributed::row_gather() {
                text_keys = gather_rows(g.as_ref(), text_keys).map_err(|e| err(head, e))?;
                clip_keys = gather_rows(g.as_ref(), clip_keys).map_err(|e| err(head, e))?;
            }
            model
                .dequeue_and_enqueue(text_keys, clip_keys)
                .map_err(|e| err(head, e))?;
        }
    } else {
        // Data parallelism: the in-batch L1 loss sees the pairs of the whole global batch, as
        // AntMMF's AllGather: the other nodes' embeddings are constants, gradients flow through
        // this node's rows (each node's loss is the global batch's; the averaged gradient is
        // the global loss's divided by the node count, as with DDP in AntMMF).
        let sim = match crate::distributed::row_gather().filter(|_| training) {
            Some(g) => {
                let g = g.as_ref();
                let text_all = gather_rows(g, text.l1.clone()).map_err(|e| err(head, e))?;
                let video_all = gather_rows(g, video.l1.clone()).map_err(|e| err(head, e))?;
                let mask_all = gather_rows(g, batch.clip_mask.clone().float())
                    .map_err(|e| err(head, e))?
                    .int();
                Univl::<B>::l1_clip_similarity(text_all, video_all, Some(mask_all))
            }
            None => clip_sim.clone(),
        };
        let loss = l1_mil_nce_loss(sim.div_scalar(s.l1_temperature)).map_err(|e| err(head, e))?;
        parts.push(("level1_similarity_loss", loss));
    }
    if let Some(vwm) = &s.snps3.vwm {
        let seq = text.sequence.clone();
        let vwm = crate::snps3::vwm_losses(model, vwm, s.special_ids, batch, seq, video.l1.clone())
            .map_err(|e| err(head, e))?;
        parts.extend(vwm.parts);
        metrics.extend(vwm.metrics);
    }
    let mine = training
        && s.hard_example_mining
        && match &s.curriculum {
            None => true,
            Some(c) => {
                let it = batch.iteration.ok_or_else(|| {
                    err(
                        head,
                        "the hard-sample curriculum needs the batch's iteration (set by the \
                         training loader)",
                    )
                })?;
                if it > 0 && it.is_multiple_of(c.change_iter) {
                    log::info!(
                        "hard-sample curriculum: iteration {it}, mining probability {:.2}",
                        c.mining_probability(it)
                    );
                }
                c.mines(it)
            }
        };
    let order = if mine {
        let method = s
            .re_sample_method
            .parse::<ResampleMethod>()
            .map_err(|e| err(head, e))?;
        hard_negative_index_tensor(l1.clone().detach(), 0, b, method).map_err(|e| err(head, e))?
    } else {
        all_pairs::<B>(b, &device)
    };
    let (l2, cross) = l2_matrix(
        model,
        head,
        l2_ids,
        batch.input_mask.clone(),
        batch.segment_ids.clone(),
        video.clip_tokens.clone(),
        batch.clip_mask.clone(),
        order,
    )?;
    let weights =
        if training && s.hard_example_mining && s.re_weight_method.as_deref() == Some("median") {
            let eye = Tensor::<B, 2>::eye(b, &device);
            Some(median_reweight(
                (l1.clone().detach() * eye).sum_dim(1).reshape([b]),
            ))
        } else {
            None
        };
    let l2_loss = l2_mil_nce_loss(l2, weights).map_err(|e| err(head, e))?;
    parts.push(("level2_similarity_loss", l2_loss));
    Ok((parts, cross, video.clip_tokens, l1))
}

/// AntMMF's attention-guided masking: in each caption, `max(int(n * 0.15), 1)` of its `n`
/// non-special tokens are drawn without replacement with probability proportional to their
/// word importance (attention received in the text encoder) and replaced by `[MASK]`; the
/// labels are the original ids there and the ignore label elsewhere. The draws come from the
/// backend's generator (seeded per iteration by the training loop).
///
/// # Shapes
/// - `ids`: `[B, L]`, `importance`: `[B, L]`
/// - output: masked ids `[B, L]`, labels `[B, L]`
pub fn attentive_mask<B: Backend>(
    ids: &Tensor<B, 2, Int>,
    importance: Tensor<B, 2>,
    special: SpecialIds,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let [b, l] = ids.dims();
    let device = ids.device();
    let noise = Tensor::<B, 2>::random(
        [b, l],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        &device,
    );
    let ids_host: Vec<i64> = ids.clone().into_data().iter::<i64>().collect();
    let imp: Vec<f32> = importance.detach().into_data().iter::<f32>().collect();
    let u: Vec<f32> = noise.into_data().iter::<f32>().collect();
    let mut masked = ids_host.clone();
    let mut labels = vec![antmmf_data::text::IGNORE_LABEL; b * l];
    for row in 0..b {
        // Gumbel top-k on log-weights: k draws without replacement, proportional to weight.
        let mut keys: Vec<(f64, usize)> = (0..l)
            .filter(|&j| {
                let id = ids_host[row * l + j];
                id != 0 && id != special.cls && id != special.sep
            })
            .map(|j| {
                let w = f64::from(imp[row * l + j].max(0.0)) + 1e-6;
                let g = -(-(f64::from(u[row * l + j]).clamp(1e-12, 1.0 - 1e-12)).ln()).ln();
                (w.ln() + g, j)
            })
            .collect();
        if keys.is_empty() {
            continue;
        }
        let k = ((keys.len() as f64 * 0.15) as usize).max(1);
        keys.sort_by(|a, b| b.0.total_cmp(&a.0));
        for &(_, j) in keys.iter().take(k) {
            labels[row * l + j] = ids_host[row * l + j];
            masked[row * l + j] = special.mask;
        }
    }
    (
        Tensor::from_data(burn::tensor::TensorData::new(masked, [b, l]), &device),
        Tensor::from_data(burn::tensor::TensorData::new(labels, [b, l]), &device),
    )
}

/// A head's losses and scores on a batch (`training` turns on mining, MoCo queue updates).
pub fn task_forward<B: Backend>(
    model: &Univl<B>,
    s: &TaskSettings,
    batch: &VideoTextBatch<B>,
    training: bool,
) -> Result<TaskForward<B>, TaskError> {
    let head = s.head;
    let b = batch.len();
    if b == 0 {
        return Err(err(head, "empty batch"));
    }
    let device = batch.video.device();
    let mut metrics = Vec::new();
    let (parts, scores) = match head {
        TaskHead::Retrieval => {
            let text = model.encode_text(
                batch.input_ids_unmasked.clone(),
                batch.input_mask.clone(),
                Some(batch.segment_ids.clone()),
            );
            let (parts, _, _, _) = retrieval_losses(
                model,
                s,
                batch,
                text,
                batch.input_ids_unmasked.clone(),
                training,
                &mut metrics,
            )?;
            (parts, None)
        }
        TaskHead::Pretrain => {
            let attentive = training && s.attentive_mask_prob > 0.0 && {
                let draw = Tensor::<B, 1>::random(
                    [1],
                    burn::tensor::Distribution::Uniform(0.0, 1.0),
                    &device,
                );
                f64::from(draw.into_scalar().elem::<f32>()) < s.attentive_mask_prob
            };
            let (text, masked_ids, lm_labels) = if attentive {
                let (text, importance) = model.encode_text_with_importance(
                    batch.input_ids_unmasked.clone(),
                    batch.input_mask.clone(),
                    Some(batch.segment_ids.clone()),
                );
                let (ids, labels) =
                    attentive_mask(&batch.input_ids_unmasked, importance, s.special_ids);
                (text, ids, labels)
            } else {
                let text = model.encode_text(
                    batch.input_ids_unmasked.clone(),
                    batch.input_mask.clone(),
                    Some(batch.segment_ids.clone()),
                );
                (text, batch.input_ids.clone(), batch.lm_label_ids.clone())
            };
            // L2, MLM and the ITM positive use the masked caption.
            let (mut parts, cross, clip_tokens, _) = retrieval_losses(
                model,
                s,
                batch,
                text,
                masked_ids.clone(),
                training,
                &mut metrics,
            )?;
            // The positive pairs sit at flattened positions i * B + i.
            let diag = Tensor::<B, 1, Int>::arange(0..b as i64, &device).mul_scalar(b as i64 + 1);
            let pos_text = take(cross.text, diag.clone());
            let pos_pooled = take(cross.pooled, diag);
            let logits = model.mlm_logits(pos_text);
            let mlm =
                masked_cross_entropy(logits, lm_labels.clone(), antmmf_data::text::IGNORE_LABEL)
                    .map_err(|e| err(head, e))?;
            parts.push(("masked_lm_loss", mlm.loss));
            if s.snps3.text_encoder_mlm {
                let loss = crate::snps3::text_encoder_mlm_loss(model, batch, masked_ids, lm_labels);
                parts.push((
                    "masked_lm_text_encoder_loss",
                    loss.map_err(|e| err(head, e))?,
                ));
            }
            if let (Some(fids), Some(fmask), Some(fseg)) = (
                batch.false_input_ids.clone(),
                batch.false_input_mask.clone(),
                batch.false_segment_ids.clone(),
            ) {
                let neg = model
                    .cross(
                        fids,
                        fmask,
                        Some(fseg),
                        clip_tokens,
                        batch.clip_mask.clone(),
                    )
                    .map_err(|e| err(head, e))?;
                let itm = model.itm_logits(Tensor::cat(vec![pos_pooled, neg.pooled], 0));
                let labels = Tensor::cat(
                    vec![
                        Tensor::<B, 1, Int>::ones([b], &device),
                        Tensor::<B, 1, Int>::zeros([b], &device),
                    ],
                    0,
                );
                let loss = cross_entropy(itm, labels).map_err(|e| err(head, e))?;
                parts.push(("itm_loss", loss));
            }
            (parts, None)
        }
        TaskHead::Classification => {
            let video = model
                .encode_video(batch.video.clone(), batch.clip_mask.clone())
                .map_err(|e| err(head, e))?;
            let cross = model
                .cross(
                    batch.input_ids_unmasked.clone(),
                    batch.input_mask.clone(),
                    Some(batch.segment_ids.clone()),
                    video.clip_tokens,
                    batch.clip_mask.clone(),
                )
                .map_err(|e| err(head, e))?;
            let logits = model.classify(cross.pooled).map_err(|e| err(head, e))?;
            let loss = if s.multi_label {
                let targets = batch
                    .multi_labels
                    .clone()
                    .ok_or_else(|| err(head, "the batch has no multi-label targets"))?;
                bce_with_logits(logits.clone(), targets).map_err(|e| err(head, e))?
            } else {
                let labels = batch
                    .labels
                    .clone()
                    .ok_or_else(|| err(head, "the batch has no labels"))?;
                cross_entropy(logits.clone(), labels).map_err(|e| err(head, e))?
            };
            (vec![("cross_entropy", loss)], Some(logits))
        }
        TaskHead::MultiChoice => {
            let (ids, mask, seg) = match (
                batch.option_ids.clone(),
                batch.option_mask.clone(),
                batch.option_segments.clone(),
            ) {
                (Some(i), Some(m), Some(s)) => (i, m, s),
                _ => return Err(err(head, "the batch has no options")),
            };
            let [_, k, l] = ids.dims();
            let video = model
                .encode_video(batch.video.clone(), batch.clip_mask.clone())
                .map_err(|e| err(head, e))?;
            let [_, c, h] = video.clip_tokens.dims();
            let clips = video
                .clip_tokens
                .unsqueeze_dim::<4>(1)
                .repeat_dim(1, k)
                .reshape([b * k, c, h]);
            let cmask = batch
                .clip_mask
                .clone()
                .unsqueeze_dim::<3>(1)
                .repeat_dim(1, k)
                .reshape([b * k, c]);
            let cross = model
                .cross(
                    ids.reshape([b * k, l]),
                    mask.reshape([b * k, l]),
                    Some(seg.reshape([b * k, l])),
                    clips,
                    cmask,
                )
                .map_err(|e| err(head, e))?;
            let scores = model.l2_score(cross.pooled).reshape([b, k]);
            let answers = batch
                .answers
                .clone()
                .ok_or_else(|| err(head, "the batch has no answers"))?;
            let out = multiple_choice_loss(scores.clone(), answers).map_err(|e| err(head, e))?;
            (vec![("cross_entropy", out.loss)], Some(scores))
        }
    };
    let mut total = Tensor::<B, 1>::zeros([1], &device);
    for (_, p) in &parts {
        total = total + p.clone();
    }
    Ok(TaskForward {
        total,
        parts,
        scores,
        metrics,
    })
}

/// A UniVL model with its head settings: the module burn-train trains.
#[derive(Module, Debug)]
pub struct UnivlTask<B: Backend> {
    /// The model.
    pub univl: Univl<B>,
    /// The head and loss settings.
    #[module(skip)]
    pub settings: TaskSettings,
}

/// A train or inference step's output: the synced loss values.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutput {
    /// Total loss.
    pub total: f64,
    /// Named losses, then the batch metrics that are not losses ([`TaskForward::metrics`]).
    pub parts: Vec<(String, f64)>,
    /// Samples in the batch.
    pub batch_size: usize,
}

impl ItemLazy for StepOutput {
    type ItemSync = StepOutput;
    fn sync(self) -> StepOutput {
        self
    }
}

impl crate::trainer::LossReport for StepOutput {
    fn total_loss(&self) -> f64 {
        self.total
    }
    fn loss_parts(&self) -> Vec<(String, f64)> {
        self.parts.clone()
    }
}

/// What the training progress display (burn's TUI) shows of a step.
impl burn::train::metric::Adaptor<crate::progress::LossValues> for StepOutput {
    fn adapt(&self) -> crate::progress::LossValues {
        crate::progress::LossValues::of(self)
    }
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    t.into_scalar().elem::<f64>()
}

/// Synced values of a forward (one host read per loss).
pub fn step_output<B: Backend>(fwd: &TaskForward<B>, batch_size: usize) -> StepOutput {
    StepOutput {
        total: scalar(fwd.total.clone()),
        parts: fwd
            .parts
            .iter()
            .map(|(n, t)| (n.to_string(), scalar(t.clone())))
            .chain(fwd.metrics.iter().map(|(n, v)| (n.to_string(), *v)))
            .collect(),
        batch_size,
    }
}

impl<B: AutodiffBackend> TrainStep for UnivlTask<B> {
    type Input = VideoTextBatch<B>;
    type Output = StepOutput;

    fn step(&self, batch: VideoTextBatch<B>) -> TrainOutput<StepOutput> {
        let n = batch.len();
        match task_forward(&self.univl, &self.settings, &batch, true) {
            Ok(fwd) => {
                let out = step_output(&fwd, n);
                TrainOutput::new(self, fwd.total.backward(), out)
            }
            Err(e) => {
                // Reported as a non-finite loss named after the error, so the loop stops (or
                // skips) with the message instead of panicking.
                log::error!("{e}");
                let zero = Tensor::<B, 1>::zeros([1], &batch.video.device());
                TrainOutput::new(
                    self,
                    zero.backward(),
                    StepOutput {
                        total: f64::NAN,
                        parts: vec![(format!("{e}"), f64::NAN)],
                        batch_size: n,
                    },
                )
            }
        }
    }
}

impl<B: Backend> InferenceStep for UnivlTask<B> {
    type Input = VideoTextBatch<B>;
    type Output = StepOutput;

    fn step(&self, batch: VideoTextBatch<B>) -> StepOutput {
        let n = batch.len();
        match task_forward(&self.univl, &self.settings, &batch, false) {
            Ok(fwd) => step_output(&fwd, n),
            Err(e) => StepOutput {
                total: f64::NAN,
                parts: vec![(e.to_string(), f64::NAN)],
                batch_size: n,
            },
        }
    }
}

impl<B: AutodiffBackend> UnivlTask<B> {
    /// MoCo's momentum update of the key encoders (a no-op without MoCo).
    pub fn momentum_update(self) -> Self {
        if self.univl.moco.is_none() {
            return self;
        }
        let m = self.univl.momentum();
        Self {
            univl: self.univl.momentum_update(m),
            settings: self.settings,
        }
    }
}

/// `UnivlTask<B>`'s inference twin, for code that names it.
pub type InferenceTask<B> = <UnivlTask<B> as AutodiffModule<B>>::InnerModule;

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn curriculum_probability_at_cnvid_iterations() {
        let c = HardSampleCurriculum::cnvid(0);
        assert_eq!((c.change_iter, c.change_rate), (5000, 0.15));
        let p = |i| c.mining_probability(i);
        assert_eq!(p(0), 0.0);
        assert_eq!(p(4999), 0.0);
        assert_eq!(p(5000), 0.15);
        assert_eq!(p(9999), 0.15);
        assert_eq!(p(10000), 0.3);
        // floor(34999 / 5000) = 6 steps: 6 * 0.15 = 0.9 (0.8999999999999999 in f64).
        assert!((p(34999) - 0.9).abs() < 1e-12, "{}", p(34999));
        // 7 * 0.15 = 1.05, capped.
        assert_eq!(p(35000), 1.0);
        assert_eq!(p(100000), 1.0);
        // Never mines before the first rise, always once the probability is 1.
        assert!((0..5000).all(|i| !c.mines(i)));
        assert!((35000..36000).all(|i| c.mines(i)));
    }

    #[test]
    fn curriculum_draw_is_a_function_of_seed_and_iteration() {
        let a = HardSampleCurriculum::cnvid(7);
        let forward: Vec<f64> = (0..2000).map(|i| a.draw(i)).collect();
        // Another instance, drawing in reverse order (a resumed run, another device): the same.
        let b = HardSampleCurriculum::cnvid(7);
        let backward: Vec<f64> = (0..2000).rev().map(|i| b.draw(i)).collect();
        assert!(forward.iter().eq(backward.iter().rev()));
        assert!(forward.iter().all(|d| (0.0..1.0).contains(d)));
        // Another seed, another sequence; the settings do not enter the draw.
        let other = HardSampleCurriculum::cnvid(8);
        assert!((0..2000).filter(|&i| other.draw(i) == a.draw(i)).count() < 2);
        let slower = HardSampleCurriculum::new(100, 0.5, 7).expect("valid");
        assert!((0..2000).all(|i| slower.draw(i) == a.draw(i)));
        // The draws are uniform: the mining rate matches the probability (binomial, 5000
        // steps each, 4.5 standard deviations).
        for (range, p) in [
            (5000..10000, 0.15),
            (10000..15000, 0.3),
            (30000..35000, 0.9),
        ] {
            let n = range.clone().count() as f64;
            let rate = range.filter(|&i| a.mines(i)).count() as f64 / n;
            let sd = (p * (1.0 - p) / n).sqrt();
            assert!((rate - p).abs() < 4.5 * sd, "rate {rate} for {p}");
        }
    }

    #[test]
    fn curriculum_settings_are_checked_and_follow_antmmfs_condition() {
        let e = HardSampleCurriculum::new(0, 0.15, 0).expect_err("zero change_iter");
        assert_eq!(
            e.to_string(),
            "model_attributes.univl.change_iter: must be positive, got 0"
        );
        for bad in [-0.1, f64::NAN, f64::INFINITY] {
            let e = HardSampleCurriculum::new(5000, bad, 0).expect_err("bad change_rate");
            assert_eq!(e.key, "model_attributes.univl.change_rate", "{e}");
        }
        let mut config = antmmf_models::univl::UnivlConfig::default();
        assert_eq!(config.change_iter, None, "no curriculum by default");
        assert_eq!(
            HardSampleCurriculum::from_model_config(&config, 3),
            Ok(None)
        );
        config.change_iter = Some(5000);
        assert_eq!(
            HardSampleCurriculum::from_model_config(&config, 3),
            Ok(None),
            "mining is off"
        );
        config.hard_example_mining = true;
        assert_eq!(
            HardSampleCurriculum::from_model_config(&config, 3),
            Ok(Some(HardSampleCurriculum::cnvid(3)))
        );
        config.change_iter = Some(0);
        assert!(HardSampleCurriculum::from_model_config(&config, 3).is_err());
    }

    /// Four pairs of 6-token captions and 2-clip x 2-frame 16 px videos.
    fn retrieval_batch<Bk: Backend>(d: &Bk::Device, iteration: Option<u64>) -> VideoTextBatch<Bk> {
        let (b, l) = (4, 6);
        let rows: Vec<i64> = (0..b as i64)
            .flat_map(|r| [101, 5 + r, 20 + 3 * r, 40 + r, 60 + 2 * r, 102])
            .collect();
        let ids = Tensor::<Bk, 2, Int>::from_data(TensorData::new(rows, [b, l]), d);
        let video: Vec<f32> = (0..b * 4 * 3 * 16 * 16)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0)
            .collect();
        VideoTextBatch {
            video: Tensor::from_data(TensorData::new(video, [b, 4, 3, 16, 16]), d),
            clip_mask: Tensor::ones([b, 2], d),
            input_ids: ids.clone(),
            input_mask: Tensor::ones([b, l], d),
            segment_ids: Tensor::zeros([b, l], d),
            lm_label_ids: Tensor::full([b, l], -1, d),
            input_ids_unmasked: ids,
            false_input_ids: None,
            false_input_mask: None,
            false_segment_ids: None,
            labels: None,
            multi_labels: None,
            option_ids: None,
            option_mask: None,
            option_segments: None,
            answers: None,
            n_clips: 2,
            num_frm: 2,
            indices: (0..b).collect(),
            text_ids: (0..b).collect(),
            video_ids: (0..b).collect(),
            qids: Vec::new(),
            clip_names: (0..b).map(|i| format!("v{i}")).collect(),
            iteration,
        }
    }

    #[test]
    fn curriculum_switches_l2_between_mined_and_all_pair_negatives() {
        let d = Default::default();
        <Flex as Backend>::seed(&d, 11);
        let model = antmmf_models::univl::UnivlConfig::small(32, 2, 4, 120)
            .init::<Flex>(&d)
            .expect("tiny model");
        let l2 = |s: &TaskSettings, iteration| -> Result<f64, TaskError> {
            let fwd = task_forward(&model, s, &retrieval_batch::<Flex>(&d, iteration), true)?;
            let (_, t) = fwd
                .parts
                .iter()
                .find(|(n, _)| *n == "level2_similarity_loss")
                .expect("L2 loss");
            Ok(scalar(t.clone()))
        };
        let mining = TaskSettings {
            hard_example_mining: true,
            ..TaskSettings::default()
        };
        let all_pairs = TaskSettings {
            hard_example_mining: false,
            ..TaskSettings::default()
        };
        let mined = l2(&mining, None).expect("mined");
        let plain = l2(&all_pairs, None).expect("all pairs");
        // The untrained scorer is nearly flat, so the two losses differ only in their last
        // digits; both paths are deterministic, so bitwise equality tells them apart.
        assert_ne!(mined, plain);
        let c = HardSampleCurriculum::cnvid(5);
        let curriculum = TaskSettings {
            curriculum: Some(c),
            ..mining.clone()
        };
        // Probability 0 before iteration 5000, 1 from 35000; a draw decides in between.
        assert_eq!(l2(&curriculum, Some(1)).expect("early"), plain);
        assert_eq!(l2(&curriculum, Some(4999)).expect("early"), plain);
        assert_eq!(l2(&curriculum, Some(35000)).expect("late"), mined);
        let (hit, miss) = (
            (5000..10000)
                .find(|&i| c.mines(i))
                .expect("some step mines"),
            (5000..10000)
                .find(|&i| !c.mines(i))
                .expect("some step does not"),
        );
        assert_eq!(l2(&curriculum, Some(hit)).expect("mines"), mined);
        assert_eq!(l2(&curriculum, Some(miss)).expect("does not"), plain);
        // Evaluation never mines; a training batch without its iteration is an error.
        let eval = task_forward(
            &model,
            &curriculum,
            &retrieval_batch::<Flex>(&d, None),
            false,
        );
        assert!(eval.is_ok());
        let e = l2(&curriculum, None).expect_err("no iteration");
        assert!(e.to_string().contains("needs the batch's iteration"), "{e}");
    }

    #[test]
    fn attentive_mask_draws_15_percent_of_real_tokens_by_importance() {
        let d = Default::default();
        <Flex as Backend>::seed(&d, 5);
        // Row 0: [CLS] 8 words [SEP] pad pad -> max(int(8 * 0.15), 1) = 1 masked token;
        // row 1: [CLS] 20 words [SEP] -> 3 masked tokens.
        let mut ids = vec![0i64; 2 * 22];
        ids[0] = 101;
        for (j, id) in ids.iter_mut().enumerate().take(9).skip(1) {
            *id = 1000 + j as i64;
        }
        ids[9] = 102;
        ids[22] = 101;
        for (j, id) in ids[22..].iter_mut().enumerate().take(21).skip(1) {
            *id = 2000 + j as i64;
        }
        ids[22 + 21] = 102;
        let ids_t = Tensor::<Flex, 2, Int>::from_data(TensorData::new(ids.clone(), [2, 22]), &d);
        // All importance on token 4 of row 0: it is always the one drawn.
        let mut imp = vec![0.0f32; 44];
        imp[4] = 50.0;
        for j in 1..21 {
            imp[22 + j] = 1.0;
        }
        let imp_t = Tensor::<Flex, 2>::from_data(TensorData::new(imp, [2, 22]), &d);
        for _ in 0..20 {
            let (m, l) = attentive_mask(&ids_t, imp_t.clone(), SpecialIds::default());
            let m: Vec<i64> = m.into_data().iter::<i64>().collect();
            let l: Vec<i64> = l.into_data().iter::<i64>().collect();
            let masked0: Vec<usize> = (0..22).filter(|&j| m[j] == 103).collect();
            assert_eq!(masked0, vec![4]);
            assert_eq!(l[4], ids[4]);
            let masked1 = (0..22).filter(|&j| m[22 + j] == 103).count();
            assert_eq!(masked1, 3);
            for j in 0..44 {
                let special = ids[j] == 0 || ids[j] == 101 || ids[j] == 102;
                if special {
                    assert_eq!(m[j], ids[j]);
                    assert_eq!(l[j], -1);
                }
                assert_eq!(l[j] != -1, m[j] == 103 && ids[j] != 103);
            }
        }
    }
}
