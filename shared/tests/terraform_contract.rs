//! The Terraform under `terraform/` against the metric contract, and the
//! alerts evaluated offline.
//!
//! Two inputs:
//! - the `.tf` files, parsed with an HCL parser: every alert resource has a
//!   severity, channels or actions, auto-close, the environment and a
//!   runbook link; every log-based metric extracts fields the code writes,
//!   with the environment label; every `redis_instance` filter compares the
//!   full instance name;
//! - `terraform/tests/rendered/` (alerting-core rendered by Terraform itself,
//!   scripts/render-alert-rules.sh; make ops-check fails when it is stale):
//!   every PromQL query and CloudWatch alarm the modules create. Every metric
//!   they read must be written by the code, with the `environment`
//!   dimension; the request SLOs read the probe-free counts; the tiers are
//!   the SRE Workbook's; every runbook exists and opens with a triage.
//!
//! The written names are taken from a real metrics line, produced by real
//! Redis round trips and captured from the JSON logger, not from a list kept
//! here. (Issue 17's names, once pending here, are all written now; a test
//! holds the line to them: [`ISSUE_17_FIELDS`].)
//!
//! Then the alerts are evaluated over metrics lines, offline: the CloudWatch
//! alarms by a small evaluator of sliding windows and composite alarms (here),
//! the Cloud Monitoring PromQL by `promtool test rules` (Debian's
//! `prometheus` package; `PROMTOOL`, installed by make setup), over the same
//! lines turned into series. Scenarios: probe-only 503s, a Redis outage with
//! users and the breaker open, and a replay of the real code against a
//! `redis-server` that is stopped for a while.
//!
//! The checker is shown to fail on fixtures (an alert naming a metric the
//! code does not emit, a Memorystore filter on a bare id, ...), so a green
//! run means something.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use hcl::{Block, Body as HclBody, Expression};
use serde_json::Value;
use shared::blocks::keys::Tenant;
use shared::blocks::queue::{Queue, QueueSettings};
use shared::config::LogFormat;
use shared::contract as names;
use shared::telemetry::{self, IntervalPolicy, MetricsReporter, RouteKind};
use shared::testkit::{CapturedLogs, RedisServer};
use shared::{AppContext, http::ApiError};
use tower::ServiceExt;

// ---------------------------------------------------------------------------
// What the code writes, and what it does not write yet.

/// The fields issue 17 added for the alerts and dashboards, each written
/// by the code on every metrics line (docs/operations.md, "The metric
/// contract", gives their meaning).
const ISSUE_17_FIELDS: &[&str] = &[
    names::ENVIRONMENT,
    names::LEVEL,
    names::TIMESTAMP,
    names::HTTP_USER_REQUESTS,
    names::HTTP_USER_5XX,
    names::HTTP_USER_SLOW_REQUESTS,
    names::HTTP_SLOW_THRESHOLD_MS,
    names::HTTP_PROBE_REQUESTS,
    names::OPERATIONS_GE_10MS,
    names::OPERATIONS_GE_25MS,
    names::OPERATIONS_GE_50MS,
    names::OPERATIONS_GE_100MS,
    names::OPERATIONS_GE_250MS,
    names::OPERATIONS_GE_1000MS,
    names::COLD_STARTS,
];

/// The counts the request SLOs may read: they leave out the probe routes.
const PROBE_FREE_COUNTS: &[&str] = &[
    names::HTTP_USER_REQUESTS,
    names::HTTP_USER_5XX,
    names::HTTP_USER_SLOW_REQUESTS,
];

/// The names the code writes, read off its output.
#[derive(Debug, Clone)]
struct Contract {
    /// Top-level fields of the metrics line and of the request lines.
    log_fields: BTreeSet<String>,
    /// Metrics declared in the line's EMF document.
    emf_metrics: BTreeSet<String>,
    /// Dimension sets declared in the line's EMF document.
    emf_dimension_sets: BTreeSet<BTreeSet<String>>,
    /// The EMF namespace.
    namespace: String,
    /// The value of the `event` field that marks the metrics line.
    metrics_event: String,
}

/// The queue gauges issue 15 added (backlog, oldest item's age, dead
/// letters): written on the lines of intervals in which a queue was read,
/// which the line below makes happen with a real queue read.
const ISSUE_15_QUEUE_FIELDS: &[&str] = names::QUEUE_GAUGES;

/// Performs real round trips (one of them failing, one reading a queue) and
/// captures the metrics line the code writes for them.
async fn written_metrics_line() -> Value {
    let server = RedisServer::start();
    let client = server.client();
    let reporter = MetricsReporter::new(client.clone(), Duration::from_secs(3_600));
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(telemetry::subscriber(
        "contract",
        LogFormat::Json,
        "info",
        logs.clone(),
    ));
    let _: String = client
        .run(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
        .await
        .unwrap();
    let _ = client
        .run(|mut c| async move {
            redis::cmd("NO-SUCH-COMMAND")
                .query_async::<String>(&mut c)
                .await
        })
        .await
        .unwrap_err();
    let queue = Queue::new(
        client.clone(),
        &Tenant::new("practice_id", "contract").unwrap(),
        "changes",
        QueueSettings::new(Duration::from_secs(30)),
    );
    queue.enqueue(&["change"]).await.unwrap();
    queue.claim(1).await.unwrap();
    reporter.record_response(503, RouteKind::User, Duration::ZERO);
    assert!(reporter.flush());
    logs.text()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l[names::EVENT] == names::METRICS_EVENT)
        .expect("a metrics line")
}

/// What the line carries, as written.
fn written_from(line: &Value) -> Contract {
    let object = line.as_object().unwrap();
    let mut log_fields: BTreeSet<String> = object
        .keys()
        .filter(|k| k.as_str() != names::EMF_ROOT)
        .cloned()
        .collect();
    // The fields of a failed request's line, which
    // tests/metrics_line.rs proves the request path writes.
    for field in [
        names::HTTP_STATUS,
        names::ROUTE,
        names::REQUEST_ID,
        names::ERROR_CODE,
        names::ERROR_KIND,
    ] {
        log_fields.insert(field.to_owned());
    }
    let directive = &line[names::EMF_ROOT]["CloudWatchMetrics"][0];
    let emf_metrics = directive["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["Name"].as_str().unwrap().to_owned())
        .collect();
    let emf_dimension_sets = directive["Dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|set| {
            set.as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    Contract {
        log_fields,
        emf_metrics,
        emf_dimension_sets,
        namespace: directive["Namespace"].as_str().unwrap().to_owned(),
        metrics_event: line[names::EVENT].as_str().unwrap().to_owned(),
    }
}

/// What the Terraform may read: the names the code writes.
fn contract_from(line: &Value) -> Contract {
    written_from(line)
}

// ---------------------------------------------------------------------------
// The static checker (the .tf files).

/// One parsed `.tf` file.
struct Source {
    /// Path relative to `terraform/` (fixtures: a made-up one).
    path: String,
    /// The directory: one Terraform module.
    module: String,
    body: HclBody,
}

fn parse(path: &str, text: &str) -> Source {
    let body = hcl::parse(text).unwrap_or_else(|e| panic!("{path}: not valid HCL: {e}"));
    let module = Path::new(path)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    Source {
        path: path.to_owned(),
        module,
        body,
    }
}

/// The sections every runbook has; the triage comes first.
const RUNBOOK_SECTIONS: [&str; 6] = [
    "## Five-minute triage",
    "## Impact",
    "## How to confirm",
    "## Likely causes",
    "## Mitigation",
    "## Escalation",
];

/// Metric type prefixes of the platforms (not written by our code).
const GCP_PLATFORM_METRICS: [&str; 3] = [
    "redis.googleapis.com/",
    "monitoring.googleapis.com/uptime_check/",
    "run.googleapis.com/",
];

/// What the checker found in one run.
#[derive(Debug, Default)]
struct Report {
    violations: Vec<String>,
    /// Alert resources that notify, by module.
    alerts: BTreeMap<String, usize>,
    /// Runbook files linked, by module (literal links only).
    runbooks_used: BTreeMap<String, BTreeSet<String>>,
}

fn text(expr: &Expression) -> String {
    // The expression as written; `\"` inside strings become plain quotes
    // so that patterns such as jsonPayload.event="..." are easy to find.
    hcl::format::to_string(expr)
        .unwrap_or_default()
        .replace("\\\"", "\"")
}

fn body_text(body: &HclBody) -> String {
    hcl::format::to_string(body)
        .unwrap_or_default()
        .replace("\\\"", "\"")
}

fn attr<'a>(body: &'a HclBody, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|a| a.key.as_str() == key)
        .map(|a| &a.expr)
}

fn blocks<'a>(body: &'a HclBody, identifier: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
    body.blocks()
        .filter(move |b| b.identifier.as_str() == identifier)
}

fn literal(expr: Option<&Expression>) -> Option<&str> {
    match expr {
        Some(Expression::String(s)) => Some(s),
        _ => None,
    }
}

/// Every string literal inside `text` (`"..."`).
fn string_literals(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('"') else { break };
        out.push(after[..end].to_owned());
        rest = &after[end + 1..];
    }
    out
}

/// Identifiers following each occurrence of `prefix` in `text`. An
/// interpolation right after the prefix (`jsonPayload.${each.key}`) is
/// reported as `${...}` so that the caller can flag it as unresolved.
fn idents_after(text: &str, prefix: &str) -> Vec<String> {
    text.match_indices(prefix)
        .map(|(i, _)| {
            let after = &text[i + prefix.len()..];
            if after.starts_with("${") {
                return "${...}".to_owned();
            }
            after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// Runbook links through `var.runbook_base_url`: literal files, or the
/// runbook of each element of a `for_each` (`${each.value.runbook}`,
/// checked against the rendered catalogue).
fn runbook_links(text: &str) -> BTreeSet<String> {
    text.match_indices("runbook_base_url}/")
        .map(|(i, m)| {
            let rest = &text[i + m.len()..];
            if rest.starts_with("${each.value.runbook}") {
                return "${each.value.runbook}".to_owned();
            }
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
                .collect()
        })
        .collect()
}

/// The `locals` of a module whose values are plain strings, and the string
/// literals of every local (for `for_each = local.x`).
#[derive(Default)]
struct Locals {
    strings: BTreeMap<String, String>,
    literals: BTreeMap<String, Vec<String>>,
}

impl Locals {
    fn of(sources: &[&Source]) -> Self {
        let mut locals = Self::default();
        for source in sources {
            for block in blocks(&source.body, "locals") {
                for a in block.body.attributes() {
                    let key = a.key.as_str().to_owned();
                    if let Expression::String(s) = &a.expr {
                        locals.strings.insert(key.clone(), s.clone());
                    }
                    locals.literals.insert(key, string_literals(&text(&a.expr)));
                }
            }
        }
        locals
    }

    /// `text` with `${local.x}` replaced by plain-string locals.
    fn expand(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (k, v) in &self.strings {
            out = out.replace(&format!("${{local.{k}}}"), v);
        }
        out
    }

    /// The keys a `for_each` iterates: the string literals of the local it
    /// names, or of the expression itself.
    fn for_each_keys(&self, for_each: &str) -> Vec<String> {
        if let Some(name) = idents_after(for_each, "local.").first() {
            return self.literals.get(name).cloned().unwrap_or_default();
        }
        string_literals(for_each)
    }
}

/// Whether `value` names a Memorystore instance the way the instance_id
/// label does: projects/P/locations/R/instances/ID (interpolations allowed
/// inside the parts).
fn is_full_instance_name(value: &str) -> bool {
    let parts: Vec<&str> = value.split('/').collect();
    parts.len() == 6
        && parts[0] == "projects"
        && parts[2] == "locations"
        && parts[4] == "instances"
        && [1, 3, 5].iter().all(|i| !parts[*i].is_empty())
}

/// Every value a query compares the instance_id label of `redis_instance`
/// with: Monitoring filters (`resource.label.instance_id="..."`,
/// `resource.labels.instance_id = "..."`) and PromQL matchers
/// (`instance_id="..."`, `instance_id=~"a|b"`, split on `|`).
fn instance_id_values(query: &str) -> Vec<String> {
    let mut values = Vec::new();
    for (i, _) in query.match_indices("instance_id") {
        let rest = query[i + "instance_id".len()..].trim_start();
        let rest = rest
            .strip_prefix("=~")
            .or_else(|| rest.strip_prefix('='))
            .map(str::trim_start);
        let Some(rest) = rest.and_then(|r| r.strip_prefix('"')) else {
            continue;
        };
        let value: String = rest.chars().take_while(|c| *c != '"').collect();
        values.extend(value.split('|').map(str::to_owned));
    }
    values
}

/// Violations of the rule that every Memorystore query compares the full
/// instance name.
fn memorystore_violations(at: &str, query: &str) -> Vec<String> {
    let about_memorystore =
        query.contains("redis_instance") || query.contains("redis_googleapis_com:");
    if !about_memorystore {
        return Vec::new();
    }
    let values = instance_id_values(query);
    if values.is_empty() {
        return vec![format!(
            "{at}: a redis_instance query without an instance_id filter"
        )];
    }
    values
        .into_iter()
        .filter(|v| !is_full_instance_name(v))
        .map(|v| {
            format!(
                "{at}: compares instance_id with `{v}`, not the full name projects/P/locations/R/instances/ID"
            )
        })
        .collect()
}

struct Checker<'a> {
    contract: &'a Contract,
    runbooks: &'a BTreeMap<String, String>,
    report: Report,
}

impl Checker<'_> {
    fn violation(&mut self, at: &str, what: String) {
        self.report.violations.push(format!("{at}: {what}"));
    }

    fn check_field(&mut self, at: &str, field: &str) {
        if field == "${...}" {
            self.violation(at, "a log field name that cannot be resolved".into());
        } else if !self.contract.log_fields.contains(field) {
            self.violation(
                at,
                format!("reads log field `{field}`, which the code does not write"),
            );
        }
    }

    fn check_runbooks(&mut self, at: &str, module: &str, body_text: &str) {
        let links = runbook_links(body_text);
        if links.is_empty() {
            self.violation(
                at,
                "no runbook link (${var.runbook_base_url}/<file>.md)".into(),
            );
        }
        for link in links {
            if link == "${each.value.runbook}" {
                // Checked on the rendered catalogue.
                continue;
            }
            if !self.runbooks.contains_key(&link) {
                self.violation(
                    at,
                    format!("links to runbook `{link}`, which does not exist"),
                );
            }
            self.report
                .runbooks_used
                .entry(module.to_owned())
                .or_default()
                .insert(link);
        }
    }

    fn check_module(&mut self, module: &str, sources: &[&Source]) {
        let locals = Locals::of(sources);
        // Log-based metrics first: the alerts may only read declared ones.
        let mut log_metrics = BTreeSet::new();
        for source in sources {
            for (kind, name, body) in resources(&source.body) {
                if kind == "google_logging_metric" {
                    let at = format!("{}: {kind}.{name}", source.path);
                    log_metrics.extend(self.check_log_metric(&at, body, &locals));
                }
            }
        }
        for source in sources {
            for (kind, name, body) in resources(&source.body) {
                let at = format!("{}: {kind}.{name}", source.path);
                match kind {
                    "google_monitoring_alert_policy" => {
                        self.check_gcp_alert(&at, module, body, &locals, &log_metrics);
                    }
                    "google_monitoring_uptime_check_config" => self.check_uptime(&at, body),
                    "aws_cloudwatch_metric_alarm" | "aws_cloudwatch_composite_alarm" => {
                        self.check_aws_alarm(&at, module, body);
                    }
                    "aws_route53_health_check" => self.check_route53(&at, body),
                    _ => {}
                }
            }
            for block in blocks(&source.body, "variable") {
                if block.labels.first().map(|l| l.as_str()) == Some("metric_namespace") {
                    let default = literal(attr(&block.body, "default"));
                    if default != Some(self.contract.namespace.as_str()) {
                        self.violation(
                            &format!("{}: variable.metric_namespace", source.path),
                            format!(
                                "default {default:?} is not the namespace the code writes ({})",
                                self.contract.namespace
                            ),
                        );
                    }
                }
            }
        }
    }

    /// Checks the fields a log-based metric extracts; returns its names.
    fn check_log_metric(&mut self, at: &str, body: &HclBody, locals: &Locals) -> Vec<String> {
        let names = match attr(body, "name") {
            Some(Expression::String(s)) => vec![s.clone()],
            Some(e) if text(e).contains("each.key") => attr(body, "for_each")
                .map(|f| locals.for_each_keys(&text(f)))
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        if names.is_empty() {
            self.violation(at, "cannot resolve the log metric's name".into());
        }
        let labels = attr(body, "label_extractors").map(text).unwrap_or_default();
        for label in [names::SERVICE, "environment"] {
            if !labels.contains(&format!("{label} ")) && !labels.contains(&format!("{label}=")) {
                self.violation(at, format!("does not extract the `{label}` label"));
            }
        }
        let body_text = locals.expand(&body_text(body));
        for name in &names {
            let expanded = body_text.replace("${each.key}", name);
            for field in idents_after(&expanded, "jsonPayload.") {
                self.check_field(at, &field);
            }
            for (i, _) in expanded.match_indices("jsonPayload.event=\"") {
                let value: String = expanded[i + "jsonPayload.event=\"".len()..]
                    .chars()
                    .take_while(|c| *c != '"')
                    .collect();
                if value != self.contract.metrics_event {
                    self.violation(
                        at,
                        format!(
                            "selects event `{value}`, but the metrics line's event is `{}`",
                            self.contract.metrics_event
                        ),
                    );
                }
            }
        }
        names
    }

    fn check_gcp_alert(
        &mut self,
        at: &str,
        module: &str,
        body: &HclBody,
        locals: &Locals,
        log_metrics: &BTreeSet<String>,
    ) {
        *self.report.alerts.entry(module.to_owned()).or_default() += 1;
        let body_text = locals.expand(&body_text(body));
        if attr(body, "severity").is_none() {
            self.violation(at, "no severity".into());
        }
        match attr(body, "notification_channels").map(text) {
            None => self.violation(at, "no notification_channels".into()),
            Some(t) if t.trim() == "[]" => {
                self.violation(at, "empty notification_channels".into());
            }
            Some(_) => {}
        }
        let auto_close =
            blocks(body, "alert_strategy").any(|b| attr(&b.body, "auto_close").is_some());
        if !auto_close {
            self.violation(at, "no alert_strategy.auto_close".into());
        }
        if blocks(body, "documentation").next().is_none() {
            self.violation(at, "no documentation".into());
        }
        let labels = attr(body, "user_labels").map(text).unwrap_or_default();
        if !labels.contains("environment") {
            self.violation(at, "no `environment` user label".into());
        }
        self.check_runbooks(at, module, &body_text);
        for prefix in [
            "logging_googleapis_com:user_",
            "logging.googleapis.com/user/",
        ] {
            for reference in idents_after(&body_text, prefix) {
                let base = ["_sum", "_count", "_bucket"]
                    .iter()
                    .find_map(|s| {
                        reference
                            .strip_suffix(s)
                            .filter(|b| log_metrics.contains(*b))
                    })
                    .unwrap_or(&reference);
                if !log_metrics.contains(base) {
                    self.violation(
                        at,
                        format!("reads log-based metric `{reference}`, which is not declared"),
                    );
                }
                // The metric is named after the field it extracts.
                self.check_field(at, base);
            }
        }
        for field in idents_after(&body_text, "jsonPayload.") {
            self.check_field(at, &field);
        }
        for (i, m) in body_text.match_indices("metric.type=\"") {
            let metric: String = body_text[i + m.len()..]
                .chars()
                .take_while(|c| *c != '"')
                .collect();
            let known = metric.starts_with("logging.googleapis.com/user/")
                || GCP_PLATFORM_METRICS.iter().any(|p| metric.starts_with(p));
            if !known {
                self.violation(
                    at,
                    format!("reads metric `{metric}`, neither ours nor a platform's"),
                );
            }
        }
        for v in memorystore_violations(at, &body_text) {
            self.report.violations.push(v);
        }
    }

    fn check_uptime(&mut self, at: &str, body: &HclBody) {
        let path = blocks(body, "http_check")
            .find_map(|b| literal(attr(&b.body, "path")).map(str::to_owned));
        if path.as_deref() != Some(names::HEALTH_PATH) {
            self.violation(at, format!("probes {path:?}, not {}", names::HEALTH_PATH));
        }
        let content = blocks(body, "content_matchers")
            .find_map(|b| literal(attr(&b.body, "content")).map(str::to_owned));
        if content.as_deref() != Some(names::HEALTHY_BODY_MATCH) {
            self.violation(
                at,
                format!("matches {content:?}, not {}", names::HEALTHY_BODY_MATCH),
            );
        }
    }

    fn check_route53(&mut self, at: &str, body: &HclBody) {
        let path = attr(body, "resource_path").map(text).unwrap_or_default();
        if !path.trim_end_matches('"').ends_with(names::HEALTH_PATH) {
            self.violation(at, format!("probes {path}, not {}", names::HEALTH_PATH));
        }
        if literal(attr(body, "search_string")) != Some(names::HEALTHY_BODY_MATCH) {
            self.violation(at, format!("does not match {}", names::HEALTHY_BODY_MATCH));
        }
    }

    fn check_aws_metric(&mut self, at: &str, body: &HclBody) {
        let Some(metric) = attr(body, "metric_name") else {
            return;
        };
        let namespace = attr(body, "namespace").map(text).unwrap_or_default();
        if namespace.contains("metric_query.value") {
            // A dynamic block over alerting-core's specifications: checked
            // on the rendered catalogue.
            return;
        }
        let ours = namespace == "var.metric_namespace"
            || literal(attr(body, "namespace")) == Some(self.contract.namespace.as_str());
        // AWS's own metrics, and those of CloudWatch Synthetics canaries
        // (the signing probe of an IAM-private Function URL).
        let platform = literal(attr(body, "namespace"))
            .is_some_and(|n| n.starts_with("AWS/") || n == "CloudWatchSynthetics");
        let Some(metric) = literal(Some(metric)) else {
            self.violation(at, "a metric_name that is not a literal".into());
            return;
        };
        if ours {
            if !self.contract.emf_metrics.contains(metric) {
                self.violation(
                    at,
                    format!("reads metric `{metric}`, which the code does not emit"),
                );
            }
            let keys: BTreeSet<String> = match attr(body, "dimensions") {
                Some(Expression::Object(dimensions)) => {
                    dimensions.keys().map(ToString::to_string).collect()
                }
                _ => BTreeSet::new(),
            };
            if !self.contract.emf_dimension_sets.contains(&keys) {
                self.violation(
                    at,
                    format!("dimensions {keys:?} are not a dimension set the code writes"),
                );
            }
            if !keys.contains("environment") {
                self.violation(
                    at,
                    format!("reads `{metric}` without the environment dimension"),
                );
            }
        } else if !platform {
            self.violation(
                at,
                format!("reads metric `{metric}` from namespace {namespace}"),
            );
        }
    }

    fn check_aws_alarm(&mut self, at: &str, module: &str, body: &HclBody) {
        self.check_aws_metric(at, body);
        for query in blocks(body, "metric_query") {
            for metric in blocks(&query.body, "metric") {
                self.check_aws_metric(at, &metric.body);
            }
        }
        if attr(body, "actions_enabled").map(text).as_deref() == Some("false") {
            // Part of a composite alarm: the composite notifies.
            return;
        }
        *self.report.alerts.entry(module.to_owned()).or_default() += 1;
        for actions in ["alarm_actions", "ok_actions"] {
            match attr(body, actions).map(text) {
                None => self.violation(at, format!("no {actions}")),
                Some(t) if t.trim() == "[]" => self.violation(at, format!("empty {actions}")),
                Some(_) => {}
            }
        }
        let tags = attr(body, "tags").map(tag_keys).unwrap_or_default();
        for key in ["severity", "runbook", "environment"] {
            if !tags.contains(key) {
                self.violation(at, format!("no `{key}` tag"));
            }
        }
        let body_text = hcl::format::to_string(body).unwrap_or_default();
        self.check_runbooks(at, module, &body_text);
    }
}

/// The keys of a tags expression: an object, or `merge(...)` of objects.
fn tag_keys(expr: &Expression) -> BTreeSet<String> {
    match expr {
        Expression::Object(object) => object.keys().map(ToString::to_string).collect(),
        Expression::FuncCall(call) => call.args.iter().flat_map(tag_keys).collect(),
        _ => BTreeSet::new(),
    }
}

/// `resource "<kind>" "<name>" { body }` blocks of a file.
fn resources(body: &HclBody) -> impl Iterator<Item = (&str, &str, &HclBody)> {
    blocks(body, "resource").filter_map(|b| match b.labels.as_slice() {
        [kind, name] => Some((kind.as_str(), name.as_str(), &b.body)),
        _ => None,
    })
}

fn check(sources: &[Source], contract: &Contract, runbooks: &BTreeMap<String, String>) -> Report {
    let mut checker = Checker {
        contract,
        runbooks,
        report: Report::default(),
    };
    let mut modules: BTreeMap<&str, Vec<&Source>> = BTreeMap::new();
    for source in sources {
        modules.entry(&source.module).or_default().push(source);
    }
    for (module, sources) in modules {
        checker.check_module(module, &sources);
    }
    for (file, content) in runbooks {
        check_runbook(&mut checker.report, file, content);
    }
    checker.report
}

fn check_runbook(report: &mut Report, file: &str, content: &str) {
    let headings: Vec<&str> = content
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with("## "))
        .collect();
    for section in RUNBOOK_SECTIONS {
        if !headings.contains(&section) {
            report
                .violations
                .push(format!("runbooks/{file}: no `{section}` section"));
        }
    }
    if headings.first() != Some(&RUNBOOK_SECTIONS[0]) {
        report.violations.push(format!(
            "runbooks/{file}: does not open with `{}`",
            RUNBOOK_SECTIONS[0]
        ));
    }
}

// ---------------------------------------------------------------------------
// The rendered catalogue (terraform/tests/rendered/alerts.json).

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform")
}

fn catalogue() -> Value {
    let path = terraform_dir().join("tests/rendered/alerts.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (scripts/render-alert-rules.sh renders it)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Every `<prefix><ident>` in a PromQL query, with the label matchers that
/// follow it (`{...}`, empty when none).
fn selectors(query: &str, prefix: &str) -> Vec<(String, String)> {
    query
        .match_indices(prefix)
        .map(|(i, _)| {
            let after = &query[i + prefix.len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let rest = &after[name.len()..];
            let matchers = rest
                .strip_prefix('{')
                .and_then(|r| r.split('}').next())
                .unwrap_or_default()
                .to_owned();
            (name, matchers)
        })
        .collect()
}

/// Checks the rendered catalogue against the contract and the runbooks.
fn check_catalogue(
    catalogue: &Value,
    contract: &Contract,
    runbooks: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut violations = Vec::new();
    let environment = catalogue["environment"].as_str().unwrap();
    let env_matcher = format!("environment=\"{environment}\"");

    // GCP: PromQL.
    for (key, alert) in catalogue["gcp_alerts"].as_object().unwrap() {
        let at = format!("gcp_alerts.{key}");
        let query = alert["query"].as_str().unwrap();
        let runbook = alert["runbook"].as_str().unwrap();
        if !runbooks.contains_key(runbook) {
            violations.push(format!("{at}: runbook `{runbook}` does not exist"));
        }
        let (severity, route) = (
            alert["severity"].as_str().unwrap(),
            alert["route"].as_str().unwrap(),
        );
        if (severity == "CRITICAL") != (route == "page") {
            violations.push(format!("{at}: severity {severity} on route {route}"));
        }
        for (name, matchers) in selectors(query, "logging_googleapis_com:user_") {
            let field = ["_sum", "_count", "_bucket"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            if !contract.log_fields.contains(field) {
                violations.push(format!(
                    "{at}: reads `{field}`, which the code does not write"
                ));
            }
            if !matchers.contains(&env_matcher) {
                violations.push(format!(
                    "{at}: reads `{name}` without the environment matcher ({env_matcher})"
                ));
            }
        }
        for platform in [
            "run_googleapis_com:",
            "redis_googleapis_com:",
            "monitoring_googleapis_com:",
        ] {
            for (name, matchers) in selectors(query, platform) {
                if matchers.is_empty() {
                    violations.push(format!("{at}: {platform}{name} without matchers"));
                }
            }
        }
        violations.extend(memorystore_violations(&at, query));
    }
    for path in strings(&catalogue["memorystore_instance_paths"]) {
        if !is_full_instance_name(&path) {
            violations.push(format!(
                "memorystore_instance_paths: `{path}` is not a full name"
            ));
        }
    }

    // AWS: every metric of our namespace is emitted, with a dimension set
    // the line declares, which includes the environment.
    let mut specs: Vec<(String, &Value)> = Vec::new();
    for group in ["aws_windows", "aws_notify", "aws_page_causes"] {
        for (key, spec) in catalogue[group].as_object().unwrap() {
            specs.push((format!("{group}.{key}"), spec));
        }
    }
    for (at, spec) in &specs {
        if let Some(runbook) = spec.get("runbook").and_then(Value::as_str)
            && !runbooks.contains_key(runbook)
        {
            violations.push(format!("{at}: runbook `{runbook}` does not exist"));
        }
        for metric in spec["metrics"].as_array().unwrap() {
            let namespace = metric["namespace"].as_str().unwrap();
            let name = metric["metric_name"].as_str().unwrap();
            if namespace == contract.namespace {
                if !contract.emf_metrics.contains(name) {
                    violations.push(format!(
                        "{at}: reads metric `{name}`, which the code does not emit"
                    ));
                }
                let dims: BTreeSet<String> = metric["dimensions"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .cloned()
                    .collect();
                if !contract.emf_dimension_sets.contains(&dims) {
                    violations.push(format!(
                        "{at}: dimensions {dims:?} of `{name}` are not a set the line declares"
                    ));
                }
                if metric["dimensions"]["environment"] != environment {
                    violations.push(format!(
                        "{at}: reads `{name}` without environment = {environment}"
                    ));
                }
            } else if !namespace.starts_with("AWS/") {
                violations.push(format!("{at}: reads `{name}` from namespace {namespace}"));
            }
        }
    }
    for (key, burn) in catalogue["aws_burns"].as_object().unwrap() {
        let runbook = burn["runbook"].as_str().unwrap();
        if !runbooks.contains_key(runbook) {
            violations.push(format!(
                "aws_burns.{key}: runbook `{runbook}` does not exist"
            ));
        }
    }

    // The request SLOs leave the probe routes out.
    for slo in ["request_availability", "request_latency"] {
        for side in ["bad", "total"] {
            for name in strings(&catalogue["slos"][slo][side]) {
                if !PROBE_FREE_COUNTS.contains(&name.as_str()) {
                    violations.push(format!(
                        "slos.{slo}.{side}: `{name}` counts the probe routes too"
                    ));
                }
            }
        }
    }
    violations
}

// ---------------------------------------------------------------------------
// The tree and the fixtures.

fn tf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // .terraform: downloaded providers and modules; fixtures: the
            // policies' counter-examples, wrong on purpose.
            if path
                .file_name()
                .is_some_and(|n| n != ".terraform" && n != "fixtures")
            {
                tf_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "tf") {
            out.push(path);
        }
    }
}

fn tree_sources() -> Vec<Source> {
    let root = terraform_dir();
    let mut files = Vec::new();
    tf_files(&root, &mut files);
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the modules under {}",
        root.display()
    );
    files
        .iter()
        .map(|f| {
            let relative = f.strip_prefix(&root).unwrap().display().to_string();
            parse(&relative, &std::fs::read_to_string(f).unwrap())
        })
        .collect()
}

fn tree_runbooks() -> BTreeMap<String, String> {
    std::fs::read_dir(terraform_dir().join("runbooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .filter(|p| p.file_name().is_some_and(|n| n != "README.md"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// A small, valid module per cloud. The tests below break one thing at a
/// time and show that the checker notices.
const GCP_FIXTURE: &str = r#"
locals {
  metrics_event = "redis_metrics"
  fields        = toset(["redis_operations", "redis_errors"])
}

resource "google_logging_metric" "count" {
  for_each        = local.fields
  name            = each.key
  filter          = "jsonPayload.event=\"${local.metrics_event}\""
  value_extractor = "EXTRACT(jsonPayload.${each.key})"
  label_extractors = {
    service     = "EXTRACT(jsonPayload.service)"
    environment = "EXTRACT(jsonPayload.environment)"
  }
}

resource "google_monitoring_alert_policy" "errors" {
  display_name = "errors"
  combiner     = "OR"
  severity     = "CRITICAL"
  conditions {
    display_name = "ratio"
    condition_prometheus_query_language {
      query = "sum(rate(logging_googleapis_com:user_redis_errors_sum[5m])) / sum(rate(logging_googleapis_com:user_redis_operations_sum[5m])) > 0.01"
    }
  }
  notification_channels = local.page
  alert_strategy {
    auto_close = "1800s"
  }
  documentation {
    content = "Runbook: ${var.runbook_base_url}/fixture.md"
  }
  user_labels = {
    environment = var.environment
  }
}
"#;

const AWS_FIXTURE: &str = r#"
variable "metric_namespace" {
  type    = string
  default = "ServerlessRedis"
}

resource "aws_cloudwatch_metric_alarm" "connect" {
  alarm_name          = "connect"
  alarm_description   = "Runbook: ${var.runbook_base_url}/fixture.md"
  namespace           = var.metric_namespace
  metric_name         = "redis_errors_connect"
  dimensions          = { service = "tebra_debug", environment = "production" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 20
  alarm_actions       = [local.page]
  ok_actions          = [local.page]
  tags = {
    severity    = "critical"
    runbook     = "${var.runbook_base_url}/fixture.md"
    environment = "production"
  }
}
"#;

fn fixture_runbooks() -> BTreeMap<String, String> {
    let content = RUNBOOK_SECTIONS.join("\n\ntext\n\n");
    BTreeMap::from([("fixture.md".to_owned(), content)])
}

fn check_fixture(gcp: &str, aws: &str, contract: &Contract) -> Report {
    let sources = vec![
        parse("fixture/gcp/main.tf", gcp),
        parse("fixture/aws/main.tf", aws),
    ];
    check(&sources, contract, &fixture_runbooks())
}

fn mentions(report: &Report, needle: &str) -> bool {
    report.violations.iter().any(|v| v.contains(needle))
}

/// A contract without a real line, for the tests that need none.
fn offline_contract() -> Contract {
    let mut line = serde_json::json!({
        "event": names::METRICS_EVENT,
        "service": "x",
        "_aws": {"CloudWatchMetrics": [{"Namespace": names::NAMESPACE, "Dimensions": names::DIMENSION_SETS, "Metrics": []}]}
    });
    for field in [names::ENVIRONMENT, names::LEVEL, names::TIMESTAMP] {
        line[field] = "x".into();
    }
    line[names::HTTP_SLOW_THRESHOLD_MS] = names::HTTP_SLOW_REQUEST_THRESHOLD_MS.into();
    for (name, _) in names::METRICS {
        line[*name] = 0.into();
        line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"Name": name}));
    }
    contract_from(&line)
}

// ---------------------------------------------------------------------------
// The tests: the contract.

#[tokio::test]
async fn terraform_alerts_read_only_what_the_code_writes_and_carry_severity_channels_and_runbooks()
{
    let contract = contract_from(&written_metrics_line().await);
    let runbooks = tree_runbooks();
    let report = check(&tree_sources(), &contract, &runbooks);
    assert!(
        report.violations.is_empty(),
        "terraform/ breaks the metric contract:\n  {}",
        report.violations.join("\n  ")
    );
    // Both clouds are covered.
    for module in ["modules/gcp-alerting", "modules/aws-alerting"] {
        assert!(
            report.alerts.get(module).copied().unwrap_or(0) >= 3,
            "{module}: {report:?}"
        );
    }
    // Every runbook is linked, by a resource or by the catalogue.
    let catalogue = catalogue();
    let mut linked: BTreeSet<String> = report.runbooks_used.values().flatten().cloned().collect();
    for group in ["gcp_alerts", "aws_notify", "aws_page_causes", "aws_burns"] {
        for alert in catalogue[group].as_object().unwrap().values() {
            linked.insert(alert["runbook"].as_str().unwrap().to_owned());
        }
    }
    linked.insert("slo-page.md".to_owned());
    let all: BTreeSet<String> = runbooks.keys().cloned().collect();
    assert_eq!(
        linked, all,
        "every runbook is linked by an alert, and only those exist"
    );
}

#[tokio::test]
async fn the_rendered_alerts_read_only_written_metrics_with_the_environment() {
    let contract = contract_from(&written_metrics_line().await);
    let violations = check_catalogue(&catalogue(), &contract, &tree_runbooks());
    assert!(
        violations.is_empty(),
        "terraform/tests/rendered breaks the metric contract:\n  {}",
        violations.join("\n  ")
    );
}

#[tokio::test]
async fn the_line_writes_every_field_and_dimension_set_the_alerts_read() {
    let written = written_from(&written_metrics_line().await);
    let missing: Vec<&&str> = ISSUE_17_FIELDS
        .iter()
        .filter(|f| !written.log_fields.contains(**f))
        .collect();
    assert!(missing.is_empty(), "not written: {missing:?}");
    for field in ISSUE_17_FIELDS {
        let not_metrics = [
            names::ENVIRONMENT,
            names::LEVEL,
            names::TIMESTAMP,
            names::HTTP_SLOW_THRESHOLD_MS,
        ];
        assert_eq!(
            written.emf_metrics.contains(*field),
            !not_metrics.contains(field),
            "{field}: an EMF metric exactly when it is a count"
        );
    }
    for field in ISSUE_15_QUEUE_FIELDS {
        assert!(
            written.log_fields.contains(*field) && written.emf_metrics.contains(*field),
            "{field}: written, and an EMF metric, on a line whose interval read a queue"
        );
    }
    for set in names::DIMENSION_SETS {
        let set: BTreeSet<String> = set.iter().map(|d| (*d).to_owned()).collect();
        assert!(
            written.emf_dimension_sets.contains(&set),
            "the line does not declare the dimension set {set:?}"
        );
    }
}

#[test]
fn the_tiers_are_the_workbooks_and_thresholds_are_factor_times_budget() {
    let catalogue = catalogue();
    let burns = catalogue["burns"].as_object().unwrap();
    let expected = [
        ("fast", "1h", "5m", 14.4, true),
        ("slow", "6h", "30m", 6.0, true),
        ("ticket", "3d", "6h", 1.0, false),
    ];
    for (slo, s) in catalogue["slos"].as_object().unwrap() {
        let objective = s["objective"].as_f64().unwrap();
        for (tier, long, short, factor, page) in expected {
            let b = &burns[&format!("{slo}_{tier}")];
            assert_eq!(b["long"], long, "{slo} {tier}");
            assert_eq!(b["short"], short, "{slo} {tier}");
            assert_eq!(b["factor"].as_f64().unwrap(), factor, "{slo} {tier}");
            let threshold: f64 = b["threshold"].as_str().unwrap().parse().unwrap();
            assert!(
                (threshold - factor * (1.0 - objective)).abs() < 1e-9,
                "{slo} {tier}: {threshold}"
            );
            let pages = s["pages"].as_bool().unwrap();
            assert_eq!(b["page"].as_bool().unwrap(), page && pages, "{slo} {tier}");
        }
    }
    // Redis latency is a cause: never a page.
    assert_eq!(catalogue["slos"]["redis_latency"]["pages"], false);
}

#[tokio::test]
async fn checker_fails_on_a_fixture_alert_naming_a_metric_the_code_does_not_emit() {
    let contract = contract_from(&written_metrics_line().await);
    // The fixtures as written are valid, so what fails below is the name.
    let valid = check_fixture(GCP_FIXTURE, AWS_FIXTURE, &contract);
    assert!(valid.violations.is_empty(), "{:?}", valid.violations);

    // A Cloud Monitoring query reading a log-based metric nobody declared.
    let gcp = GCP_FIXTURE.replace("user_redis_errors_sum[5m]", "user_redis_made_up_sum[5m]");
    let report = check_fixture(&gcp, AWS_FIXTURE, &contract);
    assert!(
        mentions(&report, "redis_made_up"),
        "{:?}",
        report.violations
    );

    // A log-based metric extracting a field the code does not write.
    let gcp = GCP_FIXTURE.replace(
        r#"["redis_operations", "redis_errors"]"#,
        r#"["redis_operations", "redis_errors", "redis_made_up"]"#,
    );
    let report = check_fixture(&gcp, AWS_FIXTURE, &contract);
    assert!(
        mentions(&report, "log field `redis_made_up`"),
        "{:?}",
        report.violations
    );

    // A log-based metric without the environment label.
    let gcp = GCP_FIXTURE.replace(
        "    environment = \"EXTRACT(jsonPayload.environment)\"\n",
        "",
    );
    let report = check_fixture(&gcp, AWS_FIXTURE, &contract);
    assert!(
        mentions(&report, "does not extract the `environment` label"),
        "{:?}",
        report.violations
    );

    // A CloudWatch alarm on a metric our namespace does not have.
    let aws = AWS_FIXTURE.replace(r#""redis_errors_connect""#, r#""redis_made_up""#);
    let report = check_fixture(GCP_FIXTURE, &aws, &contract);
    assert!(
        mentions(
            &report,
            "metric `redis_made_up`, which the code does not emit"
        ),
        "{:?}",
        report.violations
    );

    // Without the environment dimension; a dimension the code does not
    // write; a wrong namespace default; a wrong event name.
    let aws = AWS_FIXTURE.replace(", environment = \"production\" }", " }");
    let report = check_fixture(GCP_FIXTURE, &aws, &contract);
    assert!(
        mentions(&report, "without the environment dimension"),
        "{:?}",
        report.violations
    );
    let aws = AWS_FIXTURE
        .replace("{ service = ", "{ FunctionName = ")
        .replace(r#"default = "ServerlessRedis""#, r#"default = "Other""#);
    let report = check_fixture(GCP_FIXTURE, &aws, &contract);
    assert!(
        mentions(&report, "\"FunctionName\"") && mentions(&report, "not a dimension set"),
        "{:?}",
        report.violations
    );
    assert!(
        mentions(&report, "variable.metric_namespace"),
        "{:?}",
        report.violations
    );
    let gcp = GCP_FIXTURE.replace(
        r#"metrics_event = "redis_metrics""#,
        r#"metrics_event = "metrics""#,
    );
    let report = check_fixture(&gcp, AWS_FIXTURE, &contract);
    assert!(
        mentions(&report, "selects event `metrics`"),
        "{:?}",
        report.violations
    );
}

#[tokio::test]
async fn checker_fails_on_alerts_without_severity_channels_auto_close_environment_or_runbook() {
    let contract = contract_from(&written_metrics_line().await);

    let gcp = GCP_FIXTURE
        .replace("  severity     = \"CRITICAL\"\n", "")
        .replace("  notification_channels = local.page\n", "")
        .replace("    auto_close = \"1800s\"\n", "")
        .replace("    environment = var.environment\n", "")
        .replace("${var.runbook_base_url}/fixture.md", "see the wiki");
    let report = check_fixture(&gcp, AWS_FIXTURE, &contract);
    for needle in [
        "no severity",
        "no notification_channels",
        "no alert_strategy.auto_close",
        "no `environment` user label",
        "no runbook link",
    ] {
        assert!(
            mentions(&report, needle),
            "{needle}: {:?}",
            report.violations
        );
    }

    let aws = AWS_FIXTURE
        .replace("  alarm_actions       = [local.page]\n", "")
        .replace(
            "  ok_actions          = [local.page]\n",
            "  ok_actions          = []\n",
        )
        .replace("    severity    = \"critical\"\n", "")
        .replace("    environment = \"production\"\n", "");
    let report = check_fixture(GCP_FIXTURE, &aws, &contract);
    for needle in [
        "no alarm_actions",
        "empty ok_actions",
        "no `severity` tag",
        "no `environment` tag",
    ] {
        assert!(
            mentions(&report, needle),
            "{needle}: {:?}",
            report.violations
        );
    }
}

#[tokio::test]
async fn checker_fails_on_a_missing_or_incomplete_runbook() {
    let contract = contract_from(&written_metrics_line().await);
    let aws = AWS_FIXTURE.replace("/fixture.md", "/no-such-runbook.md");
    let report = check_fixture(GCP_FIXTURE, &aws, &contract);
    assert!(
        mentions(
            &report,
            "runbook `no-such-runbook.md`, which does not exist"
        ),
        "{:?}",
        report.violations
    );

    let sources = vec![parse("fixture/gcp/main.tf", GCP_FIXTURE)];
    let incomplete = BTreeMap::from([(
        "fixture.md".to_owned(),
        "## Impact\n\n## Mitigation\n\n## Five-minute triage\n".to_owned(),
    )]);
    let report = check(&sources, &contract, &incomplete);
    for needle in [
        "no `## Escalation` section",
        "no `## Likely causes` section",
        "does not open with `## Five-minute triage`",
    ] {
        assert!(
            mentions(&report, needle),
            "{needle}: {:?}",
            report.violations
        );
    }
}

#[test]
fn every_memorystore_filter_takes_the_full_instance_name() {
    // The tree: the rendered queries and the .tf files.
    let catalogue = catalogue();
    let violations = check_catalogue(&catalogue, &offline_contract(), &tree_runbooks());
    assert!(
        !violations.iter().any(|v| v.contains("instance_id")),
        "{violations:?}"
    );
    let memorystore: Vec<&Value> = catalogue["gcp_alerts"]
        .as_object()
        .unwrap()
        .values()
        .filter(|a| {
            a["query"]
                .as_str()
                .unwrap()
                .contains("redis_googleapis_com:")
        })
        .collect();
    assert!(
        memorystore.len() >= 4,
        "the render covers the Memorystore alerts"
    );
    for alert in memorystore {
        let values = instance_id_values(alert["query"].as_str().unwrap());
        assert!(
            values.contains(
                &"projects/demo-project-123/locations/us-central1/instances/redis-main".to_owned()
            ),
            "a bare id is completed to the full name: {values:?}"
        );
    }

    // The bad fixture (the old module's filter on a bare id) must fail.
    let path = terraform_dir().join("policies/fixtures/contract/memorystore_bare_id.tf");
    let bad = parse(
        "fixture/contract/main.tf",
        &std::fs::read_to_string(&path).unwrap(),
    );
    let report = check(&[bad], &offline_contract(), &fixture_runbooks());
    assert!(
        mentions(&report, "compares instance_id with `${each.key}`")
            && mentions(&report, "compares instance_id with `redis-main`"),
        "{:?}",
        report.violations
    );

    // And the same in PromQL.
    for (query, fails) in [
        (
            r#"max(redis_googleapis_com:stats_memory_usage_ratio{monitored_resource="redis_instance",instance_id="redis-main"}) > 0.9"#,
            true,
        ),
        (
            r#"max(redis_googleapis_com:stats_memory_usage_ratio{monitored_resource="redis_instance",instance_id=~"projects/p-123456/locations/us-central1/instances/a|b"}) > 0.9"#,
            true,
        ),
        (
            r#"max(redis_googleapis_com:stats_memory_usage_ratio{monitored_resource="redis_instance"}) > 0.9"#,
            true,
        ),
        (
            r#"max(redis_googleapis_com:stats_memory_usage_ratio{monitored_resource="redis_instance",instance_id=~"projects/p-123456/locations/us-central1/instances/a|projects/p-123456/locations/europe-west1/instances/b"}) > 0.9"#,
            false,
        ),
    ] {
        assert_eq!(
            !memorystore_violations("q", query).is_empty(),
            fails,
            "{query}"
        );
    }
}

#[test]
fn request_slos_exclude_the_probe_routes() {
    let mut catalogue = catalogue();
    let violations = check_catalogue(&catalogue, &offline_contract(), &tree_runbooks());
    assert!(
        !violations.iter().any(|v| v.contains("probe routes")),
        "{violations:?}"
    );
    // Reading the counts that include the probes fails.
    catalogue["slos"]["request_availability"]["total"] = serde_json::json!([names::HTTP_REQUESTS]);
    let violations = check_catalogue(&catalogue, &offline_contract(), &tree_runbooks());
    assert!(
        violations
            .iter()
            .any(|v| v.contains("`http_requests` counts the probe routes too")),
        "{violations:?}"
    );
}

#[test]
fn probes_must_target_redis_health_and_match_the_healthy_body() {
    let probe = r#"
resource "google_monitoring_uptime_check_config" "p" {
  http_check {
    path = "/healthz"
  }
  content_matchers {
    content = "OK"
  }
}
resource "aws_route53_health_check" "p" {
  resource_path = "/status"
  search_string = "healthy"
}
"#;
    let report = check(
        &[parse("fixture/p/main.tf", probe)],
        &offline_contract(),
        &BTreeMap::new(),
    );
    assert!(
        mentions(&report, "probes Some(\"/healthz\")"),
        "{:?}",
        report.violations
    );
    assert!(
        mentions(&report, "matches Some(\"OK\")"),
        "{:?}",
        report.violations
    );
    assert!(
        mentions(&report, "aws_route53_health_check.p: probes"),
        "{:?}",
        report.violations
    );
    assert!(
        mentions(&report, "aws_route53_health_check.p: does not match"),
        "{:?}",
        report.violations
    );
}

// ---------------------------------------------------------------------------
// Metrics lines as minutes of data.

/// The metrics lines of one minute, by function.
#[derive(Debug, Clone, Default)]
struct Minute {
    lines: Vec<Value>,
}

/// What happened per minute and function in a scenario.
#[derive(Debug, Clone, Copy, Default)]
struct Traffic {
    user_ok: u64,
    user_5xx: u64,
    user_slow: u64,
    probe_ok: u64,
    probe_5xx: u64,
    redis_ops: u64,
    redis_errors: u64,
    redis_connect: u64,
    rejections: u64,
}

/// A metrics line in the format the code writes.
fn synthetic_line(service: &str, t: Traffic) -> Value {
    let requests = t.user_ok + t.user_5xx + t.probe_ok + t.probe_5xx;
    let failed = t.redis_errors + t.user_5xx + t.probe_5xx + t.rejections > 0;
    let mut line = serde_json::json!({
        names::EVENT: names::METRICS_EVENT,
        names::SERVICE: service,
        names::ENVIRONMENT: "production",
        names::LEVEL: if failed { "WARN" } else { "INFO" },
        names::OPERATIONS: t.redis_ops,
        names::ERRORS: t.redis_errors,
        names::ERRORS_CONNECT: t.redis_connect,
        names::CIRCUIT_REJECTIONS: t.rejections,
        names::SLOW_OPERATIONS: 0,
        names::HTTP_REQUESTS: requests,
        names::HTTP_5XX: t.user_5xx + t.probe_5xx,
        names::HTTP_USER_REQUESTS: t.user_ok + t.user_5xx,
        names::HTTP_USER_5XX: t.user_5xx,
        names::HTTP_USER_SLOW_REQUESTS: t.user_slow,
        names::HTTP_PROBE_REQUESTS: t.probe_ok + t.probe_5xx,
        names::COLD_STARTS: 0,
    });
    for (_, name) in names::OPERATIONS_AT_LEAST {
        line[*name] = 0.into();
    }
    line
}

/// Lambda's own counts of a scenario minute (the code's 503s are no
/// Lambda errors; every request is an invocation).
#[derive(Debug, Clone, Copy, Default)]
struct Platform {
    invocations: u64,
    errors: u64,
    throttles: u64,
}

/// A scenario: per minute, the lines of each function, the platform's
/// counts and whether each function's probe fails from every region.
#[derive(Debug, Default)]
struct Scenario {
    minutes: usize,
    lines: BTreeMap<String, Vec<Minute>>,
    platform: BTreeMap<String, Vec<Platform>>,
    probe_failing: BTreeMap<String, Vec<bool>>,
}

impl Scenario {
    fn new(minutes: usize, functions: &[&str]) -> Self {
        let mut s = Self {
            minutes,
            ..Self::default()
        };
        for f in functions {
            s.lines
                .insert((*f).into(), vec![Minute::default(); minutes]);
            s.platform
                .insert((*f).into(), vec![Platform::default(); minutes]);
            s.probe_failing.insert((*f).into(), vec![false; minutes]);
        }
        s
    }

    fn push(&mut self, function: &str, minute: usize, line: Value) {
        self.lines.get_mut(function).unwrap()[minute]
            .lines
            .push(line);
    }

    /// Sums of `field` over the lines of `function` in minutes `from..=to`
    /// (None when no line at all: missing data), and the number of lines.
    fn sum(&self, function: Option<&str>, field: &str, from: i64, to: i64) -> (Option<f64>, u64) {
        let mut total = 0.0;
        let mut count = 0;
        for (f, minutes) in &self.lines {
            if function.is_some_and(|want| want != f) {
                continue;
            }
            for m in from.max(0)..=to.min(self.minutes as i64 - 1) {
                for line in &minutes[m as usize].lines {
                    if let Some(v) = line.get(field).and_then(Value::as_f64) {
                        total += v;
                        count += 1;
                    }
                }
            }
        }
        ((count > 0).then_some(total), count)
    }

    /// The largest value of `field` over the lines of `function` in minutes
    /// `from..=to` (None when no line carries it: missing data).
    fn max(&self, function: Option<&str>, field: &str, from: i64, to: i64) -> Option<f64> {
        self.lines
            .iter()
            .filter(|(f, _)| function.is_none_or(|want| want == f.as_str()))
            .flat_map(|(_, minutes)| {
                (from.max(0)..=to.min(self.minutes as i64 - 1))
                    .flat_map(move |m| minutes[m as usize].lines.iter())
            })
            .filter_map(|line| line.get(field).and_then(Value::as_f64))
            .reduce(f64::max)
    }
}

// ---------------------------------------------------------------------------
// CloudWatch, offline: metric math over sliding windows, alarms, composites.

/// A metric-math expression: numbers, metric ids, + - * /, comparisons,
/// IF(cond, a, b), FILL(metric, value), parentheses.
#[derive(Debug, Clone)]
enum Expr {
    Num(f64),
    Var(String),
    Bin(char, Box<Expr>, Box<Expr>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    Fill(Box<Expr>, Box<Expr>),
}

struct ExprParser<'a> {
    tokens: Vec<&'a str>,
    at: usize,
}

impl<'a> ExprParser<'a> {
    fn parse(text: &'a str) -> Expr {
        let mut tokens = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices() {
            let word = c.is_ascii_alphanumeric() || c == '_' || c == '.';
            match (word, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    tokens.push(&text[s..i]);
                    start = None;
                }
                _ => {}
            }
            if !word && !c.is_whitespace() {
                tokens.push(&text[i..i + c.len_utf8()]);
            }
        }
        if let Some(s) = start {
            tokens.push(&text[s..]);
        }
        let mut p = ExprParser { tokens, at: 0 };
        let e = p.comparison();
        assert_eq!(p.at, p.tokens.len(), "unparsed metric math: {text}");
        e
    }

    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.at).copied()
    }

    fn next(&mut self) -> &'a str {
        self.at += 1;
        self.tokens[self.at - 1]
    }

    fn comparison(&mut self) -> Expr {
        let left = self.sum();
        if matches!(self.peek(), Some(">" | "<")) {
            let op = self.next().chars().next().unwrap();
            let right = self.sum();
            return Expr::Bin(op, Box::new(left), Box::new(right));
        }
        left
    }

    fn sum(&mut self) -> Expr {
        let mut left = self.product();
        while matches!(self.peek(), Some("+" | "-")) {
            let op = self.next().chars().next().unwrap();
            left = Expr::Bin(op, Box::new(left), Box::new(self.product()));
        }
        left
    }

    fn product(&mut self) -> Expr {
        let mut left = self.atom();
        while matches!(self.peek(), Some("*" | "/")) {
            let op = self.next().chars().next().unwrap();
            left = Expr::Bin(op, Box::new(left), Box::new(self.atom()));
        }
        left
    }

    fn atom(&mut self) -> Expr {
        let token = self.next();
        if token == "(" {
            let e = self.comparison();
            assert_eq!(self.next(), ")");
            return e;
        }
        if token == "FILL" {
            assert_eq!(self.next(), "(");
            let a = self.comparison();
            assert_eq!(self.next(), ",");
            let b = self.comparison();
            assert_eq!(self.next(), ")");
            return Expr::Fill(Box::new(a), Box::new(b));
        }
        if token == "IF" {
            assert_eq!(self.next(), "(");
            let c = self.comparison();
            assert_eq!(self.next(), ",");
            let a = self.comparison();
            assert_eq!(self.next(), ",");
            let b = self.comparison();
            assert_eq!(self.next(), ")");
            return Expr::If(Box::new(c), Box::new(a), Box::new(b));
        }
        token
            .parse::<f64>()
            .map_or_else(|_| Expr::Var(token.to_owned()), Expr::Num)
    }
}

/// Evaluates `e`; a metric without data makes the result missing.
fn eval_expr(e: &Expr, vars: &BTreeMap<String, Option<f64>>) -> Option<f64> {
    match e {
        Expr::Num(n) => Some(*n),
        Expr::Var(v) => *vars.get(v).unwrap_or_else(|| panic!("unknown id {v}")),
        Expr::Bin(op, a, b) => {
            let (a, b) = (eval_expr(a, vars)?, eval_expr(b, vars)?);
            Some(match op {
                '+' => a + b,
                '-' => a - b,
                '*' => a * b,
                '/' => a / b,
                '>' => f64::from(u8::from(a > b)),
                '<' => f64::from(u8::from(a < b)),
                _ => unreachable!(),
            })
        }
        Expr::Fill(a, b) => eval_expr(a, vars).or_else(|| eval_expr(b, vars)),
        Expr::If(c, a, b) => {
            if eval_expr(c, vars)? != 0.0 {
                eval_expr(a, vars)
            } else {
                eval_expr(b, vars)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Insufficient,
    Ok,
    Alarm,
}

/// The value of one metric of a spec over the period ending at `minute`.
fn metric_value(s: &Scenario, metric: &Value, period_min: i64, minute: i64) -> Option<f64> {
    let namespace = metric["namespace"].as_str().unwrap();
    let name = metric["metric_name"].as_str().unwrap();
    let stat = metric["stat"].as_str().unwrap();
    let dims = metric["dimensions"].as_object().unwrap();
    let from = minute - period_min + 1;
    if namespace == "AWS/Lambda" {
        let function = dims.get("FunctionName").and_then(Value::as_str)?;
        let points = s.platform.get(function)?;
        let mut total = 0.0;
        for m in from.max(0)..=minute {
            let p = points[m as usize];
            total += match name {
                "Invocations" => p.invocations,
                "Errors" => p.errors,
                "Throttles" => p.throttles,
                _ => return None,
            } as f64;
        }
        // Lambda publishes no datapoint for a count that stayed at zero.
        return (total > 0.0).then_some(total);
    }
    if namespace != names::NAMESPACE {
        // ElastiCache and the like: not simulated.
        return None;
    }
    // The line's dimension sets: [service, environment] and [environment].
    let service = dims.get("service").and_then(Value::as_str);
    let (sum, count) = s.sum(service, name, from, minute);
    match stat {
        "Sum" => sum,
        "SampleCount" => (count > 0).then_some(count as f64),
        "Maximum" => s.max(service, name, from, minute),
        other => panic!("stat {other} not simulated"),
    }
}

/// One metric alarm's state at each minute.
fn evaluate_alarm(s: &Scenario, spec: &Value, period: i64) -> Vec<State> {
    let period_min = (period / 60).max(1);
    let evaluation_periods = spec
        .get("evaluation_periods")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let datapoints = spec
        .get("datapoints_to_alarm")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let missing = spec
        .get("treat_missing_data")
        .and_then(Value::as_str)
        .unwrap_or("notBreaching");
    let threshold = spec["threshold"].as_f64().unwrap();
    let less = spec.get("comparison").and_then(Value::as_str) == Some("LessThanThreshold");
    let expression = spec
        .get("expression")
        .and_then(Value::as_str)
        .map(ExprParser::parse);
    let metrics = spec["metrics"].as_array().unwrap();
    let mut state = State::Insufficient;
    let mut states = Vec::with_capacity(s.minutes);
    for minute in 0..s.minutes as i64 {
        let mut breaching = 0;
        let mut present = 0;
        for k in 0..evaluation_periods {
            let end = minute - k * period_min;
            let vars: BTreeMap<String, Option<f64>> = metrics
                .iter()
                .map(|m| {
                    (
                        m["id"].as_str().unwrap().to_owned(),
                        (end >= 0)
                            .then(|| metric_value(s, m, period_min, end))
                            .flatten(),
                    )
                })
                .collect();
            let value = match &expression {
                Some(e) => eval_expr(e, &vars),
                None => vars.values().next().copied().flatten(),
            };
            match value {
                Some(v) => {
                    present += 1;
                    if (less && v < threshold) || (!less && v > threshold) {
                        breaching += 1;
                    }
                }
                None => {
                    if missing == "breaching" {
                        breaching += 1;
                    }
                }
            }
        }
        state = if present == 0 && missing == "missing" {
            state
        } else if breaching >= datapoints {
            State::Alarm
        } else {
            State::Ok
        };
        states.push(state);
    }
    states
}

/// Every alarm of the AWS catalogue evaluated over a scenario: the window
/// alarms, the burn composites, the page, the notify alarms, the page
/// causes (with the page as their suppressor).
#[derive(Debug)]
struct AwsRun {
    states: BTreeMap<String, Vec<State>>,
    /// Minutes at which a page cause would page (not suppressed).
    cause_pages: BTreeMap<String, Vec<bool>>,
}

fn evaluate_aws(catalogue: &Value, s: &Scenario) -> AwsRun {
    let mut states = BTreeMap::new();
    for (key, w) in catalogue["aws_windows"].as_object().unwrap() {
        let mut spec = w.clone();
        spec["comparison"] = "GreaterThanThreshold".into();
        states.insert(
            key.clone(),
            evaluate_alarm(s, &spec, w["seconds"].as_i64().unwrap()),
        );
    }
    for (key, b) in catalogue["aws_burns"].as_object().unwrap() {
        let long = &states[b["long"].as_str().unwrap()];
        let short = &states[b["short"].as_str().unwrap()];
        let both = long
            .iter()
            .zip(short)
            .map(|(l, r)| {
                if *l == State::Alarm && *r == State::Alarm {
                    State::Alarm
                } else {
                    State::Ok
                }
            })
            .collect();
        states.insert(format!("burn:{key}"), both);
    }
    let children = strings(&catalogue["aws_page_children"]);
    let page: Vec<State> = (0..s.minutes)
        .map(|m| {
            if children
                .iter()
                .any(|c| states[&format!("burn:{c}")][m] == State::Alarm)
            {
                State::Alarm
            } else {
                State::Ok
            }
        })
        .collect();
    for (key, spec) in catalogue["aws_notify"].as_object().unwrap() {
        states.insert(
            format!("notify:{key}"),
            evaluate_alarm(s, spec, spec["period"].as_i64().unwrap()),
        );
    }
    let mut cause_pages = BTreeMap::new();
    for (key, spec) in catalogue["aws_page_causes"].as_object().unwrap() {
        let source = evaluate_alarm(s, spec, spec["period"].as_i64().unwrap());
        // ActionsSuppressor: no action while the page is in ALARM or left
        // it less than the extension period (5 minutes) ago.
        let pages = (0..s.minutes)
            .map(|m| {
                let suppressed = (m.saturating_sub(5)..=m).any(|k| page[k] == State::Alarm);
                source[m] == State::Alarm && !suppressed
            })
            .collect();
        cause_pages.insert(key.clone(), pages);
    }
    states.insert("page".into(), page);
    AwsRun {
        states,
        cause_pages,
    }
}

fn first_alarm(states: &[State]) -> Option<usize> {
    states.iter().position(|s| *s == State::Alarm)
}

fn last_alarm(states: &[State]) -> Option<usize> {
    states.iter().rposition(|s| *s == State::Alarm)
}

// ---------------------------------------------------------------------------
// Cloud Monitoring, offline: promtool test rules over the same minutes.

fn promtool() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PROMTOOL") {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var("HOME").ok()?;
    let path = Path::new(&home).join(".cache/redis-functions-ops/bin/promtool");
    path.exists().then_some(path)
}

/// A promtool series: cumulative values, one per minute.
fn series_line(name: &str, labels: &[(&str, &str)], values: &[f64]) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    let values: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
    format!(
        "      - series: '{name}{{{}}}'\n        values: '{}'\n",
        labels.join(","),
        values.join(" ")
    )
}

/// The scenario as Cloud Monitoring series: the log-based metrics' _sum
/// (and _count for http_requests and the queue gauges) as counters, Cloud Run's request_count
/// by response code, and the uptime checks from three regions.
fn promtool_series(catalogue: &Value, s: &Scenario, uptime_ids: &BTreeMap<&str, &str>) -> String {
    let environment = catalogue["environment"].as_str().unwrap();
    let mut out = String::new();
    let fields: BTreeSet<String> = s
        .lines
        .values()
        .flatten()
        .flat_map(|m| m.lines.iter())
        .flat_map(|l| l.as_object().unwrap().iter())
        .filter(|(_, v)| v.is_number())
        .map(|(k, _)| k.clone())
        .collect();
    for (function, minutes) in &s.lines {
        let labels = [
            ("monitored_resource", "cloud_run_revision"),
            ("environment", environment),
            ("service", function.as_str()),
        ];
        for field in &fields {
            let mut total = 0.0;
            let mut lines = 0.0;
            let mut sums = Vec::new();
            let mut counts = Vec::new();
            for m in minutes {
                for l in &m.lines {
                    if let Some(v) = l.get(field).and_then(Value::as_f64) {
                        total += v;
                        lines += 1.0;
                    }
                }
                sums.push(total);
                counts.push(lines);
            }
            if lines == 0.0 {
                continue;
            }
            out += &series_line(
                &format!("logging_googleapis_com:user_{field}_sum"),
                &labels,
                &sums,
            );
            if field == names::HTTP_REQUESTS || names::QUEUE_GAUGES.contains(&field.as_str()) {
                out += &series_line(
                    &format!("logging_googleapis_com:user_{field}_count"),
                    &labels,
                    &counts,
                );
            }
        }
        // Cloud Run's count: every request, probes included, by code.
        let service = function.replace('_', "-");
        let (mut ok, mut failed) = (0.0, 0.0);
        let (mut oks, mut faileds) = (Vec::new(), Vec::new());
        for m in minutes {
            for l in &m.lines {
                let requests = l["http_requests"].as_f64().unwrap_or(0.0);
                let errors = l["http_responses_5xx"].as_f64().unwrap_or(0.0);
                ok += requests - errors;
                failed += errors;
            }
            oks.push(ok);
            faileds.push(failed);
        }
        for (code, class, values) in [("200", "2xx", &oks), ("503", "5xx", &faileds)] {
            out += &series_line(
                "run_googleapis_com:request_count",
                &[
                    ("monitored_resource", "cloud_run_revision"),
                    ("service_name", &service),
                    ("response_code", code),
                    ("response_code_class", class),
                ],
                values,
            );
        }
        if let Some(id) = uptime_ids.get(function.as_str()) {
            let passed: Vec<f64> = s.probe_failing[function]
                .iter()
                .map(|f| if *f { 0.0 } else { 1.0 })
                .collect();
            for location in ["usa-iowa", "europe", "asia-pacific"] {
                out += &series_line(
                    "monitoring_googleapis_com:uptime_check_check_passed",
                    &[
                        ("monitored_resource", "uptime_url"),
                        ("check_id", id),
                        ("checker_location", location),
                    ],
                    &passed,
                );
            }
        }
    }
    out
}

/// Expected firing of one alert at a minute: the alert's rule labels and,
/// for per-function alerts, the function.
struct Expect<'a> {
    minute: usize,
    alert: &'a str,
    firing: Vec<Option<&'a str>>,
}

// Says once per run that the PromQL was not evaluated (promtool missing
// outside make ops-check): a skipped evaluation must not pass silently.
#[allow(clippy::print_stderr)]
fn promtool_test(catalogue: &Value, s: &Scenario, expects: &[Expect<'_>]) -> Option<String> {
    let Some(promtool) = promtool() else {
        assert!(
            std::env::var_os("OPS_CHECK").is_none(),
            "make ops-check must have promtool (make setup installs it from Debian's prometheus package)"
        );
        eprintln!(
            "promtool not found (make setup installs it): the PromQL is not evaluated in this run"
        );
        return None;
    };
    let rules = terraform_dir().join("tests/rendered/gcp-rules.yaml");
    let uptime_ids: BTreeMap<&str, &str> = [
        ("tebra_debug", "tebra-debug-redis-health-0a1b2c"),
        ("patient_sync", "patient-sync-redis-health-3d4e5f"),
        ("sessions", "sessions-redis-health-6a7b8c"),
    ]
    .into();
    let alerts = catalogue["gcp_alerts"].as_object().unwrap();
    let mut yaml = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
        rules.display()
    );
    yaml += &promtool_series(catalogue, s, &uptime_ids);
    yaml += "    alert_rule_test:\n";
    for e in expects {
        let alert = &alerts[e.alert];
        yaml += &format!(
            "      - eval_time: {}m\n        alertname: {}\n        exp_alerts:\n",
            e.minute, e.alert
        );
        if e.firing.is_empty() {
            yaml.truncate(yaml.len() - 1);
            yaml += " []\n";
        }
        for function in &e.firing {
            yaml += &format!(
                "          - exp_labels:\n              severity: {}\n              route: {}\n              tier: {}\n",
                alert["severity"].as_str().unwrap().to_lowercase(),
                alert["route"].as_str().unwrap(),
                alert["tier"].as_str().unwrap()
            );
            if let Some(f) = function {
                yaml += &format!("              service: {f}\n");
            }
        }
    }
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file =
        std::env::temp_dir().join(format!("promtool-test-{}-{run}.yaml", std::process::id()));
    std::fs::write(&file, &yaml).unwrap();
    let output = std::process::Command::new(&promtool)
        .arg("test")
        .arg("rules")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool test rules failed:\n{}\n{}\n(test file {})",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        file.display()
    );
    std::fs::remove_file(&file).unwrap();
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

// ---------------------------------------------------------------------------
// The tests: the evaluators, and the scenarios.

#[test]
fn the_cloudwatch_evaluator_follows_metric_math_and_missing_data() {
    let e = ExprParser::parse("IF((a + b) > 0, (c + b) / (a + b), 0)");
    let vars = |a: Option<f64>, b: Option<f64>, c: Option<f64>| {
        BTreeMap::from([
            ("a".to_owned(), a),
            ("b".to_owned(), b),
            ("c".to_owned(), c),
        ])
    };
    assert_eq!(
        eval_expr(&e, &vars(Some(8.0), Some(2.0), Some(3.0))),
        Some(0.5)
    );
    assert_eq!(
        eval_expr(&e, &vars(Some(0.0), Some(0.0), Some(0.0))),
        Some(0.0)
    );
    assert_eq!(eval_expr(&e, &vars(None, Some(0.0), Some(0.0))), None);
    let filled = ExprParser::parse("FILL(a, 0) + b");
    assert_eq!(eval_expr(&filled, &vars(None, Some(2.0), None)), Some(2.0));

    // A 10-minute window over 100 operations a minute, minutes 10 to 14
    // failing entirely: above 10 % once two failing minutes are in the
    // window (minute 11) and until fewer than two are (minute 23).
    let mut s = Scenario::new(40, &["f"]);
    for m in 0..40 {
        let failing = (10..15).contains(&m);
        s.push("f", m, serde_json::json!({"service": "f", "environment": "production", "redis_operations": 100, "redis_errors": if failing { 100 } else { 0 }}));
    }
    let spec = serde_json::json!({
        "threshold": 0.1,
        "expression": "IF(redis_operations > 0, redis_errors / redis_operations, 0)",
        "metrics": [
            {"id": "redis_operations", "namespace": names::NAMESPACE, "metric_name": "redis_operations", "dimensions": {"service": "f", "environment": "production"}, "stat": "Sum"},
            {"id": "redis_errors", "namespace": names::NAMESPACE, "metric_name": "redis_errors", "dimensions": {"service": "f", "environment": "production"}, "stat": "Sum"}
        ]
    });
    let states = evaluate_alarm(&s, &spec, 600);
    assert_eq!(first_alarm(&states), Some(11), "{states:?}");
    assert_eq!(last_alarm(&states), Some(22), "{states:?}");

    // No line at all: missing data, not breaching unless told.
    let empty = Scenario::new(5, &["f"]);
    assert!(
        evaluate_alarm(&empty, &spec, 600)
            .iter()
            .all(|s| *s == State::Ok)
    );
    let mut heartbeat = spec.clone();
    heartbeat["treat_missing_data"] = "breaching".into();
    assert!(
        evaluate_alarm(&empty, &heartbeat, 600)
            .iter()
            .all(|s| *s == State::Alarm)
    );
}

const FUNCTIONS: [&str; 3] = ["tebra_debug", "patient_sync", "sessions"];

/// Two hours of steady traffic on three functions, then Redis down from
/// minute 60 to 90 (tebra_debug only, or all), with or without users.
fn outage(users_per_minute: u64, all_functions: bool) -> Scenario {
    let minutes = 180;
    let mut s = Scenario::new(minutes, &FUNCTIONS);
    for function in FUNCTIONS {
        for m in 0..minutes {
            let down = (60..90).contains(&m) && (all_functions || function == "tebra_debug");
            // 3 probes a minute (regions), each one PING; users: 2 Redis
            // operations each; with Redis down the first minute's
            // operations fail to connect, then the breaker rejects the
            // users' operations and only the probes still try.
            let probes = 3;
            let t = if !down {
                Traffic {
                    user_ok: users_per_minute,
                    probe_ok: probes,
                    redis_ops: 2 * users_per_minute + probes,
                    ..Traffic::default()
                }
            } else if m == 60 {
                Traffic {
                    user_5xx: users_per_minute,
                    probe_5xx: probes,
                    redis_ops: 5 + probes,
                    redis_errors: 5 + probes,
                    redis_connect: 5 + probes,
                    rejections: 2 * users_per_minute - 5.min(2 * users_per_minute),
                    ..Traffic::default()
                }
            } else {
                Traffic {
                    user_5xx: users_per_minute,
                    probe_5xx: probes,
                    redis_ops: probes,
                    redis_errors: probes,
                    redis_connect: probes,
                    rejections: 2 * users_per_minute,
                    ..Traffic::default()
                }
            };
            s.push(function, m, synthetic_line(function, t));
            let p = &mut s.platform.get_mut(function).unwrap()[m];
            p.invocations = t.user_ok + t.user_5xx + t.probe_ok + t.probe_5xx;
            s.probe_failing.get_mut(function).unwrap()[m] = down;
        }
    }
    s
}

#[test]
fn probe_only_503s_burn_no_request_slo() {
    let catalogue = catalogue();
    // Redis down for 30 minutes and no user at all: the probes get 503.
    let s = outage(0, false);
    let run = evaluate_aws(&catalogue, &s);
    for tier in ["fast", "slow", "ticket"] {
        for slo in [
            "request_availability",
            "request_latency",
            "request_availability_platform",
        ] {
            let key = format!("burn:tebra_debug-{slo}_{tier}");
            assert_eq!(
                first_alarm(&run.states[&key]),
                None,
                "{key} fired on probe-only 503s"
            );
        }
    }
    // What pages is Redis itself, whose probes' PINGs fail.
    assert!(first_alarm(&run.states["burn:tebra_debug-redis_availability_fast"]).is_some());

    let never = |alert| Expect {
        minute: 0,
        alert,
        firing: vec![],
    };
    let mut expects = Vec::new();
    for minute in [61, 65, 75, 89] {
        for alert in [
            "slo_request_availability_fast",
            "slo_request_availability_slow",
            "slo_request_latency_fast",
        ] {
            expects.push(Expect {
                minute,
                ..never(alert)
            });
        }
    }
    expects.push(Expect {
        minute: 70,
        alert: "slo_page",
        firing: vec![None],
    });
    promtool_test(&catalogue, &s, &expects);
}

#[test]
fn a_redis_outage_pages_once_fast_stays_open_while_the_breaker_is_open_and_clears() {
    let catalogue = catalogue();
    // 60 user requests a minute per function; Redis down for all from 60 to 90.
    let s = outage(60, true);
    let run = evaluate_aws(&catalogue, &s);
    let page = &run.states["page"];
    let fired = first_alarm(page).expect("the page fires");
    assert!(
        fired <= 62,
        "the page fires within 2 minutes of the outage: {fired}"
    );
    assert!(
        page[fired..90].iter().all(|s| *s == State::Alarm),
        "the page never returns to OK while Redis is down and the breaker open: {:?}",
        &page[fired..90]
    );
    let last = last_alarm(page).unwrap();
    assert!(
        (90..=90 + 35).contains(&last),
        "the page clears within 35 minutes of recovery (the slow tier's 30-minute window): last ALARM at {last}"
    );
    // The Redis SLI reads failure, not 0 of 0, all along (rejections count).
    let redis = &run.states["burn:tebra_debug-redis_availability_fast"];
    assert!(
        redis[61..90].iter().all(|s| *s == State::Alarm),
        "{:?}",
        &redis[61..90]
    );
    // The platform saw no Lambda error: the code answered 503 itself.
    assert_eq!(
        first_alarm(&run.states["burn:tebra_debug-request_availability_platform_fast"]),
        None
    );
    // No page cause pages (ElastiCache not simulated, suppressed anyway).
    assert!(run.cause_pages.values().all(|p| p.iter().all(|x| !x)));

    let expects = vec![
        Expect {
            minute: 59,
            alert: "slo_page",
            firing: vec![],
        },
        Expect {
            minute: 62,
            alert: "slo_page",
            firing: vec![None],
        },
        Expect {
            minute: 89,
            alert: "slo_page",
            firing: vec![None],
        },
        Expect {
            minute: 130,
            alert: "slo_page",
            firing: vec![],
        },
        Expect {
            minute: 62,
            alert: "slo_request_availability_fast",
            firing: FUNCTIONS.iter().map(|f| Some(*f)).collect(),
        },
        Expect {
            minute: 89,
            alert: "slo_redis_availability_fast",
            firing: FUNCTIONS.iter().map(|f| Some(*f)).collect(),
        },
        Expect {
            minute: 100,
            alert: "slo_request_availability_fast",
            firing: vec![],
        },
    ];
    promtool_test(&catalogue, &s, &expects);
}

/// What a replay of the real code produced: the scenario of its lines and,
/// per minute, the users' statuses and the probe's.
struct Replay {
    scenario: Scenario,
    statuses: Vec<(Vec<u16>, u16)>,
}

/// The real code: a function's router against a `redis-server` of the test
/// kit, `users` user requests and one probe each simulated minute, the line
/// written at the end of each minute, Redis stopped from minute 20 to 40.
/// The lines are captured as the function writes them in production
/// (`environment` included).
async fn replay_of_the_real_code(users: usize) -> Replay {
    let mut server = RedisServer::start();
    let mut ctx = AppContext::with_redis(server.config()).unwrap();
    let hour = Duration::from_secs(3_600);
    ctx.metrics = MetricsReporter::with_policy(ctx.redis.clone(), IntervalPolicy::new(hour, hour));
    let redis = ctx.redis.clone();
    let routes = Router::new().route(
        "/value",
        get(move || {
            let redis = redis.clone();
            async move {
                let value: Option<String> = redis
                    .run(|mut c| async move {
                        redis::cmd("GET").arg("replay:k").query_async(&mut c).await
                    })
                    .await
                    .map_err(ApiError::from)?;
                Ok::<_, ApiError>(value.unwrap_or_default())
            }
        }),
    );
    let app = shared::http::finish(routes, &ctx);
    let logs = CapturedLogs::default();
    let _guard = tracing::subscriber::set_default(telemetry::subscriber_in(
        "tebra_debug",
        "production",
        LogFormat::Json,
        "info",
        logs.clone(),
    ));
    let get = |path: &'static str| {
        let app = app.clone();
        async move {
            app.oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let minutes = 90;
    let mut s = Scenario::new(minutes, &["tebra_debug"]);
    let mut statuses = Vec::new();
    for m in 0..minutes {
        if m == 20 {
            server.stop();
        }
        if m == 40 {
            server.restart();
        }
        let mut user = Vec::new();
        for _ in 0..users {
            user.push(get("/value").await);
        }
        let probe = get(names::HEALTH_PATH).await;
        statuses.push((user, probe));
        let before = logs.text().lines().count();
        ctx.metrics.flush();
        for line in logs.text().lines().skip(before) {
            let line: Value = serde_json::from_str(line).unwrap();
            if line[names::EVENT] != names::METRICS_EVENT {
                continue;
            }
            s.push("tebra_debug", m, line);
        }
        if (20..40).contains(&m) {
            // Give the breaker's cooldown (1 s) a chance to let a trial
            // through now and then, as real minutes would.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Replay {
        scenario: s,
        statuses,
    }
}

#[tokio::test]
async fn replay_of_the_real_code_pages_on_the_redis_and_request_slis_while_the_breaker_is_open() {
    let Replay {
        scenario: s,
        statuses,
    } = replay_of_the_real_code(10).await;
    assert!(
        statuses[..20]
            .iter()
            .all(|(u, p)| u.iter().all(|s| *s == 200) && *p == 200)
    );
    assert!(
        statuses[21..40]
            .iter()
            .all(|(u, p)| u.iter().all(|s| *s == 503) && *p == 503)
    );
    assert!(
        statuses[50..]
            .iter()
            .all(|(u, p)| u.iter().all(|s| *s == 200) && *p == 200)
    );
    let rejections: f64 = (21..40)
        .filter_map(|m| {
            s.sum(Some("tebra_debug"), names::CIRCUIT_REJECTIONS, m, m)
                .0
        })
        .sum();
    assert!(
        rejections > 0.0,
        "the breaker opened and refused operations"
    );

    let catalogue = catalogue();
    let run = evaluate_aws(&catalogue, &s);
    let fast = &run.states["burn:tebra_debug-redis_availability_fast"];
    let fired = first_alarm(fast).expect("the Redis SLI's fast burn fires");
    assert!(
        fired <= 21,
        "fires within a minute or two of the outage: {fired}"
    );
    assert!(
        fast[fired..40].iter().all(|s| *s == State::Alarm),
        "never returns to OK while Redis is down and the breaker open: {:?}",
        &fast[fired..40]
    );
    let page = &run.states["page"];
    assert_eq!(first_alarm(page), Some(fired));
    let last = last_alarm(page).unwrap();
    assert!(
        (40..=40 + 36).contains(&last),
        "the page clears after recovery: {last}"
    );

    // The users' 503s burn the request-availability SLO as well: the
    // code's own, probe-free counts.
    let request = &run.states["burn:tebra_debug-request_availability_fast"];
    let fired_request = first_alarm(request).expect("the request SLO's fast burn fires");
    assert!(fired_request <= 22, "{fired_request}");
    assert!(
        request[fired_request..40]
            .iter()
            .all(|s| *s == State::Alarm),
        "{:?}",
        &request[fired_request..40]
    );

    let expects = vec![
        Expect {
            minute: 19,
            alert: "slo_page",
            firing: vec![],
        },
        Expect {
            minute: 22,
            alert: "slo_page",
            firing: vec![None],
        },
        Expect {
            minute: 39,
            alert: "slo_page",
            firing: vec![None],
        },
        Expect {
            minute: 22,
            alert: "slo_redis_availability_fast",
            firing: vec![Some("tebra_debug")],
        },
        Expect {
            minute: 39,
            alert: "slo_redis_availability_fast",
            firing: vec![Some("tebra_debug")],
        },
        Expect {
            minute: 55,
            alert: "slo_redis_availability_fast",
            firing: vec![],
        },
        Expect {
            minute: 25,
            alert: "slo_request_availability_fast",
            firing: vec![Some("tebra_debug")],
        },
        Expect {
            minute: 39,
            alert: "slo_request_availability_fast",
            firing: vec![Some("tebra_debug")],
        },
    ];
    promtool_test(&catalogue, &s, &expects);
}

/// The same outage with no user at all: only the probe's 503s. The Redis
/// SLI pages (its PINGs fail), the request SLOs never burn (they read the
/// probe-free counts the code writes).
#[tokio::test]
async fn replay_of_the_real_code_with_probes_only_burns_no_request_slo() {
    let Replay {
        scenario: s,
        statuses,
    } = replay_of_the_real_code(0).await;
    assert!(statuses[21..40].iter().all(|(_, p)| *p == 503));
    let catalogue = catalogue();
    let run = evaluate_aws(&catalogue, &s);
    for tier in ["fast", "slow", "ticket"] {
        for slo in ["request_availability", "request_latency"] {
            let key = format!("burn:tebra_debug-{slo}_{tier}");
            assert_eq!(
                first_alarm(&run.states[&key]),
                None,
                "{key} fired on probe-only 503s"
            );
        }
    }
    assert!(
        first_alarm(&run.states["burn:tebra_debug-redis_availability_fast"]).is_some(),
        "the Redis SLI still sees the outage"
    );
    let mut expects = Vec::new();
    for minute in [22, 30, 39, 45] {
        for alert in [
            "slo_request_availability_fast",
            "slo_request_availability_slow",
            "slo_request_latency_fast",
        ] {
            expects.push(Expect {
                minute,
                alert,
                firing: vec![],
            });
        }
    }
    expects.push(Expect {
        minute: 30,
        alert: "slo_redis_availability_fast",
        firing: vec![Some("tebra_debug")],
    });
    promtool_test(&catalogue, &s, &expects);
}

#[test]
fn lambda_throttles_that_never_reach_the_code_page_through_the_platform_slo() {
    let catalogue = catalogue();
    // Healthy lines (the code sees only the invocations that ran), but
    // Lambda throttles half of tebra_debug's requests from minute 60 to 75.
    let mut s = outage(60, false);
    for m in 0..s.minutes {
        let healthy = synthetic_line(
            "tebra_debug",
            Traffic {
                user_ok: 60,
                probe_ok: 3,
                redis_ops: 123,
                ..Traffic::default()
            },
        );
        s.lines.get_mut("tebra_debug").unwrap()[m].lines = vec![healthy];
        s.probe_failing.get_mut("tebra_debug").unwrap()[m] = false;
        let p = &mut s.platform.get_mut("tebra_debug").unwrap()[m];
        p.invocations = 63;
        p.throttles = if (60..75).contains(&m) { 63 } else { 0 };
    }
    let run = evaluate_aws(&catalogue, &s);
    let own = &run.states["burn:tebra_debug-request_availability_fast"];
    assert_eq!(first_alarm(own), None, "the code saw no failure");
    let platform = &run.states["burn:tebra_debug-request_availability_platform_fast"];
    let fired = first_alarm(platform).expect("the platform SLO burns on throttles");
    assert!(fired <= 61, "{fired}");
    assert_eq!(first_alarm(&run.states["page"]), Some(fired));
}

/// 90 minutes of patient_sync lines carrying the queue gauges (tebra_debug's
/// lines carry none): the backlog at 5,000 from minute 20 to 60, three dead
/// letters from 30 until they are replayed at 70, an item 30 minutes old
/// from 40 to 60.
fn queue_trouble() -> Scenario {
    let minutes = 90;
    let mut s = Scenario::new(minutes, &["tebra_debug", "patient_sync"]);
    let traffic = Traffic {
        user_ok: 10,
        probe_ok: 3,
        redis_ops: 23,
        ..Traffic::default()
    };
    for m in 0..minutes {
        s.push("tebra_debug", m, synthetic_line("tebra_debug", traffic));
        let mut line = synthetic_line("patient_sync", traffic);
        let backlog = if (20..60).contains(&m) { 5_000 } else { 10 };
        let dead = if (30..70).contains(&m) { 3 } else { 0 };
        let age = if (40..60).contains(&m) {
            1_800_000
        } else {
            60_000
        };
        line[names::QUEUE_BACKLOG] = backlog.into();
        line[names::QUEUE_DEAD_LETTERS] = dead.into();
        line[names::QUEUE_OLDEST_AGE_MS] = age.into();
        s.push("patient_sync", m, line);
    }
    s
}

#[test]
fn the_queue_alerts_fire_on_a_backlog_an_old_item_and_dead_letters_and_clear() {
    let catalogue = catalogue();
    let s = queue_trouble();
    let run = evaluate_aws(&catalogue, &s);
    let alarm = |key: &str| &run.states[&format!("notify:{key}")];
    // Backlog: three 5-minute periods above 1,000.
    let backlog = alarm("queue-backlog");
    assert_eq!(first_alarm(backlog), Some(30), "{backlog:?}");
    assert!(last_alarm(backlog).is_some_and(|m| m < 65), "{backlog:?}");
    // Dead letters: at once, until replayed.
    let dead = alarm("queue-dead-letters");
    assert_eq!(first_alarm(dead), Some(30), "{dead:?}");
    assert_eq!(last_alarm(dead), Some(73), "{dead:?}");
    // Oldest item: one period above 15 minutes.
    let old = alarm("queue-oldest-age");
    assert_eq!(first_alarm(old), Some(40), "{old:?}");
    assert_eq!(last_alarm(old), Some(63), "{old:?}");
    // Without queue gauges (tebra_debug's lines) nothing fires: a healthy
    // copy of the scenario stays quiet.
    let mut quiet = queue_trouble();
    for minute in quiet.lines.get_mut("patient_sync").unwrap() {
        for line in &mut minute.lines {
            line[names::QUEUE_BACKLOG] = 10.into();
            line[names::QUEUE_DEAD_LETTERS] = 0.into();
            line[names::QUEUE_OLDEST_AGE_MS] = 60_000.into();
        }
    }
    let calm = evaluate_aws(&catalogue, &quiet);
    for key in ["queue-backlog", "queue-dead-letters", "queue-oldest-age"] {
        assert_eq!(
            first_alarm(&calm.states[&format!("notify:{key}")]),
            None,
            "{key}"
        );
    }

    let at = |minute: usize, alert: &'static str, firing: bool| Expect {
        minute,
        alert,
        firing: if firing {
            vec![Some("patient_sync")]
        } else {
            vec![]
        },
    };
    promtool_test(
        &catalogue,
        &s,
        &[
            at(19, "queue_backlog", false),
            at(30, "queue_backlog", false),
            at(40, "queue_backlog", true),
            at(85, "queue_backlog", false),
            at(29, "queue_dead_letters", false),
            at(35, "queue_dead_letters", true),
            at(68, "queue_dead_letters", true),
            at(85, "queue_dead_letters", false),
            at(39, "queue_oldest_age", false),
            at(55, "queue_oldest_age", true),
            at(85, "queue_oldest_age", false),
        ],
    );
    promtool_test(
        &catalogue,
        &quiet,
        &[
            at(45, "queue_backlog", false),
            at(45, "queue_dead_letters", false),
            at(55, "queue_oldest_age", false),
        ],
    );
}
