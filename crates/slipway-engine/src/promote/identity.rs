//! The apt identity of production suites: Origin, Label and Codename must not change on a URL
//! clients already use.

use std::collections::BTreeMap;

use bytes::Bytes;
use slipway_publish::{Bucket, ObjectEntry, join};

use super::{PromoteError, refused};

/// The apt identity fields clients pin: changing them on a URL breaks `apt update`.
fn apt_identity(release_text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in release_text.lines() {
        for field in ["Origin", "Label", "Codename"] {
            if let Some(v) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
                out.insert(field.to_string(), v.trim().to_string());
            }
        }
        if line.starts_with("-----BEGIN PGP SIGNATURE") {
            break;
        }
    }
    out
}

/// Refuses when a production suite's Origin, Label or Codename would change.
pub(crate) async fn check_apt_identity(
    files: &BTreeMap<String, std::path::PathBuf>,
    staging: &Bucket,
    prod: &Bucket,
    prefix: &str,
    objects: &[ObjectEntry],
) -> Result<(), PromoteError> {
    for o in objects
        .iter()
        .filter(|o| o.path.starts_with("dists/") && o.path.matches('/').count() == 2)
    {
        if !(o.path.ends_with("/InRelease") || o.path.ends_with("/Release")) {
            continue;
        }
        let key = join(prefix, &o.path);
        let Some(current) = prod.get(&key).await? else {
            continue;
        };
        let next = match files.get(&o.path).and_then(|p| std::fs::read(p).ok()) {
            Some(b) => Bytes::from(b),
            None => match staging.get(&key).await? {
                Some(b) => b,
                None => continue,
            },
        };
        let (cur, new) = (
            apt_identity(&String::from_utf8_lossy(&current)),
            apt_identity(&String::from_utf8_lossy(&next)),
        );
        for (field, value) in &cur {
            if new.get(field).is_some_and(|n| n != value) {
                return Err(refused(format!(
                    "{}/{key}: {field} would change from '{value}' to '{}'; apt clients of the production URL refuse that",
                    prod.name, new[field]
                )));
            }
        }
    }
    Ok(())
}
