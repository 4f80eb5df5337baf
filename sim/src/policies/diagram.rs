//! One run of `idempo-sim policies` as a Lamport diagram: the client's lane, the server's
//! lane, requests and answers as arrows (a lost one ends in a red ✗ half-way, a discarded
//! one is dashed), and the server's decisions written beside its lane. It is drawn with the
//! primitives and the style sheet of the simulator's own diagrams ([`crate::diagram`]), so
//! it reads the same way: time flows down, one row per event, idle stretches compressed.

use super::model::ms;
use super::run::{Lane, Message, RunResult};
use crate::diagram::{Canvas, STYLE_AND_MARKERS};
use std::collections::BTreeMap;
use std::fmt::Write as _;

const CLIENT_X: i64 = 380;
const SERVER_X: i64 = 780;
const NOTE_X: i64 = 800;
const TOP: i64 = 100;
const ROW_H: i64 = 22;
const WIDTH: i64 = 1700;
/// Characters of a verdict line in the header before it wraps.
const HEADER_CHARS: usize = 150;

/// The SVG of one run, titled `title` (the command that replays it).
pub fn svg(title: &str, r: &RunResult) -> String {
    let rows = Rows::of(r);
    let height = rows.bottom + 40;
    let mut c = Canvas::default();
    let _ = writeln!(
        c.out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"DejaVu Sans, Verdana, sans-serif\" font-size=\"11\">"
    );
    c.out.push_str(STYLE_AND_MARKERS);
    let _ = writeln!(
        c.out,
        "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\" fill=\"#ffffff\"/>"
    );
    c.text(20, 24, "start", "title", title);
    let verdict = format!("verdict: {}: {}", r.verdict, r.reason);
    for (i, part) in wrap(&verdict, HEADER_CHARS).iter().enumerate() {
        c.text(20, 42 + 15 * i as i64, "start", "note", part);
    }
    c.text(CLIENT_X, TOP - 16, "middle", "lanename", "client");
    c.text(SERVER_X, TOP - 16, "middle", "lanename", "server");
    c.arrow(CLIENT_X, TOP - 8, CLIENT_X, height - 20, "lane", None);
    c.arrow(SERVER_X, TOP - 8, SERVER_X, height - 20, "lane", None);
    for (t, y) in &rows.of_time {
        c.text(70, y + 4, "end", "time", &format!("{} ms", ms(*t)));
    }
    for m in &r.messages {
        message(&mut c, &rows, m);
    }
    for (line, &y) in r.lines.iter().zip(&rows.of_line) {
        let class = note_class(&line.text);
        c.open_group(&line.text);
        match line.lane {
            Lane::Server => {
                c.dot(SERVER_X, y, class);
                c.label(NOTE_X, y + 4, "start", class, &line.text);
            }
            Lane::Client => {
                c.dot(CLIENT_X, y, class);
                c.label(CLIENT_X - 10, y + 4, "end", class, &short(&line.text));
            }
        }
        c.close_group();
    }
    c.out.push_str("</svg>\n");
    c.out
}

/// Where everything goes down the page: every moment something happens gets a row, each
/// trace line its own; a message's ends sit on the first row of their moments.
struct Rows {
    of_time: BTreeMap<u64, i64>,
    of_line: Vec<i64>,
    bottom: i64,
}

impl Rows {
    fn of(r: &RunResult) -> Rows {
        let mut times: Vec<u64> = r.lines.iter().map(|l| l.at_ms).collect();
        for m in &r.messages {
            times.push(m.sent_ms);
            times.extend(m.arrived_ms);
        }
        times.sort_unstable();
        times.dedup();
        let mut rows = Rows {
            of_time: BTreeMap::new(),
            of_line: Vec::with_capacity(r.lines.len()),
            bottom: TOP,
        };
        let mut lines = r.lines.iter().peekable();
        for &t in &times {
            rows.of_time.insert(t, rows.bottom);
            let mut first = true;
            while lines.next_if(|l| l.at_ms == t).is_some() {
                if !first {
                    rows.bottom += ROW_H;
                }
                first = false;
                rows.of_line.push(rows.bottom);
            }
            rows.bottom += ROW_H;
        }
        rows
    }

    fn y(&self, t: u64) -> i64 {
        self.of_time.get(&t).copied().unwrap_or(TOP)
    }
}

/// A request or an answer: an arrow, or a ✗ half-way for a lost one.
fn message(c: &mut Canvas, rows: &Rows, m: &Message) {
    let (from, to, class) = if m.request {
        (CLIENT_X, SERVER_X, "req")
    } else {
        (SERVER_X, CLIENT_X, "resp")
    };
    let y1 = rows.y(m.sent_ms);
    c.open_group(&m.label);
    match m.arrived_ms {
        Some(t) => {
            let y2 = rows.y(t);
            let line = if m.discarded { "discarded" } else { class };
            c.arrow(from, y1, to, y2, line, Some(class));
            c.label((from + to) / 2, (y1 + y2) / 2 - 3, "middle", line, &m.label);
        }
        None => {
            let (mid, y) = ((from + to) / 2, y1 + ROW_H / 2);
            c.arrow(from, y1, mid, y, "lost", None);
            c.cross(mid, y);
            c.label(mid, y - 8, "middle", "lost", &format!("{} (lost)", m.label));
        }
    }
    c.close_group();
}

fn note_class(text: &str) -> &'static str {
    if text.contains("applied")
        || text.contains("appended")
        || text.contains("delivered") && !text.contains("not delivered")
        || text.contains("processed and")
    {
        "appended"
    } else if text.contains("replayed")
        || text.contains("DUPLICATE")
        || text.contains("not delivered")
        || text.contains("skipped")
        || text.contains("drops")
    {
        "duplicate"
    } else if text.contains("409")
        || text.contains("422")
        || text.contains("400")
        || text.contains("Mismatch")
        || text.contains("lost")
        || text.contains("restart")
    {
        "reject"
    } else if text.starts_with("no answer") || text.starts_with("discarded") {
        "disconnect"
    } else {
        "req"
    }
}

/// Splits `text` at spaces into lines of at most about `width` characters (two at most; the
/// rest is cut with an ellipsis).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("lines starts with one");
        if !last.is_empty() && last.chars().count() + word.len() + 1 > width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    if lines.len() > 2 {
        lines.truncate(2);
        lines[1].push('…');
    }
    lines
}

fn short(text: &str) -> String {
    if text.chars().count() <= 44 {
        return text.to_string();
    }
    let mut s: String = text.chars().take(43).collect();
    s.push('…');
    s
}
