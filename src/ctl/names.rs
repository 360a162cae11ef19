//! Names on the command line: tree paths, `collectors/*`, `all`, and unambiguous last parts (`heartbeat`), resolved against the running tree.

use anyhow::bail;
use fushi_actors::board::StatusDoc;

use super::target::*;

/// Whether `pattern` (`name`, `sub/*`, `all`) selects actor `name`.
pub(super) fn selects(pattern: &str, name: &str) -> bool {
    pattern == "all"
        || pattern == name
        || pattern
            .strip_suffix("/*")
            .is_some_and(|p| name.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// The actor paths `names` mean: a full path, `all` or a glob stays as it is; any other name
/// is the last part(s) of exactly one actor's path (`heartbeat` → `collectors/heartbeat`). An
/// unknown or ambiguous name is an error that lists the known ones.
pub(super) fn resolve(doc: &StatusDoc, names: Vec<String>) -> anyhow::Result<Vec<String>> {
    let known: Vec<&str> = doc.actors.iter().map(|a| a.name.as_str()).collect();
    names.into_iter().map(|n| resolve_one(&known, n)).collect()
}

pub(super) fn resolve_one(known: &[&str], n: String) -> anyhow::Result<String> {
    if n == "all" || n.contains('*') || known.contains(&n.as_str()) {
        return Ok(n);
    }
    let suffix = format!("/{n}");
    let matching: Vec<&str> = known
        .iter()
        .copied()
        .filter(|a| a.ends_with(&suffix))
        .collect();
    match matching[..] {
        [one] => Ok(one.to_string()),
        [] => bail!("no actor named {n:?}; known: {}", known.join(", ")),
        _ => bail!(
            "{n:?} is ambiguous: it could be {}; give the full name",
            matching.join(" or ")
        ),
    }
}

/// [`resolve`] against the running daemon, for the commands that send names to it. A daemon
/// that cannot be asked gets the names as given: the command itself then says why. So does an
/// unknown full path (`collectors/zz`): the supervisor answers it with the names of that level.
pub fn resolve_names(t: &Target, names: Vec<String>) -> anyhow::Result<Vec<String>> {
    let Ok(doc) = status_doc(t) else {
        return Ok(names);
    };
    let known: Vec<&str> = doc.actors.iter().map(|a| a.name.as_str()).collect();
    names
        .into_iter()
        .map(|n| {
            let suffix = format!("/{n}");
            let unknown_path =
                n.contains('/') && !known.iter().any(|k| *k == n || k.ends_with(&suffix));
            if unknown_path {
                Ok(n)
            } else {
                resolve_one(&known, n)
            }
        })
        .collect()
}
