//! The Terraform under `terraform/` against the metric contract.
//!
//! Parses every `.tf` file with an HCL parser and fails when:
//! - an alert (or a log-based metric it reads) reads a metric or log field
//!   that the code does not write: the written names are taken from a real
//!   metrics line, produced by real Redis round trips and captured from the
//!   JSON logger, not from a list kept here;
//! - an alert has no severity, no notification channels / actions, no
//!   auto-close, or no runbook link, or links to a runbook file that does not
//!   exist or lacks one of the required sections;
//! - a black-box probe does not probe `/redis-health` for the healthy body.
//!
//! The checker is shown to fail on fixtures (an alert naming a metric the
//! code does not emit, an alert without severity, ...), so a green run means
//! something.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hcl::{Block, Body, Expression};
use serde_json::Value;
use shared::config::LogFormat;
use shared::contract as names;
use shared::telemetry::{self, MetricsReporter};
use shared::testkit::{CapturedLogs, RedisServer};

// ---------------------------------------------------------------------------
// What the code writes.

/// The names the code writes, read off its output.
#[derive(Debug)]
struct Contract {
    /// Top-level fields of the metrics line and of the request lines.
    log_fields: BTreeSet<String>,
    /// Metrics declared in the line's EMF document.
    emf_metrics: BTreeSet<String>,
    /// Dimensions declared in the line's EMF document.
    emf_dimensions: BTreeSet<String>,
    /// The EMF namespace.
    namespace: String,
    /// The value of the `event` field that marks the metrics line.
    metrics_event: String,
}

/// Performs real round trips (one of them failing) and captures the metrics
/// line the code writes for them.
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
    reporter.record_response(503);
    assert!(reporter.flush());
    logs.text()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l[names::EVENT] == names::METRICS_EVENT)
        .expect("a metrics line")
}

fn contract_from(line: &Value) -> Contract {
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
    let emf_dimensions = directive["Dimensions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|set| set.as_array().unwrap().iter())
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    Contract {
        log_fields,
        emf_metrics,
        emf_dimensions,
        namespace: directive["Namespace"].as_str().unwrap().to_owned(),
        metrics_event: line[names::EVENT].as_str().unwrap().to_owned(),
    }
}

// ---------------------------------------------------------------------------
// The checker.

/// One parsed `.tf` file.
struct Source {
    /// Path relative to `terraform/` (fixtures: a made-up one).
    path: String,
    /// The directory: one Terraform module.
    module: String,
    body: Body,
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

/// The runbook sections every runbook has.
const RUNBOOK_SECTIONS: [&str; 5] = [
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
    /// Alerts that notify, by module.
    alerts: BTreeMap<String, usize>,
    /// Runbook files linked, by module.
    runbooks_used: BTreeMap<String, BTreeSet<String>>,
}

fn text(expr: &Expression) -> String {
    // The expression as written; `\"` inside strings become plain quotes
    // so that patterns such as jsonPayload.event="..." are easy to find.
    hcl::format::to_string(expr)
        .unwrap_or_default()
        .replace("\\\"", "\"")
}

fn attr<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes()
        .find(|a| a.key.as_str() == key)
        .map(|a| &a.expr)
}

fn blocks<'a>(body: &'a Body, identifier: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
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

/// Runbook files a block links to through `var.runbook_base_url`.
fn runbook_links(text: &str) -> BTreeSet<String> {
    text.match_indices("runbook_base_url}/")
        .map(|(i, m)| {
            text[i + m.len()..]
                .chars()
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
    fn check_log_metric(&mut self, at: &str, body: &Body, locals: &Locals) -> Vec<String> {
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
        let body_text = locals.expand(
            &hcl::format::to_string(body)
                .unwrap_or_default()
                .replace("\\\"", "\""),
        );
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
        body: &Body,
        locals: &Locals,
        log_metrics: &BTreeSet<String>,
    ) {
        *self.report.alerts.entry(module.to_owned()).or_default() += 1;
        let body_text = locals.expand(
            &hcl::format::to_string(body)
                .unwrap_or_default()
                .replace("\\\"", "\""),
        );
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
    }

    fn check_uptime(&mut self, at: &str, body: &Body) {
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

    fn check_route53(&mut self, at: &str, body: &Body) {
        let path = attr(body, "resource_path").map(text).unwrap_or_default();
        if !path.trim_end_matches('"').ends_with(names::HEALTH_PATH) {
            self.violation(at, format!("probes {path}, not {}", names::HEALTH_PATH));
        }
        if literal(attr(body, "search_string")) != Some(names::HEALTHY_BODY_MATCH) {
            self.violation(at, format!("does not match {}", names::HEALTHY_BODY_MATCH));
        }
    }

    fn check_aws_metric(&mut self, at: &str, body: &Body) {
        let Some(metric) = attr(body, "metric_name") else {
            return;
        };
        let namespace = attr(body, "namespace").map(text).unwrap_or_default();
        let ours = namespace == "var.metric_namespace"
            || literal(attr(body, "namespace")) == Some(self.contract.namespace.as_str());
        let platform = literal(attr(body, "namespace")).is_some_and(|n| n.starts_with("AWS/"));
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
            if let Some(Expression::Object(dimensions)) = attr(body, "dimensions") {
                for key in dimensions.keys() {
                    let key = key.to_string();
                    if !self.contract.emf_dimensions.contains(&key) {
                        self.violation(at, format!("dimension `{key}` is not one the code writes"));
                    }
                }
            }
        } else if !platform {
            self.violation(
                at,
                format!("reads metric `{metric}` from namespace {namespace}"),
            );
        }
    }

    fn check_aws_alarm(&mut self, at: &str, module: &str, body: &Body) {
        self.check_aws_metric(at, body);
        for query in blocks(body, "metric_query") {
            for metric in blocks(&query.body, "metric") {
                self.check_aws_metric(at, &metric.body);
            }
        }
        if attr(body, "actions_enabled").map(text).as_deref() == Some("false") {
            // A window of a composite alarm: the composite notifies.
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
        for key in ["severity", "runbook"] {
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
fn resources(body: &Body) -> impl Iterator<Item = (&str, &str, &Body)> {
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
        for section in RUNBOOK_SECTIONS {
            if !content.lines().any(|l| l.trim_end() == section) {
                checker.violation(
                    &format!("runbooks/{file}"),
                    format!("no `{section}` section"),
                );
            }
        }
    }
    checker.report
}

// ---------------------------------------------------------------------------
// The tree and the fixtures.

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform")
}

fn tf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            // .terraform: downloaded providers and modules; fixtures: the
            // checkov policies' counter-examples, wrong on purpose.
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
    service = "EXTRACT(jsonPayload.service)"
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
  dimensions          = { service = "tebra_debug" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 20
  alarm_actions       = [local.page]
  ok_actions          = [local.page]
  tags = {
    severity = "critical"
    runbook  = "${var.runbook_base_url}/fixture.md"
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

// ---------------------------------------------------------------------------
// The tests.

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
    // Both clouds are covered, with every alert family (one runbook each).
    let gcp = "modules/gcp-alerting";
    let aws = "modules/aws-alerting";
    assert!(
        report.alerts.get(gcp).copied().unwrap_or(0) >= 9,
        "{report:?}"
    );
    assert!(
        report.alerts.get(aws).copied().unwrap_or(0) >= 9,
        "{report:?}"
    );
    let all: BTreeSet<String> = runbooks.keys().cloned().collect();
    for module in [gcp, aws] {
        assert_eq!(
            report.runbooks_used.get(module),
            Some(&all),
            "{module} must link every runbook (one per alert family)"
        );
    }
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

    // A dimension the code does not write, a wrong namespace default, a
    // wrong event name.
    let aws = AWS_FIXTURE
        .replace("{ service = ", "{ FunctionName = ")
        .replace(r#"default = "ServerlessRedis""#, r#"default = "Other""#);
    let report = check_fixture(GCP_FIXTURE, &aws, &contract);
    assert!(
        mentions(&report, "dimension `FunctionName`"),
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
async fn checker_fails_on_alerts_without_severity_channels_auto_close_or_runbook() {
    let contract = contract_from(&written_metrics_line().await);

    let gcp = GCP_FIXTURE
        .replace("  severity     = \"CRITICAL\"\n", "")
        .replace("  notification_channels = local.page\n", "")
        .replace("    auto_close = \"1800s\"\n", "")
        .replace("${var.runbook_base_url}/fixture.md", "see the wiki");
    let report = check_fixture(&gcp, AWS_FIXTURE, &contract);
    for needle in [
        "no severity",
        "no notification_channels",
        "no alert_strategy.auto_close",
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
        .replace("    severity = \"critical\"\n", "");
    let report = check_fixture(GCP_FIXTURE, &aws, &contract);
    for needle in ["no alarm_actions", "empty ok_actions", "no `severity` tag"] {
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
        "## Impact\n\n## Mitigation\n".to_owned(),
    )]);
    let report = check(&sources, &contract, &incomplete);
    assert!(
        mentions(&report, "no `## Escalation` section"),
        "{:?}",
        report.violations
    );
    assert!(
        mentions(&report, "no `## Likely causes` section"),
        "{:?}",
        report.violations
    );
}

#[test]
fn probes_must_target_redis_health_and_match_the_healthy_body() {
    let contract = Contract {
        log_fields: BTreeSet::new(),
        emf_metrics: BTreeSet::new(),
        emf_dimensions: BTreeSet::new(),
        namespace: names::NAMESPACE.into(),
        metrics_event: names::METRICS_EVENT.into(),
    };
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
        &contract,
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
