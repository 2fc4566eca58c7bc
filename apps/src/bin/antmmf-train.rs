//! `antmmf-train`: train (and evaluate) an AntMMF UniVL model from an AntMMF-style config.

use antmmf_apps::{CommonArgs, LaunchArgs, load_config, warn_ignored_keys};
use antmmf_tasks::distributed::NodeLaunch;
use clap::Parser;
use std::process::ExitCode;

/// Train an AntMMF UniVL model from an AntMMF-style YAML config.
#[derive(Debug, Parser)]
#[command(
    name = "antmmf-train",
    version,
    after_help = "Example:\n  antmmf-train --config configs/quickstart.yml --backend flex \\\n      training_parameters.batch_size 8 optimizer_attributes.params.lr 1e-4\n\nOverrides are `key value` pairs with AntMMF's key paths (`a.b[1].c` indexes lists);\nvalues are read like YAML (True, 5e-5, [1, 2], None). Priority, low to high: defaults <\nincludes < the config file < --config_override FILE < key value pairs.\n\nMulti-node (a build with `--features collective`), one process per node:\n  antmmf-train --config X --nodes 2 --node-rank 0 --master-addr 10.0.0.1:29500   # on node 0\n  antmmf-train --config X --nodes 2 --node-rank 1 --master-addr 10.0.0.1:29500   # on node 1\ntraining_parameters.batch_size is the global batch, split over the nodes."
)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    launch: LaunchArgs,
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let Cli { common, launch } = &mut cli;
    let lifted = common.lift_trailing_flags_with(|flag, value| launch.take_flag(flag, value));
    match lifted.and_then(|_| run(&cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("antmmf-train: error: {}", antmmf_apps::render_error(&err));
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
    let launch = cli.launch.resolve(|name| std::env::var(name).ok())?;
    if let Some(l) = &launch {
        antmmf_apps::ensure_collective(l.nodes)?;
    }
    if cli.common.print_config {
        print!("{}", config.to_yaml()?);
        return Ok(ExitCode::SUCCESS);
    }
    let plan = antmmf_tasks::run::RunPlan::from_config(&config)?;
    if plan.training.distributed && launch.is_none() {
        log::warn!(
            "training_parameters.distributed is True but one node is launched: training in one \
             process (multi-node: --nodes N --node-rank R --master-addr HOST:PORT, or torch's \
             WORLD_SIZE, RANK, MASTER_ADDR)"
        );
    }
    let checkpointing = plan.model.gradient_checkpointing();
    if checkpointing {
        log::info!(
            "gradient_checkpointing: training on the checkpointing autodiff backend \
             (activations of memory-bound operations are recomputed in the backward pass)"
        );
    }
    let report = antmmf_apps::with_backend_checkpointing(
        backend,
        &devices,
        checkpointing,
        Train {
            plan: &plan,
            launch,
        },
    )??;
    if let Some((rank, nodes)) = report.node.filter(|(rank, _)| *rank > 0) {
        let iterations = report.train.as_ref().map_or(0, |t| t.state.iteration);
        println!(
            "node {rank} of {nodes}: trained {iterations} iterations; node 0 writes {}",
            report.run_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("run directory: {}", report.run_dir.display());
    if let Some(train) = &report.train {
        println!(
            "trained {} iterations; final checkpoint {}",
            train.state.iteration,
            train.final_checkpoint.display()
        );
    }
    for (split, metrics) in &report.evaluations {
        for (k, v) in metrics {
            println!("{split}: {k} = {v:.4}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The generic entry point, called once with the selected backend.
struct Train<'a> {
    plan: &'a antmmf_tasks::run::RunPlan,
    launch: Option<NodeLaunch>,
}

impl antmmf_apps::BackendVisitor for Train<'_> {
    type Output = Result<antmmf_tasks::run::RunReport, antmmf_tasks::run::RunError>;

    fn visit<B: burn::tensor::backend::AutodiffBackend>(
        self,
        kind: antmmf_core::backend::BackendKind,
        devices: Vec<B::Device>,
    ) -> Self::Output {
        if devices.len() > 1 {
            log::warn!(
                "{} devices given: one process trains on one device, so training on the first; \
                 for data parallelism over devices, start one node per device (--devices I \
                 --nodes N --node-rank R, see README)",
                devices.len()
            );
        }
        log::info!("backend {kind}, device {:?}", devices[0]);
        let options = antmmf_tasks::run::RunOptions {
            launch: self.launch,
        };
        antmmf_tasks::run::run_with::<B>(self.plan, devices[0].clone(), &options)
    }
}
