//! `slipway example init DIR`: a ready crostini-guest project: `DIR/slipway.toml`, the product
//! git repository `DIR/repo` with one branch per branch-table row, and an apt signing key whose
//! public keyring the product's cros-apt-config package ships (as the original flow did).

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use include_dir::{Dir, DirEntry, include_dir};
use slipway_apt::keys::{self, KeyKind};
use slipway_config::{Config, SourceText};

static EXAMPLE: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/crostini-guest");

const KEYRING_IN_REPO: &str = "packages/cros-apt-config/root/usr/share/keyrings/cros-apt.gpg";
const KEY_UID: &str = "Slipway Example Signing Key <release@example.org>";

pub fn init(dir: &Path) -> Result<()> {
    if dir.exists()
        && fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} already exists and is not empty; choose a new folder",
            dir.display()
        );
    }
    let config_text = EXAMPLE
        .get_file("slipway.toml")
        .and_then(|f| f.contents_utf8())
        .context("the example config is missing from this build")?;
    let config = Config::parse(
        SourceText::new("example slipway.toml", config_text),
        dir.to_path_buf(),
    )
    .map_err(|e| anyhow::anyhow!("the embedded example config is invalid:\n{e}"))?;

    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_file(&dir.join("slipway.toml"), config_text.as_bytes(), false)?;
    let repo = dir.join("repo");
    let product = EXAMPLE
        .get_dir("product")
        .context("the example product is missing from this build")?;
    write_tree(product, Path::new("product"), &repo)?;

    let var = dir.join("var");
    generate_key(&var, &repo.join(KEYRING_IN_REPO))?;
    create_repo(&repo, &config)?;
    eprintln!("wrote the crostini-guest example to {}", dir.display());
    eprintln!(
        "next: cd {} && slipway run guest_tools --milestone 74",
        dir.display()
    );
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8], executable: bool) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    let mode = if executable { 0o755 } else { 0o644 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", path.display()))
}

/// Writes an embedded tree; scripts (files starting with `#!`) become executable, since the
/// embedding does not keep file modes.
fn write_tree(dir: &Dir<'_>, strip: &Path, dest: &Path) -> Result<()> {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(d) => write_tree(d, strip, dest)?,
            DirEntry::File(f) => {
                let rel = f.path().strip_prefix(strip).unwrap_or(f.path());
                write_file(
                    &dest.join(rel),
                    f.contents(),
                    f.contents().starts_with(b"#!"),
                )?;
            }
        }
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<Vec<u8>> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: cannot start {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// An Ed25519 signing key (as `slipway key generate` makes it): the armored secret key (0600)
/// for the secrets store, and the public keyring for apt's `signed-by` (shipped in the product
/// repo and kept under var/keys).
fn generate_key(var: &Path, keyring_in_repo: &Path) -> Result<()> {
    let keys_dir = var.join("keys");
    let key = keys::generate(KEY_UID, KeyKind::Ed25519)?;
    keys::write_key_files(&keys_dir, &key)?;
    let secrets = var.join("secrets");
    fs::create_dir_all(&secrets)?;
    fs::set_permissions(&secrets, fs::Permissions::from_mode(0o700))?;
    fs::rename(
        keys_dir.join("signing-key.asc"),
        secrets.join("apt-signing.asc"),
    )
    .context("cannot move the secret key")?;
    fs::rename(keys_dir.join("keyring.gpg"), keys_dir.join("cros-apt.gpg"))?;
    fs::rename(keys_dir.join("keyring.asc"), keys_dir.join("cros-apt.asc"))?;
    let public = fs::read(keys_dir.join("cros-apt.gpg"))?;
    write_file(keyring_in_repo, &public, false)?;
    write_dashboard_token(&secrets.join("dashboard-token"))
}

/// A fresh random token for the example's dashboard login, private like every secret.
fn write_dashboard_token(path: &Path) -> Result<()> {
    use std::io::{Read, Write};
    let mut bytes = [0u8; 24];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for the dashboard token")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(format!("{token}\n").as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The product repository: `main` with the sources, and a release branch per other row whose
/// VERSION names its milestone.
fn create_repo(repo: &Path, config: &Config) -> Result<()> {
    let git = |args: &[&str]| {
        let mut c = Command::new("git");
        c.arg("-C")
            .arg(repo)
            .args([
                "-c",
                "user.name=Slipway Example",
                "-c",
                "user.email=release@example.org",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args);
        c
    };
    run(
        &mut git(&["init", "--quiet", "--initial-branch=main"]),
        "git init",
    )?;
    run(&mut git(&["add", "--all"]), "git add")?;
    run(
        &mut git(&[
            "commit",
            "--quiet",
            "-m",
            "Import the crostini-guest example",
        ]),
        "git commit",
    )?;
    let base = String::from_utf8_lossy(&run(&mut git(&["rev-parse", "HEAD"]), "git rev-parse")?)
        .trim()
        .to_string();
    for row in &config.branches {
        if row.branch == "main" {
            continue;
        }
        run(
            &mut git(&["checkout", "--quiet", "-b", &row.branch, &base]),
            "git checkout",
        )?;
        write_file(
            &repo.join("VERSION"),
            format!("{}.0.1\n", row.milestone).as_bytes(),
            false,
        )?;
        let msg = format!("Branch for M{} ({})", row.milestone, row.channel);
        run(&mut git(&["commit", "--quiet", "-am", &msg]), "git commit")?;
    }
    run(
        &mut git(&["checkout", "--quiet", "main"]),
        "git checkout main",
    )?;
    Ok(())
}
