//! BERT (Devlin et al., 2019, "BERT: Pre-training of Deep Bidirectional Transformers for Language
//! Understanding"): embeddings, post-LN encoder, pooler, and the pre-training heads (MLM with the
//! decoder tied to the word embeddings, 2-way NSP/ITM).
//!
//! Mirrors `transformers/models/bert/modeling_bert.py` (eager attention), which AntMMF's
//! `antmmf/modules/encoders` wraps for the UniVL text and cross encoders. Parameter paths follow
//! HF's with `LayerNorm` → `layer_norm` and `attention.self.` → `attention.` (see
//! [`crate::import::KeyMap::hf_bert`]).
//!
//! The cross encoder feeds precomputed embeddings (`[text embeddings ; clip tokens ; SEP]`, visual
//! positions restarting at 0): build them with [`BertEmbeddings::word_embeddings`] and the
//! visual projection, then call [`Bert::forward_embeds`].

use crate::ops::linear_rows;
use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{
    Dropout, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::import::{ImportError, KeyMap, LoadOptions, LoadReport, WeightFile, find_weights_file};
use crate::transformer::{
    Activation, materialize_mask, multi_head_attention, padding_additive_mask,
};

/// Errors raised while reading a BERT configuration.
#[derive(Debug, thiserror::Error)]
pub enum BertConfigError {
    /// The file could not be read.
    #[error("cannot read BERT config {path}: {source}")]
    Io {
        /// The config file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid HF BERT `config.json`.
    #[error("invalid BERT config {path}: {source}")]
    Parse {
        /// The config file.
        path: std::path::PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The values are inconsistent.
    #[error("invalid BERT config: {0}")]
    Invalid(String),
}

/// Errors raised by [`Bert::from_pretrained`] and [`BertForPreTraining::from_pretrained`].
#[derive(Debug, thiserror::Error)]
pub enum BertLoadError {
    /// The folder's `config.json` is missing or invalid.
    #[error(transparent)]
    Config(#[from] BertConfigError),
    /// The weights could not be found, read or applied.
    #[error(transparent)]
    Import(#[from] ImportError),
}

/// A pretrained BERT loaded from an HF model folder, with its config and load report.
#[derive(Debug)]
pub struct Pretrained<M> {
    /// The model with the folder's weights.
    pub model: M,
    /// The folder's `config.json`.
    pub config: BertConfig,
    /// What was loaded.
    pub report: LoadReport,
}

/// BERT hyper-parameters; deserializes an HF `config.json` (unknown keys are ignored, missing ones
/// take bert-base-uncased's values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BertConfig {
    /// Vocabulary size (30522 English uncased, 21128 Chinese).
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of encoder layers built; fewer than a checkpoint has loads its first layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer (must divide `hidden_size`).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Feed-forward (and MLM transform) activation.
    pub hidden_act: Activation,
    /// Dropout on embeddings and sub-layer outputs (active on autodiff backends only).
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities (active on autodiff backends only).
    pub attention_probs_dropout_prob: f64,
    /// Number of learned positions.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Padding token id.
    pub pad_token_id: usize,
}

impl Default for BertConfig {
    fn default() -> Self {
        Self {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: Activation::Gelu,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
        }
    }
}

impl BertConfig {
    /// Reads an HF `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, BertConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| BertConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Self =
            serde_json::from_str(&text).map_err(|source| BertConfigError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values that `init` relies on.
    pub fn validate(&self) -> Result<(), BertConfigError> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(BertConfigError::Invalid(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(BertConfigError::Invalid(format!(
                    "{name} {p} is not a probability"
                )));
            }
        }
        Ok(())
    }

    /// Builds the encoder (with pooler) with freshly initialised weights.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Bert<B> {
        self.init_with_pooler(true, device)
    }

    /// Builds the encoder, with or without the pooler.
    pub fn init_with_pooler<B: Backend>(&self, pooler: bool, device: &B::Device) -> Bert<B> {
        let h = self.hidden_size;
        Bert {
            embeddings: BertEmbeddings {
                word_embeddings: EmbeddingConfig::new(self.vocab_size, h).init(device),
                position_embeddings: EmbeddingConfig::new(self.max_position_embeddings, h)
                    .init(device),
                token_type_embeddings: EmbeddingConfig::new(self.type_vocab_size, h).init(device),
                layer_norm: self.layer_norm(device),
                dropout: self.hidden_dropout(),
            },
            encoder: BertEncoder {
                layer: (0..self.num_hidden_layers)
                    .map(|_| self.init_layer(device))
                    .collect(),
            },
            pooler: pooler.then(|| BertPooler {
                dense: LinearConfig::new(h, h).init(device),
            }),
        }
    }

    /// Builds the encoder plus pre-training heads: MLM always, ITM/NSP when `itm_head`.
    /// (`itm_head = false` and no pooler is HF's `BertForMaskedLM`.)
    pub fn init_with_heads<B: Backend>(
        &self,
        itm_head: bool,
        device: &B::Device,
    ) -> BertForPreTraining<B> {
        let h = self.hidden_size;
        BertForPreTraining {
            bert: self.init_with_pooler(itm_head, device),
            cls: BertPreTrainingHeads {
                predictions: BertLmPredictionHead {
                    transform: BertPredictionHeadTransform {
                        dense: LinearConfig::new(h, h).init(device),
                        layer_norm: self.layer_norm(device),
                        activation: self.hidden_act,
                    },
                    bias: Param::from_tensor(Tensor::zeros([self.vocab_size], device)),
                },
                seq_relationship: itm_head.then(|| LinearConfig::new(h, 2).init(device)),
            },
        }
    }

    fn hidden_dropout(&self) -> Dropout {
        Dropout {
            prob: self.hidden_dropout_prob,
        }
    }

    fn layer_norm<B: Backend>(&self, device: &B::Device) -> LayerNorm<B> {
        LayerNormConfig::new(self.hidden_size)
            .with_epsilon(self.layer_norm_eps)
            .init(device)
    }

    fn init_layer<B: Backend>(&self, device: &B::Device) -> BertLayer<B> {
        let h = self.hidden_size;
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        BertLayer {
            attention: BertAttention {
                query: linear(h, h),
                key: linear(h, h),
                value: linear(h, h),
                output: BertSublayerOutput {
                    dense: linear(h, h),
                    layer_norm: self.layer_norm(device),
                    dropout: self.hidden_dropout(),
                },
                dropout: Dropout {
                    prob: self.attention_probs_dropout_prob,
                },
                num_heads: self.num_attention_heads,
            },
            intermediate: BertIntermediate {
                dense: linear(h, self.intermediate_size),
                activation: self.hidden_act,
            },
            output: BertSublayerOutput {
                dense: linear(self.intermediate_size, h),
                layer_norm: self.layer_norm(device),
                dropout: self.hidden_dropout(),
            },
        }
    }
}

/// Word + position + token-type embeddings, then LayerNorm.
#[derive(Module, Debug)]
pub struct BertEmbeddings<B: Backend> {
    /// Token embeddings `[vocab, hidden]` (also the tied MLM decoder).
    pub word_embeddings: Embedding<B>,
    /// Learned absolute positions `[max_positions, hidden]`.
    pub position_embeddings: Embedding<B>,
    /// Segment embeddings `[type_vocab, hidden]`.
    pub token_type_embeddings: Embedding<B>,
    /// Output LayerNorm.
    pub layer_norm: LayerNorm<B>,
    /// Dropout after the LayerNorm (training only).
    pub dropout: Dropout,
}

impl<B: Backend> BertEmbeddings<B> {
    /// Embeds token ids; positions default to `0..seq`, token types to 0.
    ///
    /// # Shapes
    /// - `input_ids`, `token_type_ids`, `position_ids`: `[batch, seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Option<Tensor<B, 2, Int>>,
        position_ids: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 3> {
        let words = self.word_embeddings.forward(input_ids);
        self.forward_embeds(words, token_type_ids, position_ids)
    }

    /// Adds position and token-type embeddings to precomputed input embeddings, then LayerNorm
    /// (HF's `inputs_embeds` path). Positions default to `0..seq`, token types to 0.
    ///
    /// # Shapes
    /// - `inputs_embeds`: `[batch, seq, hidden]`
    /// - `token_type_ids`, `position_ids`: `[batch, seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward_embeds(
        &self,
        inputs_embeds: Tensor<B, 3>,
        token_type_ids: Option<Tensor<B, 2, Int>>,
        position_ids: Option<Tensor<B, 2, Int>>,
    ) -> Tensor<B, 3> {
        let [batch, seq, _] = inputs_embeds.dims();
        let device = inputs_embeds.device();
        let position_ids = position_ids.unwrap_or_else(|| {
            Tensor::<B, 1, Int>::arange(0..seq as i64, &device)
                .reshape([1, seq])
                .expand([batch, seq])
        });
        let token_type_ids = token_type_ids.unwrap_or_else(|| Tensor::zeros([batch, seq], &device));
        let x = inputs_embeds
            + self.position_embeddings.forward(position_ids)
            + self.token_type_embeddings.forward(token_type_ids);
        self.dropout.forward(self.layer_norm.forward(x))
    }

    /// The word embeddings alone (no position, type or LayerNorm), for building cross-encoder
    /// inputs.
    ///
    /// # Shapes
    /// - `input_ids`: `[batch, seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn word_embeddings(&self, input_ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.word_embeddings.forward(input_ids)
    }
}

/// Multi-head self-attention with its output projection, residual and LayerNorm (post-LN).
#[derive(Module, Debug)]
pub struct BertAttention<B: Backend> {
    /// Query projection.
    pub query: Linear<B>,
    /// Key projection.
    pub key: Linear<B>,
    /// Value projection.
    pub value: Linear<B>,
    /// Output projection + residual + LayerNorm.
    pub output: BertSublayerOutput<B>,
    /// Dropout on the attention probabilities (training only).
    pub dropout: Dropout,
    num_heads: usize,
}

impl<B: Backend> BertAttention<B> {
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`; `mask`: `[batch, 1, 1, seq]` additive
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>, mask: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let context = multi_head_attention(
            linear_rows(&self.query, x.clone()),
            linear_rows(&self.key, x.clone()),
            linear_rows(&self.value, x.clone()),
            self.num_heads,
            mask,
            Some(&self.dropout),
        );
        self.output.forward(context, x)
    }
}

/// `LayerNorm(dropout(dense(x)) + residual)`, BERT's post-LN sub-layer output.
#[derive(Module, Debug)]
pub struct BertSublayerOutput<B: Backend> {
    /// Projection.
    pub dense: Linear<B>,
    /// LayerNorm after the residual.
    pub layer_norm: LayerNorm<B>,
    /// Dropout on the projection (training only).
    pub dropout: Dropout,
}

impl<B: Backend> BertSublayerOutput<B> {
    /// # Shapes
    /// - `x`: `[batch, seq, d_in]`; `residual`: `[batch, seq, hidden]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>, residual: Tensor<B, 3>) -> Tensor<B, 3> {
        self.layer_norm
            .forward(self.dropout.forward(linear_rows(&self.dense, x)) + residual)
    }
}

/// The feed-forward up-projection and activation.
#[derive(Module, Debug)]
pub struct BertIntermediate<B: Backend> {
    /// Up-projection.
    pub dense: Linear<B>,
    activation: Activation,
}

/// One post-LN encoder layer.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    /// Self-attention block.
    pub attention: BertAttention<B>,
    /// Feed-forward up-projection.
    pub intermediate: BertIntermediate<B>,
    /// Feed-forward down-projection + residual + LayerNorm.
    pub output: BertSublayerOutput<B>,
}

impl<B: Backend> BertLayer<B> {
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`; `mask`: `[batch, 1, 1, seq]` additive
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>, mask: Option<Tensor<B, 4>>) -> Tensor<B, 3> {
        let attended = self.attention.forward(x, mask);
        let hidden = self
            .intermediate
            .activation
            .forward(linear_rows(&self.intermediate.dense, attended.clone()));
        self.output.forward(hidden, attended)
    }
}

/// The stack of encoder layers.
#[derive(Module, Debug)]
pub struct BertEncoder<B: Backend> {
    /// Layers, in order.
    pub layer: Vec<BertLayer<B>>,
}

/// `tanh(dense(h[:, 0]))`.
#[derive(Module, Debug)]
pub struct BertPooler<B: Backend> {
    /// Projection of the first token.
    pub dense: Linear<B>,
}

impl<B: Backend> BertPooler<B> {
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`
    /// - output: `[batch, hidden]`
    pub fn forward(&self, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
        let [batch, _, width] = hidden.dims();
        let first = hidden.narrow(1, 0, 1).reshape([batch, width]);
        linear_rows(&self.dense, first).tanh()
    }
}

/// What [`Bert::forward`] returns.
#[derive(Debug, Clone)]
pub struct BertOutput<B: Backend> {
    /// Output of the last layer `[batch, seq, hidden]`.
    pub last_hidden_state: Tensor<B, 3>,
    /// Embeddings output then every layer's output (`num_layers + 1` tensors), when requested.
    pub hidden_states: Vec<Tensor<B, 3>>,
    /// Pooler output `[batch, hidden]`, when the model has a pooler.
    pub pooled: Option<Tensor<B, 2>>,
}

/// The BERT encoder: embeddings, encoder layers and an optional pooler.
#[derive(Module, Debug)]
pub struct Bert<B: Backend> {
    /// Input embeddings.
    pub embeddings: BertEmbeddings<B>,
    /// Encoder layers.
    pub encoder: BertEncoder<B>,
    /// Pooler (absent in `BertForMaskedLM`-style models).
    pub pooler: Option<BertPooler<B>>,
}

impl<B: Backend> Bert<B> {
    /// Loads an HF model folder (`config.json` + `model.safetensors` or `pytorch_model.bin`),
    /// with or without the pooler. Missing parameters are an error.
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        pooler: bool,
        device: &B::Device,
    ) -> Result<Pretrained<Self>, BertLoadError> {
        let dir = dir.as_ref();
        let config = BertConfig::from_file(dir.join("config.json"))?;
        let weights = WeightFile::open(find_weights_file(dir)?)?;
        let (model, report) = weights.load_into(
            config.init_with_pooler(pooler, device),
            &KeyMap::hf_bert(),
            &LoadOptions::default(),
        )?;
        Ok(Pretrained {
            model,
            config,
            report,
        })
    }

    /// Encodes token ids.
    ///
    /// `attention_mask` is 1 on real tokens and 0 on padding (padded keys are masked with a large
    /// finite negative score); `token_type_ids` default to 0.
    ///
    /// # Panics
    /// Like `torch.nn.Embedding`, when an id is outside its table: token ids `>= vocab_size`,
    /// type ids `>= type_vocab_size`, or `seq > max_position_embeddings`. Truncate and validate
    /// ids where they are produced (the tokenizer / batcher).
    ///
    /// # Shapes
    /// - `input_ids`, `token_type_ids`, `attention_mask`: `[batch, seq]`
    /// - output: see [`BertOutput`]
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Option<Tensor<B, 2, Int>>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        output_hidden_states: bool,
    ) -> BertOutput<B> {
        let embeddings = self.embeddings.forward(input_ids, token_type_ids, None);
        self.encode(embeddings, attention_mask, output_hidden_states)
    }

    /// Encodes precomputed input embeddings (before position/type embeddings and LayerNorm),
    /// e.g. the UniVL cross encoder's `[text ; clip tokens ; SEP]` with visual positions
    /// restarting at 0. `position_ids` default to `0..seq`.
    ///
    /// # Shapes
    /// - `inputs_embeds`: `[batch, seq, hidden]`
    /// - `token_type_ids`, `position_ids`, `attention_mask`: `[batch, seq]`
    /// - output: see [`BertOutput`]
    pub fn forward_embeds(
        &self,
        inputs_embeds: Tensor<B, 3>,
        token_type_ids: Option<Tensor<B, 2, Int>>,
        position_ids: Option<Tensor<B, 2, Int>>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        output_hidden_states: bool,
    ) -> BertOutput<B> {
        let embeddings =
            self.embeddings
                .forward_embeds(inputs_embeds, token_type_ids, position_ids);
        self.encode(embeddings, attention_mask, output_hidden_states)
    }

    /// Runs the encoder layers (and pooler) on already embedded inputs (after LayerNorm).
    ///
    /// # Shapes
    /// - `embeddings`: `[batch, seq, hidden]`; `attention_mask`: `[batch, seq]`
    /// - output: see [`BertOutput`]
    pub fn encode(
        &self,
        embeddings: Tensor<B, 3>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        output_hidden_states: bool,
    ) -> BertOutput<B> {
        let [batch, seq, _] = embeddings.dims();
        let heads = self
            .encoder
            .layer
            .first()
            .map_or(1, |l| l.attention.num_heads);
        let mask =
            attention_mask.map(|m| materialize_mask(padding_additive_mask(m), batch, heads, seq));
        let mut hidden_states = Vec::new();
        let mut x = embeddings;
        for layer in &self.encoder.layer {
            if output_hidden_states {
                hidden_states.push(x.clone());
            }
            x = layer.forward(x, mask.clone());
        }
        if output_hidden_states {
            hidden_states.push(x.clone());
        }
        let pooled = self.pooler.as_ref().map(|p| p.forward(x.clone()));
        BertOutput {
            last_hidden_state: x,
            hidden_states,
            pooled,
        }
    }
}

/// MLM transform: `LayerNorm(act(dense(h)))`.
#[derive(Module, Debug)]
pub struct BertPredictionHeadTransform<B: Backend> {
    /// Projection.
    pub dense: Linear<B>,
    /// LayerNorm after the activation.
    pub layer_norm: LayerNorm<B>,
    activation: Activation,
}

/// The MLM head: transform, then the decoder tied to the word embeddings, plus a bias.
#[derive(Module, Debug)]
pub struct BertLmPredictionHead<B: Backend> {
    /// Transform before the decoder.
    pub transform: BertPredictionHeadTransform<B>,
    /// Per-token output bias `[vocab]`.
    pub bias: Param<Tensor<B, 1>>,
}

impl<B: Backend> BertLmPredictionHead<B> {
    /// Vocabulary logits with the decoder weight tied to `word_embeddings` (`[vocab, hidden]`).
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`; `word_embeddings`: `[vocab, hidden]`
    /// - output: `[batch, seq, vocab]`
    pub fn forward(&self, hidden: Tensor<B, 3>, word_embeddings: Tensor<B, 2>) -> Tensor<B, 3> {
        let [batch, seq, width] = hidden.dims();
        let t = &self.transform;
        let h = t
            .layer_norm
            .forward(t.activation.forward(linear_rows(&t.dense, hidden)));
        let vocab = word_embeddings.dims()[0];
        let logits = h
            .reshape([batch * seq, width])
            .matmul(word_embeddings.transpose())
            + self.bias.val().unsqueeze::<2>();
        logits.reshape([batch, seq, vocab])
    }
}

/// HF `cls`: the MLM predictions and the optional 2-way sequence-relationship (NSP/ITM) head.
#[derive(Module, Debug)]
pub struct BertPreTrainingHeads<B: Backend> {
    /// MLM head.
    pub predictions: BertLmPredictionHead<B>,
    /// NSP / ITM classifier on the pooled output (2 classes).
    pub seq_relationship: Option<Linear<B>>,
}

/// What [`BertForPreTraining::forward`] returns.
#[derive(Debug, Clone)]
pub struct BertPreTrainingOutput<B: Backend> {
    /// The encoder output.
    pub encoder: BertOutput<B>,
    /// MLM logits `[batch, seq, vocab]`.
    pub mlm_logits: Tensor<B, 3>,
    /// NSP/ITM logits `[batch, 2]`, when the model has that head.
    pub itm_logits: Option<Tensor<B, 2>>,
}

/// BERT with pre-training heads (HF `BertForPreTraining`; `BertForMaskedLM` without the pooler
/// and ITM head). The MLM decoder reuses `bert.embeddings.word_embeddings`.
#[derive(Module, Debug)]
pub struct BertForPreTraining<B: Backend> {
    /// The encoder.
    pub bert: Bert<B>,
    /// The heads.
    pub cls: BertPreTrainingHeads<B>,
}

impl<B: Backend> BertForPreTraining<B> {
    /// Loads an HF model folder into the model with heads. Heads absent from the file (e.g.
    /// starting pre-training from a `BertModel` checkpoint) keep their initial values and are
    /// listed in the report's `missing`.
    pub fn from_pretrained(
        dir: impl AsRef<Path>,
        itm_head: bool,
        device: &B::Device,
    ) -> Result<Pretrained<Self>, BertLoadError> {
        let dir = dir.as_ref();
        let config = BertConfig::from_file(dir.join("config.json"))?;
        let weights = WeightFile::open(find_weights_file(dir)?)?;
        let (model, report) = weights.load_into(
            config.init_with_heads(itm_head, device),
            &KeyMap::hf_bert_with_heads(),
            &LoadOptions::allow_missing(),
        )?;
        Ok(Pretrained {
            model,
            config,
            report,
        })
    }

    /// Encodes and applies the heads.
    ///
    /// # Shapes
    /// - `input_ids`, `token_type_ids`, `attention_mask`: `[batch, seq]`
    /// - output: see [`BertPreTrainingOutput`]
    pub fn forward(
        &self,
        input_ids: Tensor<B, 2, Int>,
        token_type_ids: Option<Tensor<B, 2, Int>>,
        attention_mask: Option<Tensor<B, 2, Int>>,
        output_hidden_states: bool,
    ) -> BertPreTrainingOutput<B> {
        let encoder = self.bert.forward(
            input_ids,
            token_type_ids,
            attention_mask,
            output_hidden_states,
        );
        let mlm_logits = self.mlm_logits(encoder.last_hidden_state.clone());
        let itm_logits = self.itm_logits(&encoder);
        BertPreTrainingOutput {
            encoder,
            mlm_logits,
            itm_logits,
        }
    }

    /// MLM logits for any hidden states (e.g. the text part of the cross encoder's output).
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`
    /// - output: `[batch, seq, vocab]`
    pub fn mlm_logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let tied = self.bert.embeddings.word_embeddings.weight.val();
        self.cls.predictions.forward(hidden, tied)
    }

    /// NSP/ITM logits from the pooled output (None without pooler or head).
    ///
    /// # Shapes
    /// - output: `[batch, 2]`
    pub fn itm_logits(&self, encoder: &BertOutput<B>) -> Option<Tensor<B, 2>> {
        let head = self.cls.seq_relationship.as_ref()?;
        let pooled = encoder.pooled.clone()?;
        Some(head.forward(pooled))
    }
}
