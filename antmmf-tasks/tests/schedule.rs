//! AntMMF LR schedule: hand-checked values of `lr_lambda_update` and resume through a record.
//!
//! Tolerance: `|lr - expected| <= 1e-15` (values are products of a few f64 operations).

use antmmf_tasks::schedule::{AntMmfLrSchedule, LrScheduleConfig};
use burn::backend::Flex;
use burn::lr_scheduler::LrScheduler;
use burn::record::{CompactRecorder, Recorder};

const TOL: f64 = 1e-15;

fn assert_lr(s: &AntMmfLrSchedule, iteration: usize, want: f64) {
    let got = s.lr_at(iteration);
    assert!(
        (got - want).abs() <= TOL,
        "iteration {iteration}: got {got}, want {want}"
    );
}

fn warmup_and_steps() -> LrScheduleConfig {
    LrScheduleConfig {
        lr_scheduler: true,
        use_warmup: true,
        warmup_factor: 0.1,
        warmup_iterations: 1000,
        lr_steps: vec![3000, 5000],
        lr_ratio: 0.1,
        ..Default::default()
    }
}

#[test]
fn warmup_then_step_decay_hand_checked() {
    let s = AntMmfLrSchedule::new(1e-4, &warmup_and_steps(), 0).unwrap();
    // warmup: factor = 0.1 * (1 - i/1000) + i/1000
    assert_lr(&s, 0, 1e-4 * 0.1);
    assert_lr(&s, 250, 1e-4 * (0.1 * 0.75 + 0.25)); // 0.325
    assert_lr(&s, 500, 1e-4 * 0.55);
    assert_lr(&s, 1000, 1e-4); // last warmup iteration: alpha = 1
    // decay: 0.1 ^ bisect_right([3000, 5000], i)
    assert_lr(&s, 1001, 1e-4);
    assert_lr(&s, 2999, 1e-4);
    assert_lr(&s, 3000, 1e-4 * 0.1); // bisect_right counts a step equal to i
    assert_lr(&s, 4999, 1e-4 * 0.1);
    assert_lr(&s, 5000, 1e-4 * 0.1 * 0.1);
    assert_lr(&s, 1_000_000, 1e-4 * 0.1 * 0.1);
}

#[test]
fn warmup_ignores_steps_inside_it() {
    // AntMMF's branch order: while warming up, decay steps are not applied.
    let config = LrScheduleConfig {
        lr_steps: vec![500],
        ..warmup_and_steps()
    };
    let s = AntMmfLrSchedule::new(1.0, &config, 0).unwrap();
    assert_lr(&s, 600, 0.1 * 0.4 + 0.6); // 0.64
    assert_lr(&s, 1001, 0.1);
}

#[test]
fn lr_epochs_take_precedence_over_lr_steps() {
    let config = LrScheduleConfig {
        lr_scheduler: true,
        lr_steps: vec![1],
        lr_epochs: vec![2, 4],
        lr_ratio: 0.5,
        ..Default::default()
    };
    let s = AntMmfLrSchedule::new(2.0, &config, 100).unwrap();
    assert_eq!(s.decay_steps(), &[200, 400]);
    assert_lr(&s, 1, 2.0);
    assert_lr(&s, 199, 2.0);
    assert_lr(&s, 200, 1.0);
    assert_lr(&s, 400, 0.5);
}

#[test]
fn step_sequence_and_gradient_accumulation() {
    // LambdaLR applies factor(0) before the first update: step() k returns lr_at(k - 1).
    let mut s = AntMmfLrSchedule::new(1.0, &warmup_and_steps(), 0).unwrap();
    let first: Vec<f64> = (0..3).map(|_| s.step()).collect();
    assert_eq!(first, vec![0.1, 0.1 * 0.999 + 0.001, 0.1 * 0.998 + 0.002]);
    // With 4 batches per optimizer update the schedule advances once every 4 steps.
    let mut s = AntMmfLrSchedule::new(1.0, &warmup_and_steps(), 0)
        .unwrap()
        .with_batches_per_update(4);
    let lrs: Vec<f64> = (0..8).map(|_| s.step()).collect();
    assert_eq!(&lrs[..4], &[0.1; 4]);
    assert_eq!(&lrs[4..], &[0.1 * 0.999 + 0.001; 4]);
    assert_eq!(s.iteration(), 2);
}

#[test]
fn resume_from_record_continues_the_schedule() {
    let fresh = || AntMmfLrSchedule::new(1e-4, &warmup_and_steps(), 0).unwrap();
    let mut original = fresh();
    for _ in 0..2990 {
        original.step();
    }
    // In-memory record round trip.
    let mut resumed = fresh().load_record::<Flex>(original.to_record::<Flex>());
    assert_eq!(resumed.iteration(), 2990);
    // Round trip through the learner's checkpoint format (CompactRecorder, .mpk file).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler-1");
    let recorder = CompactRecorder::new();
    <CompactRecorder as Recorder<Flex>>::record(
        &recorder,
        original.to_record::<Flex>(),
        path.clone(),
    )
    .unwrap();
    let loaded: usize =
        <CompactRecorder as Recorder<Flex>>::load(&recorder, path, &Default::default()).unwrap();
    let mut from_file = fresh().load_record::<Flex>(loaded);
    // Across the 3000-iteration decay boundary all three agree step by step.
    for _ in 0..20 {
        let want = original.step();
        assert_eq!(resumed.step(), want);
        assert_eq!(from_file.step(), want);
    }
    assert_eq!(original.iteration(), 3010);
    assert_lr(&original, 3009, 1e-5);
}
