//! Tensor helpers shared by the models, chosen for what Burn 0.21's CPU backends do fast.

use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Applies `linear` to the last dimension of `x` as one matrix product over all leading rows.
///
/// Burn's `Linear::forward` on an input of rank `D > 2` broadcasts the weight over the leading
/// dimensions: the forward is a batch of small products and the backward materialises one weight
/// gradient per leading index (`[.., d_in, d_out]`) before summing them. Flattening to
/// `[rows, d_in]` first makes the forward and both gradients single GEMMs (2.5-3x faster
/// backward for a Swin MLP on Flex, docs/BENCHMARKS.md); the result is the same.
///
/// # Shapes
/// - `x`: `[..., d_in]`
/// - output: `[..., d_out]`
pub fn linear_rows<B: Backend, const D: usize>(
    linear: &Linear<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    if D <= 2 {
        return linear.forward(x);
    }
    let dims = x.dims();
    let d_in = dims[D - 1];
    let rows = dims[..D - 1].iter().product::<usize>();
    let y = linear.forward(x.reshape([rows, d_in]));
    let mut out = dims;
    out[D - 1] = y.dims()[1];
    y.reshape(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::LinearConfig;
    use burn::tensor::{Distribution, Tolerance};

    type B = Autodiff<Flex>;

    #[test]
    fn rows_equal_broadcast_linear_forward_and_gradients() {
        let device = Default::default();
        let linear = LinearConfig::new(6, 5).init::<B>(&device);
        let x = Tensor::<B, 4>::random([2, 3, 4, 6], Distribution::Default, &device);
        let (xa, xb) = (x.clone().require_grad(), x.require_grad());
        let ya = linear.forward(xa.clone());
        let yb = linear_rows(&linear, xb.clone());
        assert_eq!(yb.dims(), [2, 3, 4, 5]);
        ya.to_data()
            .assert_approx_eq::<f32>(&yb.to_data(), Tolerance::absolute(1e-5));
        let ga = (ya.clone() * ya).sum().backward();
        let gb = (yb.clone() * yb).sum().backward();
        let w = |g| linear.weight.grad(g).expect("weight gradient").into_data();
        w(&ga).assert_approx_eq::<f32>(&w(&gb), Tolerance::absolute(1e-4));
        let b = |g| {
            linear
                .bias
                .as_ref()
                .expect("bias")
                .grad(g)
                .expect("bias gradient")
                .into_data()
        };
        b(&ga).assert_approx_eq::<f32>(&b(&gb), Tolerance::absolute(1e-4));
        let x = |t: &Tensor<B, 4>, g| t.grad(g).expect("input gradient").into_data();
        x(&xa, &ga).assert_approx_eq::<f32>(&x(&xb, &gb), Tolerance::absolute(1e-5));
    }
}
