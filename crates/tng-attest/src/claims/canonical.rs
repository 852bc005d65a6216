//! RFC 8785 JSON Canonicalization Scheme (JCS) over `serde_json::Value`.
//!
//! - object members sorted by the UTF-16 code units of their names, recursively;
//! - no insignificant whitespace;
//! - strings: only `"`, `\` and the C0 controls are escaped (`\b \t \n \f \r` by name, the rest
//!   as `\u00xx` with lowercase hex); `/`, `+`, DEL and non-ASCII are written verbatim;
//! - numbers: integers that serde_json holds as `u64`/`i64` are written in full (as the
//!   `canon-json` crate upstream TNG uses does); every other number is written the way
//!   ECMAScript's `Number.prototype.toString` writes the IEEE-754 double (RFC 8785 §3.2.2.3).

use serde_json::{Map, Number, Value};

/// The canonical text of `value`.
pub fn to_canonical_string(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// The canonical text of a JSON object.
pub fn object_to_canonical_string(map: &Map<String, Value>) -> String {
    let mut out = String::new();
    write_object(&mut out, map);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(out, map),
    }
}

fn write_object(out: &mut String, map: &Map<String, Value>) {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    out.push('{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, value);
    }
    out.push('}');
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0C}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_number(out: &mut String, n: &Number) {
    if let Some(u) = n.as_u64() {
        out.push_str(&u.to_string());
    } else if let Some(i) = n.as_i64() {
        out.push_str(&i.to_string());
    } else if let Some(f) = n.as_f64() {
        out.push_str(&es6_number(f));
    } else {
        // Only reachable with serde_json's arbitrary_precision: keep the literal.
        out.push_str(&n.to_string());
    }
}

/// ECMAScript `Number::toString(x)` for a finite double (ECMA-262 §6.1.6.1.20).
fn es6_number(x: f64) -> String {
    if x == 0.0 {
        return "0".to_owned(); // also -0
    }
    if !x.is_finite() {
        // serde_json never holds these; JSON has no spelling for them.
        return "null".to_owned();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    // Rust's `{:e}` yields the shortest round-tripping digits: "d[.ddd]e<exp>".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = digits.len() as i32;
    // x = 0.digits * 10^n
    let n = exp + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        format!("{int}.{frac}")
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e_sign = if e < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        if rest.is_empty() {
            format!("{first}e{e_sign}{}", e.abs())
        } else {
            format!("{first}.{rest}e{e_sign}{}", e.abs())
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        let value: Value = serde_json::from_str(text).expect("test JSON parses");
        to_canonical_string(&value)
    }

    /// RFC 8785 §3.2.3: sorting by UTF-16 code units (the emoji sorts before U+FB33).
    #[test]
    fn rfc8785_key_sorting() {
        let input = r#"{
          "\u20ac": "Euro Sign",
          "\r": "Carriage Return",
          "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One",
          "\ud83d\ude00": "Emoji: Grinning Face",
          "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
            \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
            \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(canon(input), expected);
    }

    /// RFC 8785 §3.2.2 (the "sample" input of §3.2.4): literals, numbers and string escapes.
    /// serde_json's default (fast) float parser reads `333333333.33333329` one ulp off, so the
    /// numbers are checked from correctly rounded doubles.
    #[test]
    fn rfc8785_sample() {
        let mut value: Value = serde_json::from_str(
            r#"{
          "numbers": [],
          "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
          "literals": [null, true, false]
        }"#,
        )
        .expect("test JSON parses");
        let numbers: Vec<Value> = [
            "333333333.33333329",
            "1E30",
            "4.50",
            "2e-3",
            "0.000000000000000000000000001",
        ]
        .iter()
        .map(|text| json!(text.parse::<f64>().expect("number")))
        .collect();
        value["numbers"] = Value::Array(numbers);
        let expected = "{\"literals\":[null,true,false],\
            \"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],\
            \"string\":\"\u{20ac}$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}";
        assert_eq!(to_canonical_string(&value), expected);
    }

    /// RFC 8785 Appendix B number samples (IEEE-754 bit patterns → JCS text).
    #[test]
    fn rfc8785_numbers() {
        let cases: [(u64, &str); 15] = [
            (0x0000000000000000, "0"),
            (0x8000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x8000000000000001, "-5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0x41b3de4355555555, "333333333.3333333"),
            (0x4430000000000000, "295147905179352830000"),
            (0x44b52d02c7e14af7, "1.0000000000000001e+23"),
            (0x41b3de4355555554, "333333333.33333325"),
            (0xbecbf647612f3696, "-0.0000033333333333333333"),
        ];
        for (bits, expected) in cases {
            assert_eq!(es6_number(f64::from_bits(bits)), expected, "bits {bits:#x}");
        }
    }

    /// The one exact-tie vector of Appendix B (…206.25): ECMAScript picks the even digit
    /// (`.2`); Rust's shortest formatting, and so the `canon-json` crate upstream TNG hashes
    /// with, writes `.3`. We pin upstream's output (TNG's claims never hold floats anyway).
    #[test]
    fn tie_breaking_matches_upstream() {
        assert_eq!(
            es6_number(f64::from_bits(0x43143ff3c1cb0959)),
            "1424953923781206.3"
        );
    }

    #[test]
    fn control_characters_and_slashes() {
        let value = json!({"s": "a/b+c\u{1}\u{7f}\u{1f}\u{8}\u{c}"});
        assert_eq!(
            to_canonical_string(&value),
            "{\"s\":\"a/b+c\\u0001\u{7f}\\u001f\\b\\f\"}"
        );
    }

    #[test]
    fn nested_objects_are_sorted_and_integers_kept() {
        let value =
            json!({"b": {"z": 1, "a": [ {"y": -2, "x": 18446744073709551615u64} ]}, "a": 1.0});
        assert_eq!(
            to_canonical_string(&value),
            "{\"a\":1,\"b\":{\"a\":[{\"x\":18446744073709551615,\"y\":-2}],\"z\":1}}"
        );
    }
}
