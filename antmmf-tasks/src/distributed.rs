//! Data-parallel training over several processes ("nodes"): the launch settings of one node, the
//! [`AllReduce`] group the training loop talks to, and what the loop does with it (gradients
//! averaged before every optimizer step, agreement checks, all-gather).
//!
//! The group itself is Burn's collective engine, burn-collective (`crate::collective`, cargo
//! feature `collective`): every node registers with an orchestrator that node 0 hosts, then
//! sums tensors with the other nodes over burn-communication websockets. burn-train 0.21 does not
//! wire it into its `Learner`, so [`crate::trainer`] calls it between `train_step` and
//! `optimizer_step`. Everything here is backend-generic and compiled in every build, so the
//! loop's data-parallel logic is tested with an in-process group as well.
//!
//! Semantics (AntMMF's, with `torch.distributed`):
//! - `training_parameters.batch_size` is the global batch: each of `N` nodes trains on
//!   `batch_size / N` items of its shard of every epoch's order;
//! - every node starts from the same weights, applies the same averaged gradients and so keeps
//!   the same weights; node 0 writes the run directory (checkpoints, logs, TensorBoard) and
//!   validates, the others write nothing;
//! - logged losses are the mean over nodes.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

/// The orchestrator's port when `--master-addr` (or `MASTER_ADDR`) names no port (torch's
/// default `MASTER_PORT`).
pub const DEFAULT_MASTER_PORT: u16 = 29500;

/// How long a node waits for the others by default: at registration (until every node has
/// started) and at every all-reduce (which also waits out node 0's validation at snapshots).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// Test hook: a node other than node 0 writes its final checkpoint to this path (node 0 writes
/// the run directory's), so that tests can compare the weights of every node.
pub const NODE_CHECKPOINT_ENV: &str = "ANTMMF_TEST_NODE_CHECKPOINT";

/// Why a multi-node run could not start or continue.
#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    /// This build has no collective engine.
    #[error(
        "multi-node training (--nodes {nodes}) needs antmmf-train built with the `collective` \
         cargo feature: cargo build --release -p antmmf-apps --features collective"
    )]
    NotCompiled {
        /// The requested node count.
        nodes: usize,
    },
    /// A launch flag (or its environment variable) is invalid.
    #[error("{flag}: {message}")]
    Launch {
        /// The flag, e.g. `--node-rank`.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Another node did not answer in time.
    #[error("{what}: no answer within {secs} s; {hint}")]
    Timeout {
        /// The operation.
        what: String,
        /// The time limit.
        secs: u64,
        /// What to check.
        hint: String,
    },
    /// The collective engine failed.
    #[error("{what}: {message}")]
    Collective {
        /// The operation.
        what: String,
        /// burn-collective's error.
        message: String,
    },
    /// The nodes are not running the same job.
    #[error("the nodes disagree on {what} ({values}): {hint}")]
    Mismatch {
        /// What differs.
        what: String,
        /// Each node's value.
        values: String,
        /// What to check.
        hint: String,
    },
}

/// A `host:port` address (IPv6 hosts in brackets: `[::1]:29500`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// Host name or IP address (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl HostPort {
    /// Parses `host:port`, or `host` alone with `default_port`; `flag` names the source in
    /// errors.
    pub fn parse(
        flag: &'static str,
        text: &str,
        default_port: Option<u16>,
    ) -> Result<Self, DistributedError> {
        let bad = |message: String| DistributedError::Launch { flag, message };
        let text = text.trim();
        if text.contains("://") {
            return Err(bad(format!(
                "{text:?}: give host:port without a scheme (e.g. 10.0.0.1:{DEFAULT_MASTER_PORT})"
            )));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            // [v6] or [v6]:port
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| bad(format!("{text:?}: unclosed `[`")))?;
            match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None if after.is_empty() => (host, None),
                None => return Err(bad(format!("{text:?}: expected `:port` after `]`"))),
            }
        } else if text.matches(':').count() == 1 {
            let (h, p) = text.split_once(':').unwrap_or((text, ""));
            (h, Some(p))
        } else if text.contains(':') {
            return Err(bad(format!(
                "{text:?}: write IPv6 addresses in brackets, e.g. [::1]:{DEFAULT_MASTER_PORT}"
            )));
        } else {
            (text, None)
        };
        if host.is_empty() {
            return Err(bad(format!("{text:?}: no host")));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(format!("{text:?}: the port must be 1-65535, got {p:?}")))?,
            None => default_port.ok_or_else(|| bad(format!("{text:?}: no port (host:port)")))?,
        };
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }

    /// The websocket URL burn-communication expects (`ws://host:port`).
    pub fn ws_url(&self) -> String {
        format!("ws://{self}")
    }

    /// The first socket address the host resolves to.
    pub fn resolve(&self, flag: &'static str) -> Result<SocketAddr, DistributedError> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| DistributedError::Launch {
                flag,
                message: format!("cannot resolve host {:?}", self.host),
            })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How one node of a data-parallel run is launched (`--nodes`, `--node-rank`, `--master-addr`,
/// `--node-addr`, `--collective-timeout`, or torch's `WORLD_SIZE`, `RANK`, `MASTER_ADDR`,
/// `MASTER_PORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLaunch {
    /// Number of node processes (the world size).
    pub nodes: usize,
    /// This node's rank, `0..nodes`; node 0 hosts the orchestrator and writes the run directory.
    pub node_rank: usize,
    /// The orchestrator's address (node 0 listens on its port, on every interface).
    pub master: HostPort,
    /// Where this node's tensor service listens and other nodes reach it; `None`: the local
    /// interface that routes to the master, port `master port + 1 + node_rank`.
    pub node: Option<HostPort>,
    /// How long to wait for the other nodes (registration, each all-reduce).
    pub timeout: Duration,
}

impl NodeLaunch {
    /// Checks a node count and a rank (`rank < nodes`).
    pub fn check_rank(nodes: usize, node_rank: usize) -> Result<(), DistributedError> {
        if nodes == 0 {
            return Err(DistributedError::Launch {
                flag: "--nodes",
                message: "the node count must be at least 1".into(),
            });
        }
        if node_rank >= nodes {
            return Err(DistributedError::Launch {
                flag: "--node-rank",
                message: format!(
                    "{node_rank} is not below --nodes {nodes} (ranks are 0..{})",
                    nodes - 1
                ),
            });
        }
        Ok(())
    }

    /// Validated launch settings.
    pub fn new(
        nodes: usize,
        node_rank: usize,
        master: HostPort,
        node: Option<HostPort>,
        timeout: Duration,
    ) -> Result<Self, DistributedError> {
        Self::check_rank(nodes, node_rank)?;
        if timeout.is_zero() {
            return Err(DistributedError::Launch {
                flag: "--collective-timeout",
                message: "must be at least 1 second".into(),
            });
        }
        Ok(Self {
            nodes,
            node_rank,
            master,
            node,
            timeout,
        })
    }

    /// This node's tensor-service address: `--node-addr`, else the local interface that routes
    /// to the master (no packet is sent) with port `master port + 1 + node_rank`, so that nodes
    /// sharing one machine do not collide.
    pub fn node_address(&self) -> Result<HostPort, DistributedError> {
        if let Some(node) = &self.node {
            return Ok(node.clone());
        }
        let master = self.master.resolve("--master-addr")?;
        let port = u16::try_from(self.master.port as usize + 1 + self.node_rank)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| DistributedError::Launch {
                flag: "--node-addr",
                message: format!(
                    "master port {} + 1 + node rank {} is not a port: give --node-addr HOST:PORT",
                    self.master.port, self.node_rank
                ),
            })?;
        let unspecified = if master.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let local = UdpSocket::bind(unspecified)
            .and_then(|s| s.connect(master).and_then(|_| s.local_addr()))
            .map_err(|e| DistributedError::Launch {
                flag: "--node-addr",
                message: format!(
                    "cannot find the local address that reaches the master {master}: {e}; give \
                     --node-addr HOST:PORT"
                ),
            })?;
        Ok(HostPort {
            host: local.ip().to_string(),
            port,
        })
    }
}

/// A group of data-parallel workers (processes or threads) that sum tensors element-wise. Every
/// member makes the same calls, with tensors of the same length, in the same order.
pub trait AllReduce<B: Backend>: Send + Sync {
    /// This member's rank, `0..world_size`.
    fn rank(&self) -> usize;
    /// Number of members.
    fn world_size(&self) -> usize;
    /// The element-wise sum of `tensor` over all members (the same result on every member).
    fn all_reduce_sum(&self, tensor: Tensor<B, 1>) -> Result<Tensor<B, 1>, DistributedError>;
}

/// Sums small host vectors over the group.
pub fn sum_values<B: Backend>(
    group: &dyn AllReduce<B>,
    values: &[f32],
    device: &B::Device,
) -> Result<Vec<f32>, DistributedError> {
    let t = Tensor::<B, 1>::from_data(TensorData::new(values.to_vec(), [values.len()]), device);
    read_values(group.all_reduce_sum(t)?)
}

fn read_values<B: Backend>(t: Tensor<B, 1>) -> Result<Vec<f32>, DistributedError> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| DistributedError::Collective {
            what: "reading an all-reduce result".into(),
            message: format!("{e:?}"),
        })
}

/// Every member's `value`, by rank. Built from one all-reduce of zero-padded blocks: each
/// member writes its value, as four 16-bit pieces (exact in f32), into its own block, so every
/// sum has a single non-zero term and is exact.
pub fn all_gather_u64<B: Backend>(
    group: &dyn AllReduce<B>,
    value: u64,
    device: &B::Device,
) -> Result<Vec<u64>, DistributedError> {
    let w = group.world_size();
    let r = group.rank();
    let mut blocks = vec![0f32; w * 4];
    for k in 0..4 {
        blocks[r * 4 + k] = ((value >> (16 * k)) & 0xFFFF) as f32;
    }
    let sums = sum_values(group, &blocks, device)?;
    Ok((0..w)
        .map(|m| {
            (0..4).fold(0u64, |acc, k| {
                acc | ((sums[m * 4 + k].max(0.0) as u64 & 0xFFFF) << (16 * k))
            })
        })
        .collect())
}

/// Fails with [`DistributedError::Mismatch`] unless every member has the same `value`.
pub fn ensure_agreement<B: Backend>(
    group: &dyn AllReduce<B>,
    what: &str,
    value: u64,
    shown: impl Fn(u64) -> String,
    hint: &str,
    device: &B::Device,
) -> Result<(), DistributedError> {
    let all = all_gather_u64(group, value, device)?;
    if all.iter().all(|v| *v == all[0]) {
        return Ok(());
    }
    Err(DistributedError::Mismatch {
        what: what.to_string(),
        values: all
            .iter()
            .enumerate()
            .map(|(r, v)| format!("node {r}: {}", shown(*v)))
            .collect::<Vec<_>>()
            .join(", "),
        hint: hint.to_string(),
    })
}

/// A 64-bit fingerprint of the trainable weights of `model` (their shapes and bit patterns), to
/// check that every node holds the same model.
pub fn weights_fingerprint<B: AutodiffBackend, M: AutodiffModule<B>>(model: &M) -> u64 {
    struct Hash<'a, B: AutodiffBackend> {
        h: &'a mut std::hash::DefaultHasher,
        _b: std::marker::PhantomData<B>,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Hash<'_, B> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            use std::hash::Hash as _;
            let value = param.val();
            if !value.is_require_grad() {
                return;
            }
            let data = value.inner().into_data();
            data.shape.hash(self.h);
            data.as_bytes().hash(self.h);
        }
    }
    let mut h = std::hash::DefaultHasher::new();
    model.visit(&mut Hash::<B> {
        h: &mut h,
        _b: std::marker::PhantomData,
    });
    std::hash::Hasher::finish(&h)
}

/// The trainable parameters of a model, in visiting order (the same on every node, whatever
/// the parameter ids each process drew).
struct Layout {
    /// Element count of each trainable parameter.
    sizes: Vec<usize>,
}

/// Moves the gradients of the trainable parameters out of `grads` as flat tensors, in visiting
/// order (zeros where a parameter has no gradient), with a presence flag each.
struct Flatten<'a, B: AutodiffBackend> {
    grads: Option<&'a mut GradientsParams>,
    device: &'a B::Device,
    chunks: Vec<Tensor<B::InnerBackend, 1>>,
    present: Vec<f32>,
    layout: Layout,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Flatten<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !param.val().is_require_grad() {
            return;
        }
        let n = param.lazy_shape().num_elements();
        let grad = self
            .grads
            .as_deref_mut()
            .and_then(|g| g.remove::<B::InnerBackend, D>(param.id));
        match grad {
            Some(g) => {
                self.chunks.push(g.reshape([n]));
                self.present.push(1.0);
            }
            None => {
                self.chunks.push(Tensor::zeros([n], self.device));
                self.present.push(0.0);
            }
        }
        self.layout.sizes.push(n);
    }
}

/// Registers the slices of the summed buffer as the gradients of the parameters some member had
/// a gradient for, divided by the group size.
struct Unflatten<'a, B: AutodiffBackend> {
    summed: &'a Tensor<B::InnerBackend, 1>,
    present: &'a [f32],
    sizes: &'a [usize],
    scale: f32,
    index: usize,
    offset: usize,
    out: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Unflatten<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !param.val().is_require_grad() {
            return;
        }
        let (Some(&n), Some(&present)) = (self.sizes.get(self.index), self.present.get(self.index))
        else {
            return;
        };
        if present > 0.0 {
            let dims: [usize; D] = param.lazy_shape().dims();
            let g = self
                .summed
                .clone()
                .slice(self.offset..self.offset + n)
                .div_scalar(self.scale)
                .reshape(dims);
            self.out.register::<B::InnerBackend, D>(param.id, g);
        }
        self.index += 1;
        self.offset += n;
    }
}

/// What [`all_reduce_step`] returns.
pub struct StepReduce {
    /// The gradients averaged over the group (parameters without a gradient on every member
    /// stay without one, as in a single process).
    pub grads: GradientsParams,
    /// The control values, summed over the group.
    pub control: Vec<f32>,
    /// Values in the all-reduced buffer.
    pub values: usize,
}

/// One all-reduce per training step: the gradients of every trainable parameter (none when this
/// member's step failed) and the loop's `control` values, summed over the group.
pub fn all_reduce_step<B: AutodiffBackend, M: AutodiffModule<B>>(
    group: &dyn AllReduce<B::InnerBackend>,
    model: &M,
    mut grads: Option<GradientsParams>,
    control: &[f32],
    device: &B::Device,
) -> Result<StepReduce, DistributedError> {
    let mut flatten = Flatten::<B> {
        grads: grads.as_mut(),
        device,
        chunks: Vec::new(),
        present: Vec::new(),
        layout: Layout { sizes: Vec::new() },
    };
    model.visit(&mut flatten);
    let Flatten {
        mut chunks,
        present,
        layout,
        ..
    } = flatten;
    let total: usize = layout.sizes.iter().sum();
    let mut tail = present.clone();
    tail.extend_from_slice(control);
    let tail_len = tail.len();
    chunks.push(Tensor::from_data(TensorData::new(tail, [tail_len]), device));
    let summed = group.all_reduce_sum(Tensor::cat(chunks, 0))?;
    let tail = read_values(summed.clone().slice(total..total + tail_len))?;
    let (present, control) = tail.split_at(present.len());
    let mut unflatten = Unflatten::<B> {
        summed: &summed,
        present,
        sizes: &layout.sizes,
        scale: group.world_size() as f32,
        index: 0,
        offset: 0,
        out: GradientsParams::new(),
    };
    model.visit(&mut unflatten);
    Ok(StepReduce {
        grads: unflatten.out,
        control: control.to_vec(),
        values: total + tail_len,
    })
}

/// Gathers, during a training step, every member's rows of a tensor (AntMMF's `AllGather` of
/// the L1 embeddings, so that the contrastive loss sees the pairs of the global batch).
pub trait RowGather: Send + Sync {
    /// This member's rank.
    fn rank(&self) -> usize;
    /// Number of members.
    fn world_size(&self) -> usize;
    /// Every member's `rows` (the same shape on every member), concatenated in rank order along
    /// the first dimension.
    fn gather(&self, rows: TensorData) -> Result<TensorData, DistributedError>;
}

/// [`RowGather`] over an [`AllReduce`] group: one all-reduce of zero-padded blocks (each sum
/// has one non-zero term, so the values arrive exact).
pub struct GroupRowGather<B: Backend> {
    /// The group.
    pub group: std::sync::Arc<dyn AllReduce<B>>,
    /// Where the blocks are summed.
    pub device: B::Device,
}

impl<B: Backend> RowGather for GroupRowGather<B> {
    fn rank(&self) -> usize {
        self.group.rank()
    }

    fn world_size(&self) -> usize {
        self.group.world_size()
    }

    fn gather(&self, rows: TensorData) -> Result<TensorData, DistributedError> {
        let (w, r) = (self.group.world_size(), self.group.rank());
        let mut dims = rows.shape.to_vec();
        let n = rows.num_elements();
        let flat =
            rows.convert::<f32>()
                .to_vec::<f32>()
                .map_err(|e| DistributedError::Collective {
                    what: "gathering rows".into(),
                    message: format!("{e:?}"),
                })?;
        let local = Tensor::<B, 1>::from_data(TensorData::new(flat, [n]), &self.device);
        let blocks: Vec<Tensor<B, 1>> = (0..w)
            .map(|m| {
                if m == r {
                    local.clone()
                } else {
                    Tensor::zeros([n], &self.device)
                }
            })
            .collect();
        let values = read_values(self.group.all_reduce_sum(Tensor::cat(blocks, 0))?)?;
        if let Some(first) = dims.first_mut() {
            *first *= w;
        }
        Ok(TensorData::new(values, dims))
    }
}

thread_local! {
    /// The gather of the training step running on this thread (the loop's thread calls the
    /// model's train step), set by [`RowGatherScope`].
    static ROW_GATHER: std::cell::RefCell<Option<std::sync::Arc<dyn RowGather>>> =
        const { std::cell::RefCell::new(None) };
}

/// The [`RowGather`] of the data-parallel training loop running on this thread, if any.
pub fn row_gather() -> Option<std::sync::Arc<dyn RowGather>> {
    ROW_GATHER.with(|g| g.borrow().clone())
}

/// Makes a [`RowGather`] this thread's (see [`row_gather`]) until dropped.
pub struct RowGatherScope {
    previous: Option<std::sync::Arc<dyn RowGather>>,
}

impl RowGatherScope {
    /// Installs `gather` for this thread.
    pub fn new(gather: std::sync::Arc<dyn RowGather>) -> Self {
        let previous = ROW_GATHER.with(|g| g.borrow_mut().replace(gather));
        Self { previous }
    }
}

impl Drop for RowGatherScope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        ROW_GATHER.with(|g| *g.borrow_mut() = previous);
    }
}

/// Every member's `local` rows in rank order, as AntMMF's `AllGather` autograd function: the
/// other members' rows enter as constants and this member's block is `local` itself, so the
/// gradient flows back through this member's rows only.
///
/// # Shapes
/// - `local`: `[b, ...]` (the same on every member); output: `[world_size * b, ...]`
pub fn gather_rows<B: Backend, const D: usize>(
    gather: &dyn RowGather,
    local: Tensor<B, D>,
) -> Result<Tensor<B, D>, DistributedError> {
    let (w, r) = (gather.world_size(), gather.rank());
    let b = local.dims()[0];
    let device = local.device();
    let all = Tensor::<B, D>::from_data(gather.gather(local.clone().into_data())?, &device);
    let mut parts = Vec::with_capacity(3);
    if r > 0 {
        parts.push(all.clone().narrow(0, 0, r * b));
    }
    parts.push(local);
    if r + 1 < w {
        parts.push(all.narrow(0, (r + 1) * b, (w - r - 1) * b));
    }
    Ok(Tensor::cat(parts, 0))
}

/// Number of loss-part slots in the per-step control values: parts beyond it are logged with
/// this node's own values.
pub const MAX_LOGGED_PARTS: usize = 32;

/// A 16-bit fingerprint of the loss-part names (so that nodes only average parts they name
/// alike), as two 8-bit pieces.
pub fn parts_fingerprint(names: &[&str]) -> [f32; 2] {
    let mut h: u32 = 0x811c_9dc5;
    for name in names {
        for b in name.bytes().chain([0u8]) {
            h ^= b as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    let h = (h ^ (h >> 16)) & 0xFFFF;
    [(h & 0xFF) as f32, (h >> 8) as f32]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        let hp = HostPort::parse("--master-addr", "10.0.0.1:29600", None).unwrap();
        assert_eq!((hp.host.as_str(), hp.port), ("10.0.0.1", 29600));
        assert_eq!(hp.ws_url(), "ws://10.0.0.1:29600");
        let hp = HostPort::parse("--master-addr", "node0", Some(DEFAULT_MASTER_PORT)).unwrap();
        assert_eq!(hp.to_string(), "node0:29500");
        let hp = HostPort::parse("--master-addr", "[::1]:7", None).unwrap();
        assert_eq!(
            (hp.host.as_str(), hp.to_string()),
            ("::1", "[::1]:7".into())
        );
        for bad in [
            "",
            ":80",
            "host:0",
            "host:99999",
            "ws://h:1",
            "::1",
            "[::1",
            "h:x",
        ] {
            let e = HostPort::parse("--master-addr", bad, Some(1)).unwrap_err();
            assert!(e.to_string().starts_with("--master-addr: "), "{bad}: {e}");
        }
        assert!(HostPort::parse("--node-addr", "host", None).is_err());
    }

    #[test]
    fn launch_is_validated_and_node_ports_follow_the_master_port() {
        let master = HostPort::parse("--master-addr", "127.0.0.1:29500", None).unwrap();
        let t = Duration::from_secs(5);
        let e = NodeLaunch::new(2, 2, master.clone(), None, t).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--node-rank: 2 is not below --nodes 2 (ranks are 0..1)"
        );
        assert!(NodeLaunch::new(0, 0, master.clone(), None, t).is_err());
        assert!(NodeLaunch::new(2, 0, master.clone(), None, Duration::ZERO).is_err());
        let launch = NodeLaunch::new(3, 2, master.clone(), None, t).unwrap();
        assert_eq!(
            launch.node_address().unwrap(),
            HostPort {
                host: "127.0.0.1".into(),
                port: 29503
            }
        );
        let high = HostPort::parse("--master-addr", "127.0.0.1:65535", None).unwrap();
        let e = NodeLaunch::new(2, 1, high, None, t)
            .unwrap()
            .node_address()
            .unwrap_err();
        assert!(e.to_string().contains("give --node-addr"), "{e}");
    }

    #[test]
    fn part_fingerprints_are_exact_small_integers() {
        let a = parts_fingerprint(&["masked_lm_loss", "itm_loss"]);
        let b = parts_fingerprint(&["itm_loss", "masked_lm_loss"]);
        assert_ne!(a, b);
        for v in a.iter().chain(&b) {
            assert!(*v >= 0.0 && *v < 256.0 && v.fract() == 0.0);
        }
    }
}
