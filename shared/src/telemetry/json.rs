//! The JSON line format: one object per line with the fields Cloud Logging
//! and CloudWatch read (see [`crate::contract`]), the event's fields and the
//! fields of the spans it is in.
//!
//! Every line carries, at the top level: `severity` (Cloud Logging's
//! names: `WARNING`, ...), `level` (Lambda's: `WARN`, ...), `time` and
//! `timestamp` (the same RFC 3339 instant; Cloud Logging reads the first,
//! Lambda's log-level filtering the second), `message`, `service`,
//! `environment`, `target`, the span and event fields flattened, the Cloud
//! Trace field under Cloud Logging's key, and for the metrics line the
//! merged fields of its document (its nested `_aws` EMF member included; a
//! merged `level` overrides the event's, which is how the metrics line is
//! raised to Lambda's application log level).
//!
//! # Why a format of our own
//!
//! Kept after checking the maintained JSON layers for `tracing` against what
//! both clouds read (their documentation and source, November 2026):
//!
//! - `tracing-stackdriver` (0.10): Cloud Logging's `severity` and `time`,
//!   but it camelCases every field key (`redis_operations` becomes
//!   `redisOperations`, which breaks the metric contract and the EMF names),
//!   nests span fields under `span`, and writes no `level` key and no
//!   process-wide fields (`service`, `environment`).
//! - `json-subscriber` (0.2/0.3): the closest; static fields, a renamable
//!   level, flattened event and span fields. But flattening may write a key
//!   twice (its documentation's caveat: an event's `level` next to the
//!   layer's, and Lambda would read either), it has no way to merge a
//!   nested JSON document from an event (the EMF `_aws` member) short of
//!   re-parsing it in a dynamic-field closure, and `severity` beside `level`
//!   needs a second mapping of the level in such a closure too.
//! - `tracing-bunyan-formatter` (0.3): Bunyan's format: a numeric `level`
//!   (30, 40), `msg`, `name`, `hostname`, `v`; neither cloud reads those
//!   as a severity.
//!
//! What remains here is about 150 lines: a visitor, a span-field store and
//! the line; the date is formatted without a date-time dependency.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::contract as names;

/// The event field whose value (a JSON object, as a string) the JSON line
/// format merges into the line: how the metrics line carries fields whose
/// names are constants and the nested `_aws` document.
pub(crate) const MERGE_FIELD: &str = "_json"; // the field name written literally in `MetricsReporter::write`

/// Fields of a span kept as JSON values, for the JSON line format.
#[derive(Debug, Default)]
struct SpanFieldMap(Map<String, Value>);

/// Records span fields into the span's extensions.
pub(crate) struct SpanFields;

impl<S> Layer<S> for SpanFields
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = SpanFieldMap::default();
            attrs.record(&mut JsonVisitor(&mut fields.0));
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFieldMap>()
        {
            values.record(&mut JsonVisitor(&mut fields.0));
        }
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == MERGE_FIELD
            && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(value)
        {
            self.0.extend(fields);
            return;
        }
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

/// The JSON line format (see the module documentation).
pub(crate) struct JsonLine {
    pub(crate) service: &'static str,
    /// `DEPLOY_ENVIRONMENT`, on every line.
    pub(crate) environment: String,
}

/// Cloud Logging's severity of a level.
fn severity(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

/// Lambda's name of a level (its log-level filtering reads it).
fn lambda_level(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let level = *event.metadata().level();
        line.insert(names::SEVERITY.into(), severity(level).into());
        line.insert(names::LEVEL.into(), lambda_level(level).into());
        let now = rfc3339(SystemTime::now());
        line.insert(names::TIME.into(), now.clone().into());
        line.insert(names::TIMESTAMP.into(), now.into());
        line.insert(names::SERVICE.into(), self.service.into());
        line.insert(names::ENVIRONMENT.into(), self.environment.as_str().into());
        line.insert("target".into(), event.metadata().target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFieldMap>() {
                    for (k, v) in &fields.0 {
                        line.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        if let Some(trace) = line.remove("trace") {
            line.insert(names::TRACE.into(), trace);
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writer.write_str(&text)?;
        writer.write_char('\n')
    }
}

/// `2026-11-23T18:51:00.123Z` without a date-time dependency.
fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_459_860_123);
        assert_eq!(rfc3339(t), "2026-11-23T18:51:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }
}
