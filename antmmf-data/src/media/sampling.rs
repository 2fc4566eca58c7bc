//! Frame sampling, as AntMMF's `VideoReader.sample_frames` and the window arithmetic of
//! `VideoReader.read_frames_decord` (`antmmf/utils/video_utils.py`, after ClipBERT).
//!
//! The video is cut into `n = min(n_clips, vlen)` segments at
//! `bounds = linspace(0, vlen, n + 1)` (truncated to integers); segment `i` spans
//! `[bounds[i], max(bounds[i] + 1, bounds[i + 1] - 1))`. Training draws one frame uniformly in
//! that range (so never the segment's last frame, as upstream), evaluation takes its middle
//! `(a + b_end) / 2`. With fewer frames than clips the `n` indices are repeated evenly
//! (`uniform`, upstream's default) or in blocks (`front`/`back`).

use rand::{Rng, RngExt};

/// How one frame is picked inside each segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleMode {
    /// Training (`sample="rand"`): a uniform random frame of the segment.
    Train,
    /// Evaluation (`sample="uniform"`): the segment's middle frame.
    Eval,
}

impl std::str::FromStr for SampleMode {
    type Err = String;

    /// `train` -> [`SampleMode::Train`]; `test`, `val`, `eval` -> [`SampleMode::Eval`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "train" => Ok(Self::Train),
            "test" | "val" | "eval" => Ok(Self::Eval),
            other => Err(format!("unknown mode {other:?} (train, test, val)")),
        }
    }
}

/// How indices are repeated when the video has fewer frames than requested clips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameResample {
    /// `idx[int((n - 1) * i / (n_clips - 1) + 0.5)]` (AntMMF's default).
    #[default]
    Uniform,
    /// Each index repeated `(n_clips - 1) / n + 1` times, the first `n_clips` kept.
    Front,
    /// Each index repeated `(n_clips - 1) / n + 1` times, the last `n_clips` kept.
    Back,
}

/// A `[start, end]` window in seconds (AntMMF's annotation `start`/`end` fields).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeWindow {
    /// Window start, seconds.
    pub start: f64,
    /// Window end, seconds.
    pub end: f64,
}

/// Sparse frame sampler: `n_clips` frames per video, one per segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameSampler {
    /// Number of frames to return (`train_ensemble_n_clips` / `test_ensembel_n_clips`).
    pub num_clips: usize,
    /// Random (train) or middle (eval) frame per segment.
    pub mode: SampleMode,
    /// Repetition rule when the video is shorter than `num_clips` frames.
    pub resample: FrameResample,
    /// Upstream's `fix_start`: take `segment_start + fix_start` (eval only; clipped to the video).
    pub fix_start: Option<usize>,
}

impl FrameSampler {
    /// A sampler with AntMMF's defaults (`uniform` resampling, no `fix_start`).
    pub fn new(num_clips: usize, mode: SampleMode) -> Self {
        Self {
            num_clips,
            mode,
            resample: FrameResample::Uniform,
            fix_start: None,
        }
    }

    /// Indices (relative to `0..vlen`) of the frames to take; empty when `vlen` or
    /// `num_clips` is 0. `rng` is only drawn from in [`SampleMode::Train`].
    pub fn sample(&self, vlen: usize, rng: &mut impl Rng) -> Vec<usize> {
        let n_clips = self.num_clips;
        let acc = n_clips.min(vlen);
        if acc == 0 {
            return Vec::new();
        }
        let bounds = linspace_trunc(vlen, acc);
        let mut idx: Vec<usize> = bounds
            .windows(2)
            .map(|w| {
                let a = w[0];
                let b_end = (a + 1).max(w[1].saturating_sub(1));
                match (self.mode, self.fix_start) {
                    (SampleMode::Train, _) => rng.random_range(a..b_end),
                    (SampleMode::Eval, Some(fix)) => (a + fix).min(vlen - 1),
                    (SampleMode::Eval, None) => (a + b_end) / 2,
                }
            })
            .collect();
        if acc < n_clips {
            idx = match self.resample {
                FrameResample::Uniform => (0..n_clips)
                    .map(|i| {
                        // int((acc - 1) * i / (n_clips - 1) + 0.5), in f64 as Python does.
                        let pos =
                            ((acc - 1) as f64 * i as f64 / (n_clips - 1) as f64 + 0.5) as usize;
                        idx[pos.min(acc - 1)]
                    })
                    .collect(),
                FrameResample::Front | FrameResample::Back => {
                    let repeat = (n_clips - 1) / acc + 1;
                    let rep: Vec<usize> = idx
                        .iter()
                        .flat_map(|&i| std::iter::repeat_n(i, repeat))
                        .collect();
                    if self.resample == FrameResample::Front {
                        rep[..n_clips].to_vec()
                    } else {
                        rep[rep.len() - n_clips..].to_vec()
                    }
                }
            };
        }
        idx
    }

    /// Absolute indices in a video of `vlen` frames at `fps`, optionally restricted to a
    /// `[start, end]` window: the window starts at `int(start * fps)` (clamped to
    /// `[0, vlen - 1]`) and spans `int((end - start) * fps)` frames (at least 1); absolute
    /// indices are clipped to `[0, vlen - 1]` as upstream does.
    pub fn sample_window(
        &self,
        vlen: usize,
        fps: f64,
        window: Option<TimeWindow>,
        rng: &mut impl Rng,
    ) -> Vec<usize> {
        let Some(w) = window else {
            return self.sample(vlen, rng);
        };
        if vlen == 0 {
            return Vec::new();
        }
        // Python's int() truncates toward zero, as `as i64` does (NaN becomes 0).
        let clip_len = (((w.end - w.start) * fps) as i64).max(1) as usize;
        let offset = ((w.start * fps) as i64).clamp(0, vlen as i64 - 1) as usize;
        self.sample(clip_len, rng)
            .into_iter()
            .map(|i| (i + offset).min(vlen - 1))
            .collect()
    }
}

/// `np.linspace(0, vlen, n + 1).astype(int)`: `i * (vlen / n)` in f64, truncated, last = vlen.
fn linspace_trunc(vlen: usize, n: usize) -> Vec<usize> {
    let step = vlen as f64 / n as f64;
    let mut b: Vec<usize> = (0..=n).map(|i| (i as f64 * step) as usize).collect();
    b[n] = vlen;
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn eval(n: usize, vlen: usize) -> Vec<usize> {
        FrameSampler::new(n, SampleMode::Eval).sample(vlen, &mut ChaCha8Rng::seed_from_u64(0))
    }

    #[test]
    fn eval_picks_segment_middles() {
        // vlen 250, 8 clips: bounds 0,31,62,93,125,156,187,218,250;
        // segments [0,30) -> 15, [31,61) -> 46, [62,92) -> 77, [93,124) -> 108,
        // [125,155) -> 140, [156,186) -> 171, [187,217) -> 202, [218,249) -> 233.
        assert_eq!(eval(8, 250), vec![15, 46, 77, 108, 140, 171, 202, 233]);
        // vlen 10, 4 clips: bounds 0,2,5,7,10 -> ranges (0,1),(2,4),(5,6),(7,9).
        assert_eq!(eval(4, 10), vec![0, 3, 5, 8]);
        // vlen 132, 4 clips: bounds 0,33,66,99,132 -> middles 16,49,82,115.
        assert_eq!(eval(4, 132), vec![16, 49, 82, 115]);
    }

    #[test]
    fn short_videos_repeat_evenly() {
        // vlen 3 < 8 clips: base [0,1,2]; positions int(2*i/7+0.5) = 0,0,1,1,1,1,2,2.
        assert_eq!(eval(8, 3), vec![0, 0, 1, 1, 1, 1, 2, 2]);
        // One frame: always frame 0.
        assert_eq!(eval(5, 1), vec![0; 5]);
        let mut s = FrameSampler::new(5, SampleMode::Eval);
        s.resample = FrameResample::Front;
        assert_eq!(
            s.sample(2, &mut ChaCha8Rng::seed_from_u64(0)),
            vec![0, 0, 0, 1, 1]
        );
        s.resample = FrameResample::Back;
        assert_eq!(
            s.sample(2, &mut ChaCha8Rng::seed_from_u64(0)),
            vec![0, 0, 1, 1, 1]
        );
        assert!(eval(4, 0).is_empty());
        assert!(eval(0, 10).is_empty());
    }

    #[test]
    fn train_stays_inside_segments_and_skips_their_last_frame() {
        let s = FrameSampler::new(8, SampleMode::Train);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let ranges = [
            (0, 30),
            (31, 61),
            (62, 92),
            (93, 124),
            (125, 155),
            (156, 186),
            (187, 217),
            (218, 249),
        ];
        let mut seen_lo = [false; 8];
        for _ in 0..2000 {
            let idx = s.sample(250, &mut rng);
            for (k, (&i, &(a, b))) in idx.iter().zip(ranges.iter()).enumerate() {
                assert!(i >= a && i < b, "segment {k}: {i} not in [{a},{b})");
                seen_lo[k] |= i == a;
            }
        }
        assert!(seen_lo.iter().all(|&x| x));
        // Segments of length <= 2 have a single choice: vlen 4, 4 clips -> [0,1,2,3].
        let s4 = FrameSampler::new(4, SampleMode::Train);
        assert_eq!(s4.sample(4, &mut rng), vec![0, 1, 2, 3]);
        // Same seed, same draw.
        let a = s.sample(250, &mut ChaCha8Rng::seed_from_u64(3));
        let b = s.sample(250, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a, b);
    }

    #[test]
    fn window_offsets_and_clips() {
        let s = FrameSampler::new(4, SampleMode::Eval);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        // 25 fps, [2.0, 4.0]: offset 50, length 50 -> bounds 0,12,25,37,50 -> 5,18,30,43 -> +50.
        let w = TimeWindow {
            start: 2.0,
            end: 4.0,
        };
        assert_eq!(
            s.sample_window(250, 25.0, Some(w), &mut rng),
            vec![55, 68, 80, 93]
        );
        // Window past the end: offset clamped to 249, everything clipped to 249.
        let w = TimeWindow {
            start: 20.0,
            end: 22.0,
        };
        assert_eq!(s.sample_window(250, 25.0, Some(w), &mut rng), vec![249; 4]);
        // Empty window: one frame at the offset (upstream would crash).
        let w = TimeWindow {
            start: 1.0,
            end: 1.0,
        };
        assert_eq!(s.sample_window(250, 25.0, Some(w), &mut rng), vec![25; 4]);
        // No window: plain sampling.
        assert_eq!(s.sample_window(10, 25.0, None, &mut rng), vec![0, 3, 5, 8]);
    }

    #[test]
    fn modes_parse() {
        assert_eq!("train".parse::<SampleMode>(), Ok(SampleMode::Train));
        assert_eq!("val".parse::<SampleMode>(), Ok(SampleMode::Eval));
        assert!("bogus".parse::<SampleMode>().is_err());
    }

    #[test]
    fn linspace_matches_numpy() {
        assert_eq!(
            linspace_trunc(250, 8),
            vec![0, 31, 62, 93, 125, 156, 187, 218, 250]
        );
        assert_eq!(linspace_trunc(10, 3), vec![0, 3, 6, 10]);
        assert_eq!(linspace_trunc(7, 7), vec![0, 1, 2, 3, 4, 5, 6, 7]);
    }
}
