//! `kv-note`: an agent tool that remembers short notes per conversation.
//!
//! Notes live in the host's key/value store (namespaced to this plugin by the host), one
//! JSON object per conversation under `notes/{account}/{conversation}`. The host passes the
//! invocation's `account` and `conversation` as settings, so one conversation never sees
//! another's notes.
//!
//! Arguments: `{"action":"remember","key":"size","text":"M"}`, `{"action":"recall","key":"size"}`,
//! `{"action":"recall"}` (all notes), `{"action":"forget","key":"size"}`.

use std::collections::BTreeMap;
use switchboard_sdk::serde_json::{self, Value, json};
use switchboard_sdk::{Host, ToolError, ToolInfo, WasmHost};

pub const MAX_KEY: usize = 100;
pub const MAX_TEXT: usize = 2_000;
pub const MAX_NOTES: usize = 25;

pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "action": { "enum": ["remember", "recall", "forget"] },
            "key": { "type": "string", "minLength": 1, "maxLength": MAX_KEY },
            "text": { "type": "string", "maxLength": MAX_TEXT }
        },
        "required": ["action"],
        "additionalProperties": false
    })
}

pub fn info() -> ToolInfo {
    ToolInfo {
        name: "kv-note".into(),
        description: "Remember, recall or forget short notes about the current conversation.".into(),
        schema: schema().to_string(),
        requires_approval: false,
    }
}

fn slot(host: &impl Host) -> Result<String, ToolError> {
    let conversation = host.setting("conversation").unwrap_or_default();
    if conversation.is_empty() {
        return Err(ToolError::InvalidArgs("kv-note keeps notes per conversation: invoke it with `conversation` (and `account`)".into()));
    }
    let account = host.setting("account").unwrap_or_default();
    Ok(format!("notes/{account}/{conversation}"))
}

fn load(host: &impl Host, slot: &str) -> BTreeMap<String, String> {
    host.kv_get(slot).and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

fn save(host: &impl Host, slot: &str, notes: &BTreeMap<String, String>) {
    if notes.is_empty() {
        host.kv_set(slot, None);
    } else {
        host.kv_set(slot, Some(&serde_json::to_vec(notes).expect("notes serialize")));
    }
}

pub fn invoke(host: &impl Host, args: &str) -> Result<String, ToolError> {
    let args: Value = serde_json::from_str(args).map_err(|e| ToolError::InvalidArgs(format!("arguments are not JSON: {e}")))?;
    let action = args.get("action").and_then(Value::as_str).unwrap_or("");
    let key = args.get("key").and_then(Value::as_str);
    if key.is_some_and(|k| k.is_empty() || k.chars().count() > MAX_KEY) {
        return Err(ToolError::InvalidArgs(format!("`key` must be 1 to {MAX_KEY} characters")));
    }
    let slot = slot(host)?;
    let mut notes = load(host, &slot);
    let out = match (action, key) {
        ("remember", Some(k)) => {
            let text = args.get("text").and_then(Value::as_str).ok_or_else(|| ToolError::InvalidArgs("remember needs `text`".into()))?;
            if text.chars().count() > MAX_TEXT {
                return Err(ToolError::InvalidArgs(format!("`text` is longer than {MAX_TEXT} characters")));
            }
            if !notes.contains_key(k) && notes.len() >= MAX_NOTES {
                return Err(ToolError::Failed(format!("this conversation already has {MAX_NOTES} notes; forget one first")));
            }
            notes.insert(k.to_string(), text.to_string());
            save(host, &slot, &notes);
            json!({ "remembered": k })
        }
        ("recall", Some(k)) => json!({ "key": k, "text": notes.get(k) }),
        ("recall", None) => json!({ "notes": notes }),
        ("forget", Some(k)) => {
            let existed = notes.remove(k).is_some();
            save(host, &slot, &notes);
            json!({ "forgotten": existed })
        }
        ("remember" | "forget", None) => return Err(ToolError::InvalidArgs(format!("{action} needs `key`"))),
        _ => return Err(ToolError::InvalidArgs("`action` must be remember, recall or forget".into())),
    };
    Ok(out.to_string())
}

pub struct KvNote;

impl switchboard_sdk::Tool for KvNote {
    fn describe() -> ToolInfo {
        info()
    }

    fn invoke(args: String) -> Result<String, ToolError> {
        invoke(&WasmHost, &args)
    }
}

#[cfg(target_arch = "wasm32")]
switchboard_sdk::export_tool!(KvNote);

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_sdk::testing::MockHost;

    fn call(host: &MockHost, args: Value) -> Value {
        serde_json::from_str(&invoke(host, &args.to_string()).unwrap()).unwrap()
    }

    #[test]
    fn remembers_recalls_and_forgets_per_conversation() {
        let host = MockHost::new().setting("account", "wa").setting("conversation", "c1");
        assert_eq!(call(&host, json!({"action":"remember","key":"size","text":"M"})), json!({"remembered":"size"}));
        assert_eq!(call(&host, json!({"action":"recall","key":"size"}))["text"], "M");
        assert_eq!(call(&host, json!({"action":"recall"}))["notes"], json!({"size":"M"}));
        assert_eq!(host.kv_get("notes/wa/c1").is_some(), true);
        assert_eq!(call(&host, json!({"action":"forget","key":"size"})), json!({"forgotten":true}));
        assert_eq!(call(&host, json!({"action":"recall","key":"size"}))["text"], Value::Null);
        assert_eq!(host.kv_get("notes/wa/c1"), None, "an empty notebook is deleted");
    }

    #[test]
    fn needs_a_conversation_and_valid_arguments() {
        let none = MockHost::new();
        assert!(matches!(invoke(&none, r#"{"action":"recall"}"#), Err(ToolError::InvalidArgs(m)) if m.contains("conversation")));
        let host = MockHost::new().setting("conversation", "c1");
        assert!(matches!(invoke(&host, r#"{"action":"remember","key":"k"}"#), Err(ToolError::InvalidArgs(_))));
        assert!(matches!(invoke(&host, r#"{"action":"shout"}"#), Err(ToolError::InvalidArgs(_))));
    }
}
