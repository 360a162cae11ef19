//! Key paths into the config (`collector[2].every`): what a semantic error names, and how it is mapped back to a byte offset, so that every error can name its line.

/// One step of a key path, for mapping a semantic error back to a line.
#[derive(Debug, Clone)]
pub(super) enum Seg {
    Key(&'static str),
    Index(usize),
}

pub(super) struct Problem {
    pub(super) at: Vec<Seg>,
    pub(super) message: String,
}

pub(super) fn key_string(at: &[Seg]) -> String {
    let mut s = String::new();
    for seg in at {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The byte offset of the key at `at` in `text` (the key itself, or its table when absent).
pub(super) fn locate(text: &str, at: &[Seg]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut value: Option<&toml::Spanned<DeValue>> = None;
    let mut best = None;
    for seg in at {
        match seg {
            Seg::Key(k) => {
                let t = match value.map(|v| v.get_ref()) {
                    None => table,
                    Some(DeValue::Table(t)) => t,
                    Some(_) => return best,
                };
                let Some((key, v)) = t.iter().find(|(key, _)| key.get_ref() == k) else {
                    return best;
                };
                best = Some(key.span().start);
                table = t;
                value = Some(v);
            }
            Seg::Index(i) => match value.map(|v| v.get_ref()) {
                Some(DeValue::Array(items)) => {
                    let v = items.get(*i)?;
                    best = Some(v.span().start);
                    value = Some(v);
                }
                _ => return best,
            },
        }
    }
    best
}
