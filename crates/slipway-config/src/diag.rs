use std::fmt;
use std::ops::Range;
use std::sync::Arc;

/// A config source: its display name (a path, or `repo@commit:path`) and its text, kept so
/// byte spans from the TOML parser can be turned into line:column positions.
#[derive(Debug, Clone)]
pub struct SourceText {
    pub name: Arc<str>,
    text: Arc<str>,
    /// Byte offset where each line starts: a position is a binary search, so locating every
    /// item of a large builds file stays linear in its size.
    line_starts: Arc<[usize]>,
}

impl SourceText {
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> Self {
        let text: Arc<str> = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceText {
            name: name.into(),
            text,
            line_starts,
        }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Position of a byte offset as 1-based line and column (columns count characters).
    pub fn loc(&self, offset: usize) -> Loc {
        let offset = offset.min(self.text.len());
        let offset = floor_char_boundary(&self.text, offset);
        // The last line starting at or before the offset.
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let line_start = self.line_starts[line - 1];
        let col = self.text[line_start..offset].chars().count() + 1;
        Loc {
            file: self.name.clone(),
            line,
            col,
        }
    }

    pub fn loc_of(&self, span: &Range<usize>) -> Loc {
        self.loc(span.start)
    }

    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            loc: self.loc_of(span),
            message: message.into(),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Where something was written: `file:line:col`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// One problem in a config file, with its position.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{loc}: {message}")]
pub struct ConfigError {
    pub loc: Loc,
    pub message: String,
}

/// All problems found at once, so a user fixes a config in one pass rather than one error per run.
#[derive(Debug, Clone, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn push(&mut self, e: ConfigError) {
        self.0.push(e);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn into_result(self) -> Result<(), ConfigErrors> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses TOML into `T`, turning parser and schema errors into positioned errors.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(
    src: &SourceText,
) -> Result<T, ConfigError> {
    toml::from_str(src.text()).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        // toml's message repeats the snippet; the first line is the reason.
        let message = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_string();
        src.error(&span, message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_chars() {
        let s = SourceText::new("f.toml", "a = 1\nbé = 2\n");
        assert_eq!(s.loc(0).to_string(), "f.toml:1:1");
        assert_eq!(s.loc(6).to_string(), "f.toml:2:1");
        // 'é' is two bytes: offset of '=' is 6 + 3 + 1 = 10 -> column 4.
        assert_eq!(s.loc(10).col, 4);
        assert_eq!(s.loc(1000).line, 3);
    }
}
