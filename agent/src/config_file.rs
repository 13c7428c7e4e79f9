//! `flintd --config FILE`: the same settings as the flags, as a JSON object whose keys
//! are the flag names (`"sandbox": "microvm"`, `"keep_alive": 60`,
//! `"pool_warm": ["python3.11:128=2"]`). The file's settings become flags placed
//! before the command line's, so a flag given on the command line wins.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// Unreadable file
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a JSON object
    #[error("config file {path} is not a JSON object of settings: {why}")]
    Format { path: PathBuf, why: String },
}

/// Turns the file's settings into flags.
pub fn file_args(path: &Path) -> Result<Vec<OsString>, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let format = |why: String| ConfigFileError::Format {
        path: path.to_path_buf(),
        why,
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format(e.to_string()))?;
    let serde_json::Value::Object(map) = value else {
        return Err(format("the top level must be an object".into()));
    };
    let mut args = Vec::new();
    for (key, value) in map {
        if key == "config" {
            return Err(format(
                "a config file cannot name another config file".into(),
            ));
        }
        let flag = format!("--{}", key.replace('_', "-"));
        let values = match value {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        for v in values {
            let text = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                other => {
                    return Err(format(format!(
                        "{key}: use a string, a number or a list of them, not {other}"
                    )))
                }
            };
            args.push(OsString::from(&flag));
            args.push(OsString::from(text));
        }
    }
    Ok(args)
}

/// The process arguments with a `--config FILE` (or `FLINT_CONFIG`) expanded in place.
pub fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, ConfigFileError> {
    let mut out = Vec::with_capacity(args.len());
    let mut file: Option<PathBuf> = std::env::var_os("FLINT_CONFIG").map(PathBuf::from);
    let mut it = args.into_iter();
    if let Some(prog) = it.next() {
        out.push(prog);
    }
    let mut rest = Vec::new();
    while let Some(a) = it.next() {
        if a == "--config" {
            file = it.next().map(PathBuf::from);
        } else if let Some(p) = a.to_str().and_then(|s| s.strip_prefix("--config=")) {
            file = Some(PathBuf::from(p));
        } else {
            rest.push(a);
        }
    }
    if let Some(f) = file {
        out.extend(file_args(&f)?);
    }
    out.extend(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(json: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), json).unwrap();
        f
    }

    #[test]
    fn settings_become_flags_before_the_command_line() {
        let f = write(
            r#"{"sandbox": "microvm", "keep_alive": 60, "pool_warm": ["python3.11:128=2", "provided:256=1"]}"#,
        );
        let args: Vec<OsString> = [
            "flintd",
            "--config",
            f.path().to_str().unwrap(),
            "--keep-alive",
            "5",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let got: Vec<String> = expand(args)
            .unwrap()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "flintd",
                "--keep-alive",
                "60",
                "--pool-warm",
                "python3.11:128=2",
                "--pool-warm",
                "provided:256=1",
                "--sandbox",
                "microvm",
                "--keep-alive",
                "5"
            ]
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let f = write("[1, 2]");
        let e = file_args(f.path()).unwrap_err().to_string();
        assert!(e.contains("top level must be an object"), "{e}");
        let f = write(r#"{"sandbox": {"nested": true}}"#);
        let e = file_args(f.path()).unwrap_err().to_string();
        assert!(e.contains("sandbox: use a string"), "{e}");
        let e = file_args(Path::new("/nonexistent/flintd.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read config file"), "{e}");
    }
}
