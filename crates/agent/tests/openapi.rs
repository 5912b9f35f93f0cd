//! The API's replies against `docs/openapi.json` (issue 12 item 5): the daemon (`daemon::run`
//! on the simulated demo host, its API on a real Unix socket) is asked every JSON route, and a
//! few wrong things; each answer must be what the document says for that route and status
//! (property names, required fields, types, values), and must read back into its
//! `vfguard_api::reply` type and serialise to the same JSON (what the CLI reads is what the
//! daemon sent, nothing lost). Typed fixtures then give every variant and every optional field
//! a value the run did not (a stale map, each incident state, each decision...), and the
//! document must have been exercised entirely: no documented property or value that no reply
//! holds, no sent field that is not documented (the check treats a documented object as
//! closed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use vfguard_agent::config::Config;
use vfguard_agent::daemon::{self, Simulated};
use vfguard_agent::metrics::Metrics;
use vfguard_agent::views::{Control, LiveView};
use vfguard_api::openapi::{Coverage, Document};
use vfguard_api::reply::{
    ActionEntry, ActionList, DecisionAt, ErrorBody, EvidenceCounts, EvidencePage, IncidentDetail,
    IncidentList, IncidentSummary, ObservationAt, OperatorAccepted, RunningStatus, Status,
    TopologyReply,
};
use vfguard_api::{Access, AgentView as _, Limits};
use vfguard_model::{
    Action, ActionId, ActionKind, ActionOutcome, Bdf, Cause, Decision, Errno, IncidentId,
    IncidentState, Method, Mode, Observation, OperatorRequest, Owner, OwnerKind, Pf, RuleRef,
    StaleMap, Topology, Vf, VfChange, VfIndex, VfLinkState, VfState, VfStats,
};
use vfguard_sim::scenario::Scenario;

const DEMO: &str = include_str!("../../../testdata/scenarios/demo.toml");

/// The document, what was checked against it, and what disagreed.
struct Check {
    doc: Document,
    coverage: Coverage,
    errors: Vec<String>,
    /// Routes (method, template) answered with a 2xx.
    answered: BTreeSet<(String, String)>,
}

impl Check {
    fn new() -> Check {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        Check {
            doc: Document::load(&path).unwrap(),
            coverage: Coverage::default(),
            errors: Vec::new(),
            answered: BTreeSet::new(),
        }
    }

    /// `body`, the answer to `method route` with `status`, against the document; read back as
    /// `T`, it must serialise to the same JSON.
    fn reply<T: Serialize + DeserializeOwned + Debug>(
        &mut self,
        method: &str,
        route: &str,
        status: u16,
        body: &Value,
    ) -> Option<T> {
        if let Err(e) = self
            .doc
            .check(method, route, status, body, &mut self.coverage)
        {
            self.errors.extend(e);
        }
        if (200..300).contains(&status) {
            self.answered.insert((method.to_owned(), route.to_owned()));
        }
        match serde_json::from_value::<T>(body.clone()) {
            Ok(t) => {
                let again = serde_json::to_value(&t).unwrap();
                if &again != body {
                    self.errors.push(format!(
                        "{method} {route}: read back as {} and written again, the reply differs:\n  sent  {body}\n  again {again}",
                        std::any::type_name::<T>()
                    ));
                }
                Some(t)
            }
            Err(e) => {
                self.errors.push(format!(
                    "{method} {route} ({status}): does not read as {}: {e}: {body:.300}",
                    std::any::type_name::<T>()
                ));
                None
            }
        }
    }

    /// A typed value, as the daemon would send it, against `method route`'s 200 answer.
    fn fixture<T: Serialize + DeserializeOwned + Debug>(
        &mut self,
        method: &str,
        route: &str,
        value: &T,
    ) {
        let v = serde_json::to_value(value).unwrap();
        self.reply::<T>(method, route, 200, &v);
    }
}

/// One HTTP/1.1 exchange on the API's socket: the status and the JSON body.
fn call(sock: &Path, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: vfguard\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let v = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {body:.300}"));
    (code, v)
}

/// The daemon on the simulated demo host, lingering after the scenario's end, with its API on
/// a Unix socket that the test's own uid may change things through.
struct Daemon {
    sock: PathBuf,
    view: Arc<LiveView>,
    control: mpsc::Sender<Control>,
    agent: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    stop_api: Option<tokio::sync::oneshot::Sender<()>>,
    api: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let me = std::fs::metadata(dir.path()).unwrap().uid();
        let cfg = Config {
            journal: dir.path().join("journal.db"),
            ..Config::default()
        };
        let (control, rx) = mpsc::channel();
        let metrics = Arc::new(Metrics::new());
        let view = Arc::new(LiveView::new(
            cfg.journal.clone(),
            metrics.clone(),
            control.clone(),
        ));
        let scenario = Scenario::parse("demo.toml", DEMO).unwrap();
        let agent = {
            let view = view.clone();
            std::thread::spawn(move || {
                let sim = Simulated {
                    scenario,
                    speed: 0.0,
                    linger: true,
                };
                daemon::run(&cfg, Some(sim), &rx, &view, &metrics, None)
            })
        };
        let sock = dir.path().join("api.sock");
        let (stop_api, stopped) = tokio::sync::oneshot::channel::<()>();
        let api = {
            let (sock, router) = (
                sock.clone(),
                vfguard_api::router(view.clone(), Access { mutators: vec![me] }),
            );
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(vfguard_api::serve_unix(
                    &sock,
                    None,
                    router,
                    Limits::default(),
                    async {
                        let _ = stopped.await;
                    },
                ))
                .unwrap();
            })
        };
        Daemon {
            sock,
            view,
            control,
            agent: Some(agent),
            stop_api: Some(stop_api),
            api: Some(api),
            _dir: dir,
        }
    }

    /// Waits for the scenario's end (the loop lingers, answering requests).
    fn until(&self, end_ms: u64) {
        let start = Instant::now();
        loop {
            if let Status::Running(s) = self.view.status() {
                if s.now_ms >= end_ms && self.sock.exists() {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "the demo did not end: {:?}",
                self.view.status()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(mut self) {
        self.control.send(Control::Stop).unwrap();
        self.agent.take().unwrap().join().unwrap().unwrap();
        self.stop_api.take().unwrap().send(()).unwrap();
        self.api.take().unwrap().join().unwrap();
    }
}

/// What the live run answered that the fixtures reuse.
struct Seen {
    fault: Option<Observation>,
}

fn live(check: &mut Check) -> Seen {
    let d = Daemon::start();
    d.until(45_000);
    let sock = d.sock.clone();
    let get = |path: &str| call(&sock, "GET", path, "");
    let post = |path: &str, body: &str| call(&sock, "POST", path, body);

    let (code, body) = get("/v1/status");
    check.reply::<Status>("GET", "/v1/status", code, &body);
    let (code, body) = get("/v1/topology");
    let topology = check
        .reply::<TopologyReply>("GET", "/v1/topology", code, &body)
        .flatten()
        .unwrap();
    let mut incidents = Vec::new();
    for q in ["", "?open=true", "?owner=vm:mallory"] {
        let (code, body) = get(&format!("/v1/incidents{q}"));
        incidents.extend(
            check
                .reply::<IncidentList>("GET", "/v1/incidents", code, &body)
                .unwrap_or_default(),
        );
    }
    assert!(!incidents.is_empty(), "the demo opened no incident");
    let mut fault = None;
    let ids: BTreeSet<u64> = incidents.iter().map(|i| i.id.0).collect();
    for id in ids {
        let (code, body) = get(&format!("/v1/incidents/{id}"));
        let d = check.reply::<IncidentDetail>("GET", "/v1/incidents/{id}", code, &body);
        fault = fault.or_else(|| {
            d?.observations
                .into_iter()
                .map(|o| o.observation)
                .find(|o| matches!(o, Observation::Fault(_)))
        });
    }
    let (code, body) = get("/v1/actions?limit=10000");
    check.reply::<ActionList>("GET", "/v1/actions", code, &body);

    // An innocent tenant's VF, quarantined and released by hand; the mode switched and back.
    let busy: BTreeSet<Bdf> = incidents.iter().map(|i| i.function).collect();
    let innocent = topology
        .pfs
        .iter()
        .flat_map(|p| &p.vfs)
        .find(|v| {
            matches!(v.owner.kind, OwnerKind::Vm | OwnerKind::Netns) && !busy.contains(&v.bdf)
        })
        .expect("the demo has an untouched tenant")
        .bdf;
    let q = "/v1/functions/{bdf}/quarantine";
    let r = "/v1/functions/{bdf}/release";
    let (code, body) = post(
        &format!("/v1/functions/{innocent}/quarantine"),
        r#"{"reason": "checking the API against its document"}"#,
    );
    assert_eq!(code, 200, "{body}");
    check.reply::<OperatorAccepted>("POST", q, code, &body);
    let (code, body) = post(&format!("/v1/functions/{innocent}/release"), "");
    assert_eq!(code, 200, "{body}");
    check.reply::<OperatorAccepted>("POST", r, code, &body);
    for mode in ["dry_run", "enforce"] {
        let (code, body) = post("/v1/policy/mode", &format!(r#"{{"mode": "{mode}"}}"#));
        assert_eq!(code, 200, "{body}");
        check.reply::<OperatorAccepted>("POST", "/v1/policy/mode", code, &body);
    }
    let (code, body) = get(&format!("/v1/incidents/{}", incidents[0].id.0));
    check.reply::<IncidentDetail>("GET", "/v1/incidents/{id}", code, &body);
    // A page of one entry at each end: the rest is counted.
    let (code, body) = get(&format!(
        "/v1/incidents/{}?first=1&last=1",
        incidents[0].id.0
    ));
    let page = check
        .reply::<IncidentDetail>("GET", "/v1/incidents/{id}", code, &body)
        .expect("the incident");
    let c = &page.counts;
    assert_eq!(c.page, Some(EvidencePage { first: 1, last: 1 }));
    assert!(
        page.observations.len() <= 2 && page.decisions.len() == 2,
        "{body}"
    );
    assert!(c.decisions_omitted > 0, "{body}");
    assert_eq!(
        c.decisions_total,
        page.decisions.len() as u64 + c.decisions_omitted
    );
    assert_eq!(
        c.observations_total,
        page.observations.len() as u64 + c.observations_omitted
    );

    // Errors: each status documented for its route, each body an ErrorBody.
    for (method, path, route, body, want) in [
        ("GET", "/v1/incidents/999999", "/v1/incidents/{id}", "", 404),
        ("GET", "/v1/incidents/x", "/v1/incidents/{id}", "", 400),
        (
            "GET",
            "/v1/incidents/1?first=10001",
            "/v1/incidents/{id}",
            "",
            400,
        ),
        (
            "GET",
            "/v1/incidents/1?frist=1",
            "/v1/incidents/{id}",
            "",
            400,
        ),
        ("GET", "/v1/incidents?onwer=x", "/v1/incidents", "", 400),
        ("GET", "/v1/actions?limit=0", "/v1/actions", "", 400),
        (
            "POST",
            "/v1/functions/0000:99:00.0/quarantine",
            q,
            r#"{"reason": "x"}"#,
            404,
        ),
        (
            "POST",
            "/v1/functions/zz/quarantine",
            q,
            r#"{"reason": "x"}"#,
            400,
        ),
        (
            "POST",
            "/v1/policy/mode",
            "/v1/policy/mode",
            r#"{"mode": 1}"#,
            400,
        ),
    ] {
        let (code, v) = call(&sock, method, path, body);
        assert_eq!(code, want, "{method} {path}: {v}");
        check.reply::<ErrorBody>(method, route, code, &v);
    }
    let (code, v) = post(&format!("/v1/functions/{innocent}/release"), "{}");
    assert_eq!(code, 409, "nothing left to release: {v}");
    check.reply::<ErrorBody>("POST", r, code, &v);
    d.stop();
    Seen { fault }
}

// Fixtures: every variant and every optional field with a value.

fn bdf(s: &str) -> Bdf {
    s.parse().unwrap()
}

fn owner(kind: OwnerKind) -> Owner {
    Owner {
        kind,
        name: Some("web-7".into()),
        id: Some("9f1c2a3e-0000-4000-8000-000000000007".into()),
        pid: Some(4242),
        evidence: vec!["/run/libvirt/qemu/web-7.xml: hostdev 0000:3b:02.1".into()],
        metadata: [
            ("nova.name".to_owned(), "web-7".to_owned()),
            ("nova.project".to_owned(), "retail".to_owned()),
        ]
        .into(),
    }
}

/// Every owner kind (a new one fails to compile here until it is given a place below).
fn owner_kinds() -> Vec<OwnerKind> {
    let all = vec![
        OwnerKind::Vm,
        OwnerKind::Netns,
        OwnerKind::Host,
        OwnerKind::None,
    ];
    for k in &all {
        match k {
            OwnerKind::Vm | OwnerKind::Netns | OwnerKind::Host | OwnerKind::None => {}
        }
    }
    all
}

fn vf_state(link_state: Option<VfLinkState>, stats: bool) -> VfState {
    VfState {
        index: 1,
        mac: Some("52:54:00:12:34:56".parse().unwrap()),
        vlan: Some(0),
        qos: Some(0),
        spoofchk: Some(true),
        trust: Some(false),
        link_state,
        min_tx_rate: Some(0),
        max_tx_rate: Some(0),
        stats: stats.then_some(VfStats {
            rx_packets: 1,
            tx_packets: 2,
            rx_bytes: 3,
            tx_bytes: 4,
            broadcast: 5,
            multicast: 6,
            rx_dropped: 7,
            tx_dropped: 8,
        }),
    }
}

fn topology() -> Topology {
    let vf = |index: u16, kind, state| Vf {
        index: VfIndex(index),
        bdf: bdf(&format!("0000:3b:02.{index}")),
        driver: Some("vfio-pci".into()),
        netdev: Some(format!("ens1f0v{index}")),
        iommu_group: Some(40 + u32::from(index)),
        group_peers: vec![bdf("0000:3b:02.7")],
        iommu_unit: Some("dmar1".into()),
        owner: owner(kind),
        state,
    };
    let mut vfs = Vec::new();
    for (i, kind) in owner_kinds().into_iter().enumerate() {
        let link = [
            Some(VfLinkState::Auto),
            Some(VfLinkState::Enable),
            Some(VfLinkState::Disable),
            None,
        ];
        let i = u16::try_from(i).unwrap();
        vfs.push(vf(
            i,
            kind,
            Some(vf_state(link[usize::from(i) % 4], i == 0)),
        ));
    }
    vfs.push(vf(6, OwnerKind::None, None));
    // A whole NIC the host's sysfs says little of.
    let bare = Pf {
        bdf: bdf("0000:5e:00.0"),
        vendor: None,
        device: None,
        driver: None,
        netdevs: Vec::new(),
        netdev: None,
        numvfs: 1,
        totalvfs: 0,
        numa_node: None,
        reset_method: None,
        aer: false,
        iommu_group: None,
        iommu_unit: None,
        firmware: None,
        owner: Owner::none("no driver bound"),
        vfs: vec![Vf {
            index: VfIndex(0),
            bdf: bdf("0000:5e:00.1"),
            driver: None,
            netdev: None,
            iommu_group: None,
            group_peers: Vec::new(),
            iommu_unit: None,
            owner: Owner::none("no driver bound"),
            state: Some(VfState::default()),
        }],
    };
    Topology {
        version: 7,
        pfs: vec![
            bare,
            Pf {
                bdf: bdf("0000:3b:00.0"),
                vendor: Some("8086".into()),
                device: Some("1572".into()),
                driver: Some("i40e".into()),
                netdevs: vec!["ens1f0".into()],
                netdev: Some("ens1f0".into()),
                numvfs: 7,
                totalvfs: 64,
                numa_node: Some(-1),
                reset_method: Some("flr".into()),
                aer: true,
                iommu_group: Some(39),
                iommu_unit: Some("dmar1".into()),
                firmware: Some("9.20 0x8000d8c5 1.3353.0".into()),
                owner: owner(OwnerKind::Host),
                vfs,
            },
        ],
        warnings: vec!["/sys/bus/pci/devices/0000:3b:02.6/driver: Permission denied".into()],
        stale: Some(StaleMap {
            failed_reads: 3,
            error: "/sys/bus/pci/devices: Too many open files (os error 24)".into(),
            fd_exhausted: true,
        }),
        ..Topology::default()
    }
}

fn action(id: u64, kind: ActionKind) -> Action {
    Action {
        id: ActionId(id),
        incident: IncidentId(1),
        function: bdf("0000:3b:02.1"),
        pf: Some(bdf("0000:3b:00.0")),
        pf_netdev: Some("ens1f0".into()),
        vf: Some(VfIndex(1)),
        owner: Some(owner(OwnerKind::Vm)),
        kind,
        rule: RuleRef::Rule("spoof".into()),
        dry_run: false,
        at: 8000,
    }
}

/// Every action kind (a new one fails to compile here until it is given a fixture).
fn action_kinds() -> Vec<ActionKind> {
    let all = vec![
        ActionKind::Notify,
        ActionKind::SetVf(VfChange::LinkState(VfLinkState::Disable)),
        ActionKind::ResetVf,
        ActionKind::Detach,
        ActionKind::PauseVm,
        ActionKind::ResetPf,
        ActionKind::Restore(Box::new(vf_state(Some(VfLinkState::Auto), false))),
    ];
    for k in &all {
        match k {
            ActionKind::Notify
            | ActionKind::SetVf(_)
            | ActionKind::ResetVf
            | ActionKind::Detach
            | ActionKind::PauseVm
            | ActionKind::ResetPf
            | ActionKind::Restore(_) => {}
        }
    }
    all
}

fn outcome(id: u64, error: Option<Errno>, before: bool) -> ActionOutcome {
    ActionOutcome {
        id: ActionId(id),
        error,
        before: before.then(|| vf_state(Some(VfLinkState::Auto), true)),
        at: 8100,
    }
}

/// Every decision, every attribution method, cause, state and mode in one.
fn decisions() -> Vec<Decision> {
    let i = IncidentId(1);
    let mut all = vec![
        Decision::IncidentOpened {
            incident: i,
            function: bdf("0000:3b:02.1"),
            owner: Some(owner(OwnerKind::Vm)),
        },
        Decision::IncidentOpened {
            incident: i,
            function: bdf("0000:3b:00.0"),
            owner: None,
        },
        Decision::ThresholdCrossed {
            incident: i,
            rule: "spoof".into(),
            count: 3,
        },
        Decision::Act(action(7, ActionKind::Notify)),
        Decision::Act(Action {
            pf: None,
            pf_netdev: None,
            vf: None,
            owner: None,
            ..action(8, ActionKind::Notify)
        }),
        Decision::Suppressed {
            incident: i,
            action: "reset_pf".into(),
            reason: "never automatic".into(),
        },
        Decision::Contained {
            incident: i,
            by: "set_vf:link_state".into(),
        },
        Decision::Restored { incident: i },
        Decision::Closed {
            incident: i,
            reason: "quiet for 300 s".into(),
        },
        Decision::ModeChanged {
            from: Mode::Enforce,
            to: Mode::DryRun,
            by: "uid=0(root) via unix socket".into(),
        },
        Decision::ModeChanged {
            from: Mode::DryRun,
            to: Mode::Observe,
            by: "bearer token from 127.0.0.1:4000".into(),
        },
    ];
    for method in Method::ALL {
        all.push(Decision::Attributed {
            incident: i,
            method,
            confidence: 0.9,
            evidence: "i40e 0000:3b:00.0: Malicious Driver Detection event 0x02 on TX queue 1 PF number 0x00 VF number 0x01".into(),
        });
    }
    let causes = [
        Cause::Escalated,
        Cause::Contained,
        Cause::Restored,
        Cause::Reoffended,
        Cause::ContainmentUndone,
        Cause::Exhausted,
        Cause::Closed,
    ];
    for (n, cause) in causes.into_iter().enumerate() {
        let s = IncidentState::ALL;
        all.push(Decision::StateChanged {
            incident: i,
            from: s[n % s.len()],
            to: s[(n + 1) % s.len()],
            cause,
        });
    }
    for d in &all {
        // A new decision fails to compile here until it is given a fixture above.
        match d {
            Decision::IncidentOpened { .. }
            | Decision::Attributed { .. }
            | Decision::ThresholdCrossed { .. }
            | Decision::Act(_)
            | Decision::Suppressed { .. }
            | Decision::Contained { .. }
            | Decision::Restored { .. }
            | Decision::StateChanged { .. }
            | Decision::Closed { .. }
            | Decision::ModeChanged { .. } => {}
        }
    }
    for c in causes {
        match c {
            Cause::Escalated
            | Cause::Contained
            | Cause::Restored
            | Cause::Reoffended
            | Cause::ContainmentUndone
            | Cause::Exhausted
            | Cause::Closed => {}
        }
    }
    all
}

/// Every observation that is evidence (a tick never is: the journal leaves ticks out).
fn observations(fault: Observation) -> Vec<Observation> {
    let by = "uid=1000(alice) pid=4242 via unix socket".to_owned();
    let all = vec![
        fault,
        Observation::Aer {
            function: bdf("0000:3b:00.0"),
            correctable: 1,
            nonfatal: 0,
            fatal: 0,
        },
        Observation::VfStats {
            pf: bdf("0000:3b:00.0"),
            vf: VfIndex(1),
            stats: VfStats::default(),
        },
        Observation::Outcome(outcome(7, Some(Errno::EBUSY), true)),
        Observation::Outcome(outcome(8, None, false)),
        Observation::Operator(OperatorRequest::Quarantine {
            function: bdf("0000:3b:02.1"),
            reason: "tenant reported a compromised guest".into(),
            by: by.clone(),
        }),
        Observation::Operator(OperatorRequest::Release {
            function: bdf("0000:3b:02.1"),
            by: by.clone(),
        }),
        Observation::Operator(OperatorRequest::SetMode {
            mode: Mode::Enforce,
            by,
        }),
    ];
    for o in &all {
        match o {
            Observation::Fault(_)
            | Observation::Aer { .. }
            | Observation::VfStats { .. }
            | Observation::Outcome(_)
            | Observation::Operator(_) => {}
            Observation::Tick => unreachable!("never evidence"),
        }
    }
    all
}

fn fixtures(check: &mut Check, seen: Seen) {
    check.fixture("GET", "/v1/status", &Status::Starting);
    for mode in [Mode::Observe, Mode::DryRun, Mode::Enforce] {
        let status = Status::Running(RunningStatus {
            version: "0.1.0".into(),
            mode,
            now_ms: 1,
            records: 2,
            lost: 3,
            history_skipped: 4,
            topology_version: 5,
            topology_stale: true,
            pfs: 1,
            vfs: 7,
            incidents: IncidentState::ALL
                .into_iter()
                .filter(|s| s.is_open())
                .map(|s| (s, 1))
                .collect(),
        });
        check.fixture("GET", "/v1/status", &status);
    }
    check.fixture("GET", "/v1/topology", &None::<Topology>);
    check.fixture("GET", "/v1/topology", &Some(topology()));
    let rows: IncidentList = IncidentState::ALL
        .into_iter()
        .enumerate()
        .map(|(n, state)| IncidentSummary {
            id: IncidentId(n as u64 + 1),
            function: bdf("0000:3b:02.1"),
            pf: (n % 2 == 0).then(|| bdf("0000:3b:00.0")),
            state,
            owner: (n % 2 == 1).then(|| owner(OwnerKind::Netns)),
            opened_ms: 1000,
            updated_ms: 2000,
        })
        .collect();
    check.fixture("GET", "/v1/incidents", &rows);
    let mut actions: ActionList = action_kinds()
        .into_iter()
        .enumerate()
        .map(|(n, kind)| ActionEntry {
            action: action(n as u64, kind),
            outcome: match n % 3 {
                0 => None,
                1 => Some(outcome(n as u64, None, false)),
                _ => Some(outcome(n as u64, Some(Errno::EOPNOTSUPP), true)),
            },
        })
        .collect();
    // On a PF-level incident: no PF, netdev, VF or owner of its own.
    actions.push(ActionEntry {
        action: Action {
            pf: None,
            pf_netdev: None,
            vf: None,
            owner: None,
            ..action(20, ActionKind::Notify)
        },
        outcome: Some(outcome(20, None, false)),
    });
    check.fixture("GET", "/v1/actions", &actions);
    let fault = seen.fault.expect("the demo's incidents hold kernel faults");
    let detail = IncidentDetail {
        id: IncidentId(1),
        function: bdf("0000:3b:02.1"),
        pf: Some(bdf("0000:3b:00.0")),
        state: IncidentState::Contained,
        owner: Some(owner(OwnerKind::Vm)),
        opened_ms: 1000,
        observations: observations(fault)
            .into_iter()
            .map(|observation| ObservationAt {
                at_ms: 1000,
                observation,
            })
            .collect(),
        decisions: decisions()
            .into_iter()
            .map(|decision| DecisionAt {
                at_ms: 1000,
                decision,
            })
            .collect(),
        counts: EvidenceCounts {
            page: Some(EvidencePage::default()),
            observations_total: 1_000_000,
            observations_omitted: 999_900,
            observations_dropped: 7,
            decisions_total: 3,
            decisions_omitted: 0,
            decisions_dropped: 0,
            actions_total: actions.len() as u64,
            actions_omitted: 0,
        },
        actions,
    };
    check.fixture("GET", "/v1/incidents/{id}", &detail);
    let pf_level = IncidentDetail {
        function: bdf("0000:3b:00.0"),
        pf: None,
        owner: None,
        state: IncidentState::Open,
        observations: Vec::new(),
        decisions: Vec::new(),
        actions: Vec::new(),
        // As `vfguard explain --all --json` writes it: the lists whole.
        counts: EvidenceCounts::whole(0, 0, 0),
        ..detail
    };
    check.fixture("GET", "/v1/incidents/{id}", &pf_level);
    let accepted = OperatorAccepted {
        at_ms: 9000,
        decisions: decisions(),
        outcomes: vec![outcome(7, None, true)],
    };
    for route in [
        "/v1/functions/{bdf}/quarantine",
        "/v1/functions/{bdf}/release",
        "/v1/policy/mode",
    ] {
        check.fixture("POST", route, &accepted);
    }
}

#[test]
fn every_reply_is_what_docs_openapi_json_says_and_the_document_says_nothing_more() {
    let mut check = Check::new();
    let seen = live(&mut check);
    // Every JSON route answered by the daemon itself, before any fixture.
    let json_routes: BTreeSet<(String, String)> = vfguard_api::ROUTES
        .iter()
        .filter(|(_, p)| p.starts_with("/v1/"))
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(check.answered, json_routes, "the run left a route unasked");
    fixtures(&mut check, seen);
    assert!(
        check.errors.is_empty(),
        "replies and docs/openapi.json disagree:\n{}",
        check.errors.join("\n")
    );
    let unsent = check.doc.unexercised(&check.coverage);
    assert!(
        unsent.is_empty(),
        "docs/openapi.json documents what no reply holds:\n{}",
        unsent.join("\n")
    );
}
