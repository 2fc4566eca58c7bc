//! The [`AllReduce`] group of a multi-node run on Burn's collective engine, burn-collective 0.21
//! (cargo feature `collective`).
//!
//! Each node process registers one peer (its rank) with one device; node 0 also hosts the
//! global orchestrator where the nodes meet. Sums between nodes go through burn-collective's
//! global all-reduce: tensors travel over burn-communication websockets between the nodes'
//! tensor services, and a barrier ends every call. The global strategy is a binary tree
//! (`Tree(2)`): the sum is formed once at the root and sent back, so every node receives the
//! same bits and the replicas stay identical.
//!
//! burn-collective 0.21.0 is used through a patched copy (`third_party/`, see its README): as
//! released, the barrier that ends every global all-reduce (all strategies, not only `Ring`)
//! never completes a second time, so the second all-reduce of a run hangs.
//!
//! Blocking calls run on a helper thread and are waited for with the launch's timeout, so a
//! node that is missing, dead or unreachable gives an error instead of a hang.

use crate::distributed::{AllReduce, DistributedError, HostPort, NodeLaunch};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorPrimitive};
use burn_collective::{
    AllReduceStrategy, CollectiveConfig, PeerId, ReduceOperation, all_reduce, finish_collective,
    register,
};
use burn_communication::Address;
use std::net::TcpListener;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A joined burn-collective group: this process is node `rank` of `world_size`.
pub struct CollectiveGroup<B: Backend> {
    rank: usize,
    world_size: usize,
    timeout: Duration,
    stats: Mutex<CallStats>,
    /// A call failed: the engine is in an unknown state (a peer is gone, or a call is still
    /// pending on a helper thread), so nothing more is asked of it.
    broken: AtomicBool,
    _b: std::marker::PhantomData<fn() -> B>,
}

/// Counts and times of the all-reduce calls of a group.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallStats {
    /// Calls made.
    pub calls: u64,
    /// Values summed, over all calls.
    pub values: u64,
    /// Wall time in the calls, in seconds (it includes waiting for slower nodes).
    pub seconds: f64,
    /// Calls of at most [`SMALL_CALL`] values (control values, gathers), whose time is mostly
    /// latency.
    pub small_calls: u64,
    /// Wall time in the small calls, in seconds.
    pub small_seconds: f64,
}

/// The largest all-reduce counted as small in [`CallStats`].
pub const SMALL_CALL: u64 = 65_536;

/// Runs `f` on a helper thread and waits at most `timeout` for it. On a timeout the thread is
/// left blocked: the caller treats the group as broken and ends the run.
fn with_timeout<T: Send + 'static>(
    timeout: Duration,
    what: &str,
    hint: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DistributedError> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("antmmf-collective".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| DistributedError::Collective {
            what: what.to_string(),
            message: format!("cannot start a thread: {e}"),
        })?;
    match rx.recv_timeout(timeout) {
        Ok(v) => Ok(v),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(DistributedError::Timeout {
            what: what.to_string(),
            secs: timeout.as_secs(),
            hint: hint.to_string(),
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(DistributedError::Collective {
            what: what.to_string(),
            message: "the collective engine stopped (a panic in burn-collective; see the log)"
                .into(),
        }),
    }
}

/// Fails early, with the flag to change, when `port` cannot be listened on (burn-communication
/// would only log the failure and the other nodes would wait in vain).
fn ensure_port_free(port: u16, flag: &'static str, role: &str) -> Result<(), DistributedError> {
    TcpListener::bind(("0.0.0.0", port))
        .map(drop)
        .map_err(|e| DistributedError::Launch {
            flag,
            message: format!("cannot listen on port {port} for {role}: {e}"),
        })
}

/// Starts burn-collective's global orchestrator on `port` in a thread of its own, for the
/// lifetime of the process. No signal handler is installed (the training loop owns Ctrl-C).
fn start_orchestrator(port: u16) -> Result<(), DistributedError> {
    ensure_port_free(port, "--master-addr", "the orchestrator")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("antmmf-orchestrator")
        .enable_all()
        .build()
        .map_err(|e| DistributedError::Collective {
            what: "starting the orchestrator".into(),
            message: e.to_string(),
        })?;
    std::thread::Builder::new()
        .name("antmmf-orchestrator".into())
        .spawn(move || {
            let result =
                runtime.block_on(burn_collective::start_global_orchestrator_with_shutdown(
                    port,
                    std::future::pending(),
                ));
            if let Err(e) = result {
                log::error!("collective orchestrator on port {port} stopped: {e:?}");
            }
        })
        .map(drop)
        .map_err(|e| DistributedError::Collective {
            what: "starting the orchestrator".into(),
            message: e.to_string(),
        })
}

fn address(flag: &'static str, hp: &HostPort) -> Result<Address, DistributedError> {
    // burn-communication needs the `ws://` scheme (it refuses a bare host:port).
    Address::from_str(&hp.ws_url()).map_err(|message| DistributedError::Launch { flag, message })
}

impl<B: Backend> CollectiveGroup<B> {
    /// Joins the group `launch` describes on `device`: node 0 starts the orchestrator, then every
    /// node registers and waits (at most the launch's timeout) until all `nodes` have.
    pub fn join(launch: &NodeLaunch, device: &B::Device) -> Result<Self, DistributedError> {
        let node = launch.node_address()?;
        if launch.node_rank == 0 {
            start_orchestrator(launch.master.port)?;
        }
        ensure_port_free(node.port, "--node-addr", "this node's tensor service")?;
        log::info!(
            "node {} of {}: joining the collective (orchestrator {}, this node {})",
            launch.node_rank,
            launch.nodes,
            launch.master,
            node
        );
        let config = CollectiveConfig::default()
            .with_num_devices(1)
            .with_num_nodes(launch.nodes as u32)
            .with_global_address(address("--master-addr", &launch.master)?)
            .with_node_address(address("--node-addr", &node)?)
            .with_data_service_port(node.port)
            .with_local_all_reduce_strategy(AllReduceStrategy::Tree(2))
            .with_global_all_reduce_strategy(AllReduceStrategy::Tree(2));
        let peer = PeerId::from(launch.node_rank);
        let device = device.clone();
        let hint = format!(
            "check that all {} nodes were started with --nodes {}, that node 0 runs and that \
             {} is reachable from this machine",
            launch.nodes, launch.nodes, launch.master
        );
        let started = Instant::now();
        with_timeout(launch.timeout, "joining the collective", &hint, move || {
            register::<B>(peer, device, config)
        })?
        .map_err(|e| DistributedError::Collective {
            what: "joining the collective".into(),
            message: format!("{e:?}"),
        })?;
        log::info!(
            "node {} of {}: all nodes joined in {:.1} s",
            launch.node_rank,
            launch.nodes,
            started.elapsed().as_secs_f64()
        );
        Ok(Self {
            rank: launch.node_rank,
            world_size: launch.nodes,
            timeout: launch.timeout,
            stats: Mutex::new(CallStats::default()),
            broken: AtomicBool::new(false),
            _b: std::marker::PhantomData,
        })
    }

    /// Counts and times of the all-reduce calls so far.
    pub fn stats(&self) -> CallStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }
}

impl<B: Backend> AllReduce<B> for CollectiveGroup<B> {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.world_size
    }

    fn all_reduce_sum(&self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>, DistributedError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(DistributedError::Collective {
                what: "all-reduce with the other nodes".into(),
                message: "an earlier collective call failed".into(),
            });
        }
        let values = tensor.dims()[0] as u64;
        let peer = PeerId::from(self.rank);
        let primitive = tensor.into_primitive().tensor();
        let started = Instant::now();
        let summed = with_timeout(
            self.timeout,
            "all-reduce with the other nodes",
            "another node has stopped or is stuck (see its log), or is still validating: raise \
             --collective-timeout",
            move || all_reduce::<B>(peer, primitive, ReduceOperation::Sum),
        )
        .and_then(|r| {
            r.map_err(|e| DistributedError::Collective {
                what: "all-reduce with the other nodes".into(),
                message: format!("{e:?} (another node may have stopped; see its log)"),
            })
        })
        .inspect_err(|_| self.broken.store(true, Ordering::SeqCst))?;
        if let Ok(mut s) = self.stats.lock() {
            let secs = started.elapsed().as_secs_f64();
            s.calls += 1;
            s.values += values;
            s.seconds += secs;
            if values <= SMALL_CALL {
                s.small_calls += 1;
                s.small_seconds += secs;
            }
        }
        Ok(Tensor::from_primitive(TensorPrimitive::Float(summed)))
    }
}

impl<B: Backend> Drop for CollectiveGroup<B> {
    fn drop(&mut self) {
        let s = self.stats();
        if s.calls > 0 {
            log::info!(
                "node {} of {}: {} all-reduces of {:.2} M values on average, {:.1} ms each; \
                 {} of them of at most {SMALL_CALL} values, {:.1} ms each",
                self.rank,
                self.world_size,
                s.calls,
                s.values as f64 / s.calls as f64 / 1e6,
                s.seconds * 1e3 / s.calls as f64,
                s.small_calls,
                s.small_seconds * 1e3 / s.small_calls.max(1) as f64
            );
        }
        if self.broken.load(Ordering::SeqCst) {
            return;
        }
        // Leaving closes this node's connections cleanly (node 0's orchestrator would log a
        // reset otherwise). Node 0 may have exited already: a short wait, failures logged only.
        let peer = PeerId::from(self.rank);
        match with_timeout(
            Duration::from_secs(5),
            "leaving the collective",
            "",
            move || finish_collective::<B>(peer),
        ) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::debug!("leaving the collective: {e:?}"),
            Err(e) => log::debug!("{e}"),
        }
    }
}
