//! Clusters, topics and partitions as Kafka REST v3 resources: each with its
//! `kind`, `metadata.self` and links to related collections.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::{RestError, base_url, check_accept, check_content_type};
use crate::api::body;
use crate::auth::Caller;
use crate::service::{Agent, NewTopic, TopicInfo};

#[derive(Serialize)]
struct Related {
    related: String,
}

fn related(url: String) -> Related {
    Related { related: url }
}

#[derive(Serialize)]
struct Metadata {
    #[serde(rename = "self")]
    self_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

fn resource(self_url: String, resource_name: String) -> Metadata {
    Metadata { self_url, resource_name: Some(resource_name), next: None }
}

fn collection(self_url: String) -> Metadata {
    Metadata { self_url, resource_name: None, next: None }
}

#[derive(Serialize)]
pub struct List<T> {
    kind: &'static str,
    metadata: Metadata,
    data: Vec<T>,
}

#[derive(Serialize)]
pub struct ClusterData {
    kind: &'static str,
    metadata: Metadata,
    cluster_id: String,
    acls: Related,
    brokers: Related,
    broker_configs: Related,
    consumer_groups: Related,
    topics: Related,
    partition_reassignments: Related,
}

#[derive(Serialize)]
pub struct TopicData {
    kind: &'static str,
    metadata: Metadata,
    cluster_id: String,
    topic_name: String,
    is_internal: bool,
    /// The object store keeps the copies; Kafka clients read this as "fully replicated".
    replication_factor: u32,
    partitions_count: u32,
    partitions: Related,
    configs: Related,
    partition_reassignments: Related,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorized_operations: Option<Vec<&'static str>>,
}

#[derive(Serialize)]
pub struct PartitionData {
    kind: &'static str,
    metadata: Metadata,
    cluster_id: String,
    topic_name: String,
    partition_id: u32,
    replicas: Related,
    reassignment: Related,
}

/// URLs of one cluster's resources.
struct Urls {
    cluster: String,
    cluster_id: String,
}

impl Urls {
    fn new(headers: &HeaderMap, agent: &Agent) -> Self {
        let cluster_id = agent.cluster_id();
        Self { cluster: format!("{}/clusters/{cluster_id}", base_url(headers)), cluster_id }
    }

    fn cluster_data(&self) -> ClusterData {
        let c = &self.cluster;
        ClusterData {
            kind: "KafkaCluster",
            metadata: resource(c.clone(), format!("crn:///kafka={}", self.cluster_id)),
            cluster_id: self.cluster_id.clone(),
            acls: related(format!("{c}/acls")),
            brokers: related(format!("{c}/brokers")),
            broker_configs: related(format!("{c}/broker-configs")),
            consumer_groups: related(format!("{c}/consumer-groups")),
            topics: related(format!("{c}/topics")),
            partition_reassignments: related(format!("{c}/topics/-/partitions/-/reassignment")),
        }
    }

    fn topic_data(&self, t: &TopicInfo) -> TopicData {
        let url = format!("{}/topics/{}", self.cluster, t.name);
        TopicData {
            kind: "KafkaTopic",
            metadata: resource(url.clone(), format!("crn:///kafka={}/topic={}", self.cluster_id, t.name)),
            cluster_id: self.cluster_id.clone(),
            topic_name: t.name.clone(),
            is_internal: false,
            replication_factor: 1,
            partitions_count: t.partitions,
            partitions: related(format!("{url}/partitions")),
            configs: related(format!("{url}/configs")),
            partition_reassignments: related(format!("{url}/partitions/-/reassignment")),
            authorized_operations: None,
        }
    }

    fn partition_data(&self, topic: &str, partition: u32) -> PartitionData {
        let url = format!("{}/topics/{topic}/partitions/{partition}", self.cluster);
        PartitionData {
            kind: "KafkaPartition",
            metadata: resource(
                url.clone(),
                format!("crn:///kafka={}/topic={topic}/partition={partition}", self.cluster_id),
            ),
            cluster_id: self.cluster_id.clone(),
            topic_name: topic.to_owned(),
            partition_id: partition,
            replicas: related(format!("{url}/replicas")),
            reassignment: related(format!("{url}/reassignment")),
        }
    }
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, RestError> {
    p.map(|Path(t)| t).map_err(|e| RestError::new(400, 400, e.body_text()))
}

pub async fn list_clusters(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Json<List<ClusterData>>, RestError> {
    check_accept(&headers)?;
    agent.describe_cluster(&caller)?;
    let urls = Urls::new(&headers, &agent);
    let metadata = collection(format!("{}/clusters", base_url(&headers)));
    Ok(Json(List { kind: "KafkaClusterList", metadata, data: vec![urls.cluster_data()] }))
}

/// Any cluster id is this cluster, as Kafka REST outside Confluent Cloud does.
pub async fn get_cluster(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<ClusterData>, RestError> {
    path(p)?;
    check_accept(&headers)?;
    agent.describe_cluster(&caller)?;
    Ok(Json(Urls::new(&headers, &agent).cluster_data()))
}

pub async fn list_topics(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<List<TopicData>>, RestError> {
    path(p)?;
    check_accept(&headers)?;
    let urls = Urls::new(&headers, &agent);
    let data = agent.list_topics(&caller).await?.iter().map(|t| urls.topic_data(t)).collect();
    Ok(Json(List { kind: "KafkaTopicList", metadata: collection(format!("{}/topics", urls.cluster)), data }))
}

#[derive(Deserialize)]
struct CreateTopicRequest {
    topic_name: String,
    #[serde(default)]
    partitions_count: Option<u32>,
    /// Accepted for compatibility: the object store keeps the copies.
    #[serde(default)]
    #[allow(dead_code)]
    replication_factor: Option<i32>,
    #[serde(default)]
    configs: Vec<Config>,
    #[serde(default)]
    validate_only: bool,
}

#[derive(Deserialize)]
struct Config {
    name: String,
    #[serde(default)]
    value: Option<String>,
}

/// Kafka's `retention.ms` and `retention.bytes` are honoured; other settings
/// have no meaning on Floe and are refused rather than silently dropped.
fn retention(configs: &[Config]) -> Result<(Option<i64>, Option<i64>), RestError> {
    let mut out = (None, None);
    for c in configs {
        let value = |name: &str| -> Result<Option<i64>, RestError> {
            c.value
                .as_deref()
                .map(|v| v.parse().map_err(|_| RestError::new(400, 40002, format!("{name} must be an integer"))))
                .transpose()
        };
        match c.name.as_str() {
            "retention.ms" => out.0 = value("retention.ms")?,
            "retention.bytes" => out.1 = value("retention.bytes")?,
            other => {
                return Err(RestError::new(
                    400,
                    40002,
                    format!("topic config {other:?} is not supported; Floe takes retention.ms and retention.bytes"),
                ));
            }
        }
    }
    Ok(out)
}

pub async fn create_topic(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    raw: Body,
) -> Result<(StatusCode, Json<TopicData>), RestError> {
    path(p)?;
    check_accept(&headers)?;
    check_content_type(&headers)?;
    let bytes = body::read(raw, agent.max_request_bytes()).await?;
    let req: CreateTopicRequest = body::json(&bytes)?;
    let (retention_ms, retention_bytes) = retention(&req.configs)?;
    let spec = NewTopic {
        name: req.topic_name,
        // Kafka REST's default when the count is left out.
        partitions: req.partitions_count.unwrap_or(1),
        retention_ms,
        retention_bytes,
    };
    let urls = Urls::new(&headers, &agent);
    if req.validate_only {
        let info = agent.validate_new_topic(&caller, &spec).await?;
        return Ok((StatusCode::OK, Json(urls.topic_data(&info))));
    }
    let info = agent.create_topic(&caller, spec).await?;
    Ok((StatusCode::CREATED, Json(urls.topic_data(&info))))
}

#[derive(Deserialize)]
pub struct TopicQuery {
    #[serde(default)]
    include_authorized_operations: bool,
}

pub async fn get_topic(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<TopicQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<TopicData>, RestError> {
    let (_, topic) = path(p)?;
    let Query(q) = q.map_err(|e| RestError::new(400, 400, e.body_text()))?;
    check_accept(&headers)?;
    let (info, _) = agent.describe_topic(&caller, &topic).await?;
    let mut data = Urls::new(&headers, &agent).topic_data(&info);
    if q.include_authorized_operations {
        data.authorized_operations = Some(authorized_operations(&caller, &topic));
    }
    Ok(Json(data))
}

pub async fn list_partitions(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<List<PartitionData>>, RestError> {
    let (_, topic) = path(p)?;
    check_accept(&headers)?;
    let (_, partitions) = agent.describe_topic(&caller, &topic).await?;
    let urls = Urls::new(&headers, &agent);
    let data = partitions.iter().map(|p| urls.partition_data(&topic, p.partition)).collect();
    let metadata = collection(format!("{}/topics/{topic}/partitions", urls.cluster));
    Ok(Json(List { kind: "KafkaPartitionList", metadata, data }))
}

pub async fn get_partition(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<PartitionData>, RestError> {
    let (_, topic, id) = path(p)?;
    check_accept(&headers)?;
    // Any integer is a well-formed id, however large; one the topic does not have is unknown.
    let digits = id.strip_prefix('-').unwrap_or(&id);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RestError::new(400, 400, format!("partition id {id:?} is not an integer")));
    }
    let (_, partitions) = agent.describe_topic(&caller, &topic).await?;
    let found = id.parse::<u32>().ok().filter(|p| partitions.iter().any(|x| x.partition == *p));
    let Some(partition) = found else {
        return Err(RestError::new(404, 40403, format!("topic {topic:?} has no partition {id}")));
    };
    Ok(Json(Urls::new(&headers, &agent).partition_data(&topic, partition)))
}

pub async fn delete_topic(
    State(agent): State<Arc<Agent>>,
    caller: Caller,
    p: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<StatusCode, RestError> {
    let (_, topic) = path(p)?;
    check_accept(&headers)?;
    agent.delete_topic(&caller, &topic).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Kafka's topic operations the caller's token allows (every one, `ALL`,
/// with authentication off or for an admin).
fn authorized_operations(caller: &Caller, topic: &str) -> Vec<&'static str> {
    use crate::auth::Action;
    if caller.may(Action::Admin) {
        return vec!["ALL"];
    }
    let (read, write) = (caller.may(Action::Consume(topic)), caller.may(Action::Produce(topic)));
    let mut ops = Vec::new();
    if read {
        ops.push("READ");
    }
    if write {
        ops.push("WRITE");
    }
    if caller.may(Action::Describe(topic)) {
        ops.extend(["DESCRIBE", "DESCRIBE_CONFIGS"]);
    }
    ops
}
