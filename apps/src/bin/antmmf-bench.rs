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
    /// Forward throughput of the BERT text encoder and the Video Swin encoder on Flex (CPU), to
    /// set next to benches/reference/encoders_torch.py.
    Encoders(encoders::EncoderArgs),
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
        What::Encoders(args) => encoders::run(&args),
    }
}

// ---- `antmmf-bench encoders`: forward throughput of the real encoders (BERT, Video Swin) on
// Flex, inference only, the numbers behind docs/BENCHMARKS.md "Encoders (CPU)".
mod encoders {
    use antmmf_models::bert::BertConfig;
    use antmmf_models::video_swin::VideoSwinConfig;
    use burn::tensor::{Distribution, Int, Tensor};
    use std::time::Instant;

    type B = burn::backend::Flex;

    /// Sizes of the encoder benchmark (defaults: MiniLM-L6 text encoder, Swin-T video encoder).
    #[derive(Debug, clap::Args)]
    pub struct EncoderArgs {
        /// Text batch size.
        #[arg(long, default_value_t = 16)]
        pub text_batch: usize,
        /// Text length in tokens.
        #[arg(long, default_value_t = 32)]
        pub text_len: usize,
        /// BERT width (MiniLM: 384, 12 heads, FFN 1536).
        #[arg(long, default_value_t = 384)]
        pub hidden: usize,
        /// BERT layers.
        #[arg(long, default_value_t = 6)]
        pub layers: usize,
        /// Video batch size.
        #[arg(long, default_value_t = 2)]
        pub video_batch: usize,
        /// Frames per video.
        #[arg(long, default_value_t = 8)]
        pub frames: usize,
        /// Frame height and width.
        #[arg(long, default_value_t = 224)]
        pub size: usize,
        /// Timed iterations (after one warm-up).
        #[arg(long, default_value_t = 10)]
        pub iters: usize,
        /// Only this encoder: text or video.
        #[arg(long)]
        pub only: Option<String>,
    }

    /// Median and minimum wall time in ms of `iters` calls after one warm-up call.
    fn time_ms(iters: usize, mut f: impl FnMut()) -> (f64, f64) {
        f();
        let mut times: Vec<f64> = (0..iters.max(1))
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        (times[times.len() / 2], times[0])
    }

    pub fn run(a: &EncoderArgs) -> anyhow::Result<()> {
        let device = Default::default();
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        println!(
            "# flex, forward only, median (min) of {} after 1 warm-up; {threads} CPU threads",
            a.iters
        );
        println!("| encoder | input | ms / batch | items/s |");
        println!("|---|---|---|---|");
        if a.only.as_deref().is_none_or(|o| o == "text") {
            let config = BertConfig {
                vocab_size: 30522,
                hidden_size: a.hidden,
                num_hidden_layers: a.layers,
                num_attention_heads: a.hidden / 32,
                intermediate_size: 4 * a.hidden,
                ..BertConfig::default()
            };
            config.validate()?;
            let bert = config.init_with_pooler::<B>(true, &device);
            let shape = [a.text_batch, a.text_len];
            let (median, min) = time_ms(a.iters, || {
                let ids = Tensor::<B, 2, Int>::random(
                    shape,
                    Distribution::Uniform(1.0, 30000.0),
                    &device,
                );
                let mask = Tensor::<B, 2, Int>::ones(shape, &device);
                let out = bert.forward(ids, None, Some(mask), false);
                let _ = out.last_hidden_state.sum().into_scalar();
            });
            println!(
                "| BERT h{} L{} | {}x{} tokens | {median:.1} ({min:.1}) | {:.1} texts/s |",
                a.hidden,
                a.layers,
                a.text_batch,
                a.text_len,
                a.text_batch as f64 / (median * 1e-3)
            );
        }
        if a.only.as_deref().is_none_or(|o| o == "video") {
            let config = VideoSwinConfig {
                num_classes: 0,
                ..VideoSwinConfig::swin3d_t()
            };
            let swin = config.init::<B>(&device);
            let shape = [a.video_batch, 3, a.frames, a.size, a.size];
            let (median, min) = time_ms(a.iters, || {
                let video = Tensor::<B, 5>::random(shape, Distribution::Normal(0.0, 1.0), &device);
                let (pooled, _) = swin.forward(video);
                let _ = pooled.sum().into_scalar();
            });
            println!(
                "| Swin3D-T | {}x3x{}x{}x{} | {median:.1} ({min:.1}) | {:.2} videos/s |",
                a.video_batch,
                a.frames,
                a.size,
                a.size,
                a.video_batch as f64 / (median * 1e-3)
            );
        }
        Ok(())
    }
}
