//! Evaluation of a UniVL model on a split, the way AntMMF's `run_type val/inference/predict`
//! reports it, plus feature extraction: one skeleton for the three fine-tuning tasks and
//! pretraining.
//!
//! - Retrieval: every text and every distinct video is encoded once (batched, file order), the L1
//!   matrix scores all pairs, the cross encoder (L2) re-ranks all pairs or each text's L1 top-k;
//!   recall in both directions under AntMMF's keys (`test/l1_simi_t2v-r@1`, ...). Several captions
//!   may share a video; multi-clip ensembles (`test_ensembel_n_clips`) come from the dataset.
//! - Open QA: accuracy, top-5 accuracy, per-label counts. MC-QA: accuracy over the option scores
//!   of `similarity_dense` (so a retrieval checkpoint answers zero-shot).
//! - Pretraining: the validation losses.
//!
//! [`Evaluator::evaluate_detailed`] also returns one prediction record per query (retrieval:
//! each text's top-10 videos; QA: the predicted label with its top-5 probabilities; MC-QA: the
//! chosen option and every option's score), which [`evaluate_run`] writes to
//! `predictions.jsonl` beside `metrics.json`.
//!
//! Differences from AntMMF, on purpose: items without a target are predicted but left out of
//! accuracy (AntMMF counts them against class 0); the evaluation order is always file order.

use crate::metrics::{
    L1_SIMILARITY_KEY, L2_SIMILARITY_KEY, ScoreMatrix, evaluate_retrieval, per_label_counts,
};
use crate::run::{RunError, RunPlan, build_model};
use crate::univl_task::{TaskHead, TaskSettings, step_output, task_forward};
use antmmf_core::fsutil::write_atomic;
use antmmf_data::dataset::{VideoTextDataset, sample_rng};
use antmmf_data::dataset_config::{PathList, Split};
use antmmf_data::loader::{DeterministicLoader, LoaderConfig};
use antmmf_models::univl::Univl;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Metrics of one evaluation, keyed as AntMMF logs them.
pub type Metrics = BTreeMap<String, f64>;

/// Videos listed per text in retrieval predictions.
pub const RETRIEVAL_PREDICTION_TOP: usize = 10;
/// Labels listed per question in open-QA predictions.
pub const QA_PREDICTION_TOP: usize = 5;
/// (text, video) pairs per cross-encoder pass of the L2 re-ranking.
const L2_PAIRS_PER_PASS: usize = 64;

fn eval_err(e: impl std::fmt::Display) -> RunError {
    RunError::Eval(e.to_string())
}

/// The shared evaluation of the fine-tuning tasks and pretraining.
pub struct Evaluator<B: Backend> {
    /// The batches (file order).
    pub loader: DeterministicLoader<B>,
    /// The head settings.
    pub task: TaskSettings,
    /// Metric prefix (`val`, `test`).
    pub split: String,
    /// Re-rank each text's top-k L1 videos with the cross encoder (`None`: every pair).
    pub l2_topk: Option<usize>,
    /// Devices the L2 pair list is split across (contiguous parts, gathered in order); empty or
    /// one: the batches' device only.
    pub devices: Vec<B::Device>,
}

/// What the predictions may name beyond the batches: the dataset (captions and keys of
/// retrieval texts) and the class names of open QA.
#[derive(Default)]
pub struct PredictionContext<'a> {
    /// The evaluated dataset.
    pub dataset: Option<&'a VideoTextDataset>,
    /// Class names by index (the dataset's `labels`), empty when unnamed.
    pub labels: &'a [String],
}

/// L1 embeddings gathered by a retrieval evaluation (host, row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalEmbeddings {
    /// One id per text row: `retrieval_key`, else `sen_id`, else the line index.
    pub text_ids: Vec<String>,
    /// `[texts, hidden]`.
    pub text_l1: Vec<f32>,
    /// One `clip_name` per video, in order of first appearance.
    pub video_ids: Vec<String>,
    /// `[videos, clips, hidden]`.
    pub video_l1: Vec<f32>,
    /// `[videos, clips]`, 1 = real clip.
    pub clip_mask: Vec<i64>,
    /// Hidden size.
    pub hidden: usize,
    /// Clips per video.
    pub clips: usize,
}

/// Everything one evaluation produced.
#[derive(Debug, Clone, Default)]
pub struct EvalOutput {
    /// The metrics, AntMMF's keys.
    pub metrics: Metrics,
    /// One record per query, in file order.
    pub predictions: Vec<Json>,
    /// Further summaries for `metrics.json` (open QA: `per_label`).
    pub extra: serde_json::Map<String, Json>,
    /// Retrieval's L1 embeddings.
    pub embeddings: Option<RetrievalEmbeddings>,
}

struct RetrievalPool<B: Backend> {
    text_l1: Vec<Tensor<B, 2>>,
    text_ids: Vec<Tensor<B, 2, Int>>,
    text_mask: Vec<Tensor<B, 2, Int>>,
    text_segments: Vec<Tensor<B, 2, Int>>,
    text_video: Vec<usize>,
    text_rows: Vec<usize>,
    video_l1: Vec<Tensor<B, 3>>,
    video_tokens: Vec<Tensor<B, 3>>,
    video_mask: Vec<Tensor<B, 2, Int>>,
    video_index: BTreeMap<usize, usize>,
    video_names: Vec<String>,
}

/// Row indices `rows` as an index tensor.
fn index_tensor<B: Backend>(rows: &[usize], device: &B::Device) -> Tensor<B, 1, Int> {
    let v: Vec<i64> = rows.iter().map(|r| *r as i64).collect();
    Tensor::from_data(TensorData::new(v, [rows.len()]), device)
}

fn host_f32<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

fn host_i64<B: Backend, const D: usize>(t: Tensor<B, D, Int>) -> Vec<i64> {
    t.into_data().iter::<i64>().collect()
}

/// Columns of `row` by descending score, ties to the lower index; the first `k`.
fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|a, b| row[*b].total_cmp(&row[*a]).then(a.cmp(b)));
    order.truncate(k);
    order
}

/// The L2 score matrix of a top-k re-ranking: each scored `(text, video)` pair gets its cross
/// encoder score, every other pair its L1 score shifted below the lowest L2 score, so unscored
/// videos keep their L1 order under every re-ranked one. The shift is as small as that allows
/// (a constant such as 1e6 would round the L1 scores in f32 and tie them). Also returns which
/// pairs were scored.
fn rerank_scores(
    l1: &[f32],
    videos: usize,
    pairs: &[(usize, usize)],
    scores: &[f32],
) -> (Vec<f32>, Vec<bool>) {
    let l1_max = l1
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    let l2_min = scores
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f32::INFINITY, f32::min);
    let shift = if l1_max.is_finite() && l2_min.is_finite() {
        (l1_max - l2_min).max(0.0) + 1.0
    } else {
        1.0
    };
    let mut out: Vec<f32> = l1.iter().map(|v| v - shift).collect();
    let mut scored = vec![false; l1.len()];
    for (&(t, v), &s) in pairs.iter().zip(scores) {
        out[t * videos + v] = s;
        scored[t * videos + v] = true;
    }
    (out, scored)
}

fn softmax(row: &[f32]) -> Vec<f64> {
    let m = row
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = row.iter().map(|v| ((v - m) as f64).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

fn label_name(labels: &[String], c: usize) -> Json {
    match labels.get(c) {
        Some(n) => json!(n),
        None => json!(c),
    }
}

impl<B: Backend> Evaluator<B> {
    /// Runs the evaluation of `model` over every batch.
    pub fn evaluate(&self, model: &Univl<B>) -> Result<Metrics, RunError> {
        Ok(self
            .evaluate_detailed(model, &PredictionContext::default())?
            .metrics)
    }

    /// The evaluation with its predictions (and retrieval's embeddings).
    pub fn evaluate_detailed(
        &self,
        model: &Univl<B>,
        ctx: &PredictionContext<'_>,
    ) -> Result<EvalOutput, RunError> {
        match self.task.head {
            TaskHead::Retrieval => self.retrieval(model, ctx),
            TaskHead::Classification | TaskHead::MultiChoice => self.accuracy(model, ctx),
            TaskHead::Pretrain => Ok(EvalOutput {
                metrics: self.losses(model)?,
                ..EvalOutput::default()
            }),
        }
    }

    fn losses(&self, model: &Univl<B>) -> Result<Metrics, RunError> {
        let mut sums: BTreeMap<String, f64> = BTreeMap::new();
        let mut n = 0.0;
        for batch in self.loader.iter_from(0, 0) {
            let fwd = task_forward(model, &self.task, &batch, false).map_err(eval_err)?;
            let out = step_output(&fwd, batch.len());
            *sums.entry("total_loss".into()).or_default() += out.total;
            for (k, v) in out.parts {
                *sums.entry(k).or_default() += v;
            }
            n += 1.0;
        }
        if n == 0.0 {
            return Err(eval_err("the evaluation split produced no batch"));
        }
        Ok(sums
            .into_iter()
            .map(|(k, v)| (format!("{}/{k}", self.split), v / n))
            .collect())
    }

    fn accuracy(
        &self,
        model: &Univl<B>,
        ctx: &PredictionContext<'_>,
    ) -> Result<EvalOutput, RunError> {
        let mc = self.task.head == TaskHead::MultiChoice;
        let mut scores: Vec<f32> = Vec::new();
        let mut targets: Vec<i64> = Vec::new();
        let mut rows: Vec<(usize, String, String)> = Vec::new();
        let mut classes = 0;
        let mut loss = 0.0;
        let mut batches = 0.0;
        for batch in self.loader.iter_from(0, 0) {
            let target = if mc {
                batch.answers.clone()
            } else {
                batch.labels.clone()
            }
            .ok_or_else(|| eval_err("the batches carry no targets"))?;
            let fwd = task_forward(model, &self.task, &batch, false).map_err(eval_err)?;
            loss += step_output(&fwd, batch.len()).total;
            batches += 1.0;
            let s = fwd
                .scores
                .ok_or_else(|| eval_err("the head produced no scores"))?;
            classes = s.dims()[1];
            let mut s = host_f32(s);
            // MC-QA: padding options (questions with fewer options) never win.
            if mc && let Some(m) = batch.option_mask.clone() {
                let [b, k, _] = m.dims();
                let present = host_i64(m.sum_dim(2).reshape([b, k]));
                for (v, n) in s.iter_mut().zip(present) {
                    if n == 0 {
                        *v = f32::NEG_INFINITY;
                    }
                }
            }
            scores.extend(s);
            targets.extend(host_i64(target));
            for (r, index) in batch.indices.iter().enumerate() {
                rows.push((
                    *index,
                    batch.clip_names.get(r).cloned().unwrap_or_default(),
                    batch.qids.get(r).cloned().unwrap_or_default(),
                ));
            }
        }
        if targets.is_empty() {
            return Err(eval_err("the evaluation split produced no batch"));
        }
        let p = &self.split;
        let mut out = EvalOutput::default();
        // Only items with a target count (AntMMF would score a missing one as class 0).
        let (mut kept_scores, mut kept_targets) = (Vec::new(), Vec::new());
        for (r, t) in targets.iter().enumerate() {
            if *t >= 0 {
                kept_scores.extend_from_slice(&scores[r * classes..(r + 1) * classes]);
                kept_targets.push(*t as usize);
            }
        }
        if !kept_targets.is_empty() {
            let acc =
                crate::metrics::accuracy(&kept_scores, classes, &kept_targets).map_err(eval_err)?;
            out.metrics.insert(format!("{p}/accuracy"), acc);
            out.metrics
                .insert(format!("{p}/total_loss"), loss / batches);
            if !mc && classes >= QA_PREDICTION_TOP {
                let top5 = crate::metrics::top_k_accuracy(
                    &kept_scores,
                    classes,
                    &kept_targets,
                    QA_PREDICTION_TOP,
                )
                .map_err(eval_err)?;
                out.metrics.insert(format!("{p}/top5_accuracy"), top5);
            }
            if !mc {
                let counts =
                    per_label_counts(&kept_scores, classes, &kept_targets).map_err(eval_err)?;
                let mut per = serde_json::Map::new();
                for c in 0..classes {
                    if counts.total[c] + counts.predicted[c] == 0 {
                        continue;
                    }
                    let name = labels_key(ctx.labels, c);
                    per.insert(
                        name,
                        json!({"total": counts.total[c], "correct": counts.correct[c], "predicted": counts.predicted[c]}),
                    );
                }
                out.extra.insert("per_label".into(), Json::Object(per));
            }
        } else {
            log::warn!("no item of the {p} split has a target: predictions only");
        }
        for (r, (index, clip, qid)) in rows.into_iter().enumerate() {
            let row = &scores[r * classes..(r + 1) * classes];
            let best = top_k(row, 1)[0];
            let target = (targets[r] >= 0).then_some(targets[r] as usize);
            let record = if mc {
                json!({
                    "index": index,
                    "qid": qid,
                    "clip_name": clip,
                    "prediction": best,
                    "option_scores": row,
                    "answer": target,
                    "correct": target.map(|t| t == best),
                })
            } else {
                let probs = softmax(row);
                let top: Vec<Json> = top_k(row, QA_PREDICTION_TOP)
                    .into_iter()
                    .map(|c| json!({"label": label_name(ctx.labels, c), "probability": probs[c]}))
                    .collect();
                json!({
                    "index": index,
                    "clip_name": clip,
                    "prediction": label_name(ctx.labels, best),
                    "top5": top,
                    "target": target.map(|t| label_name(ctx.labels, t)),
                    "correct": target.map(|t| t == best),
                })
            };
            out.predictions.push(record);
        }
        Ok(out)
    }

    fn retrieval(
        &self,
        model: &Univl<B>,
        ctx: &PredictionContext<'_>,
    ) -> Result<EvalOutput, RunError> {
        let mut pool = RetrievalPool::<B> {
            text_l1: Vec::new(),
            text_ids: Vec::new(),
            text_mask: Vec::new(),
            text_segments: Vec::new(),
            text_video: Vec::new(),
            text_rows: Vec::new(),
            video_l1: Vec::new(),
            video_tokens: Vec::new(),
            video_mask: Vec::new(),
            video_index: BTreeMap::new(),
            video_names: Vec::new(),
        };
        for batch in self.loader.iter_from(0, 0) {
            let text = model.encode_text(
                batch.input_ids_unmasked.clone(),
                batch.input_mask.clone(),
                Some(batch.segment_ids.clone()),
            );
            pool.text_l1.push(text.l1);
            pool.text_ids.push(batch.input_ids_unmasked.clone());
            pool.text_mask.push(batch.input_mask.clone());
            pool.text_segments.push(batch.segment_ids.clone());
            pool.text_rows.extend(batch.indices.iter().copied());
            if batch.video_ids.len() != batch.len() {
                return Err(eval_err("the retrieval batches carry no video ids"));
            }
            // Each distinct video is encoded once: keep the batch rows of unseen videos.
            let mut fresh: Vec<usize> = Vec::new();
            for (row, vid) in batch.video_ids.iter().enumerate() {
                if !pool.video_index.contains_key(vid) {
                    let n = pool.video_index.len();
                    pool.video_index.insert(*vid, n);
                    pool.video_names
                        .push(batch.clip_names.get(row).cloned().unwrap_or_default());
                    fresh.push(row);
                }
                pool.text_video.push(pool.video_index[vid]);
            }
            if !fresh.is_empty() {
                let rows = index_tensor::<B>(&fresh, &batch.video.device());
                let video = batch.video.clone().select(0, rows.clone());
                let cmask = batch.clip_mask.clone().select(0, rows);
                let out = model.encode_video(video, cmask.clone()).map_err(eval_err)?;
                pool.video_l1.push(out.l1);
                pool.video_tokens.push(out.clip_tokens);
                pool.video_mask.push(cmask);
            }
        }
        if pool.text_l1.is_empty() {
            return Err(eval_err("the evaluation split produced no batch"));
        }
        let text_l1 = Tensor::cat(pool.text_l1, 0);
        let video_l1 = Tensor::cat(pool.video_l1, 0);
        let clip_mask = Tensor::cat(pool.video_mask, 0);
        let tokens = Tensor::cat(pool.video_tokens, 0);
        let ids = Tensor::cat(pool.text_ids, 0);
        let mask = Tensor::cat(pool.text_mask, 0);
        let segments = Tensor::cat(pool.text_segments, 0);
        let [nt, hidden] = text_l1.dims();
        let [nv, clips, _] = video_l1.dims();
        let embeddings = RetrievalEmbeddings {
            text_ids: pool
                .text_rows
                .iter()
                .map(|i| text_key(ctx.dataset, *i))
                .collect(),
            text_l1: host_f32(text_l1.clone()),
            video_ids: pool.video_names.clone(),
            video_l1: host_f32(video_l1.clone()),
            clip_mask: host_i64(clip_mask.clone()),
            hidden,
            clips,
        };
        let l1 = Univl::<B>::l1_similarity(text_l1, video_l1, Some(clip_mask.clone()));
        let l1_host = host_f32(l1);
        let gt = pool.text_video;
        let mut metrics = Metrics::new();
        let l1_report =
            evaluate_retrieval(&ScoreMatrix::new(&l1_host, nt, nv).map_err(eval_err)?, &gt)
                .map_err(eval_err)?;
        metrics.extend(l1_report.named(&self.split, L1_SIMILARITY_KEY));
        // L2: the cross encoder on each text's top-k L1 videos (or every pair); videos outside
        // the top-k keep their L1 order below every re-ranked one.
        let k = self.l2_topk.map(|k| k.min(nv)).unwrap_or(nv).max(1);
        let mut pairs: Vec<(usize, usize)> = Vec::with_capacity(nt * k);
        for t in 0..nt {
            for v in top_k(&l1_host[t * nv..(t + 1) * nv], k) {
                pairs.push((t, v));
            }
        }
        let inputs = PairInputs {
            ids,
            mask,
            segments,
            tokens,
            clip_mask,
        };
        let scores = score_pairs_on_devices(model, &inputs, &pairs, &self.devices)?;
        let (l2_host, scored) = rerank_scores(&l1_host, nv, &pairs, &scores);
        let l2_report =
            evaluate_retrieval(&ScoreMatrix::new(&l2_host, nt, nv).map_err(eval_err)?, &gt)
                .map_err(eval_err)?;
        metrics.extend(l2_report.named(&self.split, L2_SIMILARITY_KEY));
        let mut predictions = Vec::with_capacity(nt);
        for t in 0..nt {
            let row = &l2_host[t * nv..(t + 1) * nv];
            let top: Vec<Json> = top_k(row, RETRIEVAL_PREDICTION_TOP)
                .into_iter()
                .map(|v| {
                    json!({
                        "clip_name": pool.video_names[v],
                        "l2_score": scored[t * nv + v].then_some(row[v]),
                        "l1_score": l1_host[t * nv + v],
                    })
                })
                .collect();
            let index = pool.text_rows[t];
            let caption = ctx
                .dataset
                .and_then(|d| d.retrieval())
                .and_then(|r| r.items().get(index))
                .map(|i| i.caption.clone());
            predictions.push(json!({
                "index": index,
                "text_id": embeddings.text_ids[t],
                "caption": caption,
                "clip_name": pool.video_names[gt[t]],
                "l1_rank": l1_report.t2v_ranks[t],
                "l2_rank": l2_report.t2v_ranks[t],
                "top10": top,
            }));
        }
        Ok(EvalOutput {
            metrics,
            predictions,
            extra: serde_json::Map::new(),
            embeddings: Some(embeddings),
        })
    }
}

/// What the cross encoder reads for a (text, video) pair: every text's tokens and every video's
/// clip tokens, on one device.
#[derive(Clone)]
struct PairInputs<B: Backend> {
    ids: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Int>,
    segments: Tensor<B, 2, Int>,
    tokens: Tensor<B, 3>,
    clip_mask: Tensor<B, 2, Int>,
}

impl<B: Backend> PairInputs<B> {
    fn into_device(self, device: &B::Device) -> Self {
        Self {
            ids: self.ids.to_device(device),
            mask: self.mask.to_device(device),
            segments: self.segments.to_device(device),
            tokens: self.tokens.to_device(device),
            clip_mask: self.clip_mask.to_device(device),
        }
    }
}

/// The L2 score of each (text row, video row) pair, in `pairs` order, on the inputs' device.
fn score_pairs<B: Backend>(
    model: &Univl<B>,
    inputs: &PairInputs<B>,
    pairs: &[(usize, usize)],
) -> Result<Vec<f32>, RunError> {
    let device = inputs.ids.device();
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(L2_PAIRS_PER_PASS) {
        let ts: Vec<usize> = chunk.iter().map(|p| p.0).collect();
        let vs: Vec<usize> = chunk.iter().map(|p| p.1).collect();
        let tsel = index_tensor::<B>(&ts, &device);
        let vsel = index_tensor::<B>(&vs, &device);
        let cross = model
            .cross(
                inputs.ids.clone().select(0, tsel.clone()),
                inputs.mask.clone().select(0, tsel.clone()),
                Some(inputs.segments.clone().select(0, tsel)),
                inputs.tokens.clone().select(0, vsel.clone()),
                inputs.clip_mask.clone().select(0, vsel),
            )
            .map_err(eval_err)?;
        out.extend(host_f32(model.l2_score(cross.pooled)));
    }
    Ok(out)
}

/// [`score_pairs`] with the pair list split into one contiguous part per device, each scored by
/// a copy of the model on its device in its own thread, and the parts gathered in order. The
/// parts are cut at multiples of the pass size, so every pass sees the same pairs as on one
/// device.
fn score_pairs_on_devices<B: Backend>(
    model: &Univl<B>,
    inputs: &PairInputs<B>,
    pairs: &[(usize, usize)],
    devices: &[B::Device],
) -> Result<Vec<f32>, RunError> {
    if devices.len() <= 1 || pairs.len() <= L2_PAIRS_PER_PASS {
        return score_pairs(model, inputs, pairs);
    }
    let passes = pairs.len().div_ceil(L2_PAIRS_PER_PASS);
    let part = passes.div_ceil(devices.len()) * L2_PAIRS_PER_PASS;
    let parts: Vec<Result<Vec<f32>, RunError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pairs
            .chunks(part)
            .zip(devices)
            .map(|(chunk, device)| {
                let model = model.clone().to_device(device);
                let inputs = inputs.clone().into_device(device);
                scope.spawn(move || score_pairs(&model, &inputs, chunk))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(eval_err("an L2 scoring thread panicked")))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(pairs.len());
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

fn labels_key(labels: &[String], c: usize) -> String {
    labels.get(c).cloned().unwrap_or_else(|| c.to_string())
}

/// A retrieval text's id: `retrieval_key`, else `sen_id`, else its line index.
fn text_key(dataset: Option<&VideoTextDataset>, index: usize) -> String {
    dataset
        .and_then(|d| d.retrieval())
        .and_then(|r| r.items().get(index))
        .and_then(|i| i.key.clone())
        .unwrap_or_else(|| index.to_string())
}

// ---------------------------------------------------------------------------------------------
// antmmf-eval
// ---------------------------------------------------------------------------------------------

/// The task `antmmf-eval --task` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalTask {
    /// Text-video retrieval (`video_text_retrieval`).
    Retrieval,
    /// Open QA as classification (`video_text_classification`).
    Vqa,
    /// Multi-choice QA (`video_multi_choice_qa`).
    Mcqa,
}

impl EvalTask {
    /// Parses `retrieval`, `vqa` or `mcqa`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "retrieval" => Some(Self::Retrieval),
            "vqa" | "qa" => Some(Self::Vqa),
            "mcqa" | "mc-qa" => Some(Self::Mcqa),
            _ => None,
        }
    }

    /// The training head evaluating this task.
    pub fn head(self) -> TaskHead {
        match self {
            Self::Retrieval => TaskHead::Retrieval,
            Self::Vqa => TaskHead::Classification,
            Self::Mcqa => TaskHead::MultiChoice,
        }
    }

    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Retrieval => "retrieval",
            Self::Vqa => "vqa",
            Self::Mcqa => "mcqa",
        }
    }
}

/// The head key of the config.
pub const HEAD_KEY: &str = "model_attributes.univl.training_head_type";

/// Sets the config's head for `task`, or checks that a head the config sets agrees.
pub fn apply_task(config: &mut antmmf_core::Config, task: EvalTask) -> Result<(), RunError> {
    let wanted = task.head().name();
    if config.user_keys().contains(HEAD_KEY) {
        let set = config
            .get(HEAD_KEY)
            .and_then(serde_yaml_ng::Value::as_str)
            .unwrap_or_default()
            .to_string();
        if TaskHead::parse(&set) != Some(task.head()) {
            return Err(RunError::Invalid {
                key: HEAD_KEY.into(),
                message: format!(
                    "the config trains `{set}` but --task {} evaluates `{wanted}`: pass the matching --task or override {HEAD_KEY} {wanted}",
                    task.name()
                ),
            });
        }
        return Ok(());
    }
    config
        .set(HEAD_KEY, serde_yaml_ng::Value::String(wanted.into()))
        .map_err(RunError::Config)
}

/// Config keys antmmf-eval acts on beyond those of a training run.
pub const EVAL_ACTED_ON_KEYS: &[&str] = &[
    "training_parameters.report_format",
    "training_parameters.evalai_inference",
    "training_parameters.evalai_inference_file",
];

/// The checkpoint to evaluate: `--checkpoint`, else `training_parameters.resume_file`; neither
/// is an error unless `random_init` (then `None`).
pub fn resolve_checkpoint(
    flag: Option<&Path>,
    plan: &RunPlan,
    random_init: bool,
) -> Result<Option<PathBuf>, RunError> {
    if random_init {
        if flag.is_some() {
            return Err(RunError::Invalid {
                key: "--random-init".into(),
                message: "cannot be combined with --checkpoint".into(),
            });
        }
        return Ok(None);
    }
    match (flag, &plan.training.resume_file) {
        (Some(p), _) => Ok(Some(p.to_path_buf())),
        (None, Some(f)) if !f.is_empty() => Ok(Some(PathBuf::from(f))),
        _ => Err(RunError::Invalid {
            key: "training_parameters.resume_file".into(),
            message: "no checkpoint to evaluate: pass --checkpoint FILE or set training_parameters.resume_file (or --random-init to evaluate an untrained model)".into(),
        }),
    }
}

/// Settings of one `antmmf-eval` run.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The split to evaluate.
    pub split: Split,
    /// The checkpoint (`None`: the freshly built model).
    pub checkpoint: Option<PathBuf>,
    /// L2 re-ranking of each text's top-k L1 videos (`None`: every pair).
    pub l2_topk: Option<usize>,
    /// Output folder (`None`: `<run dir>/eval_<split>/`).
    pub out_dir: Option<PathBuf>,
    /// Also write retrieval's L1 embeddings (`embeddings.safetensors`).
    pub save_embeddings: bool,
}

/// What `evaluate_run` did.
#[derive(Debug, Clone)]
pub struct EvalReport {
    /// The output folder.
    pub out_dir: PathBuf,
    /// The metrics.
    pub metrics: Metrics,
    /// The summaries beside them.
    pub extra: serde_json::Map<String, Json>,
    /// Prediction records written.
    pub predictions: usize,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Seconds spent evaluating (model built and loaded).
    pub seconds: f64,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::Io(format!("{}: {e}", path.display()))
}

/// The dataset name's label list (open QA), empty when unnamed.
fn labels_of(plan: &RunPlan) -> Vec<String> {
    plan.dataset.labels.clone().unwrap_or_default()
}

/// Builds the model of `plan`, loads `checkpoint` into it when given: an antmmf-rs or an AntMMF
/// checkpoint, by name, with `pretrained_mapping` when `load_pretrained` (as AntMMF's
/// `load_model_weights`). A checkpoint that leaves any evaluated parameter (all but the MoCo key
/// encoders and queues) without a tensor of its shape is an error naming them: evaluating
/// partly random weights would report meaningless numbers.
pub fn load_model<B: Backend>(
    plan: &RunPlan,
    checkpoint: Option<&Path>,
    device: &B::Device,
) -> Result<Univl<B>, RunError> {
    let mut model = build_model::<B>(plan, device)?;
    match checkpoint {
        Some(path) => {
            let (loaded, report) =
                crate::run::load_resume_weights(model, path, &plan.training, device)?;
            let missing: Vec<&String> = report
                .load
                .missing
                .iter()
                .filter(|p| !p.starts_with("moco."))
                .collect();
            let mismatched: Vec<String> = report
                .load
                .shape_mismatched
                .iter()
                .map(|m| {
                    format!(
                        "{} {:?} in the checkpoint, {:?} here",
                        m.key, m.found, m.expected
                    )
                })
                .collect();
            if !missing.is_empty() || !mismatched.is_empty() {
                let first: Vec<String> = missing
                    .iter()
                    .take(5)
                    .map(|p| p.to_string())
                    .chain(mismatched.iter().take(5).cloned())
                    .collect();
                return Err(RunError::Invalid {
                    key: "--checkpoint".into(),
                    message: format!(
                        "{} does not fit this model config: {} parameter(s) have no tensor and {}                          have a different shape (e.g. {}); evaluate with the config it was trained with",
                        path.display(),
                        missing.len(),
                        mismatched.len(),
                        first.join(", ")
                    ),
                });
            }
            model = loaded;
            log::info!("loaded weights from {}", path.display());
        }
        None => log::warn!("no checkpoint: evaluating the freshly initialised model"),
    }
    Ok(model.univl)
}

/// Evaluates `plan`'s head on a split and writes `metrics.json`, `predictions.jsonl` (and, with
/// `evalai_inference`, AntMMF's report file in `report_format`) atomically.
///
/// Runs on `devices[0]`; retrieval's L2 pair list is split across all of `devices`.
pub fn evaluate_run<B: Backend>(
    plan: &RunPlan,
    options: &EvalOptions,
    devices: &[B::Device],
) -> Result<EvalReport, RunError> {
    let start = Instant::now();
    let device = devices
        .first()
        .ok_or_else(|| eval_err("no device to evaluate on"))?;
    let split_name = options.split.as_str();
    if !plan.has_split(options.split) {
        return Err(RunError::Invalid {
            key: format!(
                "{}.{}.annotations.{split_name}",
                crate::run::DATASETS_KEY,
                plan.dataset_name
            ),
            message: format!("the dataset has no {split_name} annotations to evaluate"),
        });
    }
    let dataset = Arc::new(plan.dataset(options.split)?);
    let t = &plan.training;
    let loader = DeterministicLoader::<B>::new(
        dataset.clone(),
        LoaderConfig::eval(
            t.eval_batch_size(),
            t.num_workers.max(0) as usize,
            plan.seed,
        ),
        device.clone(),
    )?;
    let model = load_model::<B>(plan, options.checkpoint.as_deref(), device)?;
    let evaluator = Evaluator {
        loader,
        task: plan.task.clone(),
        split: split_name.into(),
        l2_topk: options.l2_topk,
        devices: devices.to_vec(),
    };
    let labels = labels_of(plan);
    let out = evaluator.evaluate_detailed(
        &model,
        &PredictionContext {
            dataset: Some(&dataset),
            labels: &labels,
        },
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let skips = evaluator.loader.skip_report();
    if skips.count > 0 {
        log::warn!(
            "{} sample(s) could not be read and were skipped",
            skips.count
        );
    }
    let out_dir = options
        .out_dir
        .clone()
        .unwrap_or_else(|| plan.run_dir().root().join(format!("eval_{split_name}")));
    std::fs::create_dir_all(&out_dir).map_err(|e| io_err(&out_dir, e))?;
    let mut files = Vec::new();
    let mut summary = serde_json::Map::new();
    summary.insert("task".into(), json!(plan.task.head.name()));
    summary.insert("split".into(), json!(split_name));
    summary.insert(
        "checkpoint".into(),
        json!(options.checkpoint.as_ref().map(|p| p.display().to_string())),
    );
    if plan.task.head == TaskHead::Retrieval {
        summary.insert(
            "l2_topk".into(),
            options.l2_topk.map_or(json!("all"), |k| json!(k)),
        );
    }
    summary.insert("samples".into(), json!(out.predictions.len()));
    summary.insert("seconds".into(), json!(seconds));
    summary.insert("metrics".into(), json!(out.metrics));
    for (k, v) in &out.extra {
        summary.insert(k.clone(), v.clone());
    }
    let path = out_dir.join("metrics.json");
    let text =
        serde_json::to_string_pretty(&Json::Object(summary)).map_err(|e| io_err(&path, e))?;
    write_atomic(&path, text.as_bytes()).map_err(|e| io_err(&path, e))?;
    files.push(path);
    let path = out_dir.join("predictions.jsonl");
    let mut lines = String::new();
    for p in &out.predictions {
        lines.push_str(&p.to_string());
        lines.push('\n');
    }
    write_atomic(&path, lines.as_bytes()).map_err(|e| io_err(&path, e))?;
    files.push(path);
    if t.evalai_inference {
        let path = match &t.evalai_inference_file {
            Some(f) if !f.is_empty() => PathBuf::from(f),
            _ => out_dir.join(format!(
                "{}_{}.{}",
                plan.dataset_name,
                plan.task.head.name(),
                if t.report_format == "csv" {
                    "csv"
                } else {
                    "json"
                }
            )),
        };
        let bytes = if t.report_format == "csv" {
            predictions_csv(&out.predictions)
        } else {
            serde_json::to_string_pretty(&out.predictions)
                .map_err(|e| io_err(&path, e))?
                .into_bytes()
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        write_atomic(&path, &bytes).map_err(|e| io_err(&path, e))?;
        files.push(path);
    }
    if options.save_embeddings
        && let Some(e) = &out.embeddings
    {
        let path = out_dir.join("embeddings.safetensors");
        write_retrieval_embeddings(&path, e)?;
        files.push(path);
    }
    Ok(EvalReport {
        out_dir,
        metrics: out.metrics,
        extra: out.extra,
        predictions: out.predictions.len(),
        files,
        seconds,
    })
}

/// Prediction records as CSV (AntMMF's `report_format: csv`): the first record's keys are the
/// columns; nested values are written as JSON.
pub fn predictions_csv(records: &[Json]) -> Vec<u8> {
    let Some(Json::Object(first)) = records.first() else {
        return Vec::new();
    };
    let columns: Vec<&String> = first.keys().collect();
    let field = |v: Option<&Json>| -> String {
        let s = match v {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    };
    let mut out = columns
        .iter()
        .map(|c| field(Some(&json!(c))))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    for r in records {
        let line: Vec<String> = columns.iter().map(|c| field(r.get(c.as_str()))).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// The metrics as an aligned two-column table.
pub fn metrics_table(metrics: &Metrics) -> String {
    let w = metrics.keys().map(String::len).max().unwrap_or(6).max(6);
    let mut s = format!(
        "{:<w$}  {:>10}\n{}\n",
        "metric",
        "value",
        "-".repeat(w + 12)
    );
    for (k, v) in metrics {
        s.push_str(&format!("{k:<w$}  {v:>10.4}\n"));
    }
    s
}

// ---------------------------------------------------------------------------------------------
// antmmf-extract
// ---------------------------------------------------------------------------------------------

/// What `antmmf-extract` encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtractWhat {
    /// Captions: `[N, hidden]`.
    Text,
    /// Videos: `[N, clips, hidden]` (one row per clip of the test ensemble) and the clip mask.
    Video,
}

/// L1 embeddings of texts or videos (host, row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Text or video.
    pub what: ExtractWhat,
    /// One id per row.
    pub ids: Vec<String>,
    /// The embeddings.
    pub values: Vec<f32>,
    /// Their shape.
    pub shape: Vec<usize>,
    /// Videos: `[N, clips]`, 1 = real clip.
    pub clip_mask: Option<Vec<i64>>,
}

/// One input entry: its id and the caption (text) or `clip_name` (video).
fn read_extract_input(path: &Path, what: ExtractWhat) -> Result<Vec<(String, String)>, RunError> {
    let text = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
    let jsonl = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "json")
    );
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (id, content) = if jsonl {
            let v: Json = serde_json::from_str(line)
                .map_err(|e| io_err(path, format!("line {}: {e}", n + 1)))?;
            let field = match what {
                ExtractWhat::Text => "caption",
                ExtractWhat::Video => "clip_name",
            };
            let content = v
                .get(field)
                .and_then(Json::as_str)
                .ok_or_else(|| io_err(path, format!("line {}: no string `{field}`", n + 1)))?
                .to_string();
            let id = match what {
                ExtractWhat::Video => content.clone(),
                ExtractWhat::Text => ["retrieval_key", "sen_id"]
                    .iter()
                    .find_map(|k| match v.get(*k) {
                        Some(Json::String(s)) => Some(s.clone()),
                        Some(Json::Number(x)) => Some(x.to_string()),
                        _ => None,
                    })
                    .unwrap_or_else(|| out.len().to_string()),
            };
            (id, content)
        } else {
            let id = match what {
                ExtractWhat::Video => line.to_string(),
                ExtractWhat::Text => out.len().to_string(),
            };
            (id, line.to_string())
        };
        // Each distinct video once, in order of first appearance (as evaluation encodes them).
        if what == ExtractWhat::Video && !seen.insert(content.clone()) {
            continue;
        }
        out.push((id, content));
    }
    if out.is_empty() {
        return Err(io_err(path, "no entry to encode"));
    }
    Ok(out)
}

/// Encodes the captions or videos listed in `input` (`.jsonl` in AntMMF's retrieval format, or a
/// text file with one caption / `clip_name` per line) with the test split's processors, as
/// evaluation does; `progress(done, total)` after each batch.
///
/// Captions longer than `max_seq_length` with `random_truncate` are cut with the item's own
/// generator, which evaluation has advanced past the frame sampling: only such captions may be
/// cut elsewhere than in evaluation.
pub fn extract_embeddings<B: Backend>(
    plan: &RunPlan,
    model: &Univl<B>,
    what: ExtractWhat,
    input: &Path,
    batch_size: usize,
    device: &B::Device,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Embeddings, RunError> {
    let entries = read_extract_input(input, what)?;
    // A retrieval-format copy of the entries is the test split of a retrieval dataset, so the
    // caption processor and frame sampling are the ones evaluation uses.
    let tmp = std::env::temp_dir().join(format!(
        "antmmf-extract-{}-{}.jsonl",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let mut lines = String::new();
    for (_, content) in &entries {
        let (clip, caption) = match what {
            ExtractWhat::Text => ("-", content.as_str()),
            ExtractWhat::Video => (content.as_str(), ""),
        };
        lines.push_str(&json!({"clip_name": clip, "caption": caption}).to_string());
        lines.push('\n');
    }
    std::fs::write(&tmp, lines).map_err(|e| io_err(&tmp, e))?;
    let mut p = plan.clone();
    p.task.head = TaskHead::Retrieval;
    p.dataset.annotations.test = Some(PathList(vec![tmp.to_string_lossy().into_owned()]));
    let built = p.dataset(Split::Test);
    let _ = std::fs::remove_file(&tmp);
    let dataset = built?;
    let total = entries.len();
    let batch_size = batch_size.max(1);
    let ids: Vec<String> = entries.iter().map(|e| e.0.clone()).collect();
    match what {
        ExtractWhat::Text => {
            let cap = dataset.caption_processor();
            let mut values = Vec::new();
            let mut hidden = 0;
            for (b, chunk) in entries.chunks(batch_size).enumerate() {
                let encs: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, (_, text))| {
                        let mut rng = sample_rng(plan.seed, 0, (b * batch_size + i) as u64);
                        cap.process(text, &mut rng)
                    })
                    .collect();
                let l = encs
                    .iter()
                    .map(|e| e.input_ids_unmasked.len())
                    .max()
                    .unwrap_or(0);
                let field = |f: &dyn Fn(&antmmf_data::text::CaptionEncoding) -> &Vec<i64>| {
                    let mut v = Vec::with_capacity(encs.len() * l);
                    for e in &encs {
                        let r = f(e);
                        v.extend_from_slice(r);
                        v.extend(std::iter::repeat_n(0, l - r.len()));
                    }
                    Tensor::<B, 2, Int>::from_data(TensorData::new(v, [encs.len(), l]), device)
                };
                let out = model.encode_text(
                    field(&|e| &e.input_ids_unmasked),
                    field(&|e| &e.input_mask),
                    Some(field(&|e| &e.segment_ids)),
                );
                hidden = out.l1.dims()[1];
                values.extend(host_f32(out.l1));
                progress(((b + 1) * batch_size).min(total), total);
            }
            Ok(Embeddings {
                what,
                ids,
                values,
                shape: vec![total, hidden],
                clip_mask: None,
            })
        }
        ExtractWhat::Video => {
            let t = &plan.training;
            let loader = DeterministicLoader::<B>::new(
                Arc::new(dataset),
                LoaderConfig::eval(batch_size, t.num_workers.max(0) as usize, plan.seed),
                device.clone(),
            )?;
            let (mut values, mut masks) = (Vec::new(), Vec::new());
            let (mut done, mut clips, mut hidden) = (0, 0, 0);
            for batch in loader.iter_from(0, 0) {
                let out = model
                    .encode_video(batch.video.clone(), batch.clip_mask.clone())
                    .map_err(eval_err)?;
                [_, clips, hidden] = out.l1.dims();
                done += batch.len();
                values.extend(host_f32(out.l1));
                masks.extend(host_i64(batch.clip_mask));
                progress(done, total);
            }
            if done != total {
                return Err(eval_err(format!(
                    "{} of {total} videos could not be read",
                    total - done
                )));
            }
            Ok(Embeddings {
                what,
                ids,
                values,
                shape: vec![total, clips, hidden],
                clip_mask: Some(masks),
            })
        }
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64_bytes(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn safetensors_file(
    path: &Path,
    tensors: Vec<(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
    metadata: std::collections::HashMap<String, String>,
) -> Result<(), RunError> {
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (name.to_string(), v))
                .map_err(|e| io_err(path, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| io_err(path, e))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    }
    write_atomic(path, &bytes).map_err(|e| io_err(path, e))
}

fn write_retrieval_embeddings(path: &Path, e: &RetrievalEmbeddings) -> Result<(), RunError> {
    let nt = e.text_ids.len();
    let nv = e.video_ids.len();
    let meta = [
        ("text_ids".to_string(), json!(e.text_ids).to_string()),
        ("video_ids".to_string(), json!(e.video_ids).to_string()),
    ]
    .into_iter()
    .collect();
    safetensors_file(
        path,
        vec![
            (
                "text_l1",
                safetensors::Dtype::F32,
                vec![nt, e.hidden],
                f32_bytes(&e.text_l1),
            ),
            (
                "video_l1",
                safetensors::Dtype::F32,
                vec![nv, e.clips, e.hidden],
                f32_bytes(&e.video_l1),
            ),
            (
                "clip_mask",
                safetensors::Dtype::I64,
                vec![nv, e.clips],
                i64_bytes(&e.clip_mask),
            ),
        ],
        meta,
    )
}

/// A `.npy` (version 1.0, little-endian) of `shape` with `descr` (`<f4`, `<i8`).
pub fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_s = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    // magic (6) + version (2) + header length (2) + header + '\n', padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Writes `e` by `path`'s extension: `.safetensors` (tensors `embeddings`, videos also
/// `clip_mask`; ids in the metadata as a JSON list) or `.npy` (the embeddings; ids beside it in
/// `<stem>.ids.txt`, videos' clip mask in `<stem>.clip_mask.npy`). Returns the files written.
pub fn write_embeddings(path: &Path, e: &Embeddings) -> Result<Vec<PathBuf>, RunError> {
    let n = e.ids.len();
    match path.extension().and_then(|x| x.to_str()) {
        Some("safetensors") => {
            let mut tensors = vec![(
                "embeddings",
                safetensors::Dtype::F32,
                e.shape.clone(),
                f32_bytes(&e.values),
            )];
            if let Some(m) = &e.clip_mask {
                tensors.push((
                    "clip_mask",
                    safetensors::Dtype::I64,
                    vec![n, m.len() / n.max(1)],
                    i64_bytes(m),
                ));
            }
            let what = match e.what {
                ExtractWhat::Text => "text",
                ExtractWhat::Video => "video",
            };
            let meta = [
                ("ids".to_string(), json!(e.ids).to_string()),
                ("what".to_string(), what.to_string()),
            ]
            .into_iter()
            .collect();
            safetensors_file(path, tensors, meta)?;
            Ok(vec![path.to_path_buf()])
        }
        Some("npy") => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|err| io_err(parent, err))?;
            }
            let bytes = npy_bytes("<f4", &e.shape, &f32_bytes(&e.values));
            write_atomic(path, &bytes).map_err(|err| io_err(path, err))?;
            let stem = path.with_extension("");
            let ids_path = PathBuf::from(format!("{}.ids.txt", stem.display()));
            let mut ids = e.ids.join("\n");
            ids.push('\n');
            write_atomic(&ids_path, ids.as_bytes()).map_err(|err| io_err(&ids_path, err))?;
            let mut files = vec![path.to_path_buf(), ids_path];
            if let Some(m) = &e.clip_mask {
                let mpath = PathBuf::from(format!("{}.clip_mask.npy", stem.display()));
                let bytes = npy_bytes("<i8", &[n, m.len() / n.max(1)], &i64_bytes(m));
                write_atomic(&mpath, &bytes).map_err(|err| io_err(&mpath, err))?;
                files.push(mpath);
            }
            Ok(files)
        }
        _ => Err(RunError::Invalid {
            key: "--out".into(),
            message: format!(
                "{}: the extension picks the format: .safetensors or .npy",
                path.display()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_aligned_and_parsable() {
        let b = npy_bytes("<f4", &[2, 3], &[0u8; 24]);
        assert_eq!(&b[..8], b"\x93NUMPY\x01\x00");
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hl) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hl]).unwrap();
        assert!(header.contains("'shape': (2, 3)"), "{header}");
        assert!(header.ends_with('\n'));
        assert_eq!(b.len(), 10 + hl + 24);
        let one = npy_bytes("<i8", &[4], &[0u8; 32]);
        assert!(std::str::from_utf8(&one[10..74]).unwrap().contains("(4,)"));
    }

    #[test]
    fn csv_quotes_and_nests() {
        let r = vec![
            json!({"a": "x,y", "b": [1, 2], "c": null}),
            json!({"a": "say \"hi\"", "b": 3}),
        ];
        let s = String::from_utf8(predictions_csv(&r)).unwrap();
        assert_eq!(
            s,
            "a,b,c\r\n\"x,y\",\"[1,2]\",\r\n\"say \"\"hi\"\"\",3,\r\n"
        );
    }

    #[test]
    fn rerank_keeps_unscored_videos_in_l1_order_below_scored_ones() {
        // 1 text x 4 videos, L1 scores 1e-3 apart; the cross encoder scored videos 3 and 1.
        let l1 = [0.501f32, 0.502, 0.503, 0.504];
        let (l2, scored) = rerank_scores(&l1, 4, &[(0, 3), (0, 1)], &[-2.0, 3.0]);
        assert_eq!(scored, vec![false, true, false, true]);
        assert_eq!((l2[1], l2[3]), (3.0, -2.0));
        // Unscored: under the lowest L2 score (-2), in L1 order, without ties.
        assert!(l2[2] < -2.0 && l2[0] < l2[2], "{l2:?}");
        assert_eq!(top_k(&l2, 4), vec![1, 3, 2, 0]);
        // The old constant shift (1e6) rounded both to the same f32.
        assert_eq!(0.501f32 - 1.0e6, 0.503f32 - 1.0e6);
    }

    #[test]
    fn top_k_breaks_ties_to_the_lower_index() {
        assert_eq!(top_k(&[0.5, 0.9, 0.9, 0.1], 3), vec![1, 2, 0]);
        let p = softmax(&[0.0, 0.0]);
        assert!((p[0] - 0.5).abs() < 1e-12);
    }
}
