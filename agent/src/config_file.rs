//! `--config FILE`: agent settings from a TOML file, for deployments that
//! would rather not pass twenty flags. Keys are the flags' names with
//! underscores (`flush_interval_ms = 250`). A flag on the command line, or
//! its `FLOE_*` variable in the environment, wins over the file; the file
//! wins over the defaults. Every value is checked as the flag's would be.

use std::collections::HashSet;
use std::ffi::OsString;

use clap::{ArgAction, Command};

/// `args` with the file's settings added as flags (those not already given
/// by a flag or the environment). `command` is the binary's clap command,
/// which names the settings there are.
pub fn apply(command: &Command, args: Vec<OsString>, path: &str) -> Result<Vec<OsString>, String> {
    let at = |what: String| format!("config file {path}: {what}");
    let text = std::fs::read_to_string(path).map_err(|e| at(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| at(e.to_string()))?;
    let given: HashSet<String> = args
        .iter()
        .filter_map(|a| a.to_str()?.strip_prefix("--"))
        .map(|a| a.split('=').next().unwrap_or(a).to_owned())
        .collect();
    let mut out = args;
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && !a.is_hide_set() && long != "config")
            .ok_or_else(|| {
                at(format!("unknown setting {key:?} (settings are the flags' names with underscores, such as flush_interval_ms)"))
            })?;
        let from_env = arg.get_env().is_some_and(|env| std::env::var_os(env).is_some());
        if given.contains(&long) || from_env {
            continue;
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            // A list setting (`auth_open`), as its flag takes it.
            toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => {
                items.iter().filter_map(toml::Value::as_str).collect::<Vec<_>>().join(",")
            }
            other => {
                return Err(at(format!(
                    "{key} must be a string, a number, a boolean or a list of strings, not {}",
                    other.type_str()
                )));
            }
        };
        match arg.get_action() {
            ArgAction::SetTrue => match text.as_str() {
                "true" => out.push(format!("--{long}").into()),
                "false" => {}
                _ => return Err(at(format!("{key} must be true or false"))),
            },
            _ => out.push(format!("--{long}={text}").into()),
        }
    }
    Ok(out)
}

/// Where `--config` (or `FLOE_CONFIG`) points, if anywhere.
pub fn path(args: &[OsString]) -> Option<String> {
    let mut args = args.iter().filter_map(|a| a.to_str());
    while let Some(a) = args.next() {
        if a == "--config" {
            return args.next().map(str::to_owned);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(p.to_owned());
        }
    }
    std::env::var("FLOE_CONFIG").ok()
}
