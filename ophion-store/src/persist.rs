//! Turning buffered rows into Parquet: sort order, row groups, encodings,
//! and where files go. Pure functions of the rows, run on the blocking pool.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, cast::AsArray, types::TimestampNanosecondType};
use arrow_schema::SortOptions;
use bytes::Bytes;
use ophion_core::{Signal, TenantId, schema::col};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, Encoding, ZstdLevel},
    bloom_filter::Sbbf,
    column::writer::ColumnCloseResult,
    file::{
        metadata::{
            KeyValue, PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader, SortingColumn,
        },
        properties::{EnabledStatistics, WriterProperties},
        writer::SerializedFileWriter,
    },
    schema::types::ColumnPath,
};

use crate::{
    error::{Error, Result},
    textindex::{self, IndexBuilder},
};

const NANOS_PER_HOUR: i64 = 3_600_000_000_000;

/// Rows per row group: small enough that statistics prune well, large
/// enough that columns compress well.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Columns written without a codec: a dictionary of a few values and a
/// code per row. For the enums zstd saves a few hundredths of a byte per
/// row; for `service_name`, the column nearly every overview groups or
/// filters by, 0.17 bytes a span (0.5 % of a span at rest). Uncompressed,
/// a scan reading them neither makes a zstd context per column chunk nor
/// decompresses (docs/benchmarks.md, "Service names without a codec").
pub(crate) const UNCOMPRESSED_COLUMNS: [&str; 4] = [
    col::STATUS_CODE,
    col::KIND,
    col::SEVERITY_TEXT,
    col::SERVICE_NAME,
];

/// Bytes (before compression) of a span data page. Pages sorted by trace
/// id let a trace-id bound (the AI engine's sample of whole traces) skip
/// most of a row group, but only where a row group has several pages: at
/// the writer's 1 MiB default, a snapshot's row group was one page per
/// column, and a 1 % sample decoded every row. At 32 KiB the wide columns
/// (ids, attributes) hold about 2,000 rows a page; narrow dictionary
/// columns stay one page.
const SPAN_PAGE_BYTES: usize = 32 * 1024;

/// Rows of a span data page at most. Narrow columns (`status_code`,
/// `service_name`, `kind`) fit a whole row group in one page of
/// [`SPAN_PAGE_BYTES`]; cut every 4,096 rows, the pages of a file's run of
/// error spans (see [`sort_columns`]) end within 4,096 rows of the run, so
/// a search for errors decodes little besides them.
const SPAN_PAGE_ROWS: usize = 4096;

/// Bytes (before compression) of an indexed text column's data page: room
/// for a whole index block of lines (8,192 lines of 1 KiB), so pages end
/// where blocks do.
const INDEXED_PAGE_BYTES: usize = 8 << 20;

/// The column a signal's rows are partitioned and pruned by.
pub fn time_column(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => col::START_TIME,
        Signal::Logs | Signal::Metrics => col::TIMESTAMP,
    }
}

/// Sort order of a signal's files.
///
/// Spans are sorted by status code, then trace id, then start time. The
/// status first (three values, the rarest the one searched for) puts a
/// file's error spans in one run of rows, so `status_code = 'error'` reads
/// the row groups and pages of that run and skips the rest by their
/// statistics: low cardinality first, as ClickHouse advises for its
/// primary keys (ADR 007). Within a status, a trace's spans sit together,
/// so one trace is a small range of one or two runs (found by min/max
/// statistics and the bloom filter), and the spans of one trace share most
/// values, which compresses better than sorting by service and time.
///
/// Log records are sorted by service, severity number, then time: the
/// order of the OpenTelemetry Collector's ClickHouse schema for logs
/// (`ServiceName, SeverityText, Timestamp`), with the number rather than
/// the text so that "warnings and worse" is one range. A service's errors
/// are then one run of each file: `severity_number >= 17` reads their
/// pages only, and a text search for an error's message reads the index
/// blocks of that run, not every block of the service (ADR 004, ADR 009).
/// Metrics are read by name, service and time range.
pub fn sort_columns(signal: Signal) -> &'static [&'static str] {
    match signal {
        Signal::Traces => &[col::STATUS_CODE, col::TRACE_ID, col::START_TIME],
        Signal::Logs => &[col::SERVICE_NAME, col::SEVERITY_NUMBER, col::TIMESTAMP],
        Signal::Metrics => &[col::METRIC_NAME, col::SERVICE_NAME, col::TIMESTAMP],
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::Corrupt(format!("batch has no column {name}")))
}

/// The rows of `batch` sorted by the signal's sort order.
pub fn sort(batch: &RecordBatch, signal: Signal) -> Result<RecordBatch> {
    let columns = sort_columns(signal)
        .iter()
        .map(|name| {
            Ok(arrow_ord::sort::SortColumn {
                values: Arc::clone(column(batch, name)?),
                options: Some(SortOptions {
                    descending: false,
                    nulls_first: true,
                }),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let indices = arrow_ord::sort::lexsort_to_indices(&columns, None)?;
    Ok(arrow_select::take::take_record_batch(batch, &indices)?)
}

/// Buffered batches of one table -> one batch per hour of the time column,
/// each in the signal's sort order, ascending by hour. Each row is copied
/// once: only the sort and time columns are concatenated to find the
/// order, and the rows are then gathered straight from the inputs.
pub fn sorted_by_hour(batches: &[RecordBatch], signal: Signal) -> Result<Vec<(i64, RecordBatch)>> {
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    sorted_rows_by_hour(batches, signal)?
        .into_iter()
        .map(|(h, rows)| {
            Ok((
                h,
                arrow_select::interleave::interleave_record_batch(&refs, &rows)?,
            ))
        })
        .collect()
}

/// Rows of an hour, in sort order, as (batch, row) positions in the input.
pub type HourRows = (i64, Vec<(usize, usize)>);

/// The order of [`sorted_by_hour`] without gathering the rows: per hour
/// (its start, ascending), the (batch, row) positions in sort order.
pub fn sorted_rows_by_hour(batches: &[RecordBatch], signal: Signal) -> Result<Vec<HourRows>> {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok(Vec::new());
    }
    let joined = |name: &str| -> Result<ArrayRef> {
        let parts = batches
            .iter()
            .map(|b| column(b, name).map(|c| c.as_ref()))
            .collect::<Result<Vec<&dyn arrow_array::Array>>>()?;
        Ok(arrow_select::concat::concat(&parts)?)
    };
    let keys = sort_columns(signal)
        .iter()
        .map(|name| {
            Ok(arrow_ord::sort::SortColumn {
                values: joined(name)?,
                options: Some(SortOptions {
                    descending: false,
                    nulls_first: true,
                }),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let order = arrow_ord::sort::lexsort_to_indices(&keys, None)?;
    let times = joined(time_column(signal))?;
    let times = times.as_primitive::<TimestampNanosecondType>().values();
    let origin: Vec<(usize, usize)> = batches
        .iter()
        .enumerate()
        .flat_map(|(b, batch)| (0..batch.num_rows()).map(move |r| (b, r)))
        .collect();
    let mut hours: std::collections::BTreeMap<i64, Vec<(usize, usize)>> = Default::default();
    for &i in order.values() {
        let i = i as usize;
        hours
            .entry(times[i].div_euclid(NANOS_PER_HOUR))
            .or_default()
            .push(origin[i]);
    }
    Ok(hours
        .into_iter()
        .map(|(h, rows)| (h * NANOS_PER_HOUR, rows))
        .collect())
}

/// Splits sorted-or-not rows by the hour of their time column. Returns
/// `(hour start in ns, rows)` in ascending hour order.
pub fn split_by_hour(batch: &RecordBatch, signal: Signal) -> Result<Vec<(i64, RecordBatch)>> {
    let times = column(batch, time_column(signal))?.as_primitive::<TimestampNanosecondType>();
    let mut hours: Vec<i64> = times
        .values()
        .iter()
        .map(|t| t.div_euclid(NANOS_PER_HOUR))
        .collect();
    hours.sort_unstable();
    hours.dedup();
    if hours.len() == 1 {
        return Ok(vec![(hours[0] * NANOS_PER_HOUR, batch.clone())]);
    }
    hours
        .into_iter()
        .map(|h| {
            let mask: arrow_array::BooleanArray = times
                .values()
                .iter()
                .map(|t| Some(t.div_euclid(NANOS_PER_HOUR) == h))
                .collect();
            Ok((
                h * NANOS_PER_HOUR,
                arrow_select::filter::filter_record_batch(batch, &mask)?,
            ))
        })
        .collect()
}

/// Min and max of the time column.
pub fn time_range(batch: &RecordBatch, signal: Signal) -> Result<(i64, i64)> {
    let times = column(batch, time_column(signal))?.as_primitive::<TimestampNanosecondType>();
    let min = arrow_arith::aggregate::min(times).unwrap_or(0);
    let max = arrow_arith::aggregate::max(times).unwrap_or(0);
    Ok((min, max))
}

/// How hard to compress: snapshots favour ingest speed, compaction (which
/// rewrites each file once) favours size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// zstd level 3.
    Snapshot,
    /// zstd level 9.
    Compaction,
}

/// Columns that are not stored because they derive from others: a span's
/// `end_time` is `start_time + duration_ns`. Storing only the duration saves
/// about 4 bytes per span; the query layer recomputes the column.
pub fn derived_columns(signal: Signal) -> &'static [&'static str] {
    match signal {
        Signal::Traces => &[col::END_TIME],
        Signal::Logs | Signal::Metrics => &[],
    }
}

/// The schema of a signal's Parquet files: the table schema without the
/// derived columns.
pub fn storage_schema(signal: Signal) -> arrow_schema::SchemaRef {
    let table = signal.schema();
    let derived = derived_columns(signal);
    if derived.is_empty() {
        return table;
    }
    let fields: Vec<_> = table
        .fields()
        .iter()
        .filter(|f| !derived.contains(&f.name().as_str()))
        .cloned()
        .collect();
    Arc::new(arrow_schema::Schema::new(fields))
}

/// `batch` without the derived columns (a no-op for batches already in the
/// storage schema, as compaction reads them).
pub fn to_storage(batch: &RecordBatch, signal: Signal) -> Result<RecordBatch> {
    let schema = batch.schema();
    let keep: Vec<usize> = (0..schema.fields().len())
        .filter(|i| !derived_columns(signal).contains(&schema.field(*i).name().as_str()))
        .collect();
    Ok(batch.project(&keep)?)
}

/// Writer settings for a signal's files.
///
/// Times use delta encoding: sorted by trace id, a trace's spans start
/// milliseconds apart, so most deltas are small (measured: 5.8 -> 2.6 bytes
/// per span for `start_time`). Random ids skip dictionaries.
pub fn writer_properties(
    signal: Signal,
    rows: usize,
    schema: &arrow_schema::Schema,
    effort: Effort,
) -> WriterProperties {
    let sorting = sort_columns(signal)
        .iter()
        .filter_map(|c| schema.index_of(c).ok())
        .map(|i| SortingColumn {
            column_idx: i as i32,
            descending: false,
            nulls_first: true,
        })
        .collect();
    let level = match effort {
        Effort::Snapshot => 3,
        Effort::Compaction => 9,
    };
    let time = ColumnPath::from(time_column(signal));
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(level).unwrap_or_default(),
        ))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_sorting_columns(Some(sorting))
        .set_column_dictionary_enabled(time.clone(), false)
        .set_column_encoding(time, Encoding::DELTA_BINARY_PACKED);
    if signal == Signal::Traces {
        b = b
            .set_data_page_size_limit(SPAN_PAGE_BYTES)
            .set_data_page_row_count_limit(SPAN_PAGE_ROWS);
    }
    for c in UNCOMPRESSED_COLUMNS {
        if schema.index_of(c).is_ok() {
            b = b.set_column_compression(ColumnPath::from(c), Compression::UNCOMPRESSED);
        }
    }
    if !textindex::indexed_columns(signal).is_empty() {
        // A text search reads the blocks its index selects: with a page
        // per block, a selected block decodes its own rows and no others
        // (at the default 1 MiB a page, a log body's pages held about
        // 7,000 rows, so most blocks straddled two pages). No dictionary:
        // mostly unique lines outgrow it, and the fallback to plain pages
        // cuts a page wherever it happens.
        b = b.set_data_page_row_count_limit(textindex::BLOCK_ROWS);
        for c in textindex::indexed_columns(signal) {
            let c = ColumnPath::from(*c);
            b = b
                .set_column_data_page_size_limit(c.clone(), INDEXED_PAGE_BYTES)
                .set_column_dictionary_enabled(c, false);
        }
    }
    if matches!(signal, Signal::Traces | Signal::Logs) {
        let trace_id = ColumnPath::from(BLOOM_COLUMN);
        b = b
            .set_column_bloom_filter_enabled(trace_id.clone(), true)
            .set_column_bloom_filter_fpp(trace_id.clone(), 0.01)
            .set_column_bloom_filter_max_ndv(trace_id.clone(), rows.min(ROW_GROUP_ROWS) as u64)
            .set_column_dictionary_enabled(trace_id, false)
            .set_column_dictionary_enabled(ColumnPath::from(col::SPAN_ID), false)
            .set_column_dictionary_enabled(ColumnPath::from(col::PARENT_SPAN_ID), false);
    }
    b.build()
}

/// The one column whose chunks carry a bloom filter (spans and log
/// records): queries read bloom filters only when they test it (see
/// `scanrules`).
pub const BLOOM_COLUMN: &str = col::TRACE_ID;

/// Rows gathered and encoded at a time by [`encode_rows`].
const ENCODE_SLICE_ROWS: usize = 8192;

/// Writes one Parquet file of a signal and, for indexed signals, its text
/// index (see [`crate::textindex`]) after the row groups.
#[derive(Debug)]
pub struct FileEncoder<W: std::io::Write + Send> {
    writer: ArrowWriter<W>,
    index: Option<IndexBuilder>,
}

impl<W: std::io::Write + Send> FileEncoder<W> {
    /// An encoder of `rows` rows (an estimate: it sizes the trace-id bloom
    /// filter) of `schema` into `out`, with a text index when `text_index`
    /// and the signal has indexed columns (`[store.buffer] text_index`).
    pub fn new(
        out: W,
        signal: Signal,
        schema: arrow_schema::SchemaRef,
        rows: usize,
        effort: Effort,
        text_index: bool,
    ) -> Result<Self> {
        let props = writer_properties(signal, rows, &schema, effort);
        Ok(Self {
            writer: ArrowWriter::try_new(out, schema, Some(props))?,
            index: IndexBuilder::for_signal(signal).filter(|_| text_index),
        })
    }

    /// Appends rows, in file order.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if let Some(index) = &mut self.index {
            index.push(batch)?;
        }
        Ok(self.writer.write(batch)?)
    }

    /// Writes the index and the footer; returns the output.
    pub fn finish(mut self) -> Result<W> {
        if let Some(index) = self.index.take() {
            let bytes = index.finish();
            if !bytes.is_empty() {
                self.writer.flush()?;
                let offset = self.writer.bytes_written();
                self.writer.write_all(&bytes)?;
                self.writer
                    .append_key_value_metadata(text_index_entry(offset, bytes.len()));
            }
        }
        Ok(self.writer.into_inner()?)
    }
}

/// The footer entry locating a text index written at `offset`, read back by
/// [`text_index_range`].
fn text_index_entry(offset: usize, len: usize) -> KeyValue {
    KeyValue::new(textindex::KV_KEY.to_string(), format!("{offset}:{len}"))
}

/// Where a file's text index lies, from its footer: `(offset, length)`.
pub fn text_index_range(meta: &ParquetMetaData) -> Option<(u64, u64)> {
    let kv = meta.file_metadata().key_value_metadata()?;
    let value = kv
        .iter()
        .find(|e| e.key == textindex::KV_KEY)?
        .value
        .as_deref()?;
    let (offset, len) = value.split_once(':')?;
    Some((offset.parse().ok()?, len.parse().ok()?))
}

/// Encodes the rows at `rows` ((batch, row) positions in `batches`, in
/// sort order) as one Parquet file in the storage schema, gathering
/// 8,192 at a time: row groups reach their full size
/// (sorted across every input batch) while memory holds one slice, not
/// a sorted copy of everything. Returns the time range and the file.
pub fn encode_rows(
    batches: &[RecordBatch],
    rows: &[(usize, usize)],
    signal: Signal,
    effort: Effort,
    text_index: bool,
) -> Result<((i64, i64), Bytes)> {
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    let mut encoder: Option<FileEncoder<Vec<u8>>> = None;
    for slice in rows.chunks(ENCODE_SLICE_ROWS) {
        let batch = arrow_select::interleave::interleave_record_batch(&refs, slice)?;
        let (a, b) = time_range(&batch, signal)?;
        (lo, hi) = (lo.min(a), hi.max(b));
        let batch = to_storage(&batch, signal)?;
        let e = match &mut encoder {
            Some(e) => e,
            None => encoder.insert(FileEncoder::new(
                Vec::new(),
                signal,
                batch.schema(),
                rows.len(),
                effort,
                text_index,
            )?),
        };
        e.write(&batch)?;
    }
    let out = encoder
        .ok_or_else(|| Error::Corrupt("no rows to encode".into()))?
        .finish()?;
    Ok(((lo, hi), Bytes::from(out)))
}

/// Concatenates Parquet files of one schema by copying their row groups
/// byte for byte: column chunks, bloom filters, statistics and page indexes
/// move over without being decoded or compressed again, so this costs a
/// memory copy instead of a decode, merge and encode. Each row group keeps
/// its own sort order (the file as a whole is not sorted). Returns the file
/// and its row count, or `None` when the inputs' schemas or text index
/// formats differ (files written by different versions), which need a real
/// merge.
pub fn stitch(inputs: &[Bytes]) -> Result<Option<(Bytes, u64)>> {
    let metas = inputs
        .iter()
        .map(|b| {
            ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Optional)
                .parse_and_finish(b)
        })
        .collect::<std::result::Result<Vec<ParquetMetaData>, _>>()?;
    let Some(first) = metas.first() else {
        return Ok(None);
    };
    // The key-value entries other than the text index's (the Arrow
    // schema) must agree.
    let kv = |m: &ParquetMetaData| -> Option<Vec<KeyValue>> {
        m.file_metadata().key_value_metadata().map(|kv| {
            kv.iter()
                .filter(|e| e.key != textindex::KV_KEY)
                .cloned()
                .collect()
        })
    };
    let same = |m: &ParquetMetaData| {
        m.file_metadata().schema() == first.file_metadata().schema() && kv(m) == kv(first)
    };
    if !metas.iter().all(same) {
        return Ok(None);
    }
    // Row groups are copied in order, so the inputs' indexes are too (or
    // none is written when an input has none).
    let indexes = inputs
        .iter()
        .zip(&metas)
        .map(|(input, meta)| {
            let (offset, len) = text_index_range(meta)?;
            let bytes = input.slice(offset as usize..(offset + len) as usize);
            textindex::FileIndex::parse(bytes).ok()
        })
        .collect::<Option<Vec<_>>>();
    // Indexes of different formats (files from before an upgrade) cannot
    // be joined: a real merge builds the new one.
    let index = match indexes.as_deref().map(textindex::FileIndex::concat) {
        Some(None) => return Ok(None),
        joined => joined.flatten(),
    };
    let sorting = first
        .row_groups()
        .first()
        .and_then(|rg| rg.sorting_columns().cloned());
    let props = WriterProperties::builder()
        // The Arrow schema travels in the key-value metadata.
        .set_key_value_metadata(kv(first))
        .set_sorting_columns(sorting)
        .build();
    let total: usize = inputs.iter().map(Bytes::len).sum();
    let mut out = Vec::with_capacity(total + 4096);
    let mut w = SerializedFileWriter::new(
        &mut out,
        first.file_metadata().schema_descr().root_schema_ptr(),
        Arc::new(props),
    )?;
    let mut rows = 0u64;
    for (input, meta) in inputs.iter().zip(&metas) {
        for (i, rg) in meta.row_groups().iter().enumerate() {
            let column_index = meta.column_index().and_then(|c| c.get(i));
            let offset_index = meta.offset_index().and_then(|o| o.get(i));
            let mut g = w.next_row_group()?;
            for (c, chunk) in rg.columns().iter().enumerate() {
                let bloom_filter = Sbbf::read_from_column_chunk(chunk, input)?;
                g.append_column(
                    input,
                    ColumnCloseResult {
                        bytes_written: chunk.compressed_size() as u64,
                        rows_written: rg.num_rows() as u64,
                        metadata: chunk.clone(),
                        bloom_filter,
                        column_index: column_index.and_then(|x| x.get(c)).cloned(),
                        offset_index: offset_index.and_then(|x| x.get(c)).cloned(),
                    },
                )?;
            }
            g.close()?;
            rows += rg.num_rows() as u64;
        }
    }
    if let Some(index) = index {
        w.flush()?;
        let offset = w.bytes_written();
        w.write_all(&index)?;
        w.append_key_value_metadata(text_index_entry(offset, index.len()));
    }
    w.close()?;
    Ok(Some((Bytes::from(out), rows)))
}

/// Days since 1970-01-01 -> (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Object path of a new file: `<tenant>/<signal>/<yyyy-mm-dd>/<hh>/<uuid v7>.parquet`.
/// Tenant ids are restricted to path-safe characters by [`TenantId::new`].
pub fn file_path(tenant: &TenantId, signal: Signal, hour_start_ns: i64, writer: &str) -> String {
    let hours = hour_start_ns.div_euclid(NANOS_PER_HOUR);
    let (y, m, d) = civil(hours.div_euclid(24));
    let hh = hours.rem_euclid(24);
    format!(
        "{tenant}/{signal}/{y:04}-{m:02}-{d:02}/{hh:02}/{}{}.parquet",
        uuid::Uuid::now_v7(),
        writer_suffix(writer)
    )
}

/// The end of the names of files a node writes (`-w<tag>`, before
/// `.parquet`): a node at its start knows which unpublished files are its
/// own, left by its crash, and deletes them at once; other nodes' may be
/// about to be published.
pub fn writer_suffix(writer: &str) -> String {
    format!("-w{writer}")
}

/// A node's writer tag: a short hash of its name in the catalog.
pub fn writer_tag(node: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    format!("{:012x}", h >> 16)
}

/// Concatenates batches of one schema.
pub fn concat(batches: &[RecordBatch]) -> Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    Ok(Some(arrow_select::concat::concat_batches(
        &first.schema(),
        batches,
    )?))
}

/// Rows the batch holds across all given batches.
pub fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(signal: Signal, seed: u64) -> Bytes {
        use ophion_receiver::{Limits, convert};
        let g = &mut ophion_core::testing::Generator::new(seed, 1_700_000_000_000_000_000);
        let w = convert::TimeWindow::ALL;
        let c = match signal {
            Signal::Traces => convert::traces(&g.traces(50), &Limits::default(), w),
            Signal::Logs => convert::logs(&g.logs(50), &Limits::default(), w, 0),
            Signal::Metrics => convert::metrics(&g.metrics(50), &Limits::default(), w),
        };
        let batch = sort(&c.batch.expect("rows"), signal).expect("sort");
        let rows: Vec<(usize, usize)> = (0..batch.num_rows()).map(|r| (0, r)).collect();
        encode_rows(&[batch], &rows, signal, Effort::Snapshot, true)
            .expect("encode")
            .1
    }

    #[test]
    fn sorting_by_hour_in_one_copy_matches_concat_split_and_sort() {
        use ophion_receiver::{Limits, convert};
        let mut batches = Vec::new();
        // Two hours apart, so the rows fall into several hours.
        for (seed, start) in [(1u64, 0u64), (2, 3_600), (3, 1_800)] {
            let g = &mut ophion_core::testing::Generator::new(
                seed,
                1_700_000_000_000_000_000 + start * 1_000_000_000,
            );
            let c = convert::traces(&g.traces(300), &Limits::default(), convert::TimeWindow::ALL);
            batches.push(c.batch.expect("rows"));
        }
        let all = concat(&batches).expect("concat").expect("rows");
        let expected: Vec<(i64, RecordBatch)> = split_by_hour(&all, Signal::Traces)
            .expect("split")
            .into_iter()
            .map(|(h, b)| (h, sort(&b, Signal::Traces).expect("sort")))
            .collect();
        assert!(expected.len() >= 2, "the test's premise");
        let got = sorted_by_hour(&batches, Signal::Traces).expect("sorted");
        assert_eq!(got.len(), expected.len());
        for ((h1, b1), (h2, b2)) in got.iter().zip(&expected) {
            assert_eq!(h1, h2);
            // Ties in the sort keys may come out in either order;
            // the sort keys and the multiset of rows must agree.
            assert_eq!(b1.num_rows(), b2.num_rows());
            for name in sort_columns(Signal::Traces) {
                assert_eq!(
                    column(b1, name).expect("col").as_ref(),
                    column(b2, name).expect("col").as_ref()
                );
            }
            let ids = |b: &RecordBatch| {
                let mut v: Vec<Vec<u8>> = column(b, col::SPAN_ID)
                    .expect("span ids")
                    .as_fixed_size_binary()
                    .iter()
                    .map(|x| x.expect("id").to_vec())
                    .collect();
                v.sort();
                v
            };
            assert_eq!(ids(b1), ids(b2));
        }
        assert!(
            sorted_by_hour(&[], Signal::Traces)
                .expect("empty")
                .is_empty()
        );
    }

    /// A snapshot's rows, from many small batches, become one file per
    /// hour holding exactly the rows `sorted_by_hour` gives, in its order,
    /// written a slice at a time, with the time range of its rows.
    #[test]
    fn encoding_rows_a_slice_at_a_time_keeps_the_sorted_rows() {
        use ophion_receiver::{Limits, convert};
        let mut batches = Vec::new();
        for seed in 0..12 {
            let mut g = ophion_core::testing::Generator::new(seed, 1_700_000_000_000_000_000);
            let c = convert::traces(
                &g.traces(2_000),
                &Limits::default(),
                convert::TimeWindow::ALL,
            );
            batches.push(c.batch.expect("rows"));
        }
        let sorted = sorted_by_hour(&batches, Signal::Traces).expect("sorted");
        let positions = sorted_rows_by_hour(&batches, Signal::Traces).expect("order");
        assert_eq!(sorted.len(), positions.len());
        for ((h1, expected), (h2, rows)) in sorted.iter().zip(&positions) {
            assert_eq!(h1, h2);
            assert!(rows.len() > ENCODE_SLICE_ROWS, "the test's premise");
            let (range, bytes) =
                encode_rows(&batches, rows, Signal::Traces, Effort::Snapshot, true)
                    .expect("encode");
            assert_eq!(range, time_range(expected, Signal::Traces).expect("range"));
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
                    .expect("file");
            assert_eq!(reader.metadata().num_row_groups(), 1);
            let read: Vec<RecordBatch> = reader
                .build()
                .expect("reader")
                .collect::<std::result::Result<_, _>>()
                .expect("rows");
            let read = concat(&read).expect("concat").expect("rows");
            let want = to_storage(expected, Signal::Traces).expect("storage");
            assert_eq!(read.num_rows(), want.num_rows());
            for name in [col::TRACE_ID, col::SPAN_ID, col::START_TIME, col::NAME] {
                assert_eq!(
                    column(&read, name).expect("read").as_ref(),
                    column(&want, name).expect("want").as_ref(),
                    "{name}"
                );
            }
        }
    }

    /// A log file's body pages end where the text index's blocks do, so a
    /// block the index selects is one page.
    #[test]
    fn indexed_text_pages_are_index_blocks() {
        use ophion_receiver::{Limits, convert};
        let g = &mut ophion_core::testing::Generator::new(3, 1_700_000_000_000_000_000);
        let batch = convert::logs(
            &g.logs(40_000),
            &Limits::default(),
            convert::TimeWindow::ALL,
            0,
        )
        .batch
        .expect("rows");
        let batch = sort(&batch, Signal::Logs).expect("sort");
        let rows: Vec<(usize, usize)> = (0..batch.num_rows()).map(|r| (0, r)).collect();
        let (_, bytes) =
            encode_rows(&[batch], &rows, Signal::Logs, Effort::Snapshot, true).expect("encode");
        let meta = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Required)
            .parse_and_finish(&bytes)
            .expect("footer");
        let body = meta
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.name() == col::BODY)
            .expect("body");
        let offsets = meta.offset_index().expect("offset index");
        let mut first_rows = Vec::new();
        let mut start = 0i64;
        for (rg, index) in meta.row_groups().iter().zip(offsets) {
            for page in index[body].page_locations() {
                first_rows.push(start + page.first_row_index);
            }
            start += rg.num_rows();
        }
        assert!(first_rows.len() >= 4, "the test's premise: {first_rows:?}");
        let block = textindex::BLOCK_ROWS as i64;
        assert!(
            first_rows
                .iter()
                .enumerate()
                .all(|(i, &r)| r == i as i64 * block),
            "{first_rows:?}"
        );
    }

    /// Enum columns and service names are written without a codec (a
    /// scan reading them makes no zstd context per column chunk); every
    /// other column with zstd.
    #[test]
    fn enum_columns_are_uncompressed_and_the_rest_zstd() {
        for (signal, enums) in [
            (
                Signal::Traces,
                &[col::STATUS_CODE, col::KIND, col::SERVICE_NAME][..],
            ),
            (Signal::Logs, &[col::SEVERITY_TEXT, col::SERVICE_NAME][..]),
        ] {
            let meta = ParquetMetaDataReader::new()
                .parse_and_finish(&encoded(signal, 4))
                .expect("footer");
            let mut seen = 0;
            for c in meta.row_group(0).columns() {
                let name = c.column_path().string();
                if enums.contains(&name.as_str()) {
                    seen += 1;
                    assert_eq!(c.compression(), Compression::UNCOMPRESSED, "{name}");
                } else {
                    assert!(
                        matches!(c.compression(), Compression::ZSTD(_)),
                        "{name}: {:?}",
                        c.compression()
                    );
                }
            }
            assert_eq!(seen, enums.len(), "{signal:?}");
        }
    }

    #[test]
    fn stitching_copies_row_groups_of_one_schema_only() {
        let (a, b) = (encoded(Signal::Traces, 1), encoded(Signal::Traces, 2));
        let rows = |f: &Bytes| {
            ParquetMetaDataReader::new()
                .parse_and_finish(f)
                .expect("footer")
                .file_metadata()
                .num_rows() as u64
        };
        let (out, n) = stitch(&[a.clone(), b.clone()])
            .expect("stitch")
            .expect("same schema");
        assert_eq!(n, rows(&a) + rows(&b));
        assert_eq!(rows(&out), n);
        let read: usize =
            parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(out, 1024)
                .expect("reader")
                .map(|b| b.expect("batch").num_rows())
                .sum();
        assert_eq!(read as u64, n, "readable back through Arrow");
        assert!(
            stitch(&[a, encoded(Signal::Logs, 3)])
                .expect("stitch")
                .is_none(),
            "different schemas need a real merge"
        );
        assert!(stitch(&[]).expect("stitch").is_none());
    }

    #[test]
    fn stitching_joins_text_indexes_of_one_format_only() {
        let (a, b) = (encoded(Signal::Logs, 1), encoded(Signal::Logs, 2));
        let index = |f: &Bytes| {
            let meta = ParquetMetaDataReader::new()
                .parse_and_finish(f)
                .expect("footer");
            text_index_range(&meta).expect("indexed")
        };
        let (out, _) = stitch(&[a.clone(), b.clone()])
            .expect("stitch")
            .expect("same schema");
        let (_, len) = index(&out);
        // The blocks of both under one header.
        assert!(len > index(&a).1.max(index(&b).1));
        assert!(len < index(&a).1 + index(&b).1);
        // `b` as a writer that put no word key in twice: the same
        // format, another kind of index.
        let (offset, _) = index(&b);
        let mut older = b.to_vec();
        assert_eq!(&older[offset as usize..offset as usize + 4], b"OTX3");
        older[offset as usize + 7] = 0;
        assert!(
            stitch(&[a, Bytes::from(older)]).expect("stitch").is_none(),
            "indexes that cannot be joined need a real merge"
        );
    }

    #[test]
    fn calendar() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(19_723), (2024, 1, 1));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(civil(11_016), (2000, 2, 29));
        let p = file_path(
            &TenantId::default(),
            Signal::Logs,
            1_700_000_000_000_000_000 / NANOS_PER_HOUR * NANOS_PER_HOUR,
            &writer_tag("node-a"),
        );
        assert!(
            p.starts_with("default/logs/2023-11-14/22/") && p.ends_with(".parquet"),
            "{p}"
        );
        assert!(p.ends_with(&format!("{}.parquet", writer_suffix(&writer_tag("node-a")))));
        assert_ne!(writer_tag("node-a"), writer_tag("node-b"));
        assert_eq!(writer_tag("node-a").len(), 12);
    }
}
