//! The configuration parser (`--config-file` / `--config-content`). Not peer input, but it
//! takes arbitrary operator text and must answer with an error, never a panic.

/// Input: configuration text; non-UTF-8 input is refused before the parser, as the CLI does.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = tng_config::parse(text) {
        // The message is what the operator sees; building it must not panic either.
        let _ = e.to_string();
    }
}
