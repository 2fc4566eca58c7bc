//! Frame transforms on real decoded frames (clip and frame index from
//! `fixtures/frame_decoding.json`): eval crop geometry and a normalized pixel computed by hand,
//! determinism for a seed, one random draw shared by all frames of a clip.

use std::path::PathBuf;

use antmmf_data::media::{DecodeOptions, RgbFrame, VideoDecoder};
use antmmf_data::transforms::{IMAGENET_MEAN, IMAGENET_STD, PyVideoTransform, short_side_size};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

fn fixture_frame() -> (RgbFrame, String) {
    let fixtures = std::env::var_os("ANTMMF_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures")));
    let media = std::env::var_os("ANTMMF_FIXTURE_MEDIA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets/video")));
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join("frame_decoding.json")).expect("fixture"),
    )
    .expect("json");
    let (name, v) = json["videos"]
        .as_object()
        .expect("videos")
        .iter()
        .next()
        .expect("a video");
    let path = media.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup.sh",
        path.display()
    );
    let index = v["frames"][1]["index"].as_u64().expect("index") as usize;
    let mut dec = VideoDecoder::open(&path, DecodeOptions::default()).expect("opens");
    let mut frames = dec.decode(&[index]).expect("decodes");
    (frames.remove(0), name.clone())
}

/// PyTorch bilinear (align_corners=False) at one output pixel, in f64, written out by hand.
fn bilinear(f: &RgbFrame, c: usize, oy: usize, ox: usize, out_h: usize, out_w: usize) -> f64 {
    let (w, h) = (f.width as usize, f.height as usize);
    let src = |o: usize, out: usize, inp: usize| {
        ((o as f64 + 0.5) * inp as f64 / out as f64 - 0.5).max(0.0)
    };
    let (sy, sx) = (src(oy, out_h, h), src(ox, out_w, w));
    let (y0, x0) = (sy.floor() as usize, sx.floor() as usize);
    let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
    let (ty, tx) = (sy - y0 as f64, sx - x0 as f64);
    let p = |y: usize, x: usize| f64::from(f.data[(y * w + x) * 3 + c]);
    (1.0 - ty) * ((1.0 - tx) * p(y0, x0) + tx * p(y0, x1))
        + ty * ((1.0 - tx) * p(y1, x0) + tx * p(y1, x1))
}

#[test]
fn eval_transform_on_a_real_frame() {
    let (frame, name) = fixture_frame();
    let t = PyVideoTransform::eval(224);
    let out = t
        .apply(
            std::slice::from_ref(&frame),
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap();
    assert_eq!(out.shape, [1, 3, 224, 224]);
    assert_eq!(out.data.len(), 3 * 224 * 224);
    // Short side to 268, long side floor(long / short * 268); centre crop offsets round((d) / 2).
    let (h, w) = (frame.height as usize, frame.width as usize);
    let (nh, nw) = short_side_size(h, w, 268);
    assert_eq!(nh.min(nw), 268);
    assert_eq!(
        nh.max(nw),
        (h.max(w) as f64 / h.min(w) as f64 * 268.0).floor() as usize
    );
    let top = ((nh - 224) as f64 / 2.0).round_ties_even() as usize;
    let left = ((nw - 224) as f64 / 2.0).round_ties_even() as usize;
    for (c, (&m, &s)) in IMAGENET_MEAN.iter().zip(&IMAGENET_STD).enumerate() {
        for (y, x) in [(0, 0), (111, 57), (223, 223)] {
            let v = bilinear(&frame, c, top + y, left + x, nh, nw);
            let want = (v / 255.0 - f64::from(m)) / f64::from(s);
            let got = f64::from(out.at(0, c, y, x));
            assert!(
                (got - want).abs() < 1e-4,
                "{name} c{c} ({y},{x}): {got} vs {want}"
            );
        }
    }
}

#[test]
fn train_transform_is_deterministic_per_seed_and_shared_by_frames() {
    let (frame, _) = fixture_frame();
    let t = PyVideoTransform::train(224);
    let clip = vec![frame.clone(), frame.clone(), frame.clone(), frame];
    let a = t.apply(&clip, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
    let b = t.apply(&clip, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.shape, [4, 3, 224, 224]);
    // Identical input frames stay identical: one crop, flip, scale and augmentation per clip.
    let per = 3 * 224 * 224;
    for t_idx in 1..4 {
        assert_eq!(
            a.data[..per],
            a.data[t_idx * per..(t_idx + 1) * per],
            "frame {t_idx}"
        );
    }
    // Other seeds give other draws.
    let differs = (6..12).any(|s| t.apply(&clip, &mut ChaCha8Rng::seed_from_u64(s)).unwrap() != a);
    assert!(differs);
    // Values stay in the normalized range of [0, 255] inputs.
    let lo = (0.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[2] - 1e-3;
    let hi = (1.0 - IMAGENET_MEAN[2]) / IMAGENET_STD[2] + 1e-3;
    assert!(a.data.iter().all(|v| v.is_finite() && *v >= lo && *v <= hi));
}

#[test]
fn output_becomes_a_burn_tensor() {
    use burn::backend::Flex;
    let (frame, _) = fixture_frame();
    let out = PyVideoTransform::eval(224)
        .apply(&[frame.clone(), frame], &mut ChaCha8Rng::seed_from_u64(0))
        .unwrap();
    let first = out.at(1, 2, 10, 20);
    let tensor = out.into_tensor::<Flex>(&Default::default());
    assert_eq!(tensor.dims(), [2, 3, 224, 224]);
    let v: Vec<f32> = tensor
        .slice([1..2, 2..3, 10..11, 20..21])
        .into_data()
        .to_vec()
        .unwrap();
    assert_eq!(v, vec![first]);
}
