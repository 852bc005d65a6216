//! Outer-path selection for tunnel requests (spec §2.2): the inner path is rewritten by the
//! first whole-path-matching rule so existing L7 routing rules keep working.

use regex::Regex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PathDefault {
    /// No rule matched: use `/`.
    #[default]
    Root,
    /// No rule matched: keep the inner path.
    Original,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("path_rewrites[{index}].match_regex: {message}")]
pub struct PathRewriteError {
    pub index: usize,
    pub message: String,
}

#[derive(Clone, Debug)]
struct Rule {
    regex: Regex,
    substitution: String,
}

#[derive(Clone, Debug)]
pub struct PathRewriter {
    rules: Vec<Rule>,
    default: PathDefault,
}

impl PathRewriter {
    /// `rules` are `(match_regex, substitution)` pairs, tried in order.
    pub fn new(
        rules: &[(String, String)],
        default: PathDefault,
    ) -> Result<PathRewriter, PathRewriteError> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(index, (pattern, substitution))| {
                let error = |e: regex::Error| PathRewriteError {
                    index,
                    message: e.to_string(),
                };
                // Validate the regex as written first, so errors point at the user's text
                // rather than at the anchored wrapper.
                Regex::new(pattern).map_err(error)?;
                let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(error)?;
                Ok(Rule {
                    regex,
                    substitution: envoy_to_rust_substitution(substitution),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PathRewriter { rules, default })
    }

    /// The outer path for an inner `path` (without the query string, which travels only
    /// inside the encrypted message). Always starts with `/`.
    pub fn rewrite(&self, path: &str) -> String {
        let rewritten = self
            .rules
            .iter()
            .find(|rule| rule.regex.is_match(path))
            .map(|rule| {
                rule.regex
                    .replace(path, rule.substitution.as_str())
                    .into_owned()
            });
        let out = match (rewritten, self.default) {
            (Some(p), _) => p,
            (None, PathDefault::Root) => String::from("/"),
            (None, PathDefault::Original) => path.to_string(),
        };
        if out.starts_with('/') {
            out
        } else {
            format!("/{out}")
        }
    }
}

/// Rewrites envoy-style `\N` group references to Rust's `${N}`. A `\N` whose backslash is
/// itself escaped (an even run of backslashes before the digits) is left alone.
fn envoy_to_rust_substitution(sub: &str) -> String {
    let mut out = String::with_capacity(sub.len() + 8);
    let mut chars = sub.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let mut run = 1;
        while chars.next_if_eq(&'\\').is_some() {
            run += 1;
        }
        let mut digits = String::new();
        while let Some(d) = chars.next_if(|d| d.is_ascii_digit()) {
            digits.push(d);
        }
        if run % 2 == 1 && !digits.is_empty() {
            out.extend(std::iter::repeat_n('\\', run - 1));
            out.push_str("${");
            out.push_str(&digits);
            out.push('}');
        } else {
            out.extend(std::iter::repeat_n('\\', run));
            out.push_str(&digits);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewriter(rules: &[(&str, &str)], default: PathDefault) -> PathRewriter {
        let rules: Vec<(String, String)> = rules
            .iter()
            .map(|(m, s)| (m.to_string(), s.to_string()))
            .collect();
        PathRewriter::new(&rules, default).unwrap()
    }

    #[test]
    fn spec_example_gw() {
        let r = rewriter(&[("/api/([^/]+)/.*", "/gw/$1")], PathDefault::Root);
        assert_eq!(r.rewrite("/api/v1/users"), "/gw/v1");
    }

    #[test]
    fn seed_rule() {
        let r = rewriter(&[("^/foo/([^/]+)([/]?.*)$", "/foo/$1")], PathDefault::Root);
        assert_eq!(r.rewrite("/foo/bar/baz"), "/foo/bar");
        assert_eq!(r.rewrite("/foo/bar"), "/foo/bar");
        assert_eq!(r.rewrite("/other"), "/");
    }

    #[test]
    fn whole_path_must_match() {
        let r = rewriter(&[("/api", "/x")], PathDefault::Original);
        assert_eq!(r.rewrite("/api"), "/x");
        assert_eq!(r.rewrite("/api/v1"), "/api/v1");
        assert_eq!(r.rewrite("/v1/api"), "/v1/api");
    }

    #[test]
    fn backslash_back_compat() {
        let r = rewriter(&[("/api/([^/]+)/(.*)", r"/gw/\1/\2")], PathDefault::Root);
        assert_eq!(r.rewrite("/api/v1/users"), "/gw/v1/users");
        assert_eq!(envoy_to_rust_substitution(r"\1"), "${1}");
        assert_eq!(envoy_to_rust_substitution(r"\12x"), "${12}x");
        // Escaped backslash: left alone (a literal backslash then "1").
        assert_eq!(envoy_to_rust_substitution(r"\\1"), r"\\1");
        assert_eq!(envoy_to_rust_substitution(r"\\\1"), r"\\${1}");
        assert_eq!(envoy_to_rust_substitution(r"a\b"), r"a\b");
        assert_eq!(envoy_to_rust_substitution("$1"), "$1");
    }

    #[test]
    fn named_groups_and_dollar_forms() {
        let r = rewriter(
            &[("/svc/(?P<name>[a-z]+)/(?<ver>v[0-9]+)/.*", "/${ver}/$name")],
            PathDefault::Root,
        );
        assert_eq!(r.rewrite("/svc/users/v2/list"), "/v2/users");
        let r = rewriter(&[("/a/(.*)", "/cost$$/${1}")], PathDefault::Root);
        assert_eq!(r.rewrite("/a/b"), "/cost$/b");
    }

    #[test]
    fn first_matching_rule_wins() {
        let r = rewriter(
            &[("/a/.*", "/first"), ("/a/b", "/second")],
            PathDefault::Root,
        );
        assert_eq!(r.rewrite("/a/b"), "/first");
    }

    #[test]
    fn defaults_and_leading_slash() {
        let root = rewriter(&[], PathDefault::Root);
        assert_eq!(root.rewrite("/x/y"), "/");
        let original = rewriter(&[], PathDefault::Original);
        assert_eq!(original.rewrite("/x/y"), "/x/y");
        assert_eq!(original.rewrite(""), "/");
        let r = rewriter(&[("/api/(.*)", "$1")], PathDefault::Root);
        assert_eq!(r.rewrite("/api/v1"), "/v1");
    }

    #[test]
    fn invalid_regex_names_its_index() {
        let rules = vec![
            ("/ok".to_string(), "/".to_string()),
            ("/bad(".to_string(), "/".to_string()),
        ];
        let err = PathRewriter::new(&rules, PathDefault::Root).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(err
            .to_string()
            .starts_with("path_rewrites[1].match_regex: "));
    }
}
