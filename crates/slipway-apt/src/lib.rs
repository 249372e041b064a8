//! Native apt repositories: reading .debs, writing `pool/` and `dists/` (Packages, Release,
//! by-hash), signing with OpenPGP (rPGP, pure Rust), and verifying a repository the way apt does.

pub mod control;
pub mod deb;
pub mod testdeb;
pub mod version;
