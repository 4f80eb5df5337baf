//! Which handler serves a decoded request, and what the connection does with the result.
//!
//! Kafka's `KafkaApis.handle` matches on the api key and calls one `handleXxxRequest`;
//! [`handle`] is that match, synchronous and without sockets, so that the one-broker server,
//! every broker of a cluster ([`crate::cluster_server`]) and the request-path fuzz target
//! (`fuzz/src/lib.rs`) run one and the same dispatch. The handlers are those of
//! [`RequestHandlers`]: [`KafkaApis`] is the one-broker set; a broker of a cluster
//! ([`crate::cluster_node::BrokerOfCluster`]) keeps its own [`KafkaApis`] for the rest and
//! replaces what depends on the cluster (Metadata, InitProducerId, Produce, ListOffsets,
//! the topic admin APIs, ElectLeaders).
//!
//! What cannot be done synchronously comes back as a [`Handled`] that says what to wait for:
//!
//! | request | [`Handled`] |
//! |---------|-------------|
//! | any, answered now | `Answer(frame)` |
//! | Produce with `acks=0`, every partition appended | `NoAnswer` |
//! | Produce with `acks=0`, a partition refused | `CloseAcksZeroFailure` (closing is the only way to tell the client, as in Kafka) |
//! | Produce with `acks=all` on a cluster's leader, not yet replicated | `ProduceWait` (answered when the high watermark passes it: Kafka's `DelayedProduce`) |
//! | Fetch with fewer than `min_bytes` available and `max_wait_ms > 0` | `FetchWait` (the server waits for an append, then [`KafkaApis::fetch`] again) |
//! | JoinGroup / SyncGroup the coordinator parks | `JoinParked` / `SyncParked` |

use crate::groups::{Client, EncodableBody, GroupReply};
use crate::kafka_apis::{KafkaApis, api_versions_response};
use crate::kafka_codec::{EncodeError, RequestBody};
use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, ElectLeadersRequest, ElectLeadersResponse, FetchRequest,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, InitProducerIdRequest,
    InitProducerIdResponse, JoinGroupResponse, ListOffsetsRequest, ListOffsetsResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader,
    SyncGroupResponse,
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
    /// An `acks=all` Produce a cluster's leader answers when the high watermark passes its
    /// batches (or its timeout, or a leadership change); the sender is dropped if the broker
    /// crashes first, and the connection closes.
    ProduceWait(oneshot::Receiver<ProduceResponse>),
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

/// What a Produce handler decided.
#[derive(Debug)]
pub enum ProduceReply {
    /// Answer now.
    Now(ProduceResponse),
    /// Answer when this arrives ([`Handled::ProduceWait`]).
    Later(oneshot::Receiver<ProduceResponse>),
    /// `acks=0`: no answer; `failed` partitions were refused.
    NoAnswer {
        /// Partitions refused.
        failed: usize,
    },
}

/// A Produce handler's result: the reply, and how many partitions it appended to.
#[derive(Debug)]
pub struct Produced {
    /// What to answer, and when.
    pub reply: ProduceReply,
    /// Partitions appended to (the server then wakes the Fetch requests waiting for data).
    pub appended: usize,
}

/// The handlers [`handle`] calls, one per API whose answer depends on where the broker
/// stands: alone, or in a cluster. Every handler has the one-broker answer as its default,
/// from [`RequestHandlers::apis`]; Fetch, ApiVersions and the group APIs are always the
/// broker's own.
pub trait RequestHandlers {
    /// The broker's own front end and core.
    fn apis(&mut self) -> &mut KafkaApis;

    /// Metadata.
    fn metadata(&mut self, request: &MetadataRequest, version: i16) -> MetadataResponse {
        KafkaApis::metadata(self.apis(), request, version)
    }

    /// InitProducerId.
    fn init_producer_id(&mut self, request: &InitProducerIdRequest) -> InitProducerIdResponse {
        KafkaApis::init_producer_id(self.apis(), request)
    }

    /// Produce, from the connection's request `correlation_id`.
    fn produce(&mut self, request: &ProduceRequest, version: i16, correlation_id: i32) -> Produced {
        let _ = correlation_id;
        let result = KafkaApis::produce(self.apis(), request, version);
        let reply = match request.acks {
            0 => ProduceReply::NoAnswer {
                failed: result.failed,
            },
            _ => ProduceReply::Now(result.response),
        };
        Produced {
            reply,
            appended: result.appended,
        }
    }

    /// ListOffsets.
    fn list_offsets(&mut self, request: &ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
        KafkaApis::list_offsets(self.apis(), request, version)
    }

    /// CreateTopics.
    fn create_topics(
        &mut self,
        request: &CreateTopicsRequest,
        version: i16,
    ) -> CreateTopicsResponse {
        KafkaApis::create_topics(self.apis(), request, version)
    }

    /// DeleteTopics.
    fn delete_topics(
        &mut self,
        request: &DeleteTopicsRequest,
        version: i16,
    ) -> DeleteTopicsResponse {
        KafkaApis::delete_topics(self.apis(), request, version)
    }

    /// CreatePartitions.
    fn create_partitions(&mut self, request: &CreatePartitionsRequest) -> CreatePartitionsResponse {
        KafkaApis::create_partitions(self.apis(), request)
    }

    /// DeleteRecords.
    fn delete_records(&mut self, request: &DeleteRecordsRequest) -> DeleteRecordsResponse {
        KafkaApis::delete_records(self.apis(), request)
    }

    /// IncrementalAlterConfigs.
    fn incremental_alter_configs(
        &mut self,
        request: &IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        KafkaApis::incremental_alter_configs(self.apis(), request)
    }

    /// ElectLeaders: a single broker's one replica always leads.
    fn elect_leaders(&mut self, request: &ElectLeadersRequest) -> ElectLeadersResponse {
        crate::cluster_server::elect_leaders_standalone(self.apis(), request)
    }
}

impl RequestHandlers for KafkaApis {
    fn apis(&mut self) -> &mut KafkaApis {
        self
    }
}

/// Serves one decoded request of a served API and version with `handlers`: calls its
/// handler and encodes the answer (see the module docs for the answers that wait).
/// `client_host` is the peer's address as Kafka writes it (`/127.0.0.1`), for the group
/// APIs. Call it with the time told ([`KafkaApis::advance_time`]).
pub fn handle<H: RequestHandlers + ?Sized>(
    handlers: &mut H,
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
        RequestBody::Metadata(request) => encode(&handlers.metadata(&request, version)),
        RequestBody::InitProducerId(request) => encode(&handlers.init_producer_id(&request)),
        RequestBody::Produce(request) => {
            let produced = handlers.produce(&request, version, correlation_id);
            let handled = match produced.reply {
                ProduceReply::NoAnswer { failed: 0 } => Handled::NoAnswer,
                ProduceReply::NoAnswer { failed } => Handled::CloseAcksZeroFailure { failed },
                ProduceReply::Now(response) => Handled::Answer(encode(&response)?),
                ProduceReply::Later(receiver) => Handled::ProduceWait(receiver),
            };
            return Ok(Dispatched {
                handled,
                appended: produced.appended,
            });
        }
        RequestBody::Fetch(request) => {
            let apis = handlers.apis();
            let result = apis.fetch(&request);
            let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
            if result.record_bytes < min_bytes && !result.any_error && request.max_wait_ms > 0 {
                return Ok(Handled::FetchWait(Box::new(request)).into());
            }
            apis.fetched.record(&result.response);
            encode(&result.response)
        }
        RequestBody::ListOffsets(request) => encode(&handlers.list_offsets(&request, version)),
        RequestBody::CreateTopics(request) => encode(&handlers.create_topics(&request, version)),
        RequestBody::DeleteTopics(request) => encode(&handlers.delete_topics(&request, version)),
        RequestBody::DeleteRecords(request) => encode(&handlers.delete_records(&request)),
        RequestBody::DescribeConfigs(request) => {
            encode(&handlers.apis().describe_configs(&request, version))
        }
        RequestBody::CreatePartitions(request) => encode(&handlers.create_partitions(&request)),
        RequestBody::IncrementalAlterConfigs(request) => {
            encode(&handlers.incremental_alter_configs(&request))
        }
        RequestBody::ElectLeaders(request) => encode(&handlers.elect_leaders(&request)),
        RequestBody::Group(request) => {
            let client = Client {
                client_id: header
                    .client_id
                    .as_ref()
                    .map_or_else(String::new, |c| c.to_string()),
                client_host: client_host.to_string(),
            };
            let handled = match handlers.apis().group_request(
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

impl KafkaApis {
    /// Serves one decoded request on this broker alone: [`handle`] with the one-broker
    /// handlers (the dispatch the fuzz target runs).
    pub fn handle(
        &mut self,
        api_key: ApiKey,
        header: &RequestHeader,
        body: RequestBody,
        client_host: &str,
    ) -> Result<Dispatched, EncodeError> {
        handle(self, api_key, header, body, client_host)
    }
}
