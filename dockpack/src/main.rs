//! The `dockpack` command line; the work is in the library.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};
use dockpack::{image, layer, TOOL};
use filelist::owner::Ownership;
use filtertool::exit;

/// Pack container layers and images.
#[derive(Parser)]
#[command(name = "dockpack", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write one uncompressed layer tar on stdout from list lines (or plain
    /// names) on stdin.
    Layer {
        /// Directory the names are relative to.
        #[arg(short = 'C', value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// Input records end in NUL instead of newline.
        #[arg(short = '0')]
        null: bool,
        /// Make every entry owned by UID:GID.
        #[arg(long, value_name = "UID:GID")]
        owner: Option<String>,
        /// Take ownership, modes and device numbers of plain names from a
        /// `fakeroot -s` state file.
        #[arg(long, value_name = "STATE")]
        fakeroot: Option<PathBuf>,
        /// Keep file mtimes instead of SOURCE_DATE_EPOCH (0 if unset).
        #[arg(long)]
        keep_mtime: bool,
    },
    /// Write an image tar (OCI layout + docker-archive manifest.json) on
    /// stdout from layer tars, bottom layer first.
    Image {
        /// NAME[:TAG] (repeatable).
        #[arg(long = "tag", value_name = "NAME[:TAG]")]
        tags: Vec<String>,
        /// One element of Cmd (repeatable; default /init).
        #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
        cmd: Vec<String>,
        /// One element of Entrypoint (repeatable).
        #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
        entrypoint: Vec<String>,
        /// An environment variable KEY=VALUE (repeatable).
        #[arg(long, value_name = "K=V")]
        env: Vec<String>,
        /// The working directory.
        #[arg(long, value_name = "DIR")]
        workdir: Option<String>,
        /// The user to run as.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// A label KEY=VALUE (repeatable).
        #[arg(long, value_name = "K=V")]
        label: Vec<String>,
        /// Architecture (GOARCH name); default: from the ELF that Cmd or
        /// Entrypoint names, else the host's.
        #[arg(long, value_name = "ARCH")]
        arch: Option<String>,
        /// Write the image id (sha256:<config digest>) to FILE.
        #[arg(long, value_name = "FILE")]
        iidfile: Option<PathBuf>,
        /// Write the OCI layout into directory DIR instead of a tar on stdout.
        #[arg(long, value_name = "DIR")]
        oci_dir: Option<PathBuf>,
        /// Layer tars, bottom first.
        #[arg(value_name = "LAYER.tar")]
        layers: Vec<PathBuf>,
    },
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let epoch = filelist::epoch::source_date_epoch()?;
    match cli.command {
        Command::Layer {
            dir,
            null,
            owner,
            fakeroot,
            keep_mtime,
        } => {
            let ownership = Ownership::from_options(owner.as_deref(), fakeroot.as_deref())
                .map_err(|e| filtertool::fail(e.exit_code(), e.to_string()))?;
            let opts = layer::LayerOptions {
                dir,
                nul: null,
                ownership,
                keep_mtime,
                epoch,
            };
            let stdin = io::stdin().lock();
            let mut out = filtertool::stdout();
            layer::write_layer(&opts, stdin, &mut out)?;
        }
        Command::Image {
            tags,
            cmd,
            entrypoint,
            env,
            workdir,
            user,
            label,
            arch,
            iidfile,
            oci_dir,
            layers,
        } => {
            let opts = image::ImageOptions {
                tags,
                cmd,
                entrypoint,
                env,
                workdir,
                user,
                labels: label,
                arch,
                layers,
                epoch,
            };
            if let Some(dir) = &oci_dir {
                // Before any layer is read: a symlink or a full directory
                // there fails at once.
                image::check_oci_dir(dir)?;
            }
            let inputs = image::prepare(&opts)?;
            let image = match &oci_dir {
                Some(dir) => image::write_dir(&inputs, dir)?,
                None => image::write_stdout(&inputs)?,
            };
            if let Some(path) = iidfile {
                image::write_atomic(&path, image.image_id().as_bytes()).with_context(|| {
                    format!(
                        "cannot write --iidfile {}",
                        filtertool::quote::quote_path(&path)
                    )
                })?;
            }
        }
    }
    Ok(0)
}

fn main() -> ExitCode {
    let cli: Cli = filtertool::parse_args(TOOL, exit::USAGE);
    filtertool::main(TOOL, exit::FAILURE, || run(cli).map_err(|e| anyhow!(e)))
}
