//! The `dockpack` command line: `layer` and `image`, as clap derive
//! structs whose doc comments are the help text.

// The doc comments are written for `--help` (`NAME[:TAG]`,
// `sha256:<config digest>`), not as rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::io;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use filelist::owner::Ownership;
use filtertool::args::{ArchiveArgs, MtimeArgs, TreeArgs};

use crate::{image, layer, reference};

/// Pack container layers and images.
#[derive(Parser)]
#[command(name = "dockpack", version, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Write one uncompressed layer tar on stdout from list lines (or plain
    /// names) on stdin.
    Layer {
        #[command(flatten)]
        tree: TreeArgs,
        #[command(flatten)]
        mtime: MtimeArgs,
        #[command(flatten)]
        archive: ArchiveArgs,
        #[command(flatten)]
        xattrs: filtertool::args::XattrArgs,
    },
    /// Write an image tar (OCI layout + docker-archive manifest.json) on
    /// stdout from layer tars, bottom layer first.
    Image {
        /// NAME[:TAG] (repeatable).
        #[arg(long = "tag", value_name = "NAME[:TAG]", value_parser = parse_tag)]
        tags: Vec<String>,
        /// One element of Cmd (repeatable; default /init).
        #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
        cmd: Vec<String>,
        /// One element of Entrypoint (repeatable).
        #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
        entrypoint: Vec<String>,
        /// An environment variable KEY=VALUE (repeatable).
        #[arg(long, value_name = "K=V", value_parser = |s: &str| key_value("--env", s))]
        env: Vec<String>,
        /// The working directory.
        #[arg(long, value_name = "DIR")]
        workdir: Option<String>,
        /// The user to run as.
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// A label KEY=VALUE (repeatable).
        #[arg(long, value_name = "K=V", value_parser = |s: &str| key_value("--label", s))]
        label: Vec<String>,
        /// Architecture (GOARCH name); default: from the ELF that Cmd or
        /// Entrypoint names, else the host's.
        #[arg(long, value_name = "ARCH", value_parser = parse_arch)]
        arch: Option<String>,
        /// Write the image id (sha256:<config digest>) to FILE.
        #[arg(long, value_name = "FILE")]
        iidfile: Option<PathBuf>,
        /// Write the OCI layout into directory DIR instead of a tar on stdout.
        #[arg(long, value_name = "DIR")]
        oci_dir: Option<PathBuf>,
        /// Store the layers compressed: gzip or zstd, with an optional
        /// level (gzip:9, zstd:19); diff_ids stay those of the tars given.
        #[arg(long, value_name = "METHOD[:LEVEL]", value_parser = parse_compress)]
        compress: Option<compress::Spec>,
        #[command(flatten)]
        archive: ArchiveArgs,
        /// Layer tars, bottom first.
        #[arg(value_name = "LAYER.tar")]
        layers: Vec<PathBuf>,
    },
}

/// `--tag`, checked as `docker tag` would before any layer is read.
fn parse_tag(text: &str) -> Result<String, String> {
    reference::parse(text).map(|_| text.to_string())
}

/// `--env`, `--label`: `KEY=VALUE` with a key.
fn key_value(option: &str, text: &str) -> Result<String, String> {
    image::check_key_value(option, text).map(|()| text.to_string())
}

/// `--arch`: a GOARCH name the tool maps.
fn parse_arch(text: &str) -> Result<String, String> {
    crate::arch::check_goarch(text).map(|()| text.to_string())
}

/// `--compress`: a spec the compressor takes, with an OCI layer media
/// type (docs/DESIGN.md "Image format").
fn parse_compress(text: &str) -> Result<compress::Spec, String> {
    // The crate's message quotes the text and lists the forms.
    let spec: compress::Spec = text.parse().map_err(|e| format!("--compress: {e}"))?;
    image::compressed_media_type(&spec)?;
    Ok(spec)
}

/// The tool's body.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let epoch = filelist::epoch::source_date_epoch()?;
    match cli.command {
        Command::Layer {
            tree,
            mtime,
            archive,
            xattrs,
        } => {
            tree.stdin_only.check("names")?;
            archive.check_stdout()?;
            let ownership = Ownership::from_args(tree.owner, tree.fakeroot.as_deref())?;
            let opts = layer::LayerOptions {
                dir: tree.dir,
                nul: tree.null,
                ownership,
                keep_mtime: mtime.keep_mtime,
                xattrs: filelist::xattr::Policy::from_args(&xattrs),
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
            compress,
            archive,
            layers,
        } => {
            if oci_dir.is_none() {
                archive.check_stdout()?;
            }
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
                compress,
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
