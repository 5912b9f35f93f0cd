//! The kubelet's pod-resources API over its unix socket (gRPC: tonic, the messages written
//! with prost's derive from `k8s.io/kubelet/pkg/apis/podresources/v1/api.proto`, only the
//! fields read here).
//!
//! # Design
//! The topology reader is synchronous and may run on a thread inside another runtime: each
//! call runs on a short-lived thread of its own with a current-thread runtime, under a timeout.
//! No socket: no kubelet, an empty list (not an error).

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Endpoint, Uri};

use crate::podres::{PodAllocation, PodResources};

/// The kubelet's socket.
pub const KUBELET_SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

/// `v1.PodResourcesLister/List`.
const LIST: &str = "/v1.PodResourcesLister/List";

/// `message ListPodResourcesRequest {}`
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodResourcesRequest {}

/// `message ListPodResourcesResponse { repeated PodResources pod_resources = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListPodResourcesResponse {
    /// Each pod.
    #[prost(message, repeated, tag = "1")]
    pub pod_resources: Vec<PodResourcesMsg>,
}

/// `message PodResources { string name = 1; string namespace = 2; repeated ContainerResources containers = 3; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodResourcesMsg {
    /// The pod.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its namespace.
    #[prost(string, tag = "2")]
    pub namespace: String,
    /// Its containers.
    #[prost(message, repeated, tag = "3")]
    pub containers: Vec<ContainerResources>,
}

/// `message ContainerResources { string name = 1; repeated ContainerDevices devices = 2; ... }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerResources {
    /// The container.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Its devices, by resource.
    #[prost(message, repeated, tag = "2")]
    pub devices: Vec<ContainerDevices>,
}

/// `message ContainerDevices { string resource_name = 1; repeated string device_ids = 2; ... }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerDevices {
    /// The extended resource.
    #[prost(string, tag = "1")]
    pub resource_name: String,
    /// The device plugin's device IDs.
    #[prost(string, repeated, tag = "2")]
    pub device_ids: Vec<String>,
}

/// The kubelet, through its pod-resources socket.
#[derive(Debug, Clone)]
pub struct Kubelet {
    /// The socket.
    pub socket: PathBuf,
    /// How long one listing may take.
    pub timeout: Duration,
}

impl Default for Kubelet {
    fn default() -> Kubelet {
        Kubelet {
            socket: PathBuf::from(KUBELET_SOCKET),
            timeout: Duration::from_secs(2),
        }
    }
}

impl PodResources for Kubelet {
    fn list(&self) -> io::Result<Vec<PodAllocation>> {
        if !self.socket.exists() {
            return Ok(Vec::new());
        }
        let (socket, timeout) = (self.socket.clone(), self.timeout);
        std::thread::Builder::new()
            .name("vfguard-kubelet".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async move {
                    tokio::time::timeout(timeout, list(socket))
                        .await
                        .unwrap_or_else(|_| Err(io::Error::from_raw_os_error(libc::ETIMEDOUT)))
                })
            })?
            .join()
            .map_err(|_| io::Error::other("the pod-resources thread panicked"))?
    }
}

fn other(what: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("pod-resources {what}: {e}"))
}

async fn list(socket: PathBuf) -> io::Result<Vec<PodAllocation>> {
    // The URI is a placeholder: the connector dials the socket whatever it says.
    let channel = Endpoint::from_static("http://kubelet.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let s = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await
        .map_err(|e| other("connect", e))?;
    // A large node's listing exceeds tonic's 4 MiB default; the kubelet's own client takes
    // 16 MiB.
    let mut grpc = tonic::client::Grpc::new(channel).max_decoding_message_size(16 << 20);
    grpc.ready().await.map_err(|e| other("connect", e))?;
    let reply: tonic::Response<ListPodResourcesResponse> = grpc
        .unary(
            tonic::Request::new(ListPodResourcesRequest {}),
            PathAndQuery::from_static(LIST),
            tonic::codec::ProstCodec::default(),
        )
        .await
        .map_err(|s| other("List", format!("{:?}: {}", s.code(), s.message())))?;
    Ok(allocations(reply.into_inner()))
}

/// One row per container and resource with devices.
pub fn allocations(r: ListPodResourcesResponse) -> Vec<PodAllocation> {
    let mut out = Vec::new();
    for pod in r.pod_resources {
        for c in pod.containers {
            for d in c.devices {
                if d.device_ids.is_empty() {
                    continue;
                }
                out.push(PodAllocation {
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    container: c.name.clone(),
                    resource: d.resource_name,
                    device_ids: d.device_ids,
                });
            }
        }
    }
    out
}
