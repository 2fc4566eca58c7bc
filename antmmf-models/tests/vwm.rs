//! SNP-S3 vision-word matching on hand-checked values.

use antmmf_models::losses::l1_mil_nce_loss;
use antmmf_models::univl::vwm::{gather_words, vwm_clip_similarity, vwm_loss, vwm_recall};
use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};

type B = Flex;

fn close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
            "{got:?} vs {want:?}"
        );
    }
}

#[test]
fn word_scores_take_logsumexp_over_words_and_mil_nce() {
    let d = Default::default();
    // Videos: one clip each, v0 = [1, 0], v1 = [0, 1]. Text 0 words [1, 0], [0, 0];
    // text 1 words [0, 0], [0, 2].
    let video = Tensor::<B, 3>::from_data(TensorData::new(vec![1f32, 0., 0., 1.], [2, 1, 2]), &d);
    let words = Tensor::<B, 3>::from_data(
        TensorData::new(vec![1f32, 0., 0., 0., 0., 0., 0., 2.], [2, 2, 2]),
        &d,
    );
    // s[t, v] = ln(sum_k exp(<w_tk, v>)): ln(e + 1), ln 2; ln 2, ln(1 + e^2).
    let e = std::f32::consts::E;
    let want = [(e + 1.).ln(), 2f32.ln(), 2f32.ln(), (1. + e * e).ln()];
    let sim = vwm_clip_similarity(words.clone(), video.clone(), None);
    close(&sim.clone().into_data().to_vec::<f32>().unwrap(), &want);
    let (loss, video_sim) = vwm_loss(words, video, None).unwrap();
    close(&video_sim.into_data().to_vec::<f32>().unwrap(), &want);
    let ref_sim = Tensor::<B, 3>::from_data(TensorData::new(want.to_vec(), [2, 2, 1]), &d);
    let want_loss = l1_mil_nce_loss(ref_sim).unwrap().into_scalar();
    close(&[loss.into_scalar()], &[want_loss]);
}

#[test]
fn padded_clips_score_padded_and_words_gather_by_position() {
    let d = Default::default();
    let seq = Tensor::<B, 3>::from_data(
        TensorData::new((0..12).map(|x| x as f32).collect::<Vec<_>>(), [2, 3, 2]),
        &d,
    );
    let pos = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![2i64, 0, 1, 1], [2, 2]), &d);
    let got = gather_words(seq, pos).into_data().to_vec::<f32>().unwrap();
    close(&got, &[4., 5., 0., 1., 8., 9., 8., 9.]);
    let video = Tensor::<B, 3>::ones([1, 2, 2], &d);
    let mask = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64, 0], [1, 2]), &d);
    let words = Tensor::<B, 3>::ones([1, 1, 2], &d);
    let s = vwm_clip_similarity(words, video, Some(mask))
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert!((s[0] - 2.0).abs() < 1e-5 && s[1] < -1e9, "{s:?}");
}

#[test]
fn recall_counts_ranks_of_the_matched_video() {
    // Row 0 ranks its match first, row 1 second, row 2 third.
    let sim = [3f32, 1., 0., 2., 1., 0., 2., 1., 0.];
    let r = vwm_recall(&sim, 3);
    assert_eq!((r.median_rank, r.r1), (2.0, 100.0 / 3.0));
    assert_eq!(r.r5, 100.0);
}
