//! Native apt repositories: reading .debs, writing `pool/` and `dists/` (Packages, Release,
//! by-hash), signing with OpenPGP (rPGP, pure Rust), and verifying a repository the way apt does.

pub mod cache;
pub mod control;
pub mod deb;
pub mod error;
pub mod fsutil;
pub mod repo;
pub mod testdeb;
pub mod version;

pub use error::AptError;
pub use repo::{BuildOptions, BuildReport, Distribution, Input, build_repo};
pub mod keys;
pub mod sign;
pub mod verify;

pub use verify::{VerifyOptions, VerifyReport, verify_repo, verify_repo_with, verify_signatures};

#[cfg(test)]
mod tests;
