//! antmmf-tasks: pretraining, retrieval, open QA and multi-choice QA on top of burn-train.

#[cfg(feature = "collective")]
pub mod collective;
pub mod distributed;
pub mod eval;
pub mod metrics;
pub mod optim;
pub mod precision;
pub mod progress;
pub mod run;
pub mod schedule;
pub mod snps3;
pub mod trainer;
pub mod univl_task;
