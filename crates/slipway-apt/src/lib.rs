//! Native apt repositories: reading .debs, writing `pool/` and `dists/` (Packages, Release,
//! by-hash), signing with OpenPGP (rPGP, pure Rust), and verifying a repository the way apt does.

pub mod control;
pub mod deb;
pub mod testdeb;
pub mod version;
pub mod cache;
pub mod error;
pub mod fsutil;
pub mod repo;

pub use error::AptError;
pub use repo::{build_repo, BuildOptions, BuildReport, Distribution, Input};
pub mod keys;
pub mod sign;
pub mod verify;

pub use verify::{verify_repo, VerifyReport};

#[cfg(test)]
mod tests;
