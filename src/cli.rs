//! runc's command line, flag for flag (clap).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "vessel",
    about = "An OCI container runtime with runc's command line",
    disable_version_flag = true
)]
pub struct Cli {
    /// Directory for container state (default /run/vessel; rootless: $XDG_RUNTIME_DIR/vessel)
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Write log messages to this file (containerd's shim reads it)
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of --log: text or json
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages
    #[arg(long, global = true)]
    pub debug: bool,
    /// Let systemd make the container's cgroup: a transient scope (cgroupsPath slice:prefix:name)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Find the NVIDIA driver and CDI specs under this host root (default $VESSEL_GPU_ROOT, else driver-root of the config file, else /)
    #[arg(long = "gpu-root", global = true)]
    pub gpu_root: Option<PathBuf>,
    /// Ignored, for runc compatibility
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    /// Ignored, for runc compatibility (auto|true|false)
    #[arg(long = "rootless", id = "global_rootless", hide = true)]
    pub rootless: Option<String>,
    /// Print the version
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Path to the bundle (default: the current directory)
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's init pid to this file
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (terminal containers)
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N more fds (from 3 on) to the container
    #[arg(long = "preserve-fds", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub preserve_fds: u32,
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// A JSON file with the process (OCI `process` object) to run
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Allocate a terminal
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Unix socket that receives the pty master
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Do not wait for the process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the process's pid to this file
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE), repeatable
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Working directory in the container
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// UID[:GID] to run as
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional group ids, repeatable
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability, repeatable
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Pass N more fds (from 3 on) to the process
    #[arg(long = "preserve-fds", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=65536))]
    pub preserve_fds: u32,
    /// Ignored (runc compatibility)
    #[arg(long = "process-label", hide = true)]
    pub process_label: Option<String>,
    /// Ignored (runc compatibility)
    #[arg(long = "apparmor", hide = true)]
    pub apparmor: Option<String>,
    /// Container id
    pub id: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// A JSON file with `linux.resources` (`-` for stdin)
    #[arg(short = 'r', long)]
    pub resources: Option<PathBuf>,
    /// Memory limit (bytes, or with a k/m/g suffix)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit
    #[arg(long = "memory-swap")]
    pub memory_swap: Option<String>,
    #[arg(long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Ignored (kernel memory is gone from current kernels)
    #[arg(long = "kernel-memory", hide = true)]
    pub kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp", hide = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Container id
    pub id: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// NVIDIA GPUs: what vessel sees, a CDI spec for them, and diagnosis
    #[command(subcommand)]
    Gpu(GpuCommand),
    /// Create a container (its process waits for `start`)
    Create(CreateArgs),
    /// Start a created container's process
    Start { id: String },
    /// Create and start a container; in the foreground, wait and return its exit code
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait for the container
        #[arg(short = 'd', long)]
        detach: bool,
        /// Ignored (runc compatibility)
        #[arg(long = "keep", hide = true)]
        keep: bool,
    },
    /// Run a new process in a running container
    Exec(ExecArgs),
    /// Change a running container's resource limits
    Update(UpdateArgs),
    /// Print container statistics as JSON events
    Events {
        /// Print one stats event and exit
        #[arg(long)]
        stats: bool,
        /// Time between stats events (e.g. 5s)
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// List a container's processes (`--format json`: their host pids)
    Ps {
        #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        id: String,
        /// Options for ps(1) (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print a container's state as JSON
    State { id: String },
    /// Send a signal (default TERM) to a container's init process
    Kill {
        /// Signal every process of the container
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container and everything it holds
    Delete {
        /// Kill the container first if it is running
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// List containers
    List {
        #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only ids
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Write a starter config.json into the bundle
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        /// A spec for rootless containers
        #[arg(long)]
        rootless: bool,
    },
    /// Print the OCI features document
    Features,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_shim_command_lines_parse() {
        let c = Cli::try_parse_from([
            "vessel",
            "--root",
            "/r",
            "--log",
            "/b/log.json",
            "--log-format",
            "json",
            "create",
            "--bundle",
            "/b",
            "--pid-file",
            "/b/init.pid",
            "id1",
        ])
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        match c.command.unwrap() {
            Command::Create(a) => {
                assert_eq!(a.bundle, PathBuf::from("/b"));
                assert_eq!(a.id, "id1");
            }
            other => panic!("{other:?}"),
        }
        let c = Cli::try_parse_from(["vessel", "kill", "--all", "id", "9"]).unwrap();
        assert!(
            matches!(c.command, Some(Command::Kill { all: true, ref signal, .. }) if signal.as_deref() == Some("9"))
        );
        let c = Cli::try_parse_from([
            "vessel",
            "exec",
            "--process",
            "/p.json",
            "--console-socket",
            "/s",
            "--detach",
            "--pid-file",
            "/pid",
            "id",
        ])
        .unwrap();
        assert!(
            matches!(c.command, Some(Command::Exec(ref e)) if e.detach && e.id == "id" && e.args.is_empty())
        );
        let c = Cli::try_parse_from([
            "vessel",
            "exec",
            "-t",
            "-e",
            "A=1",
            "id",
            "sh",
            "-c",
            "echo -n x",
        ])
        .unwrap();
        assert!(
            matches!(c.command, Some(Command::Exec(ref e)) if e.tty && e.args == ["sh", "-c", "echo -n x"])
        );
        let c = Cli::try_parse_from(["vessel", "delete", "--force", "id"]).unwrap();
        assert!(matches!(
            c.command,
            Some(Command::Delete { force: true, .. })
        ));
        let c = Cli::try_parse_from([
            "vessel",
            "run",
            "-d",
            "-b",
            "x",
            "--preserve-fds",
            "2",
            "id",
        ])
        .unwrap();
        assert!(
            matches!(c.command, Some(Command::Run { detach: true, ref create, .. }) if create.preserve_fds == 2)
        );
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CdiFormat {
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CdiClass {
    Gpu,
    ImexChannel,
}

#[derive(Debug, Subcommand)]
pub enum GpuCommand {
    /// Print the driver, GPUs, device nodes, libraries and CDI specs vessel sees
    Info,
    /// Print or write a CDI spec of this host's GPUs and MIG devices (kind nvidia.com/gpu) or IMEX channels, for podman, Docker and containerd
    Cdi {
        /// json or yaml (default: the --output file's extension, else json)
        #[arg(long, value_enum)]
        format: Option<CdiFormat>,
        /// The cdiVersion to write: 0.3.0 to 0.8.0, or `minimum` (the oldest the content allows, as nvidia-ctk writes); older readers need 0.5.0 (podman 4.3)
        #[arg(long, default_value = crate::gpu::cdi_version::DEFAULT)]
        cdi_version: String,
        /// Write the spec to FILE (.json, .yaml or .yml) by a rename, so readers never see a part of it
        #[arg(long, value_name = "FILE")]
        output: Option<std::path::PathBuf>,
        /// gpu (kind nvidia.com/gpu) or imex-channel (kind nvidia.com/imex-channel)
        #[arg(long, value_enum, default_value_t = CdiClass::Gpu)]
        class: CdiClass,
    },
    /// Check step by step why a GPU would not be visible (on the host, or in container ID)
    Doctor { id: Option<String> },
}
