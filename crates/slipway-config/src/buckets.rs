//! `[buckets]`: where publish builds write and where promotion copies to. A bucket is
//! `name = "URL"` or `name = { url, promote_to, cache_control, endpoint, region, allow_http,
//! credentials }`. Everything that can be checked from the service file alone is checked here,
//! so a config that would publish somewhere other than it says never loads.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use toml::Spanned;

use crate::diag::{ConfigError, ConfigErrors, Loc, SourceText};
use crate::service::{Config, Project, Secret, SecretSource};

pub(crate) enum RawBucket {
    Url(String),
    Table(Box<RawBucketTable>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBucketTable {
    url: Spanned<String>,
    promote_to: Option<Spanned<String>>,
    cache_control: Option<Spanned<String>>,
    endpoint: Option<Spanned<String>>,
    region: Option<Spanned<String>>,
    allow_http: Option<Spanned<bool>>,
    credentials: Option<Spanned<String>>,
}

// Not `#[serde(untagged)]`: untagged enums buffer the value and lose the spans inside the table.
impl<'de> Deserialize<'de> for RawBucket {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawBucketVisitor;
        impl<'de> Visitor<'de> for RawBucketVisitor {
            type Value = RawBucket;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a bucket URL or a table with `url`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawBucket, E> {
                Ok(RawBucket::Url(s.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawBucket, A::Error> {
                RawBucketTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|t| RawBucket::Table(Box::new(t)))
            }
        }
        d.deserialize_any(RawBucketVisitor)
    }
}

#[derive(Debug, Clone)]
pub struct Bucket {
    pub name: String,
    pub url: String,
    pub promote_to: Option<String>,
    pub cache_control: Option<String>,
    /// S3 and GCS: a server other than the provider's (e.g. `http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    /// S3 only.
    pub region: Option<String>,
    pub allow_http: bool,
    /// Secret holding the credentials: `KEY=value` lines (S3) or a service-account JSON key
    /// (GCS). Without it, the environment's.
    pub credentials: Option<String>,
    /// The bucket's name in `[buckets]`.
    pub loc: Loc,
    pub url_loc: Loc,
    pub credentials_loc: Option<Loc>,
    /// `file://` buckets: the folder, absolute.
    pub folder: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    S3,
    Gcs,
}

impl Kind {
    fn scheme(self) -> &'static str {
        match self {
            Kind::File => "file://",
            Kind::S3 => "s3://",
            Kind::Gcs => "gs://",
        }
    }
}

/// Host folders a `file://` bucket may not be or be inside: writing there is never publishing.
const SYSTEM_FOLDERS: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
    "/sbin", "/sys", "/usr",
];

/// Parses `[buckets]`. `secrets` are needed to keep secret files out of `file://` folders.
pub(crate) fn parse(
    source: &SourceText,
    base_dir: &Path,
    project: &Project,
    secrets: &BTreeMap<String, Secret>,
    raw: BTreeMap<Spanned<String>, Spanned<RawBucket>>,
    errors: &mut ConfigErrors,
) -> BTreeMap<String, Bucket> {
    let base = absolute(base_dir);
    let mut protected = vec![Protected {
        path: base.clone(),
        what: "the config folder",
        may_hold_buckets: true,
    }];
    if let Some(repo) = local_repo(project, &base) {
        protected.push(Protected {
            path: repo,
            what: "the product repository",
            may_hold_buckets: false,
        });
    }
    let secret_files: Vec<(PathBuf, String)> = secrets
        .values()
        .filter_map(|s| match &s.source {
            SecretSource::File(p) => Some((normalize(&base.join(p)), s.name.clone())),
            SecretSource::Env(_) => None,
        })
        .collect();

    let mut buckets = BTreeMap::new();
    let mut promote_spans = BTreeMap::new();
    for (name, value) in raw {
        let loc = source.loc_of(&name.span());
        let name = name.into_inner();
        let value_span = value.span();
        let t = match value.into_inner() {
            RawBucket::Url(url) => RawBucketTable {
                url: Spanned::new(value_span, url),
                promote_to: None,
                cache_control: None,
                endpoint: None,
                region: None,
                allow_http: None,
                credentials: None,
            },
            RawBucket::Table(t) => *t,
        };
        let url_span = t.url.span();
        let mut error = |span: &Range<usize>, message: String| {
            errors.push(source.error(span, format!("bucket '{name}': {message}")))
        };
        let mut folder = None;
        match parse_url(t.url.get_ref(), &base) {
            Err(message) => error(&url_span, message),
            Ok((kind, dir)) => {
                for (key, span) in ignored_options(kind, &t) {
                    error(&span, ignored_message(kind, key));
                }
                if let (Some(endpoint), false) = (&t.endpoint, kind == Kind::File) {
                    let allow_http = t.allow_http.as_ref().is_some_and(|a| *a.get_ref());
                    if let Err(message) = check_endpoint(endpoint.get_ref(), allow_http) {
                        error(&endpoint.span(), message);
                    }
                }
                if let Some(dir) = &dir {
                    if let Err(message) = check_folder(dir, &protected, &secret_files) {
                        error(&url_span, message);
                    }
                }
                folder = dir;
            }
        }
        if let Some(to) = &t.promote_to {
            promote_spans.insert(name.clone(), to.span());
        }
        buckets.insert(
            name.clone(),
            Bucket {
                name,
                url: t.url.into_inner(),
                promote_to: t.promote_to.map(Spanned::into_inner),
                cache_control: t.cache_control.map(Spanned::into_inner),
                endpoint: t.endpoint.map(Spanned::into_inner),
                region: t.region.map(Spanned::into_inner),
                allow_http: t.allow_http.is_some_and(|a| a.into_inner()),
                credentials_loc: t.credentials.as_ref().map(|c| source.loc_of(&c.span())),
                credentials: t.credentials.map(Spanned::into_inner),
                url_loc: source.loc_of(&url_span),
                loc,
                folder,
            },
        );
    }
    check_nesting(&buckets, errors);
    check_promotion(source, &buckets, &promote_spans, errors);
    buckets
}

/// The product repository's folder, when it is local.
fn local_repo(project: &Project, base: &Path) -> Option<PathBuf> {
    (!project.is_remote() && !project.repo.trim().is_empty())
        .then(|| normalize(&base.join(&project.repo)))
}

impl Config {
    /// `file://` buckets against the data dir, which only the command line knows: a bucket that
    /// is, holds or sits inside Slipway's own state would publish into it (or lose to `gc`).
    pub fn check_data_dir(&self, data_dir: &Path) -> Result<(), ConfigErrors> {
        let data_dir = normalize(&absolute(data_dir));
        let mut errors = ConfigErrors::default();
        for b in self.buckets.values() {
            let Some(dir) = &b.folder else { continue };
            if overlaps(dir, &data_dir) {
                errors.push(ConfigError {
                    loc: b.url_loc.clone(),
                    message: format!(
                        "bucket '{}': folder {} overlaps the data dir {}; publish outside it",
                        b.name,
                        dir.display(),
                        data_dir.display()
                    ),
                });
            }
        }
        errors.into_result()
    }
}

/// The kind of a bucket URL and, for `file://`, its folder (absolute, `base` for relative ones).
fn parse_url(url: &str, base: &Path) -> Result<(Kind, Option<PathBuf>), String> {
    if let Some(path) = url.strip_prefix("file://") {
        if path.trim().is_empty() {
            return Err(format!(
                "url '{url}' names no folder (write e.g. file://var/buckets/NAME; relative paths are relative to the config folder)"
            ));
        }
        if Path::new(path)
            .components()
            .any(|c| c == Component::ParentDir)
        {
            return Err(format!(
                "url '{url}' leaves its folder through '..'; write the folder as an absolute path (file:///srv/...)"
            ));
        }
        return Ok((Kind::File, Some(normalize(&base.join(path)))));
    }
    let (kind, rest) = if let Some(rest) = url.strip_prefix("s3://") {
        (Kind::S3, rest)
    } else if let Some(rest) = url.strip_prefix("gs://") {
        (Kind::Gcs, rest)
    } else {
        return Err(format!(
            "url '{url}' must start with file://, s3:// or gs://"
        ));
    };
    let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if name.is_empty() {
        return Err(format!(
            "url '{url}' names no bucket (write {}BUCKET/optional/prefix)",
            kind.scheme()
        ));
    }
    let checked = match kind {
        Kind::S3 => s3_bucket_name(name),
        _ => gcs_bucket_name(name),
    };
    if let Err(why) = checked {
        return Err(format!(
            "url '{url}': '{name}' is not a valid bucket name ({why})"
        ));
    }
    let prefix = prefix.trim_end_matches('/');
    if !prefix.is_empty()
        && prefix
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "url '{url}': the prefix after the bucket name may not have empty, '.' or '..' parts"
        ));
    }
    Ok((kind, None))
}

/// Options set on a bucket whose kind would not use them.
fn ignored_options(kind: Kind, t: &RawBucketTable) -> Vec<(&'static str, Range<usize>)> {
    let mut set = Vec::new();
    let mut note = |key, span: Option<Range<usize>>| {
        if let Some(span) = span {
            set.push((key, span));
        }
    };
    match kind {
        Kind::File => {
            note("endpoint", t.endpoint.as_ref().map(Spanned::span));
            note("region", t.region.as_ref().map(Spanned::span));
            note("allow_http", t.allow_http.as_ref().map(Spanned::span));
            note("credentials", t.credentials.as_ref().map(Spanned::span));
            note("cache_control", t.cache_control.as_ref().map(Spanned::span));
        }
        Kind::Gcs => note("region", t.region.as_ref().map(Spanned::span)),
        Kind::S3 => {}
    }
    set
}

fn ignored_message(kind: Kind, key: &str) -> String {
    match kind {
        Kind::File => format!(
            "`{key}` does nothing for a file:// bucket (it applies to s3:// and gs:// buckets); remove it"
        ),
        _ => format!(
            "`{key}` does nothing for a gs:// bucket (a bucket's location is set in Google Cloud); remove it"
        ),
    }
}

fn check_endpoint(endpoint: &str, allow_http: bool) -> Result<(), String> {
    let rest = if let Some(rest) = endpoint.strip_prefix("https://") {
        rest
    } else if let Some(rest) = endpoint.strip_prefix("http://") {
        if !allow_http {
            return Err(format!(
                "endpoint '{endpoint}' is plain http; set `allow_http = true` to use it"
            ));
        }
        rest
    } else {
        return Err(format!(
            "endpoint '{endpoint}' must be an http:// or https:// URL"
        ));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("endpoint '{endpoint}' names no host"));
    }
    Ok(())
}

/// A folder Slipway reads its own setup from.
struct Protected {
    path: PathBuf,
    what: &'static str,
    /// The config folder is the usual home of `file://` buckets; the product repo is not.
    may_hold_buckets: bool,
}

/// A `file://` folder may not hold anything Slipway reads its setup from, nor be a host system
/// folder; folders elsewhere (absolute, or inside the config folder) are fine.
fn check_folder(
    dir: &Path,
    protected: &[Protected],
    secret_files: &[(PathBuf, String)],
) -> Result<(), String> {
    if dir.parent().is_none() {
        return Err("the folder is the whole file system".into());
    }
    if let Some(system) = SYSTEM_FOLDERS
        .iter()
        .map(Path::new)
        .find(|s| dir.starts_with(s))
    {
        return Err(format!(
            "folder {} is inside the system folder {}",
            dir.display(),
            system.display()
        ));
    }
    for p in protected {
        if p.path.starts_with(dir) {
            let relation = if p.path == dir { "is" } else { "holds" };
            return Err(format!("folder {} {relation} {}", dir.display(), p.what));
        }
        if !p.may_hold_buckets && dir.starts_with(&p.path) {
            return Err(format!("folder {} is inside {}", dir.display(), p.what));
        }
    }
    if let Some((_, secret)) = secret_files.iter().find(|(f, _)| f.starts_with(dir)) {
        return Err(format!(
            "folder {} holds the file of secret '{secret}', which publishing would expose",
            dir.display()
        ));
    }
    Ok(())
}

/// Two `file://` buckets sharing a folder would list, overwrite and promote each other's files.
fn check_nesting(buckets: &BTreeMap<String, Bucket>, errors: &mut ConfigErrors) {
    let local: Vec<_> = buckets
        .values()
        .filter_map(|b| b.folder.as_ref().map(|d| (b, d)))
        .collect();
    for (i, (a, da)) in local.iter().enumerate() {
        for (b, db) in &local[i + 1..] {
            if overlaps(da, db) {
                errors.push(ConfigError {
                    loc: b.url_loc.clone(),
                    message: format!(
                        "bucket '{}': folder {} overlaps the folder of bucket '{}' ({}); buckets need folders of their own",
                        b.name,
                        db.display(),
                        a.name,
                        a.url_loc
                    ),
                });
            }
        }
    }
}

/// `promote_to` names a production bucket: another defined bucket, not itself, not part of a
/// chain or cycle (promotion is one step, from the bucket a run published to), and the target
/// of one staging bucket only (two trees in one production prefix would replace each other's
/// indices, and a rollback of one would roll back the other).
fn check_promotion(
    source: &SourceText,
    buckets: &BTreeMap<String, Bucket>,
    spans: &BTreeMap<String, Range<usize>>,
    errors: &mut ConfigErrors,
) {
    let target = |name: &str| -> Option<&str> {
        let b = buckets.get(name)?;
        let to = b.promote_to.as_deref()?;
        (to != name && buckets.contains_key(to)).then_some(to)
    };
    let at = |name: &str, message: String| source.error(&spans[name], message);

    for b in buckets.values() {
        let Some(to) = &b.promote_to else { continue };
        if to == &b.name {
            errors.push(at(
                &b.name,
                format!(
                    "bucket '{to}' promotes to itself; `promote_to` names the production bucket its candidates are copied to"
                ),
            ));
        } else if !buckets.contains_key(to) {
            errors.push(at(
                &b.name,
                format!(
                    "bucket '{}' promotes to '{to}', which is not defined in [buckets]",
                    b.name
                ),
            ));
        }
    }

    let mut in_cycle = BTreeSet::new();
    for start in buckets.keys() {
        let mut path: Vec<&str> = vec![start.as_str()];
        while let Some(next) = target(path[path.len() - 1]) {
            if let Some(i) = path.iter().position(|p| *p == next) {
                let cycle = &path[i..];
                if cycle.contains(&start.as_str()) && cycle.iter().min() == Some(&start.as_str()) {
                    let mut names = cycle.to_vec();
                    names.push(start);
                    errors.push(at(
                        start,
                        format!(
                            "promote_to forms a cycle: {}; promotion goes one way, from staging to production",
                            names.join(" -> ")
                        ),
                    ));
                }
                in_cycle.extend(cycle.iter().map(|s| s.to_string()));
                break;
            }
            path.push(next);
        }
    }

    let mut sources: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for b in buckets.values() {
        if let Some(to) = target(&b.name) {
            sources.entry(to).or_default().push(&b.name);
        }
    }
    for (prod, from) in &sources {
        if let (Some(next), false) = (target(prod), in_cycle.contains(*prod)) {
            errors.push(at(
                prod,
                format!(
                    "bucket '{prod}' is the production bucket of '{}' and cannot promote to '{next}' too; promotion is one step, from the bucket a build publishes to",
                    from[0]
                ),
            ));
        }
        for other in &from[1..] {
            errors.push(at(
                other,
                format!(
                    "buckets '{}' and '{other}' both promote to '{prod}'; a production bucket takes one staging bucket (publish both trees into one staging bucket under different prefixes)",
                    from[0]
                ),
            ));
        }
    }
}

/// S3 general purpose bucket naming rules.
fn s3_bucket_name(name: &str) -> Result<(), &'static str> {
    if !(3..=63).contains(&name.len()) {
        return Err("3 to 63 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return Err("lowercase letters, digits, '.' and '-' only");
    }
    common_name_rules(name)?;
    if name.starts_with("xn--") || name.starts_with("sthree-") || name.ends_with("-s3alias") {
        return Err("the prefixes 'xn--', 'sthree-' and the suffix '-s3alias' are reserved");
    }
    Ok(())
}

/// Google Cloud Storage bucket naming rules.
fn gcs_bucket_name(name: &str) -> Result<(), &'static str> {
    let longest = if name.contains('.') { 222 } else { 63 };
    if name.len() < 3 || name.len() > longest || name.split('.').any(|part| part.len() > 63) {
        return Err("3 to 63 characters, or up to 222 in dot-separated parts of at most 63");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' || c == '_')
    {
        return Err("lowercase letters, digits, '.', '-' and '_' only");
    }
    common_name_rules(name)?;
    if name.starts_with("goog") || name.contains("google") {
        return Err("names may not start with 'goog' or contain 'google'");
    }
    Ok(())
}

fn common_name_rules(name: &str) -> Result<(), &'static str> {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Err("it must start and end with a letter or digit");
    }
    if name.contains("..") {
        return Err("no two dots in a row");
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("it may not look like an IP address");
    }
    Ok(())
}

fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn absolute(p: &Path) -> PathBuf {
    normalize(&std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()))
}

/// `.` and `..` resolved by the text alone: the folders may not exist yet.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            // `/..` is `/`.
            Component::ParentDir => {
                if !out.pop() && !out.has_root() {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
}
