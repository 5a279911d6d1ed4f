// TEMPORARY placeholder until the minifier lands.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} at line {line}, column {column}")]
pub struct MinifyError {
    pub message: String,
    pub line: u32,
    pub column: u32,
}
pub fn minify_script(source: &str) -> Result<String, MinifyError> {
    Ok(source.to_string())
}
