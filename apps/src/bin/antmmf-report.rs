//! `antmmf-report`: a run directory's training curves (loss, learning rate, validation metric)
//! as a PNG and a summary on the terminal, from `logs/train_log.json`, `logs/metrics.jsonl` and
//! `config.yaml`.
//!
//! Axis labels and titles need a TrueType font: `$ANTMMF_FONT`, else the first of the usual
//! system fonts (DejaVu, Liberation, Noto); without one the curves are drawn without text.

use anyhow::Context;
use clap::Parser;
use plotters::prelude::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Plot and summarise an antmmf-rs run directory.
#[derive(Debug, Parser)]
#[command(
    name = "antmmf-report",
    version,
    after_help = "Example:\n  antmmf-report save/video_text_pretrain_univl_1 --png curves.png\n\nReads logs/train_log.json (one record per log interval), logs/metrics.jsonl (one line per\nvalidation) and config.yaml (batch size, monitored metric); the PNG defaults to\nRUN_DIR/logs/curves.png."
)]
struct Cli {
    /// The run directory (`<save_dir>/<task>_<model>[_<seed>]`).
    run_dir: PathBuf,

    /// Where to write the PNG (default: RUN_DIR/logs/curves.png).
    #[arg(long, value_name = "OUT")]
    png: Option<PathBuf>,

    /// Image width in pixels.
    #[arg(long, default_value_t = 1500)]
    width: u32,

    /// Image height in pixels.
    #[arg(long, default_value_t = 450)]
    height: u32,
}

/// One `train_log.json` record (extra fields are ignored).
#[derive(Debug, Deserialize)]
struct LogRecord {
    iteration: u64,
    lr: f64,
    loss: f64,
    #[serde(default)]
    sec_per_iter: f64,
}

/// One `metrics.jsonl` line.
#[derive(Debug, Deserialize)]
struct Validation {
    iteration: u64,
    #[serde(default)]
    metrics: BTreeMap<String, f64>,
    #[serde(default)]
    best_metric: Option<f64>,
    #[serde(default)]
    best_iteration: Option<u64>,
}

fn main() -> ExitCode {
    antmmf_apps::exit_quietly_on_closed_pipe();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("antmmf-report: error: {}", antmmf_apps::render_error(&err));
            ExitCode::from(2)
        }
    }
}

fn read_history(run_dir: &Path) -> anyhow::Result<Vec<LogRecord>> {
    let path = run_dir.join("logs").join("train_log.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read the training log", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a training log", path.display()))
}

fn read_validations(run_dir: &Path) -> anyhow::Result<Vec<Validation>> {
    let path = run_dir.join("logs").join("metrics.jsonl");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // A torn last line (a crash mid-write) is skipped, not fatal.
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(e) => eprintln!(
                "antmmf-report: {}: line {} skipped: {e}",
                path.display(),
                n + 1
            ),
        }
    }
    Ok(out)
}

/// `training_parameters.{batch_size, monitored_metric, metric_minimize}` of the run's config.
fn read_config(run_dir: &Path) -> (Option<u64>, Option<String>, bool) {
    let path = run_dir.join("config.yaml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return (None, None, false);
    };
    let Ok(v) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) else {
        return (None, None, false);
    };
    let t = v.get("training_parameters");
    let get = |k: &str| t.and_then(|t| t.get(k));
    (
        get("batch_size").and_then(serde_yaml_ng::Value::as_u64),
        get("monitored_metric")
            .and_then(serde_yaml_ng::Value::as_str)
            .map(str::to_string),
        get("metric_minimize")
            .and_then(serde_yaml_ng::Value::as_bool)
            .unwrap_or(false),
    )
}

/// The validation metric to plot: the monitored one (matched by suffix), else the first.
fn pick_metric(validations: &[Validation], monitored: Option<&str>) -> Option<String> {
    let keys: Vec<&String> = validations.iter().flat_map(|v| v.metrics.keys()).collect();
    monitored
        .and_then(|m| {
            keys.iter()
                .find(|k| k.as_str() == m || k.ends_with(&format!("/{m}")))
                .map(|k| k.to_string())
        })
        .or_else(|| keys.first().map(|k| k.to_string()))
}

const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Registers a TrueType font for the labels; false when none is found.
fn register_font() -> bool {
    let env = std::env::var("ANTMMF_FONT").ok();
    let candidates = env
        .iter()
        .map(String::as_str)
        .chain(FONT_CANDIDATES.iter().copied());
    for path in candidates {
        if let Ok(bytes) = std::fs::read(path) {
            // plotters keeps registered fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

/// One curve panel.
struct Panel {
    title: String,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    log_y: bool,
}

fn range(points: &[(f64, f64)]) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in points {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    if points.is_empty() {
        return ((0.0, 1.0), (0.0, 1.0));
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        let pad = y0.abs().max(1e-8) * 0.05;
        y0 -= pad;
        y1 += pad;
    } else {
        let pad = (y1 - y0) * 0.05;
        y0 -= pad;
        y1 += pad;
    }
    ((x0, x1), (y0, y1))
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    text: bool,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: plotters::drawing::DrawingAreaErrorKind<DB::ErrorType>| {
        anyhow::anyhow!("drawing {}: {e:?}", panel.title)
    };
    let points: Vec<(f64, f64)> = if panel.log_y {
        panel
            .points
            .iter()
            .filter(|(_, y)| *y > 0.0)
            .map(|(x, y)| (*x, y.log10()))
            .collect()
    } else {
        panel
            .points
            .iter()
            .filter(|(_, y)| y.is_finite())
            .copied()
            .collect()
    };
    let ((x0, x1), (y0, y1)) = range(&points);
    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if text {
        builder
            .caption(&panel.title, ("sans-serif", 20))
            .x_label_area_size(35)
            .y_label_area_size(60);
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
    if text {
        let log_y = panel.log_y;
        // Enough decimals to tell the ~6 tick labels apart.
        let decimals = (-((y1 - y0) / 6.0).log10()).ceil().clamp(0.0, 8.0) as usize + 1;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .x_labels(((x1 - x0) as usize + 1).min(6))
            .y_labels(6)
            .y_label_formatter(&move |v| {
                if log_y {
                    format!("{:.2e}", 10f64.powf(*v))
                } else {
                    format!("{v:.decimals$}")
                }
            })
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(err)?;
    }
    chart
        .draw_series(LineSeries::new(points.iter().copied(), &panel.color))
        .map_err(err)?;
    if points.len() <= 40 {
        chart
            .draw_series(
                points
                    .iter()
                    .map(|p| Circle::new(*p, 3, panel.color.filled())),
            )
            .map_err(err)?;
    }
    Ok(())
}

fn draw_png(path: &Path, panels: &[Panel], width: u32, height: u32) -> anyhow::Result<bool> {
    let text = register_font();
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| anyhow::anyhow!("drawing: {e:?}"))?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            draw_panel(area, panel, text)?;
        }
        root.present()
            .map_err(|e| anyhow::anyhow!("drawing: {e:?}"))?;
    }
    let img = image::RgbImage::from_raw(width, height, buf)
        .ok_or_else(|| anyhow::anyhow!("image buffer size"))?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .context("PNG encoding")?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("{}: cannot create", parent.display()))?;
    }
    antmmf_core::fsutil::write_atomic(path, bytes.get_ref())
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(text)
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let history = read_history(&cli.run_dir)?;
    let validations = read_validations(&cli.run_dir)?;
    let (batch_size, monitored, minimize) = read_config(&cli.run_dir);
    if history.is_empty() {
        anyhow::bail!(
            "{}: the training log has no record yet",
            cli.run_dir.join("logs/train_log.json").display()
        );
    }
    let metric = pick_metric(&validations, monitored.as_deref());
    let mut panels = vec![
        Panel {
            title: "training loss".into(),
            points: history
                .iter()
                .map(|r| (r.iteration as f64, r.loss))
                .collect(),
            color: RGBColor(31, 119, 180),
            log_y: false,
        },
        Panel {
            title: "learning rate".into(),
            points: history.iter().map(|r| (r.iteration as f64, r.lr)).collect(),
            color: RGBColor(255, 127, 14),
            log_y: true,
        },
    ];
    if let Some(m) = &metric {
        panels.push(Panel {
            title: m.clone(),
            points: validations
                .iter()
                .filter_map(|v| v.metrics.get(m).map(|y| (v.iteration as f64, *y)))
                .collect(),
            color: RGBColor(44, 160, 44),
            log_y: false,
        });
    }
    let png = cli
        .png
        .clone()
        .unwrap_or_else(|| cli.run_dir.join("logs").join("curves.png"));
    let labelled = draw_png(&png, &panels, cli.width.max(200), cli.height.max(150))?;

    // Summary.
    let last = &history[history.len() - 1];
    let timed: Vec<f64> = history
        .iter()
        .map(|r| r.sec_per_iter)
        .filter(|s| *s > 0.0)
        .collect();
    println!("run directory: {}", cli.run_dir.display());
    println!(
        "iterations: {} (last loss {:.4}, lr {:.3e})",
        last.iteration, last.loss, last.lr
    );
    if !timed.is_empty() {
        let sec = timed.iter().sum::<f64>() / timed.len() as f64;
        print!("time per iteration: {sec:.3} s");
        match batch_size {
            Some(b) if sec > 0.0 => {
                println!(" ({:.1} samples/s at batch size {b})", b as f64 / sec)
            }
            _ => println!(),
        }
    }
    match validations.last() {
        Some(v) => {
            let name = monitored.as_deref().unwrap_or("monitored metric");
            match (v.best_metric, v.best_iteration) {
                (Some(b), Some(i)) => println!(
                    "best {name}: {b:.4} at iteration {i} ({})",
                    if minimize { "minimised" } else { "maximised" }
                ),
                _ => println!("best {name}: not recorded"),
            }
            for (k, val) in &v.metrics {
                println!(
                    "  last validation (iteration {}): {k} = {val:.4}",
                    v.iteration
                );
            }
        }
        None => println!("no validation recorded (logs/metrics.jsonl)"),
    }
    println!(
        "curves: {}{}",
        png.display(),
        if labelled {
            ""
        } else {
            " (no TrueType font found: set ANTMMF_FONT for labels)"
        }
    );
    Ok(())
}
