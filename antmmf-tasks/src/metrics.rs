//! Evaluation metrics as AntMMF reports them: global text-video retrieval recall and QA accuracy.
//!
//! Mirrors `antmmf/modules/metrics/global_retrieval_recall.py` (`_cal_sym_recall`: `t2v-r@1`,
//! `-r@5`, `-r@10`, `-mr` = median rank, `-mean_recall` = mean of R@1, R@5, R@10, reported as
//! `<split>/<logit key>_<name>`, e.g. `val/l1_simi_t2v-r@1`) and `antmmf/modules/metrics/accuracy.py`
//! (`accuracy`, used by open QA and multi-choice QA).
//!
//! Differences from AntMMF, on purpose:
//! - ranks use an explicit tie rule (optimistic: rank = 1 + number of strictly greater scores)
//!   instead of the position in `np.argsort`, whose order among equal scores is unspecified;
//! - recalls and mean recall are in **percent** (AntMMF logs fractions in `[0, 1]`); median and
//!   mean rank are 1-based, as AntMMF's `np.median(rank0) + 1`;
//! - `-mean_rank` is reported as well (AntMMF has no mean rank);
//! - videos without any caption are skipped in video-to-text (AntMMF would fail on them).
//!
//! Everything works on host `&[f32]` row-major matrices (gathered after inference) in O(rows x
//! columns) time with no allocation per row.

use std::thread;

/// Logit key of the contrastive (stage-1) similarity matrix.
pub const L1_SIMILARITY_KEY: &str = "l1_simi";
/// Logit key of the cross-encoder (stage-2) similarity matrix.
pub const L2_SIMILARITY_KEY: &str = "l2_simi";

/// Matrices with at least this many scores are ranked on several threads.
const PARALLEL_MIN_SCORES: usize = 1 << 20;

/// Errors raised on inconsistent metric inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// The score buffer does not hold `rows x cols` values.
    #[error("score matrix has {len} values, expected {rows} x {cols}")]
    MatrixSize {
        /// Values given.
        len: usize,
        /// Rows expected.
        rows: usize,
        /// Columns expected.
        cols: usize,
    },
    /// There are no rows (queries) or no columns (candidates).
    #[error("score matrix is empty ({rows} x {cols})")]
    Empty {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
    /// The ground truth does not have one entry per row.
    #[error("ground truth has {got} entries for {rows} rows")]
    GroundTruthLength {
        /// Entries given.
        got: usize,
        /// Rows of the matrix.
        rows: usize,
    },
    /// A ground-truth column is outside the matrix.
    #[error("row {row}: ground-truth column {column} is outside 0..{cols}")]
    GroundTruthOutOfRange {
        /// Row (query).
        row: usize,
        /// Ground-truth column given.
        column: usize,
        /// Number of columns.
        cols: usize,
    },
    /// The ground-truth score is NaN, so the rank is undefined.
    #[error("row {row}: the ground-truth score is NaN")]
    NanScore {
        /// Row (query).
        row: usize,
    },
    /// No ranks to summarise.
    #[error("no ranks to summarise")]
    NoRanks,
    /// `k` of a top-k metric is zero.
    #[error("top-k accuracy needs k >= 1")]
    ZeroK,
}

/// A row-major score matrix borrowed from host memory; rows are queries (texts), columns candidates.
#[derive(Debug, Clone, Copy)]
pub struct ScoreMatrix<'a> {
    scores: &'a [f32],
    rows: usize,
    cols: usize,
}

impl<'a> ScoreMatrix<'a> {
    /// Wraps `scores` (`rows x cols`, row-major) after checking its size.
    pub fn new(scores: &'a [f32], rows: usize, cols: usize) -> Result<Self, MetricsError> {
        if rows == 0 || cols == 0 {
            return Err(MetricsError::Empty { rows, cols });
        }
        if rows.checked_mul(cols) != Some(scores.len()) {
            return Err(MetricsError::MatrixSize {
                len: scores.len(),
                rows,
                cols,
            });
        }
        Ok(Self { scores, rows, cols })
    }

    /// Number of rows (texts).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (videos).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `r` as a slice (`r < rows`).
    fn row(&self, r: usize) -> &'a [f32] {
        &self.scores[r * self.cols..(r + 1) * self.cols]
    }

    /// Checks `gt` (one column per row, in range) and returns each row's ground-truth score.
    fn ground_truth_scores(&self, gt: &[usize]) -> Result<Vec<f32>, MetricsError> {
        if gt.len() != self.rows {
            return Err(MetricsError::GroundTruthLength {
                got: gt.len(),
                rows: self.rows,
            });
        }
        gt.iter()
            .enumerate()
            .map(|(row, &column)| {
                if column >= self.cols {
                    return Err(MetricsError::GroundTruthOutOfRange {
                        row,
                        column,
                        cols: self.cols,
                    });
                }
                let s = self.row(row)[column];
                if s.is_nan() {
                    return Err(MetricsError::NanScore { row });
                }
                Ok(s)
            })
            .collect()
    }
}

/// Number of `row` scores strictly greater than `threshold` (vectorisable).
fn count_greater(row: &[f32], threshold: f32) -> usize {
    row.iter().map(|&s| usize::from(s > threshold)).sum()
}

fn worker_count(scores: usize, rows: usize) -> usize {
    if scores < PARALLEL_MIN_SCORES {
        return 1;
    }
    thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(rows)
        .max(1)
}

/// Text-to-video ranks: `rank_i = 1 + #{v : S[i, v] > S[i, gt[i]]}` (1-based, optimistic ties).
///
/// `gt[i]` is the column of the video described by text `i`.
pub fn t2v_ranks(sim: &ScoreMatrix<'_>, gt: &[usize]) -> Result<Vec<usize>, MetricsError> {
    let gt_scores = sim.ground_truth_scores(gt)?;
    let mut ranks = vec![0usize; sim.rows];
    let workers = worker_count(sim.scores.len(), sim.rows);
    let chunk = sim.rows.div_ceil(workers);
    thread::scope(|scope| {
        for (c, out) in ranks.chunks_mut(chunk).enumerate() {
            let gt_scores = &gt_scores;
            let mut work = move || {
                for (k, rank) in out.iter_mut().enumerate() {
                    let r = c * chunk + k;
                    *rank = 1 + count_greater(sim.row(r), gt_scores[r]);
                }
            };
            if workers == 1 {
                work();
            } else {
                scope.spawn(work);
            }
        }
    });
    Ok(ranks)
}

/// Video-to-text ranks of the videos that have at least one caption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoRanks {
    /// Evaluated videos (columns with at least one caption), ascending.
    pub video_ids: Vec<usize>,
    /// `ranks[k]` is the rank of video `video_ids[k]`.
    pub ranks: Vec<usize>,
}

/// Video-to-text ranks with several captions per video: the best caption counts.
///
/// `rank_j = 1 + #{t : S[t, j] > max_{i : gt[i] = j} S[i, j]}`; the other captions of video `j`
/// stay among the candidates. Videos without a caption are skipped.
pub fn v2t_ranks(sim: &ScoreMatrix<'_>, gt: &[usize]) -> Result<VideoRanks, MetricsError> {
    let gt_scores = sim.ground_truth_scores(gt)?;
    let cols = sim.cols;
    let mut best = vec![f32::NEG_INFINITY; cols];
    let mut has_caption = vec![false; cols];
    for (&j, &s) in gt.iter().zip(&gt_scores) {
        has_caption[j] = true;
        best[j] = best[j].max(s);
    }
    let workers = worker_count(sim.scores.len(), sim.rows);
    let chunk = sim.rows.div_ceil(workers);
    let mut counts = vec![0usize; cols];
    thread::scope(|scope| {
        let best = &best;
        let count_rows = move |rows: std::ops::Range<usize>| {
            let mut local = vec![0usize; cols];
            for r in rows {
                for ((n, &s), &b) in local.iter_mut().zip(sim.row(r)).zip(best) {
                    *n += usize::from(s > b);
                }
            }
            local
        };
        if workers == 1 {
            counts = count_rows(0..sim.rows);
        } else {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let rows = (w * chunk).min(sim.rows)..((w + 1) * chunk).min(sim.rows);
                    scope.spawn(move || count_rows(rows))
                })
                .collect();
            for handle in handles {
                // A worker only indexes in-range rows; a panic there is a bug, re-raised as is.
                let local = handle
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e));
                for (total, n) in counts.iter_mut().zip(local) {
                    *total += n;
                }
            }
        }
    });
    let video_ids: Vec<usize> = (0..cols).filter(|&j| has_caption[j]).collect();
    let ranks = video_ids.iter().map(|&j| 1 + counts[j]).collect();
    Ok(VideoRanks { video_ids, ranks })
}

/// Recall, median and mean rank of one retrieval direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrievalMetrics {
    /// R@1 in percent.
    pub r1: f64,
    /// R@5 in percent.
    pub r5: f64,
    /// R@10 in percent.
    pub r10: f64,
    /// Median rank (`np.median`, may end in .5); AntMMF's `mr`.
    pub median_rank: f64,
    /// Mean rank.
    pub mean_rank: f64,
    /// `(R@1 + R@5 + R@10) / 3`, in percent; AntMMF's `mean_recall`.
    pub mean_recall: f64,
    /// Number of ranked queries.
    pub count: usize,
}

impl RetrievalMetrics {
    /// Summarises 1-based ranks.
    pub fn from_ranks(ranks: &[usize]) -> Result<Self, MetricsError> {
        let n = ranks.len();
        if n == 0 {
            return Err(MetricsError::NoRanks);
        }
        let recall =
            |k: usize| 100.0 * (ranks.iter().filter(|&&r| r <= k).count() as f64 / n as f64);
        let (r1, r5, r10) = (recall(1), recall(5), recall(10));
        let mut sorted = ranks.to_vec();
        sorted.sort_unstable();
        let median_rank = if n % 2 == 1 {
            sorted[n / 2] as f64
        } else {
            (sorted[n / 2 - 1] as f64 + sorted[n / 2] as f64) / 2.0
        };
        let mean_rank = ranks.iter().map(|&r| r as f64).sum::<f64>() / n as f64;
        Ok(Self {
            r1,
            r5,
            r10,
            median_rank,
            mean_rank,
            mean_recall: (r1 + r5 + r10) / 3.0,
            count: n,
        })
    }

    /// `(suffix, value)` pairs in AntMMF's naming: `r@1`, `r@5`, `r@10`, `mr`, `mean_recall`, `mean_rank`.
    pub fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("r@1", self.r1),
            ("r@5", self.r5),
            ("r@10", self.r10),
            ("mr", self.median_rank),
            ("mean_recall", self.mean_recall),
            ("mean_rank", self.mean_rank),
        ]
    }
}

/// Both directions of a global retrieval evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalReport {
    /// Text-to-video metrics (one query per text).
    pub t2v: RetrievalMetrics,
    /// Video-to-text metrics (one query per captioned video).
    pub v2t: RetrievalMetrics,
    /// Text-to-video ranks, one per text.
    pub t2v_ranks: Vec<usize>,
    /// Video-to-text ranks and the videos they belong to.
    pub v2t_ranks: VideoRanks,
}

impl RetrievalReport {
    /// Metric names and values as AntMMF logs them: `<split>/<key>_t2v-r@1`, ... (`key` is
    /// [`L1_SIMILARITY_KEY`] or [`L2_SIMILARITY_KEY`]).
    pub fn named(&self, split: &str, key: &str) -> Vec<(String, f64)> {
        [("t2v", &self.t2v), ("v2t", &self.v2t)]
            .into_iter()
            .flat_map(|(direction, m)| {
                m.named()
                    .into_iter()
                    .map(move |(name, v)| (format!("{split}/{key}_{direction}-{name}"), v))
            })
            .collect()
    }
}

/// Ranks and metrics of a `[texts x videos]` similarity matrix in both directions.
pub fn evaluate_retrieval(
    sim: &ScoreMatrix<'_>,
    gt: &[usize],
) -> Result<RetrievalReport, MetricsError> {
    let t2v_ranks = t2v_ranks(sim, gt)?;
    let v2t_ranks = v2t_ranks(sim, gt)?;
    Ok(RetrievalReport {
        t2v: RetrievalMetrics::from_ranks(&t2v_ranks)?,
        v2t: RetrievalMetrics::from_ranks(&v2t_ranks.ranks)?,
        t2v_ranks,
        v2t_ranks,
    })
}

// ---------------------------------------------------------------------------------------------
// QA accuracy
// ---------------------------------------------------------------------------------------------

/// Whether `target` is among the `k` best of `row`, ties going to the lower index (as a stable
/// descending sort; for `k = 1` this is "first argmax == target").
fn in_top_k(row: &[f32], target: usize, k: usize) -> bool {
    let t = row[target];
    let ahead = row
        .iter()
        .enumerate()
        .filter(|&(j, &s)| s > t || (s == t && j < target))
        .count();
    ahead < k
}

/// Index of the first maximum of `row` (NaN never wins).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (j, &s) in row.iter().enumerate() {
        if s > row[best] || (row[best].is_nan() && !s.is_nan()) {
            best = j;
        }
    }
    best
}

fn check_targets<'a>(
    scores: &'a [f32],
    classes: usize,
    targets: &[usize],
) -> Result<ScoreMatrix<'a>, MetricsError> {
    let m = ScoreMatrix::new(scores, targets.len(), classes)?;
    for (row, &column) in targets.iter().enumerate() {
        if column >= classes {
            return Err(MetricsError::GroundTruthOutOfRange {
                row,
                column,
                cols: classes,
            });
        }
    }
    Ok(m)
}

/// Top-k accuracy in `[0, 1]`: fraction of rows whose target is among the `k` highest scores.
///
/// `scores` is `[targets.len() x classes]` row-major; ties go to the lower class index.
pub fn top_k_accuracy(
    scores: &[f32],
    classes: usize,
    targets: &[usize],
    k: usize,
) -> Result<f64, MetricsError> {
    if k == 0 {
        return Err(MetricsError::ZeroK);
    }
    let m = check_targets(scores, classes, targets)?;
    let hits = targets
        .iter()
        .enumerate()
        .filter(|&(r, &t)| in_top_k(m.row(r), t, k))
        .count();
    Ok(hits as f64 / targets.len() as f64)
}

/// Accuracy in `[0, 1]` (AntMMF `accuracy`): fraction of rows whose first argmax is the target.
///
/// AntMMF additionally rounds the logged value to 4 decimals; this returns it unrounded.
pub fn accuracy(scores: &[f32], classes: usize, targets: &[usize]) -> Result<f64, MetricsError> {
    top_k_accuracy(scores, classes, targets, 1)
}

/// Multi-choice QA accuracy: `scores` holds one score per option (`[questions x options]`).
pub fn multiple_choice_accuracy(
    scores: &[f32],
    options: usize,
    answers: &[usize],
) -> Result<f64, MetricsError> {
    accuracy(scores, options, answers)
}

/// Per-answer counts of open QA predictions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelCounts {
    /// `total[c]`: rows whose target is `c`.
    pub total: Vec<usize>,
    /// `correct[c]`: rows with target `c` predicted as `c`.
    pub correct: Vec<usize>,
    /// `predicted[c]`: rows predicted as `c`.
    pub predicted: Vec<usize>,
}

/// Counts targets, correct predictions (first argmax) and predictions per answer label.
pub fn per_label_counts(
    scores: &[f32],
    classes: usize,
    targets: &[usize],
) -> Result<LabelCounts, MetricsError> {
    let m = check_targets(scores, classes, targets)?;
    let mut counts = LabelCounts {
        total: vec![0; classes],
        correct: vec![0; classes],
        predicted: vec![0; classes],
    };
    for (r, &t) in targets.iter().enumerate() {
        let p = argmax(m.row(r));
        counts.total[t] += 1;
        counts.predicted[p] += 1;
        if p == t {
            counts.correct[t] += 1;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_metrics_hand_checked() {
        // S (3 texts x 3 videos), gt = identity:
        // t0: [0.9, 0.1, 0.3] gt 0.9 -> rank 1; t1: [0.8, 0.2, 0.5] gt 0.2 -> 2 above -> rank 3;
        // t2: [0.1, 0.7, 0.6] gt 0.6 -> rank 2.
        // v2t: v0 col [0.9, 0.8, 0.1] -> 1; v1 col [0.1, 0.2, 0.7] gt 0.2 -> 2; v2 [0.3, 0.5, 0.6] -> 1.
        let s = [0.9f32, 0.1, 0.3, 0.8, 0.2, 0.5, 0.1, 0.7, 0.6];
        let m = ScoreMatrix::new(&s, 3, 3).unwrap();
        let report = evaluate_retrieval(&m, &[0, 1, 2]).unwrap();
        assert_eq!(report.t2v_ranks, vec![1, 3, 2]);
        assert_eq!(report.v2t_ranks.ranks, vec![1, 2, 1]);
        // t2v: R@1 = 100/3, R@5 = R@10 = 100, MedR 2, MeanR 2, mean recall (100/3 + 200) / 3.
        assert!((report.t2v.r1 - 100.0 / 3.0).abs() < 1e-12);
        assert_eq!(report.t2v.median_rank, 2.0);
        assert_eq!(report.t2v.mean_rank, 2.0);
        assert!((report.t2v.mean_recall - (100.0 / 3.0 + 200.0) / 3.0).abs() < 1e-12);
        let names = report.named("val", L1_SIMILARITY_KEY);
        assert_eq!(names[0].0, "val/l1_simi_t2v-r@1");
        assert_eq!(names[3], ("val/l1_simi_t2v-mr".to_string(), 2.0));
        assert_eq!(names[10].0, "val/l1_simi_v2t-mean_recall");
    }

    #[test]
    fn even_count_median_and_errors() {
        let m = RetrievalMetrics::from_ranks(&[1, 2, 4, 30]).unwrap();
        assert_eq!(m.median_rank, 3.0);
        assert_eq!(m.r5, 75.0);
        assert_eq!(m.r10, 75.0);
        assert_eq!(m.mean_rank, 37.0 / 4.0);
        assert_eq!(
            RetrievalMetrics::from_ranks(&[]),
            Err(MetricsError::NoRanks)
        );
        let s = [0.0f32; 4];
        assert!(ScoreMatrix::new(&s, 2, 3).is_err());
        let m = ScoreMatrix::new(&s, 2, 2).unwrap();
        assert!(matches!(
            t2v_ranks(&m, &[0, 2]),
            Err(MetricsError::GroundTruthOutOfRange {
                row: 1,
                column: 2,
                ..
            })
        ));
        assert!(t2v_ranks(&m, &[0]).is_err());
        let nan = [f32::NAN, 0.0, 0.0, 0.0];
        let m = ScoreMatrix::new(&nan, 2, 2).unwrap();
        assert_eq!(
            t2v_ranks(&m, &[0, 1]),
            Err(MetricsError::NanScore { row: 0 })
        );
    }

    #[test]
    fn qa_accuracy_hand_checked() {
        // 4 questions x 3 answers.
        // q0 [0.1, 0.7, 0.2] target 1 -> argmax 1, correct.
        // q1 [0.5, 0.5, 0.0] target 1 -> tie, first argmax 0: wrong at top-1, right at top-2.
        // q2 [0.3, 0.2, 0.1] target 2 -> last: wrong at top-1 and top-2, right at top-3.
        // q3 [0.0, 0.1, 0.9] target 2 -> correct.
        let s = [
            0.1f32, 0.7, 0.2, 0.5, 0.5, 0.0, 0.3, 0.2, 0.1, 0.0, 0.1, 0.9,
        ];
        let t = [1, 1, 2, 2];
        assert_eq!(accuracy(&s, 3, &t).unwrap(), 0.5);
        assert_eq!(top_k_accuracy(&s, 3, &t, 2).unwrap(), 0.75);
        assert_eq!(top_k_accuracy(&s, 3, &t, 5).unwrap(), 1.0);
        assert_eq!(multiple_choice_accuracy(&s, 3, &t).unwrap(), 0.5);
        let counts = per_label_counts(&s, 3, &t).unwrap();
        assert_eq!(counts.total, vec![0, 2, 2]);
        assert_eq!(counts.correct, vec![0, 1, 1]);
        assert_eq!(counts.predicted, vec![2, 1, 1]);
        assert_eq!(top_k_accuracy(&s, 3, &t, 0), Err(MetricsError::ZeroK));
        assert!(accuracy(&s, 3, &[1, 1, 2, 3]).is_err());
    }

    #[test]
    fn parallel_path_matches_single_thread() {
        // 1100 x 1000 > PARALLEL_MIN_SCORES: compare against a direct count on a pseudo-random grid.
        let (rows, cols) = (1100usize, 1000usize);
        let mut state = 12345u64;
        let s: Vec<f32> = (0..rows * cols)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) % 64) as f32 / 8.0
            })
            .collect();
        let gt: Vec<usize> = (0..rows).map(|i| (i * 7) % cols).collect();
        let m = ScoreMatrix::new(&s, rows, cols).unwrap();
        let t2v = t2v_ranks(&m, &gt).unwrap();
        let v2t = v2t_ranks(&m, &gt).unwrap();
        for (i, &g) in gt.iter().enumerate().step_by(97) {
            let row = &s[i * cols..(i + 1) * cols];
            assert_eq!(t2v[i], 1 + row.iter().filter(|&&x| x > row[g]).count());
        }
        for (k, &j) in v2t.video_ids.iter().enumerate().step_by(13) {
            let best = (0..rows)
                .filter(|&i| gt[i] == j)
                .map(|i| s[i * cols + j])
                .fold(f32::MIN, f32::max);
            let want = 1 + (0..rows).filter(|&i| s[i * cols + j] > best).count();
            assert_eq!(v2t.ranks[k], want);
        }
    }
}
