//! Batches of [`Sample`]s as Burn tensors: [`VideoTextBatch`] and its [`VideoTextBatcher`]
//! (AntMMF's `collate_fn` of the UniVL datasets + `SampleList`).
//!
//! Every tensor is built from one contiguous host buffer (`TensorData::new(vec, shape)`), one
//! upload per field. Samples of one dataset share `T`, `L` and (with a fixed-size frame
//! processor) `H x W`; where they differ the batch is padded like AntMMF's `NestedTensor`: frames
//! with zeros at the right/bottom (and at the end in time), token rows with id 0, mask 0,
//! segment 0 and label -1, missing MC-QA options with all-zero rows.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::dataset::{Sample, SampleLabel};
use crate::text::{CaptionEncoding, IGNORE_LABEL};

/// A batch of video-text samples on one device.
#[derive(Debug, Clone)]
pub struct VideoTextBatch<B: Backend> {
    /// Frames, `[B, T, 3, H, W]` f32, `T = n_clips * num_frm` (clip `c` is frames
    /// `c * num_frm .. (c + 1) * num_frm`).
    pub video: Tensor<B, 5>,
    /// 1 where a clip's frames are real, 0 where zero-filled (missing media), `[B, n_clips]` Int.
    pub clip_mask: Tensor<B, 2, Int>,
    /// Caption ids after MLM masking, `[B, L]` Int (MC-QA: an empty caption).
    pub input_ids: Tensor<B, 2, Int>,
    /// 1 for tokens, 0 for padding, `[B, L]` Int.
    pub input_mask: Tensor<B, 2, Int>,
    /// Token type ids, `[B, L]` Int.
    pub segment_ids: Tensor<B, 2, Int>,
    /// MLM labels: original id at masked positions, -1 elsewhere, `[B, L]` Int.
    pub lm_label_ids: Tensor<B, 2, Int>,
    /// Caption ids without masking (same window), `[B, L]` Int.
    pub input_ids_unmasked: Tensor<B, 2, Int>,
    /// False-caption ids (ITM), `[B, L]` Int, when the dataset adds false captions.
    pub false_input_ids: Option<Tensor<B, 2, Int>>,
    /// False-caption mask, `[B, L]` Int.
    pub false_input_mask: Option<Tensor<B, 2, Int>>,
    /// False-caption segment ids, `[B, L]` Int.
    pub false_segment_ids: Option<Tensor<B, 2, Int>>,
    /// Single-label targets, `[B]` Int (-1: the item has none), when no item is multi-label.
    pub labels: Option<Tensor<B, 1, Int>>,
    /// Multi-hot targets, `[B, num_labels]` f32, when an item is multi-label.
    pub multi_labels: Option<Tensor<B, 2>>,
    /// MC-QA option ids, `[B, K, L]` Int.
    pub option_ids: Option<Tensor<B, 3, Int>>,
    /// MC-QA option masks, `[B, K, L]` Int (all 0 for padding options).
    pub option_mask: Option<Tensor<B, 3, Int>>,
    /// MC-QA option segment ids, `[B, K, L]` Int.
    pub option_segments: Option<Tensor<B, 3, Int>>,
    /// MC-QA answers, `[B]` Int (-1: the item has none).
    pub answers: Option<Tensor<B, 1, Int>>,
    /// Clips per sample.
    pub n_clips: usize,
    /// Frames per clip.
    pub num_frm: usize,
    /// Dataset index of each sample.
    pub indices: Vec<usize>,
    /// Retrieval text ids, one per sample; empty when the samples have none.
    pub text_ids: Vec<usize>,
    /// Video ids (retrieval, pretraining), one per sample; empty when the samples have none.
    pub video_ids: Vec<usize>,
    /// MC-QA question ids, one per sample; empty when the samples have none.
    pub qids: Vec<String>,
    /// `clip_name` of each sample.
    pub clip_names: Vec<String>,
    /// 1-based position of the batch in its loader's stream over all epochs (`epoch *
    /// batches_per_epoch + index + 1`): the training iteration that consumes it (AntMMF's
    /// `current_iteration`, which the CNVid curriculum reads); `None` outside a loader.
    pub iteration: Option<u64>,
}

impl<B: Backend> VideoTextBatch<B> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// Builds [`VideoTextBatch`]es from [`Sample`]s (Burn's `Batcher`).
#[derive(Debug, Clone, Copy, Default)]
pub struct VideoTextBatcher;

impl VideoTextBatcher {
    /// A batcher.
    pub fn new() -> Self {
        Self
    }
}

impl<B: Backend> Batcher<B, Sample, VideoTextBatch<B>> for VideoTextBatcher {
    fn batch(&self, items: Vec<Sample>, device: &B::Device) -> VideoTextBatch<B> {
        collate(&items, device)
    }
}

/// `[B, L]` ids of one caption field, padded to the longest row with `pad`.
fn rows<'a>(
    encodings: impl Iterator<Item = &'a CaptionEncoding> + Clone,
    field: fn(&CaptionEncoding) -> &Vec<i64>,
    pad: i64,
) -> (Vec<i64>, [usize; 2]) {
    let n = encodings.clone().count();
    let l = encodings.clone().map(|e| field(e).len()).max().unwrap_or(0);
    let mut out = Vec::with_capacity(n * l);
    for e in encodings {
        let r = field(e);
        out.extend_from_slice(r);
        out.extend(std::iter::repeat_n(pad, l - r.len()));
    }
    (out, [n, l])
}

fn int2<B: Backend>(
    (data, shape): (Vec<i64>, [usize; 2]),
    device: &B::Device,
) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn ids(e: &CaptionEncoding) -> &Vec<i64> {
    &e.input_ids
}
fn mask(e: &CaptionEncoding) -> &Vec<i64> {
    &e.input_mask
}
fn segments(e: &CaptionEncoding) -> &Vec<i64> {
    &e.segment_ids
}
fn lm_labels(e: &CaptionEncoding) -> &Vec<i64> {
    &e.lm_label_ids
}
fn unmasked(e: &CaptionEncoding) -> &Vec<i64> {
    &e.input_ids_unmasked
}

/// One contiguous `[B, T, 3, H, W]` buffer; samples of other sizes are zero-padded.
fn video_buffer(items: &[Sample]) -> (Vec<f32>, [usize; 5]) {
    let mut dims = [0usize; 4];
    for s in items {
        for (d, v) in dims.iter_mut().zip(s.frame_shape) {
            *d = (*d).max(v);
        }
    }
    let [t, c, h, w] = dims;
    let per = t * c * h * w;
    let shape = [items.len(), t, c, h, w];
    if items
        .iter()
        .all(|s| s.frame_shape == dims && s.frames.len() == per)
    {
        let mut out = Vec::with_capacity(items.len() * per);
        for s in items {
            out.extend_from_slice(&s.frames);
        }
        return (out, shape);
    }
    let mut out = vec![0.0f32; items.len() * per];
    for (b, s) in items.iter().enumerate() {
        let [st, sc, sh, sw] = s.frame_shape;
        if s.frames.len() != st * sc * sh * sw {
            continue;
        }
        for ti in 0..st {
            for ci in 0..sc {
                for y in 0..sh {
                    let src = ((ti * sc + ci) * sh + y) * sw;
                    let dst = b * per + ((ti * c + ci) * h + y) * w;
                    out[dst..dst + sw].copy_from_slice(&s.frames[src..src + sw]);
                }
            }
        }
    }
    (out, shape)
}

fn collate<B: Backend>(items: &[Sample], device: &B::Device) -> VideoTextBatch<B> {
    let n = items.len();
    let (video, vshape) = video_buffer(items);
    let video = Tensor::from_data(TensorData::new(video, vshape), device);

    let n_clips = items.iter().map(|s| s.n_clips).max().unwrap_or(0);
    let num_frm = items.iter().map(|s| s.num_frm).max().unwrap_or(0);
    let mut clip_mask = Vec::with_capacity(n * n_clips);
    for s in items {
        clip_mask
            .extend((0..n_clips).map(|c| i64::from(s.clip_mask.get(c).copied() == Some(true))));
    }
    let clip_mask = int2::<B>((clip_mask, [n, n_clips]), device);

    let caps = items.iter().map(|s| &s.caption);
    let input_ids = int2::<B>(rows(caps.clone(), ids, 0), device);
    let input_mask = int2::<B>(rows(caps.clone(), mask, 0), device);
    let segment_ids = int2::<B>(rows(caps.clone(), segments, 0), device);
    let lm_label_ids = int2::<B>(rows(caps.clone(), lm_labels, IGNORE_LABEL), device);
    let input_ids_unmasked = int2::<B>(rows(caps, unmasked, 0), device);

    let (false_input_ids, false_input_mask, false_segment_ids) = match items
        .iter()
        .map(|s| s.false_caption.as_ref())
        .collect::<Option<Vec<_>>>()
    {
        Some(f) if n > 0 => (
            Some(int2::<B>(rows(f.iter().copied(), ids, 0), device)),
            Some(int2::<B>(rows(f.iter().copied(), mask, 0), device)),
            Some(int2::<B>(rows(f.iter().copied(), segments, 0), device)),
        ),
        _ => (None, None, None),
    };

    let (labels, multi_labels) = collate_labels::<B>(items, device);

    let has_options = items.iter().any(|s| s.options.is_some());
    let (option_ids, option_mask, option_segments, answers) = if has_options {
        let k = items
            .iter()
            .map(|s| s.options.as_ref().map_or(0, Vec::len))
            .max()
            .unwrap_or(0);
        let l = items
            .iter()
            .flat_map(|s| s.options.iter().flatten())
            .map(|e| e.input_ids.len())
            .max()
            .unwrap_or(0);
        let build = |field: fn(&CaptionEncoding) -> &Vec<i64>| {
            let mut out = vec![0i64; n * k * l];
            for (b, s) in items.iter().enumerate() {
                for (o, e) in s.options.iter().flatten().enumerate() {
                    let r = field(e);
                    let dst = (b * k + o) * l;
                    out[dst..dst + r.len()].copy_from_slice(r);
                }
            }
            Tensor::<B, 3, Int>::from_data(TensorData::new(out, [n, k, l]), device)
        };
        let answers: Vec<i64> = items
            .iter()
            .map(|s| s.answer.map_or(-1, |a| a as i64))
            .collect();
        (
            Some(build(ids)),
            Some(build(mask)),
            Some(build(segments)),
            Some(Tensor::from_data(TensorData::new(answers, [n]), device)),
        )
    } else {
        (None, None, None, None)
    };

    let all = |f: fn(&Sample) -> Option<usize>| -> Vec<usize> {
        items
            .iter()
            .map(f)
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default()
    };
    VideoTextBatch {
        video,
        clip_mask,
        input_ids,
        input_mask,
        segment_ids,
        lm_label_ids,
        input_ids_unmasked,
        false_input_ids,
        false_input_mask,
        false_segment_ids,
        labels,
        multi_labels,
        option_ids,
        option_mask,
        option_segments,
        answers,
        n_clips,
        num_frm,
        indices: items.iter().map(|s| s.index).collect(),
        text_ids: all(|s| s.text_id),
        video_ids: all(|s| s.video_id),
        qids: items
            .iter()
            .map(|s| s.qid.clone())
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default(),
        clip_names: items.iter().map(|s| s.clip_name.clone()).collect(),
        iteration: None,
    }
}

/// `[B]` single labels (-1 when absent), or `[B, C]` multi-hot when any item is multi-label
/// (single labels then become one-hot rows).
fn collate_labels<B: Backend>(
    items: &[Sample],
    device: &B::Device,
) -> (Option<Tensor<B, 1, Int>>, Option<Tensor<B, 2>>) {
    let n = items.len();
    let classes = items
        .iter()
        .filter_map(|s| match &s.label {
            Some(SampleLabel::MultiHot(v)) => Some(v.len()),
            _ => None,
        })
        .max();
    if let Some(c) = classes {
        let mut out = vec![0.0f32; n * c];
        for (b, s) in items.iter().enumerate() {
            match &s.label {
                Some(SampleLabel::MultiHot(v)) => out[b * c..b * c + v.len()].copy_from_slice(v),
                Some(SampleLabel::Single(i)) if *i < c => out[b * c + i] = 1.0,
                _ => {}
            }
        }
        return (
            None,
            Some(Tensor::from_data(TensorData::new(out, [n, c]), device)),
        );
    }
    if items.iter().any(|s| s.label.is_some()) {
        let v: Vec<i64> = items
            .iter()
            .map(|s| match s.label {
                Some(SampleLabel::Single(i)) => i as i64,
                _ => -1,
            })
            .collect();
        return (
            Some(Tensor::from_data(TensorData::new(v, [n]), device)),
            None,
        );
    }
    (None, None)
}
