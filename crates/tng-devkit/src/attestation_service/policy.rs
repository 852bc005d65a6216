//! Attestation policies: Rego modules (package `policy`) kept by id and evaluated with
//! `regorus` into AR4SI trust claims.

use std::collections::BTreeMap;
use std::sync::RwLock;

use serde_json::Value;

pub const DEFAULT_POLICY_ID: &str = "default";
const DEFAULT_POLICY: &str = include_str!("default_policy.rego");

/// The AR4SI trust claims a policy may set (Rego spelling; the token uses hyphens).
const TRUST_CLAIMS: [&str; 8] = [
    "configuration",
    "executables",
    "file_system",
    "hardware",
    "instance_identity",
    "runtime_opaque",
    "sourced_data",
    "storage_opaque",
];

pub struct Policies {
    by_id: RwLock<BTreeMap<String, String>>,
}

impl Policies {
    pub fn with_default() -> Self {
        let mut by_id = BTreeMap::new();
        by_id.insert(DEFAULT_POLICY_ID.to_string(), DEFAULT_POLICY.to_string());
        Self {
            by_id: RwLock::new(by_id),
        }
    }

    /// Stores `rego` under `id` after checking that it parses.
    pub fn set(&self, id: &str, rego: String) -> Result<(), String> {
        if id.is_empty() || id.contains('/') {
            return Err(format!("invalid policy id {id:?}"));
        }
        engine_with(&rego)?;
        self.write().insert(id.to_string(), rego);
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<String> {
        self.read().get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> bool {
        self.write().remove(id).is_some()
    }

    pub fn all(&self) -> BTreeMap<String, String> {
        self.read().clone()
    }

    // A panic while holding the lock cannot leave the map half-written (inserts and removes
    // are single calls), so a poisoned lock is still safe to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, String>> {
        self.by_id
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, String>> {
        self.by_id
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Parses a module, in Rego v1 syntax first and v0 syntax (no `if`) as a fallback, because
/// trustee policies exist in both.
fn engine_with(rego: &str) -> Result<regorus::Engine, String> {
    let mut engine = regorus::Engine::new();
    let v1_error = match engine.add_policy("policy.rego".into(), rego.to_string()) {
        Ok(_) => return Ok(engine),
        Err(err) => err.to_string(),
    };
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(true);
    match engine.add_policy("policy.rego".into(), rego.to_string()) {
        Ok(_) => Ok(engine),
        Err(_) => Err(format!("policy does not parse: {v1_error}")),
    }
}

/// Evaluates `data.policy` against `input` and returns the integer trust claims it defines.
pub fn evaluate(rego: &str, input: &Value) -> Result<BTreeMap<&'static str, i64>, String> {
    let mut engine = engine_with(rego)?;
    let input = regorus::Value::from_json_str(&input.to_string())
        .map_err(|err| format!("policy input: {err}"))?;
    engine.set_input(input);
    let results = engine
        .eval_query("data.policy".into(), false)
        .map_err(|err| format!("policy evaluation: {err}"))?;
    let document = results
        .result
        .first()
        .and_then(|result| result.expressions.first())
        .map(|expression| serde_json::to_value(&expression.value))
        .transpose()
        .map_err(|err| format!("policy output: {err}"))?
        .unwrap_or(Value::Null);
    let mut claims = BTreeMap::new();
    for name in TRUST_CLAIMS {
        let Some(value) = document.get(name) else {
            continue;
        };
        let number = value
            .as_i64()
            .filter(|n| (-128..=127).contains(n))
            .ok_or_else(|| {
                format!("trust claim {name} = {value} is not an integer in -128..=127")
            })?;
        claims.insert(name, number);
    }
    if claims.is_empty() {
        return Err("the policy (package policy) set no trust claim".into());
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_policy_affirms_sample_and_not_others() {
        let claims = evaluate(DEFAULT_POLICY, &json!({"sample": {"svn": "1"}})).expect("ok");
        assert_eq!(
            claims.values().copied().collect::<Vec<_>>(),
            vec![2, 2, 2, 2]
        );
        let claims = evaluate(DEFAULT_POLICY, &json!({"tdx": {}})).expect("ok");
        assert_eq!(claims["hardware"], 97);
    }

    #[test]
    fn v0_syntax_and_partial_claims() {
        let claims = evaluate("package policy\nhardware = 97 { true }\n", &json!({})).expect("ok");
        assert_eq!(claims.len(), 1);
        assert_eq!(claims["hardware"], 97);
    }

    #[test]
    fn broken_or_empty_policies_are_refused() {
        let policies = Policies::with_default();
        assert!(policies
            .set("x", "package policy\nthis is not rego".into())
            .is_err());
        assert!(evaluate("package other\nhardware := 2\n", &json!({})).is_err());
        assert!(evaluate("package policy\nhardware := \"high\"\n", &json!({})).is_err());
    }
}
