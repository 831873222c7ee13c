//! Support code for the cross-tool pipeline tests (see `tests/`): a small
//! redo driver (`redo`), and helpers that find the workspace's binaries and
//! copy the cookbook into a scratch directory (`support`).

pub mod redo;
pub mod support;
