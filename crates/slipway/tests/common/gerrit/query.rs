//! Change queries: the operators Slipway may use, ANDed; anything else is refused so Slipway's
//! queries stay within what these tests prove.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Value, json};

use super::http::{HttpError, bad_request};
use super::render::Opts;
use super::state::{Change, Gerrit, Status};

/// One term of a change query; the terms of a query are ANDed.
enum Term {
    Project(String),
    Branch(String),
    Status(Vec<Status>),
    /// Updated at or after.
    After(DateTime<Utc>),
}

fn parse_query(q: &str) -> Result<Vec<Term>, HttpError> {
    let mut terms = Vec::new();
    for token in split_terms(q)? {
        let Some((op, value)) = token.split_once(':') else {
            return Err(bad_request(format!(
                "fake Gerrit: unsupported query term {token:?}"
            )));
        };
        terms.push(match op {
            "project" => Term::Project(value.to_string()),
            "branch" => Term::Branch(value.trim_start_matches("refs/heads/").to_string()),
            "status" => Term::Status(match value {
                "open" | "new" | "pending" => vec![Status::New],
                "merged" => vec![Status::Merged],
                "abandoned" => vec![Status::Abandoned],
                "closed" => vec![Status::Merged, Status::Abandoned],
                _ => return Err(bad_request(format!("Unrecognized value: {value}"))),
            }),
            "after" | "since" => Term::After(
                parse_time(value)
                    .ok_or_else(|| bad_request(format!("Unrecognized date: {value}")))?,
            ),
            _ => return Err(bad_request(format!("Unsupported operator {op}:{value}"))),
        });
    }
    Ok(terms)
}

/// Splits on spaces outside double quotes and drops the quotes.
fn split_terms(q: &str) -> Result<Vec<String>, HttpError> {
    let (mut terms, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in q.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    terms.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(bad_request("fake Gerrit: unbalanced quote in query"));
    }
    if !cur.is_empty() {
        terms.push(cur);
    }
    Ok(terms)
}

/// `YYYY-MM-DD[ HH:MM[:SS[.fraction]]]`, UTC.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let t = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()?
                .and_hms_opt(0, 0, 0)
        })?;
    Some(t.and_utc())
}

impl Gerrit {
    pub(super) fn query(&self, params: &[(String, String)]) -> Result<Value, HttpError> {
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let number = |k: &str, default: usize| -> Result<usize, HttpError> {
            param(k).map_or(Ok(default), |v| {
                v.parse()
                    .map_err(|_| bad_request(format!("invalid {k}: {v}")))
            })
        };
        let terms = parse_query(param("q").unwrap_or("status:open"))?;
        let opts = Opts::from_params(params)?;
        let (limit, skip) = (number("n", 500)?, number("S", 0)?);
        let mut hits: Vec<&Change> = self
            .changes
            .iter()
            .filter(|c| {
                terms.iter().all(|t| match t {
                    Term::Project(p) => *p == c.project,
                    Term::Branch(b) => *b == c.branch,
                    Term::Status(s) => s.contains(&c.status),
                    Term::After(t) => {
                        DateTime::from_timestamp_millis(c.updated).is_some_and(|u| u >= *t)
                    }
                })
            })
            .collect();
        hits.sort_by_key(|c| std::cmp::Reverse((c.updated, c.number)));
        let more = hits.len() > skip.saturating_add(limit);
        let mut page: Vec<Value> = hits
            .iter()
            .skip(skip)
            .take(limit)
            .map(|c| self.change_info(c, opts))
            .collect();
        if let (true, Some(last)) = (more, page.last_mut()) {
            last["_more_changes"] = json!(true);
        }
        Ok(json!(page))
    }
}
