//! `ophion ai ...`: the AI engine offline, on files (no server).

use std::fmt::Write as _;

use crate::cli::{CliError, args::AiCommand};

/// `text` as one CSV field (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The rows of a CSV with a `value` column and, when `need_time`, a
/// `timestamp` column (found by name in the header), as (line, seconds or
/// 0, value); an unreadable row is an error naming its line.
fn read_series(text: &str, need_time: bool) -> Result<Vec<(&str, i64, f64)>, String> {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .ok_or("the input is empty")?
        .split(',')
        .map(|h| h.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or(format!("the header has no `{name}` column"))
    };
    let t = if need_time {
        Some(col("timestamp")?)
    } else {
        None
    };
    let v = col("value")?;
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let fields: Vec<&str> = line
                .split(',')
                .map(|f| f.trim().trim_matches('"'))
                .collect();
            let at = |c: usize| fields.get(c).copied().unwrap_or("");
            let ts = match t {
                Some(t) => ophion_ai::series::parse_timestamp(at(t)).ok_or(format!(
                    "line {}: bad timestamp {:?}",
                    i + 2,
                    at(t)
                ))?,
                None => 0,
            };
            // An empty value is a gap: it scores 0 and forecasts skip it.
            let value = match at(v) {
                "" => f64::NAN,
                x => x
                    .parse()
                    .map_err(|_| format!("line {}: bad value {x:?}", i + 2))?,
            };
            Ok((line, ts, value))
        })
        .collect()
}

pub(in crate::cli) fn ai(cmd: AiCommand, out: &mut String) -> Result<(), CliError> {
    let fail = |p: &std::path::Path, e: &dyn std::fmt::Display| {
        CliError::Refused(format!("{}: {e}", p.display()))
    };
    match cmd {
        AiCommand::Forecast {
            input,
            horizon,
            output,
        } => {
            let text = std::fs::read_to_string(&input).map_err(|e| fail(&input, &e))?;
            let rows = read_series(&text, false).map_err(|e| fail(&input, &e))?;
            let values: Vec<f64> = rows.iter().map(|r| r.2).collect();
            let f = ophion_ai::forecast::forecast(
                &values,
                horizon,
                &ophion_ai::forecast::ForecastConfig::default(),
            );
            let mut csv = String::from("step,forecast,lower,upper\n");
            for h in 0..horizon {
                let _ = writeln!(
                    csv,
                    "{},{:.6},{:.6},{:.6}",
                    h + 1,
                    f.point[h],
                    f.lower[h],
                    f.upper[h]
                );
            }
            std::fs::write(&output, csv).map_err(|e| fail(&output, &e))?;
            let period = f.period.map_or("none".to_owned(), |p| p.to_string());
            let _ = writeln!(
                out,
                "{} points, period {period}, {horizon} steps -> {}",
                values.len(),
                output.display()
            );
            Ok(())
        }
        AiCommand::Detect { input, output } => {
            let text = std::fs::read_to_string(&input).map_err(|e| fail(&input, &e))?;
            let rows = read_series(&text, true).map_err(|e| fail(&input, &e))?;
            let mut detector =
                ophion_ai::anomaly::Detector::new(ophion_ai::anomaly::DetectorConfig::default());
            let header = text.lines().next().unwrap_or_default();
            let mut csv = format!("{header},anomaly_score\n");
            let mut flagged = 0;
            for (line, ts, value) in &rows {
                let p = detector.update(*ts, *value);
                flagged += usize::from(p.anomalous);
                let _ = writeln!(csv, "{line},{:.6}", p.score);
            }
            std::fs::write(&output, csv).map_err(|e| fail(&output, &e))?;
            let _ = writeln!(
                out,
                "{} points, {flagged} anomalies -> {}",
                rows.len(),
                output.display()
            );
            Ok(())
        }
        AiCommand::Patterns { input, output } => {
            let text = std::fs::read_to_string(&input).map_err(|e| fail(&input, &e))?;
            let mut miner = ophion_ai::patterns::TemplateMiner::default();
            let ids: Vec<_> = text.lines().map(|l| miner.add(l)).collect();
            // Templates as they stand after every line was seen: a line
            // whose template was merged into another is under that one.
            let mut csv = String::from("template_id,template\n");
            for id in ids.iter().map(|id| miner.resolve(*id)) {
                let _ = writeln!(csv, "{id},{}", csv_field(&miner.template(id)));
            }
            std::fs::write(&output, csv).map_err(|e| fail(&output, &e))?;
            let _ = writeln!(
                out,
                "{} lines, {} templates -> {}",
                ids.len(),
                miner.len(),
                output.display()
            );
            Ok(())
        }
    }
}
