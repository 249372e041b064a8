//! OpenPGP keys for repository signing: generation, loading (armored or binary, several keys in
//! one file), and the policy apt enforces: v4 keys, Ed25519/ECDSA or RSA >= 3072, no DSA.

use std::io::Cursor;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use pgp::composed::{
    ArmorOptions, Deserializable, EncryptionCaps, KeyType, SecretKeyParamsBuilder, SignedPublicKey,
    SignedSecretKey,
};
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, KeyVersion, PublicParams};
use rsa::traits::PublicKeyParts;

use crate::error::{AptError, io_err};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Ed25519,
    Rsa(u32),
}

impl std::str::FromStr for KeyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ed25519" => Ok(KeyKind::Ed25519),
            "rsa3072" => Ok(KeyKind::Rsa(3072)),
            "rsa4096" => Ok(KeyKind::Rsa(4096)),
            other => Err(format!(
                "unknown key type '{other}' (use ed25519, rsa3072, rsa4096)"
            )),
        }
    }
}

/// A new v4 signing key: one primary key that certifies and signs (apt needs nothing more).
pub fn generate(user_id: &str, kind: KeyKind) -> Result<SignedSecretKey, AptError> {
    let key_type = match kind {
        KeyKind::Ed25519 => KeyType::Ed25519Legacy,
        KeyKind::Rsa(bits) if bits >= 3072 => KeyType::Rsa(bits),
        KeyKind::Rsa(bits) => {
            return Err(AptError::Sign(format!(
                "RSA-{bits} is too weak for apt; use 3072 or more"
            )));
        }
    };
    let mut params = SecretKeyParamsBuilder::default();
    params
        .key_type(key_type)
        .can_certify(true)
        .can_sign(true)
        .can_encrypt(EncryptionCaps::None)
        .primary_user_id(user_id.into());
    let params = params
        .build()
        .map_err(|e| AptError::Sign(format!("key parameters: {e}")))?;
    let key = params
        .generate(rand::thread_rng())
        .map_err(|e| AptError::Sign(format!("key generation failed: {e}")))?;
    check_key(&key.to_public_key())?;
    Ok(key)
}

/// The primary key's fingerprint, as gpg prints it (hex).
pub fn fingerprint(key: &SignedSecretKey) -> String {
    key.to_public_key().fingerprint().to_string()
}

/// Writes `signing-key.asc` (armored secret key, 0600), `keyring.gpg` (binary public keyring,
/// for apt's `signed-by`) and `keyring.asc` (the same, armored) into `dir`.
pub fn write_key_files(dir: &Path, key: &SignedSecretKey) -> Result<(), AptError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let secret = key
        .to_armored_bytes(ArmorOptions::default())
        .map_err(|e| AptError::Sign(format!("cannot armor the key: {e}")))?;
    let path = dir.join("signing-key.asc");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(&path))?;
    std::io::Write::write_all(&mut f, &secret).map_err(io_err(&path))?;
    let public = key.to_public_key();
    let mut binary = Vec::new();
    public
        .to_writer(&mut binary)
        .map_err(|e| AptError::Sign(format!("cannot write the keyring: {e}")))?;
    crate::fsutil::write(&dir.join("keyring.gpg"), &binary)?;
    let armored = public
        .to_armored_bytes(ArmorOptions::default())
        .map_err(|e| AptError::Sign(format!("cannot armor the keyring: {e}")))?;
    crate::fsutil::write(&dir.join("keyring.asc"), &armored)
}

/// Every secret key in `bytes` (armored or binary). Errors never include key material.
pub fn load_secret_keys(bytes: &[u8], what: &str) -> Result<Vec<SignedSecretKey>, AptError> {
    let (iter, _) = SignedSecretKey::from_reader_many(Cursor::new(bytes))
        .map_err(|_| AptError::Sign(format!("{what} is not an OpenPGP secret key")))?;
    let keys: Vec<SignedSecretKey> = iter
        .collect::<Result<_, _>>()
        .map_err(|_| AptError::Sign(format!("{what} is not an OpenPGP secret key")))?;
    if keys.is_empty() {
        return Err(AptError::Sign(format!("{what} holds no secret key")));
    }
    for k in &keys {
        check_key(&k.to_public_key()).map_err(|e| AptError::Sign(format!("{what}: {e}")))?;
    }
    Ok(keys)
}

/// Every public key in a keyring (armored or binary).
pub fn load_public_keys(bytes: &[u8], what: &str) -> Result<Vec<SignedPublicKey>, AptError> {
    let (iter, _) = SignedPublicKey::from_reader_many(Cursor::new(bytes))
        .map_err(|e| AptError::Sign(format!("{what} is not an OpenPGP keyring: {e}")))?;
    let keys: Vec<SignedPublicKey> = iter
        .collect::<Result<_, _>>()
        .map_err(|e| AptError::Sign(format!("{what} is not an OpenPGP keyring: {e}")))?;
    if keys.is_empty() {
        return Err(AptError::Sign(format!("{what} holds no public key")));
    }
    Ok(keys)
}

/// apt 3 (sqv) rejects DSA, weak RSA and SHA-1; older gpgv cannot read v6 keys.
pub fn check_key(key: &SignedPublicKey) -> Result<(), AptError> {
    let fp = key.fingerprint();
    if key.version() != KeyVersion::V4 {
        return Err(AptError::Sign(format!(
            "key {fp} is not a v4 key; older gpgv cannot read it"
        )));
    }
    match (key.algorithm(), key.public_params()) {
        (PublicKeyAlgorithm::DSA, _) => Err(AptError::Sign(format!(
            "key {fp} is DSA, which apt rejects"
        ))),
        (_, PublicParams::RSA(p)) if p.key.size() * 8 < 3072 => Err(AptError::Sign(format!(
            "key {fp} is RSA-{}; apt needs RSA >= 3072 or Ed25519",
            p.key.size() * 8
        ))),
        (
            PublicKeyAlgorithm::RSA
            | PublicKeyAlgorithm::EdDSALegacy
            | PublicKeyAlgorithm::Ed25519
            | PublicKeyAlgorithm::ECDSA,
            _,
        ) => Ok(()),
        (other, _) => Err(AptError::Sign(format!(
            "key {fp} uses {other:?}, which cannot sign a repository"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate("Test <t@example.org>", KeyKind::Ed25519).unwrap();
        write_key_files(dir.path(), &key).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("signing-key.asc"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let secret = std::fs::read(dir.path().join("signing-key.asc")).unwrap();
        assert_eq!(load_secret_keys(&secret, "key").unwrap().len(), 1);
        for f in ["keyring.gpg", "keyring.asc"] {
            let keys = load_public_keys(&std::fs::read(dir.path().join(f)).unwrap(), f).unwrap();
            assert_eq!(keys[0].fingerprint(), key.fingerprint());
        }
        assert!(load_secret_keys(b"garbage", "key").is_err());
        assert!(generate("x", KeyKind::Rsa(2048)).is_err());
    }
}
