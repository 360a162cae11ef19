//! Where the config file is looked for when `-c` is not given, and the error that lists those places.

use std::path::PathBuf;

/// No config file at any of the default locations (a missing `-c FILE` is `ConfigError::Read`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("no config file found (looked for {}); create one there or pass -c FILE", .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
pub struct NoConfig {
    pub searched: Vec<PathBuf>,
}

/// The config file to use: `-c`, else the first of the default locations that exists.
pub fn config_path(explicit: Option<PathBuf>) -> Result<PathBuf, NoConfig> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let mut candidates = vec![PathBuf::from("supervisor.toml")];
    if let Some(xdg) = std::env::var_os("XDG_CONFIG_HOME") {
        candidates.push(PathBuf::from(xdg).join("fushi/supervisor.toml"));
    } else if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".config/fushi/supervisor.toml"));
    }
    candidates.push(PathBuf::from("/etc/fushi/supervisor.toml"));
    match candidates.iter().find(|p| p.exists()) {
        Some(p) => Ok(p.clone()),
        // Absolute, so that the message says where "./" was when run from elsewhere.
        None => Err(NoConfig {
            searched: candidates
                .into_iter()
                .map(|p| std::path::absolute(&p).unwrap_or(p))
                .collect(),
        }),
    }
}
