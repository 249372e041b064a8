//! Checking a repository the way apt will: signatures (against a keyring), every size and hash
//! a Release lists, by-hash copies, every package file a Packages index names, and that nothing
//! in `pool/` is unreferenced. All problems are reported at once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use md5::Md5;
use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::Signature;
use pgp::types::KeyDetails;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::control::{Stanza, parse_all};
use crate::error::AptError;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SuiteReport {
    pub codename: String,
    /// The Release's `Suite`, if any.
    pub suite: Option<String>,
    /// Fingerprints of keys whose signatures verified (InRelease and Release.gpg).
    pub signed_by: Vec<String>,
    pub inrelease: bool,
    pub release_gpg: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    pub suites: Vec<SuiteReport>,
    pub indices: usize,
    pub packages: usize,
    pub pool_files: usize,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct VerifyOptions {
    /// Check a published tree as apt clients see it: the signed InRelease is the authority
    /// (Release and Release.gpg are only checked without one), indices are checked through
    /// their by-hash copies when the suite has Acquire-By-Hash (the canonical names may be
    /// mid-update while a publish runs), and pool files no index names are accepted (buckets
    /// keep earlier releases' packages for clients with older indices, and for rollbacks).
    pub published: bool,
}

/// Verifies `repo`. With a keyring every suite must carry a good signature from one of its keys
/// in both InRelease and Release.gpg; without one, signatures are only checked for form.
pub fn verify_repo(
    repo: &Path,
    keyring: Option<&[SignedPublicKey]>,
    now: i64,
) -> Result<VerifyReport, AptError> {
    verify_repo_with(repo, keyring, now, VerifyOptions::default())
}

pub fn verify_repo_with(
    repo: &Path,
    keyring: Option<&[SignedPublicKey]>,
    now: i64,
    opts: VerifyOptions,
) -> Result<VerifyReport, AptError> {
    let mut problems: Vec<String> = Vec::new();
    let mut report = VerifyReport::default();
    let dists = repo.join("dists");
    let mut suites: Vec<String> = match std::fs::read_dir(&dists) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("Release").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => return Err(fail(repo, format!("no dists/ folder: {e}"))),
    };
    suites.sort();
    if suites.is_empty() {
        return Err(fail(repo, "no dists/*/Release".into()));
    }
    let mut referenced: BTreeMap<String, (u64, String)> = BTreeMap::new();
    for codename in &suites {
        let dir = dists.join(codename);
        let (suite, refs) = verify_suite(
            repo,
            &dir,
            codename,
            keyring,
            now,
            opts,
            &mut problems,
            &mut report,
        );
        report.suites.push(suite);
        for (path, entry) in refs {
            if let Some(prev) = referenced.get(&path) {
                if prev != &entry {
                    problems.push(format!(
                        "{path}: listed with different sizes or hashes in two suites"
                    ));
                }
            }
            referenced.insert(path, entry);
        }
    }
    report.packages = referenced.len();
    check_distinct_suites(&report, &mut problems);

    // Package files: exist, match their size and hash (hashed in parallel).
    let bad: Vec<String> = referenced
        .par_iter()
        .filter_map(|(path, (size, sha))| {
            let full = repo.join(path);
            match hash_file(&full) {
                Ok((actual_size, actual_sha)) if actual_size == *size && actual_sha == *sha => None,
                Ok((actual_size, _)) if actual_size != *size => {
                    Some(format!("{path}: size {actual_size}, Packages says {size}"))
                }
                Ok(_) => Some(format!("{path}: sha256 does not match Packages")),
                Err(e) => Some(format!("{path}: {e}")),
            }
        })
        .collect();
    problems.extend(bad);

    // Nothing in pool/ that no index names.
    let pool = repo.join("pool");
    if pool.is_dir() {
        for entry in walkdir::WalkDir::new(&pool)
            .sort_by_file_name()
            .into_iter()
            .filter_map(|e| e.ok())
        {
            if !entry.file_type().is_file() {
                continue;
            }
            report.pool_files += 1;
            let rel = entry
                .path()
                .strip_prefix(repo)
                .unwrap_or(entry.path())
                .to_string_lossy()
                .into_owned();
            if !referenced.contains_key(&rel) && !opts.published {
                problems.push(format!("{rel}: in the pool but not in any Packages index"));
            }
        }
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(fail(repo, summarize(problems)))
    }
}

/// Checks what signing produced, without reading indices or the pool (the repository was
/// verified when it was built): for every `dists/*/Release`, the fields a client checks, that
/// InRelease and Release.gpg both carry a good signature from every key of `keyring`, and that
/// InRelease's signed text is the Release file byte for byte. Costs the Release files only.
pub fn verify_signatures(
    repo: &Path,
    keyring: &[SignedPublicKey],
    now: i64,
) -> Result<VerifyReport, AptError> {
    let releases = crate::sign::release_files(repo)?;
    let mut problems: Vec<String> = Vec::new();
    let mut report = VerifyReport::default();
    let wanted: BTreeSet<String> = keyring
        .iter()
        .map(|k| k.fingerprint().to_string())
        .collect();
    let rel = |p: &Path| p.strip_prefix(repo).unwrap_or(p).display().to_string();
    for release_path in &releases {
        let dir = release_path.parent().unwrap_or(repo);
        let here = rel(release_path);
        let mut suite = SuiteReport {
            codename: dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            ..Default::default()
        };
        let text = match std::fs::read_to_string(release_path) {
            Ok(t) => t,
            Err(e) => {
                problems.push(format!("{here}: cannot read: {e}"));
                continue;
            }
        };
        match Stanza::parse(&text) {
            Ok(release) => {
                check_release_fields(&release, &here, now, &mut problems);
                suite.suite = release.get("Suite").map(str::to_string);
                report.indices += checksums(release.get("SHA256")).len();
            }
            Err(e) => problems.push(format!("{here}: {e}")),
        }
        let signers = check_signatures(
            dir,
            &text,
            Some(keyring),
            &here,
            false,
            &mut suite,
            &mut problems,
            &rel,
        );
        for (file, present, good) in [
            ("InRelease", suite.inrelease, &signers.inrelease),
            ("Release.gpg", suite.release_gpg, &signers.release_gpg),
        ] {
            let name = rel(&dir.join(file));
            if !present {
                problems.push(format!("{name}: missing"));
                continue;
            }
            let good: BTreeSet<&String> = good.iter().collect();
            for fpr in &wanted {
                if !good.is_empty() && !good.contains(fpr) {
                    problems.push(format!("{name}: no good signature by key {fpr}"));
                }
            }
        }
        // Byte for byte: what a client reads from InRelease is exactly the Release file.
        if let Ok(inrelease) = std::fs::read_to_string(dir.join("InRelease")) {
            if let Ok((msg, _)) = CleartextSignedMessage::from_string(&inrelease) {
                if cleartext_content(&msg) != text {
                    problems.push(format!(
                        "{}: its signed text is not {here} byte for byte",
                        rel(&dir.join("InRelease"))
                    ));
                }
            }
        }
        report.suites.push(suite);
    }
    check_distinct_suites(&report, &mut problems);
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(fail(repo, summarize(problems)))
    }
}

/// The content of a clearsigned message as a client reads it: dash escapes removed, nothing
/// else changed.
fn cleartext_content(msg: &CleartextSignedMessage) -> String {
    msg.text()
        .split_inclusive('\n')
        .map(|l| l.strip_prefix("- ").unwrap_or(l))
        .collect()
}

/// Problems joined for one error: the first 20, then how many more.
fn summarize(problems: Vec<String>) -> String {
    const SHOWN: usize = 20;
    let more = problems.len().saturating_sub(SHOWN);
    let mut text = problems
        .into_iter()
        .take(SHOWN)
        .collect::<Vec<_>>()
        .join("; ");
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    text
}

fn fail(repo: &Path, reason: String) -> AptError {
    AptError::Verify {
        path: repo.display().to_string(),
        reason,
    }
}

/// Size and SHA256 of a file, read once (Packages lists SHA256 for every pool file; nothing here
/// needs another digest).
fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(path)?;
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(sha.finalize())))
}

/// Checksum lines of a Release field: (path, size, hash).
fn checksums(field: Option<&str>) -> Vec<(String, u64, String)> {
    field
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let hash = parts.next()?.to_string();
            let size = parts.next()?.parse().ok()?;
            let path = parts.next()?.to_string();
            Some((path, size, hash))
        })
        .collect()
}

fn parse_date(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc2822(s.trim().replace(" UTC", " +0000").as_str())
        .ok()
        .map(|d| d.timestamp())
}

/// The fields of a Release a client checks: present, dated, not from the future, not expired.
fn check_release_fields(release: &Stanza, here: &str, now: i64, problems: &mut Vec<String>) {
    for field in ["Architectures", "Components", "Date", "SHA256"] {
        if release.get(field).is_none() {
            problems.push(format!("{here}: no {field} field"));
        }
    }
    if release.get("Codename").is_none() && release.get("Suite").is_none() {
        problems.push(format!("{here}: neither Codename nor Suite"));
    }
    match release.get("Date").map(|d| (d, parse_date(d))) {
        Some((d, None)) => problems.push(format!("{here}: Date '{d}' is not RFC 2822")),
        Some((d, Some(t))) if t > now + 60 => problems.push(format!(
            "{here}: Date '{d}' is in the future; apt says 'not valid yet'"
        )),
        _ => {}
    }
    if let Some(v) = release.get("Valid-Until") {
        match parse_date(v) {
            Some(t) if t < now => problems.push(format!("{here}: expired (Valid-Until {v})")),
            None => problems.push(format!("{here}: Valid-Until '{v}' is not RFC 2822")),
            _ => {}
        }
    }
}

/// Two codenames with one `Suite` are ambiguous: debmirror cannot link `dists/<suite>` to both
/// and an apt pin on `a=<suite>` matches both.
fn check_distinct_suites(report: &VerifyReport, problems: &mut Vec<String>) {
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &report.suites {
        let Some(suite) = s.suite.as_deref() else {
            continue;
        };
        if let Some(other) = owner.insert(suite, &s.codename) {
            problems.push(format!(
                "dists/{other} and dists/{} both have Suite '{suite}'; each suite names one codename",
                s.codename
            ));
        }
    }
}

type Refs = Vec<(String, (u64, String))>;

#[allow(clippy::too_many_arguments)]
fn verify_suite(
    repo: &Path,
    dir: &Path,
    codename: &str,
    keyring: Option<&[SignedPublicKey]>,
    now: i64,
    opts: VerifyOptions,
    problems: &mut Vec<String>,
    report: &mut VerifyReport,
) -> (SuiteReport, Refs) {
    let mut suite = SuiteReport {
        codename: codename.to_string(),
        ..Default::default()
    };
    let mut refs = Vec::new();
    let rel = |p: &Path| p.strip_prefix(repo).unwrap_or(p).display().to_string();
    // As a client: the InRelease's signed text when there is one (published view), else Release.
    let inrelease_view = if opts.published {
        std::fs::read_to_string(dir.join("InRelease"))
            .ok()
            .and_then(|t| CleartextSignedMessage::from_string(&t).ok())
            .map(|(m, _)| {
                format!(
                    "{}\n",
                    m.signed_text().replace("\r\n", "\n").trim_end_matches('\n')
                )
            })
    } else {
        None
    };
    let release_path = if inrelease_view.is_some() {
        dir.join("InRelease")
    } else {
        dir.join("Release")
    };
    let Some(text) = inrelease_view
        .clone()
        .or_else(|| std::fs::read_to_string(&release_path).ok())
    else {
        problems.push(format!("{}: cannot read", rel(&release_path)));
        return (suite, refs);
    };
    let release = match Stanza::parse(&text) {
        Ok(r) => r,
        Err(e) => {
            problems.push(format!("{}: {e}", rel(&release_path)));
            return (suite, refs);
        }
    };
    let here = rel(&release_path);
    check_release_fields(&release, &here, now, problems);
    suite.suite = release.get("Suite").map(str::to_string);

    let _ = check_signatures(
        dir,
        &text,
        keyring,
        &here,
        inrelease_view.is_some(),
        &mut suite,
        problems,
        &rel,
    );

    // Listed indices: sizes and hashes, and by-hash copies.
    let by_hash = release
        .get("Acquire-By-Hash")
        .is_some_and(|v| v.trim() == "yes");
    // Each listed file is read once and checked with the strongest digest listed for it: SHA256
    // (required above); MD5 only for a file the Release lists under MD5Sum alone.
    let listed = checksums(release.get("SHA256"));
    let sha_listed: BTreeSet<String> = listed.iter().map(|(p, _, _)| p.clone()).collect();
    let md5_only: Vec<(String, u64, String)> = checksums(release.get("MD5Sum"))
        .into_iter()
        .filter(|(p, _, _)| !sha_listed.contains(p))
        .collect();
    // The bytes of the indices read below, so the Packages checks do not read them again.
    let mut read: BTreeMap<std::path::PathBuf, Vec<u8>> = BTreeMap::new();
    // Where a client fetches a listed index from.
    let fetched = |path: &str, hash: &str| -> std::path::PathBuf {
        let full = dir.join(path);
        if opts.published && by_hash && !path.ends_with("Release") {
            full.parent()
                .unwrap_or(dir)
                .join("by-hash/SHA256")
                .join(hash)
        } else {
            full
        }
    };
    // Reads one listed index once and checks its size and digest; None when it cannot be read.
    let check = |full: &Path,
                 size: u64,
                 hash: &str,
                 digest: &str,
                 problems: &mut Vec<String>|
     -> Option<Vec<u8>> {
        let Ok(bytes) = std::fs::read(full) else {
            problems.push(format!("{}: listed in {here} but missing", rel(full)));
            return None;
        };
        let actual = match digest {
            "md5" => hex::encode(Md5::digest(&bytes)),
            _ => hex::encode(Sha256::digest(&bytes)),
        };
        if bytes.len() as u64 != size {
            problems.push(format!(
                "{}: size {}, {here} says {size}",
                rel(full),
                bytes.len()
            ));
        } else if actual != hash {
            problems.push(format!("{}: {digest} does not match {here}", rel(full)));
        }
        Some(bytes)
    };
    for (path, size, hash) in &listed {
        if path.contains("..") || path.starts_with('/') {
            problems.push(format!("{here}: lists an unsafe path '{path}'"));
            continue;
        }
        let full = fetched(path, hash);
        report.indices += 1;
        let Some(bytes) = check(&full, *size, hash, "sha256", problems) else {
            continue;
        };
        // apt fetches indices by hash, never the per-architecture Release files. (The published
        // view read the by-hash copy itself above.)
        if by_hash && !path.ends_with("Release") && !opts.published {
            let copy = full
                .parent()
                .unwrap_or(dir)
                .join("by-hash/SHA256")
                .join(hash);
            match std::fs::read(&copy) {
                Ok(b) if b == bytes => {}
                Ok(_) => problems.push(format!("{}: differs from {}", rel(&copy), rel(&full))),
                Err(_) => problems.push(format!("{}: by-hash copy missing", rel(&copy))),
            }
        }
        read.insert(full, bytes);
    }
    for (path, size, hash) in &md5_only {
        if path.contains("..") || path.starts_with('/') {
            problems.push(format!("{here}: lists an unsafe path '{path}'"));
            continue;
        }
        report.indices += 1;
        check(&dir.join(path), *size, hash, "md5", problems);
    }
    let read_once = |p: &Path| -> Option<std::borrow::Cow<'_, [u8]>> {
        match read.get(p) {
            Some(b) => Some(std::borrow::Cow::Borrowed(b.as_slice())),
            None => std::fs::read(p).ok().map(std::borrow::Cow::Owned),
        }
    };

    // Packages indices: compressed variants agree, and every entry is a real pool file.
    let listed_paths: BTreeSet<&str> = listed.iter().map(|(p, _, _)| p.as_str()).collect();
    for path in listed_paths
        .iter()
        .filter(|p| p.ends_with("/Packages") || **p == "Packages")
    {
        let hash = listed
            .iter()
            .find(|(p, _, _)| p == path)
            .map(|(_, _, h)| h.as_str())
            .unwrap_or("");
        let full = fetched(path, hash);
        let Some(plain) = read_once(&full) else {
            continue;
        };
        // Compressed variants are compared under their canonical names, which a publish in
        // progress may be replacing; the published view checked them by hash above.
        let variants: &[&str] = if opts.published { &[] } else { &["gz", "xz"] };
        for ext in variants {
            let Some(bytes) = read_once(&dir.join(format!("{path}.{ext}"))) else {
                continue;
            };
            let decoded = if *ext == "gz" {
                decompress_gz(&bytes)
            } else {
                decompress_xz(&bytes)
            };
            if decoded.as_deref() != Some(&*plain) {
                problems.push(format!(
                    "{}.{ext}: does not decompress to {}",
                    rel(&full),
                    rel(&full)
                ));
            }
        }
        let text = String::from_utf8_lossy(&plain);
        match parse_all(&text) {
            Err(e) => problems.push(format!("{}: {e}", rel(&full))),
            Ok(stanzas) => {
                for s in stanzas {
                    let name = s.get("Package").unwrap_or("?");
                    let (Some(file), Some(size), Some(sha)) = (
                        s.get("Filename"),
                        s.get("Size").and_then(|v| v.parse().ok()),
                        s.get("SHA256"),
                    ) else {
                        problems.push(format!(
                            "{}: package {name} lacks Filename, Size or SHA256",
                            rel(&full)
                        ));
                        continue;
                    };
                    if file.contains("..") || file.starts_with('/') {
                        problems.push(format!(
                            "{}: package {name} has an unsafe Filename",
                            rel(&full)
                        ));
                        continue;
                    }
                    refs.push((file.to_string(), (size, sha.to_string())));
                }
            }
        }
    }
    (suite, refs)
}

fn decompress_gz(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .ok()
        .map(|_| out)
}

fn decompress_xz(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    xz2::read::XzDecoder::new(b)
        .read_to_end(&mut out)
        .ok()
        .map(|_| out)
}

fn good_signer(sig: &Signature, data: &[u8], keyring: &[SignedPublicKey]) -> Option<String> {
    if matches!(
        sig.hash_alg(),
        Some(HashAlgorithm::Sha1 | HashAlgorithm::Md5) | None
    ) {
        return None;
    }
    for key in keyring {
        if sig.verify(&key.primary_key, data).is_ok() {
            return Some(key.fingerprint().to_string());
        }
        for sub in &key.public_subkeys {
            if sig.verify(&sub.key, data).is_ok() {
                return Some(key.fingerprint().to_string());
            }
        }
    }
    None
}

#[allow(clippy::too_many_arguments)]
fn check_signatures(
    dir: &Path,
    release_text: &str,
    keyring: Option<&[SignedPublicKey]>,
    here: &str,
    inrelease_only: bool,
    suite: &mut SuiteReport,
    problems: &mut Vec<String>,
    rel: &dyn Fn(&Path) -> String,
) -> Signers {
    let mut signers = Signers::default();
    let inrelease_path = dir.join("InRelease");
    if let Ok(text) = std::fs::read_to_string(&inrelease_path) {
        suite.inrelease = true;
        let name = rel(&inrelease_path);
        if !text.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\n") {
            problems.push(format!(
                "{name}: must start with '-----BEGIN PGP SIGNED MESSAGE-----'"
            ));
        }
        if !text
            .trim_end_matches('\n')
            .ends_with("-----END PGP SIGNATURE-----")
        {
            problems.push(format!("{name}: has data after the signature"));
        }
        match CleartextSignedMessage::from_string(&text) {
            Err(e) => problems.push(format!("{name}: not a clearsigned message: {e}")),
            Ok((msg, _)) => {
                let expected = release_text
                    .replace("\r\n", "\n")
                    .trim_end_matches('\n')
                    .replace('\n', "\r\n");
                if msg.signed_text().trim_end_matches("\r\n") != expected {
                    problems.push(format!("{name}: its text differs from {here}"));
                }
                if let Some(keys) = keyring {
                    let signed = msg.signed_text();
                    let good: Vec<String> = msg
                        .signatures()
                        .iter()
                        .filter_map(|s| good_signer(s, signed.as_bytes(), keys))
                        .collect();
                    if good.is_empty() {
                        problems.push(format!("{name}: no good signature from the keyring"));
                    }
                    suite.signed_by.extend(good.iter().cloned());
                    signers.inrelease = good;
                }
            }
        }
    }
    let gpg_path = dir.join("Release.gpg");
    let release_gpg = if inrelease_only {
        None
    } else {
        std::fs::read(&gpg_path).ok()
    };
    if let Some(bytes) = release_gpg {
        suite.release_gpg = true;
        let name = rel(&gpg_path);
        if !bytes.starts_with(b"-----BEGIN PGP SIGNATURE-----") {
            problems.push(format!(
                "{name}: must be ASCII-armored (apt rejects binary signatures)"
            ));
        }
        let parsed = DetachedSignature::from_reader_many(std::io::Cursor::new(&bytes))
            .and_then(|(iter, _)| iter.collect::<Result<Vec<_>, _>>());
        match parsed {
            Err(e) => problems.push(format!("{name}: not a signature: {e}")),
            Ok(sigs) => {
                if let Some(keys) = keyring {
                    let good: Vec<String> = sigs
                        .iter()
                        .filter_map(|s| good_signer(&s.signature, release_text.as_bytes(), keys))
                        .collect();
                    if good.is_empty() {
                        problems.push(format!("{name}: no good signature from the keyring"));
                    }
                    suite.signed_by.extend(good.iter().cloned());
                    signers.release_gpg = good;
                }
            }
        }
    }
    suite.signed_by.sort();
    suite.signed_by.dedup();
    if keyring.is_some() && !suite.inrelease && !suite.release_gpg {
        problems.push(format!("{here}: not signed (no InRelease or Release.gpg)"));
    }
    signers
}

/// Fingerprints of the keys whose signatures verified, per signature file.
#[derive(Default)]
struct Signers {
    inrelease: Vec<String>,
    release_gpg: Vec<String>,
}
