//! Native builds (`uses = "..."`): their `with` tables, checked at load time so a typo is an
//! error with a position, not a failed run.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::builds::check_relative;
use crate::duration::parse_duration;

/// Which .debs of the inputs an apt repository takes: one glob for every codename, or one per
/// codename (codenames without one stay empty suites).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DebSelection {
    All(String),
    PerCodename(BTreeMap<String, String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptRepoSpec {
    pub origin: Option<String>,
    pub label: Option<String>,
    /// `Suite` of each codename that has one (e.g. bookworm -> stable). Distinct per codename:
    /// mirrors link `dists/<suite>` to the codename and apt pins select by it.
    pub suites: BTreeMap<String, String>,
    pub version: Option<String>,
    pub codenames: Vec<String>,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    pub description: Option<String>,
    pub valid_for: Option<Duration>,
    /// Globs relative to `$SLIPWAY_INPUTS`.
    pub debs: DebSelection,
    /// Folder (in the workspace and in the artifacts) the repository is written to.
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSignSpec {
    /// Secrets holding signing keys (several for rotation).
    pub keys: Vec<String>,
    /// Repository folder among the inputs (`<build>/<path>`); found automatically when omitted.
    pub input: Option<String>,
    pub output: String,
    /// `sha256` or `sha512`.
    pub digest: String,
}

/// A build implemented by Slipway itself rather than by shell steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NativeAction {
    /// Upload the artifacts of the build's inputs to `bucket` under `prefix`.
    Publish {
        bucket: String,
        /// May hold `{milestone}`, `{channel}`, `{project}`, `{job}`.
        prefix: String,
        /// Publish only this sub-folder of the inputs (e.g. `apt_signer/apt_signed`).
        path: Option<String>,
    },
    AptRepo(AptRepoSpec),
    AptSign(AptSignSpec),
    Simplestreams(StreamsSpec),
    /// Boot an LXD image in a private daemon and check the guest.
    LxdTest(LxdTestSpec),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsSpec {
    /// Folder among the inputs holding `<distro>/<release>/<arch>/<variant>/` image folders;
    /// found automatically when omitted.
    pub input: Option<String>,
    pub output: String,
    /// Versions listed per product.
    pub keep: usize,
}

/// `uses = "lxd-test"`: Slipway starts a private LXD daemon (no network), launches the image as
/// an unprivileged container and runs the checks in it; the results are a JUnit suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LxdTestSpec {
    /// Folder among the inputs (`<build>/<dir>`) holding `lxd.tar.xz` and `rootfs.squashfs`.
    pub image: String,
    /// How long `systemctl is-system-running` may take to say `running` or `degraded`.
    pub boot_timeout: Duration,
    /// Folder (in the workspace and in the artifacts) the JUnit report is written to.
    pub output: String,
    /// Run after the built-in cases `test_container_starts` and `test_system_boots`.
    pub checks: Vec<LxdCheck>,
}

/// One test case: a command run in the container with `lxc exec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LxdCheck {
    /// The JUnit test case name.
    pub name: String,
    /// Run as this uid (with its `XDG_RUNTIME_DIR` and home), else as root in the container.
    pub user: Option<u32>,
    /// The command and its arguments (no shell).
    pub run: Vec<String>,
    /// Retry every second until it passes or this much time has gone by.
    pub retry_for: Option<Duration>,
}

/// The cases every `lxd-test` runs first.
pub const LXD_BUILTIN_CASES: [&str; 2] = ["test_container_starts", "test_system_boots"];

impl NativeAction {
    pub fn kind(&self) -> &'static str {
        match self {
            NativeAction::Publish { .. } => "publish",
            NativeAction::AptRepo(_) => "apt-repo",
            NativeAction::AptSign(_) => "apt-sign",
            NativeAction::Simplestreams(_) => "simplestreams",
            NativeAction::LxdTest(_) => "lxd-test",
        }
    }
}

pub(crate) enum ActionError {
    UnknownKind(String),
    BadWith(String),
}

pub(crate) fn native_action(uses: &str, with: &toml::Table) -> Result<NativeAction, ActionError> {
    let with = With { uses, table: with };
    let parsed = match uses {
        "publish" => publish(&with),
        "apt-repo" => apt_repo(&with).map(NativeAction::AptRepo),
        "apt-sign" => apt_sign(&with).map(NativeAction::AptSign),
        "simplestreams" => simplestreams(&with).map(NativeAction::Simplestreams),
        "lxd-test" => lxd_test(&with).map(NativeAction::LxdTest),
        other => {
            return Err(ActionError::UnknownKind(format!(
                "unknown native build `uses = \"{other}\"` (known: publish, apt-repo, apt-sign, simplestreams, lxd-test)"
            )));
        }
    };
    parsed.map_err(ActionError::BadWith)
}

struct With<'a> {
    uses: &'a str,
    table: &'a toml::Table,
}

impl With<'_> {
    fn only(&self, allowed: &[&str]) -> Result<(), String> {
        match self.table.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(format!(
                "unknown key `with.{k}` for `uses = \"{}\"` (allowed: {})",
                self.uses,
                allowed.join(", ")
            )),
            None => Ok(()),
        }
    }

    fn string(&self, k: &str) -> Result<Option<String>, String> {
        match self.table.get(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("`with.{k}` must be a string")),
        }
    }

    /// A list of strings; a single string counts as a list of one.
    fn strings(&self, k: &str) -> Result<Option<Vec<String>>, String> {
        match self.table.get(k) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(vec![s.clone()])),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("`with.{k}` must hold strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(format!("`with.{k}` must be a string or a list of strings")),
        }
    }
}

fn word(what: &str, v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && !v.starts_with('.')
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} '{v}' must be letters, digits, '-', '_', '.', '+'"
        ))
    }
}

fn glob(v: &str, what: &str) -> Result<(), String> {
    check_relative(v, what)?;
    globset::Glob::new(v).map_err(|e| format!("{what} '{v}' is invalid: {e}"))?;
    Ok(())
}

fn publish(w: &With) -> Result<NativeAction, String> {
    w.only(&["bucket", "prefix", "path"])?;
    let bucket = w
        .string("bucket")?
        .ok_or("`uses = \"publish\"` needs `with.bucket`")?;
    let prefix = w.string("prefix")?.unwrap_or_default();
    check_prefix(&prefix)?;
    let path = w.string("path")?;
    if let Some(p) = &path {
        check_relative(p, "with.path")?;
    }
    Ok(NativeAction::Publish {
        bucket,
        prefix,
        path,
    })
}

fn apt_repo(w: &With) -> Result<AptRepoSpec, String> {
    w.only(&[
        "origin",
        "label",
        "suite",
        "version",
        "codenames",
        "components",
        "architectures",
        "description",
        "valid_for",
        "debs",
        "output",
    ])?;
    let codenames = w
        .strings("codenames")?
        .ok_or("`uses = \"apt-repo\"` needs `with.codenames`")?;
    let components = w
        .strings("components")?
        .unwrap_or_else(|| vec!["main".into()]);
    let architectures = w
        .strings("architectures")?
        .ok_or("`uses = \"apt-repo\"` needs `with.architectures`")?;
    if codenames.is_empty() || components.is_empty() || architectures.is_empty() {
        return Err(
            "`with.codenames`, `with.components` and `with.architectures` must not be empty".into(),
        );
    }
    for c in &codenames {
        word("codename", c)?;
    }
    for c in &components {
        word("component", c)?;
    }
    for a in &architectures {
        word("architecture", a)?;
        if a == "all" {
            return Err(
                "`with.architectures` lists real architectures; 'all' packages go into each".into(),
            );
        }
    }
    let suites = suites(w, &codenames)?;
    for k in ["origin", "label", "version", "description"] {
        if w.string(k)?.is_some_and(|v| v.contains('\n')) {
            return Err(format!("`with.{k}` must be one line"));
        }
    }
    let valid_for = w
        .string("valid_for")?
        .map(|v| parse_duration(&v))
        .transpose()?;
    let debs = match w.table.get("debs") {
        None => DebSelection::All("**/*.deb".into()),
        Some(toml::Value::String(g)) => {
            glob(g, "with.debs")?;
            DebSelection::All(g.clone())
        }
        Some(toml::Value::Table(t)) => {
            let mut map = BTreeMap::new();
            for (codename, g) in t {
                let g = g
                    .as_str()
                    .ok_or("`with.debs` values must be glob strings")?;
                if !codenames.contains(codename) {
                    return Err(format!(
                        "`with.debs` names codename '{codename}', which is not in `with.codenames`"
                    ));
                }
                glob(g, "with.debs")?;
                map.insert(codename.clone(), g.to_string());
            }
            DebSelection::PerCodename(map)
        }
        Some(_) => return Err("`with.debs` must be a glob or a table of codename = glob".into()),
    };
    let output = w.string("output")?.unwrap_or_else(|| "apt".into());
    word("with.output", &output)?;
    Ok(AptRepoSpec {
        origin: w.string("origin")?,
        label: w.string("label")?,
        suites,
        version: w.string("version")?,
        codenames,
        components,
        architectures,
        description: w.string("description")?,
        valid_for,
        debs,
        output,
    })
}

/// `with.suite`: a table codename = suite, or one string when there is exactly one codename.
fn suites(w: &With, codenames: &[String]) -> Result<BTreeMap<String, String>, String> {
    let suites = match w.table.get("suite") {
        None => BTreeMap::new(),
        Some(toml::Value::String(suite)) => match codenames {
            [only] => BTreeMap::from([(only.clone(), suite.clone())]),
            _ => {
                let example: Vec<String> =
                    codenames.iter().map(|c| format!("{c} = \"...\"")).collect();
                return Err(format!(
                    "`with.suite` \"{suite}\" would be the Suite of all {} codenames, which mirrors and apt pins cannot tell apart; give each codename its own: suite = {{ {} }}",
                    codenames.len(),
                    example.join(", ")
                ));
            }
        },
        Some(toml::Value::Table(t)) => {
            let mut suites = BTreeMap::new();
            for (codename, suite) in t {
                let suite = suite
                    .as_str()
                    .ok_or("`with.suite` values must be strings (codename = suite)")?;
                if !codenames.contains(codename) {
                    return Err(format!(
                        "`with.suite` names codename '{codename}', which is not in `with.codenames`"
                    ));
                }
                suites.insert(codename.clone(), suite.to_string());
            }
            suites
        }
        Some(_) => {
            return Err(
                "`with.suite` must be a table of codename = suite (or one string for a single codename)"
                    .into(),
            );
        }
    };
    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    for (codename, suite) in &suites {
        word("suite", suite)?;
        if let Some(other) = owner.insert(suite, codename) {
            return Err(format!(
                "`with.suite` gives codenames '{other}' and '{codename}' the same suite '{suite}'; each suite names one codename"
            ));
        }
        if suite != codename && codenames.contains(suite) {
            return Err(format!(
                "`with.suite` '{suite}' of codename '{codename}' is itself a codename of this repository"
            ));
        }
    }
    Ok(suites)
}

fn apt_sign(w: &With) -> Result<AptSignSpec, String> {
    w.only(&["keys", "input", "output", "digest"])?;
    let keys = w.strings("keys")?.unwrap_or_default();
    let input = w.string("input")?;
    if let Some(i) = &input {
        check_relative(i, "with.input")?;
    }
    let output = w.string("output")?.unwrap_or_else(|| "apt_signed".into());
    word("with.output", &output)?;
    let digest = w.string("digest")?.unwrap_or_else(|| "sha512".into());
    if digest != "sha256" && digest != "sha512" {
        return Err(format!(
            "`with.digest` '{digest}' must be sha256 or sha512 (apt rejects SHA-1)"
        ));
    }
    Ok(AptSignSpec {
        keys,
        input,
        output,
        digest,
    })
}

fn simplestreams(w: &With) -> Result<StreamsSpec, String> {
    w.only(&["input", "output", "keep"])?;
    let input = w.string("input")?;
    if let Some(i) = &input {
        check_relative(i, "with.input")?;
    }
    let output = w.string("output")?.unwrap_or_else(|| "streams".into());
    word("with.output", &output)?;
    let keep = match w.table.get("keep") {
        None => 3,
        Some(toml::Value::Integer(n)) if *n >= 1 && *n <= 100 => *n as usize,
        Some(_) => return Err("`with.keep` must be a number from 1 to 100".into()),
    };
    Ok(StreamsSpec {
        input,
        output,
        keep,
    })
}

fn lxd_test(w: &With) -> Result<LxdTestSpec, String> {
    w.only(&["image", "boot_timeout", "output", "checks"])?;
    let image = w.string("image")?.ok_or(
        "`uses = \"lxd-test\"` needs `with.image` (\"<build>/<folder>\" among the inputs)",
    )?;
    check_relative(&image, "with.image")?;
    let parts: Vec<&str> = image.trim_end_matches('/').split('/').collect();
    if parts.len() < 2 || parts.iter().any(|p| p.is_empty() || *p == ".") {
        return Err(format!(
            "`with.image` '{image}' must be \"<build>/<folder>\": a folder among the inputs holding lxd.tar.xz and rootfs.squashfs"
        ));
    }
    let image = parts.join("/");
    let boot_timeout = match w.table.get("boot_timeout") {
        None => Duration::from_secs(90),
        Some(v) => duration_value(v, "with.boot_timeout")?,
    };
    let output = w.string("output")?.unwrap_or_else(|| "lxd_test".into());
    word("with.output", &output)?;
    let checks = match w.table.get("checks") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => {
            let mut checks: Vec<LxdCheck> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("with.checks[{i}]");
                let check = lxd_check(item, &at)?;
                if LXD_BUILTIN_CASES.contains(&check.name.as_str())
                    || checks.iter().any(|c| c.name == check.name)
                {
                    return Err(format!(
                        "`{at}.name` '{}' is used twice (built in: {})",
                        check.name,
                        LXD_BUILTIN_CASES.join(", ")
                    ));
                }
                checks.push(check);
            }
            checks
        }
        Some(_) => {
            return Err(
                "`with.checks` must be a list of tables like { name = \"...\", run = [\"...\"] }"
                    .into(),
            );
        }
    };
    Ok(LxdTestSpec {
        image,
        boot_timeout,
        output,
        checks,
    })
}

fn lxd_check(item: &toml::Value, at: &str) -> Result<LxdCheck, String> {
    let toml::Value::Table(t) = item else {
        return Err(format!(
            "`{at}` must be a table like {{ name = \"...\", run = [\"...\"] }}"
        ));
    };
    const KEYS: [&str; 4] = ["name", "run", "user", "retry_for"];
    if let Some(k) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key `{at}.{k}` (allowed: {})",
            KEYS.join(", ")
        ));
    }
    let name = match t.get("name") {
        Some(toml::Value::String(s)) => s.clone(),
        Some(_) => return Err(format!("`{at}.name` must be a string")),
        None => return Err(format!("`{at}` needs `name`")),
    };
    let junit_safe = name.len() <= 100
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !junit_safe {
        return Err(format!(
            "`{at}.name` '{name}' must start with a letter or '_' and hold only letters, digits, '_', '.', '-' (at most 100)"
        ));
    }
    let run = match t.get("run") {
        Some(toml::Value::Array(args)) => args
            .iter()
            .map(|a| match a {
                toml::Value::String(s) if !s.contains('\0') => Ok(s.clone()),
                _ => Err(format!("`{at}.run` must hold strings (without NUL)")),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(format!(
                "`{at}.run` must be a list: the command and its arguments (no shell)"
            ));
        }
        None => return Err(format!("`{at}` needs `run`")),
    };
    if run.first().is_none_or(|c| c.is_empty()) {
        return Err(format!("`{at}.run` must start with a command"));
    }
    let user = match t.get("user") {
        None => None,
        Some(toml::Value::Integer(u)) if (0..=i64::from(u32::MAX - 1)).contains(u) => {
            Some(*u as u32)
        }
        Some(_) => return Err(format!("`{at}.user` must be a uid (a number, 0 or more)")),
    };
    let retry_for = t
        .get("retry_for")
        .map(|v| duration_value(v, &format!("{at}.retry_for")))
        .transpose()?;
    Ok(LxdCheck {
        name,
        user,
        run,
        retry_for,
    })
}

/// A positive duration: `"90s"`, `"2m"`, or a number of seconds.
fn duration_value(v: &toml::Value, what: &str) -> Result<Duration, String> {
    let d = match v {
        toml::Value::String(s) => parse_duration(s).map_err(|e| format!("`{what}`: {e}"))?,
        toml::Value::Integer(n) if *n > 0 => Duration::from_secs(*n as u64),
        _ => {
            return Err(format!(
                "`{what}` must be a duration like \"90s\" or \"2m\""
            ));
        }
    };
    if d.is_zero() {
        return Err(format!("`{what}` must be more than zero"));
    }
    Ok(d)
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    let mut rest = prefix;
    while let Some(start) = rest.find('{') {
        let end = rest[start..]
            .find('}')
            .ok_or("unclosed '{' in `with.prefix`")?
            + start;
        let var = &rest[start + 1..end];
        if !["milestone", "channel", "project", "job"].contains(&var) {
            return Err(format!(
                "unknown placeholder '{{{var}}}' in `with.prefix` (use milestone, channel, project, job)"
            ));
        }
        rest = &rest[end + 1..];
    }
    if !prefix.is_empty() {
        check_relative(&prefix.replace(['{', '}'], ""), "with.prefix")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builds::Builds;
    use crate::diag::SourceText;

    const APT_REPO: &str = r#"[builds.debs]
steps = ["true"]

[builds.apt_repo]
needs = ["debs"]
uses = "apt-repo"

[builds.apt_repo.with]
codenames = ["bookworm", "bullseye"]
architectures = ["amd64"]
"#;

    fn parse(suite_line: &str) -> Result<AptRepoSpec, String> {
        let text = format!("{APT_REPO}{suite_line}\n");
        let builds = Builds::parse(&SourceText::new("builds.toml", text.as_str()))
            .map_err(|e| e.0[0].to_string())?;
        match builds.map["apt_repo"].action.clone() {
            Some(NativeAction::AptRepo(spec)) => Ok(spec),
            other => panic!("not an apt-repo: {other:?}"),
        }
    }

    #[test]
    fn suites_default_to_none_and_map_per_codename() {
        assert!(parse("").unwrap().suites.is_empty());
        let spec = parse(r#"suite = { bookworm = "stable", bullseye = "oldstable" }"#).unwrap();
        assert_eq!(
            spec.suites,
            BTreeMap::from([
                ("bookworm".to_string(), "stable".to_string()),
                ("bullseye".to_string(), "oldstable".to_string())
            ])
        );
        // A codename may keep no suite.
        let spec = parse(r#"suite = { bookworm = "stable" }"#).unwrap();
        assert_eq!(spec.suites.len(), 1);
    }

    #[test]
    fn one_suite_string_is_for_exactly_one_codename() {
        let single = APT_REPO.replace(r#"["bookworm", "bullseye"]"#, r#"["bookworm"]"#);
        let text = format!("{single}suite = \"stable\"\n");
        let builds = Builds::parse(&SourceText::new("builds.toml", text.as_str())).unwrap();
        let Some(NativeAction::AptRepo(spec)) = &builds.map["apt_repo"].action else {
            panic!("not an apt-repo");
        };
        assert_eq!(
            spec.suites,
            BTreeMap::from([("bookworm".to_string(), "stable".to_string())])
        );

        let e = parse(r#"suite = "stable""#).unwrap_err();
        assert_eq!(
            e,
            "builds.toml:8:1: build 'apt_repo': `with.suite` \"stable\" would be the Suite of all 2 codenames, which mirrors and apt pins cannot tell apart; give each codename its own: suite = { bookworm = \"...\", bullseye = \"...\" }"
        );
    }

    #[test]
    fn shared_unknown_or_bad_suites_are_positioned_errors() {
        let at = "builds.toml:8:1: build 'apt_repo': ";
        for (line, message) in [
            (
                r#"suite = { bookworm = "stable", bullseye = "stable" }"#,
                "`with.suite` gives codenames 'bookworm' and 'bullseye' the same suite 'stable'",
            ),
            (
                r#"suite = { trixie = "testing" }"#,
                "`with.suite` names codename 'trixie', which is not in `with.codenames`",
            ),
            (
                r#"suite = { bookworm = "bullseye" }"#,
                "`with.suite` 'bullseye' of codename 'bookworm' is itself a codename",
            ),
            (
                r#"suite = { bookworm = "sta ble" }"#,
                "suite 'sta ble' must be letters, digits",
            ),
            (
                r#"suite = { bookworm = 1 }"#,
                "`with.suite` values must be strings",
            ),
            (r#"suite = ["stable"]"#, "`with.suite` must be a table"),
        ] {
            let e = parse(line).unwrap_err();
            assert!(e.starts_with(at) && e.contains(message), "{line}: {e}");
        }
    }
}
