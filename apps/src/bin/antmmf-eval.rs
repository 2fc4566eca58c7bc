//! `antmmf-eval`: evaluate an AntMMF UniVL checkpoint (retrieval, open QA, multi-choice QA) from
//! an AntMMF-style config; writes `metrics.json` and `predictions.jsonl`.

use antmmf_apps::{CommonArgs, load_config};
use antmmf_data::dataset_config::Split;
use antmmf_tasks::eval::{EvalOptions, EvalTask, apply_task, metrics_table, resolve_checkpoint};
use antmmf_tasks::run::RunPlan;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

/// Evaluate an AntMMF UniVL model (retrieval, open QA, multi-choice QA).
#[derive(Debug, Parser)]
#[command(
    name = "antmmf-eval",
    version,
    after_help = "Example:\n  antmmf-eval --task retrieval --config configs/finetune_retrieval/msr_vtt_videoswin.yml \\\n      --checkpoint save/run/best.ckpt --l2-topk 50 training_parameters.test_batch_size 32\n\nThe checkpoint comes from --checkpoint, else training_parameters.resume_file.\nOutputs go to --out, default <save_dir>/<task>_<model>[_<seed>]/eval_<split>/.\nOverrides are `key value` pairs with AntMMF's key paths (`a.b[1].c` indexes lists);\nvalues are read like YAML (True, 5e-5, [1, 2], None). Priority, low to high: defaults <\nincludes < the config file < --config_override FILE < key value pairs."
)]
struct Cli {
    /// The task: retrieval, vqa or mcqa (must agree with the config's training_head_type, or
    /// sets it when the config leaves it out).
    #[arg(long, value_name = "TASK")]
    task: Option<String>,

    /// The checkpoint to evaluate (default: training_parameters.resume_file).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,

    /// Evaluate the freshly initialised model (no checkpoint).
    #[arg(long = "random-init", alias = "random_init")]
    random_init: bool,

    /// Retrieval: re-rank each text's top K L1 videos with the cross encoder, or `all` pairs.
    #[arg(
        long = "l2-topk",
        alias = "l2_topk",
        default_value = "50",
        value_name = "K|all"
    )]
    l2_topk: String,

    /// The split: test or val.
    #[arg(long, default_value = "test", value_name = "SPLIT")]
    split: String,

    /// Output folder (default: the config's run directory, `eval_<split>/`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Retrieval: also write the L1 embeddings to `embeddings.safetensors`.
    #[arg(long = "save-embeddings", alias = "save_embeddings")]
    save_embeddings: bool,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    antmmf_apps::exit_quietly_on_closed_pipe();
    let mut cli = Cli::parse();
    match lift_eval_flags(&mut cli)
        .and_then(|_| cli.common.lift_trailing_flags())
        .and_then(|_| run(&cli))
    {
        Ok(code) => code,
        Err(err) => {
            eprintln!("antmmf-eval: error: {}", antmmf_apps::render_error(&err));
            ExitCode::from(2)
        }
    }
}

/// Moves this binary's flags written after the `key value` pairs out of the override list
/// (only key positions are inspected, so values stay values).
fn lift_eval_flags(cli: &mut Cli) -> anyhow::Result<()> {
    let tokens = std::mem::take(&mut cli.common.overrides);
    let mut kept = Vec::with_capacity(tokens.len());
    let mut it = tokens.into_iter();
    while let Some(tok) = it.next() {
        let (flag, inline) = match tok.split_once('=') {
            Some((f, v)) if tok.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (tok.clone(), None),
        };
        let mut value = |name: &str| -> anyhow::Result<String> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) => Ok(v),
                None => anyhow::bail!("{name} needs a value"),
            }
        };
        match flag.as_str() {
            "--task" => cli.task = Some(value("--task")?),
            "--checkpoint" => cli.checkpoint = Some(value("--checkpoint")?.into()),
            "--random-init" | "--random_init" => cli.random_init = true,
            "--l2-topk" | "--l2_topk" => cli.l2_topk = value("--l2-topk")?,
            "--split" => cli.split = value("--split")?,
            "--out" => cli.out = Some(value("--out")?.into()),
            "--save-embeddings" | "--save_embeddings" => cli.save_embeddings = true,
            "--backend" | "--devices" | "--config" | "--config_override" | "--config-override"
            | "--local_rank" | "--local-rank"
                if inline.is_none() =>
            {
                // A shared flag with its value: left for `lift_trailing_flags`.
                kept.push(tok);
                kept.extend(it.next());
            }
            _ if tok.starts_with("--") => kept.push(tok),
            _ => {
                kept.push(tok);
                if let Some(v) = it.next() {
                    kept.push(v);
                }
            }
        }
    }
    cli.common.overrides = kept;
    Ok(())
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    antmmf_core::logging::init(log::LevelFilter::Info);
    let mut config = load_config(&cli.common)?;
    let backend = cli.common.backend_kind()?;
    let devices = cli.common.device_ids()?;
    antmmf_core::backend::ensure_compiled(backend, &antmmf_apps::compiled_backends())?;
    let task = match &cli.task {
        Some(t) => Some(
            EvalTask::parse(t)
                .ok_or_else(|| anyhow::anyhow!("--task {t:?}: use retrieval, vqa or mcqa"))?,
        ),
        None => None,
    };
    if let Some(task) = task {
        apply_task(&mut config, task)?;
    }
    let mut acted_on: Vec<&str> = antmmf_apps::ACTED_ON_KEYS.to_vec();
    acted_on.extend_from_slice(antmmf_tasks::eval::EVAL_ACTED_ON_KEYS);
    let ignored = config.ignored_keys(&acted_on);
    if !ignored.is_empty() {
        log::warn!(
            "{} config key(s) are declared by AntMMF but not acted on by this build: {}",
            ignored.len(),
            ignored.join(", ")
        );
    }
    if cli.common.print_config {
        print!("{}", config.to_yaml()?);
        return Ok(ExitCode::SUCCESS);
    }
    if task.is_none() {
        anyhow::bail!("--task is required: retrieval, vqa or mcqa");
    }
    let split = match cli.split.as_str() {
        "test" => Split::Test,
        "val" => Split::Val,
        other => anyhow::bail!("--split {other:?}: use test or val"),
    };
    let l2_topk = match cli.l2_topk.as_str() {
        "all" => None,
        k => match k.parse::<usize>() {
            Ok(k) if k > 0 => Some(k),
            _ => anyhow::bail!("--l2-topk {k:?}: use a positive number or `all`"),
        },
    };
    let plan = RunPlan::from_config(&config)?;
    let checkpoint = resolve_checkpoint(cli.checkpoint.as_deref(), &plan, cli.random_init)?;
    if let Some(c) = &checkpoint
        && !c.is_file()
    {
        anyhow::bail!("checkpoint {} does not exist", c.display());
    }
    let options = EvalOptions {
        split,
        checkpoint,
        l2_topk,
        out_dir: cli.out.clone(),
        save_embeddings: cli.save_embeddings,
    };
    let report = antmmf_apps::with_backend(
        backend,
        &devices,
        Eval {
            plan: &plan,
            options: &options,
        },
    )??;
    print!("{}", metrics_table(&report.metrics));
    println!(
        "{} predictions, {:.1} s; written to {}",
        report.predictions,
        report.seconds,
        report.out_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// The generic entry point, called once with the selected backend (evaluation runs on its
/// inner, non-autodiff backend).
struct Eval<'a> {
    plan: &'a RunPlan,
    options: &'a EvalOptions,
}

impl antmmf_apps::BackendVisitor for Eval<'_> {
    type Output = Result<antmmf_tasks::eval::EvalReport, antmmf_tasks::run::RunError>;

    fn visit<B: burn::tensor::backend::AutodiffBackend>(
        self,
        kind: antmmf_core::backend::BackendKind,
        devices: Vec<B::Device>,
    ) -> Self::Output {
        log::info!("backend {kind}, devices {devices:?}");
        antmmf_tasks::eval::evaluate_run::<B::InnerBackend>(self.plan, self.options, &devices)
    }
}
