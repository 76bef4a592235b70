//! Which deployment config a program uses when it is not named: the one search order every
//! framebus program follows (`ctl`, the Rust reader crate, the Python package).
//!
//! 1. the file given explicitly (`--config F`, or the path passed to `Camera::open`);
//! 2. else the environment variable [`CONFIG_ENV`] (`FRAMEBUS_CONFIG`), when set and not empty;
//! 3. else [`LOCAL_CONFIG`] (`./framebus.toml`) when it exists;
//! 4. else [`DEFAULT_CONFIG`] (`configs/default.toml`, the repository's default deployment) when
//!    it exists.
//!
//! An explicit file or the environment's is used even when it does not exist, so loading it
//! names that file in its error; only the two fallbacks are looked for.

use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable naming the deployment config (set by `ctl up` for the processes it starts).
pub const CONFIG_ENV: &str = "FRAMEBUS_CONFIG";
/// Config file looked for in the working folder when none is named.
pub const LOCAL_CONFIG: &str = "framebus.toml";
/// The repository's default deployment, the last fallback.
pub const DEFAULT_CONFIG: &str = "configs/default.toml";

/// Where the config in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOrigin {
    /// Named explicitly (`--config`, an argument).
    Explicit,
    /// The environment variable [`CONFIG_ENV`].
    Environment,
    /// [`LOCAL_CONFIG`] in the working folder.
    Local,
    /// [`DEFAULT_CONFIG`].
    Default,
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigOrigin::Explicit => "given with --config",
            ConfigOrigin::Environment => "from FRAMEBUS_CONFIG",
            ConfigOrigin::Local => "./framebus.toml, found in the working folder",
            ConfigOrigin::Default => {
                "configs/default.toml, the default (no --config, FRAMEBUS_CONFIG or ./framebus.toml)"
            }
        })
    }
}

/// The config file chosen and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedConfig {
    /// The file.
    pub path: PathBuf,
    /// Where it came from.
    pub origin: ConfigOrigin,
}

impl fmt::Display for LocatedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.path.display(), self.origin)
    }
}

/// No config was named and none of the fallbacks exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no deployment config: none given with --config, FRAMEBUS_CONFIG is not set, and neither {local} nor {default} exists in {cwd}; name one with --config FILE or FRAMEBUS_CONFIG=FILE",
    local = LOCAL_CONFIG,
    default = DEFAULT_CONFIG,
    cwd = working_folder.display()
)]
pub struct NoConfig {
    /// The folder the fallbacks were looked for in.
    pub working_folder: PathBuf,
}

/// Finds the config to use: `explicit`, else `FRAMEBUS_CONFIG`, else `./framebus.toml`, else
/// `configs/default.toml` (see the module docs).
pub fn locate_config(explicit: Option<&Path>) -> Result<LocatedConfig, NoConfig> {
    locate_config_with(explicit, std::env::var_os(CONFIG_ENV).map(PathBuf::from), Path::new("."))
}

/// [`locate_config`] with the environment's value and the working folder given (for tests).
pub fn locate_config_with(
    explicit: Option<&Path>,
    environment: Option<PathBuf>,
    folder: &Path,
) -> Result<LocatedConfig, NoConfig> {
    if let Some(path) = explicit {
        return Ok(LocatedConfig { path: path.to_path_buf(), origin: ConfigOrigin::Explicit });
    }
    if let Some(path) = environment.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(LocatedConfig { path, origin: ConfigOrigin::Environment });
    }
    for (name, origin) in [(LOCAL_CONFIG, ConfigOrigin::Local), (DEFAULT_CONFIG, ConfigOrigin::Default)] {
        let candidate = folder.join(name);
        if candidate.is_file() {
            let path = if folder == Path::new(".") { PathBuf::from(name) } else { candidate };
            return Ok(LocatedConfig { path, origin });
        }
    }
    let working_folder = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
    Err(NoConfig { working_folder })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_order_is_explicit_environment_local_default() {
        let dir = tempfile::tempdir().expect("temp dir");
        let folder = dir.path();
        let env = Some(PathBuf::from("/etc/framebus/site.toml"));
        let none = locate_config_with(None, None, folder).expect_err("nothing to find");
        assert!(none.to_string().contains("--config FILE"), "{none}");

        std::fs::create_dir(folder.join("configs")).expect("configs folder");
        std::fs::write(folder.join(DEFAULT_CONFIG), "").expect("default config");
        let found = locate_config_with(None, None, folder).expect("default");
        assert_eq!((found.path, found.origin), (folder.join(DEFAULT_CONFIG), ConfigOrigin::Default));

        std::fs::write(folder.join(LOCAL_CONFIG), "").expect("local config");
        let found = locate_config_with(None, None, folder).expect("local");
        assert_eq!((found.path, found.origin), (folder.join(LOCAL_CONFIG), ConfigOrigin::Local));

        let found = locate_config_with(None, env.clone(), folder).expect("environment");
        assert_eq!(found.origin, ConfigOrigin::Environment);
        assert_eq!(found.path, PathBuf::from("/etc/framebus/site.toml"));
        // An empty variable counts as unset.
        let found = locate_config_with(None, Some(PathBuf::new()), folder).expect("local");
        assert_eq!(found.origin, ConfigOrigin::Local);

        let found = locate_config_with(Some(Path::new("mine.toml")), env, folder).expect("explicit");
        assert_eq!((found.path, found.origin), (PathBuf::from("mine.toml"), ConfigOrigin::Explicit));
    }
}
