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

// ---------------------------------------------------------------------------------------------
// A replicated run's diagram: a lane per broker, each request on its broker's lane, the
// leaders starred from the start and the leader's high watermark.

/// A small replicated run: three brokers, RF 3, two partitions (led by different brokers),
/// and a leader kill, so that leadership moves during the run.
fn cluster_run(seed: u64) -> (SimConfig, Vec<Timed>) {
    let config = SimConfig {
        seed,
        producers: 1,
        partitions: 2,
        records: 12,
        batch_records: 2,
        brokers: 3,
        replication_factor: 3,
        min_insync_replicas: 2,
        leader_kills: 1,
        broker_session_timeout_ms: 2_000,
        replica_lag_time_max_ms: 2_000,
        ..SimConfig::default()
    };
    let events = events(&config);
    (config, events)
}

/// The x of the lane named `name` (its label above the lane).
fn lane_x(svg: &str, name: &str) -> i64 {
    let label = format!("class=\"lanename\">{name}</text>");
    let at = svg.find(&label).unwrap_or_else(|| panic!("no lane {name}"));
    let start = svg[..at].rfind("<text x=\"").expect("a text element") + "<text x=\"".len();
    number_at(&svg[start..])
}

/// The integer at the start of `text`.
fn number_at(text: &str) -> i64 {
    let digits: String = text
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().expect("a number")
}

/// The value of attribute `name` in the first element of `group` that has it.
fn attribute(group: &str, name: &str) -> i64 {
    let key = format!(" {name}=\"");
    let at = group
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {group}"))
        + key.len();
    number_at(&group[at..])
}

/// The hover title of a group (its first line).
fn title_of(group: &str) -> &str {
    group.split("</title>").next().expect("a title")
}

#[test]
fn a_replicated_run_has_a_lane_per_broker_and_no_shared_broker_lane() {
    let (config, events) = cluster_run(1);
    let svg = diagram::svg(&config, &events).expect("drawn");
    for lane in ["P0", "B0", "B1", "B2"] {
        let name = format!("class=\"lanename\">{lane}</text>");
        assert_eq!(svg.matches(&name).count(), 2, "lane {lane}, top and bottom");
    }
    for gone in ["leaders", "broker", "B3"] {
        assert!(
            !svg.contains(&format!("class=\"lanename\">{gone}</text>")),
            "{gone}"
        );
    }
    assert_eq!(svg.matches("class=\"lane\"").count(), 4);
    assert!(lane_x(&svg, "P0") < lane_x(&svg, "B0"));
    assert!(lane_x(&svg, "B0") < lane_x(&svg, "B1") && lane_x(&svg, "B1") < lane_x(&svg, "B2"));
    assert!(svg.contains("3 brokers, replication factor 3, acks all, min.insync.replicas 2"));
}

/// Property: every election, the controller's first ones at 0 ms included, is a ★ with the
/// partition and the leader epoch on the new leader's own lane; and every partition has one
/// at 0 ms.
#[test]
fn every_leader_is_starred_on_its_own_lane_from_the_start() {
    for seed in 1..6 {
        let (config, events) = cluster_run(seed);
        let svg = diagram::svg(&config, &events).expect("drawn");
        let mut first = Vec::new();
        let mut stars = 0;
        for e in &events {
            let SimEvent::Cluster(change) = &e.event else {
                continue;
            };
            let idempo_sim::events::ChangeKind::Elected {
                partition,
                leader_epoch,
                ..
            } = change.kind
            else {
                continue;
            };
            if e.at_ms == 0 {
                first.push(partition);
            }
            let title = diagram::escape(&format!("{} ms  P0  {}", e.at_ms, e.event));
            let group = groups_titled(&svg, &title)
                .into_iter()
                .find(|g| title_of(g) == title)
                .unwrap_or_else(|| panic!("seed {seed}: no group for {e}"));
            let star = format!(">★ leader p{partition} e{leader_epoch}");
            assert!(group.contains(&star), "seed {seed}: {group}");
            let x = lane_x(&svg, &format!("B{}", change.broker));
            assert_eq!(
                attribute(group, "cx"),
                x,
                "seed {seed}: the dot on B{}",
                change.broker
            );
            stars += 1;
        }
        first.sort_unstable();
        assert_eq!(first, vec![0, 1], "seed {seed}: both first leaders at 0 ms");
        assert_eq!(svg.matches(">★ leader p").count(), stars, "seed {seed}");
    }
}

/// Property: every verdict, loss at the broker and lost answer sits on the lane of the broker
/// its request went to, and every request's arrow ends there; the run uses more than one
/// broker's lane for its verdicts.
#[test]
fn each_verdict_and_request_sits_on_the_lane_of_the_broker_that_handled_it() {
    let mut lanes_used = std::collections::BTreeSet::new();
    for seed in 1..6 {
        let (config, events) = cluster_run(seed);
        let svg = diagram::svg(&config, &events).expect("drawn");
        let groups: Vec<&str> = svg
            .split("<g><title>")
            .skip(1)
            .map(|g| g.split("</g>").next().expect("a group"))
            .collect();
        let mut verdicts = 0;
        for g in &groups {
            let Some((_, node)) = title_of(g).rsplit_once("\nat broker ") else {
                continue;
            };
            let node: u32 = node.trim().parse().expect("a broker id");
            let x = lane_x(&svg, &format!("B{node}"));
            if title_of(g).contains("  broker: p") {
                verdicts += 1;
                lanes_used.insert(node);
                assert_eq!(
                    attribute(g, "cx"),
                    x,
                    "seed {seed}: a verdict on B{node}: {g}"
                );
            } else if let Some(at) = g.find("<text x=\"") {
                let text_x = number_at(&g[at + "<text x=\"".len()..]);
                assert_eq!(text_x - 8, x, "seed {seed}: on B{node}: {g}");
            }
        }
        assert!(verdicts > 0, "seed {seed}: the run has verdicts");
        for e in &events {
            let SimEvent::RequestSent {
                node: Some(node),
                arrives_at_ms: Some(_),
                ..
            } = &e.event
            else {
                continue;
            };
            let x = lane_x(&svg, &format!("B{node}"));
            let title = diagram::escape(&format!("{} ms  P{}  {}", e.at_ms, e.producer, e.event));
            let arrows: Vec<&&str> = groups
                .iter()
                .filter(|g| title_of(g) == title && g.contains("class=\"req"))
                .collect();
            assert!(!arrows.is_empty(), "seed {seed}: no arrow for {e}");
            assert!(
                arrows.iter().any(|g| g.contains(&format!("x2=\"{x}\""))),
                "seed {seed}: the arrow of {e} ends on B{node}"
            );
        }
    }
    assert!(
        lanes_used.len() >= 2,
        "verdicts on several brokers: {lanes_used:?}"
    );
}

/// Property: a bold `HW pN offset` mark is the high watermark of the partition's leader at
/// that moment, on the leader's lane; a follower's copy of it is labelled as the follower's.
#[test]
fn the_high_watermark_is_marked_on_the_leaders_lane() {
    let mut marked = 0;
    for seed in 1..6 {
        let (config, events) = cluster_run(seed);
        let svg = diagram::svg(&config, &events).expect("drawn");
        let mut leaders = std::collections::HashMap::new();
        for e in &events {
            let SimEvent::Cluster(change) = &e.event else {
                continue;
            };
            use idempo_sim::events::ChangeKind;
            match change.kind {
                ChangeKind::Elected { partition, .. } => {
                    leaders.insert(partition, change.broker);
                }
                ChangeKind::HighWatermark { partition, to, .. } => {
                    let title = diagram::escape(&format!("{} ms  P0  {}", e.at_ms, e.event));
                    let group = groups_titled(&svg, &title)
                        .into_iter()
                        .find(|g| title_of(g) == title)
                        .unwrap_or_else(|| panic!("seed {seed}: no group for {e}"));
                    let x = lane_x(&svg, &format!("B{}", change.broker));
                    assert_eq!(attribute(group, "cx"), x, "seed {seed}: {e}");
                    if leaders.get(&partition) == Some(&change.broker) {
                        marked += 1;
                        let mark = format!("class=\"hw\">HW p{partition} {to}</text>");
                        assert!(group.contains(&mark), "seed {seed}: {group}");
                    } else {
                        let mark = format!(">follower&#39;s HW p{partition} {to}</text>");
                        assert!(group.contains(&mark), "seed {seed}: {group}");
                    }
                }
                _ => {}
            }
        }
    }
    assert!(marked > 0, "some leader's high watermark moved");
}

#[test]
fn a_replicated_runs_page_explains_the_broker_lanes_and_a_one_broker_page_does_not() {
    let (config, events) = cluster_run(1);
    let page = diagram::html(&config, &events).expect("drawn");
    assert!(page.contains("a lane per broker"), "the cluster legend");
    assert!(page.contains("★ leader p0 e3"), "the star explained");
    assert_well_formed(page.trim_start_matches("<!DOCTYPE html>"));
    let (config, events) = lossy_run();
    let page = diagram::html(&config, &events).expect("drawn");
    assert!(!page.contains("a lane per broker"));
    assert!(
        !diagram::svg(&config, &events)
            .expect("drawn")
            .contains("text.hw")
    );
}
