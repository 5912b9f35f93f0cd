//! The metrics' two text formats. The agent encodes OpenMetrics (prometheus-client); a scraper
//! that does not ask for it (`Accept` without `application/openmetrics-text`: curl, promtool,
//! older Prometheus) gets the classic Prometheus text format 0.0.4, as exporters negotiate.

/// The OpenMetrics content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic text format's content type.
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// OpenMetrics text → classic text: a counter family `x` is named `x_total` in its `# HELP` and
/// `# TYPE` lines (its samples already are); `# UNIT` and `# EOF` lines go (the classic format
/// has none); an `info` or `stateset` family becomes a gauge.
pub fn to_classic(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for l in openmetrics.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            if let Some((name, "counter")) = rest.split_once(' ') {
                counters.insert(name.to_owned());
            }
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for l in openmetrics.lines() {
        if l.starts_with("# UNIT ") || l == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| l.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let name = if counters.contains(name) {
                    format!("{name}_total")
                } else {
                    name.to_owned()
                };
                let tail = match (prefix, tail) {
                    ("# TYPE ", "info" | "stateset") => "gauge",
                    _ => tail,
                };
                out.push_str(prefix);
                out.push_str(&name);
                if !tail.is_empty() {
                    out.push(' ');
                    out.push_str(tail);
                }
            }
            None => out.push_str(l),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_name_and_openmetrics_only_lines_go() {
        let om = "# HELP x_events Events.\n# TYPE x_events counter\nx_events_total{k=\"a\"} 3\n# HELP x_d Duration.\n# TYPE x_d histogram\n# UNIT x_d seconds\nx_d_sum 1.5\nx_d_count 2\n# HELP x_g G.\n# TYPE x_g gauge\nx_g 7\n# EOF\n";
        assert_eq!(
            to_classic(om),
            "# HELP x_events_total Events.\n# TYPE x_events_total counter\nx_events_total{k=\"a\"} 3\n# HELP x_d Duration.\n# TYPE x_d histogram\nx_d_sum 1.5\nx_d_count 2\n# HELP x_g G.\n# TYPE x_g gauge\nx_g 7\n"
        );
    }

    #[test]
    fn only_an_openmetrics_accept_gets_openmetrics() {
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        )));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
    }
}
