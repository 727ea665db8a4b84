//! Progress bars on stderr, shown only to a person: hidden with `--json` or when stderr is not
//! a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a bar redraws at most.
const REFRESH_HZ: u8 = 8;

/// A bar over `total` units, bytes or rows. The message shows rows and their rate.
pub fn bar(total: u64, counts_bytes: bool, json: bool) -> ProgressBar {
    let target = if json || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr_with_hz(REFRESH_HZ)
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    let counts = if counts_bytes {
        "{bytes}/{total_bytes}"
    } else {
        "{human_pos}/{human_len} rows"
    };
    let template =
        format!("{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {counts} {{msg}} ETA {{eta}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// "12,345" for 12345.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_separators() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }
}
