//! `antmmf-data`: data tools. One subcommand per tool, each a separate `run_*` function over a
//! library call, so new tools are an enum variant, an args struct and a function:
//! - `synth`: generate the synthetic, learnable video-text set (`antmmf_data::synthetic`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use antmmf_data::synthetic::{SyntheticConfig, generate};
use clap::{Args, Parser, Subcommand};

/// Data tools for AntMMF video-text data sets.
#[derive(Debug, Parser)]
#[command(name = "antmmf-data", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The tools.
#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a synthetic, learnable video-text set (coloured shapes moving in a direction)
    /// with AntMMF annotation files for pretraining, retrieval, open QA and multi-choice QA.
    #[command(
        after_help = "Example:\n  antmmf-data synth --out data/synth --train 64 --test 64 --frames 16 --size 64 --seed 0"
    )]
    Synth(SynthArgs),
}

/// Flags of `synth`.
#[derive(Debug, Args)]
struct SynthArgs {
    /// Output folder (created; must be empty unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Train clips (at least shapes x colours x directions).
    #[arg(long, default_value_t = 64)]
    train: usize,
    /// Held-out clips.
    #[arg(long, default_value_t = 64)]
    test: usize,
    /// Frames per clip.
    #[arg(long, default_value_t = 16)]
    frames: usize,
    /// Frame width and height in pixels (even).
    #[arg(long, default_value_t = 64)]
    size: u32,
    /// Seed: the same seed writes the same files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Frame rate written into the clips.
    #[arg(long, default_value_t = 8)]
    fps: u32,
    /// Number of shapes used (1-6: circle, square, triangle, cross, star, diamond).
    #[arg(long, default_value_t = 4)]
    shapes: usize,
    /// Number of colours used (1-8: red, green, blue, yellow, purple, orange, cyan, white).
    #[arg(long, default_value_t = 4)]
    colours: usize,
    /// Number of directions used (1-8: left, right, up, down, then the diagonals).
    #[arg(long, default_value_t = 4)]
    directions: usize,
    /// Captions per train clip.
    #[arg(long, default_value_t = 3)]
    train_captions: usize,
    /// Captions per held-out clip.
    #[arg(long, default_value_t = 1)]
    test_captions: usize,
    /// Options per multi-choice question (the right caption and distractors).
    #[arg(long, default_value_t = 5)]
    mcqa_options: usize,
    /// Flat backgrounds only (no light textures).
    #[arg(long)]
    plain: bool,
    /// Write into a non-empty folder, replacing an earlier set's files.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Synth(args) => run_synth(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("antmmf-data: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// `synth`: generates the set and prints its summary and the time it took.
fn run_synth(args: &SynthArgs) -> anyhow::Result<()> {
    let cfg = SyntheticConfig {
        num_train_videos: args.train,
        num_test_videos: args.test,
        frames: args.frames,
        width: args.size,
        height: args.size,
        fps: args.fps,
        seed: args.seed,
        num_shapes: args.shapes,
        num_colours: args.colours,
        num_directions: args.directions,
        train_captions_per_video: args.train_captions,
        test_captions_per_video: args.test_captions,
        mcqa_options: args.mcqa_options,
        textured_backgrounds: !args.plain,
        overwrite: args.force,
        ..SyntheticConfig::default()
    };
    let started = Instant::now();
    let summary = generate(&cfg, &args.out)?;
    println!("{summary}");
    println!("  generated in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}
