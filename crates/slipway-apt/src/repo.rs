//! Building an apt repository: `pool/` and `dists/` with Packages (plain, gz, xz), per-arch
//! Release, by-hash copies and a top-level Release, deterministic for the same inputs and date.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::Md5;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::cache::DebCache;
use crate::control::Stanza;
use crate::deb::DebInfo;
use crate::error::{AptError, io_err};
use crate::fsutil;
use crate::version;

/// The `Release` fields of a repository and the suites it serves.
#[derive(Debug, Clone)]
pub struct Distribution {
    pub origin: Option<String>,
    pub label: Option<String>,
    /// `Suite` (and per-arch `Archive`) by codename, e.g. bookworm -> stable; codenames without
    /// one get no such field. Distinct per codename: mirrors link `dists/<suite>` to its codename
    /// and apt pins on `a=<suite>`, so a shared suite would be ambiguous.
    pub suites: BTreeMap<String, String>,
    pub version: Option<String>,
    /// Every codename gets a `dists/<codename>/`, even with no packages (old clients keep working).
    pub codenames: Vec<String>,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    pub description: Option<String>,
    /// Adds `Valid-Until: Date + valid_for`.
    pub valid_for: Option<Duration>,
}

impl Distribution {
    pub fn check(&self) -> Result<(), AptError> {
        let word = |what: &str, v: &str| -> Result<(), AptError> {
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
                || v.starts_with('.')
            {
                return Err(AptError::Invalid(format!(
                    "{what} '{v}' must be letters, digits, '-', '_', '.', '+'"
                )));
            }
            Ok(())
        };
        if self.codenames.is_empty() || self.components.is_empty() || self.architectures.is_empty()
        {
            return Err(AptError::Invalid(
                "a repository needs at least one codename, component and architecture".into(),
            ));
        }
        for c in &self.codenames {
            word("codename", c)?;
        }
        for c in &self.components {
            word("component", c)?;
        }
        for a in &self.architectures {
            word("architecture", a)?;
            if a == "all" {
                return Err(AptError::Invalid(
                    "list real architectures; 'all' packages go into each of them".into(),
                ));
            }
        }
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for (codename, suite) in &self.suites {
            word("suite", suite)?;
            if !self.codenames.contains(codename) {
                return Err(AptError::Invalid(format!(
                    "suite '{suite}' is for codename '{codename}', which is not one of {:?}",
                    self.codenames
                )));
            }
            if let Some(other) = owner.insert(suite, codename) {
                return Err(AptError::Invalid(format!(
                    "codenames '{other}' and '{codename}' both have suite '{suite}'; each suite names one codename"
                )));
            }
            if suite != codename && self.codenames.contains(suite) {
                return Err(AptError::Invalid(format!(
                    "suite '{suite}' of codename '{codename}' is itself a codename of the repository"
                )));
            }
        }
        for (name, v) in [
            ("origin", &self.origin),
            ("label", &self.label),
            ("version", &self.version),
            ("description", &self.description),
        ] {
            if v.as_deref().is_some_and(|v| v.contains('\n')) {
                return Err(AptError::Invalid(format!("{name} must be one line")));
            }
        }
        Ok(())
    }
}

/// One .deb to include: in which codename and component.
#[derive(Debug, Clone)]
pub struct Input {
    pub codename: String,
    pub component: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `Date` of the Release files (seconds since the epoch); `SOURCE_DATE_EPOCH` for reproducible output.
    pub date: i64,
    /// Incremental cache file; `None` reads every .deb.
    pub cache: Option<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    pub packages: usize,
    pub pool_files: usize,
    pub debs_read: usize,
    pub debs_cached: usize,
}

/// Builds the repository into `out`, replacing what was there only once the new tree is whole.
pub fn build_repo(
    dist: &Distribution,
    inputs: &[Input],
    out: &Path,
    opts: &BuildOptions,
) -> Result<BuildReport, AptError> {
    dist.check()?;
    for i in inputs {
        if !dist.codenames.contains(&i.codename) {
            return Err(AptError::Invalid(format!(
                "{}: codename '{}' is not one of {:?}",
                i.path.display(),
                i.codename,
                dist.codenames
            )));
        }
        if !dist.components.contains(&i.component) {
            return Err(AptError::Invalid(format!(
                "{}: component '{}' is not one of {:?}",
                i.path.display(),
                i.component,
                dist.components
            )));
        }
    }
    let holds_other_files = !out.join("dists").is_dir()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
    if holds_other_files {
        return Err(AptError::Invalid(format!(
            "refusing to write over {}: it is not empty and not an apt repository",
            out.display()
        )));
    }
    let mut paths: Vec<PathBuf> = inputs.iter().map(|i| i.path.clone()).collect();
    paths.sort();
    paths.dedup();
    let cache = DebCache::open(opts.cache.as_deref());
    let infos = cache.read_all(&paths)?;
    let by_path: BTreeMap<&PathBuf, &DebInfo> = paths.iter().zip(&infos).collect();

    // Pool: one file per (component, package, version, arch); a second, different file for the
    // same identity is an error, because apt could not tell them apart.
    let mut pool: BTreeMap<String, (&PathBuf, &DebInfo)> = BTreeMap::new();
    // (codename, component) -> pool paths
    let mut suites: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for input in inputs {
        let info = by_path[&input.path];
        if info.architecture != "all" && !dist.architectures.contains(&info.architecture) {
            return Err(AptError::Invalid(format!(
                "{}: architecture '{}' is not one of the repository's {:?}",
                input.path.display(),
                info.architecture,
                dist.architectures
            )));
        }
        let pool_path = format!(
            "pool/{}/{}/{}/{}",
            input.component,
            pool_prefix(&info.source),
            info.source,
            info.canonical_filename()
        );
        if let Some((other, prev)) = pool.get(&pool_path) {
            if prev.sha256 != info.sha256 {
                return Err(AptError::Invalid(format!(
                    "{} and {} are both {} {} ({}) but differ; bump the version of one",
                    other.display(),
                    input.path.display(),
                    info.package,
                    info.version,
                    info.architecture
                )));
            }
        } else {
            pool.insert(pool_path.clone(), (&input.path, info));
        }
        suites
            .entry((input.codename.clone(), input.component.clone()))
            .or_default()
            .insert(pool_path);
    }

    let pool_paths: Vec<PathBuf> = pool.keys().map(|rel| out.join(rel)).collect();
    if out.join("dists").is_dir() {
        update_in_place(dist, &pool, &suites, out, opts.date, &cache)?;
    } else {
        let staging = fsutil::staging_dir(out)?;
        let result = place_pool(&pool, &staging, &cache)
            .and_then(|_| write_dists(dist, &pool, &suites, &staging, opts.date));
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        fsutil::replace_dir(&staging, out)?;
    }
    let mut live = paths.clone();
    live.extend(pool_paths);
    cache.save(&live);
    let cached = cache.hits.load(std::sync::atomic::Ordering::Relaxed);
    Ok(BuildReport {
        packages: suites.values().map(|s| s.len()).sum(),
        pool_files: pool.len(),
        debs_read: paths.len() - cached,
        debs_cached: cached,
    })
}

/// `lib` packages are split by their first four letters, the rest by the first.
pub fn pool_prefix(source: &str) -> &str {
    let n = if source.starts_with("lib") && source.len() > 3 {
        4
    } else {
        1
    };
    source.get(..n).unwrap_or(source)
}

/// An existing repository: new pool files are added first (old indices do not name them), then
/// `dists/` is swapped whole, then pool files no index names any more are removed. Readers see
/// the old repository or the new one; a failure removes what it added.
fn update_in_place(
    dist: &Distribution,
    pool: &BTreeMap<String, (&PathBuf, &DebInfo)>,
    suites: &BTreeMap<(String, String), BTreeSet<String>>,
    out: &Path,
    date: i64,
    cache: &DebCache,
) -> Result<(), AptError> {
    let old = indexed_pool_files(out);
    let added = place_pool(pool, out, cache)?;
    let staging = fsutil::staging_dir(out)?;
    let result = write_dists(dist, pool, suites, &staging, date)
        .and_then(|_| fsutil::replace_dir(&staging.join("dists"), &out.join("dists")));
    let _ = std::fs::remove_dir_all(&staging);
    if let Err(e) = result {
        for p in added {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    prune_pool(out, &old, pool)
}

/// Puts every pool file under `root`; returns the files it created. A file already there with
/// the same content (known through the cache, or the very same inode) is kept.
fn place_pool(
    pool: &BTreeMap<String, (&PathBuf, &DebInfo)>,
    root: &Path,
    cache: &DebCache,
) -> Result<Vec<PathBuf>, AptError> {
    let placed: Vec<Option<PathBuf>> = pool
        .par_iter()
        .map(|(rel, (src, info))| {
            let dest = root.join(rel);
            if let Ok(meta) = std::fs::metadata(&dest) {
                let same_inode = std::fs::metadata(src).is_ok_and(|m| {
                    use std::os::unix::fs::MetadataExt;
                    m.ino() == meta.ino() && m.dev() == meta.dev()
                });
                if same_inode || cache.lookup(&dest).is_some_and(|c| c.sha256 == info.sha256) {
                    return Ok(None);
                }
                // Same name, other bytes: replace atomically (apt clients holding the old index
                // will see a hash mismatch for this one file until they update).
                tracing::warn!(path = %rel, "pool file changes content under the same name");
                let tmp = dest.with_extension("deb.slipway-new");
                fsutil::link_or_copy(src, &tmp)?;
                std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
                cache.remember(&dest, info);
                return Ok(None);
            }
            fsutil::link_or_copy(src, &dest)?;
            cache.remember(&dest, info);
            Ok(Some(dest))
        })
        .collect::<Result<_, AptError>>()?;
    Ok(placed.into_iter().flatten().collect())
}

/// The pool files the current indices of `out` name (read before they are replaced).
fn indexed_pool_files(out: &Path) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    let Ok(suites) = std::fs::read_dir(out.join("dists")) else {
        return files;
    };
    for suite in suites.filter_map(|e| e.ok()) {
        let Ok(components) = std::fs::read_dir(suite.path()) else {
            continue;
        };
        for component in components.filter_map(|e| e.ok()) {
            let Ok(arches) = std::fs::read_dir(component.path()) else {
                continue;
            };
            for arch in arches.filter_map(|e| e.ok()) {
                if let Ok(text) = std::fs::read_to_string(arch.path().join("Packages")) {
                    files.extend(
                        text.lines()
                            .filter_map(|l| l.strip_prefix("Filename: "))
                            .map(str::to_string),
                    );
                }
            }
        }
    }
    files
}

/// Removes pool files the old indices named and the new ones do not, and folders left empty.
fn prune_pool(
    out: &Path,
    old: &BTreeSet<String>,
    pool: &BTreeMap<String, (&PathBuf, &DebInfo)>,
) -> Result<(), AptError> {
    for rel in old.iter().filter(|r| !pool.contains_key(*r)) {
        if rel.contains("..") || rel.starts_with('/') {
            continue;
        }
        let path = out.join(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(AptError::Io { path, source: e }),
        }
        // Fails (harmlessly) once a folder is not empty.
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != out.join("pool") && d.starts_with(out)) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
    Ok(())
}

/// Writes `root/dists/...`: every index, per-arch Release, by-hash copies, top-level Release.
fn write_dists(
    dist: &Distribution,
    pool: &BTreeMap<String, (&PathBuf, &DebInfo)>,
    suites: &BTreeMap<(String, String), BTreeSet<String>>,
    root: &Path,
    date: i64,
) -> Result<(), AptError> {
    // Every (codename, component, arch) index, built in parallel; identical contents are
    // compressed once.
    let mut jobs = Vec::new();
    for codename in &dist.codenames {
        for component in &dist.components {
            for arch in &dist.architectures {
                jobs.push((codename, component, arch));
            }
        }
    }
    // Each package's stanza once, whatever number of suites and architectures list it.
    let stanzas: BTreeMap<&String, String> = pool
        .par_iter()
        .map(|(path, (_, info))| (path, package_stanza(info, path).to_text()))
        .collect();
    let texts: Vec<String> = jobs
        .par_iter()
        .map(|(codename, component, arch)| {
            let empty = BTreeSet::new();
            let members = suites
                .get(&((*codename).clone(), (*component).clone()))
                .unwrap_or(&empty);
            packages_index(pool, &stanzas, members, arch)
        })
        .collect();
    let unique: BTreeSet<&String> = texts.iter().collect();
    let compressed: BTreeMap<&String, (Vec<u8>, Vec<u8>)> = unique
        .into_par_iter()
        .map(|t| {
            let (gz, xz) = rayon::join(|| gzip(t.as_bytes()), || xz(t.as_bytes()));
            Ok((t, (gz?, xz?)))
        })
        .collect::<Result<_, AptError>>()?;

    for ((codename, component, arch), text) in jobs.iter().zip(&texts) {
        let dir = root
            .join("dists")
            .join(codename)
            .join(component)
            .join(format!("binary-{arch}"));
        let (gz, xz) = &compressed[text];
        let release = arch_release(dist, codename, component, arch);
        for (name, bytes) in [
            ("Packages", text.as_bytes()),
            ("Packages.gz", gz),
            ("Packages.xz", xz),
            ("Release", release.as_bytes()),
        ] {
            fsutil::write(&dir.join(name), bytes)?;
        }
        for bytes in [text.as_bytes(), gz.as_slice(), xz.as_slice()] {
            let hash = hex::encode(Sha256::digest(bytes));
            fsutil::write(&dir.join("by-hash/SHA256").join(hash), bytes)?;
        }
    }
    for codename in &dist.codenames {
        let dir = root.join("dists").join(codename);
        let release = top_release(dist, codename, &dir, date)?;
        fsutil::write(&dir.join("Release"), release.as_bytes())?;
    }
    Ok(())
}

fn packages_index(
    pool: &BTreeMap<String, (&PathBuf, &DebInfo)>,
    stanzas: &BTreeMap<&String, String>,
    members: &BTreeSet<String>,
    arch: &str,
) -> String {
    let mut entries: Vec<(&String, &DebInfo)> = members
        .iter()
        .filter_map(|p| pool.get(p).map(|(_, info)| (p, *info)))
        .filter(|(_, info)| info.architecture == arch || info.architecture == "all")
        .collect();
    entries.sort_by(|(pa, a), (pb, b)| {
        a.package
            .cmp(&b.package)
            .then_with(|| version::compare(&a.version, &b.version))
            .then_with(|| a.architecture.cmp(&b.architecture))
            .then_with(|| pa.cmp(pb))
    });
    let mut out = String::new();
    for (pool_path, _) in entries {
        if let Some(text) = stanzas.get(pool_path) {
            out.push_str(text);
            out.push('\n');
        }
    }
    out
}

/// The package's control fields plus where and what the file is; `Description` stays last.
pub fn package_stanza(info: &DebInfo, pool_path: &str) -> Stanza {
    let mut s = info.stanza();
    let description = s.remove("Description");
    for f in ["Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512"] {
        s.remove(f);
    }
    s.set("Filename", pool_path);
    s.set("Size", info.size.to_string());
    s.set("SHA256", info.sha256.clone());
    if let Some(d) = description {
        s.set("Description", d);
    }
    s
}

fn arch_release(dist: &Distribution, codename: &str, component: &str, arch: &str) -> String {
    let mut s = Stanza::new();
    if let Some(v) = dist.suites.get(codename) {
        s.set("Archive", v);
    }
    if let Some(v) = &dist.origin {
        s.set("Origin", v);
    }
    if let Some(v) = &dist.label {
        s.set("Label", v);
    }
    s.set("Component", component);
    s.set("Architecture", arch);
    s.to_text()
}

pub fn rfc2822(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

fn top_release(
    dist: &Distribution,
    codename: &str,
    dir: &Path,
    date: i64,
) -> Result<String, AptError> {
    let mut s = Stanza::new();
    for (k, v) in [
        ("Origin", dist.origin.as_ref()),
        ("Label", dist.label.as_ref()),
        ("Suite", dist.suites.get(codename)),
        ("Version", dist.version.as_ref()),
    ] {
        if let Some(v) = v {
            s.set(k, v);
        }
    }
    s.set("Codename", codename);
    s.set("Date", rfc2822(date));
    if let Some(valid) = dist.valid_for {
        s.set("Valid-Until", rfc2822(date + valid.as_secs() as i64));
    }
    s.set("Acquire-By-Hash", "yes");
    s.set("Architectures", dist.architectures.join(" "));
    s.set("Components", dist.components.join(" "));
    if let Some(v) = &dist.description {
        s.set("Description", v);
    }
    // Every index under dists/<codename>/ except the suite files and the by-hash copies.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| AptError::Io {
            path: dir.to_path_buf(),
            source: e.into(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(dir)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        if ["Release", "Release.gpg", "InRelease"].contains(&rel.as_str())
            || rel.contains("/by-hash/")
        {
            continue;
        }
        files.push((
            rel,
            std::fs::read(entry.path()).map_err(io_err(entry.path()))?,
        ));
    }
    let width = files
        .iter()
        .map(|(_, b)| b.len().to_string().len())
        .max()
        .unwrap_or(1);
    let mut md5 = String::new();
    let mut sha = String::new();
    for (rel, bytes) in &files {
        md5.push_str(&format!(
            "\n {} {:>width$} {rel}",
            hex::encode(Md5::digest(bytes)),
            bytes.len()
        ));
        sha.push_str(&format!(
            "\n {} {:>width$} {rel}",
            hex::encode(Sha256::digest(bytes)),
            bytes.len()
        ));
    }
    s.set("MD5Sum", md5);
    s.set("SHA256", sha);
    Ok(s.to_text())
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, AptError> {
    // No file name and a zero mtime in the header: the same input gives the same bytes.
    let mut e = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    e.write_all(data)
        .and_then(|_| e.finish())
        .map_err(io_err("Packages.gz"))
}

/// xz in independent 256 KiB blocks, compressed on every core; the output depends only on
/// the input (block size and preset are fixed), not on the number of threads.
fn xz(data: &[u8]) -> Result<Vec<u8>, AptError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let stream = xz2::stream::MtStreamBuilder::new()
        .preset(0)
        .threads(threads)
        .block_size(256 * 1024)
        .check(xz2::stream::Check::Crc64)
        .encoder()
        .map_err(|e| AptError::Invalid(format!("xz: {e}")))?;
    let mut e = xz2::write::XzEncoder::new_stream(Vec::new(), stream);
    e.write_all(data)
        .and_then(|_| e.finish())
        .map_err(io_err("Packages.xz"))
}
