//! The command line every antmmf-rs binary shares, with AntMMF's flag names so users' launch
//! scripts carry over: `--config`, `--config_override`, trailing `key value` overrides,
//! `--local_rank` (accepted for launcher compatibility), plus `--backend`, `--devices` and
//! `--print-config`; and `antmmf-train`'s multi-node launch flags ([`LaunchArgs`]), which also
//! read torch's `WORLD_SIZE`, `RANK`, `MASTER_ADDR` and `MASTER_PORT`.

use antmmf_core::backend::{BackendKind, parse_devices};
use antmmf_core::{Config, ConfigError, ConfigSources};
use antmmf_tasks::distributed::{DEFAULT_MASTER_PORT, DEFAULT_TIMEOUT, HostPort, NodeLaunch};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// Flags shared by `antmmf-train` and `antmmf-eval`.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The AntMMF-style YAML config.
    #[arg(long, value_name = "PATH")]
    pub config: PathBuf,

    /// A YAML file whose keys override the config (only the keys it sets).
    #[arg(
        long = "config_override",
        alias = "config-override",
        value_name = "FILE"
    )]
    pub config_override: Option<PathBuf>,

    /// Burn backend: flex (CPU, default), ndarray (CPU), wgpu, cuda.
    #[arg(long, default_value = "flex", value_name = "NAME")]
    pub backend: String,

    /// GPU indices for wgpu/cuda, comma-separated (e.g. 0,1,2,3).
    #[arg(long, value_name = "LIST")]
    pub devices: Option<String>,

    /// Validate the configuration, print the merged YAML and exit.
    #[arg(long = "print-config", alias = "print_config")]
    pub print_config: bool,

    /// Accepted for compatibility with torch-style launchers (ignored).
    #[arg(long = "local_rank", alias = "local-rank", value_name = "N")]
    pub local_rank: Option<i64>,

    /// Overrides as `key value` pairs, e.g. `training_parameters.batch_size 128`.
    #[arg(value_name = "KEY VALUE", allow_hyphen_values = true, num_args = 0..)]
    pub overrides: Vec<String>,
}

impl CommonArgs {
    /// Moves flags written after the `key value` pairs (`... batch_size 3 --print-config`) out of
    /// the override list. Only key positions are inspected, so a value such as `-5` stays a value.
    pub fn lift_trailing_flags(&mut self) -> anyhow::Result<()> {
        self.lift_trailing_flags_with(|_, _| Ok(false))
    }

    /// [`Self::lift_trailing_flags`], offering each flag that is not a shared one to `extra`
    /// (with a reader of its value), which returns whether it took it.
    pub fn lift_trailing_flags_with(
        &mut self,
        mut extra: impl FnMut(
            &str,
            &mut dyn FnMut(&str) -> anyhow::Result<String>,
        ) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let tokens = std::mem::take(&mut self.overrides);
        let mut kept = Vec::with_capacity(tokens.len());
        let mut it = tokens.into_iter();
        while let Some(tok) = it.next() {
            if !tok.starts_with("--") {
                kept.push(tok);
                if let Some(value) = it.next() {
                    kept.push(value);
                }
                continue;
            }
            let (flag, inline) = match tok.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (tok.clone(), None),
            };
            let mut value = |name: &str| -> anyhow::Result<String> {
                match inline.clone().or_else(|| it.next()) {
                    Some(v) => Ok(v),
                    None => anyhow::bail!("{name} needs a value"),
                }
            };
            match flag.as_str() {
                "--print-config" | "--print_config" => self.print_config = true,
                "--backend" => self.backend = value("--backend")?,
                "--devices" => self.devices = Some(value("--devices")?),
                "--config_override" | "--config-override" => {
                    self.config_override = Some(value("--config_override")?.into())
                }
                "--local_rank" | "--local-rank" => {
                    let v = value("--local_rank")?;
                    self.local_rank = Some(v.parse().map_err(|_| {
                        anyhow::anyhow!("--local_rank expects an integer, got {v:?}")
                    })?);
                }
                "--config" => self.config = value("--config")?.into(),
                other => {
                    if !extra(other, &mut value)? {
                        anyhow::bail!("unexpected flag {other:?} among the `key value` overrides")
                    }
                }
            }
        }
        self.overrides = kept;
        Ok(())
    }

    /// The selected backend.
    pub fn backend_kind(&self) -> anyhow::Result<BackendKind> {
        Ok(self.backend.parse::<BackendKind>()?)
    }

    /// The selected GPU indices (empty = the backend's default device).
    pub fn device_ids(&self) -> anyhow::Result<Vec<usize>> {
        match &self.devices {
            None => Ok(Vec::new()),
            Some(s) => Ok(parse_devices(s)?),
        }
    }

    /// Where the configuration comes from.
    pub fn sources(&self) -> ConfigSources {
        ConfigSources {
            config: Some(self.config.clone()),
            config_override: self.config_override.clone(),
            overrides: self.overrides.clone(),
        }
    }
}

/// `antmmf-train`'s multi-node launch: one process per node (and per device), all started with
/// the same config and `--nodes`, each with its `--node-rank`, all pointing at node 0 with
/// `--master-addr`. Without these flags, torch's launcher variables are read.
#[derive(Debug, Clone, Default, Args)]
pub struct LaunchArgs {
    /// Node processes in a multi-node run (torch's WORLD_SIZE); 1 = one process.
    #[arg(long = "nodes", alias = "world-size", value_name = "N")]
    pub nodes: Option<usize>,

    /// This node's rank, 0..N (RANK); node 0 hosts the rendezvous and writes the run directory.
    #[arg(long = "node-rank", alias = "node_rank", value_name = "R")]
    pub node_rank: Option<usize>,

    /// Node 0's rendezvous address (MASTER_ADDR and MASTER_PORT; port 29500 when not given).
    #[arg(
        long = "master-addr",
        alias = "master_addr",
        value_name = "HOST[:PORT]"
    )]
    pub master_addr: Option<String>,

    /// Where this node's tensor service listens and the other nodes reach it (default: the
    /// interface that reaches the master, port master port + 1 + rank).
    #[arg(long = "node-addr", alias = "node_addr", value_name = "HOST:PORT")]
    pub node_addr: Option<String>,

    /// Seconds to wait for the other nodes when joining and at each all-reduce (default 1800).
    #[arg(long = "collective-timeout", value_name = "SECS")]
    pub collective_timeout: Option<u64>,
}

impl LaunchArgs {
    /// Takes one of the launch flags written among the `key value` overrides (see
    /// [`CommonArgs::lift_trailing_flags_with`]); returns whether `flag` was one.
    pub fn take_flag(
        &mut self,
        flag: &str,
        value: &mut dyn FnMut(&str) -> anyhow::Result<String>,
    ) -> anyhow::Result<bool> {
        fn number<T: std::str::FromStr>(flag: &str, v: String) -> anyhow::Result<T> {
            v.parse()
                .map_err(|_| anyhow::anyhow!("{flag} expects a non-negative integer, got {v:?}"))
        }
        match flag {
            "--nodes" | "--world-size" => self.nodes = Some(number(flag, value(flag)?)?),
            "--node-rank" | "--node_rank" => self.node_rank = Some(number(flag, value(flag)?)?),
            "--master-addr" | "--master_addr" => self.master_addr = Some(value(flag)?),
            "--node-addr" | "--node_addr" => self.node_addr = Some(value(flag)?),
            "--collective-timeout" => self.collective_timeout = Some(number(flag, value(flag)?)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The node launch the flags describe, else torch's environment variables (`env` reads
    /// one); `None` for a single process. Flags win over variables.
    pub fn resolve(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Option<NodeLaunch>> {
        let from_env = |name: &str| -> anyhow::Result<Option<usize>> {
            match env(name) {
                None => Ok(None),
                Some(v) => v.trim().parse().map(Some).map_err(|_| {
                    anyhow::anyhow!("{name} expects a non-negative integer, got {v:?}")
                }),
            }
        };
        let nodes = match self.nodes {
            Some(n) => n,
            None => from_env("WORLD_SIZE")?.unwrap_or(1),
        };
        NodeLaunch::check_rank(nodes, self.node_rank.unwrap_or(0))?;
        if nodes == 1 {
            // A stray RANK in the environment of a single process is not an error.
            return Ok(None);
        }
        let rank = match self.node_rank {
            Some(r) => Some(r),
            None => from_env("RANK")?,
        };
        NodeLaunch::check_rank(nodes, rank.unwrap_or(0))?;
        let rank = rank.ok_or_else(|| {
            anyhow::anyhow!(
                "--node-rank R (0..{}) is required with --nodes {nodes}",
                nodes - 1
            )
        })?;
        let default_port = match env("MASTER_PORT") {
            None => DEFAULT_MASTER_PORT,
            Some(p) => p
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("MASTER_PORT expects a port, got {p:?}"))?,
        };
        let (flag, master) = match (&self.master_addr, env("MASTER_ADDR")) {
            (Some(m), _) => ("--master-addr", m.clone()),
            (None, Some(m)) => ("MASTER_ADDR", m),
            (None, None) => anyhow::bail!(
                "--master-addr HOST[:PORT] (node 0's address) is required with --nodes {nodes}"
            ),
        };
        let master = HostPort::parse(flag, &master, Some(default_port))?;
        let node = self
            .node_addr
            .as_deref()
            .map(|n| HostPort::parse("--node-addr", n, None))
            .transpose()?;
        let timeout = self
            .collective_timeout
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TIMEOUT);
        Ok(Some(NodeLaunch::new(nodes, rank, master, node, timeout)?))
    }
}

/// Config keys this build acts on (see [`antmmf_tasks::run::ACTED_ON_KEYS`]).
pub use antmmf_tasks::run::ACTED_ON_KEYS;

/// Logs, once, the user-set keys that this build does not act on.
pub fn warn_ignored_keys(config: &Config) {
    let ignored = config.ignored_keys(ACTED_ON_KEYS);
    if !ignored.is_empty() {
        log::warn!(
            "{} config key(s) are declared by AntMMF but not acted on by this build: {}",
            ignored.len(),
            ignored.join(", ")
        );
    }
}

/// Loads and fully validates the configuration the flags describe (keys, types and ranges of
/// the sections every run reads).
pub fn load_config(args: &CommonArgs) -> Result<Config, ConfigError> {
    let config = Config::load(&args.sources())?;
    config.training_parameters()?;
    config.optimizer_attributes()?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn launch_from_flags_or_torch_variables() {
        let none = LaunchArgs::default();
        assert_eq!(none.resolve(env(&[])).unwrap(), None);
        // A stray RANK without WORLD_SIZE: one process.
        assert_eq!(none.resolve(env(&[("RANK", "3")])).unwrap(), None);
        let torch = [
            ("WORLD_SIZE", "4"),
            ("RANK", "2"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "29600"),
        ];
        let l = none.resolve(env(&torch)).unwrap().unwrap();
        assert_eq!((l.nodes, l.node_rank), (4, 2));
        assert_eq!(l.master.to_string(), "10.0.0.1:29600");
        assert_eq!((l.node.clone(), l.timeout), (None, DEFAULT_TIMEOUT));
        // Flags win over the variables.
        let flags = LaunchArgs {
            nodes: Some(2),
            node_rank: Some(1),
            master_addr: Some("node0".into()),
            node_addr: Some("10.0.0.2:7000".into()),
            collective_timeout: Some(30),
        };
        let l = flags.resolve(env(&torch)).unwrap().unwrap();
        assert_eq!((l.nodes, l.node_rank), (2, 1));
        assert_eq!(l.master.to_string(), "node0:29600");
        assert_eq!(l.node.unwrap().to_string(), "10.0.0.2:7000");
        assert_eq!(l.timeout, Duration::from_secs(30));
    }

    #[test]
    fn bad_launches_are_named() {
        let err = |args: LaunchArgs, vars: &[(&str, &str)]| {
            args.resolve(env(vars)).unwrap_err().to_string()
        };
        let two = LaunchArgs {
            nodes: Some(2),
            ..Default::default()
        };
        assert_eq!(
            err(two.clone(), &[]),
            "--node-rank R (0..1) is required with --nodes 2"
        );
        assert_eq!(
            err(two.clone(), &[("RANK", "0")]),
            "--master-addr HOST[:PORT] (node 0's address) is required with --nodes 2"
        );
        assert_eq!(
            err(two.clone(), &[("RANK", "x")]),
            "RANK expects a non-negative integer, got \"x\""
        );
        assert_eq!(
            err(two, &[("RANK", "1"), ("MASTER_ADDR", "a:b:c")]),
            "MASTER_ADDR: \"a:b:c\": write IPv6 addresses in brackets, e.g. [::1]:29500"
        );
        let zero = LaunchArgs {
            nodes: Some(0),
            ..Default::default()
        };
        assert_eq!(err(zero, &[]), "--nodes: the node count must be at least 1");
    }
}
