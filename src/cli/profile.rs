//! Saved logins: `heterogen login` keeps a node's URL and session under a profile name in
//! `profiles.toml` (mode 0600) in the user's configuration directory, and later commands use
//! it instead of logging in again.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CliError;

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// Overrides where profiles are kept (tests, several users on one account).
const DIR_VARIABLE: &str = "HETEROGEN_CONFIG_DIR";

/// One saved login.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Profile {
    /// The node's URL, as given to `login`.
    pub url: String,
    /// The session token the node issued.
    pub session: String,
    /// The wallet address that logged in.
    pub address: String,
    /// The CA certificate given to `login`, as an absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

/// The file of every profile: `[name]` tables.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ProfileFile {
    #[serde(flatten)]
    profiles: BTreeMap<String, Profile>,
}

/// `profiles.toml` in `$HETEROGEN_CONFIG_DIR`, else in the platform's configuration directory
/// (`$XDG_CONFIG_HOME/heterogen` or `~/.config/heterogen` on Linux).
pub fn file_path() -> Result<PathBuf, CliError> {
    let dir = match std::env::var_os(DIR_VARIABLE) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => dirs::config_dir()
            .ok_or_else(|| {
                CliError::Failed(format!(
                    "cannot find a configuration directory for saved logins (set ${DIR_VARIABLE})"
                ))
            })?
            .join("heterogen"),
    };
    Ok(dir.join("profiles.toml"))
}

fn read_file(path: &Path) -> Result<ProfileFile, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| CliError::Failed(format!("cannot read saved logins in {}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ProfileFile::default()),
        Err(e) => Err(CliError::Failed(format!("cannot read {}: {e}", path.display()))),
    }
}

/// The profile `name`, if saved.
pub fn load(name: &str) -> Result<Option<Profile>, CliError> {
    let path = file_path()?;
    Ok(read_file(&path)?.profiles.remove(name))
}

/// Saves `profile` as `name` (replacing one of that name); returns the file written.
pub fn save(name: &str, profile: Profile) -> Result<PathBuf, CliError> {
    let path = file_path()?;
    let mut file = read_file(&path)?;
    file.profiles.insert(name.to_string(), profile);
    write_private(&path, &file)?;
    Ok(path)
}

/// Removes the profile `name`; whether there was one.
pub fn remove(name: &str) -> Result<bool, CliError> {
    let path = file_path()?;
    let mut file = read_file(&path)?;
    if file.profiles.remove(name).is_none() {
        return Ok(false);
    }
    write_private(&path, &file)?;
    Ok(true)
}

/// Writes the file readable by its owner only, through a temporary file and a rename, so a
/// crash leaves the old file or the new one and the sessions are never readable by others.
fn write_private(path: &Path, file: &ProfileFile) -> Result<(), CliError> {
    let failed =
        |e: std::io::Error| CliError::Failed(format!("cannot save the login in {}: {e}", path.display()));
    let text = toml::to_string(file)
        .map_err(|e| CliError::Failed(format!("cannot encode the saved logins: {e}")))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(failed)?;
    let temporary = path.with_extension("toml.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(&temporary).map_err(failed)?;
    out.write_all(text.as_bytes()).map_err(failed)?;
    out.sync_all().map_err(failed)?;
    drop(out);
    std::fs::rename(&temporary, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_round_trip_through_toml() {
        let mut file = ProfileFile::default();
        file.profiles.insert(
            "prod".into(),
            Profile {
                url: "wss://node.example".into(),
                session: "s1".into(),
                address: "g1".into(),
                ca: Some("/etc/ca.pem".into()),
            },
        );
        let text = toml::to_string(&file).unwrap();
        assert!(text.contains("[prod]"), "{text}");
        let back: ProfileFile = toml::from_str(&text).unwrap();
        assert_eq!(back.profiles, file.profiles);
    }
}
