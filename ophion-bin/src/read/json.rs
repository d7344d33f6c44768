//! Arrow values as JSON: numbers as numbers, strings as strings, ids and
//! other binary values as lowercase hex, lists as arrays, structs and maps
//! as objects, timestamps as RFC 3339 text; anything else as Arrow displays
//! it.

use arrow_array::{Array, ArrayRef, RecordBatch, cast::AsArray, types::*};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::DataType;
use serde_json::{Map, Value};

/// The value at `row` of `array`.
pub fn value(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    macro_rules! num {
        ($t:ty) => {
            Value::from(array.as_primitive::<$t>().value(row))
        };
    }
    match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => num!(Int8Type),
        DataType::Int16 => num!(Int16Type),
        DataType::Int32 => num!(Int32Type),
        DataType::Int64 => num!(Int64Type),
        DataType::UInt8 => num!(UInt8Type),
        DataType::UInt16 => num!(UInt16Type),
        DataType::UInt32 => num!(UInt32Type),
        DataType::UInt64 => num!(UInt64Type),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Value::from(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Value::from(array.as_string_view().value(row)),
        DataType::Binary => Value::from(hex::encode(array.as_binary::<i32>().value(row))),
        DataType::LargeBinary => Value::from(hex::encode(array.as_binary::<i64>().value(row))),
        DataType::BinaryView => Value::from(hex::encode(array.as_binary_view().value(row))),
        DataType::FixedSizeBinary(_) => {
            Value::from(hex::encode(array.as_fixed_size_binary().value(row)))
        }
        DataType::List(_) => list(&array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => list(&array.as_list::<i64>().value(row)),
        DataType::FixedSizeList(..) => list(&array.as_fixed_size_list().value(row)),
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut m = Map::new();
            for (i, f) in fields.iter().enumerate() {
                m.insert(f.name().clone(), value(s.column(i).as_ref(), row));
            }
            Value::Object(m)
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut m = Map::new();
            for i in 0..entries.len() {
                let k = match value(keys.as_ref(), i) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                m.insert(k, value(values.as_ref(), i));
            }
            Value::Object(m)
        }
        DataType::Dictionary(..) => {
            let d = array.as_any_dictionary();
            let key = d.normalized_keys()[row];
            value(d.values().as_ref(), key)
        }
        _ => display(array, row),
    }
}

fn float(v: f64) -> Value {
    // JSON has no NaN or infinities.
    serde_json::Number::from_f64(v).map_or_else(|| Value::from(v.to_string()), Value::Number)
}

fn list(values: &ArrayRef) -> Value {
    Value::Array(
        (0..values.len())
            .map(|i| value(values.as_ref(), i))
            .collect(),
    )
}

fn display(array: &dyn Array, row: usize) -> Value {
    let options = FormatOptions::default();
    match ArrayFormatter::try_new(array, &options) {
        Ok(f) => Value::from(f.value(row).to_string()),
        Err(_) => Value::Null,
    }
}

/// Every row of `batches` as a JSON array of values.
pub fn rows(batches: &[RecordBatch]) -> Vec<Value> {
    let mut out = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for b in batches {
        for r in 0..b.num_rows() {
            out.push(Value::Array(
                b.columns().iter().map(|c| value(c.as_ref(), r)).collect(),
            ));
        }
    }
    out
}

/// Every row of `batches` as a JSON object keyed by column name.
pub fn objects(batches: &[RecordBatch]) -> Vec<Map<String, Value>> {
    let mut out = Vec::new();
    for b in batches {
        let schema = b.schema();
        for r in 0..b.num_rows() {
            let mut m = Map::new();
            for (f, c) in schema.fields().iter().zip(b.columns()) {
                m.insert(f.name().clone(), value(c.as_ref(), r));
            }
            out.push(m);
        }
    }
    out
}

/// A column type as the API names it (Arrow's names, e.g. `Int64`, `Utf8`,
/// `Timestamp(ns, "UTC")`).
pub fn type_name(t: &DataType) -> String {
    match t {
        DataType::Utf8View | DataType::LargeUtf8 => "Utf8".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        FixedSizeBinaryArray, Float64Array, Int64Array, StringViewArray, TimestampNanosecondArray,
        builder::{MapBuilder, StringBuilder},
    };

    use super::*;

    #[test]
    fn values_become_the_json_a_client_expects() {
        let ids = FixedSizeBinaryArray::try_from_iter([[0xabu8, 0x01]].into_iter()).expect("ids");
        assert_eq!(value(&ids, 0), Value::from("ab01"));
        let f = Float64Array::from(vec![Some(1.5), Some(f64::NAN), None]);
        assert_eq!(value(&f, 0), Value::from(1.5));
        assert_eq!(value(&f, 1), Value::from("NaN"));
        assert_eq!(value(&f, 2), Value::Null);
        assert_eq!(value(&Int64Array::from(vec![-3]), 0), Value::from(-3));
        assert_eq!(
            value(&StringViewArray::from(vec!["checkout"]), 0),
            Value::from("checkout")
        );
        let t =
            TimestampNanosecondArray::from(vec![1_700_000_000_123_456_789]).with_timezone("UTC");
        assert_eq!(value(&t, 0), Value::from("2023-11-14T22:13:20.123456789Z"));
        let mut m = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        m.keys().append_value("http.route");
        m.values().append_value("/cart");
        m.append(true).expect("map");
        let m: ArrayRef = Arc::new(m.finish());
        assert_eq!(
            value(m.as_ref(), 0),
            serde_json::json!({"http.route": "/cart"})
        );
    }
}
