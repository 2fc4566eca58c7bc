//! `antmmf-bench`: measured speed of the compiled-in backends (numbers go to docs/BENCHMARKS.md).
//!
//! `antmmf-bench backends` times, on every backend compiled into the binary, a square f32 matmul
//! and a MiniLM-sized self-attention block (forward, and forward + backward through autodiff),
//! with distinct random inputs per iteration and a host read-back so lazy backends do the work.

use antmmf_apps::{BackendVisitor, compiled_backends, with_backend};
use antmmf_core::backend::BackendKind;
use burn::module::AutodiffModule;
use burn::nn::attention::{MhaInput, MultiHeadAttentionConfig};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, Tensor};
use clap::{Parser, Subcommand};
use std::time::Instant;

/// Benchmarks of antmmf-rs building blocks.
#[derive(Debug, Parser)]
#[command(name = "antmmf-bench", version)]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// Matmul and attention block on every compiled-in backend.
    Backends {
        /// Matmul size (N x N times N x N).
        #[arg(long, default_value_t = 512)]
        matmul: usize,
        /// Attention batch size.
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Attention sequence length.
        #[arg(long, default_value_t = 32)]
        seq: usize,
        /// Attention width (MiniLM: 384) and heads (6).
        #[arg(long, default_value_t = 384)]
        d_model: usize,
        /// Attention heads.
        #[arg(long, default_value_t = 6)]
        heads: usize,
        /// Timed iterations per measurement (after 3 warm-up iterations).
        #[arg(long, default_value_t = 20)]
        iters: usize,
    },
}

struct BackendBench {
    matmul: usize,
    batch: usize,
    seq: usize,
    d_model: usize,
    heads: usize,
    iters: usize,
}

/// Median of per-iteration wall times in milliseconds.
fn time_ms(iters: usize, mut f: impl FnMut(usize)) -> f64 {
    for i in 0..3 {
        f(i);
    }
    let mut times: Vec<f64> = (0..iters)
        .map(|i| {
            let t = Instant::now();
            f(i + 3);
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

impl BackendVisitor for &BackendBench {
    type Output = (f64, f64, f64);

    fn visit<B: AutodiffBackend>(
        self,
        _kind: BackendKind,
        devices: Vec<B::Device>,
    ) -> (f64, f64, f64) {
        let device = &devices[0];
        let n = self.matmul;
        let matmul = time_ms(self.iters, |_| {
            let a = Tensor::<B::InnerBackend, 2>::random(
                [n, n],
                Distribution::Normal(0.0, 1.0),
                device,
            );
            let b = Tensor::<B::InnerBackend, 2>::random(
                [n, n],
                Distribution::Normal(0.0, 1.0),
                device,
            );
            let _ = a.matmul(b).sum().into_scalar();
        });
        let mha = MultiHeadAttentionConfig::new(self.d_model, self.heads)
            .with_dropout(0.0)
            .init::<B>(device);
        let shape = [self.batch, self.seq, self.d_model];
        let mha_inner = mha.clone().valid();
        let forward = time_ms(self.iters, |_| {
            let x =
                Tensor::<B::InnerBackend, 3>::random(shape, Distribution::Normal(0.0, 1.0), device);
            let _ = mha_inner
                .forward(MhaInput::self_attn(x))
                .context
                .sum()
                .into_scalar();
        });
        let train = time_ms(self.iters, |_| {
            let x = Tensor::<B, 3>::random(shape, Distribution::Normal(0.0, 1.0), device);
            let loss = mha
                .forward(MhaInput::self_attn(x))
                .context
                .powf_scalar(2.0)
                .mean();
            let grads = loss.backward();
            let _ = grads;
        });
        (matmul, forward, train)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.what {
        What::Backends {
            matmul,
            batch,
            seq,
            d_model,
            heads,
            iters,
        } => {
            let bench = BackendBench {
                matmul,
                batch,
                seq,
                d_model,
                heads,
                iters,
            };
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            println!(
                "# matmul {matmul}x{matmul}; attention B={batch} L={seq} d={d_model} heads={heads}; median of {iters}; {threads} CPU threads"
            );
            println!("| backend | matmul ms | GFLOP/s | attention fwd ms | attention fwd+bwd ms |");
            println!("|---|---|---|---|---|");
            for kind in compiled_backends() {
                let (mm, fwd, train) = with_backend(kind, &[], &bench)?;
                let gflops = 2.0 * (matmul as f64).powi(3) / (mm * 1e-3) / 1e9;
                println!("| {kind} | {mm:.2} | {gflops:.0} | {fwd:.2} | {train:.2} |");
            }
            Ok(())
        }
    }
}
