//! Agent tools as a service: list them, invoke one (arguments checked against its schema
//! first), record every invocation with its correlation id, and run it in the sandbox with the
//! tool's own limits. A tool that needs approval is handed to [`super::approvals`] instead.

use super::schema;
use crate::accounts::AccountCtx;
use crate::app::App;
use crate::egress::HostPattern;
use crate::model::{ToolError, ToolInfo};
use crate::runtime::CallError;
use crate::runtime::manifest::ANY_OPERATOR_HOST;
use crate::store::{CallEnd, CallStatus, StoreError, ToolCall};
use std::sync::Arc;
use std::time::Duration;

/// Largest argument document a tool accepts (serialized JSON).
pub const MAX_ARGS_BYTES: usize = 10 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    #[error("no tool `{0}` is loaded (GET /v1/tools lists them)")]
    UnknownTool(String),
    #[error("arguments are {size} bytes; the limit is {MAX_ARGS_BYTES} bytes")]
    ArgsTooLarge { size: usize },
    #[error("arguments do not match the schema of `{tool}`: {}", errors.join("; "))]
    InvalidArgs { tool: String, errors: Vec<String> },
    #[error("`{0}` requires approval: give the `account` and `conversation` the approval prompt goes to")]
    NeedsConversation(String),
    #[error("could not ask for approval: {0}")]
    Prompt(#[from] crate::outbox::SendError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A tool as `GET /v1/tools` lists it (approval as in force: declared or forced by config).
pub fn list(app: &App) -> Vec<ToolInfo> {
    app.runtime.tools().into_iter().map(|t| effective(app, t)).collect()
}

fn effective(app: &App, mut t: ToolInfo) -> ToolInfo {
    t.requires_approval |= app.current_config().tools.get(&t.name).is_some_and(|c| c.requires_approval);
    t
}

pub fn get(app: &App, name: &str) -> Option<ToolInfo> {
    app.runtime.tools().into_iter().find(|t| t.name == name).map(|t| effective(app, t))
}

/// An invocation as the API received it.
pub struct Invoke {
    pub tool: String,
    pub args: serde_json::Value,
    pub account: Option<String>,
    pub conversation: Option<String>,
    /// Recipient of the approval prompt (default: the conversation).
    pub to: Option<String>,
    pub correlation_id: String,
    /// How long to wait for an approval's outcome before answering with the pending call.
    pub wait: Duration,
}

/// Checks the arguments, records the call, and runs it (or asks for approval and waits up to
/// `wait` for the outcome). Returns the call as it stands.
pub async fn invoke(app: &App, req: Invoke) -> Result<ToolCall, ToolsError> {
    let tool = get(app, &req.tool).ok_or_else(|| ToolsError::UnknownTool(req.tool.clone()))?;
    let size = req.args.to_string().len();
    if size > MAX_ARGS_BYTES {
        return Err(ToolsError::ArgsTooLarge { size });
    }
    let errors = schema::validate(&tool.schema, &req.args);
    if !errors.is_empty() {
        return Err(ToolsError::InvalidArgs { tool: tool.name, errors });
    }
    let now = app.clock.now_ms();
    let call = ToolCall {
        id: format!("call_{}", uuid::Uuid::now_v7().simple()),
        tool: tool.name.clone(),
        account: req.account.clone(),
        conversation: req.conversation.clone(),
        args: req.args.clone(),
        correlation_id: req.correlation_id.clone(),
        status: CallStatus::Running,
        created_at_ms: now,
        updated_at_ms: now,
        approval: None,
        result: None,
        error: None,
    };
    if tool.requires_approval {
        return super::approvals::request(app, call, req.to, req.wait).await;
    }
    tracing::info!(call_id = %call.id, tool = %call.tool, correlation_id = %call.correlation_id, "tool invoked");
    app.store.create_tool_call(call.clone()).await?;
    Ok(run(app, call).await?)
}

/// Runs a recorded `running` call in the sandbox and records how it ended.
pub async fn run(app: &App, call: ToolCall) -> Result<ToolCall, StoreError> {
    let started = std::time::Instant::now();
    let end = match context(app, &call) {
        None => CallEnd::Failed { code: "not_loaded".into(), message: format!("tool `{}` is not loaded", call.tool) },
        Some(ctx) => match app.runtime.invoke_tool(&ctx, call.args.to_string()).await {
            Ok(Ok(text)) => CallEnd::Succeeded(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
            Ok(Err(ToolError::InvalidArgs(m))) => CallEnd::Failed { code: "invalid_args".into(), message: m },
            Ok(Err(ToolError::Failed(m))) => CallEnd::Failed { code: "tool_failed".into(), message: m },
            Err(e) => CallEnd::Failed { code: sandbox_code(&e).into(), message: e.to_string() },
        },
    };
    let outcome = match &end {
        CallEnd::Succeeded(_) => "succeeded",
        CallEnd::Failed { code, .. } => code.as_str(),
    };
    tracing::info!(call_id = %call.id, tool = %call.tool, correlation_id = %call.correlation_id, outcome, took_ms = started.elapsed().as_millis() as u64, "tool call finished");
    let finished = app.store.finish_tool_call(call.id.clone(), end).await?;
    app.agent.calls_changed.notify_waiters();
    Ok(finished.unwrap_or(call))
}

fn sandbox_code(e: &CallError) -> &'static str {
    match e {
        CallError::Deadline(_) => "deadline",
        CallError::OutOfMemory(_) => "out_of_memory",
        CallError::NotLoaded(_) | CallError::WrongWorld { .. } => "not_loaded",
        CallError::Busy(_) => "busy",
        _ => "sandbox",
    }
}

/// What one call of the tool may use: the manifest's setting defaults, the operator's
/// `[tools.<name>] settings`, the call's `account` and `conversation` as settings (so a tool
/// can scope what it keeps, like `kv-note`), and the allowlist: the manifest's, narrowed by
/// the operator's list, or exactly the operator's list where the manifest says `"*"`.
fn context(app: &App, call: &ToolCall) -> Option<Arc<AccountCtx>> {
    let plugin = app.runtime.plugin(&call.tool)?;
    let config = app.current_config();
    let operator = config.tools.get(&call.tool);
    let mut settings = std::collections::BTreeMap::new();
    for (name, spec) in &plugin.manifest.settings {
        if let Some(d) = &spec.default {
            settings.insert(name.clone(), d.clone());
        }
    }
    if let Some(op) = operator {
        settings.extend(op.settings.clone());
    }
    settings.insert("account".into(), call.account.clone().unwrap_or_default());
    settings.insert("conversation".into(), call.conversation.clone().unwrap_or_default());
    let op_hosts: Option<Vec<HostPattern>> =
        operator.and_then(|o| o.allowed_hosts.as_ref()).map(|l| l.iter().filter_map(|h| HostPattern::parse(h)).collect());
    let mut hosts = Vec::new();
    for raw in &plugin.manifest.allowed_hosts {
        if raw == ANY_OPERATOR_HOST {
            hosts.extend(op_hosts.clone().unwrap_or_default());
            continue;
        }
        let resolved = match raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            Some(setting) => match settings.get(setting) {
                Some(v) => v.clone(),
                None => continue,
            },
            None => raw.clone(),
        };
        if let Some(p) = HostPattern::parse(&resolved)
            && op_hosts.as_ref().is_none_or(|ops| ops.contains(&p))
        {
            hosts.push(p);
        }
    }
    Some(Arc::new(AccountCtx::for_tool(&call.tool, settings, hosts)))
}
