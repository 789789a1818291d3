//! What one origin kind's run measured, and the table printed from it.
use super::WARM_ROUNDS;

pub(crate) struct Side {
    pub(crate) scan_proxy_bytes: u64,
    pub(crate) scan_secs: f64,
    pub(crate) tagged: u64,
    pub(crate) ttfb_head_ms: f64,
    pub(crate) ttfb_mid_ms: f64,
    pub(crate) cold_mbs: f64,
    pub(crate) warm_mbs: f64,
}

pub(crate) struct Results {
    pub(crate) kind: &'static str,
    pub(crate) musicfs: Side,
    pub(crate) rclone: Side,
    /// Proxy bytes for musicfs's own background scan, then for the tag reader.
    pub(crate) musicfs_scan_part: u64,
    pub(crate) musicfs_reader_part: u64,
    /// The origin's counters: bytes_read after the scan and after the
    /// reader; scan_bytes and scan_files.
    pub(crate) origin_after_scan: u64,
    pub(crate) origin_after_reader: u64,
    pub(crate) origin_scan: (u64, u64),
    pub(crate) native_mbs: f64,
    pub(crate) warm_musicfs_ratio: f64,
    pub(crate) warm_rclone_ratio: f64,
    pub(crate) warm_passthrough_opens: i64,
    pub(crate) mount_secs: f64,
    pub(crate) ttfb_files: usize,
    pub(crate) files: u64,
}

pub(crate) fn mb(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

pub(crate) fn print_table(r: &Results) {
    let (m, c) = (&r.musicfs, &r.rclone);
    let rows: Vec<[String; 5]> = vec![
        [
            "tag scan: bytes from server (proxy)".into(),
            mb(m.scan_proxy_bytes),
            mb(c.scan_proxy_bytes),
            format!(
                "{:.4}",
                m.scan_proxy_bytes as f64 / c.scan_proxy_bytes.max(1) as f64
            ),
            "≤ 0.10".into(),
        ],
        [
            "  musicfs: own scan | tag reader (proxy)".into(),
            format!(
                "{} | {}",
                mb(r.musicfs_scan_part),
                mb(r.musicfs_reader_part)
            ),
            "".into(),
            "".into(),
            "".into(),
        ],
        [
            "  musicfs: origin bytes_read scan | reader".into(),
            format!(
                "{} | {}",
                mb(r.origin_after_scan),
                mb(r.origin_after_reader - r.origin_after_scan)
            ),
            "".into(),
            "".into(),
            "".into(),
        ],
        [
            "  musicfs: scan_bytes / scan_files".into(),
            format!(
                "{} / {} ({} per track)",
                mb(r.origin_scan.0),
                r.origin_scan.1,
                mb(r.origin_scan.0.checked_div(r.origin_scan.1).unwrap_or(0))
            ),
            "".into(),
            "".into(),
            "".into(),
        ],
        [
            format!("tag scan: files with tags (of {})", r.files),
            m.tagged.to_string(),
            c.tagged.to_string(),
            "".into(),
            "".into(),
        ],
        [
            "tag scan: seconds (musicfs: scan wait + reader)".into(),
            format!("{:.2}", m.scan_secs),
            format!("{:.2}", c.scan_secs),
            format!("{:.2}", m.scan_secs / c.scan_secs),
            "—".into(),
        ],
        [
            format!("time to first byte, head, ms (median of {})", r.ttfb_files),
            format!("{:.2}", m.ttfb_head_ms),
            format!("{:.2}", c.ttfb_head_ms),
            format!("{:.2}", m.ttfb_head_ms / c.ttfb_head_ms),
            "—".into(),
        ],
        [
            format!(
                "time to first byte, mid-file, ms (median of {})",
                r.ttfb_files
            ),
            format!("{:.2}", m.ttfb_mid_ms),
            format!("{:.2}", c.ttfb_mid_ms),
            format!("{:.2}", m.ttfb_mid_ms / c.ttfb_mid_ms),
            "—".into(),
        ],
        [
            "cold sequential read, MB/s".into(),
            format!("{:.1}", m.cold_mbs),
            format!("{:.1}", c.cold_mbs),
            format!("{:.2}", m.cold_mbs / c.cold_mbs),
            "—".into(),
        ],
        [
            format!("warm read, MB/s (native {:.1})", r.native_mbs),
            format!("{:.1}", m.warm_mbs),
            format!("{:.1}", c.warm_mbs),
            format!("{:.2}", m.warm_mbs / c.warm_mbs),
            "—".into(),
        ],
        [
            format!("warm read ÷ native (median of {WARM_ROUNDS})"),
            format!("{:.2}", r.warm_musicfs_ratio),
            format!("{:.2}", r.warm_rclone_ratio),
            format!("{:.2}", r.warm_musicfs_ratio / r.warm_rclone_ratio),
            "musicfs ≥ 0.90".into(),
        ],
    ];
    let header = ["measure", "musicfs", "rclone", "ratio m/r", "goal"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    println!(
        "\n== {} (musicfs mount took {:.2} s; warm reads through passthrough: {} of {WARM_ROUNDS})",
        r.kind, r.mount_secs, r.warm_passthrough_opens
    );
    line(header);
    println!("|{}|", widths.map(|w| "-".repeat(w + 2)).join("|"));
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
}
