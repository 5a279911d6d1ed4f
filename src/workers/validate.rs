//! Checks client input for worker records and turns it into a [`WorkerScript`]
//! (W-SET-3..9, W-UPD-2..4). Both `setWorker` and `updateWorker` go through [`Settings::read`],
//! so the two methods can never disagree about what a valid worker is.

use serde_json::{Map, Value};

use super::minify::{MAX_SCRIPT_BYTES, MinifyError, format_script, minify_script_off_thread};
use super::model::{ExecutionMode, Priority, RunMode, Scope, WorkerScript};

/// Dependencies a script may declare (the SDK modules this node provides).
pub const KNOWN_DEPENDENCIES: &[&str] = &["gliesereum"];

/// A field with a wrong type or value: `field` as the client spelled it, `reason` in words.
#[derive(Debug, PartialEq)]
pub struct FieldError {
    /// The field, as the client named it.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    fn new(field: &str, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Reads one optional field of a JSON object.
struct Fields<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn present(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn string(&self, name: &str) -> Result<Option<&'a str>, FieldError> {
        match self.present(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(FieldError::new(name, "must be a string")),
        }
    }

    fn choice<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        names: &[&str],
        default: T,
    ) -> Result<T, FieldError> {
        match self.present(name) {
            None => Ok(default),
            Some(Value::String(s)) => parse(s)
                .ok_or_else(|| FieldError::new(name, format!("{s:?} is not one of {}", names.join(", ")))),
            Some(_) => Err(FieldError::new(
                name,
                format!("must be one of {}", names.join(", ")),
            )),
        }
    }
}

/// Everything about a worker except its identity, script and activity.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Once or in a loop (default `loop`).
    pub mode: RunMode,
    /// The client's grouping (default `network`).
    pub scope: Scope,
    /// Where it runs (default `parallel`).
    pub execution_mode: ExecutionMode,
    /// Its class on the JS pool (default `normal`).
    pub priority: Priority,
    /// An exchange account, if any.
    pub account_id: Option<String>,
    /// The node of an `exclusive` worker.
    pub assigned_node: Option<String>,
    /// SDK modules the script declares.
    pub dependencies: Vec<String>,
    /// The SDK version, if given.
    pub version: Option<String>,
    /// Free text, if given.
    pub note: Option<String>,
}

/// Why [`Settings::read`] refused the input.
#[derive(Debug, PartialEq)]
pub enum SettingsError {
    /// One field is invalid.
    Field(FieldError),
    /// A rule across fields, with its fixed message (W-SET-5, W-SET-7, W-SET-9).
    Rule(String),
}

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SettingsError::Field(e) => write!(f, "Invalid {}: {}", e.field, e.reason),
            SettingsError::Rule(message) => f.write_str(message),
        }
    }
}

impl From<FieldError> for SettingsError {
    fn from(e: FieldError) -> Self {
        SettingsError::Field(e)
    }
}

/// What a worker record holds besides its [`Settings`].
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    /// The worker's id.
    pub sid: String,
    /// The node that created it.
    pub nid: String,
    /// Whether it should run.
    pub active: bool,
    /// Free text for people.
    pub note: String,
    /// The minified script.
    pub script: String,
    /// The SDK version.
    pub version: String,
    /// When the record is written (ms since the epoch).
    pub timestamp: i64,
}

impl Settings {
    /// The worker record of `identity` with these settings.
    pub fn into_worker(self, identity: Identity) -> WorkerScript {
        WorkerScript {
            sid: identity.sid,
            nid: identity.nid,
            active: identity.active,
            mode: self.mode,
            scope: self.scope,
            execution_mode: self.execution_mode,
            priority: self.priority,
            account_id: self.account_id,
            assigned_node: self.assigned_node,
            note: identity.note,
            script: identity.script,
            dependencies: self.dependencies,
            version: identity.version,
            timestamp: identity.timestamp,
        }
    }

    /// Reads and checks the settings fields of `map`; absent fields take their defaults.
    pub fn read(map: &Map<String, Value>) -> Result<Settings, SettingsError> {
        let f = Fields { map };
        let mode = f.choice("mode", RunMode::parse, RunMode::NAMES, RunMode::Loop)?;
        let scope = f.choice("scope", Scope::parse, Scope::NAMES, Scope::Network)?;
        let execution_mode = f.choice(
            "executionMode",
            ExecutionMode::parse,
            ExecutionMode::NAMES,
            ExecutionMode::Parallel,
        )?;
        let priority = f.choice("priority", Priority::parse, Priority::NAMES, Priority::Normal)?;
        let account_id = f.string("accountId")?.map(str::to_string);
        let assigned_node = f.string("assignedNode")?.map(str::trim).filter(|s| !s.is_empty());
        let dependencies = match f.present("dependencies") {
            None => vec!["gliesereum".to_string()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(FieldError::new("dependencies", "must be an array of strings")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(FieldError::new("dependencies", "must be an array of strings").into()),
        };
        let version = f.string("version")?.map(str::to_string);
        let note = f.string("note")?.map(str::to_string);

        if execution_mode == ExecutionMode::Exclusive && assigned_node.is_none() {
            return Err(SettingsError::Rule(
                "Exclusive mode requires assignedNode parameter".into(),
            ));
        }
        if scope == Scope::Local && execution_mode != ExecutionMode::Leader {
            return Err(SettingsError::Rule(
                "Local scope workers can only use leader execution mode".into(),
            ));
        }
        if let Some(unknown) = dependencies
            .iter()
            .find(|d| !KNOWN_DEPENDENCIES.contains(&d.as_str()))
        {
            return Err(SettingsError::Rule(format!("Unknown dependency: {unknown}")));
        }
        let assigned_node = (execution_mode == ExecutionMode::Exclusive)
            .then(|| assigned_node.unwrap_or_default().to_string());
        Ok(Settings {
            mode,
            scope,
            execution_mode,
            priority,
            account_id,
            assigned_node,
            dependencies,
            version,
            note,
        })
    }
}

/// Why a script cannot be stored or printed.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// Absent, not a string, blank, or comments only: nothing to run.
    #[error("Invalid script content")]
    Empty,
    /// Longer than [`MAX_SCRIPT_BYTES`] (the source before minification, or a script to print).
    #[error("Script exceeds {} KiB{}", MAX_SCRIPT_BYTES / 1024, if *.before_minification { " before minification" } else { "" })]
    TooLarge {
        /// Whether the text was a source to minify (else a script to print).
        before_minification: bool,
    },
    /// It does not parse; the details name the line and column (W-SET-3).
    #[error("Script minification failed")]
    Syntax(#[from] MinifyError),
    /// The minifier's thread failed.
    #[error("the script minifier failed: {0}")]
    Minifier(String),
}

/// Checks and minifies a script (W-SET-3, W-SET-4): `None` stands for an absent value.
/// Minifying takes about 1 ms per 40 KiB, so it runs off the network threads.
pub async fn prepare_script(script: Option<&Value>) -> Result<String, ScriptError> {
    let text = match script {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err(ScriptError::Empty),
    };
    // Before minification the source may be larger than the stored entry (comments, spaces),
    // but not without bound: parsing costs memory in proportion to the text.
    if text.len() > MAX_SCRIPT_BYTES {
        return Err(ScriptError::TooLarge {
            before_minification: true,
        });
    }
    let minified = minify_script_off_thread(text).await?;
    if minified.trim().is_empty() {
        // A script of comments only has nothing to run.
        return Err(ScriptError::Empty);
    }
    Ok(minified)
}

/// `script` printed for reading (the console shows stored, minified scripts this way).
pub async fn readable_script(script: &str) -> Result<String, ScriptError> {
    if script.len() > MAX_SCRIPT_BYTES {
        return Err(ScriptError::TooLarge {
            before_minification: false,
        });
    }
    let text = script.to_string();
    Ok(tokio::task::spawn_blocking(move || format_script(&text))
        .await
        .map_err(|e| ScriptError::Minifier(e.to_string()))??)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<Settings, SettingsError> {
        Settings::read(v.as_object().unwrap())
    }

    #[test]
    fn defaults() {
        let s = read(json!({})).unwrap();
        assert_eq!(s.mode, RunMode::Loop);
        assert_eq!(s.scope, Scope::Network);
        assert_eq!(s.execution_mode, ExecutionMode::Parallel);
        assert_eq!(s.priority, Priority::Normal);
        assert_eq!(s.dependencies, vec!["gliesereum"]);
        assert_eq!(s.assigned_node, None);
    }

    #[test]
    fn errors_name_the_field_and_values() {
        let SettingsError::Field(e) = read(json!({"priority": "urgent"})).unwrap_err() else {
            panic!()
        };
        assert_eq!(e.field, "priority");
        assert!(e.reason.contains("critical, high, normal, low"), "{}", e.reason);
        let SettingsError::Field(e) = read(json!({"mode": 3})).unwrap_err() else {
            panic!()
        };
        assert_eq!(e.field, "mode");
    }

    #[test]
    fn rules() {
        assert_eq!(
            read(json!({"executionMode": "exclusive"})).unwrap_err(),
            SettingsError::Rule("Exclusive mode requires assignedNode parameter".into())
        );
        assert_eq!(
            read(json!({"scope": "local", "executionMode": "parallel"})).unwrap_err(),
            SettingsError::Rule("Local scope workers can only use leader execution mode".into())
        );
        assert_eq!(
            read(json!({"dependencies": ["left-pad"]})).unwrap_err(),
            SettingsError::Rule("Unknown dependency: left-pad".into())
        );
        let s = read(json!({"executionMode": "leader", "assignedNode": "s-0002"})).unwrap();
        assert_eq!(s.assigned_node, None, "assignedNode is kept only for exclusive");
        let s = read(json!({"executionMode": "exclusive", "assignedNode": "s-0002"})).unwrap();
        assert_eq!(s.assigned_node.as_deref(), Some("s-0002"));
    }

    #[tokio::test]
    async fn scripts() {
        assert_eq!(
            prepare_script(Some(&json!(""))).await.unwrap_err().to_string(),
            "Invalid script content"
        );
        assert_eq!(
            prepare_script(Some(&json!(5))).await.unwrap_err().to_string(),
            "Invalid script content"
        );
        let e = prepare_script(Some(&json!("let = ;"))).await.unwrap_err();
        assert_eq!(e.to_string(), "Script minification failed");
        let ScriptError::Syntax(syntax) = e else {
            panic!("{e:?}")
        };
        assert!(syntax.to_string().contains("line 1"), "{syntax}");
        let once = prepare_script(Some(&json!("const a = 1;\n  return a;")))
            .await
            .unwrap();
        assert_eq!(prepare_script(Some(&json!(once.clone()))).await.unwrap(), once);
        let huge = format!("/*{}*/a", " ".repeat(MAX_SCRIPT_BYTES));
        assert!(
            prepare_script(Some(&json!(huge)))
                .await
                .unwrap_err()
                .to_string()
                .contains("before minification")
        );
    }
}
