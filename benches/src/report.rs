//! Writing results into `RESULTS.md`: each suite owns a section between markers and rewrites
//! only that, so the hand-written notes around them survive every run.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// `benches/RESULTS.md`.
pub fn results_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("RESULTS.md")
}

/// Replaces the text between `<!-- BEGIN name -->` and `<!-- END name -->` in `path` (appending
/// the section if the markers are missing).
pub fn replace_section(path: &Path, name: &str, body: &str) -> io::Result<()> {
    let begin = format!("<!-- BEGIN {name} -->");
    let end = format!("<!-- END {name} -->");
    let old = fs::read_to_string(path).unwrap_or_default();
    let section = format!("{begin}\n{}\n{end}", body.trim_end());
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{section}{}", &old[..b], &old[e + end.len()..]),
        _ => format!("{}\n\n{section}\n", old.trim_end()),
    };
    fs::write(path, new)
}

/// The current UTC date and time (`date -u`), for the record.
pub fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown date".to_owned(), |s| s.trim().to_owned())
}

/// A Markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), header.iter().map(|_| "---|").collect::<String>());
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// `1.23×` or `–` when either side is missing.
pub fn ratio(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_owned(),
    }
}

/// The median of some values (`None` if empty).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) { (v[mid - 1] + v[mid]) / 2.0 } else { v[mid] })
}

/// A rate in engineering form: `812`, `81.2 k`, `8.12 M`.
pub fn rate(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// One horizontal bar group of an SVG chart.
pub struct BarGroup {
    /// The group's label.
    pub label: String,
    /// (series index, value), value as a fraction of the reference (1.0 = the ceiling).
    pub bars: Vec<(usize, f64)>,
}

/// A horizontal grouped bar chart (values relative to a reference line at 1.0), as SVG.
pub fn svg_bars(title: &str, series: &[&str], groups: &[BarGroup]) -> String {
    const COLOURS: [&str; 5] = ["#1f77b4", "#7f7f7f", "#2ca02c", "#ff7f0e", "#d62728"];
    let bar_h = 7.0;
    let label_w = 190.0;
    let plot_w = 520.0;
    let max = groups.iter().flat_map(|g| g.bars.iter().map(|b| b.1)).fold(1.2f64, f64::max).min(3.0);
    let scale = plot_w / max;
    let group_h = |g: &BarGroup| g.bars.len().max(1) as f64 * bar_h + 8.0;
    let height = 60.0 + groups.iter().map(group_h).sum::<f64>() + 20.0 * series.len() as f64;
    let width = label_w + plot_w + 60.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height:.0}\" \
         font-family=\"sans-serif\" font-size=\"10\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"16\" font-size=\"13\">{title}</text>\n"
    );
    let mut y = 30.0;
    for group in groups {
        let h = group_h(group);
        svg.push_str(&format!(
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            label_w - 6.0,
            y + h / 2.0,
            group.label
        ));
        for (i, (s, value)) in group.bars.iter().enumerate() {
            let w = (value.min(max) * scale).max(0.5);
            svg.push_str(&format!(
                "<rect x=\"{label_w}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} {:.2}</title></rect>\n",
                y + i as f64 * bar_h,
                bar_h - 1.0,
                COLOURS[s % COLOURS.len()],
                series[*s],
                value
            ));
        }
        y += h;
    }
    let x1 = label_w + scale;
    svg.push_str(&format!(
        "<line x1=\"{x1:.1}\" y1=\"26\" x2=\"{x1:.1}\" y2=\"{y:.0}\" stroke=\"black\" stroke-dasharray=\"4 3\"/>\n\
         <text x=\"{x1:.1}\" y=\"{:.0}\" text-anchor=\"middle\">1.0 = raw TCP</text>\n",
        y + 12.0
    ));
    for (s, name) in series.iter().enumerate() {
        let ly = y + 30.0 + s as f64 * 16.0;
        svg.push_str(&format!(
            "<rect x=\"{label_w}\" y=\"{:.0}\" width=\"12\" height=\"10\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{:.0}\">{name}</text>\n",
            ly - 9.0,
            COLOURS[s % COLOURS.len()],
            label_w + 18.0,
            ly
        ));
    }
    svg.push_str("</svg>\n");
    svg
}
