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
    /// Eval-mode clip loading (open, sample, decode, transform): per clip and clips/s with 1
    /// and 2 workers, to set next to benches/reference/decode_baseline.py.
    Decode(decode::DecodeArgs),
    /// Global retrieval metrics (t2v and v2t ranks, R@1/5/10, median and mean rank) of a random
    /// N x N score matrix, to set next to benches/reference/recall_numpy.py.
    Recall(recall::RecallArgs),
    /// One UniVL training step (forward, backward, AdamW) of a config's model on its first
    /// training batch, to set next to benches/reference/univl_step_torch.py.
    TrainStep(train_step::TrainStepArgs),
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
        What::Recall(args) => recall::run(&args),
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
        What::TrainStep(args) => train_step::run(&args),
        What::Decode(args) => decode::run(&args),
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

// ---- `antmmf-bench decode`: eval-mode clip loading as the dataset does it (open + index the
// file, AntMMF's 8 segment-middle frames, decode, pytorchvideo's eval transform to 224 px), per
// clip and in clips/s with 1 and 2 worker threads; the numbers behind docs/BENCHMARKS.md "Video
// decoding", next to benches/reference/decode_baseline.py (decord, PyAV) doing the same job.
mod decode {
    use antmmf_data::dataset::sample_rng;
    use antmmf_data::media::{DecodeOptions, FrameSampler, SampleMode, VideoDecoder};
    use antmmf_data::transforms::PyVideoTransform;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    /// What to load.
    #[derive(Debug, clap::Args)]
    pub struct DecodeArgs {
        /// Folder of the clips.
        #[arg(long, default_value = "assets/video")]
        pub videos: PathBuf,
        /// Clip stems (`<videos>/<stem>.mp4`), comma-separated.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "bikes,carphone_pristine,bigbuckbunny,carphone_distorted"
        )]
        pub clips: Vec<String>,
        /// Frames per clip.
        #[arg(long, default_value_t = 8)]
        pub frames: usize,
        /// Output side (short side int(1.2 * size), center crop).
        #[arg(long, default_value_t = 224)]
        pub size: usize,
        /// Worker thread counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        pub workers: Vec<usize>,
        /// Passes over the clips per measurement.
        #[arg(long, default_value_t = 10)]
        pub repeat: usize,
    }

    /// Loads one clip as an eval dataset item; returns the frame indices and the seconds spent
    /// before the transform (open, index, decode).
    fn load(
        path: &Path,
        frames: usize,
        transform: &PyVideoTransform,
    ) -> anyhow::Result<(Vec<usize>, f64)> {
        let t = Instant::now();
        let mut rng = sample_rng(0, 0, 0);
        let mut decoder = VideoDecoder::open(path, DecodeOptions::default())?;
        let indices = FrameSampler::new(frames, SampleMode::Eval)
            .sample(decoder.info().frame_count, &mut rng);
        let rgb = decoder.decode(&indices)?;
        let decoded = t.elapsed().as_secs_f64();
        let clip = transform.apply(&rgb, &mut rng)?;
        std::hint::black_box(&clip.data);
        Ok((indices, decoded))
    }

    pub fn run(a: &DecodeArgs) -> anyhow::Result<()> {
        let transform = PyVideoTransform::eval(a.size);
        let paths: Vec<PathBuf> = a
            .clips
            .iter()
            .map(|c| a.videos.join(format!("{c}.mp4")))
            .collect();
        let profile = if cfg!(debug_assertions) {
            "dev profile"
        } else {
            "release profile"
        };
        println!(
            "# {} clips x {} passes, {} frames, {} px, eval mode; {profile}; {} CPU threads",
            paths.len(),
            a.repeat,
            a.frames,
            a.size,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        // Per clip: median of `repeat` single-threaded loads (after one warm-up pass).
        for p in &paths {
            load(p, a.frames, &transform)?;
        }
        for p in &paths {
            let mut times = Vec::with_capacity(a.repeat);
            let mut decode = Vec::with_capacity(a.repeat);
            let mut indices = Vec::new();
            for _ in 0..a.repeat.max(1) {
                let t = Instant::now();
                let (idx, decoded) = load(p, a.frames, &transform)?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
                decode.push(decoded * 1e3);
                indices = idx;
            }
            times.sort_by(f64::total_cmp);
            decode.sort_by(f64::total_cmp);
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            println!(
                "rust    {name:24} indices {indices:?} median {:7.2} ms (decode {:7.2} ms)",
                times[times.len() / 2],
                decode[decode.len() / 2]
            );
        }
        // Throughput: `workers` threads take clips from one shared list.
        for &workers in &a.workers {
            let jobs: Vec<&PathBuf> = (0..a.repeat).flat_map(|_| paths.iter()).collect();
            let next = AtomicUsize::new(0);
            let t = Instant::now();
            std::thread::scope(|s| -> anyhow::Result<()> {
                let handles: Vec<_> = (0..workers.max(1))
                    .map(|_| {
                        s.spawn(|| -> anyhow::Result<()> {
                            while let Some(p) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                                load(p, a.frames, &transform)?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for h in handles {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("a decode worker panicked"))??;
                }
                Ok(())
            })?;
            let wall = t.elapsed().as_secs_f64();
            println!(
                "rust    workers {workers}: {:7.2} clips/s ({:.2} ms/clip wall)",
                jobs.len() as f64 / wall,
                1e3 * wall / jobs.len() as f64
            );
        }
        Ok(())
    }
}

mod recall {
    //! `antmmf-bench recall`: `antmmf_tasks::metrics::evaluate_retrieval` on a random score
    //! matrix with one caption per video (ground truth on the diagonal).

    use antmmf_tasks::metrics::{ScoreMatrix, evaluate_retrieval};
    use std::time::Instant;

    /// Score `i` of the row-major matrix: the top 24 bits of `i * 2654435761 mod 2^32`, scaled
    /// to [0, 1) (exact in f32; recall_numpy.py computes the same values).
    fn score(i: usize) -> f32 {
        let h = (i as u64).wrapping_mul(2_654_435_761) & 0xffff_ffff;
        (h >> 8) as f32 / (1u64 << 24) as f32
    }

    /// Options of `antmmf-bench recall`.
    #[derive(Debug, clap::Args)]
    pub struct RecallArgs {
        /// Matrix sizes (texts = videos).
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        sizes: Vec<usize>,
        /// Timed repetitions per size (median reported, after one warm-up).
        #[arg(long, default_value_t = 5)]
        iters: usize,
    }

    /// Times the metrics on each size and prints a table row per size.
    pub fn run(args: &RecallArgs) -> anyhow::Result<()> {
        println!(
            "# evaluate_retrieval (t2v + v2t), N x N f32 hash scores, gt diagonal; median (min) of {} after 1 warm-up",
            args.iters
        );
        println!("| N | ms | min ms | t2v R@1 | v2t R@1 | t2v mean rank | v2t median rank |");
        println!("|---|---|---|---|---|---|---|");
        for &n in &args.sizes {
            let scores: Vec<f32> = (0..n * n).map(score).collect();
            let gt: Vec<usize> = (0..n).collect();
            let sim = ScoreMatrix::new(&scores, n, n)?;
            let mut report = evaluate_retrieval(&sim, &gt)?;
            let mut times = Vec::with_capacity(args.iters);
            for _ in 0..args.iters.max(1) {
                let t = Instant::now();
                report = evaluate_retrieval(&sim, &gt)?;
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "| {n} | {:.2} | {:.2} | {:.4} | {:.4} | {:.4} | {:.1} |",
                times[times.len() / 2],
                times[0],
                report.t2v.r1,
                report.v2t.r1,
                report.t2v.mean_rank,
                report.v2t.median_rank
            );
        }
        Ok(())
    }
}

// ---- `antmmf-bench train-step`: the time of one training step of a config's UniVL model (what
// the train loop's step does: task forward and losses, backward, AdamW with clipping), on one batch
// built by the real data path and reused, the numbers behind docs/BENCHMARKS.md "Training step".
mod train_step {
    use antmmf_apps::{BackendVisitor, with_backend};
    use antmmf_core::backend::BackendKind;
    use antmmf_core::{Config, ConfigSources};
    use antmmf_data::dataset_config::Split;
    use antmmf_data::loader::{DeterministicLoader, LoaderConfig};
    use antmmf_tasks::optim::AntmmfOptimizer;
    use antmmf_tasks::run::{RunPlan, build_model};
    use antmmf_tasks::univl_task::task_forward;
    use burn::module::Module;
    use burn::optim::{GradientsParams, Optimizer};
    use burn::tensor::ElementConversion;
    use burn::tensor::backend::AutodiffBackend;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Instant;

    /// What to time.
    #[derive(Debug, clap::Args)]
    pub struct TrainStepArgs {
        /// The model, data and optimizer config.
        #[arg(long, default_value = "configs/bench/univl_small.yml")]
        pub config: PathBuf,
        /// Backend: flex, ndarray, wgpu or cuda (compiled in).
        #[arg(long, default_value = "flex")]
        pub backend: String,
        /// Timed steps.
        #[arg(long, default_value_t = 5)]
        pub iters: usize,
        /// Untimed warm-up steps first.
        #[arg(long, default_value_t = 1)]
        pub warmup: usize,
        /// `key value` config overrides.
        #[arg(value_name = "KEY VALUE", allow_hyphen_values = true, num_args = 0..)]
        pub overrides: Vec<String>,
    }

    pub fn run(a: &TrainStepArgs) -> anyhow::Result<()> {
        let config = Config::load(&ConfigSources {
            config: Some(a.config.clone()),
            config_override: None,
            overrides: a.overrides.clone(),
        })?;
        let plan = RunPlan::from_config(&config)?;
        let kind: BackendKind = a.backend.parse()?;
        with_backend(kind, &[], Step { plan: &plan, a })?
    }

    struct Step<'a> {
        plan: &'a RunPlan,
        a: &'a TrainStepArgs,
    }

    impl BackendVisitor for Step<'_> {
        type Output = anyhow::Result<()>;

        fn visit<B: AutodiffBackend>(
            self,
            kind: BackendKind,
            devices: Vec<B::Device>,
        ) -> Self::Output {
            let (plan, a) = (self.plan, self.a);
            let device = devices[0].clone();
            let mut model = build_model::<B>(plan, &device)?;
            let params = model.num_params();
            let t = &plan.training;
            let loader = DeterministicLoader::<B>::new(
                Arc::new(plan.dataset(Split::Train)?),
                LoaderConfig::train(t.batch_size as usize, 0, plan.seed),
                device.clone(),
            )?;
            let batch = loader
                .iter_from(0, 0)
                .next()
                .ok_or_else(|| anyhow::anyhow!("the training split gives no batch"))?;
            let shape = batch.video.dims();
            let text = batch.input_ids.dims();
            let mut optim = AntmmfOptimizer::new(&plan.optimizer_config()?, &model);
            let lr = plan.config.optimizer_attributes()?.params.lr;
            // Per step: total, then the train step's phases (forward with the losses read back,
            // backward, optimizer step). The phase split is exact on the eager CPU backends; a
            // lazy GPU backend finishes queued work in whichever phase reads back next.
            let mut times = Vec::new();
            let mut phases = [Vec::new(), Vec::new(), Vec::new()];
            let mut loss = f64::NAN;
            for i in 0..a.warmup + a.iters.max(1) {
                let started = Instant::now();
                let fwd = task_forward(&model.univl, &model.settings, &batch, true)?;
                loss = fwd.total.clone().into_scalar().elem::<f64>();
                let forward = started.elapsed().as_secs_f64();
                let grads = GradientsParams::from_grads(fwd.total.backward(), &model);
                let backward = started.elapsed().as_secs_f64();
                model = optim.step(lr, model, grads);
                // A host read of an updated weight: the step is done, also on lazy backends.
                let probe = model.univl.bert.embeddings.word_embeddings.weight.val();
                let _ = probe.slice([0..1, 0..1]).into_data();
                let total = started.elapsed().as_secs_f64();
                if i >= a.warmup {
                    times.push(total);
                    for (p, v) in
                        phases
                            .iter_mut()
                            .zip([forward, backward - forward, total - backward])
                    {
                        p.push(v);
                    }
                }
            }
            times.sort_by(f64::total_cmp);
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let [f, b, o] = phases.each_mut().map(median);
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1);
            println!(
                "# {kind}, {}: video {shape:?}, text {text:?}, {:.1} M parameters; median (min) of \
                 {} steps after {} warm-up; {threads} CPU threads; peak RSS {}",
                a.config.display(),
                params as f64 / 1e6,
                times.len(),
                a.warmup,
                peak_rss()
            );
            println!(
                "| backend | s / step | steps/s | forward s | backward s | optimizer s | last loss |\n|---|---|---|---|---|---|---|\n| {kind} | {:.3} ({:.3}) | {:.2} | {f:.3} | {b:.3} | {o:.3} | {loss:.4} |",
                times[times.len() / 2],
                times[0],
                1.0 / times[times.len() / 2]
            );
            Ok(())
        }
    }

    /// The process's peak resident memory (`VmHWM` on Linux).
    fn peak_rss() -> String {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .map(|l| l["VmHWM:".len()..].trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into())
    }
}
