//! Support code for the workspace-wide scale, fault and security tests.
