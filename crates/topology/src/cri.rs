//! Which Kubernetes pod a network namespace belongs to, from the container runtime's (CRI's)
//! own files: each container's OCI bundle `config.json` carries the pod's namespace, name and
//! UID and the container's name as annotations, and the network namespace it joins; the
//! runtime's pid file names its init process.
//!
//! Read (both confirmed against the runtimes' sources and published bundle listings):
//! - containerd (CRI plugin): `/run/containerd/io.containerd.runtime.v2.task/k8s.io/<id>/`
//!   `config.json` and `init.pid`; annotations `io.kubernetes.cri.container-type`
//!   (`sandbox` | `container`), `io.kubernetes.cri.sandbox-id`, `...sandbox-name`,
//!   `...sandbox-namespace`, `...sandbox-uid` (containerd 1.6.11 and later),
//!   `...container-name`.
//! - CRI-O: `/run/containers/storage/overlay-containers/<id>/userdata/` `config.json` and
//!   `pidfile` (conmon's); annotations `io.kubernetes.cri-o.ContainerType`,
//!   `io.kubernetes.cri-o.SandboxID`, `io.kubernetes.pod.name`, `io.kubernetes.pod.namespace`,
//!   `io.kubernetes.pod.uid`, `io.kubernetes.container.name`.
//!
//! A bundle is tied to a namespace by its init process's `/proc/<pid>/ns/net` inode, else by the
//! OCI spec's `linux.namespaces[type=network].path` (`/var/run/netns/<name>`, a bind mount whose
//! inode is the namespace's, or `/proc/<pid>/ns/net`).
//!
//! # Limitations
//! - A pod with several containers is named `namespace/pod` from these files: they share the
//!   namespace, and the files do not say which container asked for the VF. On a live host the
//!   kubelet's pod-resources API says it ([`crate::owners`]); a host tree read without it
//!   notes the socket in the evidence.

use std::path::{Path, PathBuf};

use serde_json::Value;
use vfguard_host::{netns::netns_inode, HostFs, NetnsView};

/// containerd's task bundles for the CRI plugin's namespace (`k8s.io`).
pub const CONTAINERD_TASKS: &str = "/run/containerd/io.containerd.runtime.v2.task/k8s.io";
/// CRI-O's (containers/storage's) per-container run directories.
pub const CRIO_CONTAINERS: &str = "/run/containers/storage/overlay-containers";
/// The kubelet's pod-resources socket.
pub const KUBELET_POD_RESOURCES: &str = vfguard_host::linux::podresources::KUBELET_SOCKET;

/// A container runtime with a CRI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriRuntime {
    /// containerd's CRI plugin.
    Containerd,
    /// CRI-O.
    Crio,
}

impl CriRuntime {
    /// The stable name (`containerd`, `crio`).
    pub fn as_str(self) -> &'static str {
        match self {
            CriRuntime::Containerd => "containerd",
            CriRuntime::Crio => "crio",
        }
    }

    /// Where this runtime keeps the bundle of container `id`: its `config.json` and the file
    /// holding its init pid.
    pub fn bundle_files(self, id: &str) -> (PathBuf, PathBuf) {
        match self {
            CriRuntime::Containerd => {
                let dir = Path::new(CONTAINERD_TASKS).join(id);
                (dir.join("config.json"), dir.join("init.pid"))
            }
            CriRuntime::Crio => {
                let dir = Path::new(CRIO_CONTAINERS).join(id).join("userdata");
                (dir.join("config.json"), dir.join("pidfile"))
            }
        }
    }

    /// Annotation keys: (container type, sandbox id, pod namespace, pod name, pod uid,
    /// container name).
    fn keys(self) -> [&'static str; 6] {
        match self {
            CriRuntime::Containerd => [
                "io.kubernetes.cri.container-type",
                "io.kubernetes.cri.sandbox-id",
                "io.kubernetes.cri.sandbox-namespace",
                "io.kubernetes.cri.sandbox-name",
                "io.kubernetes.cri.sandbox-uid",
                "io.kubernetes.cri.container-name",
            ],
            CriRuntime::Crio => [
                "io.kubernetes.cri-o.ContainerType",
                "io.kubernetes.cri-o.SandboxID",
                "io.kubernetes.pod.namespace",
                "io.kubernetes.pod.name",
                "io.kubernetes.pod.uid",
                "io.kubernetes.container.name",
            ],
        }
    }
}

/// Why a bundle's `config.json` says nothing usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CriError {
    /// Not JSON.
    #[error("not JSON")]
    Json(#[source] serde_json::Error),
    /// JSON, but not an OCI spec object.
    #[error("not an OCI runtime spec (no top-level object)")]
    NotAnObject,
    /// Kubernetes annotations without the pod's namespace or name.
    #[error("Kubernetes annotations without the pod's {0}")]
    Incomplete(&'static str),
}

/// What one bundle says of its pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodBundle {
    /// The runtime that wrote it.
    pub runtime: CriRuntime,
    /// The container ID (the bundle directory's name).
    pub id: String,
    /// The pod sandbox itself (its infra or `pause` container), rather than a container in it.
    pub sandbox: bool,
    /// The pod's Kubernetes namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's UID, when the runtime records it.
    pub pod_uid: Option<String>,
    /// The container's name (none for the sandbox).
    pub container: Option<String>,
    /// The sandbox's container ID.
    pub sandbox_id: Option<String>,
    /// The OCI spec's network namespace path, when it names one.
    pub netns_path: Option<String>,
}

/// Reads a bundle's `config.json`: `Ok(None)` for a container Kubernetes did not create (no
/// pod annotations: podman's, `ctr run`'s).
pub fn parse_config(
    runtime: CriRuntime,
    id: &str,
    text: &str,
) -> Result<Option<PodBundle>, CriError> {
    let spec: Value = serde_json::from_str(text).map_err(CriError::Json)?;
    let spec = spec.as_object().ok_or(CriError::NotAnObject)?;
    let annotations = spec.get("annotations").and_then(Value::as_object);
    let [kind_k, sandbox_k, ns_k, pod_k, uid_k, container_k] = runtime.keys();
    let get = |k: &str| {
        annotations
            .and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (namespace, pod) = (get(ns_k), get(pod_k));
    let kind = get(kind_k);
    if namespace.is_none() && pod.is_none() && kind.is_none() {
        return Ok(None);
    }
    let namespace = namespace.ok_or(CriError::Incomplete("namespace"))?;
    let pod = pod.ok_or(CriError::Incomplete("name"))?;
    let sandbox = kind.as_deref() == Some("sandbox");
    let netns_path = spec
        .get("linux")
        .and_then(|l| l.get("namespaces"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|n| n.get("type").and_then(Value::as_str) == Some("network"))
        .and_then(|n| n.get("path"))
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    Ok(Some(PodBundle {
        runtime,
        id: id.to_owned(),
        sandbox,
        namespace,
        pod,
        pod_uid: get(uid_k),
        // CRI-O's infra container is called `POD`: not a container of the pod's spec.
        container: get(container_k).filter(|_| !sandbox),
        sandbox_id: get(sandbox_k),
        netns_path,
    }))
}

/// A bundle whose `config.json` could not be used, kept so that the namespace it belongs to
/// (found through its pid) can say why its pod is not named.
#[derive(Debug, Clone)]
pub struct BrokenBundle {
    /// Its `config.json`.
    pub path: PathBuf,
    /// Why.
    pub error: String,
    /// The network namespace inode of its init process, when that could be read.
    pub netns: Option<u64>,
}

/// A usable bundle and the namespace it is in.
#[derive(Debug, Clone)]
pub struct Placed {
    /// What it says.
    pub bundle: PodBundle,
    /// Its `config.json`.
    pub path: PathBuf,
    /// Its init pid, when its pid file holds one.
    pub pid: Option<u32>,
    /// The namespace inode of that pid (`/proc/<pid>/ns/net`), when readable.
    pub pid_netns: Option<u64>,
}

/// Every Kubernetes bundle of both runtimes found under `fs`.
#[derive(Debug, Default)]
pub struct CriIndex {
    /// Usable bundles.
    pub bundles: Vec<Placed>,
    /// Bundles whose `config.json` could not be used.
    pub broken: Vec<BrokenBundle>,
    /// Whether the kubelet's pod-resources socket is there.
    pub kubelet_socket: bool,
}

/// The network namespace inode `/proc/<pid>/ns/net` names.
fn pid_netns(fs: &dyn HostFs, pid: u32) -> Option<u64> {
    fs.read_link(Path::new(&format!("/proc/{pid}/ns/net")))
        .ok()
        .and_then(|l| netns_inode(&l))
}

impl CriIndex {
    /// Scans both runtimes' directories (absent ones are not an error: the host runs one
    /// runtime, or none).
    pub fn scan(fs: &dyn HostFs) -> CriIndex {
        let mut idx = CriIndex {
            kubelet_socket: fs.inode(Path::new(KUBELET_POD_RESOURCES)).is_ok(),
            ..CriIndex::default()
        };
        for (runtime, dir) in [
            (CriRuntime::Containerd, CONTAINERD_TASKS),
            (CriRuntime::Crio, CRIO_CONTAINERS),
        ] {
            for id in fs.list(Path::new(dir)).unwrap_or_default() {
                let (config, pidfile) = runtime.bundle_files(&id);
                let pid = fs
                    .read(&pidfile)
                    .ok()
                    .and_then(|p| p.trim().parse::<u32>().ok());
                let pid_ns = pid.and_then(|p| pid_netns(fs, p));
                let parsed = fs
                    .read(&config)
                    .map_err(|e| e.to_string())
                    .and_then(|t| parse_config(runtime, &id, &t).map_err(|e| error_chain(&e)));
                match parsed {
                    Ok(Some(bundle)) => idx.bundles.push(Placed {
                        bundle,
                        path: config,
                        pid,
                        pid_netns: pid_ns,
                    }),
                    Ok(None) => {}
                    Err(error) => idx.broken.push(BrokenBundle {
                        path: config,
                        error,
                        netns: pid_ns,
                    }),
                }
            }
        }
        idx
    }

    /// The pod whose namespace `ns` is, with the evidence; `None` when no bundle is in it.
    pub fn pod_of(&self, fs: &dyn HostFs, ns: &NetnsView) -> Option<PodMatch> {
        let mut evidence = Vec::new();
        let mut members: Vec<&Placed> = Vec::new();
        for p in &self.bundles {
            if let Some(how) = in_namespace(fs, p, ns) {
                evidence.push(format!(
                    "{} {} {} (pod {}/{}{}): {how}",
                    p.bundle.runtime.as_str(),
                    if p.bundle.sandbox {
                        "sandbox"
                    } else {
                        "container"
                    },
                    p.path.display(),
                    p.bundle.namespace,
                    p.bundle.pod,
                    p.bundle
                        .container
                        .as_ref()
                        .map_or_else(String::new, |c| format!(", container {c}")),
                ));
                members.push(p);
            }
        }
        let broken: Vec<&BrokenBundle> = self
            .broken
            .iter()
            .filter(|b| b.netns.is_some() && b.netns == ns.inode)
            .collect();
        for b in &broken {
            evidence.push(format!(
                "{}: {}; its process is in this namespace, the pod it describes is not known",
                b.path.display(),
                b.error
            ));
        }
        if members.is_empty() {
            return (!broken.is_empty()).then_some(PodMatch {
                identity: None,
                evidence,
            });
        }
        let mut pods: Vec<(&str, &str)> = members
            .iter()
            .map(|p| (p.bundle.namespace.as_str(), p.bundle.pod.as_str()))
            .collect();
        pods.sort_unstable();
        pods.dedup();
        let [(namespace, pod)] = pods.as_slice() else {
            let names: Vec<String> = pods.iter().map(|(n, p)| format!("{n}/{p}")).collect();
            evidence.push(format!(
                "disagreement: bundles of several pods ({}) are in this namespace: none is named",
                names.join(", ")
            ));
            return Some(PodMatch {
                identity: None,
                evidence,
            });
        };
        let pod_uid = members.iter().find_map(|p| p.bundle.pod_uid.clone());
        let mut containers: Vec<&str> = members
            .iter()
            .filter_map(|p| p.bundle.container.as_deref())
            .collect();
        containers.sort_unstable();
        containers.dedup();
        let container = match containers.as_slice() {
            [one] => Some((*one).to_owned()),
            [] => None,
            many => {
                evidence.push(format!(
                    "containers {} share the pod's namespace: the VF is named by its pod",
                    many.join(", ")
                ));
                None
            }
        };
        if self.kubelet_socket {
            evidence.push(format!(
                "kubelet pod-resources socket {KUBELET_POD_RESOURCES} present, not asked (a host tree, not the live host): named from the runtime's files"
            ));
        }
        Some(PodMatch {
            identity: Some(PodIdentity {
                namespace: (*namespace).to_owned(),
                pod: (*pod).to_owned(),
                container,
                pod_uid,
            }),
            evidence,
        })
    }
}

/// The error and its sources on one line (`not JSON: expected value at line 1 column 1`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// How bundle `p` is known to be in namespace `ns`, if it is.
fn in_namespace(fs: &dyn HostFs, p: &Placed, ns: &NetnsView) -> Option<String> {
    if let (Some(pid), Some(ino)) = (p.pid, p.pid_netns) {
        if Some(ino) == ns.inode {
            return Some(format!("its init pid {pid} is in net:[{ino}]"));
        }
    }
    let path = p.bundle.netns_path.as_deref()?;
    let host_path = Path::new(path);
    // A process's namespace (containerd points a pod's containers at its sandbox's pid).
    if let Some(pid) = path
        .strip_prefix("/proc/")
        .and_then(|r| r.strip_suffix("/ns/net"))
        .and_then(|p| p.parse::<u32>().ok())
    {
        return pid_netns(fs, pid)
            .filter(|i| Some(*i) == ns.inode)
            .map(|i| format!("its network namespace {path} is net:[{i}]"));
    }
    // A pinned namespace: `/var/run/netns/<name>` (`/var/run` is `/run`).
    let pinned = ["/run/netns/", "/var/run/netns/"]
        .iter()
        .find_map(|d| path.strip_prefix(d))
        .filter(|n| !n.is_empty() && !n.contains('/'));
    if let (Some(name), Some(ns_name)) = (pinned, ns.name.as_deref()) {
        if name == ns_name {
            return Some(format!("its network namespace is {path}"));
        }
    }
    if pinned.is_some() {
        if let (Ok(ino), Some(want)) = (fs.inode(host_path), ns.inode) {
            if ino == want {
                return Some(format!("its network namespace {path} is net:[{ino}]"));
            }
        }
    }
    None
}

/// A pod as its runtime's files name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodIdentity {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// The container, when the pod has exactly one besides its sandbox.
    pub container: Option<String>,
    /// The pod's UID.
    pub pod_uid: Option<String>,
}

impl PodIdentity {
    /// `namespace/pod/container`, or `namespace/pod`.
    pub fn name(&self) -> String {
        match &self.container {
            Some(c) => format!("{}/{}/{c}", self.namespace, self.pod),
            None => format!("{}/{}", self.namespace, self.pod),
        }
    }

    /// The owner metadata it gives: `k8s.namespace`, `k8s.pod`, `k8s.container`,
    /// `k8s.pod_uid` (the last two when known).
    pub fn metadata(&self) -> Vec<(&'static str, String)> {
        let mut m = vec![
            ("k8s.namespace", self.namespace.clone()),
            ("k8s.pod", self.pod.clone()),
        ];
        if let Some(c) = &self.container {
            m.push(("k8s.container", c.clone()));
        }
        if let Some(u) = &self.pod_uid {
            m.push(("k8s.pod_uid", u.clone()));
        }
        m
    }
}

/// What the runtime's files say of one namespace.
#[derive(Debug, Clone)]
pub struct PodMatch {
    /// The pod, when the files agree on one.
    pub identity: Option<PodIdentity>,
    /// One line per file that said something.
    pub evidence: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTAINERD_SANDBOX: &str = r#"{
      "ociVersion": "1.1.0",
      "annotations": {
        "io.kubernetes.cri.container-type": "sandbox",
        "io.kubernetes.cri.sandbox-id": "aa11",
        "io.kubernetes.cri.sandbox-name": "dpdk-0",
        "io.kubernetes.cri.sandbox-namespace": "telco",
        "io.kubernetes.cri.sandbox-uid": "6b1c0d8e-1111-2222-3333-444455556666"
      },
      "linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/cni-1234"}]}
    }"#;

    #[test]
    fn containerd_sandbox_annotations() {
        let b = parse_config(CriRuntime::Containerd, "aa11", CONTAINERD_SANDBOX)
            .unwrap()
            .unwrap();
        assert!(b.sandbox);
        assert_eq!((b.namespace.as_str(), b.pod.as_str()), ("telco", "dpdk-0"));
        assert_eq!(
            b.pod_uid.as_deref(),
            Some("6b1c0d8e-1111-2222-3333-444455556666")
        );
        assert_eq!(b.container, None);
        assert_eq!(b.netns_path.as_deref(), Some("/var/run/netns/cni-1234"));
    }

    #[test]
    fn crio_container_annotations() {
        let text = r#"{"annotations": {
            "io.kubernetes.cri-o.ContainerType": "container",
            "io.kubernetes.cri-o.SandboxID": "bb22",
            "io.kubernetes.pod.name": "web-5f7",
            "io.kubernetes.pod.namespace": "shop",
            "io.kubernetes.pod.uid": "u-1",
            "io.kubernetes.container.name": "nginx"},
          "linux": {"namespaces": [{"type": "network", "path": "/var/run/netns/9f0e"}]}}"#;
        let b = parse_config(CriRuntime::Crio, "cc33", text)
            .unwrap()
            .unwrap();
        assert!(!b.sandbox);
        assert_eq!(b.container.as_deref(), Some("nginx"));
        assert_eq!(b.sandbox_id.as_deref(), Some("bb22"));
        // The other runtime's keys are not read.
        assert!(parse_config(CriRuntime::Containerd, "cc33", text)
            .unwrap()
            .is_none());
    }

    #[test]
    fn crio_infra_container_is_no_container_of_the_pod() {
        let text = r#"{"annotations": {
            "io.kubernetes.cri-o.ContainerType": "sandbox",
            "io.kubernetes.pod.name": "web-5f7",
            "io.kubernetes.pod.namespace": "shop",
            "io.kubernetes.container.name": "POD"}}"#;
        let b = parse_config(CriRuntime::Crio, "dd", text).unwrap().unwrap();
        assert_eq!((b.sandbox, b.container), (true, None));
    }

    #[test]
    fn non_kubernetes_and_bad_configs() {
        assert!(
            parse_config(CriRuntime::Crio, "x", r#"{"ociVersion":"1.0.2"}"#)
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            parse_config(CriRuntime::Crio, "x", "{\"annotations\": "),
            Err(CriError::Json(_))
        ));
        assert!(matches!(
            parse_config(CriRuntime::Crio, "x", "[1]"),
            Err(CriError::NotAnObject)
        ));
        assert!(matches!(
            parse_config(
                CriRuntime::Containerd,
                "x",
                r#"{"annotations": {"io.kubernetes.cri.sandbox-name": "p"}}"#
            ),
            Err(CriError::Incomplete("namespace"))
        ));
        // Annotations of the wrong type are absent, not a panic.
        assert!(parse_config(
            CriRuntime::Containerd,
            "x",
            r#"{"annotations": {"io.kubernetes.cri.sandbox-name": 7}, "linux": 3}"#
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn names_with_and_without_a_container() {
        let mut p = PodIdentity {
            namespace: "ns".into(),
            pod: "p".into(),
            container: Some("c".into()),
            pod_uid: None,
        };
        assert_eq!(p.name(), "ns/p/c");
        p.container = None;
        assert_eq!(p.name(), "ns/p");
        assert_eq!(p.metadata().len(), 2);
    }
}
