//! Multi-node training of `antmmf-train`. Without the `collective` feature (the default build):
//! a multi-node launch fails at once with an error naming the feature, and bad launch flags are
//! clear errors. With it (`scripts/test-multinode.sh`): two node processes on loopback, CPU
//! (flex), on the quickstart config, train together through burn-collective: both finish, node
//! 0 alone writes the run directory, the nodes all-reduce at every step, the mean losses are
//! logged, and both end with bit-identical weights; a node whose orchestrator never answers
//! gives up after `--collective-timeout` instead of hanging.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TRAIN: &str = env!("CARGO_BIN_EXE_antmmf-train");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `antmmf-train` on the quickstart config with launch flags; fails before any training.
fn launch_error(flags: &[&str]) -> String {
    let out = Command::new(TRAIN)
        .args(["--config", "configs/quickstart.yml"])
        .args(flags)
        .current_dir(repo_root())
        .env_remove("WORLD_SIZE")
        .env_remove("RANK")
        .output()
        .expect("antmmf-train runs");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    stderr(&out)
}

#[test]
fn bad_launch_flags_are_clear_errors() {
    let e = launch_error(&[
        "--nodes",
        "2",
        "--node-rank",
        "2",
        "--master-addr",
        "127.0.0.1",
    ]);
    assert!(
        e.contains("error: --node-rank: 2 is not below --nodes 2 (ranks are 0..1)"),
        "{e}"
    );
    let e = launch_error(&["--nodes", "2", "--master-addr", "127.0.0.1:29500"]);
    assert!(
        e.contains("error: --node-rank R (0..1) is required with --nodes 2"),
        "{e}"
    );
    let e = launch_error(&[
        "--nodes",
        "2",
        "--node-rank",
        "1",
        "--master-addr",
        "h:99999",
    ]);
    assert!(
        e.contains("error: --master-addr: \"h:99999\": the port must be 1-65535"),
        "{e}"
    );
    // Flags written after the overrides are taken too (AntMMF users write them there).
    let e = launch_error(&[
        "training_parameters.batch_size",
        "3",
        "--nodes",
        "2",
        "--node-rank",
        "3",
    ]);
    assert!(
        e.contains("error: --node-rank: 3 is not below --nodes 2"),
        "{e}"
    );
}

#[cfg(not(feature = "collective"))]
#[test]
fn multi_node_needs_the_collective_feature() {
    let e = launch_error(&[
        "--nodes",
        "2",
        "--node-rank",
        "0",
        "--master-addr",
        "127.0.0.1",
    ]);
    assert!(
        e.contains(
            "error: multi-node training (--nodes 2) needs antmmf-train built with the \
             `collective` cargo feature"
        ),
        "{e}"
    );
}

#[cfg(feature = "collective")]
mod with_collective {
    use super::*;
    use crate::common::{assert_success, run_dir, weights};
    use antmmf_core::checkpoint::Checkpoint;
    use std::net::TcpListener;
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};

    /// `n` distinct free TCP ports on loopback (held together while choosing, then released).
    fn free_ports(n: usize) -> Vec<u16> {
        let listeners: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        listeners
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect()
    }

    /// Starts node `rank` of `nodes` of a short quickstart run.
    fn node(
        rank: usize,
        nodes: usize,
        master: u16,
        port: u16,
        save_dir: &Path,
        extra_env: &[(&str, &Path)],
    ) -> Child {
        let mut cmd = Command::new(TRAIN);
        cmd.args(["--config", "configs/quickstart.yml"])
            .args(["training_parameters.save_dir", &save_dir.to_string_lossy()])
            .args(["training_parameters.max_iterations", "6"])
            .args(["training_parameters.snapshot_interval", "3"])
            .args(["training_parameters.log_interval", "1"])
            .args(["training_parameters.num_workers", "1"])
            .args(["training_parameters.distributed", "True"])
            .args(["--nodes", &nodes.to_string()])
            .args(["--node-rank", &rank.to_string()])
            .args(["--master-addr", &format!("127.0.0.1:{master}")])
            .args(["--node-addr", &format!("127.0.0.1:{port}")])
            .args(["--collective-timeout", "600"])
            .current_dir(repo_root())
            .env("ANTMMF_PROGRESS", "plain")
            .env_remove("WORLD_SIZE")
            .env_remove("RANK")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        cmd.spawn().expect("antmmf-train starts")
    }

    /// Waits for a child at most `limit`, killing it after.
    fn wait(mut child: Child, limit: Duration, what: &str) -> Output {
        let start = Instant::now();
        loop {
            match child.try_wait().expect("try_wait") {
                Some(_) => return child.wait_with_output().expect("output"),
                None if start.elapsed() > limit => {
                    let _ = child.kill();
                    let out = child.wait_with_output().expect("output");
                    panic!("{what} still running after {limit:?}:\n{}", stderr(&out));
                }
                None => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// The `model` section of a checkpoint file.
    fn model_section(path: &Path) -> Vec<u8> {
        let ckpt = Checkpoint::load(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        ckpt.require("model", path).expect("model section").to_vec()
    }

    /// Two nodes on loopback train the quickstart model together.
    #[test]
    fn two_nodes_on_loopback_train_as_one() {
        let save0 = tempfile::tempdir().expect("tempdir");
        let save1 = tempfile::tempdir().expect("tempdir");
        let node1_ckpt = save1.path().join("node1_final.ckpt");
        let ports = free_ports(3);
        let n0 = node(0, 2, ports[0], ports[1], save0.path(), &[]);
        let n1 = node(
            1,
            2,
            ports[0],
            ports[2],
            save1.path().join("out").as_path(),
            &[("ANTMMF_TEST_NODE_CHECKPOINT", &node1_ckpt)],
        );
        let limit = Duration::from_secs(900);
        let (o0, o1) = std::thread::scope(|s| {
            let h1 = s.spawn(|| wait(n1, limit, "node 1"));
            let o0 = wait(n0, limit, "node 0");
            (o0, h1.join().expect("node 1 thread"))
        });
        assert_success(&o0, "node 0");
        assert_success(&o1, "node 1");
        let (e0, e1) = (stderr(&o0), stderr(&o1));
        let out1 = String::from_utf8_lossy(&o1.stdout);
        assert!(
            out1.contains("node 1 of 2: trained 6 iterations"),
            "node 1's stdout: {out1}"
        );
        // Node 0 wrote the run directory (snapshots, final checkpoint, logs); node 1 nothing.
        let run = run_dir(save0.path());
        for f in [
            "models/model_3.ckpt",
            "models/model_6.ckpt",
            "univl_final.ckpt",
            "logs/train_log.json",
            "logs/metrics.jsonl",
            "metrics.json",
        ] {
            assert!(run.join(f).is_file(), "{f} missing in {run:?}");
        }
        assert!(
            !save1.path().join("out").exists(),
            "node 1 wrote into its save_dir"
        );
        // One loss record per iteration, the mean over both nodes.
        let log: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(run.join("logs/train_log.json")).expect("train_log.json"),
        )
        .expect("json");
        assert_eq!(log.as_array().map(Vec::len), Some(6), "{log}");
        // Every step all-reduced (6 steps, plus the start, snapshot and end agreements).
        let calls = e0
            .lines()
            .find_map(|l| {
                let (_, rest) = l.split_once("node 0 of 2: ")?;
                rest.split_once(" all-reduces")?.0.parse::<u64>().ok()
            })
            .unwrap_or_else(|| panic!("no all-reduce count in node 0's log:\n{e0}"));
        assert!(calls > 6, "{calls} all-reduces");
        for (e, who) in [(&e0, "node 0"), (&e1, "node 1")] {
            assert!(
                e.contains("final weights identical on all 2 nodes"),
                "{who}:\n{e}"
            );
        }
        // Bit-identical weights (parameter ids aside, which every process draws anew).
        assert_eq!(
            weights(&model_section(&run.join("univl_final.ckpt"))),
            weights(&model_section(&node1_ckpt)),
            "the nodes' final weights differ"
        );
    }

    /// A node whose orchestrator never answers gives up after --collective-timeout.
    #[test]
    fn an_unreachable_orchestrator_times_out() {
        let save = tempfile::tempdir().expect("tempdir");
        let ports = free_ports(2);
        let started = Instant::now();
        let out = Command::new(TRAIN)
            .args(["--config", "configs/quickstart.yml"])
            .args([
                "training_parameters.save_dir",
                &save.path().to_string_lossy(),
            ])
            .args(["--nodes", "2", "--node-rank", "1"])
            .args(["--master-addr", &format!("127.0.0.1:{}", ports[0])])
            .args(["--node-addr", &format!("127.0.0.1:{}", ports[1])])
            .args(["--collective-timeout", "3"])
            .current_dir(repo_root())
            .output()
            .expect("antmmf-train runs");
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let e = stderr(&out);
        assert!(
            e.contains("error: joining the collective: no answer within 3 s"),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
    }
}
