//! A latency-by-percentile chart in SVG, drawn like HdrHistogram's plotter: the percentile
//! axis is log-scaled by 1/(1-p), so 90%, 99%, 99.9%, ... sit at equal distances.
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::hgrm::TICKS_PER_HALF_DISTANCE;
use super::slo::SloTarget;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// The axis never extends past 99.9999%.
const MAX_NINES: u32 = 6;

/// Renders the chart; `slo` targets are drawn as red markers.
pub fn render(hist: &Histogram<u64>, title: &str, slo: &[SloTarget]) -> String {
    let nines = axis_nines(hist.len());
    let max_ns = slo
        .iter()
        .map(|t| t.limit_ns)
        .chain(std::iter::once(hist.max()))
        .max()
        .unwrap_or(0);
    let y_max_ms = nice_ceiling(max_ns as f64 / 1e6);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x_of = |q: f64| {
        let q = q.min(1.0 - 10f64.powi(-(nines as i32)));
        LEFT + plot_w * (-(1.0 - q).log10()) / nines as f64
    };
    let y_of = |ns: f64| TOP + plot_h * (1.0 - (ns / 1e6) / y_max_ms);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        escape(title)
    );
    write_axes(&mut out, nines, y_max_ms, &x_of);
    write_curve(&mut out, hist, &x_of, &y_of);
    for target in slo {
        let (x, y) = (
            x_of(target.percentile / 100.0),
            y_of(target.limit_ns as f64),
        );
        let _ = writeln!(
            out,
            r#"<path d="M {:.1} {:.1} L {:.1} {:.1} M {:.1} {:.1} L {:.1} {:.1}" stroke="red" stroke-width="2"/><text x="{:.1}" y="{:.1}" fill="red">SLO {}</text>"#,
            x - 5.0,
            y - 5.0,
            x + 5.0,
            y + 5.0,
            x - 5.0,
            y + 5.0,
            x + 5.0,
            y - 5.0,
            x + 8.0,
            y - 6.0,
            escape(&target.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// How many nines the percentile axis shows: enough for the sample count, at least two.
fn axis_nines(count: u64) -> u32 {
    let mut nines = 2;
    while nines < MAX_NINES && 10u64.pow(nines) < count {
        nines += 1;
    }
    nines
}

/// 1, 2 or 5 times a power of ten, at or above `value` (milliseconds).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&v| v >= value)
        .unwrap_or(10.0 * power)
}

fn write_axes(out: &mut String, nines: u32, y_max_ms: f64, x_of: &dyn Fn(f64) -> f64) {
    let (bottom, right) = (HEIGHT - BOTTOM, WIDTH - RIGHT);
    let _ = writeln!(
        out,
        r#"<path d="M {LEFT} {TOP} L {LEFT} {bottom} L {right} {bottom}" stroke="black" fill="none"/>"#
    );
    for n in 0..=nines {
        let q = 1.0 - 10f64.powi(-(n as i32));
        let label = match n {
            0 => "0%".to_string(),
            _ => format!("{}%", trim_float(q * 100.0, n as usize)),
        };
        let x = x_of(q);
        let _ = writeln!(
            out,
            r##"<path d="M {x:.1} {TOP} L {x:.1} {bottom}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            bottom + 18.0
        );
    }
    for i in 0..=5 {
        let ms = y_max_ms * i as f64 / 5.0;
        let y = TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - i as f64 / 5.0);
        let _ = writeln!(
            out,
            r##"<path d="M {LEFT} {y:.1} L {right} {y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            y + 4.0,
            trim_float(ms, 3)
        );
    }
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">Percentile</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 15.0
    );
    let _ = writeln!(
        out,
        r#"<text x="18" y="{:.1}" text-anchor="middle" transform="rotate(-90 18 {:.1})">Latency (milliseconds)</text>"#,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0
    );
}

fn write_curve(
    out: &mut String,
    hist: &Histogram<u64>,
    x_of: &dyn Fn(f64) -> f64,
    y_of: &dyn Fn(f64) -> f64,
) {
    let mut d = String::new();
    if !hist.is_empty() {
        for step in hist.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            let value = hist
                .highest_equivalent(step.value_iterated_to())
                .min(hist.max());
            let cmd = if d.is_empty() { 'M' } else { 'L' };
            let _ = write!(
                d,
                "{cmd} {:.1} {:.1} ",
                x_of(step.quantile_iterated_to()),
                y_of(value as f64)
            );
        }
    } else {
        let _ = write!(d, "M {LEFT} {} ", HEIGHT - BOTTOM);
    }
    let _ = writeln!(
        out,
        r##"<path d="{}" stroke="#1f77b4" stroke-width="2" fill="none"/>"##,
        d.trim_end()
    );
}

fn trim_float(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
