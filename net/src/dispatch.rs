//! Which handler serves a decoded request, and what the connection does with the result.
//!
//! Kafka's `KafkaApis.handle` matches on the api key and calls one `handleXxxRequest`;
//! [`KafkaApis::handle`] is that match, synchronous and without sockets, so that the server
//! ([`crate::server`]) and the request-path fuzz target (`fuzz/src/lib.rs`) run one and the
//! same dispatch. What cannot be done synchronously comes back as a [`Handled`] that says
//! what to wait for:
//!
//! | request | [`Handled`] |
//! |---------|-------------|
//! | any, answered now | `Answer(frame)` |
//! | Produce with `acks=0`, every partition appended | `NoAnswer` |
//! | Produce with `acks=0`, a partition refused | `CloseAcksZeroFailure` (closing is the only way to tell the client, as in Kafka) |
//! | Fetch with fewer than `min_bytes` available and `max_wait_ms > 0` | `FetchWait` (the server waits for an append, then [`KafkaApis::fetch`] again) |
//! | JoinGroup / SyncGroup the coordinator parks | `JoinParked` / `SyncParked` |

use crate::groups::{Client, EncodableBody, GroupReply};
use crate::kafka_apis::{KafkaApis, api_versions_response};
use crate::kafka_codec::{EncodeError, RequestBody};
use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, FetchRequest, JoinGroupResponse, RequestHeader, SyncGroupResponse,
};
use tokio::sync::oneshot;

/// What the connection that read a request does next, decided by [`KafkaApis::handle`].
#[derive(Debug)]
pub enum Handled {
    /// Write this answer frame (length prefix included).
    Answer(Bytes),
    /// Write nothing: an `acks=0` Produce that no partition refused.
    NoAnswer,
    /// Close the connection: an `acks=0` Produce was refused on `failed` partitions, and a
    /// closed connection is the only way to tell the client (Kafka's `closeConnection`).
    CloseAcksZeroFailure {
        /// Partitions refused.
        failed: usize,
    },
    /// A Fetch that found fewer than its `min_bytes`: the connection waits for an append
    /// (without the lock) for up to the request's `max_wait_ms` and serves it again with
    /// [`KafkaApis::fetch`].
    FetchWait(Box<FetchRequest>),
    /// A JoinGroup the coordinator answers when the rebalance completes.
    JoinParked(oneshot::Receiver<JoinGroupResponse>),
    /// A SyncGroup the coordinator answers when the leader's assignment arrives.
    SyncParked(oneshot::Receiver<SyncGroupResponse>),
}

/// [`KafkaApis::handle`]'s result: what to do next, and whether batches were appended (the
/// server then wakes the Fetch requests waiting for data).
#[derive(Debug)]
pub struct Dispatched {
    /// What the connection does next.
    pub handled: Handled,
    /// Partitions a Produce appended to (0 for every other request).
    pub appended: usize,
}

impl From<Handled> for Dispatched {
    fn from(handled: Handled) -> Dispatched {
        Dispatched {
            handled,
            appended: 0,
        }
    }
}

impl KafkaApis {
    /// Serves one decoded request of a served API and version: calls its handler and encodes
    /// the answer (see the module docs for the answers that wait). `client_host` is the
    /// peer's address as Kafka writes it (`/127.0.0.1`), for the group APIs. Call it with the
    /// time told ([`KafkaApis::advance_time`]).
    pub fn handle(
        &mut self,
        api_key: ApiKey,
        header: &RequestHeader,
        body: RequestBody,
        client_host: &str,
    ) -> Result<Dispatched, EncodeError> {
        let version = header.request_api_version;
        let correlation_id = header.correlation_id;
        let encode =
            |response: &dyn EncodableBody| response.encode_frame(api_key, version, correlation_id);
        let frame = match body {
            RequestBody::ApiVersions(_) => encode(&api_versions_response()),
            RequestBody::Metadata(request) => encode(&self.metadata(&request, version)),
            RequestBody::InitProducerId(request) => encode(&self.init_producer_id(&request)),
            RequestBody::Produce(request) => {
                let result = self.produce(&request, version);
                let handled = match (request.acks, result.failed) {
                    (0, 0) => Handled::NoAnswer,
                    (0, failed) => Handled::CloseAcksZeroFailure { failed },
                    _ => Handled::Answer(encode(&result.response)?),
                };
                return Ok(Dispatched {
                    handled,
                    appended: result.appended,
                });
            }
            RequestBody::Fetch(request) => {
                let result = self.fetch(&request);
                let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
                if result.record_bytes < min_bytes && !result.any_error && request.max_wait_ms > 0 {
                    return Ok(Handled::FetchWait(Box::new(request)).into());
                }
                self.fetched.record(&result.response);
                encode(&result.response)
            }
            RequestBody::ListOffsets(request) => encode(&self.list_offsets(&request, version)),
            RequestBody::CreateTopics(request) => encode(&self.create_topics(&request, version)),
            RequestBody::DeleteTopics(request) => encode(&self.delete_topics(&request, version)),
            RequestBody::DeleteRecords(request) => encode(&self.delete_records(&request)),
            RequestBody::DescribeConfigs(request) => {
                encode(&self.describe_configs(&request, version))
            }
            RequestBody::CreatePartitions(request) => encode(&self.create_partitions(&request)),
            RequestBody::IncrementalAlterConfigs(request) => {
                encode(&self.incremental_alter_configs(&request))
            }
            RequestBody::ElectLeaders(request) => encode(
                &crate::cluster_server::elect_leaders_standalone(self, &request),
            ),
            RequestBody::Group(request) => {
                let client = Client {
                    client_id: header
                        .client_id
                        .as_ref()
                        .map_or_else(String::new, |c| c.to_string()),
                    client_host: client_host.to_string(),
                };
                let handled = match self.group_request(
                    &request,
                    api_key,
                    version,
                    correlation_id,
                    &client,
                )? {
                    GroupReply::Now(frame) => Handled::Answer(frame),
                    GroupReply::Join(receiver) => Handled::JoinParked(receiver),
                    GroupReply::Sync(receiver) => Handled::SyncParked(receiver),
                };
                return Ok(handled.into());
            }
        };
        Ok(Handled::Answer(frame?).into())
    }
}
