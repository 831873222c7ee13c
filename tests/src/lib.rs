//! Support code for the cross-tool pipeline tests (see `tests/`).
