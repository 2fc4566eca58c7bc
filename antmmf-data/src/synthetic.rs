//! A synthetic, learnable video-text data set in AntMMF's annotation formats.
//!
//! Each clip shows one saturated, coloured shape (circle, square, triangle, ...) moving in one
//! direction (left, right, up, down, optionally diagonal) over a plain or lightly textured grey
//! background. Shape, colour and direction are the three attributes the captions, questions and
//! options talk about; size, speed, start position, background tone and texture vary from clip to
//! clip as nuisances the captions never mention. At 64x64 the shape spans about a third of the
//! frame and by default crosses about 40% of it ([`SyntheticConfig::travel`]), so every
//! attribute is visible in 2 to 8 sampled frames.
//!
//! [`generate`] writes, into one folder:
//! - `videos/<clip>.mp4`: H.264, yuv420p, a keyframe every [`SyntheticConfig::keyframe_interval`]
//!   frames, no B-frames, each packet one frame long (FFmpeg through video-rs' ffmpeg-next);
//! - `pretrain.jsonl` (train clips, `clip_name` with extension, `start`/`end`, `type: video`),
//!   `retrieval_train.jsonl` / `retrieval_test.jsonl` (`clip_name` without extension),
//!   `vqa_train.jsonl` / `vqa_test.jsonl` (open QA as classification, `label` a string of
//!   `vqa_labels.json`), `mcqa_train.jsonl` / `mcqa_test.jsonl` (`qid`, `options`, `answer` as an
//!   integer or an integer written as text);
//! - `vqa_labels.json` (the label list a config's `labels` carries), `attributes.jsonl` (the
//!   ground truth of every clip) and `README.md` (what the set is and how to regenerate it).
//!
//! Guarantees: the same config (seed included) gives byte-identical files with the same FFmpeg
//! and x264 build; train and held-out clips are disjoint; every shape x colour x direction
//! combination appears in train; clips cycle through the combinations in a balanced order, so
//! each attribute value, hence each VQA answer, is equally frequent per question type when a
//! split's size is a multiple of the number of combinations, and within about one clip otherwise
//! (a held-out split no larger than the number of combinations has no two clips alike); a clip's
//! captions use different templates; MC-QA options share one template and verb and differ only
//! in attributes (three of the four distractors change a single attribute), so the text alone
//! does not give the answer away, and the right option's position is balanced.

use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use video_rs::ffmpeg;

/// Errors of data set generation; each names the file or the setting concerned.
#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    /// A setting is out of range or settings contradict each other.
    #[error("invalid synthetic data set setting `{field}`: {message}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The output folder already holds files and overwriting was not asked for.
    #[error("{path}: output folder is not empty (ask to overwrite to regenerate into it)")]
    NotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// A file or folder could not be created, written or listed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// FFmpeg could not encode or write a clip.
    #[error("{path}: cannot {what}: {source}")]
    Encode {
        /// The clip concerned.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// FFmpeg's error.
        source: ffmpeg::Error,
    },
    /// This FFmpeg build has no H.264 encoder.
    #[error("{path}: this FFmpeg build has no H.264 encoder (install one with libx264)")]
    NoH264Encoder {
        /// The clip that could not be written.
        path: PathBuf,
    },
}

/// The shape a clip shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// A filled disc.
    Circle,
    /// An axis-aligned filled square.
    Square,
    /// An upward-pointing triangle.
    Triangle,
    /// A plus sign.
    Cross,
    /// A five-pointed star.
    Star,
    /// A square standing on a corner.
    Diamond,
}

impl Shape {
    /// Every shape, in the order a config's `num_shapes` takes them.
    pub const ALL: [Shape; 6] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Cross,
        Shape::Star,
        Shape::Diamond,
    ];

    /// The label (VQA answer) naming the shape.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Cross => "cross",
            Shape::Star => "star",
            Shape::Diamond => "diamond",
        }
    }

    fn nouns(self) -> &'static [&'static str] {
        match self {
            Shape::Circle => &["circle", "disc", "ball", "dot"],
            Shape::Square => &["square", "box", "block"],
            Shape::Triangle => &["triangle", "three-sided shape"],
            Shape::Cross => &["cross", "plus sign"],
            Shape::Star => &["star", "five-pointed star"],
            Shape::Diamond => &["diamond", "rhombus", "lozenge"],
        }
    }

    fn adjectives(self) -> &'static [&'static str] {
        match self {
            Shape::Circle => &["round", "circular"],
            Shape::Square => &["square", "boxy"],
            Shape::Triangle => &["triangular", "three-cornered"],
            Shape::Cross => &["cross-shaped", "plus-shaped"],
            Shape::Star => &["star-shaped", "starry"],
            Shape::Diamond => &["diamond-shaped", "rhombic"],
        }
    }

    /// Whether the point `(u, v)`, in units of the shape's radius around its centre (v down),
    /// is inside the shape. Every shape fits in the unit disc.
    fn contains(self, u: f32, v: f32) -> bool {
        match self {
            Shape::Circle => u * u + v * v <= 1.0,
            Shape::Square => u.abs() <= 0.82 && v.abs() <= 0.82,
            // Apex (0, -0.95), base corners (+-0.95, 0.7).
            Shape::Triangle => v <= 0.7 && v >= -0.95 + 1.65 / 0.95 * u.abs(),
            Shape::Cross => {
                (u.abs() <= 0.33 && v.abs() <= 0.95) || (v.abs() <= 0.33 && u.abs() <= 0.95)
            }
            Shape::Diamond => u.abs() + v.abs() <= 1.0,
            Shape::Star => {
                let r = (u * u + v * v).sqrt();
                // Angle from the upward axis, folded into one of the ten half-spikes.
                let a = u.atan2(-v).abs();
                let sector = std::f32::consts::PI / 5.0;
                let t = (a % sector) / sector;
                let t = if ((a / sector) as i32) % 2 == 0 {
                    t
                } else {
                    1.0 - t
                };
                // Linear from the spike tip (1.0) to the notch (0.45).
                r <= 1.0 - 0.55 * t
            }
        }
    }
}

/// The colour of a clip's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colour {
    /// Red.
    Red,
    /// Green.
    Green,
    /// Blue.
    Blue,
    /// Yellow.
    Yellow,
    /// Purple.
    Purple,
    /// Orange.
    Orange,
    /// Cyan.
    Cyan,
    /// White.
    White,
}

impl Colour {
    /// Every colour, in the order a config's `num_colours` takes them.
    pub const ALL: [Colour; 8] = [
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Purple,
        Colour::Orange,
        Colour::Cyan,
        Colour::White,
    ];

    /// The label (VQA answer) naming the colour.
    pub fn name(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Purple => "purple",
            Colour::Orange => "orange",
            Colour::Cyan => "cyan",
            Colour::White => "white",
        }
    }

    /// The saturated RGB value the shape is painted with, before a small per-clip jitter.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [225, 30, 30],
            Colour::Green => [30, 200, 40],
            Colour::Blue => [35, 70, 235],
            Colour::Yellow => [240, 220, 25],
            Colour::Purple => [170, 40, 210],
            Colour::Orange => [250, 135, 10],
            Colour::Cyan => [20, 210, 220],
            Colour::White => [240, 240, 240],
        }
    }

    fn words(self) -> &'static [&'static str] {
        match self {
            Colour::Red => &["red", "crimson", "scarlet"],
            Colour::Green => &["green", "emerald", "lime"],
            Colour::Blue => &["blue", "azure", "cobalt"],
            Colour::Yellow => &["yellow", "golden", "lemon"],
            Colour::Purple => &["purple", "violet", "magenta"],
            Colour::Orange => &["orange", "amber", "tangerine"],
            Colour::Cyan => &["cyan", "turquoise", "aqua"],
            Colour::White => &["white", "snowy", "ivory"],
        }
    }
}

/// The direction a clip's shape moves in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Towards the left edge.
    Left,
    /// Towards the right edge.
    Right,
    /// Towards the top edge.
    Up,
    /// Towards the bottom edge.
    Down,
    /// Towards the top-left corner.
    UpLeft,
    /// Towards the top-right corner.
    UpRight,
    /// Towards the bottom-left corner.
    DownLeft,
    /// Towards the bottom-right corner.
    DownRight,
}

impl Direction {
    /// Every direction, in the order a config's `num_directions` takes them.
    pub const ALL: [Direction; 8] = [
        Direction::Left,
        Direction::Right,
        Direction::Up,
        Direction::Down,
        Direction::UpLeft,
        Direction::UpRight,
        Direction::DownLeft,
        Direction::DownRight,
    ];

    /// The label (VQA answer) naming the direction.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Left => "left",
            Direction::Right => "right",
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::UpLeft => "up-left",
            Direction::UpRight => "up-right",
            Direction::DownLeft => "down-left",
            Direction::DownRight => "down-right",
        }
    }

    /// The image-space step `(dx, dy)` of the motion, each -1, 0 or 1 (y grows downwards).
    pub fn step(self) -> (i32, i32) {
        match self {
            Direction::Left => (-1, 0),
            Direction::Right => (1, 0),
            Direction::Up => (0, -1),
            Direction::Down => (0, 1),
            Direction::UpLeft => (-1, -1),
            Direction::UpRight => (1, -1),
            Direction::DownLeft => (-1, 1),
            Direction::DownRight => (1, 1),
        }
    }

    fn phrases(self) -> &'static [&'static str] {
        match self {
            Direction::Left => &["to the left", "leftward", "left", "toward the left edge"],
            Direction::Right => &[
                "to the right",
                "rightward",
                "right",
                "toward the right edge",
            ],
            Direction::Up => &["up", "upward", "toward the top", "to the top of the frame"],
            Direction::Down => &[
                "down",
                "downward",
                "toward the bottom",
                "to the bottom of the frame",
            ],
            Direction::UpLeft => &[
                "up and to the left",
                "diagonally up-left",
                "toward the top left corner",
            ],
            Direction::UpRight => &[
                "up and to the right",
                "diagonally up-right",
                "toward the top right corner",
            ],
            Direction::DownLeft => &[
                "down and to the left",
                "diagonally down-left",
                "toward the bottom left corner",
            ],
            Direction::DownRight => &[
                "down and to the right",
                "diagonally down-right",
                "toward the bottom right corner",
            ],
        }
    }
}

/// Motion verbs as (third person, present participle).
const VERBS: [(&str, &str); 6] = [
    ("moves", "moving"),
    ("slides", "sliding"),
    ("travels", "travelling"),
    ("drifts", "drifting"),
    ("glides", "gliding"),
    ("goes", "going"),
];

/// Caption templates; `{a}` becomes `a`/`an` by the next word.
const TEMPLATES: [&str; 8] = [
    "{a} {colour} {shape} {verb} {dir}",
    "the {shapeadj} {colour} shape {verb} {dir}",
    "{a} {shape} in {colour} {verb} {dir}",
    "there is {a} {colour} {shape} that {verb} {dir}",
    "{a} {colour} {shape} is {verbing} {dir}",
    "a video of {a} {colour} {shape} {verbing} {dir}",
    "{a} {shapeadj} object coloured {colour} {verb} {dir}",
    "the {colour} {shape} {verb} {dir} across the screen",
];

/// Open-QA question types, each with its wordings.
const COLOUR_QUESTIONS: [&str; 4] = [
    "what colour is the shape",
    "what color is the moving object",
    "which colour does the shape have",
    "what is the colour of the object",
];
const DIRECTION_QUESTIONS: [&str; 4] = [
    "which way does it move",
    "in which direction does the shape move",
    "where is the object heading",
    "which direction does the shape travel",
];
const SHAPE_QUESTIONS: [&str; 4] = [
    "what shape is it",
    "what kind of shape is moving",
    "which shape is shown",
    "what is the moving object",
];

/// Settings of a synthetic data set.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Clips of the train split (at least the number of attribute combinations).
    pub num_train_videos: usize,
    /// Held-out clips (retrieval / VQA / MC-QA test files).
    pub num_test_videos: usize,
    /// Frames per clip (at least 2).
    pub frames: usize,
    /// Frame width in pixels (even, 16..=1024).
    pub width: u32,
    /// Frame height in pixels (even, 16..=1024).
    pub height: u32,
    /// Frame rate written into the files.
    pub fps: u32,
    /// Seed of everything random; the same seed gives the same files.
    pub seed: u64,
    /// How many of [`Shape::ALL`] to use (1..=6).
    pub num_shapes: usize,
    /// How many of [`Colour::ALL`] to use (1..=8).
    pub num_colours: usize,
    /// How many of [`Direction::ALL`] to use (1..=8; 5 and more add diagonals).
    pub num_directions: usize,
    /// Captions per train clip, each from a different template (1..=8).
    pub train_captions_per_video: usize,
    /// Captions per held-out clip (1..=8).
    pub test_captions_per_video: usize,
    /// Options per MC-QA question: the right caption and distractors (2..=combinations).
    pub mcqa_options: usize,
    /// A keyframe every this many frames (the GOP size).
    pub keyframe_interval: u64,
    /// Whether some backgrounds get a light texture (noise, stripes, checks) instead of a flat tone.
    pub textured_backgrounds: bool,
    /// The longest distance a shape travels over its clip, as a fraction of the frame's extent
    /// along each moving axis ([`TRAVEL_RANGE`]); each clip draws its distance from
    /// [`MIN_TRAVEL_SHARE`]-100 % of it (less where the shape's size leaves less room). Small
    /// values keep the shape's displacement between nearby frames within a few pixels.
    pub travel: f32,
    /// Whether generating into a non-empty folder is allowed (files of an earlier set are replaced).
    pub overwrite: bool,
}

/// The shortest travel of a clip, as a share of [`SyntheticConfig::travel`].
pub const MIN_TRAVEL_SHARE: f32 = 0.7;

/// The values [`SyntheticConfig::travel`] may take (fractions of the frame).
pub const TRAVEL_RANGE: std::ops::RangeInclusive<f32> = 0.05..=0.6;

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            num_train_videos: 64,
            num_test_videos: 64,
            frames: 16,
            width: 64,
            height: 64,
            fps: 8,
            seed: 0,
            num_shapes: 4,
            num_colours: 4,
            num_directions: 4,
            train_captions_per_video: 3,
            test_captions_per_video: 1,
            mcqa_options: 5,
            keyframe_interval: 8,
            textured_backgrounds: true,
            travel: 0.5,
            overwrite: false,
        }
    }
}

impl SyntheticConfig {
    /// The shapes in use.
    pub fn shapes(&self) -> &[Shape] {
        &Shape::ALL[..self.num_shapes.min(Shape::ALL.len())]
    }

    /// The colours in use.
    pub fn colours(&self) -> &[Colour] {
        &Colour::ALL[..self.num_colours.min(Colour::ALL.len())]
    }

    /// The directions in use.
    pub fn directions(&self) -> &[Direction] {
        &Direction::ALL[..self.num_directions.min(Direction::ALL.len())]
    }

    /// Number of shape x colour x direction combinations.
    pub fn num_combinations(&self) -> usize {
        self.shapes().len() * self.colours().len() * self.directions().len()
    }

    /// The open-QA label list: colours, then directions, then shapes.
    pub fn labels(&self) -> Vec<String> {
        let colours = self.colours().iter().map(|c| c.name());
        let directions = self.directions().iter().map(|d| d.name());
        let shapes = self.shapes().iter().map(|s| s.name());
        colours
            .chain(directions)
            .chain(shapes)
            .map(str::to_owned)
            .collect()
    }

    /// Checks every setting; the error names the first bad one.
    pub fn validate(&self) -> Result<(), SyntheticError> {
        fn bad(field: &'static str, message: String) -> Result<(), SyntheticError> {
            Err(SyntheticError::Config { field, message })
        }
        let range = |field, v: usize, lo: usize, hi: usize| {
            if v < lo || v > hi {
                bad(field, format!("{v} is outside {lo}..={hi}"))
            } else {
                Ok(())
            }
        };
        range("num_shapes", self.num_shapes, 1, Shape::ALL.len())?;
        range("num_colours", self.num_colours, 1, Colour::ALL.len())?;
        range(
            "num_directions",
            self.num_directions,
            1,
            Direction::ALL.len(),
        )?;
        range("frames", self.frames, 2, 100_000)?;
        range("fps", self.fps as usize, 1, 240)?;
        range(
            "train_captions_per_video",
            self.train_captions_per_video,
            1,
            TEMPLATES.len(),
        )?;
        range(
            "test_captions_per_video",
            self.test_captions_per_video,
            1,
            TEMPLATES.len(),
        )?;
        range(
            "keyframe_interval",
            self.keyframe_interval as usize,
            1,
            1000,
        )?;
        for (field, v) in [("width", self.width), ("height", self.height)] {
            range(field, v as usize, 16, 1024)?;
            if v % 2 != 0 {
                return bad(field, format!("{v} is odd; yuv420p needs an even size"));
            }
        }
        if !TRAVEL_RANGE.contains(&self.travel) {
            return bad(
                "travel",
                format!(
                    "{} is outside {TRAVEL_RANGE:?} (a fraction of the frame)",
                    self.travel
                ),
            );
        }
        let combos = self.num_combinations();
        range("mcqa_options", self.mcqa_options, 2, combos.max(2))?;
        if self.num_train_videos < combos {
            return bad(
                "num_train_videos",
                format!(
                    "{} train clips cannot show all {combos} shape x colour x direction \
                     combinations ({} x {} x {}); use at least {combos} or fewer attributes",
                    self.num_train_videos, self.num_shapes, self.num_colours, self.num_directions
                ),
            );
        }
        if self.num_test_videos == 0 {
            return bad(
                "num_test_videos",
                "the held-out split needs at least 1 clip".into(),
            );
        }
        Ok(())
    }
}

/// Which split a clip belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training clips (pretraining, `*_train.jsonl`).
    Train,
    /// Held-out clips (`*_test.jsonl`).
    Test,
}

impl Split {
    /// `train` or `test`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// The texture of a clip's background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Texture {
    /// One flat tone.
    Plain,
    /// Fixed per-pixel noise of small amplitude.
    Noise,
    /// Low-contrast diagonal stripes.
    Stripes,
    /// A low-contrast checkerboard.
    Checks,
}

impl Texture {
    fn name(self) -> &'static str {
        match self {
            Texture::Plain => "plain",
            Texture::Noise => "noise",
            Texture::Stripes => "stripes",
            Texture::Checks => "checks",
        }
    }
}

/// Everything that defines one clip (its ground truth).
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticVideo {
    /// `clip_name` without extension (the file is `videos/<name>.mp4`).
    pub name: String,
    /// The split.
    pub split: Split,
    /// The shape.
    pub shape: Shape,
    /// The colour.
    pub colour: Colour,
    /// The direction of motion.
    pub direction: Direction,
    /// The fill colour actually painted (the colour's RGB with a small jitter).
    pub rgb: [u8; 3],
    /// Shape radius in pixels.
    pub radius: f32,
    /// Centre `(x, y)` in pixels on the first frame.
    pub start: (f32, f32),
    /// Centre `(x, y)` in pixels on the last frame.
    pub end: (f32, f32),
    /// Background base tone.
    pub background: [u8; 3],
    /// Background texture.
    pub texture: Texture,
    /// Texture scale in pixels (stripe period, check size) and seed of its noise.
    texture_param: u32,
    /// The captions (train: pretraining and retrieval; test: retrieval).
    pub captions: Vec<String>,
}

impl SyntheticVideo {
    /// The video file name, `<name>.mp4`.
    pub fn file_name(&self) -> String {
        format!("{}.mp4", self.name)
    }

    /// Centre `(x, y)` of the shape on frame `index` of `frames`.
    pub fn centre_at(&self, index: usize, frames: usize) -> (f32, f32) {
        let t = if frames > 1 {
            index.min(frames - 1) as f32 / (frames - 1) as f32
        } else {
            0.0
        };
        (
            self.start.0 + t * (self.end.0 - self.start.0),
            self.start.1 + t * (self.end.1 - self.start.1),
        )
    }

    /// Renders frame `index` of `frames` as packed RGB24 (`height` rows of `width * 3` bytes).
    pub fn render(&self, index: usize, frames: usize, width: u32, height: u32) -> Vec<u8> {
        let (w, h) = (width as usize, height as usize);
        let mut out = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in 0..w {
                let px = self.background_at(x, y);
                out[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&px);
            }
        }
        let (cx, cy) = self.centre_at(index, frames);
        let r = self.radius;
        let x0 = (cx - r - 1.0).floor().max(0.0) as usize;
        let y0 = (cy - r - 1.0).floor().max(0.0) as usize;
        let x1 = ((cx + r + 1.0).ceil().max(0.0) as usize).min(w);
        let y1 = ((cy + r + 1.0).ceil().max(0.0) as usize).min(h);
        // 4x4 supersampling for smooth edges (easier on the encoder, closer to real footage).
        const SUB: usize = 4;
        for y in y0..y1 {
            for x in x0..x1 {
                let mut hits = 0u32;
                for sy in 0..SUB {
                    for sx in 0..SUB {
                        let px = x as f32 + (sx as f32 + 0.5) / SUB as f32;
                        let py = y as f32 + (sy as f32 + 0.5) / SUB as f32;
                        if self.shape.contains((px - cx) / r, (py - cy) / r) {
                            hits += 1;
                        }
                    }
                }
                if hits == 0 {
                    continue;
                }
                let a = hits as f32 / (SUB * SUB) as f32;
                let i = (y * w + x) * 3;
                for c in 0..3 {
                    let bg = f32::from(out[i + c]);
                    out[i + c] = (bg + a * (f32::from(self.rgb[c]) - bg)).round() as u8;
                }
            }
        }
        out
    }

    fn background_at(&self, x: usize, y: usize) -> [u8; 3] {
        let p = self.texture_param.max(2) as usize;
        let delta: i32 = match self.texture {
            Texture::Plain => 0,
            Texture::Noise => {
                // A fixed hash of the position: the same noise on every frame.
                let mut v = (x as u32).wrapping_mul(0x9E37_79B1)
                    ^ (y as u32).wrapping_mul(0x85EB_CA77)
                    ^ self.texture_param.wrapping_mul(0xC2B2_AE3D);
                v ^= v >> 15;
                v = v.wrapping_mul(0x2C1B_3C6D);
                v ^= v >> 12;
                (v % 13) as i32 - 6
            }
            Texture::Stripes => {
                if ((x + y) / p).is_multiple_of(2) {
                    6
                } else {
                    -6
                }
            }
            Texture::Checks => {
                if (x / p + y / p).is_multiple_of(2) {
                    6
                } else {
                    -6
                }
            }
        };
        self.background
            .map(|c| (i32::from(c) + delta).clamp(0, 255) as u8)
    }
}

/// One written file and its number of lines (jsonl) or entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Path relative to the output folder.
    pub name: String,
    /// Lines of a jsonl file; entries of a list file; 0 for other files.
    pub lines: usize,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticSummary {
    /// The output folder.
    pub out_dir: PathBuf,
    /// The settings used.
    pub config: SyntheticConfig,
    /// Every clip, train clips first, with its ground truth and captions.
    pub videos: Vec<SyntheticVideo>,
    /// The open-QA label list (also in `vqa_labels.json`).
    pub labels: Vec<String>,
    /// The annotation and metadata files, with their line counts.
    pub files: Vec<WrittenFile>,
}

impl SyntheticSummary {
    /// The clips of one split.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &SyntheticVideo> {
        self.videos.iter().filter(move |v| v.split == split)
    }
}

impl fmt::Display for SyntheticSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        writeln!(
            f,
            "synthetic video-text set in {} (seed {})",
            self.out_dir.display(),
            c.seed
        )?;
        writeln!(
            f,
            "  clips: {} train + {} test, {} frames of {}x{} at {} fps (videos/*.mp4, H.264)",
            c.num_train_videos, c.num_test_videos, c.frames, c.width, c.height, c.fps
        )?;
        writeln!(
            f,
            "  attributes: {} shapes x {} colours x {} directions = {} combinations",
            c.shapes().len(),
            c.colours().len(),
            c.directions().len(),
            c.num_combinations()
        )?;
        for file in &self.files {
            writeln!(f, "  {:<22} {} lines", file.name, file.lines)?;
        }
        let labels = serde_json::to_string(&self.labels).map_err(|_| fmt::Error)?;
        write!(f, "  labels ({} classes): {labels}", self.labels.len())
    }
}

/// Generates the data set described by `cfg` into `out_dir` (created if missing).
pub fn generate(cfg: &SyntheticConfig, out_dir: &Path) -> Result<SyntheticSummary, SyntheticError> {
    cfg.validate()?;
    prepare_out_dir(out_dir, cfg.overwrite)?;
    let videos_dir = out_dir.join("videos");
    create_dir(&videos_dir)?;

    let mut videos = Vec::with_capacity(cfg.num_train_videos + cfg.num_test_videos);
    let splits = [
        (
            Split::Train,
            cfg.num_train_videos,
            cfg.train_captions_per_video,
        ),
        (
            Split::Test,
            cfg.num_test_videos,
            cfg.test_captions_per_video,
        ),
    ];
    for (split, n, captions) in splits {
        for (i, (shape, colour, direction)) in
            split_combinations(cfg, split, n).into_iter().enumerate()
        {
            // One random stream per clip: a clip does not change when the split sizes do.
            let mut rng = clip_rng(cfg.seed, split, i);
            let name = format!("synth_{}_{i:04}", split.name());
            videos.push(make_video(
                cfg, name, split, shape, colour, direction, captions, &mut rng,
            ));
        }
    }

    init_ffmpeg();
    for video in &videos {
        encode_video(cfg, video, &videos_dir.join(video.file_name()))?;
    }

    let labels = cfg.labels();
    let mut files = Vec::new();
    let mut write_jsonl = |name: &str, lines: Vec<String>| -> Result<(), SyntheticError> {
        let mut text = String::new();
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        write_file(&out_dir.join(name), text.as_bytes())?;
        files.push(WrittenFile {
            name: name.to_owned(),
            lines: lines.len(),
        });
        Ok(())
    };
    let train: Vec<&SyntheticVideo> = videos.iter().filter(|v| v.split == Split::Train).collect();
    let test: Vec<&SyntheticVideo> = videos.iter().filter(|v| v.split == Split::Test).collect();
    let duration = cfg.frames as f64 / f64::from(cfg.fps);

    write_jsonl("pretrain.jsonl", pretrain_lines(&train, duration))?;
    write_jsonl("retrieval_train.jsonl", retrieval_lines(&train, false))?;
    write_jsonl("retrieval_test.jsonl", retrieval_lines(&test, true))?;
    write_jsonl("vqa_train.jsonl", vqa_lines(&train, cfg.seed, Split::Train))?;
    write_jsonl("vqa_test.jsonl", vqa_lines(&test, cfg.seed, Split::Test))?;
    write_jsonl("mcqa_train.jsonl", mcqa_lines(cfg, &train, Split::Train))?;
    write_jsonl("mcqa_test.jsonl", mcqa_lines(cfg, &test, Split::Test))?;
    write_jsonl("attributes.jsonl", attribute_lines(&videos))?;

    let labels_json = serde_json::to_string_pretty(&labels).unwrap_or_default() + "\n";
    write_file(&out_dir.join("vqa_labels.json"), labels_json.as_bytes())?;
    files.push(WrittenFile {
        name: "vqa_labels.json".into(),
        lines: labels.len(),
    });

    let mut summary = SyntheticSummary {
        out_dir: out_dir.to_path_buf(),
        config: cfg.clone(),
        videos,
        labels,
        files,
    };
    write_file(&out_dir.join("README.md"), readme(&summary).as_bytes())?;
    summary.files.push(WrittenFile {
        name: "README.md".into(),
        lines: 0,
    });
    Ok(summary)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SyntheticError + '_ {
    move |source| SyntheticError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn create_dir(path: &Path) -> Result<(), SyntheticError> {
    std::fs::create_dir_all(path).map_err(io_err(path))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), SyntheticError> {
    std::fs::write(path, bytes).map_err(io_err(path))
}

/// Creates the folder, or checks it may be written into; with `overwrite`, removes the clips of
/// an earlier set so that a smaller set leaves no stale clip behind.
fn prepare_out_dir(out_dir: &Path, overwrite: bool) -> Result<(), SyntheticError> {
    if !out_dir.exists() {
        return create_dir(out_dir);
    }
    let mut entries = std::fs::read_dir(out_dir).map_err(io_err(out_dir))?;
    if entries.next().is_none() {
        return Ok(());
    }
    if !overwrite {
        return Err(SyntheticError::NotEmpty {
            path: out_dir.to_path_buf(),
        });
    }
    let videos = out_dir.join("videos");
    if videos.is_dir() {
        for entry in std::fs::read_dir(&videos).map_err(io_err(&videos))? {
            let entry = entry.map_err(io_err(&videos))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("synth_") && name.ends_with(".mp4") {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
    }
    Ok(())
}

fn clip_rng(seed: u64, split: Split, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let split_bit = match split {
        Split::Train => 0,
        Split::Test => 1u64 << 63,
    };
    rng.set_stream(split_bit | index as u64);
    rng
}

/// One shape x colour x direction combination.
type Combination = (Shape, Colour, Direction);

/// Every combination in use.
fn all_combinations(cfg: &SyntheticConfig) -> Vec<Combination> {
    let mut out = Vec::with_capacity(cfg.num_combinations());
    for &d in cfg.directions() {
        for &c in cfg.colours() {
            for &s in cfg.shapes() {
                out.push((s, c, d));
            }
        }
    }
    out
}

/// The combinations of a split's `n` clips, in clip order. Clips go through all combinations in
/// cycles. Within a cycle the order is greedy: the next combination is the one (first in a seeded
/// random order) whose attribute values, then pairs of values, the cycle has used least so far.
/// So any prefix of a cycle (a split smaller than the number of combinations, or its last
/// partial cycle) is balanced in every attribute to within about one clip, with no attribute tied
/// to another; a full cycle is exactly balanced. Clip `i`'s combination does not depend on `n`.
fn split_combinations(cfg: &SyntheticConfig, split: Split, n: usize) -> Vec<Combination> {
    let (ns, nc, nd) = (
        cfg.shapes().len(),
        cfg.colours().len(),
        cfg.directions().len(),
    );
    let index = |x: &Combination| {
        (
            Shape::ALL.iter().position(|s| *s == x.0).unwrap_or(0),
            Colour::ALL.iter().position(|c| *c == x.1).unwrap_or(0),
            Direction::ALL.iter().position(|d| *d == x.2).unwrap_or(0),
        )
    };
    let mut rng = file_rng(cfg.seed, split, 0);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut remaining = all_combinations(cfg);
        shuffle(&mut remaining, &mut rng);
        let take = (n - out.len()).min(remaining.len());
        let (mut s, mut c, mut d) = (vec![0; ns], vec![0; nc], vec![0; nd]);
        let (mut sc, mut sd, mut cd) = (vec![0; ns * nc], vec![0; ns * nd], vec![0; nc * nd]);
        for _ in 0..take {
            // Counts scaled by the number of values, so that attributes of different sizes
            // compare (each scaled count ideally equals the number of clips so far).
            let score = |x: &Combination| {
                let (i, j, k) = index(x);
                let single = s[i] * ns + c[j] * nc + d[k] * nd;
                let pairs =
                    sc[i * nc + j] * ns * nc + sd[i * nd + k] * ns * nd + cd[j * nd + k] * nc * nd;
                single * 1_000_000 + pairs
            };
            let best = (0..remaining.len())
                .min_by_key(|&r| score(&remaining[r]))
                .unwrap_or(0);
            let x = remaining.remove(best);
            let (i, j, k) = index(&x);
            s[i] += 1;
            c[j] += 1;
            d[k] += 1;
            sc[i * nc + j] += 1;
            sd[i * nd + k] += 1;
            cd[j * nd + k] += 1;
            out.push(x);
        }
    }
    out
}

fn pick<'a, R: Rng + ?Sized>(rng: &mut R, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

#[allow(clippy::too_many_arguments)]
fn make_video(
    cfg: &SyntheticConfig,
    name: String,
    split: Split,
    shape: Shape,
    colour: Colour,
    direction: Direction,
    num_captions: usize,
    rng: &mut ChaCha8Rng,
) -> SyntheticVideo {
    let (w, h) = (cfg.width as f32, cfg.height as f32);
    let radius = rng.random_range(0.16f32..0.22) * w.min(h);
    let margin = 1.0;
    let (dx, dy) = direction.step();
    let mut place = |extent: f32, d: i32| -> (f32, f32) {
        let lo = margin + radius;
        let hi = (extent - margin - radius).max(lo);
        if d == 0 {
            let p = rng.random_range(lo..=hi);
            return (p, p);
        }
        let travel =
            (rng.random_range(MIN_TRAVEL_SHARE * cfg.travel..cfg.travel) * extent).min(hi - lo);
        let first = rng.random_range(lo..=(hi - travel).max(lo));
        if d > 0 {
            (first, first + travel)
        } else {
            (first + travel, first)
        }
    };
    let (sx, ex) = place(w, dx);
    let (sy, ey) = place(h, dy);
    let rgb = colour
        .rgb()
        .map(|c| (i32::from(c) + rng.random_range(-12i32..=12)).clamp(0, 255) as u8);
    let grey = rng.random_range(45i32..=95);
    let background = [0u8; 3].map(|_| (grey + rng.random_range(-8i32..=8)).clamp(0, 255) as u8);
    let texture = if cfg.textured_backgrounds {
        [
            Texture::Plain,
            Texture::Noise,
            Texture::Stripes,
            Texture::Checks,
        ][rng.random_range(0..4)]
    } else {
        Texture::Plain
    };
    let texture_param = match texture {
        Texture::Noise => rng.random::<u32>(),
        _ => rng.random_range(4u32..=10),
    };
    // Distinct templates per clip, so its captions are worded differently.
    let mut order: Vec<usize> = (0..TEMPLATES.len()).collect();
    shuffle(&mut order, rng);
    let captions = order[..num_captions]
        .iter()
        .map(|&t| caption(TEMPLATES[t], shape, colour, direction, pick_verb(rng), rng))
        .collect();
    SyntheticVideo {
        name,
        split,
        shape,
        colour,
        direction,
        rgb,
        radius,
        start: (sx, sy),
        end: (ex, ey),
        background,
        texture,
        texture_param,
        captions,
    }
}

fn shuffle<T, R: Rng + ?Sized>(items: &mut [T], rng: &mut R) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

fn pick_verb<R: Rng + ?Sized>(rng: &mut R) -> (&'static str, &'static str) {
    VERBS[rng.random_range(0..VERBS.len())]
}

/// Fills a template with synonyms of the attributes drawn from `rng`.
fn caption<R: Rng + ?Sized>(
    template: &str,
    shape: Shape,
    colour: Colour,
    direction: Direction,
    verb: (&str, &str),
    rng: &mut R,
) -> String {
    let text = template
        .replace("{colour}", pick(rng, colour.words()))
        .replace("{shapeadj}", pick(rng, shape.adjectives()))
        .replace("{shape}", pick(rng, shape.nouns()))
        .replace("{verbing}", verb.1)
        .replace("{verb}", verb.0)
        .replace("{dir}", pick(rng, direction.phrases()));
    let words: Vec<&str> = text.split(' ').collect();
    let mut out = String::with_capacity(text.len());
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if *word == "{a}" {
            let next = words.get(i + 1).copied().unwrap_or("");
            let vowel = next.starts_with(['a', 'e', 'i', 'o', 'u']);
            out.push_str(if vowel { "an" } else { "a" });
        } else {
            out.push_str(word);
        }
    }
    out
}

fn init_ffmpeg() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg::init();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    });
}

/// Encodes one clip: libx264 (or FFmpeg's default H.264 encoder), yuv420p, a keyframe every
/// `keyframe_interval` frames and no scene-cut keyframes, no B-frames, one thread (byte-identical
/// output), time base `1/fps` and every packet one frame long. Packet durations are set here
/// because FFmpeg 5's libx264 wrapper leaves them at 0, which makes the MP4 muxer's edit list cut
/// the last frame (as `video_rs::Encoder` 0.12 does, hence the direct ffmpeg-next calls).
fn encode_video(
    cfg: &SyntheticConfig,
    video: &SyntheticVideo,
    path: &Path,
) -> Result<(), SyntheticError> {
    use ffmpeg::format::Pixel;
    let err = |what: &'static str| {
        move |source| SyntheticError::Encode {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    let codec = ffmpeg::encoder::find_by_name("libx264")
        .or_else(|| ffmpeg::encoder::find(ffmpeg::codec::Id::H264))
        .ok_or_else(|| SyntheticError::NoH264Encoder {
            path: path.to_path_buf(),
        })?;
    let mut octx = ffmpeg::format::output(path).map_err(err("create the MP4 file"))?;
    let global_header = octx
        .format()
        .flags()
        .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
    let fps = i32::try_from(cfg.fps).unwrap_or(i32::MAX);
    let frame_tb = ffmpeg::Rational::new(1, fps);
    let mut enc = ffmpeg::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(err("set up the encoder"))?;
    enc.set_width(cfg.width);
    enc.set_height(cfg.height);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base(frame_tb);
    enc.set_frame_rate(Some(ffmpeg::Rational::new(fps, 1)));
    enc.set_gop(u32::try_from(cfg.keyframe_interval).unwrap_or(u32::MAX));
    enc.set_max_b_frames(0);
    if global_header {
        enc.set_flags(ffmpeg::codec::Flags::GLOBAL_HEADER);
    }
    let mut opts = ffmpeg::Dictionary::new();
    opts.set("preset", "fast");
    opts.set("crf", "18");
    opts.set("threads", "1");
    opts.set("x264-params", "scenecut=0");
    let mut encoder = enc.open_with(opts).map_err(err("open the H.264 encoder"))?;
    let stream_index = {
        let mut ost = octx
            .add_stream(codec)
            .map_err(err("add the video stream"))?;
        ost.set_parameters(&encoder);
        ost.set_time_base(frame_tb);
        ost.index()
    };
    octx.write_header().map_err(err("write the MP4 header"))?;
    // The muxer may pick its own time base for the stream.
    let stream_tb = octx
        .stream(stream_index)
        .map(|s| s.time_base())
        .unwrap_or(frame_tb);
    let mut scaler = ffmpeg::software::scaling::Context::get(
        Pixel::RGB24,
        cfg.width,
        cfg.height,
        Pixel::YUV420P,
        cfg.width,
        cfg.height,
        ffmpeg::software::scaling::Flags::BICUBIC,
    )
    .map_err(err("set up the RGB to YUV conversion"))?;
    let write_packets = |encoder: &mut ffmpeg::encoder::Video,
                         octx: &mut ffmpeg::format::context::Output|
     -> Result<(), SyntheticError> {
        let mut packet = ffmpeg::Packet::empty();
        while encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(stream_index);
            packet.set_duration(1);
            packet.set_position(-1);
            packet.rescale_ts(frame_tb, stream_tb);
            packet
                .write_interleaved(octx)
                .map_err(err("write a video packet"))?;
        }
        Ok(())
    };
    let (w, h) = (cfg.width as usize, cfg.height as usize);
    let mut rgb_frame = ffmpeg::frame::Video::new(Pixel::RGB24, cfg.width, cfg.height);
    for index in 0..cfg.frames {
        let rgb = video.render(index, cfg.frames, cfg.width, cfg.height);
        let stride = rgb_frame.stride(0);
        let data = rgb_frame.data_mut(0);
        for y in 0..h {
            data[y * stride..y * stride + w * 3].copy_from_slice(&rgb[y * w * 3..(y + 1) * w * 3]);
        }
        let mut yuv = ffmpeg::frame::Video::empty();
        scaler
            .run(&rgb_frame, &mut yuv)
            .map_err(err("convert a frame to YUV"))?;
        yuv.set_pts(Some(index as i64));
        if (index as u64).is_multiple_of(cfg.keyframe_interval) {
            yuv.set_kind(ffmpeg::picture::Type::I);
        }
        encoder.send_frame(&yuv).map_err(err("encode a frame"))?;
        write_packets(&mut encoder, &mut octx)?;
    }
    encoder.send_eof().map_err(err("flush the encoder"))?;
    write_packets(&mut encoder, &mut octx)?;
    octx.write_trailer().map_err(err("finish the MP4 file"))
}

fn pretrain_lines(videos: &[&SyntheticVideo], duration: f64) -> Vec<String> {
    let mut lines = Vec::new();
    for v in videos {
        for (sen_id, caption) in v.captions.iter().enumerate() {
            lines.push(line(&[
                ("clip_name", json!(v.file_name())),
                ("caption", json!(caption)),
                ("sen_id", json!(sen_id)),
                ("start", json!(0.0)),
                ("end", json!(duration)),
                ("type", json!("video")),
            ]));
        }
    }
    lines
}

fn retrieval_lines(videos: &[&SyntheticVideo], test: bool) -> Vec<String> {
    let mut lines = Vec::new();
    for v in videos {
        for (sen_id, caption) in v.captions.iter().enumerate() {
            lines.push(if test {
                line(&[
                    ("caption", json!(caption)),
                    ("clip_name", json!(v.name)),
                    ("retrieval_key", json!(format!("ret{}", lines.len()))),
                ])
            } else {
                line(&[
                    ("caption", json!(caption)),
                    ("clip_name", json!(v.name)),
                    ("sen_id", json!(sen_id)),
                ])
            });
        }
    }
    lines
}

fn vqa_lines(videos: &[&SyntheticVideo], seed: u64, split: Split) -> Vec<String> {
    let mut rng = file_rng(seed, split, 1);
    let mut lines = Vec::new();
    for v in videos {
        let qa = [
            (pick(&mut rng, &COLOUR_QUESTIONS), v.colour.name()),
            (pick(&mut rng, &DIRECTION_QUESTIONS), v.direction.name()),
            (pick(&mut rng, &SHAPE_QUESTIONS), v.shape.name()),
        ];
        for (question, label) in qa {
            lines.push(line(&[
                ("clip_name", json!(v.name)),
                ("caption", json!(question)),
                ("label", json!(label)),
            ]));
        }
    }
    lines
}

/// A random stream for a whole file (`kind` tells the files apart).
fn file_rng(seed: u64, split: Split, kind: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_F11E_0000_0000);
    rng.set_stream(kind * 2 + u64::from(split == Split::Test));
    rng
}

fn mcqa_lines(cfg: &SyntheticConfig, videos: &[&SyntheticVideo], split: Split) -> Vec<String> {
    let mut rng = file_rng(cfg.seed, split, 2);
    let n_opt = cfg.mcqa_options;
    // Right-answer positions: every position equally often, in random order.
    let mut positions: Vec<usize> = (0..videos.len()).map(|i| i % n_opt).collect();
    shuffle(&mut positions, &mut rng);
    let all = all_combinations(cfg);
    let mut lines = Vec::new();
    for (i, (v, &answer)) in videos.iter().zip(&positions).enumerate() {
        let truth = (v.shape, v.colour, v.direction);
        let mut combos = distractors(&all, truth, n_opt - 1, &mut rng);
        combos.insert(answer.min(combos.len()), truth);
        // One template and verb for all options: only the attributes tell them apart.
        let template = TEMPLATES[rng.random_range(0..TEMPLATES.len())];
        let verb = pick_verb(&mut rng);
        let options: Vec<String> = combos
            .iter()
            .map(|&(s, c, d)| caption(template, s, c, d, verb, &mut rng))
            .collect();
        // Both AntMMF forms of the answer: an integer, or an integer written as text.
        let answer_value = if i % 2 == 0 {
            json!(answer)
        } else {
            json!(answer.to_string())
        };
        lines.push(line(&[
            ("qid", json!(format!("mc{i}"))),
            ("clip_name", json!(v.name)),
            ("answer", json!(answer_value)),
            ("options", json!(options)),
        ]));
    }
    lines
}

/// `n` combinations other than `truth`: first ones differing in a single attribute (one per
/// attribute, hard negatives), then any others, in random order.
fn distractors<R: Rng + ?Sized>(
    all: &[Combination],
    truth: Combination,
    n: usize,
    rng: &mut R,
) -> Vec<Combination> {
    let differs = |c: &Combination| [c.0 != truth.0, c.1 != truth.1, c.2 != truth.2];
    let mut out: Vec<Combination> = Vec::with_capacity(n);
    // Hard negatives first: only the shape, only the colour, only the direction changed.
    for attribute in 0..3 {
        let candidates: Vec<&Combination> = all
            .iter()
            .filter(|c| {
                let d = differs(c);
                d[attribute] && d.iter().filter(|x| **x).count() == 1
            })
            .collect();
        if out.len() < n && !candidates.is_empty() {
            out.push(*candidates[rng.random_range(0..candidates.len())]);
        }
    }
    let mut rest: Vec<Combination> = all
        .iter()
        .filter(|c| differs(c).contains(&true) && !out.contains(c))
        .copied()
        .collect();
    shuffle(&mut rest, rng);
    out.extend(rest.into_iter().take(n.saturating_sub(out.len())));
    shuffle(&mut out, rng);
    out
}

fn attribute_lines(videos: &[SyntheticVideo]) -> Vec<String> {
    videos
        .iter()
        .map(|v| {
            line(&[
                ("clip_name", json!(v.name)),
                ("split", json!(v.split.name())),
                ("shape", json!(v.shape.name())),
                ("colour", json!(v.colour.name())),
                ("direction", json!(v.direction.name())),
                ("rgb", json!(v.rgb)),
                ("radius", json!(round2(v.radius))),
                ("start", json!([round2(v.start.0), round2(v.start.1)])),
                ("end", json!([round2(v.end.0), round2(v.end.1)])),
                ("background", json!(v.background)),
                ("texture", json!(v.texture.name())),
            ])
        })
        .collect()
}

/// One jsonl line with its keys in the order given, formatted like Python's `json.dumps`
/// (AntMMF's files: `{"clip_name": "a", "caption": "b"}`).
fn line(fields: &[(&str, serde_json::Value)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&serde_json::Value::from(*key).to_string());
        out.push_str(": ");
        // Python's separators inside nested lists too.
        match value {
            serde_json::Value::Array(items) => {
                let items: Vec<String> = items.iter().map(|x| x.to_string()).collect();
                out.push('[');
                out.push_str(&items.join(", "));
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    out.push('}');
    out
}

fn round2(x: f32) -> f64 {
    (f64::from(x) * 100.0).round() / 100.0
}

fn readme(summary: &SyntheticSummary) -> String {
    let c = &summary.config;
    let names = |v: Vec<&str>| v.join(", ");
    let mut s = String::new();
    let _ = writeln!(s, "# Synthetic video-text set (seed {})\n", c.seed);
    let _ = writeln!(
        s,
        "Generated by antmmf-rs (`antmmf-data synth`). Each clip shows one coloured shape moving in \
         one direction over a plain or lightly textured grey background; the captions, questions and \
         multiple-choice options are about its shape, colour and direction. Size, speed, position, \
         background tone and texture vary between clips and are never mentioned.\n"
    );
    let _ = writeln!(
        s,
        "- clips: {} train, {} held-out (disjoint); {} frames of {}x{} at {} fps; H.264 yuv420p, \
         a keyframe every {} frames",
        c.num_train_videos,
        c.num_test_videos,
        c.frames,
        c.width,
        c.height,
        c.fps,
        c.keyframe_interval
    );
    let _ = writeln!(
        s,
        "- shapes: {}\n- colours: {}\n- directions: {}, each shape travelling {:.0}-{:.0} % of the \
         frame over its clip",
        names(c.shapes().iter().map(|x| x.name()).collect()),
        names(c.colours().iter().map(|x| x.name()).collect()),
        names(c.directions().iter().map(|x| x.name()).collect()),
        100.0 * MIN_TRAVEL_SHARE * c.travel,
        100.0 * c.travel,
    );
    let _ = writeln!(
        s,
        "- every one of the {} combinations appears in train; clips cycle through them, so answers \
         are balanced per question type",
        c.num_combinations()
    );
    let _ = writeln!(
        s,
        "- captions: {} per train clip, {} per held-out clip, each from a different template with \
         synonyms\n",
        c.train_captions_per_video, c.test_captions_per_video
    );
    let _ = writeln!(s, "| file | contents | lines |\n|---|---|---|");
    let what = |name: &str| match name {
        "pretrain.jsonl" => "video pretraining (train clips, `clip_name` with extension)",
        "retrieval_train.jsonl" => "retrieval, train clips, several captions each",
        "retrieval_test.jsonl" => "retrieval, held-out clips (`retrieval_key`)",
        "vqa_train.jsonl" => "open QA (colour, direction, shape questions), train clips",
        "vqa_test.jsonl" => "open QA, held-out clips",
        "mcqa_train.jsonl" => "multi-choice QA, train clips",
        "mcqa_test.jsonl" => "multi-choice QA, held-out clips",
        "attributes.jsonl" => "ground truth of every clip (not an AntMMF format)",
        "vqa_labels.json" => "the open-QA label list, for a config's `labels`",
        _ => "",
    };
    for f in &summary.files {
        let _ = writeln!(s, "| `{}` | {} | {} |", f.name, what(&f.name), f.lines);
    }
    let _ = writeln!(
        s,
        "\nOpen-QA labels: `{}`\n",
        serde_json::to_string(&summary.labels).unwrap_or_default()
    );
    let mut command = format!(
        "antmmf-data synth --out DIR --train {} --test {} --frames {} --size {} --seed {} \
         --fps {} --shapes {} --colours {} --directions {} --train-captions {} \
         --test-captions {} --mcqa-options {}",
        c.num_train_videos,
        c.num_test_videos,
        c.frames,
        c.width,
        c.seed,
        c.fps,
        c.num_shapes,
        c.num_colours,
        c.num_directions,
        c.train_captions_per_video,
        c.test_captions_per_video,
        c.mcqa_options,
    );
    if !c.textured_backgrounds {
        command.push_str(" --plain");
    }
    if c.width == c.height && c.keyframe_interval == SyntheticConfig::default().keyframe_interval {
        let _ = writeln!(
            s,
            "Regenerate (byte-identical files with the same FFmpeg/x264 build):\n\n```sh\n{command}\n```"
        );
    } else {
        let _ = writeln!(
            s,
            "Regenerate through `antmmf_data::synthetic::generate` with these settings (the \
             command line sets one frame size and the default keyframe interval): {c:?}"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_cycle_through_all_and_prefixes_are_balanced() {
        for seed in 0..4 {
            let cfg = SyntheticConfig {
                seed,
                num_shapes: 3,
                num_colours: 4,
                num_directions: 5,
                ..Default::default()
            };
            let k = cfg.num_combinations();
            assert_eq!(k, 60);
            let order = split_combinations(&cfg, Split::Test, 2 * k + 7);
            let mut first: Vec<_> = order[..k].iter().map(|c| format!("{c:?}")).collect();
            first.sort();
            first.dedup();
            assert_eq!(first.len(), k, "a cycle holds every combination once");
            // Any prefix of a cycle: every value of every attribute within one clip of its share
            // (rounded); the very end of a cycle has little choice left.
            for m in 1..=k {
                let prefix = &order[k..k + m];
                for (values, n) in [(0, 3), (1, 4), (2, 5)] {
                    let mut counts = vec![0usize; 8];
                    for c in prefix {
                        let v = match values {
                            0 => Shape::ALL.iter().position(|s| *s == c.0),
                            1 => Colour::ALL.iter().position(|s| *s == c.1),
                            _ => Direction::ALL.iter().position(|s| *s == c.2),
                        };
                        counts[v.unwrap_or(7)] += 1;
                    }
                    let (lo, hi) = ((m / n).saturating_sub(1), m.div_ceil(n) + 1);
                    assert!(
                        counts[..n].iter().all(|&x| x >= lo && x <= hi),
                        "seed {seed}, prefix {m}, attribute {values}: {counts:?}"
                    );
                }
            }
            // Clip i's combination does not depend on the split size.
            assert_eq!(split_combinations(&cfg, Split::Test, 10), order[..10]);
        }
    }

    #[test]
    fn captions_pick_articles_and_synonyms() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let c = caption(
            TEMPLATES[0],
            Shape::Circle,
            Colour::Orange,
            Direction::Left,
            ("moves", "moving"),
            &mut rng,
        );
        assert!(c.starts_with("an "), "{c}");
        assert!(!c.contains('{'), "{c}");
        let c = caption(
            TEMPLATES[1],
            Shape::Triangle,
            Colour::Red,
            Direction::Up,
            ("slides", "sliding"),
            &mut rng,
        );
        assert!(c.starts_with("the "), "{c}");
        assert!(c.contains(" shape slides "), "{c}");
    }

    #[test]
    fn shapes_fill_a_similar_area() {
        // Coverage of the unit square grid in [-1, 1]^2, so no shape is a speck.
        for shape in Shape::ALL {
            let n = 200;
            let mut inside = 0;
            for i in 0..n {
                for j in 0..n {
                    let u = -1.0 + 2.0 * (i as f32 + 0.5) / n as f32;
                    let v = -1.0 + 2.0 * (j as f32 + 0.5) / n as f32;
                    inside += usize::from(shape.contains(u, v));
                }
            }
            let frac = inside as f32 / (n * n) as f32;
            assert!((0.2..0.8).contains(&frac), "{shape:?} covers {frac}");
            assert!(shape.contains(0.0, 0.0), "{shape:?} centre");
        }
    }

    #[test]
    fn validation_names_the_setting() {
        let cfg = SyntheticConfig {
            num_train_videos: 10,
            ..Default::default()
        };
        let err = cfg.validate().expect_err("too few train clips");
        assert!(err.to_string().contains("num_train_videos"), "{err}");
        let cfg = SyntheticConfig {
            width: 63,
            ..Default::default()
        };
        assert!(cfg.validate().is_err());
        for travel in [0.7, 0.0, f32::NAN] {
            let cfg = SyntheticConfig {
                travel,
                ..Default::default()
            };
            let err = cfg.validate().expect_err("travel out of range");
            assert!(err.to_string().contains("travel"), "{err}");
        }
    }

    #[test]
    fn travel_sets_the_distance_along_each_moving_axis() {
        for travel in [0.1f32, 0.5] {
            let cfg = SyntheticConfig {
                travel,
                ..Default::default()
            };
            let mut rng = clip_rng(0, Split::Train, 0);
            for (i, &d) in Direction::ALL.iter().enumerate() {
                let name = format!("clip{i}");
                let v = make_video(
                    &cfg,
                    name,
                    Split::Train,
                    Shape::Circle,
                    Colour::Red,
                    d,
                    1,
                    &mut rng,
                );
                let (dx, dy) = d.step();
                for (step, from, to) in [(dx, v.start.0, v.end.0), (dy, v.start.1, v.end.1)] {
                    let moved = (to - from) / cfg.width as f32;
                    if step == 0 {
                        assert_eq!(moved, 0.0, "{d:?}");
                    } else {
                        assert_eq!(moved.signum(), step as f32, "{d:?}");
                        let lo = MIN_TRAVEL_SHARE * travel - 1e-4;
                        assert!(
                            (lo..=travel).contains(&moved.abs()),
                            "{d:?} {moved} {travel}"
                        );
                    }
                }
            }
        }
    }
}
