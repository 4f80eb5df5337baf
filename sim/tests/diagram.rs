//! The Lamport diagram and `trace --record` as a reader meets them: well-formed, complete,
//! deterministic, and honest about what they refuse.

use idempo_sim::events::{SimEvent, Timed};
use idempo_sim::trace::Trace;
use idempo_sim::{SimConfig, Simulation, diagram, record_trace};

/// A small lossy run: two producers, one partition, twelve records in batches of two.
fn small(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        producers: 2,
        partitions: 1,
        records: 12,
        batch_records: 2,
        ack_loss: 0.3,
        request_loss: 0.1,
        ..SimConfig::default()
    }
}

fn events(config: &SimConfig) -> Vec<Timed> {
    let sim = Simulation::new(config.clone(), Some(Trace::collecting())).expect("a valid config");
    let (_, trace) = sim.run();
    trace.expect("a trace was given").events().to_vec()
}

fn has_lost_ack(events: &[Timed]) -> bool {
    events
        .iter()
        .any(|e| matches!(e.event, SimEvent::ResponseSent { lost: Some(_), .. }))
}

fn has_duplicate(events: &[Timed]) -> bool {
    events
        .iter()
        .any(|e| matches!(&e.event, SimEvent::Verdict(v) if v.outcome.is_duplicate()))
}

/// The first seed whose small run loses an ack and recognises a retry as a duplicate.
fn lossy_run() -> (SimConfig, Vec<Timed>) {
    for seed in 1..200 {
        let config = small(seed);
        let events = events(&config);
        if has_lost_ack(&events) && has_duplicate(&events) {
            println!("seed {seed}");
            return (config, events);
        }
    }
    panic!("no seed in 1..200 loses an ack and deduplicates its retry");
}

/// Checks that every tag is closed in order and every `&` starts an entity; returns the
/// number of elements.
fn assert_well_formed(svg: &str) -> usize {
    let mut stack: Vec<&str> = Vec::new();
    let mut elements = 0;
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        assert_entities(text);
        let close = rest[open..].find('>').expect("every tag ends") + open;
        let tag = &rest[open + 1..close];
        rest = &rest[close + 1..];
        if tag.starts_with('!') || tag.starts_with('?') {
            continue;
        }
        assert!(!tag.contains('<'), "a tag contains `<`: {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            let top = stack
                .pop()
                .unwrap_or_else(|| panic!("`</{name}>` closes nothing"));
            assert_eq!(top, name.trim(), "`</{name}>` closes `<{top}>`");
            continue;
        }
        elements += 1;
        let name = tag
            .split([' ', '\n', '/'])
            .next()
            .expect("a tag has a name");
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed tags: {stack:?}");
    elements
}

fn assert_entities(text: &str) {
    for (at, _) in text.match_indices('&') {
        let entity = &text[at..text.len().min(at + 6)];
        assert!(
            ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                .iter()
                .any(|e| entity.starts_with(e)),
            "a bare `&` in text: {entity}"
        );
    }
}

/// The `<g>` groups of the picture whose hover title contains `needle`.
fn groups_titled<'a>(svg: &'a str, needle: &str) -> Vec<&'a str> {
    svg.split("<g><title>")
        .skip(1)
        .map(|g| g.split("</g>").next().expect("a group"))
        .filter(|g| {
            g.split("</title>")
                .next()
                .is_some_and(|t| t.contains(needle))
        })
        .collect()
}

#[test]
fn svg_of_a_small_lossy_run_is_well_formed() {
    let (config, events) = lossy_run();
    let svg = diagram::svg(&config, &events).expect("a small run is drawn");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_eq!(svg.matches("<svg").count(), 1);
    assert_eq!(svg.matches("</svg>").count(), 1);
    assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    assert!(assert_well_formed(&svg) > events.len());
}

#[test]
fn svg_has_one_lane_per_producer_and_one_for_the_broker() {
    let (config, events) = lossy_run();
    let svg = diagram::svg(&config, &events).expect("drawn");
    for lane in ["P0", "P1", "broker"] {
        let name = format!("class=\"lanename\">{lane}</text>");
        assert_eq!(svg.matches(&name).count(), 2, "lane {lane}, top and bottom");
    }
    assert!(!svg.contains("class=\"lanename\">P2</text>"));
    assert_eq!(svg.matches("class=\"lane\"").count(), 3);
}

#[test]
fn lost_ack_is_an_arrow_from_the_broker_ending_in_a_cross() {
    let (config, events) = lossy_run();
    let svg = diagram::svg(&config, &events).expect("drawn");
    let lost = groups_titled(&svg, "(lost ack)");
    assert!(!lost.is_empty(), "no group for the lost ack");
    assert!(
        lost.iter()
            .any(|g| g.contains("class=\"lost\"") && g.contains("class=\"cross\"")),
        "a lost ack is drawn as a red arrow ending in an X"
    );
}

#[test]
fn duplicate_verdict_is_labelled_beside_the_broker_with_its_window() {
    let (config, events) = lossy_run();
    let svg = diagram::svg(&config, &events).expect("drawn");
    let duplicates = groups_titled(&svg, "duplicate of the batch at");
    assert!(!duplicates.is_empty());
    for g in duplicates {
        assert!(
            g.contains("class=\"duplicate\">"),
            "coloured as a duplicate: {g}"
        );
        assert!(g.contains("DUPLICATE"), "labelled DUPLICATE: {g}");
        assert!(
            g.contains("wbox hit"),
            "the matched window box is highlighted: {g}"
        );
        assert!(g.contains("window as the broker saw it"), "{g}");
    }
}

#[test]
fn same_events_draw_identical_bytes() {
    let (config, events) = lossy_run();
    let again = self::events(&config);
    assert_eq!(
        diagram::svg(&config, &events),
        diagram::svg(&config, &again)
    );
    assert_eq!(
        diagram::html(&config, &events),
        diagram::html(&config, &again)
    );
}

#[test]
fn a_run_over_the_limit_is_refused_with_a_message() {
    let config = SimConfig {
        producers: 1,
        partitions: 1,
        records: 2_000,
        ..SimConfig::default()
    };
    let events = events(&config);
    assert!(events.len() > diagram::EVENTS_MAX);
    let refusal = diagram::svg(&config, &events).expect_err("too many events to draw");
    assert_eq!(
        refusal,
        diagram::DiagramError::TooManyEvents {
            events: events.len()
        }
    );
    let text = refusal.to_string();
    assert!(text.contains(&format!("{} events", events.len())), "{text}");
    assert!(text.contains("--records 30 --producers 1"), "{text}");
    assert_eq!(diagram::html(&config, &events), Err(refusal));
}

#[test]
fn text_that_looks_like_markup_is_escaped() {
    assert_eq!(
        diagram::escape("a<b & \"c\" > 'd'"),
        "a&lt;b &amp; &quot;c&quot; &gt; &#39;d&#39;"
    );
}

#[test]
fn html_page_embeds_the_svg_a_legend_and_the_replay_command() {
    let (config, events) = lossy_run();
    let page = diagram::html(&config, &events).expect("drawn");
    let svg = diagram::svg(&config, &events).expect("drawn");
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains(&svg));
    assert!(page.contains("class=\"legend\""));
    assert!(page.contains(&diagram::escape(&config.replay_command("run"))));
    assert_well_formed(page.trim_start_matches("<!DOCTYPE html>"));
}

/// A run in which some batch's ack is lost and its retry is recognised as a duplicate; the
/// producer and the first record of that batch.
fn lost_ack_then_duplicate() -> (SimConfig, Vec<Timed>, u32, u64) {
    let config = SimConfig {
        producers: 1,
        partitions: 1,
        records: 30,
        ack_loss: 0.3,
        ..SimConfig::default()
    };
    for seed in 1..200 {
        let config = SimConfig {
            seed,
            ..config.clone()
        };
        let events = events(&config);
        let lost = events
            .iter()
            .position(|e| matches!(e.event, SimEvent::ResponseSent { lost: Some(_), .. }));
        let Some(lost) = lost else { continue };
        let Some(SimEvent::Verdict(v)) = events[..lost]
            .iter()
            .rev()
            .map(|e| &e.event)
            .find(|e| matches!(e, SimEvent::Verdict(_)))
        else {
            continue;
        };
        let Some(batch) = v.batch.filter(|_| v.outcome.is_appended()) else {
            continue;
        };
        let deduplicated = events[lost..].iter().any(|e| {
            matches!(&e.event, SimEvent::Verdict(d) if d.batch == Some(batch) && d.outcome.is_duplicate())
        });
        if deduplicated {
            println!("seed {seed}, batch {batch}");
            return (config.clone(), events, 0, batch * 10 + 7);
        }
    }
    panic!("no seed in 1..200 loses an ack and deduplicates its retry");
}

#[test]
fn follow_shows_a_lost_ack_the_retry_recognised_as_duplicate_and_the_final_offset() {
    let (config, events, producer, record) = lost_ack_then_duplicate();
    let text = record_trace::follow(&config, &events, producer, record).expect("in range");
    println!("{text}");
    let batch = record / 10;
    assert!(text.starts_with(&format!(
        "record {record} of producer 0 is in batch {batch} (records {}..{}), partition 0",
        batch * 10,
        batch * 10 + 9
    )));
    let appended = text.find("broker    p0 appended").expect("the first write");
    let lost = text.find("(lost ack)").expect("the lost ack");
    let duplicate = text
        .find("broker    p0 duplicate")
        .expect("the retry deduplicated");
    assert!(
        appended < lost && lost < duplicate,
        "in this order:\n{text}"
    );
    assert!(text.contains("window seen: "));
    assert!(text.contains(&format!("record {record} is sequence {record}")));
    let last = text.lines().last().expect("a final line");
    assert!(
        last.starts_with(&format!("final: record {record} is at offset ")),
        "{last}"
    );
}

#[test]
fn follow_refuses_a_record_or_producer_out_of_range_with_the_range() {
    let config = small(1);
    let events = events(&config);
    let record = record_trace::follow(&config, &events, 0, 12)
        .expect_err("12 records: 0..=11")
        .to_string();
    assert!(record.contains("record 12 is out of range"), "{record}");
    assert!(record.contains("0..=11"), "{record}");
    let producer = record_trace::follow(&config, &events, 2, 0)
        .expect_err("2 producers")
        .to_string();
    assert!(
        producer.contains("producer 2 is out of range"),
        "{producer}"
    );
    assert!(producer.contains("0..=1"), "{producer}");
}
