//! `antmmf-eval`: evaluate an AntMMF UniVL checkpoint from an AntMMF-style config.

use antmmf_apps::{CommonArgs, load_config, warn_ignored_keys};
use clap::Parser;
use std::process::ExitCode;

/// Evaluate an AntMMF UniVL model (retrieval, open QA, multi-choice QA).
#[derive(Debug, Parser)]
#[command(
    name = "antmmf-eval",
    version,
    after_help = "Example:\n  antmmf-eval --config configs/quickstart.yml --backend flex \\\n      training_parameters.batch_size 8 optimizer_attributes.params.lr 1e-4\n\nOverrides are `key value` pairs with AntMMF's key paths (`a.b[1].c` indexes lists);\nvalues are read like YAML (True, 5e-5, [1, 2], None). Priority, low to high: defaults <\nincludes < the config file < --config_override FILE < key value pairs."
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    match cli.common.lift_trailing_flags().and_then(|_| run(&cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("antmmf-eval: error: {err:#}");
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
    let head = config
        .get("model_attributes.univl.training_head_type")
        .and_then(|v| v.as_str())
        .unwrap_or("video_pretraining")
        .to_string();
    anyhow::bail!(
        "training head `{head}` cannot be evaluated by this build yet (backend {backend}, devices {devices:?}); \
         use --print-config to validate the configuration"
    )
}
