use crate::error::Result;
use crate::json::{Field, Obj};

/// Finds the one mode key of an entry. Upstream flattens the mode into the entry, so the mode
/// is "whichever mode key is present".
pub(crate) fn single_mode<'a>(
    obj: &mut Obj<'a>,
    supported: &[&str],
) -> Result<(&'a str, Field<'a>)> {
    let given: Vec<&'a str> = obj.keys().filter(|k| supported.contains(k)).collect();
    match given.as_slice() {
        [] => Err(obj.err(format!(
            "no mode given: expected one of {}",
            supported.join(", ")
        ))),
        [mode] => {
            let Some(field) = obj.field(mode) else {
                return Err(obj.err("no mode given"));
            };
            Ok((*mode, field))
        }
        [first, second, ..] => Err(obj.err(format!(
            "more than one mode given: `{first}` and `{second}` (an entry has exactly one of {})",
            supported.join(", ")
        ))),
    }
}

/// `quic`: read by the UDP modes; TCP modes accept and ignore it, as upstream does.
pub(crate) fn parse_quic_common(obj: &mut Obj<'_>) -> Result<crate::udp::Quic> {
    match obj.opt("quic") {
        Some(f) => crate::udp::parse_quic(&f),
        None => Ok(crate::udp::Quic::default()),
    }
}
