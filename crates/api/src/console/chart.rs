//! Charts as SVG drawn on the server: no script, no asset from elsewhere,
//! readable by screen readers through their title and a table beside them.

use std::fmt::Write as _;

use maud::{Markup, PreEscaped, html};

/// One point of a line chart: its label on the x axis and its value, if
/// any (a gap in the line otherwise).
#[derive(Debug, Clone)]
pub struct Point {
    /// The x axis label.
    pub label: String,
    /// The value.
    pub value: Option<f64>,
}

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 36.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 40.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A line chart of `points` on a y axis from 0 to `max`, titled `title`;
/// missing values break the line, and each value has a dot.
pub fn line(title: &str, points: &[Point], max: f64) -> Markup {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let max = if max > 0.0 { max } else { 1.0 };
    let step = if points.len() > 1 { plot_w / (points.len() - 1) as f64 } else { 0.0 };
    let x = |i: usize| LEFT + step * i as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - (v / max).clamp(0.0, 1.0));
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{0}" xmlns="http://www.w3.org/2000/svg"><title>{0}</title>"#,
        escape(title)
    );
    grid(&mut svg, max, y);
    let mut path = String::new();
    let mut pen_down = false;
    for (i, point) in points.iter().enumerate() {
        match point.value {
            Some(v) => {
                let _ = write!(path, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, x(i), y(v));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    if !path.is_empty() {
        let _ = write!(svg, r##"<path d="{}" fill="none" stroke="#1f5fbf" stroke-width="2.5"/>"##, path.trim_end());
    }
    for (i, point) in points.iter().enumerate() {
        if let Some(v) = point.value {
            let _ = write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="#1f5fbf"><title>{}: {v:.1}</title></circle>"##,
                x(i),
                y(v),
                escape(&point.label)
            );
        }
        if i % 2 == points.len().saturating_sub(1) % 2 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x(i),
                HEIGHT - BOTTOM + 16.0,
                escape(&point.label)
            );
        }
    }
    svg.push_str("</svg>");
    html! { (PreEscaped(svg)) }
}

/// Five horizontal rules from 0 to `max` with their values, `y` placing
/// a value.
fn grid(svg: &mut String, max: f64, y: impl Fn(f64) -> f64) {
    for tick in 0..=4 {
        let value = max * f64::from(tick) / 4.0;
        let ty = y(value);
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{ty:.1}" y2="{ty:.1}" stroke="#d9dee7"/><text x="{}" y="{:.1}" text-anchor="end">{value:.0}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            ty + 4.0
        );
    }
}

/// The colours of a stacked chart's series, in order.
const SERIES: [&str; 6] = ["#1f5fbf", "#17643a", "#8a5a00", "#a4262c", "#6b4fa0", "#5b6474"];

/// Stacked columns, one per label, each stacking the series' values at
/// that label (a series is a name and one value per label), with a
/// legend; titled `title`.
pub fn columns(title: &str, labels: &[String], series: &[(String, Vec<f64>)]) -> Markup {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let totals: Vec<f64> =
        (0..labels.len()).map(|i| series.iter().map(|(_, v)| v.get(i).copied().unwrap_or(0.0)).sum()).collect();
    let max = totals.iter().copied().fold(0.0_f64, f64::max).max(4.0);
    let y = |v: f64| TOP + plot_h * (1.0 - (v / max).clamp(0.0, 1.0));
    let slot = plot_w / labels.len().max(1) as f64;
    let legend_h = 18.0 * series.len().div_ceil(3) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {}" role="img" aria-label="{1}" xmlns="http://www.w3.org/2000/svg"><title>{1}</title>"#,
        HEIGHT + legend_h,
        escape(title)
    );
    grid(&mut svg, max, y);
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + slot * i as f64 + slot * 0.2;
        let mut base = 0.0;
        for (n, (name, values)) in series.iter().enumerate() {
            let value = values.get(i).copied().unwrap_or(0.0);
            if value > 0.0 {
                let _ = write!(
                    svg,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}, {}: {value}</title></rect>"#,
                    y(base + value),
                    slot * 0.6,
                    y(base) - y(base + value),
                    SERIES[n % SERIES.len()],
                    escape(label),
                    escape(name)
                );
            }
            base += value;
        }
        if i % 2 == labels.len().saturating_sub(1) % 2 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x + slot * 0.3,
                HEIGHT - BOTTOM + 16.0,
                escape(label)
            );
        }
    }
    for (n, (name, _)) in series.iter().enumerate() {
        let (lx, ly) = (LEFT + 180.0 * (n % 3) as f64, HEIGHT + 18.0 * (n / 3) as f64 - 6.0);
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
            ly - 9.0,
            SERIES[n % SERIES.len()],
            lx + 14.0,
            escape(name)
        );
    }
    svg.push_str("</svg>");
    html! { (PreEscaped(svg)) }
}

/// Horizontal bars, one per `(label, value)`, on a scale up to the largest
/// value; titled `title`.
pub fn bars(title: &str, rows: &[(String, f64)]) -> Markup {
    let max = rows.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max).max(1.0);
    let row_h = 26.0;
    let label_w = 180.0;
    let height = TOP + row_h * rows.len() as f64 + 8.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{0}" xmlns="http://www.w3.org/2000/svg"><title>{0}</title>"#,
        escape(title)
    );
    for (i, (label, value)) in rows.iter().enumerate() {
        let top = TOP + row_h * i as f64;
        let w = (WIDTH - label_w - RIGHT - 40.0) * (value / max);
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{label_w}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="#1f5fbf"/><text x="{:.1}" y="{:.1}">{value}</text>"##,
            label_w - 8.0,
            top + row_h * 0.6,
            escape(label),
            top + 4.0,
            row_h - 8.0,
            label_w + w + 6.0,
            top + row_h * 0.6,
        );
    }
    svg.push_str("</svg>");
    html! { (PreEscaped(svg)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_breaks_at_missing_values_and_labels_are_escaped() {
        let points = vec![
            Point { label: "a<b".into(), value: Some(50.0) },
            Point { label: "2".into(), value: None },
            Point { label: "3".into(), value: Some(100.0) },
        ];
        let svg = line("Score & history", &points, 100.0).into_string();
        assert!(svg.contains("<title>Score &amp; history</title>"), "{svg}");
        assert!(svg.contains("a&lt;b"), "{svg}");
        // Two separate pieces: a move to the first point, another to the third.
        let d = svg.split("d=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(svg.matches("<circle").count(), 2);
    }

    #[test]
    fn columns_stack_their_series_and_name_them() {
        let labels = vec!["w1".to_owned(), "w2".to_owned()];
        let series = vec![("completed".to_owned(), vec![2.0, 0.0]), ("replied".to_owned(), vec![1.0, 3.0])];
        let svg = columns("Ended by week", &labels, &series).into_string();
        // Three non-empty pieces and two legend keys.
        assert_eq!(svg.matches("<rect").count(), 5, "{svg}");
        assert!(svg.contains("<title>w1, replied: 1</title>"), "{svg}");
        assert!(svg.contains(">completed</text>") && svg.contains(">replied</text>"), "{svg}");
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        let svg = bars("Steps", &[("one".into(), 10.0), ("two".into(), 5.0)]).into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains(">10<") && svg.contains(">5<"), "{svg}");
    }
}
