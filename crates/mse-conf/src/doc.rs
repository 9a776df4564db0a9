//! A typed reader over a parsed TOML table that keeps every value's line, so that each error
//! can name the file, the line and the dotted field.

use std::cell::RefCell;
use std::path::Path;

use chrono::{DateTime, FixedOffset, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{ConfError, ConfWarning};

/// A value and the 1-based line it was written on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located<T> {
    pub value: T,
    pub line: usize,
    /// Dotted name of the field, e.g. `cloud.secrets`.
    pub field: String,
}

pub(crate) struct Doc<'a> {
    pub file: &'a Path,
    line_starts: Vec<usize>,
}

impl<'a> Doc<'a> {
    pub fn new(file: &'a Path, src: &str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Self { file, line_starts }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }

    /// 1-based column of a byte offset (in bytes, as editors with UTF-8 agree on ASCII TOML).
    pub fn column(&self, offset: usize) -> usize {
        let line = self.line(offset);
        offset - self.line_starts[line - 1] + 1
    }

    pub fn err(&self, line: usize, message: impl Into<String>) -> ConfError {
        ConfError::at(self.file, Some(line), message)
    }
}

pub(crate) struct TableReader<'d, 'i> {
    doc: &'d Doc<'d>,
    table: &'d DeTable<'i>,
    /// Dotted prefix of the fields, "" at the top level, "cloud.ssl." below.
    prefix: String,
    /// Line of the table header (1 for the top level).
    pub line: usize,
    used: RefCell<Vec<String>>,
}

impl<'d, 'i> TableReader<'d, 'i> {
    pub fn top(doc: &'d Doc<'d>, table: &'d DeTable<'i>) -> Self {
        Self {
            doc,
            table,
            prefix: String::new(),
            line: 1,
            used: RefCell::new(Vec::new()),
        }
    }

    pub fn err(&self, line: usize, message: impl Into<String>) -> ConfError {
        self.doc.err(line, message)
    }

    pub fn field(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn table_name(&self) -> String {
        self.prefix.trim_end_matches('.').to_string()
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    fn get(&self, key: &str) -> Option<&'d Spanned<DeValue<'i>>> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(_, v)| v)
    }

    fn lookup(&self, key: &str) -> Option<(&'d DeValue<'i>, usize)> {
        self.used.borrow_mut().push(key.to_string());
        self.get(key)
            .map(|v| (v.get_ref(), self.doc.line(v.span().start)))
    }

    fn missing(&self, key: &str, expected: &str) -> ConfError {
        let place = if self.prefix.is_empty() {
            String::new()
        } else {
            format!(" in [{}]", self.table_name())
        };
        self.doc.err(
            self.line,
            format!("missing field \"{key}\"{place} (expected {expected})"),
        )
    }

    fn wrong_type(&self, key: &str, line: usize, expected: &str, got: &DeValue<'_>) -> ConfError {
        self.doc.err(
            line,
            format!(
                "{} must be {expected}, got {}",
                self.field(key),
                describe(got)
            ),
        )
    }

    pub fn opt_str(&self, key: &str) -> Result<Option<Located<String>>, ConfError> {
        match self.lookup(key) {
            None => Ok(None),
            Some((DeValue::String(s), line)) => Ok(Some(Located {
                value: s.to_string(),
                line,
                field: self.field(key),
            })),
            Some((other, line)) => Err(self.wrong_type(key, line, "a string", other)),
        }
    }

    pub fn req_str(&self, key: &str, expected: &str) -> Result<Located<String>, ConfError> {
        self.opt_str(key)?
            .ok_or_else(|| self.missing(key, expected))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<Located<bool>>, ConfError> {
        match self.lookup(key) {
            None => Ok(None),
            Some((DeValue::Boolean(b), line)) => Ok(Some(Located {
                value: *b,
                line,
                field: self.field(key),
            })),
            Some((other, line)) => Err(self.wrong_type(key, line, "true or false", other)),
        }
    }

    pub fn req_str_list(&self, key: &str) -> Result<Located<Vec<String>>, ConfError> {
        let (value, line) = self
            .lookup(key)
            .ok_or_else(|| self.missing(key, "a list of strings"))?;
        let DeValue::Array(items) = value else {
            return Err(self.wrong_type(key, line, "a list of strings", value));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push(s.to_string()),
                other => {
                    return Err(self.doc.err(
                        self.doc.line(item.span().start),
                        format!(
                            "{}[{i}] must be a string, got {}",
                            self.field(key),
                            describe(other)
                        ),
                    ));
                }
            }
        }
        Ok(Located {
            value: out,
            line,
            field: self.field(key),
        })
    }

    pub fn opt_table(&self, key: &str) -> Result<Option<TableReader<'d, 'i>>, ConfError> {
        let Some((value, line)) = self.lookup(key) else {
            return Ok(None);
        };
        let DeValue::Table(table) = value else {
            return Err(self.wrong_type(key, line, "a table", value));
        };
        Ok(Some(TableReader {
            doc: self.doc,
            table,
            prefix: format!("{}{key}.", self.prefix),
            line,
            used: RefCell::new(Vec::new()),
        }))
    }

    pub fn req_table(&self, key: &str) -> Result<TableReader<'d, 'i>, ConfError> {
        self.opt_table(key)?
            .ok_or_else(|| self.missing(key, &format!("a [{}] table", self.field(key))))
    }

    /// A datetime: a TOML datetime or a string such as `2023-06-29 00:00:00+00:00`.
    /// Without an offset it is local time, as in the original.
    pub fn opt_datetime(&self, key: &str) -> Result<Option<Located<DateTime<Utc>>>, ConfError> {
        let expected = "a date and time such as 2030-06-29T00:00:00Z";
        let Some((value, line)) = self.lookup(key) else {
            return Ok(None);
        };
        let text = match value {
            DeValue::Datetime(dt) => dt.to_string(),
            DeValue::String(s) => s.to_string(),
            other => return Err(self.wrong_type(key, line, expected, other)),
        };
        match parse_datetime(&text) {
            Some(dt) => Ok(Some(Located {
                value: dt,
                line,
                field: self.field(key),
            })),
            None => Err(self.doc.err(
                line,
                format!(
                    "{} must be {expected}, got {}",
                    self.field(key),
                    crate::bounded::quote(&text)
                ),
            )),
        }
    }

    /// Warns about every key that no getter asked for.
    pub fn warn_unknown(&self, warnings: &mut Vec<ConfWarning>) {
        let used = self.used.borrow();
        let mut unknown: Vec<(usize, String)> = self
            .table
            .iter()
            .filter(|(k, _)| !used.iter().any(|u| u == k.get_ref().as_ref()))
            .map(|(k, _)| (self.doc.line(k.span().start), k.get_ref().to_string()))
            .collect();
        unknown.sort();
        for (line, key) in unknown {
            warnings.push(ConfWarning {
                file: self.doc.file.to_path_buf(),
                line: Some(line),
                message: format!("unknown field \"{}\" (ignored)", self.field(&key)),
            });
        }
    }
}

fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("string {}", crate::bounded::quote(s)),
        DeValue::Integer(i) => format!("integer {}", i.as_str()),
        DeValue::Float(f) => format!("float {}", f.as_str()),
        DeValue::Boolean(b) => format!("boolean {b}"),
        DeValue::Datetime(d) => format!("datetime {d}"),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

pub(crate) fn parse_datetime(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(dt) = DateTime::<FixedOffset>::parse_from_rfc3339(text) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(dt) = DateTime::<FixedOffset>::parse_from_str(text, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|fmt| NaiveDateTime::parse_from_str(text, fmt).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|dt| dt.with_timezone(&Utc))
}
