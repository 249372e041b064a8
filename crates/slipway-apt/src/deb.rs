//! Reading a .deb: the `ar` container, `control.tar.{gz,xz,zst}` (or plain), and its `control`
//! stanza; the file's sha256 is computed in the same single pass over the bytes.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::control::Stanza;
use crate::version;

/// Largest control member accepted; real ones are a few KiB.
const MAX_CONTROL_TAR: u64 = 64 << 20;
const MAX_CONTROL_FILE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct DebError {
    pub path: PathBuf,
    pub reason: String,
}

/// What a repository needs to know about one .deb.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DebInfo {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// Source package name (the `Source` field without a version, or the package name).
    pub source: String,
    /// The `control` stanza as the package ships it.
    pub control: String,
    pub size: u64,
    pub sha256: String,
}

impl DebInfo {
    pub fn stanza(&self) -> Stanza {
        Stanza::parse(&self.control).unwrap_or_default()
    }

    /// `<package>_<version without epoch>_<arch>.deb`, the name the pool uses.
    pub fn canonical_filename(&self) -> String {
        format!(
            "{}_{}_{}.deb",
            self.package,
            version::without_epoch(&self.version),
            self.architecture
        )
    }
}

struct Hashing<R> {
    inner: R,
    sha256: Sha256,
    count: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha256.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

pub fn read_deb(path: &Path) -> Result<DebInfo, DebError> {
    let err = |reason: String| DebError {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
    let mut r = Hashing {
        inner: BufReader::with_capacity(256 * 1024, file),
        sha256: Sha256::new(),
        count: 0,
    };
    let control = parse_ar(&mut r).map_err(err)?;
    // Hash whatever follows the last member too, so the digest covers the whole file.
    io::copy(&mut r, &mut io::sink()).map_err(|e| err(format!("read error: {e}")))?;

    let stanza = Stanza::parse(&control).map_err(|e| err(format!("control file: {e}")))?;
    let field = |name: &str| -> Result<String, DebError> {
        let v = stanza.get(name).map(str::trim).unwrap_or("");
        if v.is_empty() || v.contains(char::is_whitespace) {
            return Err(err(format!(
                "control file: missing or invalid '{name}' field"
            )));
        }
        Ok(v.to_string())
    };
    let package = field("Package")?;
    let valid_name = package.len() >= 2
        && package.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && package
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if !valid_name {
        return Err(err(format!("invalid package name '{package}'")));
    }
    let version = field("Version")?;
    version::validate(&version).map_err(|e| err(format!("control file: {e}")))?;
    let architecture = field("Architecture")?;
    if !architecture
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(err(format!("invalid architecture '{architecture}'")));
    }
    let source = stanza
        .get("Source")
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or(&package)
        .to_string();
    if source.contains('/') || source.starts_with('.') {
        return Err(err(format!("invalid source name '{source}'")));
    }
    Ok(DebInfo {
        package,
        version,
        architecture,
        source,
        control: stanza.to_text(),
        size: r.count,
        sha256: hex::encode(r.sha256.finalize()),
    })
}

/// Walks the ar members; returns the text of `control`.
fn parse_ar(r: &mut impl Read) -> Result<String, String> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .map_err(|_| "not a .deb: file too short".to_string())?;
    if &magic != b"!<arch>\n" {
        return Err("not a .deb: missing the ar archive header".into());
    }
    let mut index = 0;
    let mut control = None;
    loop {
        let mut header = [0u8; 60];
        match read_full(r, &mut header) {
            Ok(0) => break,
            Ok(60) => {}
            Ok(_) => return Err("truncated ar member header".into()),
            Err(e) => return Err(format!("read error: {e}")),
        }
        if &header[58..60] != b"`\n" {
            return Err("corrupt ar member header".into());
        }
        let name = String::from_utf8_lossy(&header[..16])
            .trim_end()
            .trim_end_matches('/')
            .to_string();
        let size: u64 = String::from_utf8_lossy(&header[48..58])
            .trim()
            .parse()
            .map_err(|_| format!("ar member '{name}' has an invalid size"))?;
        match (index, name.as_str()) {
            (0, "debian-binary") => {
                let mut v = Vec::new();
                r.take(size.min(64))
                    .read_to_end(&mut v)
                    .map_err(|e| format!("read error: {e}"))?;
                skip(r, size.saturating_sub(v.len() as u64))?;
                if !v.starts_with(b"2.") {
                    return Err(format!(
                        "unsupported .deb format version '{}'",
                        String::from_utf8_lossy(&v).trim()
                    ));
                }
            }
            (0, other) => {
                return Err(format!(
                    "first ar member is '{other}', expected 'debian-binary'"
                ));
            }
            (_, n) if n.starts_with("control.tar") => {
                if size > MAX_CONTROL_TAR {
                    return Err(format!(
                        "{n} is {size} bytes, more than a control member can be"
                    ));
                }
                let mut data = Vec::with_capacity(size as usize);
                r.take(size)
                    .read_to_end(&mut data)
                    .map_err(|e| format!("read error: {e}"))?;
                if data.len() as u64 != size {
                    return Err(format!("{n} is truncated"));
                }
                control = Some(control_from_tar(n, &data)?);
            }
            (_, n) if n.starts_with("data.tar") && control.is_none() => {
                return Err("data.tar comes before control.tar".into());
            }
            _ => skip(r, size)?,
        }
        if size % 2 == 1 {
            skip(r, 1)?;
        }
        index += 1;
    }
    control.ok_or_else(|| "no control.tar member".to_string())
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn skip(r: &mut impl Read, n: u64) -> Result<(), String> {
    let copied =
        io::copy(&mut r.take(n), &mut io::sink()).map_err(|e| format!("read error: {e}"))?;
    if copied != n {
        return Err("file is truncated".into());
    }
    Ok(())
}

fn control_from_tar(member: &str, data: &[u8]) -> Result<String, String> {
    let reader: Box<dyn Read + '_> = match member {
        "control.tar" => Box::new(data),
        "control.tar.gz" => Box::new(flate2::read::GzDecoder::new(data)),
        "control.tar.xz" => Box::new(xz2::read::XzDecoder::new(data)),
        "control.tar.zst" => {
            Box::new(zstd::stream::read::Decoder::new(data).map_err(|e| format!("{member}: {e}"))?)
        }
        other => return Err(format!("unsupported control member compression '{other}'")),
    };
    let mut archive = tar::Archive::new(reader.take(MAX_CONTROL_TAR * 4));
    let entries = archive.entries().map_err(|e| format!("{member}: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("{member}: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("{member}: {e}"))?
            .to_string_lossy()
            .into_owned();
        if path.trim_start_matches("./") == "control" {
            if entry.size() > MAX_CONTROL_FILE {
                return Err(format!("{member}: control file is too large"));
            }
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|_| format!("{member}: control file is not UTF-8 text"))?;
            return Ok(text);
        }
    }
    Err(format!("{member} has no control file"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdeb::make_deb;

    #[test]
    fn reads_every_control_compression() {
        let dir = tempfile::tempdir().unwrap();
        for comp in ["gz", "xz", "zst", "none"] {
            let control = "Package: hello\nVersion: 1:2.0-1\nArchitecture: all\nSource: hello-src (2.0-1)\nDescription: hi\n there\n";
            let bytes = make_deb(control, comp, b"payload");
            let p = dir.path().join(format!("h-{comp}.deb"));
            std::fs::write(&p, &bytes).unwrap();
            let info = read_deb(&p).unwrap();
            assert_eq!(info.package, "hello");
            assert_eq!(info.source, "hello-src");
            assert_eq!(info.canonical_filename(), "hello_2.0-1_all.deb");
            assert_eq!(info.size, bytes.len() as u64);
            assert_eq!(info.sha256, hex::encode(Sha256::digest(&bytes)));
            assert_eq!(info.stanza().get("Description"), Some("hi\n there"));
        }
    }

    #[test]
    fn malformed_debs_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let good = make_deb("Package: ok\nVersion: 1.0\nArchitecture: all\n", "gz", b"x");
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty.deb", vec![], "too short"),
            (
                "text.deb",
                b"hello world, not an archive".to_vec(),
                "ar archive header",
            ),
            (
                "truncated.deb",
                good[..good.len() - 10].to_vec(),
                "truncated",
            ),
            (
                "nofields.deb",
                make_deb("Package: ok\n", "gz", b"x"),
                "'Version'",
            ),
            (
                "badname.deb",
                make_deb(
                    "Package: Bad_Name\nVersion: 1.0\nArchitecture: all\n",
                    "gz",
                    b"x",
                ),
                "invalid package name",
            ),
            (
                "badver.deb",
                make_deb("Package: ok\nVersion: v1\nArchitecture: all\n", "gz", b"x"),
                "must start with a digit",
            ),
        ];
        for (name, bytes, want) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let e = read_deb(&p).unwrap_err().to_string();
            assert!(e.contains(name) && e.contains(want), "{name}: {e}");
        }
    }
}
