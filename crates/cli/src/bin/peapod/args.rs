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
    #[command(subcommand)]
    pub command: Command,
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
