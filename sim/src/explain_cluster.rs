//! `explain` in a cluster: the operations after a `cluster` line, run against real brokers
//! and the real controller, each decision printed with the rule that made it.
//!
//! A script's `cluster` line builds `brokers` brokers (each with its own `SimDisk`), a
//! [`Controller`] that places the replicas (§1.29 of docs/KAFKA-RULES.md) and hands out
//! producer id blocks (§1.30), and delivers the initial partition states. From then on:
//!
//! - `produce` goes to the partition's leader (or `broker=N`) with `acks=all|1|0` through
//!   `Broker::handle_from`, the line number as client and correlation id: the answer now,
//!   none (`acks=0`), or a delayed answer (§1.22) printed when a later operation completes it;
//! - `replicate` runs rounds of follower fetches (`follower_fetch_request` →
//!   `replica_fetch` → `on_follower_fetch_response`), then the leaders' AlterPartition
//!   proposals through the controller, until a round changes nothing;
//! - `crash-broker` is a power loss of that broker's disk; its heartbeats stop, and the
//!   controller fences it once `broker.session.timeout.ms` (9 000) has passed since the last
//!   one (§1.26), electing new leaders (§1.27): the script's clock moves on by that wait, in
//!   which the live brokers' timers fire (the simulator's engine does the same);
//!   `restart-broker` registers it again and hands it every partition's state (§1.23);
//! - `advance` moves every live broker's clock: ISR shrinks (§1.20), request timeouts (§1.22);
//! - after every operation each acknowledged batch the current leader no longer holds is
//!   named once as lost, with the limit of the guarantee that explains it.
//!
//! Each operation is one [`Explained`] whose text is the usual first line followed by one
//! indented line per consequence, and whose JSON has an `events` array of the same lines.
//! The controller learns of a failure only through heartbeats, as in Kafka: a script says
//! when a broker dies, and the controller notices when its session expires.

use crate::explain::{
    Explained, Said, base, fetch, produce_json, produce_request_text, recovered_from,
    scripted_batch, text_line,
};
use crate::script::{Acks, ClusterSpec, Election, Op, Produce, Step};
use idempo_broker::{
    Broker, BrokerConfig, BrokerId, ConfigError, Controller, ControllerConfig, ControllerDecision,
    ElectionType, FollowerFetched, IsrChange, LeaderAndIsr, NO_LEADER, ReplicaRole,
    ReplicationEvent,
};
use idempo_protocol::{
    ErrorCode, PartitionProduceData, ProduceRequest, Request, RequestFrame, Response,
};
use serde_json::{Map, Value, json};

/// Rounds `replicate` runs at most when it waits for the cluster to settle.
const MAX_REPLICATE_ROUNDS: u32 = 100;

/// A produce waiting for its delayed answer.
struct Pending {
    line: usize,
    broker: BrokerId,
    partition: i32,
    pid: i64,
    seq: i32,
}

/// What a broker did with one scripted produce, for its answer column.
struct Told {
    line: usize,
    acks: Acks,
    target: BrokerId,
    hw: i64,
    isr: String,
    outcome: String,
}

/// A batch the client was told is written (answered NONE).
struct Acked {
    line: usize,
    acks: Acks,
    partition: i32,
    pid: i64,
    seq: i32,
    lost: bool,
}

/// The consequences of one operation, in order: text lines and their JSON.
#[derive(Default)]
struct Notes {
    lines: Vec<String>,
    json: Vec<Value>,
}

impl Notes {
    fn add(&mut self, event: &str, text: String) {
        self.json.push(json!({"event": event, "text": text}));
        self.lines.push(text);
    }
}

/// The brokers, their controller and what the script's clients are waiting for.
pub(crate) struct Cluster {
    controller: Controller,
    brokers: Vec<Broker>,
    up: Vec<bool>,
    now_ms: i64,
    min_insync_replicas: usize,
    pending: Vec<Pending>,
    acked: Vec<Acked>,
    /// Partitions that have had an unclean election, to name why a batch was lost.
    unclean_partitions: Vec<i32>,
}

fn list(brokers: &[BrokerId]) -> String {
    let ids: Vec<String> = brokers.iter().map(|b| b.to_string()).collect();
    format!("[{}]", ids.join(", "))
}

impl Cluster {
    /// Builds the cluster of a `cluster` line, with `config` for every broker's other
    /// settings, and explains the placement.
    pub(crate) fn build(
        spec: &ClusterSpec,
        config: &BrokerConfig,
        step: &Step,
    ) -> Result<(Cluster, Explained), ConfigError> {
        let controller_config = ControllerConfig {
            brokers: spec.brokers,
            partitions: spec.partitions,
            replication_factor: spec.replication_factor,
            unclean_leader_election: spec.unclean_leader_election,
            ..ControllerConfig::default()
        };
        let mut controller =
            Controller::new(controller_config, 0).expect("the parser validated the cluster");
        let mut brokers = Vec::new();
        for id in 0..spec.brokers {
            let mut broker = Broker::new(BrokerConfig {
                broker_id: id,
                min_insync_replicas: spec.min_insync_replicas,
                replica_lag_time_max_ms: spec.replica_lag_time_max_ms,
                sync_policy: spec.sync.unwrap_or(config.sync_policy),
                ..config.clone()
            })?;
            broker.set_record_windows(true);
            let (first, len) = controller.allocate_producer_ids(id);
            broker.grant_producer_id_block(first, len);
            brokers.push(broker);
        }
        let states: Vec<LeaderAndIsr> = controller.partitions().to_vec();
        for state in &states {
            for broker in &mut brokers {
                broker.apply_leader_and_isr(state);
            }
        }
        let cluster = Cluster {
            controller,
            up: vec![true; brokers.len()],
            brokers,
            now_ms: 0,
            min_insync_replicas: spec.min_insync_replicas,
            pending: Vec::new(),
            acked: Vec::new(),
            unclean_partitions: Vec::new(),
        };
        let sync = crate::config::sync_name(spec.sync.unwrap_or(config.sync_policy));
        Ok((cluster, explain_build(spec, &sync, &states, step)))
    }

    /// Runs one operation of a cluster script.
    pub(crate) fn explain_step(&mut self, step: &Step) -> Explained {
        let mut m = base(step);
        let mut notes = Notes::default();
        let said = match &step.op {
            Op::InitProducer => self.init_producer(&mut m),
            Op::Produce(b) => self.produce(step.line, b, &mut m, &mut notes),
            Op::Advance { ms } => self.advance(*ms, &mut m, &mut notes),
            Op::Fetch {
                partition,
                offset,
                broker,
            } => self.fetch(*partition, *offset, *broker, &mut m),
            Op::CrashBroker { broker } => self.crash_broker(*broker, &mut m, &mut notes),
            Op::RestartBroker { broker } => self.restart_broker(*broker, &mut notes),
            Op::Elect {
                partition,
                election,
            } => self.elect(*partition, *election, &mut notes),
            Op::Replicate { rounds } => self.replicate(*rounds, &mut m, &mut notes),
            Op::Log { broker, partition } => self.log(*broker, *partition),
            Op::Cluster(_) | Op::Restart { .. } | Op::DeleteRecords { .. } => {
                unreachable!("the parser refuses these after the `cluster` line")
            }
        };
        self.note_lost_acks(&mut notes);
        finish(step, said, m, notes)
    }

    fn leader(&self, partition: i32) -> BrokerId {
        self.controller.partition(partition).leader
    }

    fn init_producer(&mut self, m: &mut Map<String, Value>) -> Said {
        let Some(b) = self.up.iter().position(|u| *u) else {
            return Said {
                request: "init-producer".to_string(),
                answer: "no broker is up: nothing answers".to_string(),
            };
        };
        let r = self.brokers[b].init_producer_id();
        m.insert("producer_id".into(), json!(r.producer_id.0));
        m.insert("producer_epoch".into(), json!(r.producer_epoch.0));
        m.insert("broker".into(), json!(b));
        Said {
            request: "init-producer".to_string(),
            answer: format!(
                "producer id {} at epoch {} from broker {b}'s block (the controller hands blocks of 1000, KIP-730, §1.30)",
                r.producer_id, r.producer_epoch
            ),
        }
    }

    fn produce(
        &mut self,
        line: usize,
        b: &Produce,
        m: &mut Map<String, Value>,
        notes: &mut Notes,
    ) -> Said {
        let acks = b.acks.unwrap_or(Acks::All);
        let (batch, bytes) = scripted_batch(b, self.now_ms);
        let target = b.broker.unwrap_or_else(|| self.leader(b.partition));
        let request = format!(
            "{} acks={} -> {}",
            produce_request_text(b, &batch),
            acks.name(),
            if target == NO_LEADER {
                "?".to_string()
            } else {
                format!("b{target}")
            }
        );
        m.insert("acks".into(), json!(acks.name()));
        m.insert("broker".into(), json!(target));
        if target == NO_LEADER {
            m.insert("error".into(), json!("LEADER_NOT_AVAILABLE"));
            return Said {
                request,
                answer: format!(
                    "LEADER_NOT_AVAILABLE (5): p{} is offline, no live replica may lead it (§1.26, §1.27); nothing sent",
                    b.partition
                ),
            };
        }
        if !self.up[target as usize] {
            m.insert("error".into(), json!("NETWORK_EXCEPTION"));
            return Said {
                request,
                answer: format!(
                    "broker {target} is down: the connection is refused, nothing sent (the producer refreshes metadata and retries, §2.12)"
                ),
            };
        }
        let answer = self.send_produce(line, b, acks, target, bytes, m);
        self.drain(notes);
        Said { request, answer }
    }

    /// Sends one scripted batch to live broker `target` and explains its answer (the line
    /// number is the client id and the correlation id, so a delayed answer names it).
    fn send_produce(
        &mut self,
        line: usize,
        b: &Produce,
        acks: Acks,
        target: BrokerId,
        records: bytes::Bytes,
        m: &mut Map<String, Value>,
    ) -> String {
        let frame = RequestFrame {
            correlation_id: i32::try_from(line).unwrap_or(i32::MAX),
            request: Request::Produce(ProduceRequest {
                acks: acks.kafka_value(),
                timeout_ms: b.timeout_ms.unwrap_or(30_000),
                partitions: vec![PartitionProduceData {
                    partition: b.partition,
                    records,
                }],
            }),
        };
        let broker = &mut self.brokers[target as usize];
        let handled = broker.handle_from(line as u64, &frame);
        let outcome = handled
            .outcomes
            .first()
            .expect("one partition in, one outcome out");
        produce_json(m, b.partition, outcome);
        let answered = handled.response.as_ref().map(|r| match &r.response {
            Response::Produce(p) => p.partitions[0].error_code,
            other => unreachable!("a produce request is answered by a produce response: {other:?}"),
        });
        m.insert(
            "response".into(),
            json!(match (&answered, acks) {
                (Some(_), _) => "now",
                (None, Acks::None) => "none",
                (None, _) => "delayed",
            }),
        );
        let told = Told {
            line,
            acks,
            target,
            hw: broker.high_watermark(b.partition).unwrap_or(-1),
            isr: broker
                .replication(b.partition)
                .map(|r| list(r.isr()))
                .unwrap_or_default(),
            outcome: outcome.to_string(),
        };
        self.produce_answer(b, &told, answered)
    }

    /// The answer column of a produce in a cluster; records what the client was told.
    fn produce_answer(&mut self, b: &Produce, told: &Told, answered: Option<ErrorCode>) -> String {
        let (outcome, hw, isr) = (&told.outcome, told.hw, &told.isr);
        match answered {
            Some(ErrorCode::None) => {
                self.acked.push(Acked {
                    line: told.line,
                    acks: told.acks,
                    partition: b.partition,
                    pid: b.pid,
                    seq: b.seq,
                    lost: false,
                });
                let why = match told.acks {
                    Acks::Leader => format!(
                        "acks=1: answered after the leader's own append, whatever the followers hold (HW {hw}, §1.21)"
                    ),
                    _ => format!(
                        "acks=all: answered at once, the HW {hw} already passed it (ISR {isr}, §1.22)"
                    ),
                };
                format!("NONE  {outcome}; {why}")
            }
            Some(code) => {
                let rule = match code {
                    ErrorCode::NotLeaderOrFollower => {
                        " (§1.23: only the leader takes produce; the producer refreshes metadata)"
                    }
                    ErrorCode::NotEnoughReplicas => " (§1.21): nothing appended",
                    _ => "",
                };
                format!("ERROR {outcome}{rule}")
            }
            None if told.acks == Acks::None => format!(
                "-     {outcome}; acks=0: no answer at all, the client does not wait (§1.21)"
            ),
            None => {
                self.pending.push(Pending {
                    line: told.line,
                    broker: told.target,
                    partition: b.partition,
                    pid: b.pid,
                    seq: b.seq,
                });
                format!(
                    "WAIT  {outcome}; acks=all: delayed until the HW (now {hw}) passes it (DelayedProduce, §1.22; ISR {isr})"
                )
            }
        }
    }

    fn advance(&mut self, ms: i64, m: &mut Map<String, Value>, notes: &mut Notes) -> Said {
        self.now_ms = self.now_ms.saturating_add(ms);
        m.insert("now_ms".into(), json!(self.now_ms));
        for b in self.live() {
            for e in self.brokers[b as usize].advance_time(self.now_ms) {
                notes.add(
                    "expired",
                    format!(
                        "broker {b}: producer {} on p{} expired (idle for producer.id.expiration.ms)",
                        e.producer_id, e.partition
                    ),
                );
            }
        }
        self.drain(notes);
        self.isr_changes(notes);
        Said {
            request: format!("advance ms={ms}"),
            answer: format!("clock of every live broker at {} ms", self.now_ms),
        }
    }

    fn fetch(
        &mut self,
        partition: i32,
        offset: i64,
        broker: Option<BrokerId>,
        m: &mut Map<String, Value>,
    ) -> Said {
        let target = broker.unwrap_or_else(|| self.leader(partition));
        let request = format!("fetch p{partition} offset={offset} from b{target}");
        if target == NO_LEADER || !self.up[target as usize] {
            m.insert("error".into(), json!("LEADER_NOT_AVAILABLE"));
            return Said {
                request,
                answer: format!("no live broker to read p{partition} from (§1.26)"),
            };
        }
        let said = fetch(&mut self.brokers[target as usize], partition, offset, m);
        let hw = self.brokers[target as usize]
            .high_watermark(partition)
            .unwrap_or(-1);
        Said {
            request,
            answer: format!(
                "{}; a consumer reads only below the HW {hw} (§1.15)",
                said.answer
            ),
        }
    }

    fn live(&self) -> Vec<BrokerId> {
        (0..self.brokers.len() as i32)
            .filter(|b| self.up[*b as usize])
            .collect()
    }

    /// A power loss of `broker`: its disk keeps what was synced, recovery runs, and the
    /// controller fences it.
    fn crash_broker(
        &mut self,
        broker: BrokerId,
        m: &mut Map<String, Value>,
        notes: &mut Notes,
    ) -> Said {
        let request = format!("crash-broker broker={broker}");
        if !self.up[broker as usize] {
            return Said {
                request,
                answer: format!("broker {broker} is already down"),
            };
        }
        let report = self.brokers[broker as usize].crash(|_file, _unsynced| 0);
        self.up[broker as usize] = false;
        let parts: Vec<String> = report
            .partitions
            .iter()
            .map(|p| {
                format!(
                    "p{} log end {} -> {} ({} unsynced batch(es) lost)",
                    p.partition,
                    p.log_end_offset_before,
                    p.log_end_offset_after(),
                    p.lost_batches.len()
                )
            })
            .collect();
        m.insert("broker".into(), json!(broker));
        m.insert(
            "lost_batches".into(),
            json!(
                report
                    .partitions
                    .iter()
                    .map(|p| json!({"partition": p.partition, "batches": p.lost_batches.len()}))
                    .collect::<Vec<_>>()
            ),
        );
        let recovery = recovered_from(&report);
        let mut lost_answers = Vec::new();
        self.pending.retain(|p| {
            let keep = p.broker != broker;
            if !keep {
                lost_answers.push(p.line);
            }
            keep
        });
        for line in lost_answers {
            notes.add(
                "no_answer",
                format!(
                    "the produce of line {line} gets no answer: its connection to broker {broker} broke (the producer retries with the same sequence, §2.12)"
                ),
            );
        }
        let fenced_at_ms = self.await_fencing(broker, m, notes);
        Said {
            request,
            answer: format!(
                "power loss: {}; recovery from its disk: {recovery}; its heartbeats stop: the controller fences it when its session expires (broker.session.timeout.ms), at {fenced_at_ms} ms (§1.26)",
                parts.join(", ")
            ),
        }
    }

    /// How the controller notices a crash, as in Kafka and in the simulator's engine: the
    /// crashed broker sends no more heartbeats, the live ones still do, and once
    /// `broker.session.timeout.ms` has passed since its last one the controller's session
    /// check fences it (§1.26). The script's clock moves on by that wait, so the live
    /// brokers' timers (ISR shrinks §1.20, produce timeouts §1.22) fire in it first, as they
    /// would in Kafka. Returns the time of the fencing.
    fn await_fencing(
        &mut self,
        broker: BrokerId,
        m: &mut Map<String, Value>,
        notes: &mut Notes,
    ) -> i64 {
        let crashed_at_ms = self.now_ms;
        // Every broker was alive until now: its last heartbeat is this moment.
        for b in self.live().into_iter().chain([broker]) {
            let decisions = self.controller.heartbeat(b, crashed_at_ms);
            self.deliver(&decisions, notes);
        }
        let timeout_ms = self.controller.config().broker_session_timeout_ms;
        let _ = self.advance(timeout_ms.saturating_add(1), m, notes);
        let expiry_ms = self.now_ms;
        for b in self.live() {
            let decisions = self.controller.heartbeat(b, expiry_ms);
            self.deliver(&decisions, notes);
        }
        let decisions = self.controller.tick(expiry_ms);
        self.deliver(&decisions, notes);
        expiry_ms
    }

    /// `broker` comes back: it registers, the controller unfences it (electing it where a
    /// partition was offline waiting for it) and it learns every partition's state.
    fn restart_broker(&mut self, broker: BrokerId, notes: &mut Notes) -> Said {
        let request = format!("restart-broker broker={broker}");
        if self.up[broker as usize] {
            return Said {
                request,
                answer: format!("broker {broker} is already up"),
            };
        }
        self.up[broker as usize] = true;
        let b = &mut self.brokers[broker as usize];
        b.advance_time(self.now_ms);
        let (first, len) = self.controller.allocate_producer_ids(broker);
        b.grant_producer_id_block(first, len);
        let decisions = self.controller.broker_registered(broker, self.now_ms);
        self.deliver(&decisions, notes);
        let states: Vec<LeaderAndIsr> = self.controller.partitions().to_vec();
        for state in states.iter().filter(|s| s.replicas.contains(&broker)) {
            self.brokers[broker as usize].apply_leader_and_isr(state);
            let role = if state.leader == broker {
                "leads".to_string()
            } else if state.leader == NO_LEADER {
                "waits: no leader".to_string()
            } else {
                format!("follows broker {}", state.leader)
            };
            notes.add(
                "role",
                format!(
                    "p{}: broker {broker} {role} at leader epoch {} (§1.23); ISR {}",
                    state.partition,
                    state.leader_epoch,
                    list(&state.isr)
                ),
            );
        }
        self.drain(notes);
        Said {
            request,
            answer: format!(
                "broker {broker} recovered from its disk and registers again; the controller unfences it (§1.25, §1.26)"
            ),
        }
    }

    fn elect(&mut self, partition: i32, election: Election, notes: &mut Notes) -> Said {
        let (kind, election_type) = match election {
            Election::Preferred => ("preferred", ElectionType::Preferred),
            Election::Unclean => ("unclean", ElectionType::Unclean),
        };
        let request = format!("elect p{partition} type={kind}");
        match self.controller.elect_leader(partition, election_type) {
            Ok(decision) => {
                self.deliver(std::slice::from_ref(&decision), notes);
                let why = match election {
                    Election::Preferred => {
                        "the preferred replica (the first in the assignment) is a live ISR member, so it leads again"
                    }
                    Election::Unclean => {
                        "the partition was offline: a leader from the ISR if one is live, else any live replica, whatever unclean.leader.election.enable says"
                    }
                };
                Said {
                    request,
                    answer: format!("{why} (ElectLeaders, KIP-460, §1.27)"),
                }
            }
            Err(e) => Said {
                request,
                answer: format!("refused: {e} (§1.27)"),
            },
        }
    }

    /// Tells every live broker the controller's decisions, printing each.
    fn deliver(&mut self, decisions: &[ControllerDecision], notes: &mut Notes) {
        for d in decisions {
            let unclean = self.controller.config().unclean_leader_election;
            notes.add("controller", describe_decision(d, unclean));
            if let ControllerDecision::Elected {
                partition,
                clean: false,
                ..
            } = d
            {
                self.unclean_partitions.push(*partition);
            }
            if let Some(state) = d.state() {
                for b in self.live() {
                    self.brokers[b as usize].apply_leader_and_isr(state);
                }
            }
        }
        self.drain(notes);
    }

    /// Every leader's AlterPartition proposals, through the controller.
    fn isr_changes(&mut self, notes: &mut Notes) {
        for b in self.live() {
            let alters = self.brokers[b as usize].take_alter_partitions(self.now_ms);
            self.drain(notes);
            for alter in alters {
                match self.controller.alter_partition(&alter) {
                    Ok(state) => {
                        notes.add(
                            "isr_changed",
                            format!(
                                "p{}: the controller accepts broker {b}'s AlterPartition: ISR {} at partition epoch {} (§1.28)",
                                state.partition,
                                list(&state.isr),
                                state.partition_epoch
                            ),
                        );
                        for r in self.live() {
                            self.brokers[r as usize].apply_leader_and_isr(&state);
                        }
                    }
                    Err(e) => {
                        notes.add(
                            "isr_refused",
                            format!(
                                "p{}: the controller refuses broker {b}'s AlterPartition: {e} (§1.28)",
                                alter.partition
                            ),
                        );
                        self.brokers[b as usize].alter_partition_rejected(alter.partition);
                    }
                }
                self.drain(notes);
            }
        }
    }

    /// Prints the brokers' replication events: HW moves, ISR proposals, delayed answers.
    fn drain(&mut self, notes: &mut Notes) {
        for b in self.live() {
            let broker = &mut self.brokers[b as usize];
            let _ = broker.take_completed();
            for event in broker.take_replication_events() {
                if let ReplicationEvent::DelayedProduceCompleted {
                    client,
                    partition,
                    error_code,
                    ..
                } = event
                {
                    self.delayed_answer(b, client as usize, partition, error_code, notes);
                } else if let Some((kind, text)) =
                    describe_event(&self.brokers[b as usize], b, &event)
                {
                    notes.add(kind, text);
                }
            }
        }
    }

    fn delayed_answer(
        &mut self,
        broker: BrokerId,
        line: usize,
        partition: i32,
        code: ErrorCode,
        notes: &mut Notes,
    ) {
        let Some(index) = self
            .pending
            .iter()
            .position(|p| p.line == line && p.broker == broker && p.partition == partition)
        else {
            return;
        };
        let p = self.pending.remove(index);
        let hw = self.brokers[broker as usize]
            .high_watermark(partition)
            .unwrap_or(-1);
        let why = match code {
            ErrorCode::None => {
                self.acked.push(Acked {
                    line,
                    acks: Acks::All,
                    partition,
                    pid: p.pid,
                    seq: p.seq,
                    lost: false,
                });
                format!("the HW {hw} passed the batch with the ISR at min.insync.replicas or more (§1.22)")
            }
            ErrorCode::NotEnoughReplicasAfterAppend => format!(
                "the HW {hw} passed it but the ISR fell below min.insync.replicas {}: appended, not known safe; the retry is a duplicate (§1.21, §1.22)",
                self.min_insync_replicas
            ),
            ErrorCode::RequestTimedOut => {
                "timeout_ms passed before the HW reached it (§1.22): appended on the leader, fate unknown".to_string()
            }
            ErrorCode::NotLeaderOrFollower => {
                "broker is no longer the leader (§1.22, §1.23): the producer retries at the new leader".to_string()
            }
            _ => String::new(),
        };
        notes.add(
            "delayed_answer",
            format!(
                "line {line}'s produce (p{partition} pid={} seq={}) answered {} ({}) by broker {broker}: {why}",
                p.pid,
                p.seq,
                code.name(),
                code.code()
            ),
        );
    }

    /// Rounds of follower fetches, then ISR proposals: `rounds` of them, or until one
    /// changes nothing.
    fn replicate(
        &mut self,
        rounds: Option<u32>,
        m: &mut Map<String, Value>,
        notes: &mut Notes,
    ) -> Said {
        let mut ran = 0;
        let mut last_round: Vec<String> = Vec::new();
        let settled = loop {
            if rounds.is_some_and(|r| ran >= r) {
                break false;
            }
            if ran >= MAX_REPLICATE_ROUNDS {
                break false;
            }
            let before = notes.lines.len();
            ran += 1;
            self.fetch_round(notes);
            self.isr_changes(notes);
            if rounds.is_none() && notes.lines.len() == before {
                break true;
            }
            let this_round = notes.lines[before..].to_vec();
            if rounds.is_none() && this_round == last_round {
                break false; // the same refusals again: waiting changes nothing
            }
            last_round = this_round;
        };
        m.insert("rounds".into(), json!(ran));
        let request = match rounds {
            Some(r) => format!("replicate rounds={r}"),
            None => "replicate".to_string(),
        };
        let answer = if settled {
            format!(
                "{ran} round(s) of follower fetches; the last changed nothing: caught up (§1.17)"
            )
        } else {
            format!("{ran} round(s) of follower fetches (§1.17)")
        };
        Said { request, answer }
    }

    /// Every live follower of every partition fetches once from its live leader.
    fn fetch_round(&mut self, notes: &mut Notes) {
        for state in self.controller.partitions().to_vec() {
            let leader = state.leader;
            if leader == NO_LEADER || !self.up[leader as usize] {
                continue;
            }
            for &f in state.replicas.iter().filter(|f| **f != leader) {
                if self.up[f as usize] {
                    self.follower_fetch(f, leader, state.partition, notes);
                }
            }
        }
    }

    fn follower_fetch(&mut self, f: BrokerId, leader: BrokerId, partition: i32, notes: &mut Notes) {
        let Some(request) = self.brokers[f as usize].follower_fetch_request(partition) else {
            return;
        };
        let response = self.brokers[leader as usize].replica_fetch(&request);
        let held = batches_of(&self.brokers[f as usize], partition);
        let fetched = self.brokers[f as usize].on_follower_fetch_response(&request, &response);
        let asked = format!(
            "p{partition}: broker {f} fetches from leader {leader} at offset {} (last fetched epoch {})",
            request.fetch_offset, request.last_fetched_epoch
        );
        if let Some(text) = describe_fetched(&asked, &fetched, &held) {
            notes.add(
                if fetched.truncation.is_some() {
                    "truncated"
                } else {
                    "fetched"
                },
                text,
            );
        }
        self.drain(notes);
    }

    fn log(&self, broker: BrokerId, partition: i32) -> Said {
        let b = &self.brokers[broker as usize];
        let request = format!("log b{broker} p{partition}");
        let Some(log) = b.log(partition) else {
            return Said {
                request,
                answer: "no such partition on this broker".to_string(),
            };
        };
        let role = match b.replication(partition) {
            Some(r) if r.role() == ReplicaRole::Leader => {
                format!("leader at epoch {}", r.leader_epoch())
            }
            Some(r) if r.leader() == NO_LEADER => "follower of no known leader".to_string(),
            Some(r) => format!("follower of {} at epoch {}", r.leader(), r.leader_epoch()),
            None => "standalone".to_string(),
        };
        let down = if self.up[broker as usize] {
            ""
        } else {
            " (down)"
        };
        let epochs: Vec<String> = log
            .leader_epoch_cache()
            .entries()
            .iter()
            .map(|e| format!("{}@{}", e.epoch, e.start_offset))
            .collect();
        let batches: Vec<String> = batches_of(b, partition)
            .iter()
            .map(HeldBatch::describe)
            .collect();
        Said {
            request,
            answer: format!(
                "{role}{down}; log {}..{}, HW {}, leader epochs [{}] (epoch@start, §1.16): {}",
                log.log_start_offset(),
                log.log_end_offset(),
                b.high_watermark(partition).unwrap_or(-1),
                epochs.join(", "),
                if batches.is_empty() {
                    "no batches".to_string()
                } else {
                    batches.join("; ")
                }
            ),
        }
    }

    /// Names, once, every acknowledged batch the partition's current leader does not hold.
    fn note_lost_acks(&mut self, notes: &mut Notes) {
        for a in self.acked.iter_mut().filter(|a| !a.lost) {
            let leader = self.controller.partition(a.partition).leader;
            if leader == NO_LEADER || !self.up[leader as usize] {
                continue;
            }
            let held = batches_of(&self.brokers[leader as usize], a.partition)
                .iter()
                .any(|h| h.pid == a.pid && h.seq == a.seq);
            if held {
                continue;
            }
            a.lost = true;
            let why = match a.acks {
                Acks::Leader => {
                    "acknowledged with acks=1, lost in a failover: acks=1 is answered before any follower has the batch, and the new leader never had it (§1.21, §1.27, §2.13)"
                }
                _ if self.unclean_partitions.contains(&a.partition) => {
                    "lost by an unclean leader election: the new leader was not in the ISR (§1.27, §2.13)"
                }
                _ => {
                    "lost when every replica lost power before a sync: Kafka relies on replication, not fsync (sync=never is its default, §2.13)"
                }
            };
            notes.add(
                "lost",
                format!(
                    "LOST: line {}'s acknowledged batch (p{} pid={} seq={}) is not in the log of leader {leader}: {why}",
                    a.line, a.partition, a.pid, a.seq
                ),
            );
        }
    }
}

/// One stored batch, as `log` and truncations print it.
struct HeldBatch {
    base: i64,
    last: i64,
    epoch: i32,
    pid: i64,
    seq: i32,
    last_seq: i32,
}

impl HeldBatch {
    fn describe(&self) -> String {
        format!(
            "{}..{} e{} pid={} seq={}..{}",
            self.base, self.last, self.epoch, self.pid, self.seq, self.last_seq
        )
    }
}

fn batches_of(broker: &Broker, partition: i32) -> Vec<HeldBatch> {
    broker.log(partition).map_or_else(Vec::new, |log| {
        log.batches()
            .map(|s| HeldBatch {
                base: s.base_offset(),
                last: s.last_offset(),
                epoch: s.header.partition_leader_epoch,
                pid: s.header.producer_id.0,
                seq: s.header.base_sequence.0,
                last_seq: s
                    .header
                    .base_sequence
                    .wrapping_add(s.header.last_offset_delta)
                    .0,
            })
            .collect()
    })
}

/// A HW move or an ISR proposal on broker `b`, as a note; `None` for the events printed
/// elsewhere (delayed answers, truncations) or not at all (role changes: the controller's
/// decisions say them).
fn describe_event(
    broker: &Broker,
    b: BrokerId,
    event: &ReplicationEvent,
) -> Option<(&'static str, String)> {
    match event {
        ReplicationEvent::HighWatermarkMoved {
            partition,
            from,
            to,
        } => {
            let why = match broker.replication(*partition).map(|r| r.role()) {
                Some(ReplicaRole::Leader) => "the smallest log end offset in the ISR (§1.15)",
                _ => "the leader's HW, capped at its own log end (§1.15)",
            };
            Some((
                "high_watermark",
                format!("p{partition}: broker {b} HW {from} -> {to}: {why}"),
            ))
        }
        ReplicationEvent::IsrChangeProposed {
            partition,
            change,
            isr,
            new_isr,
        } => {
            let why = match change {
                IsrChange::Shrink => "shrink: a follower not caught up for replica.lag.time.max.ms",
                IsrChange::Expand => {
                    "expand: a follower reached the HW within the current leader epoch (KIP-320)"
                }
            };
            Some((
                "isr_proposed",
                format!(
                    "p{partition}: broker {b} proposes ISR {} -> {} ({why}, §1.20)",
                    list(isr),
                    list(new_isr)
                ),
            ))
        }
        ReplicationEvent::DelayedProduceCompleted { .. }
        | ReplicationEvent::Truncated(_)
        | ReplicationEvent::LeaderAndIsrApplied { .. } => None,
    }
}

/// One follower fetch's line, `None` when it changed nothing.
fn describe_fetched(asked: &str, fetched: &FollowerFetched, held: &[HeldBatch]) -> Option<String> {
    if fetched.stale {
        return None;
    }
    if let Some(t) = &fetched.truncation {
        let removed: Vec<String> = held
            .iter()
            .filter(|h| h.base >= t.to)
            .map(HeldBatch::describe)
            .collect();
        let diverging = t.diverging_epoch.map_or_else(
            || "an out-of-range answer".to_string(),
            |d| {
                format!(
                    "diverging epoch: epoch {} ends at {} on the leader",
                    d.epoch, d.end_offset
                )
            },
        );
        let reload = t.snapshot_loaded.map_or_else(
            || format!("the log start (no snapshot at or below {})", t.to),
            |o| format!("the snapshot at {o}"),
        );
        return Some(format!(
            "{asked}: {diverging} (§1.17, §1.18); truncated {} -> {}, removing {}; producer state reloaded from {reload} + {} batch(es) replayed (truncateAndReload, §1.19): a retry of a removed batch is new here",
            t.from,
            t.to,
            if removed.is_empty() {
                "nothing".to_string()
            } else {
                removed.join("; ")
            },
            t.batches_replayed
        ));
    }
    if fetched.error_code != ErrorCode::None {
        return Some(format!(
            "{asked}: {} ({}) (§1.17, §1.31)",
            fetched.error_code.name(),
            fetched.error_code.code()
        ));
    }
    (fetched.batches_appended > 0).then(|| {
        format!(
            "{asked}: {} batch(es) appended as follower, offsets and epochs kept, producer state updated (appendAsFollower, §1.19); log end {}",
            fetched.batches_appended, fetched.log_end_offset
        )
    })
}

/// The explanation of a `cluster` line: the settings and each partition's placement.
fn explain_build(
    spec: &ClusterSpec,
    sync: &str,
    states: &[LeaderAndIsr],
    step: &Step,
) -> Explained {
    let mut m = base(step);
    m.insert("brokers".into(), json!(spec.brokers));
    m.insert("replication_factor".into(), json!(spec.replication_factor));
    m.insert(
        "min_insync_replicas".into(),
        json!(spec.min_insync_replicas),
    );
    m.insert(
        "unclean_leader_election".into(),
        json!(spec.unclean_leader_election),
    );
    m.insert("sync".into(), json!(sync));
    let mut notes = Notes::default();
    for state in states {
        notes.add(
            "placed",
            format!(
                "p{}: replicas {} (Kafka's rack-unaware assignment, §1.29), leader {} (the first replica, the preferred leader) at leader epoch {}, ISR {}",
                state.partition,
                list(&state.replicas),
                state.leader,
                state.leader_epoch,
                list(&state.isr)
            ),
        );
    }
    let said = Said {
        request: format!(
            "cluster brokers={} rf={} min.insync={}",
            spec.brokers, spec.replication_factor, spec.min_insync_replicas
        ),
        answer: format!(
            "{} brokers, {} partition(s); unclean.leader.election.enable={}; sync={sync}; each broker has its own disk and a producer id block from the controller (§1.24, §1.30)",
            spec.brokers, spec.partitions, spec.unclean_leader_election
        ),
    };
    finish(step, said, m, notes)
}

/// One controller decision; `unclean` is `unclean.leader.election.enable`.
fn describe_decision(d: &ControllerDecision, unclean: bool) -> String {
    match d {
        ControllerDecision::BrokerFenced { broker } => {
            format!("controller: broker {broker} fenced, removed from every ISR it shares (§1.26)")
        }
        ControllerDecision::BrokerUnfenced { broker } => {
            format!("controller: broker {broker} unfenced (§1.26)")
        }
        ControllerDecision::Elected {
            partition,
            leader,
            leader_epoch,
            clean: true,
            state,
        } => format!(
            "controller: p{partition} elects broker {leader} at leader epoch {leader_epoch}, clean: the first live ISR member in assignment order (§1.27); ISR {}",
            list(&state.isr)
        ),
        ControllerDecision::Elected {
            partition,
            leader,
            leader_epoch,
            clean: false,
            state,
        } => format!(
            "controller: p{partition} elects broker {leader} at leader epoch {leader_epoch}, UNCLEAN: no ISR member is live, so any live replica (§1.27); ISR forced to {}: what only the others held is lost",
            list(&state.isr)
        ),
        ControllerDecision::Offline { partition, state } if unclean => format!(
            "controller: p{partition} is OFFLINE: no replica is live, not even for an unclean election (§1.26, §1.27); ISR kept {}",
            list(&state.isr)
        ),
        ControllerDecision::Offline { partition, state } => format!(
            "controller: p{partition} is OFFLINE: no live ISR member, and unclean election is off (§1.26, §1.27); ISR kept {} until it returns",
            list(&state.isr)
        ),
        ControllerDecision::IsrChanged {
            partition,
            isr,
            state,
        } => format!(
            "controller: p{partition} ISR {} at partition epoch {} (§1.26)",
            list(isr),
            state.partition_epoch
        ),
    }
}

fn finish(step: &Step, said: Said, mut m: Map<String, Value>, notes: Notes) -> Explained {
    m.insert("answer".into(), json!(said.answer));
    m.insert("events".into(), Value::Array(notes.json));
    let mut text = text_line(step.line, &said);
    for line in notes.lines {
        text.push_str("\n        ");
        text.push_str(&line);
    }
    Explained {
        line: step.line,
        text,
        json: Value::Object(m),
    }
}

#[cfg(test)]
mod tests {
    use crate::explain::{Explained, run};
    use crate::script::parse;
    use idempo_broker::BrokerConfig;

    fn explain(text: &str) -> Vec<Explained> {
        run(
            &parse(text).expect("a valid script"),
            BrokerConfig::default(),
        )
        .expect("a valid config")
    }

    fn events(e: &Explained) -> Vec<String> {
        e.json["events"]
            .as_array()
            .expect("events")
            .iter()
            .map(|v| v["text"].as_str().expect("text").to_string())
            .collect()
    }

    fn any(e: &Explained, needle: &str) -> bool {
        e.text.contains(needle)
    }

    #[test]
    fn acks_all_is_answered_once_the_followers_fetch_past_the_batch() {
        let out = explain("cluster brokers=3\nproduce pid=1 epoch=0 seq=0 count=2\nreplicate\n");
        assert_eq!(out[1].json["response"], "delayed", "{}", out[1].text);
        assert!(
            any(
                &out[2],
                "line 2's produce (p0 pid=1 seq=0) answered NONE (0) by broker 0"
            ),
            "{}",
            out[2].text
        );
        assert!(any(&out[2], "broker 0 HW 0 -> 2"), "{}", out[2].text);
    }

    #[test]
    fn a_retry_at_the_new_leader_after_a_clean_failover_is_a_duplicate() {
        let out = explain(
            "cluster brokers=3 min-insync-replicas=2\nproduce pid=1 epoch=0 seq=0 count=2\n\
             replicate rounds=1\ncrash-broker broker=0\nproduce pid=1 epoch=0 seq=0 count=2\nreplicate\n",
        );
        assert!(
            any(&out[3], "the produce of line 2 gets no answer"),
            "{}",
            out[3].text
        );
        assert!(
            any(&out[3], "p0 elects broker 1 at leader epoch 1, clean"),
            "{}",
            out[3].text
        );
        assert_eq!(out[4].json["outcome"], "duplicate", "{}", out[4].text);
        assert!(
            any(&out[5], "answered NONE (0) by broker 1"),
            "{}",
            out[5].text
        );
        assert!(out.iter().all(|e| !e.text.contains("LOST")));
    }

    #[test]
    fn an_acks_one_batch_the_new_leader_never_had_is_named_lost() {
        let out = explain(
            "cluster brokers=2\nproduce pid=1 epoch=0 seq=0 count=1 acks=1\ncrash-broker broker=0\n",
        );
        assert_eq!(out[1].json["response"], "now");
        assert!(
            any(
                &out[2],
                "LOST: line 2's acknowledged batch (p0 pid=1 seq=0) is not in the log of leader 1: acknowledged with acks=1, lost in a failover"
            ),
            "{}",
            out[2].text
        );
    }

    #[test]
    fn a_diverging_epoch_truncates_and_reloads_producer_state_from_the_snapshot() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/diverging-epoch.txt"
        ))
        .expect("the example ships");
        let out = explain(&text);
        let replicate = out.iter().find(|e| e.line == 17).expect("line 17");
        let truncated = events(replicate)
            .into_iter()
            .find(|t| t.contains("diverging epoch"))
            .expect("a truncation");
        assert!(
            truncated.contains("epoch 0 ends at 2 on the leader")
                && truncated.contains("truncated 6 -> 2")
                && truncated.contains("from the snapshot at 2 + 0 batch(es) replayed"),
            "{truncated}"
        );
        let dup = out.iter().find(|e| e.line == 21).expect("line 21");
        assert_eq!(dup.json["outcome"], "duplicate", "{}", dup.text);
        let new = out.iter().find(|e| e.line == 22).expect("line 22");
        assert_eq!(new.json["outcome"], "appended", "{}", new.text);
        assert_eq!(new.json["base_offset"], 4);
    }

    #[test]
    fn acks_all_errors_name_their_codes_and_rules() {
        let out = explain(
            "cluster brokers=2 min-insync-replicas=2\nproduce pid=1 epoch=0 seq=0 count=1 timeout-ms=120000\n\
             advance ms=31000\nproduce pid=1 epoch=0 seq=1 count=1\nproduce pid=1 epoch=0 seq=1 count=1 broker=1\n\
             replicate\nproduce pid=1 epoch=0 seq=1 count=1 timeout-ms=1000\nadvance ms=2000\n",
        );
        assert!(
            any(&out[2], "proposes ISR [0, 1] -> [0] (shrink"),
            "{}",
            out[2].text
        );
        assert!(
            any(&out[2], "answered NOT_ENOUGH_REPLICAS_AFTER_APPEND (20)"),
            "{}",
            out[2].text
        );
        assert_eq!(out[3].json["error"], "NOT_ENOUGH_REPLICAS");
        assert_eq!(out[3].json["error_code"], 19);
        assert_eq!(out[4].json["error"], "NOT_LEADER_OR_FOLLOWER");
        assert!(any(&out[5], "-> [0, 1] (expand"), "{}", out[5].text);
        assert!(
            any(&out[7], "answered REQUEST_TIMED_OUT (7)"),
            "{}",
            out[7].text
        );
    }

    #[test]
    fn a_partition_without_a_live_isr_member_is_offline_until_it_returns() {
        let out = explain(
            "cluster brokers=2\ncrash-broker broker=1\ncrash-broker broker=0\n\
             produce pid=1 epoch=0 seq=0 count=1\nrestart-broker broker=1\nrestart-broker broker=0\n",
        );
        assert!(any(&out[2], "p0 is OFFLINE"), "{}", out[2].text);
        assert!(any(&out[3], "LEADER_NOT_AVAILABLE (5)"), "{}", out[3].text);
        assert!(
            !any(&out[4], "elects"),
            "broker 1 is not in the ISR: {}",
            out[4].text
        );
        assert!(
            any(&out[5], "p0 elects broker 0 at leader epoch 2, clean"),
            "{}",
            out[5].text
        );
    }

    #[test]
    fn unclean_election_elects_a_stale_replica_and_loses_what_it_lacked() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/unclean-election.txt"
        ))
        .expect("the example ships");
        let out = explain(&text);
        let back = out.iter().find(|e| e.line == 14).expect("line 14");
        assert!(
            any(back, "elects broker 1 at leader epoch 2, UNCLEAN"),
            "{}",
            back.text
        );
        assert!(
            any(back, "lost by an unclean leader election"),
            "{}",
            back.text
        );
    }

    #[test]
    fn log_shows_a_replica_and_a_follower_refuses_consumer_fetches() {
        let out = explain(
            "cluster brokers=2\nproduce pid=1 epoch=0 seq=0 count=2\nreplicate\nlog broker=1\n\
             fetch broker=1\nfetch\n",
        );
        assert!(
            any(
                &out[3],
                "follower of 0 at epoch 0; log 0..2, HW 2, leader epochs [0@0]"
            ),
            "{}",
            out[3].text
        );
        assert!(any(&out[3], "0..1 e0 pid=1 seq=0..1"), "{}", out[3].text);
        assert_eq!(out[4].json["error"], "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(out[5].json["records"][1]["offset"], 1, "{}", out[5].text);
    }

    #[test]
    fn a_crash_without_sync_names_the_lost_tail_and_the_recovery() {
        let out = explain(
            "cluster brokers=2 sync=never\nproduce pid=1 epoch=0 seq=0 count=1 acks=1\ncrash-broker broker=0\n",
        );
        assert!(
            any(&out[2], "p0 log end 1 -> 0 (1 unsynced batch(es) lost)"),
            "{}",
            out[2].text
        );
        assert!(
            any(&out[2], "recovery from its disk: p0 from"),
            "{}",
            out[2].text
        );
        assert_eq!(out[2].json["lost_batches"][0]["batches"], 1);
    }

    #[test]
    fn elections_on_request_are_checked_by_the_controller() {
        let out = explain(
            "cluster brokers=2\ncrash-broker broker=0\nelect type=unclean\nrestart-broker broker=0\n\
             elect type=preferred\nreplicate\nelect type=preferred\n",
        );
        assert!(any(&out[2], "ELECTION_NOT_NEEDED (84)"), "{}", out[2].text);
        assert!(
            any(&out[4], "PREFERRED_LEADER_NOT_AVAILABLE (80)"),
            "{}",
            out[4].text
        );
        assert!(
            any(&out[6], "p0 elects broker 0 at leader epoch 2"),
            "{}",
            out[6].text
        );
    }
}
