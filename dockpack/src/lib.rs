//! `dockpack`: the container packers of the pipeline in docs/DESIGN.md.
//!
//! `dockpack layer` turns a file list into one layer tar ([`layer`]);
//! `dockpack image` turns layer tars into an image that Docker, Podman,
//! skopeo and umoci load ([`image`]), reading each layer once where the
//! output allows ([`layerpass`]). Both write tar by hand ([`tarfmt`]) so
//! that the same inputs give the same bytes.

pub mod arch;
pub mod cli;
pub mod image;
pub mod layer;
pub mod layerpass;
pub mod reference;
pub mod tarfmt;

/// The name in messages.
pub const TOOL: &str = "dockpack";

/// The name in messages and the exit codes.
pub const PROGRAM: filtertool::Tool = filtertool::Tool::filter(TOOL);
