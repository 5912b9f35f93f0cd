//! The kubelet's pod-resources API, against a stand-in kubelet on a unix socket that answers as
//! the kubelet does (HTTP/2, a gRPC frame, `grpc-status` in the trailers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use prost::Message as _;
use vfguard_host::linux::podresources::{
    ContainerDevices, ContainerResources, Kubelet, ListPodResourcesResponse, PodResourcesMsg,
};
use vfguard_host::{PodAllocation, PodResources};

/// How the stand-in answers.
#[derive(Clone, Copy)]
enum Answer {
    List,
    /// `grpc-status: 12` (UNIMPLEMENTED), as a kubelet with the API disabled.
    Unimplemented,
    /// Accepts and never answers.
    Hang,
}

fn reply() -> ListPodResourcesResponse {
    let dev = |r: &str, ids: &[&str]| ContainerDevices {
        resource_name: r.into(),
        device_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
    };
    ListPodResourcesResponse {
        pod_resources: vec![
            PodResourcesMsg {
                name: "pktgen-7d9f".into(),
                namespace: "telco".into(),
                containers: vec![
                    ContainerResources {
                        name: "dpdk".into(),
                        devices: vec![dev(
                            "intel.com/intel_sriov_dpdk",
                            &["0000:3b:02.1", "0000:3b:02.2"],
                        )],
                    },
                    ContainerResources {
                        name: "sidecar".into(),
                        devices: vec![],
                    },
                ],
            },
            PodResourcesMsg {
                name: "web-0".into(),
                namespace: "shop".into(),
                containers: vec![ContainerResources {
                    name: "nginx".into(),
                    devices: vec![dev("intel.com/intel_sriov_netdevice", &["0000:3b:02.5"])],
                }],
            },
        ],
    }
}

/// Serves one connection on `socket` in a thread of its own; the path it was asked for comes
/// back through the handle.
fn kubelet(socket: &Path, answer: Answer) -> std::thread::JoinHandle<String> {
    let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::UnixListener::from_std(listener).unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            let mut conn = h2::server::handshake(stream).await.unwrap();
            let (req, mut respond) = conn.accept().await.unwrap().unwrap();
            let path = req.uri().path().to_owned();
            tokio::spawn(async move { while conn.accept().await.is_some() {} });
            let mut body = req.into_body();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                body.flow_control().release_capacity(chunk.len()).unwrap();
            }
            if let Answer::Hang = answer {
                tokio::time::sleep(Duration::from_secs(30)).await;
                return path;
            }
            let head = http::Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let mut send = respond.send_response(head, false).unwrap();
            let mut trailers = http::HeaderMap::new();
            match answer {
                Answer::List => {
                    let msg = reply().encode_to_vec();
                    let mut frame = vec![0u8];
                    frame.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
                    frame.extend_from_slice(&msg);
                    send.send_data(frame.into(), false).unwrap();
                    trailers.insert("grpc-status", "0".parse().unwrap());
                }
                Answer::Unimplemented | Answer::Hang => {
                    trailers.insert("grpc-status", "12".parse().unwrap());
                    trailers.insert("grpc-message", "unknown service".parse().unwrap());
                }
            }
            send.send_trailers(trailers).unwrap();
            // Let the client read it all before the connection goes.
            tokio::time::sleep(Duration::from_millis(200)).await;
            path
        })
    })
}

fn at(socket: &Path) -> Kubelet {
    Kubelet {
        socket: socket.to_owned(),
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn the_kubelets_allocations_are_listed_per_container_and_resource() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("kubelet.sock");
    let server = kubelet(&socket, Answer::List);
    let list = at(&socket).list().unwrap();
    assert_eq!(server.join().unwrap(), "/v1.PodResourcesLister/List");
    assert_eq!(
        list,
        [
            PodAllocation {
                namespace: "telco".into(),
                pod: "pktgen-7d9f".into(),
                container: "dpdk".into(),
                resource: "intel.com/intel_sriov_dpdk".into(),
                device_ids: vec!["0000:3b:02.1".into(), "0000:3b:02.2".into()],
            },
            PodAllocation {
                namespace: "shop".into(),
                pod: "web-0".into(),
                container: "nginx".into(),
                resource: "intel.com/intel_sriov_netdevice".into(),
                device_ids: vec!["0000:3b:02.5".into()],
            },
        ],
        "the sidecar without devices is left out"
    );
}

#[test]
fn no_socket_is_no_kubelet_and_a_refusal_or_a_hang_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(at(&dir.path().join("absent.sock")).list().unwrap(), []);

    let socket = dir.path().join("old.sock");
    let server = kubelet(&socket, Answer::Unimplemented);
    let e = at(&socket).list().unwrap_err();
    assert!(e.to_string().contains("Unimplemented"), "{e}");
    server.join().unwrap();

    let socket = dir.path().join("stuck.sock");
    let _server = kubelet(&socket, Answer::Hang);
    let mut k = at(&socket);
    k.timeout = Duration::from_millis(300);
    let e = k.list().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ETIMEDOUT), "{e}");
}
