//! Deb822 stanzas (`control` files, `Packages`, `Release`): ordered fields, continuation lines
//! kept verbatim so a stanza written back is byte-for-byte what the package declared.

use std::fmt::Write as _;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stanza {
    fields: Vec<(String, String)>,
}

impl Stanza {
    pub fn new() -> Stanza {
        Stanza::default()
    }

    /// Parses one stanza. Continuation lines (starting with space or tab) belong to the field
    /// above. Returns a reason on malformed input.
    pub fn parse(text: &str) -> Result<Stanza, String> {
        let mut stanzas = parse_all(text)?;
        match stanzas.len() {
            0 => Err("empty control data".into()),
            1 => Ok(stanzas.remove(0)),
            n => Err(format!("expected one stanza, found {n}")),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Sets a field, replacing an existing one in place (case-insensitive) or appending.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .fields
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name.to_string(), value)),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self
            .fields
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(name))?;
        Some(self.fields.remove(i).1)
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The stanza as text, one `Name: value` per field, multi-line values as given, ending in a
    /// newline (no blank line).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.fields {
            if v.is_empty() || v.starts_with('\n') {
                let _ = writeln!(out, "{k}:{v}");
            } else {
                let _ = writeln!(out, "{k}: {v}");
            }
        }
        out
    }
}

/// Parses every stanza of a file; stanzas are separated by blank lines.
pub fn parse_all(text: &str) -> Result<Vec<Stanza>, String> {
    let mut out = Vec::new();
    let mut current = Stanza::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            if !current.fields.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            let Some(last) = current.fields.last_mut() else {
                return Err(format!("line {}: continuation line without a field", n + 1));
            };
            last.1.push('\n');
            last.1.push_str(line);
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("line {}: expected 'Field: value'", n + 1));
        };
        let valid_name = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
            && !name.starts_with('-');
        if !valid_name {
            return Err(format!("line {}: invalid field name '{name}'", n + 1));
        }
        if current.get(name).is_some() {
            return Err(format!("line {}: field '{name}' appears twice", n + 1));
        }
        current
            .fields
            .push((name.to_string(), value.trim().to_string()));
    }
    if !current.fields.is_empty() {
        out.push(current);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_multiline_fields() {
        let text = "Package: a\nVersion: 1.0\nDescription: short\n long line\n .\n more\n";
        let s = Stanza::parse(text).unwrap();
        assert_eq!(s.get("package"), Some("a"));
        assert_eq!(s.get("Description"), Some("short\n long line\n .\n more"));
        assert_eq!(s.to_text(), text);
    }

    #[test]
    fn checksum_style_fields_round_trip() {
        let text = "SHA256:\n abc 12 main/Packages\n";
        let s = Stanza::parse(text).unwrap();
        assert_eq!(s.to_text(), text);
    }

    #[test]
    fn malformed_input_is_rejected() {
        assert!(Stanza::parse(" leading continuation\n").is_err());
        assert!(Stanza::parse("NoColon\n").is_err());
        assert!(Stanza::parse("A: 1\nA: 2\n").is_err());
        assert!(Stanza::parse("").is_err());
        assert_eq!(parse_all("A: 1\n\nB: 2\n").unwrap().len(), 2);
    }
}
