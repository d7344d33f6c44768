//! `POST /api/v1/query`: one read-only SQL query, answered as JSON (default),
//! CSV (`Accept: text/csv`) or an Arrow IPC stream
//! (`Accept: application/vnd.apache.arrow.stream`).

use crate::auth::Principal;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiState};
use crate::read::{Params, json as to_json};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueryRequest {
    sql: String,
}

/// Media type of Arrow IPC streams.
pub(super) const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

pub(super) async fn run(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    headers: HeaderMap,
    body: Result<Json<QueryRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"sql\": \"SELECT ...\"}}: {}",
            e.body_text()
        ))
    })?;
    let out = s
        .reader
        .sql(&who.tenant, &req.sql, &Params::default())
        .await?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if accept.contains("text/csv") {
        return csv(&out.schema, &out.batches);
    }
    if accept.contains(ARROW_STREAM) {
        return arrow_ipc(&out.schema, &out.batches);
    }
    let columns: Vec<_> = out
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": to_json::type_name(f.data_type())}))
        .collect();
    Ok(Json(json!({
        "columns": columns,
        "rows": to_json::rows(&out.batches),
        "stats": {
            "rows": out.rows,
            "truncated": out.truncated,
            "elapsed_ms": out.elapsed.as_secs_f64() * 1e3,
        },
    }))
    .into_response())
}

/// Whether CSV can hold the type as it is.
fn csv_native(t: &DataType) -> bool {
    !matches!(
        t,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
            | DataType::Struct(_)
            | DataType::Map(..)
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_)
            | DataType::Dictionary(..)
    )
}

/// Nested and binary columns as text (JSON, hex), which CSV can hold.
fn csv_ready(batch: &RecordBatch) -> Result<RecordBatch, ApiError> {
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if csv_native(f.data_type()) {
            fields.push(f.as_ref().clone());
            columns.push(Arc::clone(c));
        } else {
            let text: StringArray = (0..c.len())
                .map(|r| match to_json::value(c.as_ref(), r) {
                    serde_json::Value::Null => None,
                    serde_json::Value::String(s) => Some(s),
                    other => Some(other.to_string()),
                })
                .collect();
            fields.push(Field::new(f.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "cannot encode a query result");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "cannot encode the result",
    )
}

fn csv(schema: &Schema, batches: &[RecordBatch]) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    {
        let mut w = arrow_csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut out);
        if batches.is_empty() {
            // Still answer the header line.
            let empty = RecordBatch::new_empty(Arc::new(schema.clone()));
            w.write(&csv_ready(&empty)?).map_err(internal)?;
        }
        for b in batches {
            w.write(&csv_ready(b)?).map_err(internal)?;
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        )],
        out,
    )
        .into_response())
}

fn arrow_ipc(schema: &Schema, batches: &[RecordBatch]) -> Result<Response, ApiError> {
    let mut out = Vec::new();
    {
        let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, schema).map_err(internal)?;
        for b in batches {
            w.write(b).map_err(internal)?;
        }
        w.finish().map_err(internal)?;
    }
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static(ARROW_STREAM))],
        out,
    )
        .into_response())
}
