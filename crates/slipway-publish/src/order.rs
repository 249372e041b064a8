//! The order in which objects must appear in a bucket so that every index a client can read
//! only points at objects that already exist.

/// Lower ranks are written first. Unknown files are leaves (rank 0).
pub fn publish_rank(path: &str) -> u8 {
    let name = path.rsplit('/').next().unwrap_or(path);
    let in_dists = path.starts_with("dists/") || path.contains("/dists/");
    if in_dists {
        if path.contains("/by-hash/") {
            return 1;
        }
        // Top-level suite files sit directly under dists/<codename>/.
        let depth_under_dists = path
            .split("dists/")
            .last()
            .map(|rest| rest.matches('/').count())
            .unwrap_or(0);
        return match (name, depth_under_dists) {
            ("Release.gpg", 1) => 3,
            ("Release", 1) => 4,
            ("InRelease", 1) => 5,
            _ => 2,
        };
    }
    if path.starts_with("streams/") || path.contains("/streams/") {
        return if name == "index.json" { 5 } else { 2 };
    }
    0
}

/// Sorts paths into publish order: by rank, then by path for a stable, reviewable order.
pub fn sort_for_publish(paths: &mut [String]) {
    paths.sort_by(|a, b| publish_rank(a).cmp(&publish_rank(b)).then_with(|| a.cmp(b)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_repo_goes_pool_byhash_indices_release_inrelease() {
        let mut paths: Vec<String> = [
            "dists/bookworm/InRelease",
            "dists/bookworm/Release",
            "dists/bookworm/Release.gpg",
            "dists/bookworm/main/binary-amd64/Packages.gz",
            "dists/bookworm/main/binary-amd64/Release",
            "dists/bookworm/main/binary-amd64/by-hash/SHA256/abc",
            "pool/main/c/cros-garcon/cros-garcon_1_all.deb",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        sort_for_publish(&mut paths);
        assert_eq!(
            paths,
            [
                "pool/main/c/cros-garcon/cros-garcon_1_all.deb",
                "dists/bookworm/main/binary-amd64/by-hash/SHA256/abc",
                "dists/bookworm/main/binary-amd64/Packages.gz",
                "dists/bookworm/main/binary-amd64/Release",
                "dists/bookworm/Release.gpg",
                "dists/bookworm/Release",
                "dists/bookworm/InRelease",
            ]
        );
    }

    #[test]
    fn streams_index_goes_last() {
        let mut paths: Vec<String> = [
            "streams/v1/index.json",
            "streams/v1/images.json",
            "images/debian/x/lxd.tar.xz",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        sort_for_publish(&mut paths);
        assert_eq!(
            paths,
            [
                "images/debian/x/lxd.tar.xz",
                "streams/v1/images.json",
                "streams/v1/index.json"
            ]
        );
    }
}
