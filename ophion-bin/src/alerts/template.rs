//! Annotation templates, Prometheus-style: `{{ $value }}`,
//! `{{ $labels.NAME }}`, `{{ $links.traces }}`, `{{ $links.logs }}`.

use super::model::Labels;

/// What a template may refer to.
#[derive(Debug, Clone)]
pub struct TemplateData<'a> {
    /// The value.
    pub value: f64,
    /// The labels.
    pub labels: &'a Labels,
    /// Links to the trace and log views.
    pub traces: String,
    /// See `traces`.
    pub logs: String,
}

/// Renders `text`: `{{ $value }}`, `{{ $labels.NAME }}`,
/// `{{ $links.traces }}`, `{{ $links.logs }}`. Anything else is an error
/// naming what failed.
pub fn render(text: &str, d: &TemplateData<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            return Err(format!("unclosed `{{{{` in `{text}`"));
        };
        let expr = after[..j].trim();
        let v = if expr == "$value" || expr == ".Value" {
            let v = d.value;
            if v.fract() == 0.0 && v.abs() < 1e15 {
                format!("{}", v as i64)
            } else {
                format!("{v:.4}")
            }
        } else if let Some(name) = expr
            .strip_prefix("$labels.")
            .or_else(|| expr.strip_prefix(".Labels."))
        {
            d.labels
                .get(name)
                .cloned()
                .ok_or_else(|| format!("`{expr}`: the alert has no label `{name}`"))?
        } else if expr == "$links.traces" {
            d.traces.clone()
        } else if expr == "$links.logs" {
            d.logs.clone()
        } else {
            return Err(format!(
                "`{{{{ {expr} }}}}` is not known; use $value, $labels.NAME, $links.traces or $links.logs"
            ));
        };
        out.push_str(&v);
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_or_say_what_failed() {
        let labels = Labels::from([("service".to_owned(), "checkout".to_owned())]);
        let d = TemplateData {
            value: 12.0,
            labels: &labels,
            traces: "http://x/traces".into(),
            logs: "http://x/logs".into(),
        };
        assert_eq!(
            render(
                "{{ $labels.service }} at {{ $value }}: {{$links.traces}}",
                &d
            )
            .as_deref(),
            Ok("checkout at 12: http://x/traces")
        );
        assert!(
            render("{{ $labels.pod }}", &d)
                .expect_err("no such label")
                .contains("pod")
        );
        assert!(render("{{ humanize $value }}", &d).is_err());
        assert!(render("{{ $value", &d).is_err());
    }
}
