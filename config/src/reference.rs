//! The configuration reference as Markdown, generated from the descriptors (`docs/config.md`).

use crate::setting::Describe;
use std::fmt::Write;

/// One Markdown table of `settings`: key (and flag), type, default, range, CRD field, doc.
pub fn markdown(settings: &[&dyn Describe]) -> String {
    let mut out = String::from(
        "| key | type | default | range | `StreamBatchApp` field | meaning |\n|---|---|---|---|---|---|\n",
    );
    for d in settings {
        let m = d.meta();
        let key = match (m.set, m.flag) {
            (true, Some(flag)) => format!("`{}` (`{flag}`)", m.key),
            (true, None) => format!("`{}`", m.key),
            (false, _) => format!("`{}` (flag)", m.key),
        };
        let crd = m.crd.map(|c| format!("`{c}`")).unwrap_or_default();
        let live = if m.live { " Applied live." } else { "" };
        let cell = |s: String| {
            if s.is_empty() {
                "—".to_string()
            } else {
                s.replace('|', "\\|")
            }
        };
        let _ = writeln!(
            out,
            "| {key} | {} | {} | {} | {} | {}{live} |",
            cell(d.type_text()),
            cell(d.default_text()),
            cell(d.range_text()),
            cell(crd),
            m.doc.replace('|', "\\|"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;

    #[test]
    fn every_engine_setting_has_a_row() {
        let md = markdown(keys::ENGINE);
        assert_eq!(md.lines().count(), keys::ENGINE.len() + 2);
        assert!(md.contains(
            "| `scheduler.quantum_ms` | integer (ms) | 1000 | 1 – 3600000 | `spec.scheduling.quantumMs` |"
        ));
        assert!(md.contains("| `scheduler.policy` (`--policy`) | one of: neptune, fifo, fair, kill, static | neptune |"));
        assert!(
            md.contains("| `--memory` (flag) | bytes (quantity: 512Mi, 2Gi) | 1Gi | 16Mi – 1Ti |")
        );
    }
}
