//! Writing .deb files in memory: used by tests and by the benchmark's corpus generator.

use std::io::Write;

/// An `ar` archive of the given members, in order (deterministic: zero times and ids).
pub fn ar(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            "100644",
            data.len()
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// A minimal valid .deb: `control` in `control.tar.<compression>` (gz, xz, zst, or plain),
/// `payload` as one file in an uncompressed `data.tar`.
pub fn make_deb(control: &str, compression: &str, payload: &[u8]) -> Vec<u8> {
    let mut ctl_tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(control.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    ctl_tar
        .append_data(&mut h, "./control", control.as_bytes())
        .expect("in-memory archive");
    let ctl_tar = ctl_tar.into_inner().expect("in-memory archive");
    let (name, ctl) = match compression {
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&ctl_tar).expect("in-memory archive");
            ("control.tar.gz", e.finish().expect("in-memory archive"))
        }
        "xz" => {
            let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
            e.write_all(&ctl_tar).expect("in-memory archive");
            ("control.tar.xz", e.finish().expect("in-memory archive"))
        }
        "zst" => (
            "control.tar.zst",
            zstd::encode_all(&ctl_tar[..], 3).expect("in-memory archive"),
        ),
        _ => ("control.tar", ctl_tar),
    };
    let mut data_tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(payload.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    data_tar
        .append_data(&mut h, "./usr/share/doc/x/payload", payload)
        .expect("in-memory archive");
    let data_tar = data_tar.into_inner().expect("in-memory archive");
    ar(&[
        ("debian-binary", b"2.0\n".to_vec()),
        (name, ctl),
        ("data.tar", data_tar),
    ])
}
