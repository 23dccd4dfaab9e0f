//! Doctor's report as a person reads it in a terminal (colour only where the
//! output is a terminal), or as JSON for scripts.

use std::fmt::Write;

use super::{Report, Status, Step};

/// How to colour the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Yes,
    No,
}

impl Colour {
    /// Colour when stdout is a terminal that takes it: not when piped, not with
    /// `NO_COLOR` set, not on a `dumb` terminal.
    pub fn detect() -> Colour {
        use std::io::IsTerminal;
        let terminal = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if terminal && !no_color && !dumb {
            Colour::Yes
        } else {
            Colour::No
        }
    }
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";

fn label(status: Status) -> (&'static str, &'static str) {
    match status {
        Status::Pass => ("PASS", "\x1b[32m"),
        Status::Info => ("INFO", "\x1b[36m"),
        Status::Warn => ("WARN", "\x1b[33m"),
        Status::Fail => ("FAIL", "\x1b[1;31m"),
        Status::Skip => ("SKIP", DIM),
    }
}

/// Control characters from the network are never written to a terminal.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The report as text.
pub fn text(report: &Report, colour: Colour) -> String {
    let paint = |code: &str, s: &str| match colour {
        Colour::Yes if !s.is_empty() => format!("{code}{s}{RESET}"),
        _ => s.to_string(),
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}",
        paint(BOLD, "imagegate doctor"),
        clean(&report.image)
    );
    let _ = writeln!(
        out,
        "{}",
        paint(
            DIM,
            &format!(
                "each network step stops after {} s, the whole run after {} s",
                report.step_timeout_seconds, report.deadline_seconds
            )
        )
    );
    let _ = writeln!(out);
    let width = report.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for step in &report.steps {
        write_step(&mut out, step, width, &paint);
    }
    let _ = writeln!(out);
    match report.failure() {
        None if report.pullable => {
            let _ = writeln!(out, "{}", paint("\x1b[1;32m", "The image can be pulled."));
        }
        None => {
            let _ = writeln!(
                out,
                "{}",
                paint(
                    "\x1b[1;31m",
                    "Not every step could run before the deadline: the pull is not shown to work."
                )
            );
        }
        Some(step) => {
            let _ = writeln!(
                out,
                "{} {}",
                paint("\x1b[1;31m", "The image cannot be pulled:"),
                clean(&format!("{} (step {}).", step.summary, step.name))
            );
        }
    }
    out
}

fn write_step(out: &mut String, step: &Step, width: usize, paint: &dyn Fn(&str, &str) -> String) {
    let (word, code) = label(step.status);
    let time = if step.status == Status::Skip || step.duration_ms == 0 {
        String::new()
    } else {
        format!(" ({} ms)", step.duration_ms)
    };
    let _ = writeln!(
        out,
        "{}  {:width$}  {}{}",
        paint(code, word),
        step.name,
        clean(&step.summary),
        paint(DIM, &time),
    );
    let indent = " ".repeat(width + 8);
    if let Some(cause) = &step.cause {
        let _ = writeln!(out, "{indent}{} {}", paint(BOLD, "cause:"), clean(cause));
    }
    if let Some(fix) = &step.fix {
        let _ = writeln!(out, "{indent}{}   {}", paint(BOLD, "fix:"), clean(fix));
    }
    for d in &step.details {
        let _ = writeln!(out, "{indent}{}", paint(DIM, &clean(d)));
    }
}

/// The report as JSON.
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut fail = Step::new("manifest HEAD", Status::Fail, "manifest unknown");
        fail.cause = Some("r.example.com has no r.example.com/app:v2\x1b[31m".into());
        fail.fix = Some("check the tag".into());
        fail.duration_ms = 12;
        Report {
            image: "r.example.com/app:v2".into(),
            pullable: false,
            step_timeout_seconds: 3.0,
            deadline_seconds: 10.0,
            steps: vec![
                Step::new("reference", Status::Pass, "ok"),
                fail,
                Step::new(
                    "platforms",
                    Status::Skip,
                    "not run: the manifest HEAD failed",
                ),
            ],
        }
    }

    #[test]
    fn plain_text_has_no_escape_codes_and_colour_has_them() {
        let plain = text(&report(), Colour::No);
        assert!(!plain.contains('\x1b'), "{plain}");
        assert!(
            plain.contains("FAIL  manifest HEAD  manifest unknown (12 ms)"),
            "{plain}"
        );
        assert!(
            plain.contains("cause: r.example.com has no r.example.com/app:v2 "),
            "{plain}"
        );
        assert!(plain.contains("fix:   check the tag"), "{plain}");
        assert!(
            plain.contains("SKIP  platforms      not run: the manifest HEAD failed"),
            "{plain}"
        );
        assert!(
            plain.ends_with("The image cannot be pulled: manifest unknown (step manifest HEAD).\n"),
            "{plain}"
        );
        let coloured = text(&report(), Colour::Yes);
        assert!(coloured.contains("\x1b[1;31mFAIL\x1b[0m"), "{coloured:?}");
        // Escape codes from the network are not passed through.
        assert!(!coloured.contains("v2\x1b[31m"), "{coloured:?}");
        let json: serde_json::Value = serde_json::from_str(&json(&report())).unwrap();
        assert_eq!(json["pullable"], false);
        assert_eq!(json["steps"][1]["status"], "fail");
        assert_eq!(json["steps"][1]["durationMs"], 12);
    }
}
