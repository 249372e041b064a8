//! Signing `dists/*/Release` into `InRelease` (clearsigned) and `Release.gpg` (ASCII-armored,
//! detached), with one signature per key so keys can be rotated.

use std::path::{Path, PathBuf};

use pgp::armor::BlockType;
use pgp::composed::{ArmorOptions, CleartextSignedMessage, SignedSecretKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{
    PacketTrait, Signature, SignatureConfig, SignatureType, Subpacket, SubpacketData,
};
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, SigningKey, Timestamp};

use crate::error::{AptError, io_err};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Sha256,
    Sha512,
}

impl Digest {
    fn alg(self) -> HashAlgorithm {
        match self {
            Digest::Sha256 => HashAlgorithm::Sha256,
            Digest::Sha512 => HashAlgorithm::Sha512,
        }
    }
}

/// The `Release` files of a repository: `dists/<codename>/Release`.
pub fn release_files(repo: &Path) -> Result<Vec<PathBuf>, AptError> {
    let dists = repo.join("dists");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dists).map_err(io_err(&dists))? {
        let entry = entry.map_err(io_err(&dists))?;
        let release = entry.path().join("Release");
        if release.is_file() {
            out.push(release);
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(AptError::Invalid(format!(
            "{} has no dists/*/Release to sign",
            repo.display()
        )));
    }
    Ok(out)
}

/// Signs with the key (primary or subkey) of `key` meant for data signatures: the newest
/// subkey bound for signing, else the primary key.
fn sign_with(
    key: &SignedSecretKey,
    typ: SignatureType,
    digest: Digest,
    created: Timestamp,
    data: &[u8],
) -> Result<Signature, AptError> {
    let sub = key
        .secret_subkeys
        .iter()
        .filter(|s| s.signatures.iter().any(|sig| sig.key_flags().sign()))
        .max_by_key(|s| s.key.created_at());
    match sub {
        Some(s) => signature(&s.key, typ, digest, created, data),
        None => signature(&key.primary_key, typ, digest, created, data),
    }
}

fn signature<K: SigningKey>(
    key: &K,
    typ: SignatureType,
    digest: Digest,
    created: Timestamp,
    data: &[u8],
) -> Result<Signature, AptError> {
    let err = |e: pgp::errors::Error| {
        AptError::Sign(format!("cannot sign with key {}: {e}", key.fingerprint()))
    };
    let mut config = SignatureConfig::v4(typ, key.algorithm(), digest.alg());
    config.hashed_subpackets = vec![
        Subpacket::regular(SubpacketData::SignatureCreationTime(created)).map_err(err)?,
        Subpacket::regular(SubpacketData::IssuerFingerprint(key.fingerprint())).map_err(err)?,
    ];
    config.unhashed_subpackets =
        vec![Subpacket::regular(SubpacketData::IssuerKeyId(key.legacy_key_id())).map_err(err)?];
    config.sign(key, &Password::empty(), data).map_err(err)
}

struct Packets(Vec<Signature>);

impl Serialize for Packets {
    fn to_writer<W: std::io::Write>(&self, w: &mut W) -> pgp::errors::Result<()> {
        for s in &self.0 {
            s.to_writer_with_header(w)?;
        }
        Ok(())
    }
    fn write_len(&self) -> usize {
        self.0.iter().map(|s| s.write_len_with_header()).sum()
    }
}

/// The signature creation time: `at` (e.g. `SOURCE_DATE_EPOCH`) so the same Release and keys
/// give the same signatures (Ed25519 and RSA PKCS#1 v1.5 are deterministic), but never before
/// a key's own creation, which verifiers reject; now when `at` is not given.
pub fn signing_time(keys: &[SignedSecretKey], at: Option<i64>) -> Timestamp {
    let Some(at) = at else {
        return Timestamp::now();
    };
    let newest_key = keys
        .iter()
        .map(|k| k.primary_key.created_at().as_secs() as i64)
        .max()
        .unwrap_or(0);
    Timestamp::from_secs(at.max(newest_key).clamp(0, u32::MAX as i64) as u32)
}

/// Clearsigned and detached signatures of `text` by every key, made at `created`.
pub fn sign_release(
    text: &str,
    keys: &[SignedSecretKey],
    digest: Digest,
    created: Timestamp,
) -> Result<(String, String), AptError> {
    if keys.is_empty() {
        return Err(AptError::Sign("no signing key".into()));
    }
    let inrelease = CleartextSignedMessage::new_many(text, |normalized| {
        keys.iter()
            .map(|k| {
                sign_with(
                    k,
                    SignatureType::Text,
                    digest,
                    created,
                    normalized.as_bytes(),
                )
                .map_err(|e| pgp::errors::Error::Message {
                    message: e.to_string(),
                    backtrace: None,
                })
            })
            .collect()
    })
    .and_then(|m| m.to_armored_string(ArmorOptions::default()))
    .map_err(|e| AptError::Sign(format!("InRelease: {e}")))?;
    let detached = keys
        .iter()
        .map(|k| sign_with(k, SignatureType::Binary, digest, created, text.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut armored = Vec::new();
    pgp::armor::write(
        &Packets(detached),
        BlockType::Signature,
        &mut armored,
        None,
        true,
    )
    .map_err(|e| AptError::Sign(format!("Release.gpg: {e}")))?;
    let armored =
        String::from_utf8(armored).map_err(|_| AptError::Sign("Release.gpg is not text".into()))?;
    Ok((inrelease, armored))
}

/// Signs every `dists/*/Release` of `repo` in place; returns the Release files signed.
/// `at` fixes the signature time (see [`signing_time`]); `None` signs at the current time.
pub fn sign_repo(
    repo: &Path,
    keys: &[SignedSecretKey],
    digest: Digest,
    at: Option<i64>,
) -> Result<Vec<PathBuf>, AptError> {
    let created = signing_time(keys, at);
    let releases = release_files(repo)?;
    for release in &releases {
        let text = std::fs::read_to_string(release).map_err(io_err(release))?;
        let (inrelease, detached) = sign_release(&text, keys, digest, created)?;
        let dir = release.parent().unwrap_or(repo);
        // Release.gpg before InRelease: a reader of this tree never sees a new InRelease
        // without its companion (the publish order repeats this in buckets).
        crate::fsutil::write(&dir.join("Release.gpg"), detached.as_bytes())?;
        crate::fsutil::write(&dir.join("InRelease"), inrelease.as_bytes())?;
    }
    Ok(releases)
}
