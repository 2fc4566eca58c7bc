//! `antmmf-convert`: reads a PyTorch / safetensors checkpoint through the key tables of
//! `antmmf_models::import` and writes Burn's native record (`NamedMpkFileRecorder`, full
//! precision, `.mpk`), printing the load report. Every loader in antmmf-models accepts either
//! form: `WeightFile::open` recognises the `.mpk` extension, and model folders may hold
//! `model.mpk` instead of `model.safetensors`.

use antmmf_core::config::{Config, ConfigSources};
use antmmf_models::bert::BertConfig;
use antmmf_models::clip::ClipVisionConfig;
use antmmf_models::efficientnet::EfficientNetLiteConfig;
use antmmf_models::import::{KeyMap, LoadOptions, LoadReport, WeightFile, save_native};
use antmmf_models::video_swin::VideoSwinConfig;
use antmmf_tasks::run::RunPlan;
use anyhow::{Context, Result, bail};
use burn::module::Module;
use clap::{Parser, ValueEnum};
use std::path::{Path, PathBuf};

type B = burn::backend::Flex;

/// Checkpoint families (one key table each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Family {
    /// HF BERT / MiniLM (`BertModel`, or the `bert.` subtree of MLM/pre-training files).
    Bert,
    /// HF CLIP vision tower (`CLIPVisionModel` or a full `CLIPModel` file).
    Clip,
    /// torchvision `swin3d_t/s/b` (`features.{k}` keys).
    Swin3d,
    /// Original Video Swin / VIOLET backbone (`backbone.layers.{i}.blocks.{j}` keys).
    VioletSwin,
    /// lukemelas-style EfficientNet-Lite (`_conv_stem`, `_blocks.N`).
    Efficientnet,
    /// An AntMMF UniVL checkpoint (`.ckpt`/`.pth`, `model.`/`module.` prefixes).
    Antmmf,
}

/// Convert a checkpoint to Burn's native record.
#[derive(Debug, Parser)]
#[command(
    name = "antmmf-convert",
    version,
    after_help = "--config depends on the family:\n  bert, clip      HF config.json (default: config.json next to --from)\n  swin3d          JSON of antmmf's VideoSwinConfig (default: swin3d_t)\n  violet-swin     JSON of antmmf's VideoSwinConfig (default: the VIOLET backbone)\n  efficientnet    JSON of antmmf's EfficientNetLiteConfig (default: lite0)\n  antmmf          the AntMMF YAML config of the run (required)\nThe record is written to --out with the extension .mpk. Load it with the same config:\nWeightFile::open(\"x.mpk\")?.load_into(config.init(..), ..), or put it in a model folder as\nmodel.mpk next to config.json."
)]
struct Cli {
    /// The checkpoint (`.safetensors`, `.bin`, `.pth`, `.pt`, `.ckpt`) or an HF model folder.
    #[arg(long, value_name = "PATH")]
    from: PathBuf,
    /// Which key table and model to use.
    #[arg(long, value_enum)]
    family: Family,
    /// The native record to write (extension set to `.mpk`).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// The model config (see below).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Accept model parameters the checkpoint lacks (they keep their initial values).
    #[arg(long = "allow-missing", alias = "allow_missing")]
    allow_missing: bool,
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

/// The weights file: `--from` itself, or the weights file of a model folder.
fn weights_path(from: &Path) -> Result<PathBuf> {
    if from.is_dir() {
        Ok(antmmf_models::import::find_weights_file(from)?)
    } else {
        Ok(from.to_path_buf())
    }
}

/// `--config`, or `config.json` next to the checkpoint.
fn hf_config_path(cli: &Cli) -> Result<PathBuf> {
    if let Some(path) = &cli.config {
        return Ok(path.clone());
    }
    let dir = if cli.from.is_dir() {
        cli.from.clone()
    } else {
        cli.from.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    let path = dir.join("config.json");
    if !path.is_file() {
        bail!("no --config given and no {} found", path.display());
    }
    Ok(path)
}

fn load_and_save<M: Module<B>>(
    file: &WeightFile,
    module: M,
    keys: &KeyMap,
    options: &LoadOptions,
    out: &Path,
) -> Result<(LoadReport, PathBuf, usize)> {
    let (module, report) = file
        .load_into(module, keys, options)
        .with_context(|| format!("load {}", file.path().display()))?;
    let params = module.num_params();
    let written = save_native(module, out)?;
    Ok((report, written, params))
}

fn run(cli: &Cli) -> Result<()> {
    let device = Default::default();
    let file = WeightFile::open(weights_path(&cli.from)?)?;
    let options = LoadOptions {
        allow_missing: cli.allow_missing,
        prefix: None,
    };
    let out = cli.out.as_path();
    let (report, written, params) = match cli.family {
        Family::Bert => {
            let config = BertConfig::from_file(hf_config_path(cli)?)?;
            let pooler = file.is_native() || file.keys().any(|k| k.contains("pooler."));
            let model = config.init_with_pooler::<B>(pooler, &device);
            load_and_save(&file, model, &KeyMap::hf_bert(), &options, out)?
        }
        Family::Clip => {
            let config = ClipVisionConfig::from_file(hf_config_path(cli)?)?;
            let model = config.init::<B>(&device);
            load_and_save(&file, model, &KeyMap::hf_clip_vision(), &options, out)?
        }
        Family::Swin3d | Family::VioletSwin => {
            let (default, keys) = if cli.family == Family::Swin3d {
                (VideoSwinConfig::swin3d_t(), KeyMap::torchvision_swin3d())
            } else {
                (VideoSwinConfig::violet(), KeyMap::video_swin())
            };
            let config: VideoSwinConfig = match &cli.config {
                Some(path) => serde_json::from_value(read_json(path)?)
                    .with_context(|| format!("{}: not a VideoSwinConfig", path.display()))?,
                None => default,
            };
            config.validate()?;
            load_and_save(&file, config.init::<B>(&device), &keys, &options, out)?
        }
        Family::Efficientnet => {
            let config: EfficientNetLiteConfig = match &cli.config {
                Some(path) => serde_json::from_value(read_json(path)?).with_context(|| {
                    format!("{}: not an EfficientNetLiteConfig", path.display())
                })?,
                None => EfficientNetLiteConfig::lite(0),
            };
            let keys = KeyMap::lukemelas_efficientnet();
            load_and_save(&file, config.init::<B>(&device), &keys, &options, out)?
        }
        Family::Antmmf => {
            let Some(path) = &cli.config else {
                bail!("--family antmmf needs --config: the AntMMF YAML config of the run");
            };
            let config = Config::load(&ConfigSources {
                config: Some(path.clone()),
                config_override: None,
                overrides: Vec::new(),
            })?;
            let plan = RunPlan::from_config(&config)?;
            let model = plan.model.init::<B>(&device)?;
            let (model, report) = model.load_antmmf_checkpoint(file.path(), &options)?;
            let params = model.num_params();
            (report, save_native(model, out)?, params)
        }
    };
    println!("{report}");
    println!(
        "wrote {} ({params} parameters, {} tensors loaded)",
        written.display(),
        report.loaded.len()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    antmmf_apps::exit_quietly_on_closed_pipe();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("antmmf-convert: {}", antmmf_apps::render_error(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
