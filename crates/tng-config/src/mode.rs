use crate::error::Result;
use crate::json::{Field, Obj};

/// Keys upstream treats as modes but this implementation does not serve.
const UNSUPPORTED_MODES: [&str; 2] = ["hook", "mapping_udp"];

/// Finds the one mode key of an entry. Upstream flattens the mode into the entry, so the mode
/// is "whichever mode key is present".
pub(crate) fn single_mode<'a>(
    obj: &mut Obj<'a>,
    supported: &[&str],
) -> Result<(&'a str, Field<'a>)> {
    let given: Vec<&'a str> = obj
        .keys()
        .filter(|k| supported.contains(k) || UNSUPPORTED_MODES.contains(k))
        .collect();
    match given.as_slice() {
        [] => Err(obj.err(format!(
            "no mode given: expected one of {}",
            supported.join(", ")
        ))),
        [mode] => {
            let Some(field) = obj.field(mode) else {
                return Err(obj.err("no mode given"));
            };
            if UNSUPPORTED_MODES.contains(mode) {
                return Err(field.err(format!(
                    "{mode} mode is not supported by this implementation"
                )));
            }
            Ok((*mode, field))
        }
        [first, second, ..] => Err(obj.err(format!(
            "more than one mode given: `{first}` and `{second}` (an entry has exactly one of {})",
            supported.join(", ")
        ))),
    }
}

/// Common keys upstream knows but this implementation does not serve.
pub(crate) fn reject_unsupported_common(obj: &mut Obj<'_>) -> Result<()> {
    if let Some(f) = obj.opt("quic") {
        return Err(f.err("quic is not supported by this implementation"));
    }
    Ok(())
}
