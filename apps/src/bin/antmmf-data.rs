//! `antmmf-data`: data tools. One subcommand per tool, each a separate `run_*` function over a
//! library call, so new tools are an enum variant, an args struct and a function:
//! - `synth`: generate the synthetic, learnable video-text set (`antmmf_data::synthetic`);
//! - `check`: read every annotation and open every media file of a configured dataset
//!   (`antmmf_data::check`);
//! - `frames`: sample one clip as the dataset would and report it (`antmmf_data::media::preview`);
//! - `pack`: store a folder of videos in an LMDB database (`antmmf_data::pack`);
//! - `words`: SNP-S3 significant-word mining: ranked word counts and same-lemma table
//!   (`antmmf_data::words`).
//!
//! Exit codes: 0 success, 1 `check` found problems, 2 an error (bad flag, config, file).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use antmmf_apps::{CommonArgs, load_config};
use antmmf_data::check::{CheckOptions, check_dataset};
use antmmf_data::dataset_config::Split;
use antmmf_data::media::{FramesRequest, SampleMode, TimeWindow, frames_report};
use antmmf_data::pack::{PackOptions, pack_videos};
use antmmf_data::synthetic::{SyntheticConfig, generate};
use antmmf_tasks::run::{DATASETS_KEY, RunPlan};
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
    /// Read every annotation line and open every media file of the configured dataset; print
    /// counts, caption lengths, durations and every bad line or file. Exit code 1 when anything
    /// is bad.
    #[command(
        after_help = "Example:\n  antmmf-data check --config configs/quickstart.yml --split all"
    )]
    Check(CheckArgs),
    /// Sample one clip as the dataset would: frame indices, per-frame RGB means, optional
    /// contact sheet of the transformed frames.
    #[command(
        after_help = "Example:\n  antmmf-data frames assets/video/bikes.mp4 --num-frames 8 --mode test --json --png sheet.png"
    )]
    Frames(FramesArgs),
    /// Store the videos of a folder in an LMDB database keyed by file stem (AntMMF's layout),
    /// readable as a `videos` entry ending in `.lmdb`.
    #[command(
        after_help = "Example:\n  antmmf-data pack --videos assets/video --out data/videos.lmdb"
    )]
    Pack(PackArgs),
    /// SNP-S3 significant-word mining: count the words of the captions, rank them and write the
    /// ranked counts (`intra_VTM.HT_words_count_file_dir`) and the same-lemma table
    /// (`intra_VTM.vocab_same_lema_dir`; Snowball stems as the lemma proxy).
    #[command(
        after_help = "Example:\n  antmmf-data words --annotations data/sample/pretrain_video.jsonl --vocab assets/minilm/vocab.txt --out words.json"
    )]
    Words(WordsArgs),
}

/// Flags of `words`.
#[derive(Debug, Args)]
struct WordsArgs {
    /// AntMMF jsonl annotation files (each line's `caption`, a string or a list).
    #[arg(long, required = true, num_args = 1..)]
    annotations: Vec<PathBuf>,
    /// The BERT vocab.txt the ids refer to.
    #[arg(long)]
    vocab: PathBuf,
    /// Keep case (for cased vocabularies).
    #[arg(long)]
    cased: bool,
    /// The ranked counts (JSON).
    #[arg(long)]
    out: PathBuf,
    /// The same-lemma table (JSON); default: `<out stem>_same_lemma.json` beside --out.
    #[arg(long)]
    lemmas_out: Option<PathBuf>,
    /// Words listed on stdout.
    #[arg(long, default_value_t = 20)]
    top: usize,
}

/// Which splits `check` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SplitChoice {
    Train,
    Val,
    Test,
    /// Every split the dataset configures.
    All,
}

/// Flags of `check`.
#[derive(Debug, Args)]
struct CheckArgs {
    /// The AntMMF-style YAML config.
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
    /// A YAML file whose keys override the config (only the keys it sets).
    #[arg(
        long = "config_override",
        alias = "config-override",
        value_name = "FILE"
    )]
    config_override: Option<PathBuf>,
    /// Split(s) to check.
    #[arg(long, value_enum, default_value = "all")]
    split: SplitChoice,
    /// Overrides as `key value` pairs, e.g. `task_attributes.univl_task.dataset_attributes.d.data_root_dir /data`.
    #[arg(value_name = "KEY VALUE", allow_hyphen_values = true, num_args = 0..)]
    overrides: Vec<String>,
}

/// Flags of `frames`.
#[derive(Debug, Args)]
struct FramesArgs {
    /// A video file, keyframe folder or image.
    video: PathBuf,
    /// Frames to sample.
    #[arg(long, default_value_t = 8)]
    num_frames: usize,
    /// `train` (random frame per segment, train transform) or `test` (segment middles).
    #[arg(long, default_value = "test")]
    mode: SampleMode,
    /// Window start in seconds (with --end).
    #[arg(long, requires = "end")]
    start: Option<f64>,
    /// Window end in seconds (with --start).
    #[arg(long, requires = "start")]
    end: Option<f64>,
    /// Seed of the sampling and transform draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Side of the transformed frames (contact sheet).
    #[arg(long, default_value_t = 224)]
    crop_size: usize,
    /// Print a JSON object (`indices`, `means`, `fps`, `frame_count`, ...) instead of text.
    #[arg(long)]
    json: bool,
    /// Write a contact sheet of the transformed frames to this PNG.
    #[arg(long, value_name = "OUT.png")]
    png: Option<PathBuf>,
}

/// Flags of `pack`.
#[derive(Debug, Args)]
struct PackArgs {
    /// Folder of video files (not searched recursively).
    #[arg(long)]
    videos: PathBuf,
    /// The LMDB folder to create (conventionally named `*.lmdb`).
    #[arg(long)]
    out: PathBuf,
    /// Replace a database already there.
    #[arg(long)]
    force: bool,
    /// Store files without probing that they open as videos.
    #[arg(long)]
    no_verify: bool,
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
    /// Longest travel of a shape over its clip, as a fraction of the frame (0.05-0.6; each clip
    /// draws 70-100 % of it).
    #[arg(long, default_value_t = SyntheticConfig::default().travel)]
    travel: f32,
    /// Write into a non-empty folder, replacing an earlier set's files.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    antmmf_apps::exit_quietly_on_closed_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Synth(args) => run_synth(&args).map(|()| ExitCode::SUCCESS),
        Command::Check(args) => run_check(args),
        Command::Frames(args) => run_frames(&args).map(|()| ExitCode::SUCCESS),
        Command::Pack(args) => run_pack(&args).map(|()| ExitCode::SUCCESS),
        Command::Words(args) => run_words(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("antmmf-data: error: {}", antmmf_apps::render_error(&err));
            ExitCode::from(2)
        }
    }
}

/// `words`: mines, writes both files and prints the top words.
fn run_words(args: &WordsArgs) -> anyhow::Result<()> {
    let lemmas_out = args.lemmas_out.clone().unwrap_or_else(|| {
        let stem = args
            .out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "words".into());
        args.out.with_file_name(format!("{stem}_same_lemma.json"))
    });
    let opts = antmmf_data::words::MineOptions {
        annotations: args.annotations.clone(),
        vocab: args.vocab.clone(),
        do_lower_case: !args.cased,
        out: args.out.clone(),
        lemmas_out: lemmas_out.clone(),
    };
    let counts = antmmf_data::words::mine_to_files(&opts)?;
    println!(
        "{} distinct words counted; ranked counts: {}; same-lemma table: {}",
        counts.ranked.len(),
        args.out.display(),
        lemmas_out.display()
    );
    for (word, count) in counts.ranked.iter().take(args.top) {
        println!("  {word}\t{count}");
    }
    Ok(())
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
        travel: args.travel,
        overwrite: args.force,
        ..SyntheticConfig::default()
    };
    let started = Instant::now();
    let summary = generate(&cfg, &args.out)?;
    println!("{summary}");
    println!("  generated in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// `check`: the report on stdout; exit code 1 when it lists problems.
fn run_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let common = CommonArgs {
        config: args.config,
        config_override: args.config_override,
        backend: "flex".into(),
        devices: None,
        print_config: false,
        local_rank: None,
        overrides: args.overrides,
    };
    let config = load_config(&common)?;
    let plan = RunPlan::from_config(&config)?;
    let splits: Vec<Split> = match args.split {
        SplitChoice::Train => vec![Split::Train],
        SplitChoice::Val => vec![Split::Val],
        SplitChoice::Test => vec![Split::Test],
        SplitChoice::All => [Split::Train, Split::Val, Split::Test]
            .into_iter()
            .filter(|s| plan.has_split(*s))
            .collect(),
    };
    let targets: Vec<_> = splits.iter().map(|&s| (s, plan.task_kind(s))).collect();
    anyhow::ensure!(
        !targets.is_empty(),
        "{DATASETS_KEY}.{}.annotations: no split is configured",
        plan.dataset_name
    );
    let options = CheckOptions {
        prefix: format!("{DATASETS_KEY}.{}", plan.dataset_name),
        num_labels: plan.model.num_labels,
        ..CheckOptions::default()
    };
    println!(
        "dataset {} (head {:?}), config {}",
        plan.dataset_name,
        plan.task.head,
        common.config.display()
    );
    let report = check_dataset(&plan.dataset, &plan.config_dir, &targets, &options)?;
    print!("{report}");
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `frames`: text or JSON on stdout, the contact sheet if asked.
fn run_frames(args: &FramesArgs) -> anyhow::Result<()> {
    let window = match (args.start, args.end) {
        (Some(start), Some(end)) => Some(TimeWindow { start, end }),
        _ => None,
    };
    let req = FramesRequest {
        num_frames: args.num_frames,
        mode: args.mode,
        window,
        seed: args.seed,
        crop_size: args.crop_size,
        png: args.png.clone(),
        ..FramesRequest::default()
    };
    anyhow::ensure!(req.num_frames > 0, "--num-frames must be positive");
    let r = frames_report(&args.video, &req)?;
    if args.json {
        let json = serde_json::json!({
            "source": r.source,
            "indices": r.indices,
            "means": r.channel_means,
            "fps": r.fps,
            "frame_count": r.frame_count,
            "width": r.width,
            "height": r.height,
            "tensor_shape": r.tensor_shape,
            "png": r.png,
        });
        println!("{json}");
        return Ok(());
    }
    println!(
        "{}: {} frames at {:.3} fps, {}x{}",
        r.source.display(),
        r.frame_count,
        r.fps,
        r.width,
        r.height
    );
    println!("indices: {:?}", r.indices);
    println!("frame  index  mean R  mean G  mean B");
    for (k, (i, m)) in r.indices.iter().zip(&r.channel_means).enumerate() {
        println!(
            "{k:>5}  {i:>5}  {:>6.2}  {:>6.2}  {:>6.2}",
            m[0], m[1], m[2]
        );
    }
    println!("transformed clip: {:?} [T, 3, H, W]", r.tensor_shape);
    if let Some(png) = &r.png {
        println!("contact sheet: {}", png.display());
    }
    Ok(())
}

/// `pack`: the summary of what was stored.
fn run_pack(args: &PackArgs) -> anyhow::Result<()> {
    let options = PackOptions {
        overwrite: args.force,
        verify: !args.no_verify,
        ..PackOptions::default()
    };
    let started = Instant::now();
    let summary = pack_videos(&args.videos, &args.out, &options)?;
    print!("{summary}");
    println!("  packed in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}
