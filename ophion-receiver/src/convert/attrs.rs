//! Attribute maps, value rendering and promoted columns.

use std::fmt::Write as _;

use arrow_array::{
    ArrayRef,
    builder::{Int64Builder, MapBuilder, StringBuilder, UInt32Builder},
};
use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use ophion_core::semconv::{self, Level, PromotedType, UNKNOWN_SERVICE};
use std::sync::Arc;

use super::Ctx;

/// `Map<Utf8, Utf8>` builder with the field names of [`ophion_core::schema::attributes_type`].
pub(crate) type AttrMapBuilder = MapBuilder<StringBuilder, StringBuilder>;

/// A map builder for `rows` rows of about `per_row` entries each, sized up
/// front so the hot path does not regrow and copy its buffers.
pub(crate) fn attr_map_builder(rows: usize, per_row: usize) -> AttrMapBuilder {
    let entries = rows * per_row;
    MapBuilder::with_capacity(
        None,
        StringBuilder::with_capacity(entries, entries * 16),
        StringBuilder::with_capacity(entries, entries * 24),
        rows,
    )
}

/// A destination for rendered attributes.
pub(crate) trait AttrOut {
    fn push(&mut self, key: &str, value: Option<&str>);
}

impl AttrOut for AttrMapBuilder {
    fn push(&mut self, key: &str, value: Option<&str>) {
        self.keys().append_value(key);
        self.values().append_option(value);
    }
}

impl AttrOut for Vec<(String, Option<String>)> {
    fn push(&mut self, key: &str, value: Option<&str>) {
        self.push((key.to_owned(), value.map(str::to_owned)));
    }
}

/// The value was nested deeper than `max_value_depth`.
pub(crate) struct TooDeep;

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` cut to `max` bytes, or `None` when empty (OTLP's "not set").
pub(crate) fn non_empty(s: &str, max: usize) -> Option<&str> {
    (!s.is_empty()).then(|| truncate_utf8(s, max))
}

/// Renders a value as text: strings as they are, scalars in their usual
/// text form, bytes as base64, arrays and key-value lists as JSON. Returns
/// `None` for an empty value.
pub(crate) fn render<'v>(
    ctx: &'v mut Ctx<'_>,
    v: Option<&'v AnyValue>,
) -> Result<Option<&'v str>, TooDeep> {
    let max = ctx.limits.max_attribute_value_bytes;
    let value = match v.and_then(|v| v.value.as_ref()) {
        None => return Ok(None),
        Some(Value::StringValue(s)) => {
            let t = truncate_utf8(s, max);
            if t.len() < s.len() {
                ctx.stats.truncated_values += 1;
            }
            return Ok(Some(t));
        }
        Some(v) => v,
    };
    ctx.scratch.clear();
    match value {
        Value::BoolValue(b) => ctx.scratch.push_str(if *b { "true" } else { "false" }),
        Value::IntValue(i) => {
            let _ = write!(ctx.scratch, "{i}");
        }
        Value::DoubleValue(d) => {
            let _ = write!(ctx.scratch, "{d}");
        }
        Value::BytesValue(b) => {
            base64::engine::general_purpose::STANDARD.encode_string(b, &mut ctx.scratch)
        }
        Value::StringValue(_) | Value::ArrayValue(_) | Value::KvlistValue(_) => {
            json(value, ctx.limits.max_value_depth, &mut ctx.scratch)?;
        }
        // String indexes are only used by the profiles signal.
        Value::StringValueStrindex(i) => {
            let _ = write!(ctx.scratch, "{i}");
        }
    }
    let t = truncate_utf8(&ctx.scratch, max);
    if t.len() < ctx.scratch.len() {
        ctx.stats.truncated_values += 1;
    }
    Ok(Some(t))
}

/// Writes a value as JSON. `depth` is how many more levels of nesting are
/// allowed; the recursion is bounded by it.
fn json(v: &Value, depth: usize, out: &mut String) -> Result<(), TooDeep> {
    match v {
        Value::StringValue(s) => json_string(s, out),
        Value::BoolValue(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::IntValue(i) => {
            let _ = write!(out, "{i}");
        }
        Value::DoubleValue(d) if d.is_finite() => {
            let _ = write!(out, "{d}");
        }
        Value::DoubleValue(d) => json_string(&d.to_string(), out),
        Value::BytesValue(b) => {
            json_string(&base64::engine::general_purpose::STANDARD.encode(b), out)
        }
        Value::StringValueStrindex(i) => {
            let _ = write!(out, "{i}");
        }
        Value::ArrayValue(a) => {
            let depth = depth.checked_sub(1).ok_or(TooDeep)?;
            out.push('[');
            for (i, item) in a.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_any(item, depth, out)?;
            }
            out.push(']');
        }
        Value::KvlistValue(kv) => {
            let depth = depth.checked_sub(1).ok_or(TooDeep)?;
            out.push('{');
            for (i, item) in kv.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(&item.key, out);
                out.push(':');
                match &item.value {
                    Some(v) => json_any(v, depth, out)?,
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
    }
    Ok(())
}

fn json_any(v: &AnyValue, depth: usize, out: &mut String) -> Result<(), TooDeep> {
    match &v.value {
        Some(v) => json(v, depth, out),
        None => {
            out.push_str("null");
            Ok(())
        }
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn matches_type(ty: PromotedType, v: Option<&AnyValue>) -> bool {
    matches!(
        (ty, v.and_then(|v| v.value.as_ref())),
        (PromotedType::Str, Some(Value::StringValue(_)))
            | (PromotedType::Int, Some(Value::IntValue(_)))
    )
}

/// Writes `attrs` to `out`, moving promoted attributes of `level` into
/// `slots` (one per promoted column of that level). Returns how many
/// attributes were dropped by the count and depth limits.
pub(crate) fn write_attrs<'a>(
    ctx: &mut Ctx<'_>,
    out: &mut impl AttrOut,
    attrs: &'a [KeyValue],
    mut promote: Option<(Level, &mut [Option<&'a AnyValue>])>,
) -> u32 {
    let mut kept = 0usize;
    let mut dropped = 0u32;
    for kv in attrs {
        if let Some((level, slots)) = promote.as_mut()
            && let Some((i, ty)) = semconv::promoted_index(*level, &kv.key)
            && slots[i].is_none()
            && matches_type(ty, kv.value.as_ref())
        {
            slots[i] = kv.value.as_ref();
            continue;
        }
        if kept >= ctx.limits.max_attributes_per_item {
            dropped += 1;
            continue;
        }
        let key = truncate_utf8(&kv.key, ctx.limits.max_attribute_value_bytes);
        match render(ctx, kv.value.as_ref()) {
            Ok(v) => {
                out.push(key, v);
                kept += 1;
            }
            Err(TooDeep) => dropped += 1,
        }
    }
    ctx.stats.dropped_attributes += u64::from(dropped);
    dropped
}

/// A typed builder for one promoted column.
pub(crate) enum PromotedBuilder {
    Str(StringBuilder),
    Int(Int64Builder),
}

impl PromotedBuilder {
    pub(crate) fn for_level(level: Level, capacity: usize) -> Vec<Self> {
        semconv::promoted(level)
            .map(|p| match p.ty {
                PromotedType::Str => {
                    Self::Str(StringBuilder::with_capacity(capacity, capacity * 8))
                }
                PromotedType::Int => Self::Int(Int64Builder::with_capacity(capacity)),
            })
            .collect()
    }

    pub(crate) fn append(&mut self, ctx: &mut Ctx<'_>, v: Option<&AnyValue>) {
        let max = ctx.limits.max_attribute_value_bytes;
        match (self, v.and_then(|v| v.value.as_ref())) {
            (Self::Str(b), Some(Value::StringValue(s))) => {
                let t = truncate_utf8(s, max);
                if t.len() < s.len() {
                    ctx.stats.truncated_values += 1;
                }
                b.append_value(t)
            }
            (Self::Int(b), Some(Value::IntValue(i))) => b.append_value(*i),
            (Self::Str(b), _) => b.append_null(),
            (Self::Int(b), _) => b.append_null(),
        }
    }

    pub(crate) fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Str(b) => Arc::new(b.finish()),
            Self::Int(b) => Arc::new(b.finish()),
        }
    }
}

/// A resource and scope rendered once and appended to every row under them.
#[derive(Default)]
pub(crate) struct Prepared {
    promoted: Vec<Option<String>>,
    resource_attrs: Vec<(String, Option<String>)>,
    resource_dropped: u32,
    resource_schema_url: Option<String>,
    scope_name: Option<String>,
    scope_version: Option<String>,
    scope_attrs: Vec<(String, Option<String>)>,
    scope_dropped: u32,
    scope_schema_url: Option<String>,
}

impl Prepared {
    pub(crate) fn resource(
        ctx: &mut Ctx<'_>,
        resource: Option<&Resource>,
        schema_url: &str,
    ) -> Self {
        let n = semconv::promoted(Level::Resource).count();
        let mut slots: Vec<Option<&AnyValue>> = vec![None; n];
        let mut resource_attrs = Vec::new();
        let mut resource_dropped = 0;
        if let Some(r) = resource {
            let cut = write_attrs(
                ctx,
                &mut resource_attrs,
                &r.attributes,
                Some((Level::Resource, &mut slots)),
            );
            resource_dropped = r.dropped_attributes_count.saturating_add(cut);
        }
        let max = ctx.limits.max_attribute_value_bytes;
        let promoted = semconv::promoted(Level::Resource)
            .zip(&slots)
            .map(|(p, v)| match v.and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => Some(truncate_utf8(s, max).to_owned()),
                _ if p.column == ophion_core::schema::col::SERVICE_NAME => {
                    Some(UNKNOWN_SERVICE.to_owned())
                }
                _ => None,
            })
            .collect();
        Self {
            promoted,
            resource_attrs,
            resource_dropped,
            resource_schema_url: non_empty(schema_url, max).map(str::to_owned),
            ..Default::default()
        }
    }

    pub(crate) fn set_scope(
        &mut self,
        ctx: &mut Ctx<'_>,
        scope: Option<&InstrumentationScope>,
        schema_url: &str,
    ) {
        let max = ctx.limits.max_attribute_value_bytes;
        let owned = |s: &str| non_empty(s, max).map(str::to_owned);
        self.scope_name = scope.and_then(|s| owned(&s.name));
        self.scope_version = scope.and_then(|s| owned(&s.version));
        self.scope_schema_url = owned(schema_url);
        self.scope_attrs.clear();
        self.scope_dropped = 0;
        if let Some(s) = scope {
            let cut = write_attrs(ctx, &mut self.scope_attrs, &s.attributes, None);
            self.scope_dropped = s.dropped_attributes_count.saturating_add(cut);
        }
    }
}

/// Builders of the resource and scope columns, in schema order.
pub(crate) struct ResourceScopeCols {
    promoted: Vec<StringBuilder>,
    resource_attrs: AttrMapBuilder,
    resource_dropped: UInt32Builder,
    resource_schema_url: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attrs: AttrMapBuilder,
    scope_dropped: UInt32Builder,
    scope_schema_url: StringBuilder,
}

fn append_pairs(b: &mut AttrMapBuilder, pairs: &[(String, Option<String>)]) {
    for (k, v) in pairs {
        b.push(k, v.as_deref());
    }
    // Appending an entry to a map builder cannot fail while keys and values
    // are appended in pairs, as they are here.
    let _ = b.append(true);
}

impl ResourceScopeCols {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            promoted: semconv::promoted(Level::Resource)
                .map(|_| StringBuilder::with_capacity(capacity, capacity * 8))
                .collect(),
            resource_attrs: attr_map_builder(capacity, 4),
            resource_dropped: UInt32Builder::with_capacity(capacity),
            resource_schema_url: StringBuilder::with_capacity(capacity, capacity * 40),
            scope_name: StringBuilder::with_capacity(capacity, capacity * 8),
            scope_version: StringBuilder::with_capacity(capacity, capacity * 4),
            scope_attrs: attr_map_builder(capacity, 0),
            scope_dropped: UInt32Builder::with_capacity(capacity),
            scope_schema_url: StringBuilder::with_capacity(capacity, 0),
        }
    }

    pub(crate) fn append(&mut self, p: &Prepared) {
        for (b, v) in self.promoted.iter_mut().zip(&p.promoted) {
            b.append_option(v.as_deref());
        }
        append_pairs(&mut self.resource_attrs, &p.resource_attrs);
        self.resource_dropped.append_value(p.resource_dropped);
        self.resource_schema_url
            .append_option(p.resource_schema_url.as_deref());
        self.scope_name.append_option(p.scope_name.as_deref());
        self.scope_version.append_option(p.scope_version.as_deref());
        append_pairs(&mut self.scope_attrs, &p.scope_attrs);
        self.scope_dropped.append_value(p.scope_dropped);
        self.scope_schema_url
            .append_option(p.scope_schema_url.as_deref());
    }

    pub(crate) fn finish(mut self, out: &mut Vec<ArrayRef>) {
        for b in &mut self.promoted {
            out.push(Arc::new(b.finish()));
        }
        out.push(Arc::new(self.resource_attrs.finish()));
        out.push(Arc::new(self.resource_dropped.finish()));
        out.push(Arc::new(self.resource_schema_url.finish()));
        out.push(Arc::new(self.scope_name.finish()));
        out.push(Arc::new(self.scope_version.finish()));
        out.push(Arc::new(self.scope_attrs.finish()));
        out.push(Arc::new(self.scope_dropped.finish()));
        out.push(Arc::new(self.scope_schema_url.finish()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "aé€😀";
        for max in 0..=s.len() {
            let t = truncate_utf8(s, max);
            assert!(t.len() <= max && s.starts_with(t));
        }
        assert_eq!(truncate_utf8("aé", 2), "a");
    }

    #[test]
    fn json_rendering_escapes_and_nests() {
        let mut out = String::new();
        let v = Value::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList {
            values: vec![KeyValue {
                key: "q\"k".into(),
                value: Some(AnyValue {
                    value: Some(Value::ArrayValue(
                        opentelemetry_proto::tonic::common::v1::ArrayValue {
                            values: vec![
                                AnyValue {
                                    value: Some(Value::IntValue(1)),
                                },
                                AnyValue {
                                    value: Some(Value::StringValue("a\nb".into())),
                                },
                                AnyValue { value: None },
                            ],
                        },
                    )),
                }),
                ..Default::default()
            }],
        });
        assert!(json(&v, 2, &mut out).is_ok());
        assert_eq!(out, r#"{"q\"k":[1,"a\nb",null]}"#);
        assert!(json(&v, 1, &mut String::new()).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::truncate_utf8;

    proptest! {
        /// The cut is the longest prefix on a character boundary within `max`.
        #[test]
        fn truncation_is_the_longest_valid_prefix(s in "\\PC{0,40}", max in 0usize..200) {
            let t = truncate_utf8(&s, max);
            prop_assert!(s.starts_with(t));
            prop_assert!(t.len() <= max);
            if t.len() < s.len() {
                let next = s[t.len()..].chars().next().map_or(0, char::len_utf8);
                prop_assert!(t.len() + next > max, "a longer prefix would have fit");
            }
        }
    }
}
