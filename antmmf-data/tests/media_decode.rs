//! Decoded frames against the ffmpeg CLI oracle `fixtures/frame_decoding.json` (fixture README
//! section 7): full-resolution rgb24 sha256 exact, 224x224 bicubic sha256 exact (mean within
//! 1.5 as the documented fallback), fps / frame count / size / keyframes exact.

use std::path::PathBuf;

use antmmf_data::media::{DecodeOptions, VideoDecoder};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixtures_dir() -> PathBuf {
    std::env::var_os("ANTMMF_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures")))
}

fn media_dir() -> PathBuf {
    std::env::var_os("ANTMMF_FIXTURE_MEDIA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/video")))
}

fn oracle() -> Value {
    let path = fixtures_dir().join("frame_decoding.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (fixtures are committed under fixtures/)",
            path.display()
        )
    });
    serde_json::from_str(&text).expect("frame_decoding.json parses")
}

fn clip(name: &str) -> PathBuf {
    let p = media_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh to fetch the sample clips",
        p.display()
    );
    p
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn as_f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

#[test]
fn stream_facts_match_ffprobe() {
    let oracle = oracle();
    for (name, v) in oracle["videos"].as_object().expect("videos") {
        let dec = VideoDecoder::open(&clip(name), DecodeOptions::default()).expect("opens");
        let info = dec.info();
        assert!(
            (info.fps - v["fps"].as_f64().unwrap()).abs() < 1e-9,
            "{name} fps {}",
            info.fps
        );
        assert_eq!(
            info.frame_count as u64,
            v["frame_count"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            u64::from(info.width),
            v["width"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            u64::from(info.height),
            v["height"].as_u64().unwrap(),
            "{name}"
        );
        assert!(
            (info.duration_s - v["duration_stream_s"].as_f64().unwrap()).abs() < 1e-6,
            "{name}"
        );
        let keys: Vec<usize> = v["keyframe_indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(info.keyframes, keys, "{name}");
    }
}

fn check_variant(variant: &str, resize: Option<(u32, u32)>) {
    let oracle = oracle();
    for (name, v) in oracle["videos"].as_object().expect("videos") {
        let frames = v["frames"].as_array().expect("frames");
        let indices: Vec<usize> = frames
            .iter()
            .map(|f| f["index"].as_u64().unwrap() as usize)
            .collect();
        let opts = DecodeOptions {
            resize,
            ..DecodeOptions::default()
        };
        let mut dec = VideoDecoder::open(&clip(name), opts).expect("opens");
        let decoded = dec.decode(&indices).expect("decodes");
        assert_eq!(decoded.len(), indices.len());
        for (f, want) in decoded.iter().zip(frames) {
            let want = &want[variant];
            let mean = f.mean_rgb();
            let want_mean = as_f64s(&want["mean_rgb"]);
            for c in 0..3 {
                assert!(
                    (mean[c] - want_mean[c]).abs() < 1.5,
                    "{name} {variant} mean {mean:?} vs {want_mean:?}"
                );
            }
            assert_eq!(
                sha256_hex(&f.data),
                want["sha256_rgb24"].as_str().unwrap(),
                "{name} {variant} frame ({}x{}) bytes differ from the ffmpeg CLI's",
                f.width,
                f.height
            );
            let w = f.width as usize;
            let px = |x: usize, y: usize| f.data[(y * w + x) * 3..(y * w + x) * 3 + 3].to_vec();
            let as_u8 = |v: &Value| as_f64s(v).iter().map(|&x| x as u8).collect::<Vec<u8>>();
            assert_eq!(px(0, 0), as_u8(&want["pixel_0_0"]), "{name} {variant}");
        }
    }
}

#[test]
fn full_frames_are_identical_to_ffmpeg_cli() {
    check_variant("full", None);
}

#[test]
fn scaled_frames_are_identical_to_ffmpeg_scale_filter() {
    check_variant("scaled", Some((224, 224)));
}

#[test]
fn order_and_repeats_do_not_change_frames() {
    let oracle = oracle();
    let (name, v) = oracle["videos"].as_object().unwrap().iter().next().unwrap();
    let frames = v["frames"].as_array().unwrap();
    let idx: Vec<usize> = frames
        .iter()
        .map(|f| f["index"].as_u64().unwrap() as usize)
        .collect();
    // Reversed, with the first index asked twice.
    let mut asked: Vec<usize> = idx.iter().rev().copied().collect();
    asked.push(idx[0]);
    let mut dec = VideoDecoder::open(&clip(name), DecodeOptions::default()).unwrap();
    let got = dec.decode(&asked).unwrap();
    for (f, &i) in got.iter().zip(&asked) {
        let k = idx.iter().position(|&j| j == i).unwrap();
        assert_eq!(
            sha256_hex(&f.data),
            frames[k]["full"]["sha256_rgb24"].as_str().unwrap(),
            "{name} frame {i}"
        );
    }
    // The same decoder serves a second request.
    let again = dec.decode(&[idx[0]]).unwrap();
    assert_eq!(
        sha256_hex(&again[0].data),
        frames[0]["full"]["sha256_rgb24"].as_str().unwrap()
    );
}

/// Any subset of frames, asked from a fresh decoder (one backward seek, forward seeks between
/// GOPs), equals the same frames from one straight pass over the whole video.
#[test]
fn seeking_matches_a_straight_pass() {
    use rand::{RngExt, SeedableRng};
    let oracle = oracle();
    for name in oracle["videos"].as_object().unwrap().keys() {
        let path = clip(name);
        let mut dec = VideoDecoder::open(&path, DecodeOptions::default()).unwrap();
        let n = dec.info().frame_count;
        let all: Vec<usize> = (0..n).collect();
        let reference: Vec<String> = dec
            .decode(&all)
            .unwrap()
            .iter()
            .map(|f| sha256_hex(&f.data))
            .collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for _ in 0..4 {
            let k = rng.random_range(1..=8usize);
            let asked: Vec<usize> = (0..k).map(|_| rng.random_range(0..n)).collect();
            let mut fresh = VideoDecoder::open(&path, DecodeOptions::default()).unwrap();
            let got = fresh.decode(&asked).unwrap();
            for (f, &i) in got.iter().zip(&asked) {
                assert_eq!(
                    sha256_hex(&f.data),
                    reference[i],
                    "{name} frame {i} of {asked:?}"
                );
            }
        }
    }
}

/// Sparse sampling decodes only what it needs: one backward seek, forward seeks between GOPs,
/// no packet past the last wanted frame's GOP, and RGB conversion of the wanted frames only.
#[test]
fn sparse_sampling_decodes_only_what_is_needed() {
    use antmmf_data::media::{FrameSampler, SampleMode};
    use rand::SeedableRng;
    let oracle = oracle();
    // The clip with the most keyframes.
    let (name, v) = oracle["videos"]
        .as_object()
        .unwrap()
        .iter()
        .max_by_key(|(_, v)| v["keyframe_indices"].as_array().unwrap().len())
        .unwrap();
    let keys: Vec<usize> = v["keyframe_indices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_u64().unwrap() as usize)
        .collect();
    let mut dec = VideoDecoder::open(&clip(name), DecodeOptions::default()).unwrap();
    let n = dec.info().frame_count;
    let idx = FrameSampler::new(8, SampleMode::Eval)
        .sample(n, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
    dec.decode(&idx).unwrap();
    let stats = dec.last_stats();
    // One seek per distinct GOP holding a wanted frame (GOPs are contiguous here).
    let gop_of = |i: usize| keys.iter().rposition(|&k| k <= i).unwrap();
    let mut gops: Vec<usize> = idx.iter().map(|&i| gop_of(i)).collect();
    gops.dedup();
    assert_eq!(stats.seeks, gops.len(), "{name}: {idx:?} {stats:?}");
    assert_eq!(stats.frames_converted, 8);
    // Never more packets than from each GOP start to its last wanted frame, plus the
    // decoder's reordering delay (a few packets per GOP).
    let needed: usize = gops
        .iter()
        .map(|&g| idx.iter().filter(|&&i| gop_of(i) == g).max().unwrap() + 1 - keys[g])
        .sum();
    assert!(
        stats.packets_sent <= needed + 4 * gops.len(),
        "{name}: {stats:?}, needed {needed}"
    );
    assert!(stats.packets_sent < n, "{name}: {stats:?}");
}
