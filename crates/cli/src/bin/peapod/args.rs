//! The `peapod` command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "peapod",
    version,
    about = "peapod: images, containers and pods"
)]
pub struct Cli {
    /// Where images, layers and snapshots are kept.
    #[arg(long, global = true, env = "PEAPOD_ROOT", default_value = peapod_image::DEFAULT_ROOT)]
    pub root: PathBuf,
    /// How container root filesystems are made: overlay (layers shared) or vfs (full copies).
    #[arg(
        long,
        global = true,
        env = "PEAPOD_STORAGE_DRIVER",
        default_value = "overlay"
    )]
    pub storage_driver: String,
    /// Where sockets, network namespaces and runtime state are kept.
    #[arg(long, global = true, env = "PEAPOD_RUN_ROOT", default_value = peapod_engine::paths::DEFAULT_RUN_ROOT)]
    pub run_root: PathBuf,
    /// Where network configurations (CNI config lists) are kept.
    #[arg(long, global = true, env = "PEAPOD_CNI_CONFIG_DIR", default_value = peapod_engine::paths::DEFAULT_CNI_CONFIG_DIR)]
    pub cni_config_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    pub fn paths(&self) -> peapod_engine::paths::Paths {
        peapod_engine::paths::Paths::new(&self.root, &self.run_root, &self.cni_config_dir)
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Download an image from a registry.
    Pull(PullArgs),
    /// Upload a local image to a registry.
    Push(PushArgs),
    /// List local images.
    Images(ImagesArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Save credentials for a registry.
    Login(LoginArgs),
    /// Forget the credentials of a registry.
    Logout(LogoutArgs),
    /// Give an image another name.
    Tag(TagArgs),
    /// Run a command in a new container.
    Run(RunArgs),
    /// Create a container without starting it.
    Create(RunArgs),
    /// Start stopped or created containers.
    Start(StartArgs),
    /// Stop running containers (the stop signal, then SIGKILL after the timeout).
    Stop(StopArgs),
    /// Stop and start containers again.
    Restart(StopArgs),
    /// Send a signal to running containers.
    Kill(KillArgs),
    /// Remove containers.
    Rm(RmContainersArgs),
    /// Wait for containers to end and print their exit codes.
    Wait(WaitArgs),
    /// Print a container's output.
    Logs(LogsArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(crate::volume_cmd::VolumeCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(crate::network_cmd::NetworkCommand),
    /// List containers.
    Ps(crate::ps::PsArgs),
    /// Show containers' details as JSON (or fields with -f '{{.State.Pid}}').
    Inspect(crate::inspect::ContainerInspectArgs),
    /// Show a running container's processes.
    Top(crate::top::TopArgs),
    /// Show running containers' CPU, memory and process counts.
    Stats(crate::stats::StatsArgs),
    /// Copy files between a container and the host (CONTAINER:PATH, or - for a tar stream).
    Cp(crate::cp::CpArgs),
    /// Write a container's root filesystem as a tar archive.
    Export(crate::export::ContainerExportArgs),
    /// Manage peapod itself.
    #[command(subcommand)]
    System(crate::system::SystemCommand),
    /// Manage containers.
    #[command(subcommand)]
    Container(crate::system::ContainerCommand),
    /// Create or update pods and jobs from Kubernetes manifests.
    Apply(crate::kube_cmd::ApplyArgs),
    /// List pods or jobs.
    Get(crate::kube_cmd::GetArgs),
    /// Show a pod's containers, states and events.
    Describe(crate::kube_cmd::DescribeArgs),
    /// Delete pods or jobs (stop signal, grace period, SIGKILL).
    Delete(crate::kube_cmd::DeleteArgs),
    /// Pod tools.
    #[command(subcommand)]
    Pod(crate::kube_cmd::PodCommand),
    /// Set the replicas of a deployment or replica set.
    Scale(crate::deploy_cmd::ScaleArgs),
    /// Deployment rollouts.
    #[command(subcommand)]
    Rollout(crate::rollout_cmd::RolloutCommand),
    /// The controller of a deployment or replica set (started by peapod itself).
    #[command(name = "__deploy-supervise", hide = true)]
    DeploySupervise(crate::deploy_cmd::DeploySuperviseArgs),
    /// The controller of a job (started by peapod itself).
    #[command(name = "__job-supervise", hide = true)]
    JobSupervise(crate::job_cmd::JobSuperviseArgs),
    /// The supervisor of a pod (started by peapod itself).
    #[command(name = "__pod-supervise", hide = true)]
    PodSupervise(SuperviseArgs),
    /// The supervisor of a detached container (started by peapod itself).
    #[command(name = "__supervise", hide = true)]
    Supervise(SuperviseArgs),
}

impl Command {
    /// Whether it runs or changes containers (its errors exit 125).
    pub fn is_container(&self) -> bool {
        matches!(
            self,
            Command::Run(_) | Command::Create(_) | Command::Start(_) | Command::Exec(_)
        )
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run in the background and print the container's id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    #[command(flatten)]
    pub create: crate::run_args::CreateFlags,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach to the container's output and wait for it to end.
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach stdin too.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before SIGKILL (default: the container's stop timeout, 10).
    #[arg(short = 't', long = "time")]
    pub time: Option<u32>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// The signal (name or number).
    #[arg(short = 's', long = "signal", default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmContainersArgs {
    /// Kill and remove running containers too.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove the containers' anonymous volumes too.
    #[arg(short = 'v', long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Containers; with --for, pods (pod/NAME) and jobs (job/NAME).
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// As kubectl wait: condition=Ready (pods), condition=Complete or Failed (jobs), or delete.
    #[arg(long = "for", value_name = "CONDITION")]
    pub for_: Option<String>,
    /// With --for: how long to wait (30s, 2m).
    #[arg(long, default_value = "30s")]
    pub timeout: String,
    /// With --for: the namespace of the pods and jobs.
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    pub namespace: String,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Keep printing new output until the container ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines ("all" for all).
    #[arg(short = 'n', long)]
    pub tail: Option<String>,
    /// Prefix each line with its RFC 3339 time.
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// For a pod: which container (default: the first).
    #[arg(short = 'c', long = "container")]
    pub pod_container: Option<String>,
    /// For a pod: the container's previous run.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// For a pod: its namespace.
    #[arg(long = "namespace", default_value = "default")]
    pub namespace: String,
    /// A container (name or id), or a pod's name.
    pub container: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// For a pod: which container (default: the first).
    #[arg(short = 'c', long = "container")]
    pub pod_container: Option<String>,
    /// For a pod: its namespace.
    #[arg(long = "namespace", default_value = "default")]
    pub namespace: String,
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Run in the background.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// USER[:GROUP].
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// KEY=VALUE (or KEY to pass this shell's value).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SuperviseArgs {
    pub id: String,
    /// Start the process only once a client has attached.
    #[arg(long)]
    pub wait_attach: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RegistryFlags {
    /// Talk to this registry (HOST:PORT) over plain HTTP; also read from <root>/registries.json.
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// NAME[:TAG|@DIGEST]
    pub image: String,
    /// The platform to pick from a multi-platform image (OS/ARCH[/VARIANT]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print nothing but the image's digest.
    #[arg(long, short)]
    pub quiet: bool,
    /// Layers downloaded at once.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub max_concurrent_downloads: u16,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The local image.
    pub image: String,
    /// Where to push it (default: its own name).
    pub destination: Option<String>,
    /// Upload blobs in chunks of this many bytes instead of in one request.
    #[arg(long)]
    pub chunk_size: Option<u64>,
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct ImagesArgs {
    #[arg(long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Only image IDs.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List local images (same as `peapod images`).
    Ls(ImagesArgs),
    /// Remove image names; content no other image uses is deleted.
    Rm(RmArgs),
    /// Delete every blob and layer that no image or container uses.
    Prune,
    /// Show an image's manifest, config, layers and storage paths as JSON.
    Inspect(InspectArgs),
    /// Import images from an OCI layout directory, an oci-archive or a docker-archive tarball.
    Import(ImportArgs),
    /// Export an image as an OCI layout directory, an oci-archive or a docker-archive.
    Export(ExportArgs),
    /// Build a single-layer image from host programs and the libraries they need.
    BuildFromHost(BuildFromHostArgs),
    /// Unpack one layer tarball into a directory as an overlay lowerdir (for benchmarks).
    #[command(hide = true)]
    UnpackLayer(UnpackLayerArgs),
}

#[derive(Args, Debug)]
pub struct UnpackLayerArgs {
    /// A layer tarball (plain, gzip or zstd: detected from its first bytes).
    pub layer: PathBuf,
    /// An existing, empty directory.
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Remove the names even when a container uses the image (its layers stay while it exists).
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// An OCI layout directory or a tarball (oci-archive or docker-archive).
    pub path: PathBuf,
    /// Name for the imported image (needed when the archive names none, or to rename one).
    pub name: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    /// An OCI image layout directory.
    Oci,
    /// An OCI image layout in a tarball.
    OciArchive,
    /// `docker save`'s tarball format.
    DockerArchive,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    pub image: String,
    /// Destination directory (oci) or file (archives; `-` for stdout).
    pub path: PathBuf,
    #[arg(long, value_enum, default_value = "oci-archive")]
    pub format: ExportFormat,
}

#[derive(Args, Debug)]
pub struct BuildFromHostArgs {
    /// Name of the new image, e.g. busybox or local/tools:1.
    pub name: String,
    /// Host programs (paths or names on PATH); the first is the default command.
    #[arg(required = true)]
    pub programs: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry (HOST[:PORT]).
    pub registry: String,
    #[arg(long, short)]
    pub username: String,
    /// The password (prefer --password-stdin).
    #[arg(long, short, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_flags: RegistryFlags,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    pub registry: String,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}
