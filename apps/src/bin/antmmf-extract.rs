//! `antmmf-extract`: L1 embeddings of captions or videos from a UniVL checkpoint, as
//! safetensors or `.npy` (by the output's extension), with the test split's processors, so they
//! equal the embeddings `antmmf-eval` ranks with.

use antmmf_apps::{CommonArgs, load_config, warn_ignored_keys};
use antmmf_tasks::eval::{
    Embeddings, ExtractWhat, extract_embeddings, load_model, write_embeddings,
};
use antmmf_tasks::run::{RunError, RunPlan};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Extract L1 text or video embeddings of an AntMMF UniVL model.
#[derive(Debug, Parser)]
#[command(
    name = "antmmf-extract",
    version,
    after_help = "Example:\n  antmmf-extract --config configs/finetune_retrieval/msr_vtt_videoswin.yml \\\n      --checkpoint save/run/best.ckpt --what video --input test.jsonl --out videos.safetensors\n\nINPUT is a jsonl in AntMMF's retrieval format (`caption` for text, `clip_name` for video;\neach distinct video once) or a text file with one caption / clip_name per line.\nOUT's extension picks the format: .safetensors (tensors `embeddings` and, for videos,\n`clip_mask`; ids in the metadata) or .npy (ids in <stem>.ids.txt, clip mask in\n<stem>.clip_mask.npy). Text embeddings are [N, hidden]; video embeddings [N, clips, hidden]."
)]
struct Cli {
    /// The checkpoint (default: training_parameters.resume_file).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,

    /// Use the freshly initialised model (no checkpoint).
    #[arg(long = "random-init", alias = "random_init")]
    random_init: bool,

    /// What to encode: text or video.
    #[arg(long, value_name = "text|video")]
    what: String,

    /// The captions or videos to encode.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,

    /// Output file: .safetensors or .npy.
    #[arg(long, value_name = "OUT")]
    out: PathBuf,

    /// Items per batch (default: training_parameters.test_batch_size, else batch_size).
    #[arg(long = "batch-size", alias = "batch_size", value_name = "N")]
    batch_size: Option<usize>,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    antmmf_apps::exit_quietly_on_closed_pipe();
    let mut cli = Cli::parse();
    match cli.common.lift_trailing_flags().and_then(|_| run(&cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("antmmf-extract: error: {}", antmmf_apps::render_error(&err));
            ExitCode::from(2)
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    antmmf_core::logging::init(log::LevelFilter::Info);
    let config = load_config(&cli.common)?;
    warn_ignored_keys(&config);
    let backend = cli.common.backend_kind()?;
    let devices = cli.common.device_ids()?;
    antmmf_core::backend::ensure_compiled(backend, &antmmf_apps::compiled_backends())?;
    if cli.common.print_config {
        print!("{}", config.to_yaml()?);
        return Ok(ExitCode::SUCCESS);
    }
    let what = match cli.what.as_str() {
        "text" => ExtractWhat::Text,
        "video" => ExtractWhat::Video,
        other => anyhow::bail!("--what {other:?}: use text or video"),
    };
    if !matches!(
        cli.out.extension().and_then(|e| e.to_str()),
        Some("safetensors" | "npy")
    ) {
        anyhow::bail!(
            "--out {}: the extension picks the format: .safetensors or .npy",
            cli.out.display()
        );
    }
    let plan = RunPlan::from_config(&config)?;
    let checkpoint =
        antmmf_tasks::eval::resolve_checkpoint(cli.checkpoint.as_deref(), &plan, cli.random_init)?;
    if let Some(c) = &checkpoint
        && !c.is_file()
    {
        anyhow::bail!("checkpoint {} does not exist", c.display());
    }
    let batch_size = cli
        .batch_size
        .unwrap_or_else(|| plan.training.eval_batch_size())
        .max(1);
    let start = std::time::Instant::now();
    let emb = antmmf_apps::with_backend(
        backend,
        &devices,
        Extract {
            plan: &plan,
            checkpoint,
            what,
            input: cli.input.clone(),
            batch_size,
        },
    )??;
    let files = write_embeddings(&cli.out, &emb)?;
    println!(
        "{} {} embeddings {:?} in {:.1} s; written to {}",
        emb.ids.len(),
        cli.what,
        emb.shape,
        start.elapsed().as_secs_f64(),
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// The generic entry point, called once with the selected backend.
struct Extract<'a> {
    plan: &'a RunPlan,
    checkpoint: Option<PathBuf>,
    what: ExtractWhat,
    input: PathBuf,
    batch_size: usize,
}

impl antmmf_apps::BackendVisitor for Extract<'_> {
    type Output = Result<Embeddings, RunError>;

    fn visit<B: burn::tensor::backend::AutodiffBackend>(
        self,
        kind: antmmf_core::backend::BackendKind,
        devices: Vec<B::Device>,
    ) -> Self::Output {
        log::info!("backend {kind}, device {:?}", devices[0]);
        let device = &devices[0];
        let model = load_model::<B::InnerBackend>(self.plan, self.checkpoint.as_deref(), device)?;
        let mut progress = |done: usize, total: usize| {
            eprintln!("antmmf-extract: {done}/{total}");
        };
        extract_embeddings::<B::InnerBackend>(
            self.plan,
            &model,
            self.what,
            &self.input,
            self.batch_size,
            device,
            &mut progress,
        )
    }
}
