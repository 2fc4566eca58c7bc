//! A deterministic, multi-threaded Burn `DataLoader` for [`VideoTextDataset`]s:
//! [`DeterministicLoader`].
//!
//! Determinism: the batch sequence depends only on `(seed, epoch)` and the dataset, never on
//! `num_workers` or thread timing.
//! - Order: shuffled loaders permute the items with ChaCha8 keyed by `(seed, epoch)`; others are
//!   sequential (file order). With [`DeterministicLoader::with_shard`], rank `r` of `w` takes
//!   positions `r, r + w, r + 2w, ...` of that order (every item exactly once per epoch across
//!   ranks; rank lengths differ by at most one). Training loaders (`drop_last`) give every rank
//!   the same number of batches, as data-parallel training needs.
//! - Batches are consecutive runs of `batch_size` positions. Batch `k` of epoch `e` carries
//!   [`VideoTextBatch::iteration`] `e * batches_per_epoch + k + 1`, also after a resume. A shuffled (training) loader drops
//!   the last partial batch by default (`drop_last`: in-batch negatives of the contrastive losses
//!   and batch statistics assume full batches); a sequential (evaluation) loader keeps it so
//!   every item is evaluated.
//! - Sample `p` of epoch `e` is built with [`sample_rng`]`(seed, e, p)` (`p` is the position in
//!   the epoch's full order), so the same item gets the same caption draw, frames, augmentation
//!   and masks whichever thread builds it.
//! - `num_workers` threads build samples; the consumer reassembles them in order and turns each
//!   batch into tensors. Workers run at most `prefetch_batches` batches ahead of the consumer.
//!   Burn's own multi-threaded loader interleaves worker batches nondeterministically, so it is
//!   not used.
//!
//! Failures never stop an epoch: a sample whose building fails (missing or undecodable media
//! without `allow_video_miss`, a malformed transcript, a panic, caught in the worker, or a
//! sample not ready within `sample_timeout`) is skipped and counted; its batch is smaller (a
//! batch left empty is not yielded). The count and the first few files are logged at the end of
//! the epoch and kept in [`DeterministicLoader::skip_report`]. Decoding itself has a time limit
//! (the media module's), so a pathological file fails instead of hanging a worker.
//!
//! Resuming: [`DeterministicLoader::iter_from`]`(epoch, k)` yields exactly the batches `k..` of
//! that epoch. [`DataLoader::iter`] starts the next epoch of an internal counter (set it with
//! [`DeterministicLoader::set_epoch`]); evaluation loaders keep epoch 0 so that every evaluation
//! sees the same samples.

use std::collections::HashMap;
use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use antmmf_core::config::TrainingParameters;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::tensor::backend::Backend;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::batch::{VideoTextBatch, VideoTextBatcher};
use crate::dataset::{Sample, SampleError, VideoTextDataset, sample_rng};
use crate::dataset_config::Split;

/// How many skipped samples a [`SkipReport`] lists by name.
pub const REPORTED_SKIPS: usize = 8;

/// Anything the loader can build samples from (a [`VideoTextDataset`], or a test double).
pub trait SampleSource: Send + Sync {
    /// Number of items.
    fn len(&self) -> usize;

    /// Whether there is no item.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds item `index`, drawing every random choice from `rng`.
    fn load(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample, SampleError>;

    /// A name for item `index` in reports (its clip name).
    fn describe(&self, _index: usize) -> Option<String> {
        None
    }
}

impl SampleSource for VideoTextDataset {
    fn len(&self) -> usize {
        VideoTextDataset::len(self)
    }

    fn load(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample, SampleError> {
        self.get_with_rng(index, rng)
    }

    fn describe(&self, index: usize) -> Option<String> {
        self.clip_name(index).map(str::to_owned)
    }
}

/// Errors of loader configuration.
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// A setting is out of range.
    #[error("{key}: {message}")]
    Invalid {
        /// Config key of the setting.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The shard does not exist.
    #[error("shard rank {rank} is not below world size {world_size} (world size must be positive)")]
    Shard {
        /// Requested rank.
        rank: usize,
        /// Requested world size.
        world_size: usize,
    },
}

/// Loader settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// Samples per batch.
    pub batch_size: usize,
    /// Worker threads building samples (0: build them in the consuming thread).
    pub num_workers: usize,
    /// Seed of the order and of every sample's generator.
    pub seed: u64,
    /// Permute the items each epoch (training) or keep file order (evaluation).
    pub shuffle: bool,
    /// Drop the last partial batch.
    pub drop_last: bool,
    /// How many batches workers may run ahead of the consumer (at least 1).
    pub prefetch_batches: usize,
    /// Watchdog: a sample not ready after this long is skipped (decoding has its own limit).
    pub sample_timeout: Duration,
    /// Whether [`DataLoader::iter`] moves to the next epoch (training) or repeats epoch 0.
    pub advance_epoch: bool,
}

impl LoaderConfig {
    /// Training: shuffled, last partial batch dropped, a new epoch per `iter()`.
    pub fn train(batch_size: usize, num_workers: usize, seed: u64) -> Self {
        Self {
            batch_size,
            num_workers,
            seed,
            shuffle: true,
            drop_last: true,
            prefetch_batches: 2,
            sample_timeout: Duration::from_secs(600),
            advance_epoch: true,
        }
    }

    /// From `training_parameters`: [`LoaderConfig::train`] with `batch_size` for the train
    /// split, [`LoaderConfig::eval`] with `test_batch_size` (default `batch_size`) otherwise;
    /// `num_workers` threads; `seed` is the run's resolved seed.
    pub fn from_training_parameters(
        tp: &TrainingParameters,
        split: Split,
        seed: u64,
    ) -> Result<Self, LoaderError> {
        let positive = |key: &str, v: i64| {
            usize::try_from(v)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| LoaderError::Invalid {
                    key: format!("training_parameters.{key}"),
                    message: format!("must be positive, got {v}"),
                })
        };
        let workers = usize::try_from(tp.num_workers).map_err(|_| LoaderError::Invalid {
            key: "training_parameters.num_workers".into(),
            message: format!("must not be negative, got {}", tp.num_workers),
        })?;
        Ok(match (split, tp.test_batch_size) {
            (Split::Train, _) => Self::train(positive("batch_size", tp.batch_size)?, workers, seed),
            (_, Some(b)) => Self::eval(positive("test_batch_size", b)?, workers, seed),
            (_, None) => Self::eval(positive("batch_size", tp.batch_size)?, workers, seed),
        })
    }

    /// Evaluation: file order, every item kept, the same samples on every `iter()`.
    pub fn eval(batch_size: usize, num_workers: usize, seed: u64) -> Self {
        Self {
            shuffle: false,
            drop_last: false,
            advance_epoch: false,
            ..Self::train(batch_size, num_workers, seed)
        }
    }
}

/// A sample the loader skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedSample {
    /// Epoch in which it was skipped.
    pub epoch: u64,
    /// Dataset index.
    pub index: usize,
    /// The file concerned (or the clip name when the error names no file).
    pub file: String,
    /// The error.
    pub reason: String,
}

/// Skipped samples since the loader was built (or [`DeterministicLoader::reset_skip_report`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SkipReport {
    /// Number of skipped samples.
    pub count: usize,
    /// The first [`REPORTED_SKIPS`] of them.
    pub first: Vec<SkippedSample>,
}

/// One position of an epoch: where it is in the epoch's order and which item it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Job {
    position: u64,
    index: usize,
}

/// The deterministic multi-threaded loader (see the module documentation).
pub struct DeterministicLoader<B: Backend> {
    source: Arc<dyn SampleSource>,
    batcher: VideoTextBatcher,
    device: B::Device,
    config: LoaderConfig,
    range: Range<usize>,
    rank: usize,
    world_size: usize,
    next_epoch: Arc<AtomicU64>,
    skips: Arc<Mutex<SkipReport>>,
}

impl<B: Backend> Clone for DeterministicLoader<B> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            batcher: self.batcher,
            device: self.device.clone(),
            config: self.config.clone(),
            range: self.range.clone(),
            rank: self.rank,
            world_size: self.world_size,
            next_epoch: Arc::new(AtomicU64::new(self.next_epoch.load(Ordering::SeqCst))),
            skips: self.skips.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<B: Backend> DeterministicLoader<B> {
    /// A loader over every item of `source`, producing batches on `device`.
    pub fn new(
        source: Arc<dyn SampleSource>,
        config: LoaderConfig,
        device: B::Device,
    ) -> Result<Self, LoaderError> {
        if config.batch_size == 0 {
            return Err(LoaderError::Invalid {
                key: "training_parameters.batch_size".into(),
                message: "must be positive, got 0".into(),
            });
        }
        let n = source.len();
        Ok(Self {
            source,
            batcher: VideoTextBatcher::new(),
            device,
            config,
            range: 0..n,
            rank: 0,
            world_size: 1,
            next_epoch: Arc::new(AtomicU64::new(0)),
            skips: Arc::new(Mutex::new(SkipReport::default())),
        })
    }

    /// This loader restricted to rank `rank` of `world_size` (see the module documentation).
    pub fn with_shard(mut self, rank: usize, world_size: usize) -> Result<Self, LoaderError> {
        if world_size == 0 || rank >= world_size {
            return Err(LoaderError::Shard { rank, world_size });
        }
        self.rank = rank;
        self.world_size = world_size;
        Ok(self)
    }

    /// The settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The epoch the next [`DataLoader::iter`] call will use.
    pub fn epoch(&self) -> u64 {
        self.next_epoch.load(Ordering::SeqCst)
    }

    /// Sets the epoch the next [`DataLoader::iter`] call will use (resuming a run).
    pub fn set_epoch(&self, epoch: u64) {
        self.next_epoch.store(epoch, Ordering::SeqCst);
    }

    /// Items of this loader (its slice and shard) per epoch, a dropped partial batch included.
    pub fn items_per_epoch(&self) -> usize {
        let n = self.range.len();
        (n + self.world_size - 1 - self.rank) / self.world_size
    }

    /// Batches per epoch (for this shard). With `drop_last` every rank gets the same count (the
    /// smallest shard's), so data-parallel ranks take the same number of steps.
    pub fn batches_per_epoch(&self) -> usize {
        let bs = self.config.batch_size;
        if self.config.drop_last {
            (self.range.len() / self.world_size) / bs
        } else {
            self.items_per_epoch().div_ceil(bs)
        }
    }

    /// Dataset indices of this loader's epoch, in batch order (a dropped partial batch
    /// included).
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        self.jobs(epoch).into_iter().map(|j| j.index).collect()
    }

    fn jobs(&self, epoch: u64) -> Vec<Job> {
        let mut order: Vec<usize> = self.range.clone().collect();
        if self.config.shuffle {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&self.config.seed.to_le_bytes());
            key[8..16].copy_from_slice(&epoch.to_le_bytes());
            key[16..24].copy_from_slice(b"order\0\0\0");
            order.shuffle(&mut ChaCha8Rng::from_seed(key));
        }
        order
            .into_iter()
            .enumerate()
            .filter(|(p, _)| p % self.world_size == self.rank)
            .map(|(p, index)| Job {
                position: p as u64,
                index,
            })
            .collect()
    }

    /// Skipped samples so far.
    pub fn skip_report(&self) -> SkipReport {
        lock(&self.skips).clone()
    }

    /// Clears the skip report.
    pub fn reset_skip_report(&self) {
        *lock(&self.skips) = SkipReport::default();
    }

    /// Batches `batch_index..` of `epoch` (identical to those of an uninterrupted epoch).
    pub fn iter_from(&self, epoch: u64, batch_index: usize) -> DeterministicIter<B> {
        let jobs = Arc::new(self.jobs(epoch));
        let bs = self.config.batch_size;
        let num_batches = self.batches_per_epoch();
        let total = (num_batches * bs).min(jobs.len());
        let start_batch = batch_index.min(num_batches);
        let start = (start_batch * bs).min(total);
        let prefetch = self.config.prefetch_batches.max(1);
        let mut mode = Mode::Inline;
        if self.config.num_workers > 0 && start < total {
            let shared = Arc::new(Shared {
                state: Mutex::new(WorkState {
                    next_job: start,
                    end: total,
                    limit: start + prefetch * bs,
                    stop: false,
                }),
                cv: Condvar::new(),
            });
            let (tx, rx) = mpsc::channel();
            let mut spawned = 0;
            for w in 0..self.config.num_workers {
                let ctx = WorkerContext {
                    shared: shared.clone(),
                    jobs: jobs.clone(),
                    source: self.source.clone(),
                    seed: self.config.seed,
                    epoch,
                    tx: tx.clone(),
                };
                match std::thread::Builder::new()
                    .name(format!("antmmf-loader-{w}"))
                    .spawn(move || ctx.run())
                {
                    Ok(_) => spawned += 1,
                    Err(e) => log::warn!("cannot start loader worker {w}: {e}"),
                }
            }
            if spawned > 0 {
                mode = Mode::Workers {
                    shared,
                    rx,
                    ready: HashMap::new(),
                };
            } else {
                log::warn!("no loader worker could start: building samples in this thread");
            }
        }
        DeterministicIter {
            jobs,
            source: self.source.clone(),
            batcher: self.batcher,
            device: self.device.clone(),
            seed: self.config.seed,
            epoch,
            batch_size: bs,
            prefetch,
            next_batch: start_batch,
            num_batches,
            total,
            processed: start,
            timeout: self.config.sample_timeout,
            mode,
            skips: self.skips.clone(),
            epoch_skips: Vec::new(),
            epoch_skip_count: 0,
            finished: false,
        }
    }
}

impl<B: Backend> DataLoader<B, VideoTextBatch<B>> for DeterministicLoader<B> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<VideoTextBatch<B>> + 'a> {
        let epoch = if self.config.advance_epoch {
            self.next_epoch.fetch_add(1, Ordering::SeqCst)
        } else {
            self.next_epoch.load(Ordering::SeqCst)
        };
        Box::new(self.iter_from(epoch, 0))
    }

    fn num_items(&self) -> usize {
        self.items_per_epoch()
    }

    fn to_device(&self, device: &B::Device) -> Arc<dyn DataLoader<B, VideoTextBatch<B>>> {
        let mut l = self.clone();
        l.device = device.clone();
        Arc::new(l)
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<B, VideoTextBatch<B>>> {
        let mut l = self.clone();
        let lo = (self.range.start + start).min(self.range.end);
        let hi = (self.range.start + end).clamp(lo, self.range.end);
        l.range = lo..hi;
        Arc::new(l)
    }
}

/// Work distribution shared by the workers and the consumer.
struct Shared {
    state: Mutex<WorkState>,
    cv: Condvar,
}

struct WorkState {
    /// Next job to claim.
    next_job: usize,
    /// One past the last job of the epoch.
    end: usize,
    /// Jobs at or past this index wait for the consumer (bounded prefetch).
    limit: usize,
    /// The iterator was dropped.
    stop: bool,
}

type Built = (usize, Result<Sample, SampleError>);

struct WorkerContext {
    shared: Arc<Shared>,
    jobs: Arc<Vec<Job>>,
    source: Arc<dyn SampleSource>,
    seed: u64,
    epoch: u64,
    tx: Sender<Built>,
}

impl WorkerContext {
    fn run(self) {
        loop {
            let j = {
                let mut st = lock(&self.shared.state);
                loop {
                    if st.stop || st.next_job >= st.end {
                        return;
                    }
                    if st.next_job < st.limit {
                        break;
                    }
                    st = self.shared.cv.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                st.next_job += 1;
                st.next_job - 1
            };
            let Some(&job) = self.jobs.get(j) else {
                return;
            };
            let built = build(&*self.source, self.seed, self.epoch, job);
            if self.tx.send((j, built)).is_err() {
                return;
            }
        }
    }
}

/// Builds one sample with its own generator, turning a panic into an error.
fn build(
    source: &dyn SampleSource,
    seed: u64,
    epoch: u64,
    job: Job,
) -> Result<Sample, SampleError> {
    let mut rng = sample_rng(seed, epoch, job.position);
    match catch_unwind(AssertUnwindSafe(|| source.load(job.index, &mut rng))) {
        Ok(r) => r,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(SampleError::Panic {
                index: job.index,
                message,
            })
        }
    }
}

enum Mode {
    Inline,
    Workers {
        shared: Arc<Shared>,
        rx: Receiver<Built>,
        ready: HashMap<usize, Result<Sample, SampleError>>,
    },
}

/// Iterator over the batches of one epoch of a [`DeterministicLoader`].
pub struct DeterministicIter<B: Backend> {
    jobs: Arc<Vec<Job>>,
    source: Arc<dyn SampleSource>,
    batcher: VideoTextBatcher,
    device: B::Device,
    seed: u64,
    epoch: u64,
    batch_size: usize,
    prefetch: usize,
    next_batch: usize,
    num_batches: usize,
    total: usize,
    processed: usize,
    timeout: Duration,
    mode: Mode,
    skips: Arc<Mutex<SkipReport>>,
    epoch_skips: Vec<SkippedSample>,
    epoch_skip_count: usize,
    finished: bool,
}

impl<B: Backend> DeterministicIter<B> {
    /// The epoch being iterated.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Index (within the epoch) of the batch the next call yields or skips.
    pub fn next_batch_index(&self) -> usize {
        self.next_batch
    }

    fn take(&mut self, j: usize) -> Result<Sample, SampleError> {
        let job = self.jobs[j];
        let Mode::Workers { rx, ready, .. } = &mut self.mode else {
            return build(&*self.source, self.seed, self.epoch, job);
        };
        if let Some(r) = ready.remove(&j) {
            return r;
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((k, r)) if k == j => return r,
                // Later jobs wait for their turn; earlier ones were given up on (watchdog).
                Ok((k, r)) => {
                    if k > j {
                        ready.insert(k, r);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(SampleError::Timeout {
                        index: job.index,
                        seconds: self.timeout.as_secs_f64(),
                    });
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(SampleError::Panic {
                        index: job.index,
                        message: "every loader worker has exited".into(),
                    });
                }
            }
        }
    }

    fn record_skip(&mut self, index: usize, e: SampleError) {
        let file = e
            .path()
            .map(|p| p.display().to_string())
            .or_else(|| self.source.describe(index))
            .unwrap_or_else(|| format!("item {index}"));
        log::debug!("epoch {}: skipping item {index}: {e}", self.epoch);
        let skipped = SkippedSample {
            epoch: self.epoch,
            index,
            file,
            reason: e.to_string(),
        };
        self.epoch_skip_count += 1;
        if self.epoch_skips.len() < REPORTED_SKIPS {
            self.epoch_skips.push(skipped.clone());
        }
        let mut report = lock(&self.skips);
        report.count += 1;
        if report.first.len() < REPORTED_SKIPS {
            report.first.push(skipped);
        }
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.epoch_skip_count > 0 {
            let files: Vec<&str> = self.epoch_skips.iter().map(|s| s.file.as_str()).collect();
            let first = self.epoch_skips.first().map_or("", |s| s.reason.as_str());
            log::warn!(
                "epoch {}: {} samples skipped (media missing or unreadable, or failed to build); \
                 first files: {files:?}; first error: {first}",
                self.epoch,
                self.epoch_skip_count
            );
        }
        self.stop_workers();
    }

    fn stop_workers(&self) {
        if let Mode::Workers { shared, .. } = &self.mode {
            lock(&shared.state).stop = true;
            shared.cv.notify_all();
        }
    }
}

impl<B: Backend> Iterator for DeterministicIter<B> {
    type Item = VideoTextBatch<B>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.next_batch >= self.num_batches {
                self.finish();
                return None;
            }
            let lo = self.next_batch * self.batch_size;
            let hi = (lo + self.batch_size).min(self.total);
            let mut samples = Vec::with_capacity(hi - lo);
            for j in lo..hi {
                match self.take(j) {
                    Ok(s) => samples.push(s),
                    Err(e) => self.record_skip(self.jobs[j].index, e),
                }
            }
            self.next_batch += 1;
            self.processed = hi;
            if let Mode::Workers { shared, .. } = &self.mode {
                lock(&shared.state).limit = hi + self.prefetch * self.batch_size;
                shared.cv.notify_all();
            }
            if !samples.is_empty() {
                let mut batch = Batcher::<B, _, _>::batch(&self.batcher, samples, &self.device);
                batch.iteration =
                    Some(self.epoch * self.num_batches as u64 + self.next_batch as u64);
                return Some(batch);
            }
        }
    }
}

impl<B: Backend> DataLoaderIterator<VideoTextBatch<B>> for DeterministicIter<B> {
    fn progress(&self) -> Progress {
        Progress::new(self.processed, self.total)
    }
}

impl<B: Backend> Drop for DeterministicIter<B> {
    fn drop(&mut self) {
        self.stop_workers();
    }
}
