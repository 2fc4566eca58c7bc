//! Pieces shared by the transformer encoders (BERT, CLIP): activations as named in HF
//! `config.json` files, scaled dot-product multi-head attention with an additive mask, and
//! additive-mask builders.
//!
//! Mirrors `transformers/activations.py` and the eager attention of
//! `transformers/models/{bert,clip}/modeling_*.py`.

use burn::nn::Dropout;
use burn::tensor::activation::{gelu, gelu_approximate, relu, sigmoid, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor};
use serde::{Deserialize, Serialize};

/// The additive value that masked attention scores receive: finite in f32 and in bf16 (transformers
/// uses its dtype's `finfo.min`; `f32::MIN` overflows to -inf in bf16, where `0 * -inf` makes the
/// additive mask NaN). Finite on purpose: a row whose keys are all masked becomes uniform, never
/// NaN, and after the softmax it acts exactly as `f32::MIN` does.
pub const MASKED_SCORE: f32 = -3.0e38;

/// A hidden activation, spelled as HF `config.json` spells `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU, `x * Φ(x)` with erf (`"gelu"`).
    #[default]
    Gelu,
    /// Exact GELU under its other HF name (`"gelu_python"`).
    GeluPython,
    /// Tanh-approximated GELU (`"gelu_new"`).
    GeluNew,
    /// Tanh-approximated GELU under its PyTorch name (`"gelu_pytorch_tanh"`).
    GeluPytorchTanh,
    /// `max(x, 0)` (`"relu"`).
    Relu,
    /// CLIP's `x * sigmoid(1.702 x)` (`"quick_gelu"`).
    QuickGelu,
}

impl Activation {
    /// Applies the activation element-wise.
    pub fn forward<B: Backend, const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Activation::Gelu | Activation::GeluPython => gelu(x),
            Activation::GeluNew | Activation::GeluPytorchTanh => gelu_approximate(x),
            Activation::Relu => relu(x),
            Activation::QuickGelu => x.clone() * sigmoid(x * 1.702),
        }
    }
}

/// Scaled dot-product attention over already projected queries, keys and values.
///
/// `dropout(softmax(q k^T / sqrt(head_dim) + mask)) v` per head, heads concatenated again. The
/// dropout is active only on autodiff backends (training), as Burn's [`Dropout`] is.
///
/// # Shapes
/// - `q`, `k`, `v`: `[batch, seq, hidden]` with `hidden = num_heads * head_dim`
/// - `additive_mask`: broadcastable to `[batch, num_heads, seq_q, seq_k]`
/// - output: `[batch, seq, hidden]`
pub fn multi_head_attention<B: Backend>(
    q: Tensor<B, 3>,
    k: Tensor<B, 3>,
    v: Tensor<B, 3>,
    num_heads: usize,
    additive_mask: Option<Tensor<B, 4>>,
    dropout: Option<&Dropout>,
) -> Tensor<B, 3> {
    let [batch, seq_q, hidden] = q.dims();
    let seq_k = k.dims()[1];
    let head_dim = hidden / num_heads;
    let split =
        |t: Tensor<B, 3>, seq: usize| t.reshape([batch, seq, num_heads, head_dim]).swap_dims(1, 2);
    let (q, k, v) = (split(q, seq_q), split(k, seq_k), split(v, seq_k));
    let mut scores = q.matmul(k.transpose()) * (head_dim as f64).powf(-0.5);
    if let Some(mask) = additive_mask {
        scores = scores + mask;
    }
    let mut probs = softmax(scores, 3);
    if let Some(dropout) = dropout {
        probs = dropout.forward(probs);
    }
    probs
        .matmul(v)
        .swap_dims(1, 2)
        .reshape([batch, seq_q, hidden])
}

/// Turns a padding mask (1 = attend, 0 = padding) into an additive key mask.
///
/// # Shapes
/// - `attention_mask`: `[batch, seq_k]`
/// - output: `[batch, 1, 1, seq_k]`, 0 on kept keys and [`MASKED_SCORE`] on padded ones
pub fn padding_additive_mask<B: Backend>(attention_mask: Tensor<B, 2, Int>) -> Tensor<B, 4> {
    let [batch, seq] = attention_mask.dims();
    let padded = attention_mask.equal_elem(0).reshape([batch, 1, 1, seq]);
    bool_to_additive(padded)
}

/// Turns a boolean "masked" tensor (true = masked) into 0 / [`MASKED_SCORE`].
pub fn bool_to_additive<B: Backend, const D: usize>(masked: Tensor<B, D, Bool>) -> Tensor<B, D> {
    masked.float().mul_scalar(MASKED_SCORE)
}

/// Materialises an additive mask at the full score shape `[batch, heads, seq_q, seq_k]`, once per
/// forward, so every layer adds a same-shape tensor: on Flex that is ~15x cheaper than the
/// broadcast add of a `[batch, 1, 1, seq_k]` mask, which otherwise dominates BERT-size attention.
///
/// # Shapes
/// - `mask`: broadcastable to `[batch, heads, seq_q, seq_k]`
/// - output: `[batch, heads, seq_q, seq_k]`
pub fn materialize_mask<B: Backend>(
    mask: Tensor<B, 4>,
    batch: usize,
    heads: usize,
    seq_q: usize,
) -> Tensor<B, 4> {
    let seq_k = mask.dims()[3];
    mask.expand([batch, heads, seq_q, seq_k]).add_scalar(0.0)
}
