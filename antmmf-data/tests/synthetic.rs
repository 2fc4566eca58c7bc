//! Tests of the synthetic data set generator: determinism, split disjointness, label balance,
//! loading with the annotation readers, and decoding the clips with the media decoder.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use antmmf_data::annotations::classification::{ClassLabel, ClassificationAnnotations, LabelSpace};
use antmmf_data::annotations::mcqa::McQaAnnotations;
use antmmf_data::annotations::pretrain::PretrainAnnotations;
use antmmf_data::annotations::retrieval::{RetrievalAnnotations, RetrievalMode};
use antmmf_data::media::{DecodeOptions, VideoDecoder};
use antmmf_data::synthetic::{
    Colour, Direction, Shape, Split, SyntheticConfig, SyntheticError, SyntheticSummary, generate,
};

/// 2 shapes x 2 colours x 2 directions = 8 combinations; 8 train clips, 4 held-out clips.
fn small_config(seed: u64) -> SyntheticConfig {
    SyntheticConfig {
        num_train_videos: 8,
        num_test_videos: 4,
        frames: 12,
        width: 64,
        height: 64,
        seed,
        num_shapes: 2,
        num_colours: 2,
        num_directions: 2,
        ..Default::default()
    }
}

fn generate_small(seed: u64) -> (tempfile::TempDir, SyntheticSummary) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("synth");
    let summary = generate(&small_config(seed), &out).expect("generate");
    (dir, summary)
}

/// Every file under `dir`, relative path -> bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("prefix").display().to_string();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

#[test]
fn same_seed_gives_identical_files_and_another_seed_does_not() {
    let (a_dir, a) = generate_small(7);
    let (b_dir, b) = generate_small(7);
    let (c_dir, c) = generate_small(8);
    let ta = tree(&a.out_dir);
    let tb = tree(&b.out_dir);
    // 12 clips + 8 jsonl + labels + README.
    assert_eq!(ta.len(), 12 + 8 + 2, "{:?}", ta.keys().collect::<Vec<_>>());
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (name, bytes) in &ta {
        assert!(
            bytes == &tb[name],
            "{name} differs between two runs with seed 7"
        );
    }
    assert_eq!(a.videos, b.videos);
    let tc = tree(&c.out_dir);
    assert_ne!(ta["retrieval_train.jsonl"], tc["retrieval_train.jsonl"]);
    assert_ne!(
        ta["videos/synth_train_0000.mp4"],
        tc["videos/synth_train_0000.mp4"]
    );
    drop((a_dir, b_dir, c_dir));
}

#[test]
fn splits_are_disjoint_and_train_covers_every_combination() {
    let (_dir, s) = generate_small(1);
    let train: Vec<_> = s.split(Split::Train).collect();
    let test: Vec<_> = s.split(Split::Test).collect();
    assert_eq!((train.len(), test.len()), (8, 4));
    let train_names: HashSet<&str> = train.iter().map(|v| v.name.as_str()).collect();
    assert!(test.iter().all(|v| !train_names.contains(v.name.as_str())));
    let combos: HashSet<(Shape, Colour, Direction)> = train
        .iter()
        .map(|v| (v.shape, v.colour, v.direction))
        .collect();
    assert_eq!(combos.len(), 8);
    // The files agree: no held-out clip in any train file, no train clip in a test file.
    let dir = &s.out_dir;
    let rtrain =
        RetrievalAnnotations::load(&[dir.join("retrieval_train.jsonl")], RetrievalMode::Train)
            .expect("retrieval train");
    let rtest =
        RetrievalAnnotations::load(&[dir.join("retrieval_test.jsonl")], RetrievalMode::Eval)
            .expect("retrieval test");
    let a: BTreeSet<_> = rtrain.video_names().iter().collect();
    let b: BTreeSet<_> = rtest.video_names().iter().collect();
    assert_eq!((a.len(), b.len()), (8, 4));
    assert!(a.is_disjoint(&b));
    let pre = PretrainAnnotations::load(&[dir.join("pretrain.jsonl")]).expect("pretrain");
    for g in pre.groups() {
        let stem = g[0].clip_name.trim_end_matches(".mp4");
        assert!(train_names.contains(stem), "{stem} in pretraining");
    }
}

#[test]
fn annotation_files_load_with_the_readers() {
    let (_dir, s) = generate_small(3);
    let dir = &s.out_dir;
    let cfg = &s.config;

    let pre = PretrainAnnotations::load(&[dir.join("pretrain.jsonl")]).expect("pretrain");
    assert_eq!(pre.len(), 8, "one window per train clip");
    for g in pre.groups() {
        assert_eq!(g.len(), 3);
        assert!(g[0].clip_name.ends_with(".mp4"));
        assert_eq!((g[0].start, g[0].end), (Some(0.0), Some(12.0 / 8.0)));
        let captions: HashSet<_> = g.iter().map(|i| i.caption.clone()).collect();
        assert_eq!(
            captions.len(),
            3,
            "differently worded captions: {captions:?}"
        );
    }

    let rtrain =
        RetrievalAnnotations::load(&[dir.join("retrieval_train.jsonl")], RetrievalMode::Train)
            .expect("retrieval train");
    assert_eq!((rtrain.len(), rtrain.items().len()), (8, 24));
    let rtest =
        RetrievalAnnotations::load(&[dir.join("retrieval_test.jsonl")], RetrievalMode::Eval)
            .expect("retrieval test");
    assert_eq!(rtest.len(), 4);
    assert_eq!(rtest.items()[2].key.as_deref(), Some("ret2"));
    assert!(!rtest.items()[0].clip_name.contains('.'), "no extension");

    let labels: Vec<String> =
        serde_json::from_slice(&std::fs::read(dir.join("vqa_labels.json")).expect("labels"))
            .expect("labels json");
    assert_eq!(
        labels,
        ["red", "green", "left", "right", "circle", "square"]
    );
    assert_eq!(labels, s.labels);
    let space = LabelSpace {
        names: labels.clone(),
        num_classes: None,
    };
    for (file, n) in [("vqa_train.jsonl", 24), ("vqa_test.jsonl", 12)] {
        let vqa = ClassificationAnnotations::load(&[dir.join(file)], &space).expect(file);
        assert_eq!(vqa.len(), n, "{file}: 3 questions per clip");
    }

    for (file, n) in [("mcqa_train.jsonl", 8), ("mcqa_test.jsonl", 4)] {
        let mc = McQaAnnotations::load(&[dir.join(file)]).expect(file);
        assert_eq!(mc.len(), n);
        for item in mc.items() {
            assert_eq!(item.options.len(), cfg.mcqa_options);
            let distinct: HashSet<_> = item.options.iter().collect();
            assert_eq!(distinct.len(), 5, "{:?}", item.options);
            let answer = item.answer.expect("answer");
            let v = s
                .videos
                .iter()
                .find(|v| v.name == item.clip_name)
                .expect("clip");
            // The right option names the clip's colour; the others may not all do.
            let right = &item.options[answer];
            assert!(
                mentions(right, v.colour, v.direction),
                "{right} for {:?} {:?}",
                v.colour,
                v.direction
            );
        }
    }
    // Keys in AntMMF's order and Python's separators.
    let first = std::fs::read_to_string(dir.join("retrieval_train.jsonl")).expect("read");
    assert!(
        first.starts_with(r#"{"caption": ""#)
            && first.contains(r#"", "clip_name": "synth_train_0000", "sen_id": 0}"#),
        "{first}"
    );
    // Both AntMMF forms of `answer` are written.
    let text = std::fs::read_to_string(dir.join("mcqa_test.jsonl")).expect("mcqa");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert!(lines[0]["answer"].is_u64());
    assert!(lines[1]["answer"].is_string());
}

/// Whether a caption names the colour (by one of its synonyms) and the direction.
fn mentions(caption: &str, colour: Colour, direction: Direction) -> bool {
    let colour_words: &[&str] = match colour {
        Colour::Red => &["red", "crimson", "scarlet"],
        Colour::Green => &["green", "emerald", "lime"],
        _ => return true,
    };
    let has_colour = colour_words
        .iter()
        .any(|w| caption.split(' ').any(|x| x == *w));
    let has_direction = match direction {
        Direction::Left => caption.contains("left"),
        Direction::Right => caption.contains("right"),
        _ => true,
    };
    has_colour && has_direction
}

#[test]
fn vqa_answers_are_balanced_per_question_type() {
    // 16 clips = two full cycles of the 8 combinations: every answer exactly equally often.
    let cfg = SyntheticConfig {
        num_train_videos: 16,
        num_test_videos: 8,
        frames: 2,
        ..small_config(5)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let s = generate(&cfg, dir.path()).expect("generate");
    let space = LabelSpace {
        names: s.labels.clone(),
        num_classes: None,
    };
    for (file, per_label) in [("vqa_train.jsonl", 8), ("vqa_test.jsonl", 4)] {
        let vqa = ClassificationAnnotations::load(&[dir.path().join(file)], &space).expect(file);
        let mut counts = vec![0usize; s.labels.len()];
        for item in vqa.items() {
            match item.label {
                Some(ClassLabel::Single(i)) => counts[i] += 1,
                ref other => panic!("{other:?}"),
            }
        }
        assert_eq!(counts, vec![per_label; 6], "{file}");
    }
    // MC-QA answer positions are balanced too: 16 questions over 5 positions.
    let mc = McQaAnnotations::load(&[dir.path().join("mcqa_train.jsonl")]).expect("mcqa");
    let mut pos = [0usize; 5];
    for item in mc.items() {
        pos[item.answer.expect("answer")] += 1;
    }
    assert_eq!(pos.iter().sum::<usize>(), 16);
    assert!(pos.iter().all(|&n| n == 3 || n == 4), "{pos:?}");
}

#[test]
fn clips_decode_with_the_media_decoder_and_show_the_shape_moving() {
    let (_dir, s) = generate_small(11);
    let cfg = &s.config;
    for v in &s.videos {
        let path = s.out_dir.join("videos").join(v.file_name());
        let mut dec = VideoDecoder::open(&path, DecodeOptions::default()).expect("open");
        let info = dec.info().clone();
        assert_eq!(info.frame_count, 12, "{}", v.name);
        assert_eq!((info.width, info.height), (64, 64));
        assert!((info.fps - 8.0).abs() < 0.01, "fps {}", info.fps);
        assert_eq!(info.keyframes, vec![0, 8], "{}", v.name);
        let last = cfg.frames - 1;
        let frames = dec.decode(&[0, last]).expect("decode");
        for (frame, index) in frames.iter().zip([0, last]) {
            let (cx, cy) = v.centre_at(index, cfg.frames);
            let i = ((cy as usize) * 64 + cx as usize) * 3;
            let px = &frame.data[i..i + 3];
            for c in 0..3 {
                let d = (i32::from(px[c]) - i32::from(v.rgb[c])).abs();
                assert!(d <= 24, "{} frame {index}: {px:?} vs {:?}", v.name, v.rgb);
            }
        }
        // The shape's colour centroid moves the way the direction says, by the planned distance.
        let c0 = centroid(&frames[0].data, v.rgb);
        let c1 = centroid(&frames[1].data, v.rgb);
        let (dx, dy) = v.direction.step();
        let (ex, ey) = (v.end.0 - v.start.0, v.end.1 - v.start.1);
        assert!(
            (c1.0 - c0.0 - ex).abs() < 1.5,
            "{}: x {c0:?} -> {c1:?}",
            v.name
        );
        assert!(
            (c1.1 - c0.1 - ey).abs() < 1.5,
            "{}: y {c0:?} -> {c1:?}",
            v.name
        );
        assert_eq!((ex.signum() as i32) * dx.abs(), dx);
        assert_eq!((ey.signum() as i32) * dy.abs(), dy);
        assert!(
            ex.abs().max(ey.abs()) >= 0.3 * 64.0 - 1.0,
            "travel {ex} {ey}"
        );
    }
}

/// Centroid of the pixels within 40 of `rgb` in every channel.
fn centroid(data: &[u8], rgb: [u8; 3]) -> (f32, f32) {
    let (mut sx, mut sy, mut n) = (0.0f32, 0.0f32, 0.0f32);
    for (i, px) in data.chunks_exact(3).enumerate() {
        if (0..3).all(|c| (i32::from(px[c]) - i32::from(rgb[c])).abs() <= 40) {
            sx += (i % 64) as f32 + 0.5;
            sy += (i / 64) as f32 + 0.5;
            n += 1.0;
        }
    }
    assert!(n > 50.0, "shape visible: {n} pixels");
    (sx / n, sy / n)
}

#[test]
fn bad_settings_and_a_non_empty_folder_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SyntheticConfig {
        num_train_videos: 7,
        ..small_config(0)
    };
    match generate(&cfg, dir.path()) {
        Err(SyntheticError::Config { field, .. }) => assert_eq!(field, "num_train_videos"),
        other => panic!("{other:?}"),
    }
    std::fs::write(dir.path().join("notes.txt"), "keep").expect("write");
    let cfg = SyntheticConfig {
        frames: 2,
        ..small_config(0)
    };
    let err = generate(&cfg, dir.path()).expect_err("non-empty");
    assert!(matches!(err, SyntheticError::NotEmpty { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
    // With overwrite, a smaller set replaces the clips of a larger one and keeps other files.
    let big = SyntheticConfig {
        overwrite: true,
        num_train_videos: 9,
        ..cfg.clone()
    };
    generate(&big, dir.path()).expect("first");
    let small = SyntheticConfig {
        overwrite: true,
        ..cfg
    };
    generate(&small, dir.path()).expect("second");
    let clips = std::fs::read_dir(dir.path().join("videos"))
        .expect("videos")
        .count();
    assert_eq!(clips, 12);
    assert!(dir.path().join("notes.txt").exists());
}

/// What a simple hand-written reader sees in a decoded frame: the shape's mask (saturated
/// pixels), its mean colour, centroid, and the fill ratio and top/bottom balance of its box.
struct Seen {
    mean: [f32; 3],
    centroid: (f32, f32),
    fill: f32,
    top_over_bottom: f32,
}

fn look(data: &[u8], width: usize) -> Seen {
    let mask: Vec<bool> = data
        .chunks_exact(3)
        .map(|p| {
            let (lo, hi) = (*p.iter().min().unwrap_or(&0), *p.iter().max().unwrap_or(&0));
            hi - lo > 90
        })
        .collect();
    let (mut sum, mut n) = ([0f32; 3], 0f32);
    let (mut sx, mut sy) = (0f32, 0f32);
    let (mut x0, mut x1, mut y0, mut y1) = (usize::MAX, 0, usize::MAX, 0);
    for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m) {
        let (x, y) = (i % width, i / width);
        for c in 0..3 {
            sum[c] += f32::from(data[i * 3 + c]);
        }
        n += 1.0;
        sx += x as f32;
        sy += y as f32;
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    assert!(n > 50.0, "shape visible: {n} pixels");
    let (bw, bh) = ((x1 - x0 + 1) as f32, (y1 - y0 + 1) as f32);
    let third = (y1 - y0 + 1) / 3;
    let rows = |from: usize, to: usize| {
        (from..to)
            .map(|y| (x0..=x1).filter(|&x| mask[y * width + x]).count())
            .sum::<usize>() as f32
    };
    Seen {
        mean: sum.map(|s| s / n),
        centroid: (sx / n, sy / n),
        fill: n / (bw * bh),
        top_over_bottom: rows(y0, y0 + third) / rows(y1 + 1 - third, y1 + 1).max(1.0),
    }
}

#[test]
fn a_hand_written_reader_recovers_every_attribute_from_two_decoded_frames() {
    // All 64 default combinations, decoded from the H.264 files: the attributes survive
    // encoding and are visible at 64x64 in the first and last frames alone.
    let cfg = SyntheticConfig {
        num_train_videos: 64,
        num_test_videos: 2,
        frames: 8,
        seed: 21,
        ..Default::default()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let s = generate(&cfg, dir.path()).expect("generate");
    let mut right = [0usize; 3];
    for v in &s.videos {
        let path = dir.path().join("videos").join(v.file_name());
        let mut dec = VideoDecoder::open(&path, DecodeOptions::default()).expect("open");
        let frames = dec.decode(&[0, 7]).expect("decode");
        let (a, b) = (look(&frames[0].data, 64), look(&frames[1].data, 64));
        let colour = *Colour::ALL[..4]
            .iter()
            .min_by_key(|c| {
                let rgb = c.rgb();
                (0..3)
                    .map(|i| (a.mean[i] - f32::from(rgb[i])).powi(2) as u32)
                    .sum::<u32>()
            })
            .expect("colours");
        let (dx, dy) = (b.centroid.0 - a.centroid.0, b.centroid.1 - a.centroid.1);
        let direction = if dx.abs() > dy.abs() {
            if dx < 0.0 {
                Direction::Left
            } else {
                Direction::Right
            }
        } else if dy < 0.0 {
            Direction::Up
        } else {
            Direction::Down
        };
        let shape = if a.fill > 0.9 {
            Shape::Square
        } else if a.fill > 0.7 {
            Shape::Circle
        } else if a.top_over_bottom < 0.6 {
            Shape::Triangle
        } else {
            Shape::Cross
        };
        right[0] += usize::from(colour == v.colour);
        right[1] += usize::from(direction == v.direction);
        right[2] += usize::from(shape == v.shape);
        assert!(dx.abs().max(dy.abs()) > 15.0, "{}: moves {dx} {dy}", v.name);
    }
    assert_eq!(right, [66, 66, 66], "colour, direction, shape read right");
}
