//! Every media source and every kind of bad media file: each either loads with the documented
//! behaviour or fails with an error naming the file; none panics or hangs. Bad files are made
//! here, in a temporary directory, with the ffmpeg CLI (installed by scripts/setup.sh).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use antmmf_data::media::{
    DecodeOptions, FrameSampler, MediaError, MediaSource, SampleMode, VideoDecoder, load_clip,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn assets() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../assets"))
}

/// Runs the ffmpeg CLI to make a small synthetic file.
fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the ffmpeg CLI ({e}): run scripts/setup.sh"));
    assert!(status.success(), "ffmpeg {args:?} failed");
}

/// A `testsrc` H.264 clip of `secs` seconds at 25 fps.
fn synth(dir: &Path, name: &str, size: &str, secs: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    let src = format!("testsrc=size={size}:rate=25");
    let mut args = vec![
        "-f", "lavfi", "-i", &src, "-t", secs, "-pix_fmt", "yuv420p", "-c:v", "libx264",
    ];
    args.extend_from_slice(extra);
    let out_s = out.to_str().expect("utf-8 temp path");
    args.push(out_s);
    ffmpeg(&args);
    out
}

/// ffprobe's decoded frame count (`-count_frames`), the oracle for "how many frames exist".
fn ffprobe_frames(path: &Path) -> usize {
    let out = Command::new("ffprobe")
        .args(["-v", "quiet", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ffprobe ({e}): run scripts/setup.sh"));
    // Transport streams print a program section too: take the first number.
    String::from_utf8_lossy(&out.stdout)
        .split(|c: char| !c.is_ascii_digit())
        .find_map(|t| t.parse().ok())
        .expect("ffprobe frame count")
}

fn eval8() -> FrameSampler {
    FrameSampler::new(8, SampleMode::Eval)
}

fn load(path: &Path) -> Result<antmmf_data::media::Clip, MediaError> {
    load_clip(
        &MediaSource::detect(path),
        &eval8(),
        None,
        DecodeOptions::default(),
        &mut ChaCha8Rng::seed_from_u64(0),
    )
}

/// The error must name the file.
fn assert_names_file(err: &MediaError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name the file: {msg}"
    );
}

#[test]
fn unreadable_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();

    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let e = load(&empty).unwrap_err();
    assert!(matches!(e, MediaError::Open { .. }), "{e}");
    assert_names_file(&e, &empty);

    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n".repeat(50)).unwrap();
    let e = load(&text).unwrap_err();
    assert!(matches!(e, MediaError::Open { .. }), "{e}");
    assert_names_file(&e, &text);

    let missing = dir.path().join("missing.mp4");
    let e = load(&missing).unwrap_err();
    assert!(matches!(e, MediaError::Open { .. }), "{e}");
    assert_names_file(&e, &missing);

    let audio = dir.path().join("audio.mp4");
    let audio_s = audio.to_str().unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=0.3",
        "-c:a",
        "aac",
        audio_s,
    ]);
    let e = load(&audio).unwrap_err();
    assert!(matches!(e, MediaError::NoVideoStream { .. }), "{e}");
    assert_names_file(&e, &audio);

    // Truncated with the index (moov) at the end: the container is unreadable.
    let full = synth(dir.path(), "full.mp4", "64x48", "2", &["-g", "10"]);
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("truncated.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = load(&cut).unwrap_err();
    assert!(matches!(e, MediaError::Open { .. }), "{e}");
    assert_names_file(&e, &cut);

    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn truncated_streamable_file_counts_only_what_is_there() {
    // Index at the front (faststart), data cut: the container claims 50 frames, fewer exist.
    let dir = tempfile::tempdir().unwrap();
    let full = synth(
        dir.path(),
        "fs.mp4",
        "64x48",
        "2",
        &["-g", "10", "-movflags", "+faststart"],
    );
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("fs_cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let mut dec = VideoDecoder::open(&cut, DecodeOptions::default()).unwrap();
    let info = dec.info().clone();
    assert_eq!(info.container_frames, Some(50));
    assert!(info.frame_count > 0 && info.frame_count < 50, "{info:?}");
    assert_eq!(info.frame_count, ffprobe_frames(&cut));
    // Every counted frame decodes, the last one included; one past the end is a clear error.
    assert_eq!(
        dec.decode(&[0, info.frame_count / 2, info.frame_count - 1])
            .unwrap()
            .len(),
        3
    );
    let e = dec.decode(&[info.frame_count]).unwrap_err();
    assert!(matches!(e, MediaError::IndexOutOfRange { .. }), "{e}");
    assert_names_file(&e, &cut);
}

#[test]
fn one_frame_and_tenth_of_a_second_videos_yield_n_frames() {
    let dir = tempfile::tempdir().unwrap();
    let one = synth(dir.path(), "one.mp4", "64x48", "1", &["-frames:v", "1"]);
    let clip = load(&one).unwrap();
    assert_eq!(clip.frame_count, 1);
    assert_eq!(clip.indices, vec![0; 8]);
    assert_eq!(clip.frames.len(), 8);
    assert!(clip.frames.iter().all(|f| f == &clip.frames[0]));

    // 0.1 s at 25 fps = 3 frames (x264 rounds up): 8 indices spread evenly over them.
    let short = synth(dir.path(), "short.mp4", "64x48", "0.1", &[]);
    let clip = load(&short).unwrap();
    assert_eq!(clip.frame_count, 3);
    assert_eq!(clip.indices, vec![0, 0, 1, 1, 1, 1, 2, 2]);
    assert_eq!((clip.frames[0].width, clip.frames[0].height), (64, 48));
}

#[test]
fn corrupted_middle_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let full = synth(
        dir.path(),
        "c.mp4",
        "128x96",
        "2",
        &["-g", "10", "-movflags", "+faststart"],
    );
    let mut bytes = std::fs::read(&full).unwrap();
    let n = bytes.len();
    for (i, b) in bytes[n / 2..n / 2 + n / 10].iter_mut().enumerate() {
        *b = (i * 97 % 251) as u8;
    }
    let bad = dir.path().join("corrupt.mp4");
    std::fs::write(&bad, &bytes).unwrap();
    let started = Instant::now();
    match load(&bad) {
        // H.264 conceals damaged slices: all 8 frames come back.
        Ok(clip) => {
            assert_eq!(clip.frames.len(), 8);
            assert!(clip.frames.iter().all(|f| f.data.len() == 128 * 96 * 3));
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    MediaError::MissingFrames { .. } | MediaError::Decode { .. }
                ),
                "{e}"
            );
            assert_names_file(&e, &bad);
        }
    }
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn extreme_dimensions_decode() {
    let dir = tempfile::tempdir().unwrap();
    for (name, size, w, h) in [("tiny.mp4", "2x2", 2, 2), ("tall.mp4", "16x1024", 16, 1024)] {
        let p = synth(dir.path(), name, size, "0.2", &[]);
        let clip = load(&p).unwrap();
        assert_eq!(clip.frames.len(), 8, "{name}");
        assert_eq!(
            (clip.frames[0].width, clip.frames[0].height),
            (w, h),
            "{name}"
        );
    }
}

#[test]
fn time_limit_turns_into_an_error() {
    let p = assets().join("video/bikes.mp4");
    assert!(p.is_file(), "{} missing: run scripts/setup.sh", p.display());
    let opts = DecodeOptions {
        timeout: Duration::ZERO,
        ..DecodeOptions::default()
    };
    std::thread::sleep(Duration::from_millis(2));
    let e = VideoDecoder::open(&p, opts).unwrap_err();
    assert!(matches!(e, MediaError::Timeout { .. }), "{e}");
    assert_names_file(&e, &p);
}

#[test]
fn images_are_one_frame_clips() {
    let p = assets().join("images/chelsea.png");
    assert!(p.is_file(), "{} missing: run scripts/setup.sh", p.display());
    let img = image::open(&p).unwrap().to_rgb8();
    let clip = load(&p).unwrap();
    assert_eq!(clip.frame_count, 1);
    assert_eq!(clip.indices, vec![0; 8]);
    assert_eq!(
        (clip.frames[0].width, clip.frames[0].height),
        img.dimensions()
    );
    assert_eq!(clip.frames[7].data, img.into_raw());

    // A truncated JPEG: a clear error naming the file.
    let jpg = assets().join("images/rocket.jpg");
    assert!(
        jpg.is_file(),
        "{} missing: run scripts/setup.sh",
        jpg.display()
    );
    let bytes = std::fs::read(&jpg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let e = load(&cut).unwrap_err();
    assert!(matches!(e, MediaError::TruncatedImage { .. }), "{e}");
    assert_names_file(&e, &cut);
    // A JPEG cut inside its headers fails in the decoder.
    let head = dir.path().join("head.jpg");
    std::fs::write(&head, &bytes[..40]).unwrap();
    let e = load(&head).unwrap_err();
    assert!(
        matches!(
            e,
            MediaError::TruncatedImage { .. } | MediaError::Image { .. }
        ),
        "{e}"
    );
    assert_names_file(&e, &head);
}

#[test]
fn keyframe_directories_sort_by_number_and_sample_like_videos() {
    let dir = tempfile::tempdir().unwrap();
    let kf = dir.path().join("video42");
    std::fs::create_dir(&kf).unwrap();
    // Numbers 1..=10 without zero padding: name order would put 10 before 2.
    for n in 1..=10u8 {
        let img = image::RgbImage::from_pixel(8, 6, image::Rgb([n * 20, 255 - n, 7]));
        img.save(kf.join(format!("video42_{n}.png"))).unwrap();
    }
    std::fs::write(kf.join("notes.txt"), "ignored").unwrap();
    let clip = load_clip(
        &MediaSource::detect(&kf),
        &FrameSampler::new(4, SampleMode::Eval),
        None,
        DecodeOptions::default(),
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    // 10 frames, 4 clips: bounds 0,2,5,7,10 -> indices 0,3,5,8 -> files _1, _4, _6, _9.
    assert_eq!(clip.indices, vec![0, 3, 5, 8]);
    assert_eq!(clip.frame_count, 10);
    let reds: Vec<u8> = clip.frames.iter().map(|f| f.data[0]).collect();
    assert_eq!(reds, vec![20, 80, 120, 180]);

    let empty = dir.path().join("empty_dir");
    std::fs::create_dir(&empty).unwrap();
    let e = load(&empty).unwrap_err();
    assert!(matches!(e, MediaError::EmptyKeyframeDir { .. }), "{e}");
    assert_names_file(&e, &empty);

    let badname = dir.path().join("badname");
    std::fs::create_dir(&badname).unwrap();
    image::RgbImage::new(2, 2)
        .save(badname.join("cover.png"))
        .unwrap();
    let e = load(&badname).unwrap_err();
    assert!(matches!(e, MediaError::BadKeyframeName { .. }), "{e}");
}

#[test]
fn streams_without_timestamps_decode_sequentially() {
    // The same H.264 bitstream in MP4 and as a raw elementary stream (no timestamps).
    let dir = tempfile::tempdir().unwrap();
    let mp4 = synth(dir.path(), "clip.mp4", "64x48", "1", &["-g", "10"]);
    let raw = dir.path().join("clip.h264");
    let raw_s = raw.to_str().unwrap();
    ffmpeg(&[
        "-i",
        mp4.to_str().unwrap(),
        "-c",
        "copy",
        "-bsf:v",
        "h264_mp4toannexb",
        "-f",
        "h264",
        raw_s,
    ]);
    let asked = [3, 17, 24, 17];
    let a = VideoDecoder::open(&raw, DecodeOptions::default())
        .unwrap()
        .decode(&asked)
        .unwrap();
    let mut mp4_dec = VideoDecoder::open(&mp4, DecodeOptions::default()).unwrap();
    assert_eq!(mp4_dec.info().frame_count, 25);
    let b = mp4_dec.decode(&asked).unwrap();
    assert_eq!(a, b);

    // Remuxing the raw stream back into MP4 writes an edit list that hides its first two
    // frames: the container says 25, ffmpeg decodes 23, and so do we.
    let remux = dir.path().join("remux.mp4");
    ffmpeg(&[
        "-r",
        "25",
        "-i",
        raw_s,
        "-c",
        "copy",
        remux.to_str().unwrap(),
    ]);
    let info = VideoDecoder::open(&remux, DecodeOptions::default())
        .unwrap()
        .info()
        .clone();
    assert_eq!(info.container_frames, Some(25));
    assert_eq!(info.frame_count, ffprobe_frames(&remux));
    assert_eq!(info.frame_count, 23);
}

#[test]
fn frames_command_reports_and_writes_a_contact_sheet() {
    use antmmf_data::media::{FramesRequest, TimeWindow, frames_report};
    let p = assets().join("video/carphone_pristine.mp4");
    assert!(p.is_file(), "{} missing: run scripts/setup.sh", p.display());
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("sheet.png");
    let req = FramesRequest {
        num_frames: 4,
        window: Some(TimeWindow {
            start: 1.0,
            end: 3.0,
        }),
        png: Some(png.clone()),
        ..FramesRequest::default()
    };
    let r = frames_report(&p, &req).unwrap();
    // 30000/1001 fps: offset int(29.97) = 29, length int(59.94) = 59 -> bounds 0,14,29,44,59
    // -> middles 6, 21, 36, 51 -> + 29.
    assert_eq!(r.indices, vec![35, 50, 65, 80]);
    assert_eq!(r.frame_count, 120);
    assert!((r.fps - 30000.0 / 1001.0).abs() < 1e-12);
    assert_eq!(r.tensor_shape, [4, 3, 224, 224]);
    assert_eq!(r.channel_means.len(), 4);
    let sheet = image::open(&png).unwrap();
    assert_eq!((sheet.width(), sheet.height()), (4 * 224, 224));
    // Means of the decoded frames are plain 0..255 averages.
    assert!(
        r.channel_means
            .iter()
            .flatten()
            .all(|m| (50.0..200.0).contains(m))
    );
    // Same seed, same report; the JSON form carries the indices.
    let again = frames_report(&p, &req).unwrap();
    assert_eq!(again, r);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["indices"], serde_json::json!([35, 50, 65, 80]));
}

#[test]
fn lmdb_videos_decode_from_memory() {
    use antmmf_data::media::source::{LmdbVideos, lmdb_key};
    let p = assets().join("video/carphone_pristine.mp4");
    assert!(p.is_file(), "{} missing: run scripts/setup.sh", p.display());
    let bytes = std::fs::read(&p).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("videos.lmdb");
    std::fs::create_dir(&db_dir).unwrap();
    let key = lmdb_key("msrvtt/carphone_pristine.mp4");
    assert_eq!(key, "carphone_pristine");
    {
        // Write it the way AntMMF's conversion script does: stem -> file bytes.
        let env = unsafe {
            heed::EnvOpenOptions::new()
                .map_size(64 << 20)
                .open(&db_dir)
                .unwrap()
        };
        let wtxn = env.write_txn().unwrap();
        let db: heed::Database<heed::types::Bytes, heed::types::Bytes> = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                opener
                    .create_database(wtxn, None)
                    .map(heed::CommitOrAbort::<_, ()>::Commit)
            })
            .unwrap()
            .unwrap_commit();
        let mut wtxn = env.write_txn().unwrap();
        db.put(&mut wtxn, key.as_bytes(), &bytes).unwrap();
        wtxn.commit().unwrap();
    }
    let videos = LmdbVideos::open(&db_dir).unwrap();
    // LMDB allows one environment per process: every opener shares it (no EnvAlreadyOpened).
    let again = LmdbVideos::open(&db_dir).unwrap();
    assert!(std::sync::Arc::ptr_eq(&videos, &again));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let db = db_dir.clone();
            let key = key.clone();
            std::thread::spawn(move || {
                LmdbVideos::open(&db)
                    .unwrap()
                    .get(&key)
                    .unwrap()
                    .map(|b| b.len())
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), Some(bytes.len()));
    }
    let mut from_db = videos.decoder(&key, DecodeOptions::default()).unwrap();
    let mut from_file = VideoDecoder::open(&p, DecodeOptions::default()).unwrap();
    assert_eq!(from_db.info(), from_file.info());
    let asked = [0, 40, 119];
    assert_eq!(
        from_db.decode(&asked).unwrap(),
        from_file.decode(&asked).unwrap()
    );

    // Through load_clip, as a dataset would.
    let src = MediaSource::Lmdb {
        db: db_dir.clone(),
        key: key.clone(),
    };
    drop(videos);
    let clip = load_clip(
        &src,
        &eval8(),
        None,
        DecodeOptions::default(),
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap();
    assert_eq!(clip.frame_count, 120);

    // A missing key and a directory that is not LMDB are clear errors naming the database.
    let e = load_clip(
        &MediaSource::Lmdb {
            db: db_dir.clone(),
            key: "nope".into(),
        },
        &eval8(),
        None,
        DecodeOptions::default(),
        &mut ChaCha8Rng::seed_from_u64(0),
    )
    .unwrap_err();
    assert!(matches!(e, MediaError::Lmdb { .. }), "{e}");
    assert_names_file(&e, &db_dir);
    let not_db = dir.path().join("plain");
    std::fs::create_dir(&not_db).unwrap();
    let e = LmdbVideos::open(&not_db).unwrap_err();
    assert!(matches!(e, MediaError::Lmdb { .. }), "{e}");
}

/// Frame `n` as the ffmpeg CLI decodes it (`select=eq(n,N)`, rgb24).
fn ffmpeg_frame(path: &Path, n: usize) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "quiet", "-i"])
        .arg(path)
        .args(["-vf", &format!("select=eq(n\\,{n})"), "-frames:v", "1"])
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "pipe:1",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run the ffmpeg CLI ({e}): run scripts/setup.sh"));
    out.stdout
}

#[test]
fn stream_cut_mid_gop_counts_like_ffmpeg() {
    // A transport stream cut at a packet boundary in the middle of a GOP: its first packets
    // reference frames that are gone, so ffmpeg decodes fewer frames than there are packets.
    let dir = tempfile::tempdir().unwrap();
    let ts = synth(
        dir.path(),
        "g.ts",
        "128x96",
        "4",
        &["-g", "25", "-f", "mpegts"],
    );
    let bytes = std::fs::read(&ts).unwrap();
    let cut = dir.path().join("cut.ts");
    std::fs::write(&cut, &bytes[(bytes.len() / 188 / 3) * 188..]).unwrap();
    let mut dec = VideoDecoder::open(&cut, DecodeOptions::default()).unwrap();
    let n = dec.info().frame_count;
    assert_eq!(n, ffprobe_frames(&cut));
    for i in [0, n / 2, n - 1] {
        let got = dec.decode(&[i]).unwrap();
        assert_eq!(got[0].data, ffmpeg_frame(&cut, i), "frame {i} of {n}");
    }
}
