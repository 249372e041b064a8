//! LXD/Incus simplestreams: from image folders `<distro>/<release>/<arch>/<variant>/` holding
//! `lxd.tar.xz` and `rootfs.squashfs` and/or `rootfs.tar.xz`, write
//! `images/<distro>/<release>/<arch>/<variant>/<YYYYMMDD_HH:MM>/...`, `streams/v1/images.json`
//! (products:1.0) and `streams/v1/index.json` (index:1.0), as the LXD client reads them.
//! Earlier versions from a previous `images.json` stay listed, up to `keep` per product.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::bucket::PublishError;

#[derive(Debug, Clone)]
pub struct StreamsOptions {
    /// Version key: must start with YYYYMMDD or LXD ignores it.
    pub version: String,
    /// Versions listed per product (this one included).
    pub keep: usize,
    /// `updated` timestamp (RFC 2822), for reproducible output.
    pub updated: String,
}

#[derive(Debug, Clone, Default)]
pub struct StreamsReport {
    pub products: Vec<String>,
    /// Fingerprints (combined sha256) of the new images, by product.
    pub fingerprints: BTreeMap<String, String>,
}

/// `YYYYMMDD_HH:MM` for a time in seconds since the epoch (UTC).
pub fn version_for(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .unwrap_or_default()
        .format("%Y%m%d_%H:%M")
        .to_string()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PublishError + '_ {
    move |source| PublishError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn sha256_of(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// Image folders under `root`: those holding `lxd.tar.xz`, four levels down.
fn image_dirs(root: &Path) -> Result<Vec<(PathBuf, [String; 4])>, PublishError> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .min_depth(4)
        .max_depth(4)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| PublishError::Read {
            path: root.to_path_buf(),
            source: e.into(),
        })?;
        if !entry.file_type().is_dir() || !entry.path().join("lxd.tar.xz").is_file() {
            continue;
        }
        let rel: Vec<String> = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if let [d, r, a, v] = rel.as_slice() {
            for part in [d, r, a, v] {
                if part.is_empty()
                    || !part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                {
                    return Err(PublishError::Refused(format!(
                        "image folder part '{part}' must be letters, digits, '-', '_', '.'"
                    )));
                }
            }
            out.push((
                entry.path().to_path_buf(),
                [d.clone(), r.clone(), a.clone(), v.clone()],
            ));
        }
    }
    if out.is_empty() {
        return Err(PublishError::Refused(format!(
            "no images in {} (expected <distro>/<release>/<arch>/<variant>/lxd.tar.xz)",
            root.display()
        )));
    }
    Ok(out)
}

fn aliases(distro: &str, release: &str, arch: &str, variant: &str) -> String {
    let mut a = vec![
        format!("{distro}/{release}/{variant}"),
        format!("{distro}/{release}/{variant}/{arch}"),
    ];
    if variant == "default" {
        a.push(format!("{distro}/{release}"));
        a.push(format!("{distro}/{release}/{arch}"));
    }
    a.join(",")
}

/// Writes the stream tree into `out` (which must not exist yet).
pub fn build_streams(
    images: &Path,
    out: &Path,
    previous: Option<&Value>,
    opts: &StreamsOptions,
) -> Result<StreamsReport, PublishError> {
    if opts.version.len() < 8 || !opts.version[..8].bytes().all(|b| b.is_ascii_digit()) {
        return Err(PublishError::Refused(format!(
            "version '{}' must start with YYYYMMDD",
            opts.version
        )));
    }
    let mut products: Map<String, Value> = previous
        .and_then(|p| p.get("products"))
        .and_then(|p| p.as_object())
        .cloned()
        .unwrap_or_default();
    let mut report = StreamsReport::default();
    for (dir, [distro, release, arch, variant]) in image_dirs(images)? {
        let meta_path = dir.join("lxd.tar.xz");
        let meta = std::fs::read(&meta_path).map_err(io(&meta_path))?;
        let base = format!(
            "images/{distro}/{release}/{arch}/{variant}/{}",
            opts.version
        );
        let mut items = Map::new();
        let write = |name: &str, bytes: &[u8]| -> Result<(String, u64), PublishError> {
            let path = out.join(&base).join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::write(&path, bytes).map_err(io(&path))?;
            Ok((format!("{base}/{name}"), bytes.len() as u64))
        };
        let mut combined = Map::new();
        let mut fingerprint = None;
        for (file, ftype, key, combined_key) in [
            (
                "rootfs.squashfs",
                "squashfs",
                "root.squashfs",
                "combined_squashfs_sha256",
            ),
            (
                "rootfs.tar.xz",
                "root.tar.xz",
                "root.tar.xz",
                "combined_rootxz_sha256",
            ),
        ] {
            let p = dir.join(file);
            if !p.is_file() {
                continue;
            }
            let bytes = std::fs::read(&p).map_err(io(&p))?;
            let (path, size) = write(file, &bytes)?;
            items.insert(
                key.into(),
                json!({"ftype": ftype, "path": path, "sha256": sha256_of(&[&bytes]), "size": size}),
            );
            let fp = sha256_of(&[&meta, &bytes]);
            combined.insert(combined_key.into(), json!(fp));
            // LXD prefers squashfs; the fingerprint the client computes is that combination.
            fingerprint.get_or_insert(fp);
        }
        let Some(fingerprint) = fingerprint else {
            return Err(PublishError::Refused(format!(
                "{}: no rootfs.squashfs or rootfs.tar.xz next to lxd.tar.xz",
                dir.display()
            )));
        };
        if let Some(v) = combined.get("combined_rootxz_sha256").cloned() {
            // Older clients read the unsuffixed name for the tarball pair.
            combined.insert("combined_sha256".into(), v);
        }
        for (name, ftype) in [
            ("lxd.tar.xz", "lxd.tar.xz"),
            ("incus.tar.xz", "incus.tar.xz"),
        ] {
            let (path, size) = write(name, &meta)?;
            let mut item =
                json!({"ftype": ftype, "path": path, "sha256": sha256_of(&[&meta]), "size": size});
            if let Some(obj) = item.as_object_mut() {
                obj.extend(combined.clone());
            }
            items.insert(name.into(), item);
        }

        let key = format!("{distro}:{release}:{arch}:{variant}");
        let product = products.entry(key.clone()).or_insert_with(|| json!({}));
        let mut versions: BTreeMap<String, Value> = product
            .get("versions")
            .and_then(|v| v.as_object())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        versions.insert(opts.version.clone(), json!({"items": items}));
        while versions.len() > opts.keep.max(1) {
            let oldest = versions.keys().next().cloned().unwrap_or_default();
            versions.remove(&oldest);
        }
        *product = json!({
            "aliases": aliases(&distro, &release, &arch, &variant),
            "arch": arch,
            "os": distro,
            "release": release,
            "release_title": release,
            "variant": variant,
            "versions": versions.into_iter().collect::<Map<String, Value>>(),
        });
        report.fingerprints.insert(key.clone(), fingerprint);
    }
    report.products = products.keys().cloned().collect();
    let images_json = json!({
        "content_id": "images",
        "datatype": "image-downloads",
        "format": "products:1.0",
        "products": products,
        "updated": opts.updated,
    });
    let index_json = json!({
        "format": "index:1.0",
        "index": {
            "images": {
                "datatype": "image-downloads",
                "path": "streams/v1/images.json",
                "format": "products:1.0",
                "products": report.products,
                "updated": opts.updated,
            }
        },
        "updated": opts.updated,
    });
    let streams = out.join("streams/v1");
    std::fs::create_dir_all(&streams).map_err(io(&streams))?;
    for (name, value) in [("images.json", images_json), ("index.json", index_json)] {
        let text = serde_json::to_string_pretty(&value)
            .map_err(|e| PublishError::Verify(e.to_string()))?;
        std::fs::write(streams.join(name), text + "\n").map_err(io(&streams))?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(root: &Path, variant: &str, meta: &[u8], rootfs: &[u8]) {
        let d = root.join("debian/bookworm/amd64").join(variant);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("lxd.tar.xz"), meta).unwrap();
        std::fs::write(d.join("rootfs.squashfs"), rootfs).unwrap();
        std::fs::write(d.join("rootfs.tar.xz"), [rootfs, b"-xz"].concat()).unwrap();
    }

    #[test]
    fn products_items_aliases_and_fingerprints() {
        let dir = tempfile::tempdir().unwrap();
        let imgs = dir.path().join("in");
        image(&imgs, "default", b"META", b"ROOT");
        image(&imgs, "test", b"META2", b"ROOT2");
        let opts = StreamsOptions {
            version: version_for(1_700_000_000),
            keep: 2,
            updated: "Tue, 14 Nov 2023 22:13:20 +0000".into(),
        };
        assert_eq!(opts.version, "20231114_22:13");
        let out = dir.path().join("out");
        let report = build_streams(&imgs, &out, None, &opts).unwrap();
        assert_eq!(
            report.products,
            [
                "debian:bookworm:amd64:default",
                "debian:bookworm:amd64:test"
            ]
        );
        let expected_fp = sha256_of(&[b"META", b"ROOT"]);
        assert_eq!(
            report.fingerprints["debian:bookworm:amd64:default"],
            expected_fp
        );

        let images: Value =
            serde_json::from_slice(&std::fs::read(out.join("streams/v1/images.json")).unwrap())
                .unwrap();
        let p = &images["products"]["debian:bookworm:amd64:default"];
        assert_eq!(
            p["aliases"],
            "debian/bookworm/default,debian/bookworm/default/amd64,debian/bookworm,debian/bookworm/amd64"
        );
        let items = &p["versions"]["20231114_22:13"]["items"];
        assert_eq!(items["lxd.tar.xz"]["combined_squashfs_sha256"], expected_fp);
        assert_eq!(
            items["lxd.tar.xz"]["combined_rootxz_sha256"],
            sha256_of(&[b"META", b"ROOT-xz"])
        );
        assert_eq!(items["incus.tar.xz"]["ftype"], "incus.tar.xz");
        assert_eq!(items["root.squashfs"]["ftype"], "squashfs");
        let path = items["root.squashfs"]["path"].as_str().unwrap();
        assert_eq!(std::fs::read(out.join(path)).unwrap(), b"ROOT");
        let index: Value =
            serde_json::from_slice(&std::fs::read(out.join("streams/v1/index.json")).unwrap())
                .unwrap();
        assert_eq!(index["format"], "index:1.0");
        assert_eq!(index["index"]["images"]["datatype"], "image-downloads");

        // Later builds keep the newest `keep` versions.
        let mut previous = images;
        for (i, t) in [1_700_086_400i64, 1_700_172_800].iter().enumerate() {
            let o = dir.path().join(format!("out{i}"));
            let opts = StreamsOptions {
                version: version_for(*t),
                ..opts.clone()
            };
            build_streams(&imgs, &o, Some(&previous), &opts).unwrap();
            previous =
                serde_json::from_slice(&std::fs::read(o.join("streams/v1/images.json")).unwrap())
                    .unwrap();
        }
        let versions: Vec<_> = previous["products"]["debian:bookworm:amd64:default"]["versions"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(versions, ["20231115_22:13", "20231116_22:13"]);
    }

    #[test]
    fn bad_layouts_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StreamsOptions {
            version: "20231114_22:13".into(),
            keep: 1,
            updated: String::new(),
        };
        assert!(build_streams(dir.path(), &dir.path().join("o"), None, &opts).is_err());
        let d = dir.path().join("debian/bookworm/amd64/default");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("lxd.tar.xz"), b"m").unwrap();
        let e = build_streams(dir.path(), &dir.path().join("o2"), None, &opts).unwrap_err();
        assert!(e.to_string().contains("no rootfs"), "{e}");
        let bad = StreamsOptions {
            version: "latest".into(),
            ..opts
        };
        assert!(build_streams(dir.path(), &dir.path().join("o3"), None, &bad).is_err());
    }
}
