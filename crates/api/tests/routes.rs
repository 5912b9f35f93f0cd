//! The routes against a fake view: shapes, filters passed through, mutations authorised and
//! handed to the loop with who asked, and 4xx with a reason for every malformed request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt as _;
use vfguard_api::reply::{
    ActionList, EvidenceCounts, EvidencePage, IncidentDetail, IncidentList, IncidentSummary,
    OperatorAccepted, RunningStatus, Status,
};
use vfguard_api::{Access, Caller, Limits};
use vfguard_api::{AgentView, IncidentQuery, Refusal, Reply, ViewError};
use vfguard_model::{IncidentId, IncidentState, Mode, OperatorRequest, Topology};

#[derive(Default)]
struct Fake {
    asked: Mutex<Vec<IncidentQuery>>,
    limits: Mutex<Vec<usize>>,
    pages: Mutex<Vec<EvidencePage>>,
    requests: Mutex<Vec<OperatorRequest>>,
    broken: bool,
}

fn running() -> Status {
    Status::Running(RunningStatus {
        version: "0.1.0".into(),
        mode: Mode::Enforce,
        now_ms: 5000,
        records: 12,
        lost: 0,
        history_skipped: 0,
        topology_version: 3,
        topology_stale: false,
        pfs: 1,
        vfs: 4,
        incidents: [(IncidentState::Contained, 1)].into(),
    })
}

fn summary() -> IncidentSummary {
    IncidentSummary {
        id: IncidentId(1),
        function: "0000:3b:02.1".parse().unwrap(),
        pf: Some("0000:3b:00.0".parse().unwrap()),
        state: IncidentState::Contained,
        owner: None,
        opened_ms: 1000,
        updated_ms: 2000,
    }
}

/// Root and uid 1000 may change things.
fn router(view: Arc<Fake>) -> axum::Router {
    vfguard_api::router(view, Access::root_and(1000))
}

fn unix(uid: u32) -> Caller {
    Caller::Unix {
        uid,
        pid: Some(4242),
        user: None,
    }
}

impl AgentView for Fake {
    fn status(&self) -> Status {
        running()
    }
    fn topology(&self) -> Option<Arc<Topology>> {
        Some(Arc::new(Topology::default()))
    }
    fn incidents(&self, q: &IncidentQuery) -> Result<IncidentList, ViewError> {
        if self.broken {
            return Err(ViewError("journal /x.db: disk I/O error".into()));
        }
        self.asked.lock().unwrap().push(q.clone());
        Ok(vec![summary()])
    }
    fn incident(&self, id: u64, page: EvidencePage) -> Result<Option<IncidentDetail>, ViewError> {
        self.pages.lock().unwrap().push(page);
        let s = summary();
        Ok((id == 1).then(|| IncidentDetail {
            id: s.id,
            function: s.function,
            pf: s.pf,
            state: s.state,
            owner: s.owner,
            opened_ms: s.opened_ms,
            observations: Vec::new(),
            decisions: Vec::new(),
            actions: Vec::new(),
            counts: EvidenceCounts {
                page: Some(page),
                observations_total: 2_000_000,
                observations_omitted: 2_000_000,
                ..EvidenceCounts::default()
            },
        }))
    }
    fn actions(&self, limit: usize) -> Result<ActionList, ViewError> {
        self.limits.lock().unwrap().push(limit);
        Ok(Vec::new())
    }
    fn metrics(&self) -> String {
        "# TYPE vfguard_up gauge\nvfguard_up 1\n# EOF\n".into()
    }
    fn submit(
        &self,
        req: OperatorRequest,
    ) -> Result<tokio::sync::oneshot::Receiver<Reply>, ViewError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let reply = match &req {
            OperatorRequest::Quarantine { function, .. }
                if function.to_string() == "0000:99:00.0" =>
            {
                Err(Refusal::NotFound(format!(
                    "no function {function} on this host"
                )))
            }
            OperatorRequest::Release { function, .. } => Err(Refusal::Conflict(format!(
                "nothing to release: no open incident on {function}"
            ))),
            _ => Ok(OperatorAccepted {
                at_ms: 7000,
                decisions: Vec::new(),
                outcomes: Vec::new(),
            }),
        };
        self.requests.lock().unwrap().push(req);
        let _ = tx.send(reply);
        Ok(rx)
    }
}

async fn post(
    view: Arc<Fake>,
    uri: &str,
    caller: Option<Caller>,
    body: &[u8],
) -> (StatusCode, Value) {
    let mut req = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    if let Some(c) = caller {
        req.extensions_mut().insert(c);
    }
    let r = router(view).oneshot(req).await.unwrap();
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, v)
}

async fn get(view: Arc<Fake>, uri: &str) -> (StatusCode, Value) {
    let r = router(view)
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = r.status();
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn routes_answer_in_their_shapes() {
    rt().block_on(async {
        let v = Arc::new(Fake::default());
        assert_eq!(
            get(v.clone(), "/v1/status").await,
            (
                StatusCode::OK,
                json!({
                    "state": "running", "version": "0.1.0", "mode": "enforce", "now_ms": 5000,
                    "records": 12, "lost": 0, "history_skipped": 0, "topology_version": 3,
                    "topology_stale": false, "pfs": 1, "vfs": 4, "incidents": {"contained": 1}
                })
            )
        );
        assert_eq!(
            get(v.clone(), "/v1/topology").await.1,
            json!({"version": 0, "pfs": [], "warnings": []})
        );
        assert_eq!(
            get(v.clone(), "/v1/incidents/1").await.1,
            json!({
                "id": 1, "function": "0000:3b:02.1", "pf": "0000:3b:00.0", "state": "contained",
                "owner": null, "opened_ms": 1000, "observations": [], "decisions": [], "actions": [],
                "page": {"first": 50, "last": 50},
                "observations_total": 2_000_000, "observations_omitted": 2_000_000,
                "observations_dropped": 0, "decisions_total": 0, "decisions_omitted": 0,
                "decisions_dropped": 0, "actions_total": 0, "actions_omitted": 0
            })
        );
        let (s, body) = get(v.clone(), "/v1/incidents/1?first=0&last=10000").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(body["page"], json!({"first": 0, "last": 10000}));
        assert_eq!(
            v.pages.lock().unwrap().clone(),
            [
                EvidencePage::default(),
                EvidencePage {
                    first: 0,
                    last: 10_000
                }
            ]
        );
        assert_eq!(get(v.clone(), "/v1/actions").await.1, json!([]));
        assert_eq!(get(v.clone(), "/v1/actions?limit=5").await.1, json!([]));
        assert_eq!(v.limits.lock().unwrap().clone(), [100, 5]);
        let (s, body) = get(
            v.clone(),
            "/v1/incidents?open=true&owner=vm:web-7&pf=0000:3b:00.0",
        )
        .await;
        assert_eq!(
            (s, body),
            (
                StatusCode::OK,
                json!([{
                    "id": 1, "function": "0000:3b:02.1", "pf": "0000:3b:00.0", "state": "contained",
                    "owner": null, "opened_ms": 1000, "updated_ms": 2000
                }])
            )
        );
        let asked = v.asked.lock().unwrap().clone();
        assert_eq!(
            asked,
            [IncidentQuery {
                open: true,
                owner: Some("vm:web-7".into()),
                pf: Some("0000:3b:00.0".parse().unwrap()),
            }]
        );
    });
}

#[test]
fn malformed_requests_get_4xx_with_a_reason() {
    rt().block_on(async {
        let v = Arc::new(Fake::default());
        for (uri, status, says) in [
            ("/v1/incidents/abc", StatusCode::BAD_REQUEST, "not a number"),
            // Issue 13: past i64::MAX the journal lookup failed with a 500.
            (
                "/v1/incidents/18446744073709551615",
                StatusCode::NOT_FOUND,
                "no incident 18446744073709551615",
            ),
            ("/v1/incidents/7", StatusCode::NOT_FOUND, "no incident 7"),
            (
                "/v1/incidents/1?first=10001",
                StatusCode::BAD_REQUEST,
                "first=10001: expected a number from 0 to 10000",
            ),
            (
                "/v1/incidents/1?last=-1",
                StatusCode::BAD_REQUEST,
                "last=-1: expected a number from 0 to 10000",
            ),
            (
                "/v1/incidents/1?frist=1",
                StatusCode::BAD_REQUEST,
                "unknown query parameter `frist`; this route takes: first, last",
            ),
            (
                "/v1/incidents?pf=3b:00",
                StatusCode::BAD_REQUEST,
                "pf=3b:00",
            ),
            (
                "/v1/incidents?open=maybe",
                StatusCode::BAD_REQUEST,
                "expected true or false",
            ),
            (
                "/v1/incidents?onwer=x",
                StatusCode::BAD_REQUEST,
                "unknown query parameter `onwer`",
            ),
            (
                "/v1/actions?limit=0",
                StatusCode::BAD_REQUEST,
                "from 1 to 10000",
            ),
            (
                "/v1/actions?limit=-1",
                StatusCode::BAD_REQUEST,
                "from 1 to 10000",
            ),
            (
                "/v2/status",
                StatusCode::NOT_FOUND,
                "routes: GET /v1/status",
            ),
            (
                "/v1/incidents/%FF",
                StatusCode::BAD_REQUEST,
                "see GET /v1/status",
            ),
        ] {
            let (s, body) = get(v.clone(), uri).await;
            assert_eq!(s, status, "{uri}: {body}");
            let msg = body["error"].as_str().unwrap_or_default();
            assert!(msg.contains(says), "{uri}: {msg}");
        }
        assert!(
            v.asked.lock().unwrap().is_empty(),
            "no bad request reached the view"
        );
        let broken = Arc::new(Fake {
            broken: true,
            ..Fake::default()
        });
        let (s, body) = get(broken, "/v1/incidents").await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body["error"].as_str().unwrap().contains("disk I/O error"));
    });
}

#[test]
fn serves_on_a_unix_socket_with_mode_0660_and_refuses_a_second_server() {
    use std::io::{Read as _, Write as _};
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("run/vfguard.sock");
    let rt = rt();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let path = sock.clone();
    let server = rt.spawn(async move {
        vfguard_api::serve_unix(
            &path,
            None,
            router(Arc::new(Fake::default())),
            Limits::default(),
            async {
                let _ = rx.await;
            },
        )
        .await
    });
    rt.block_on(async {
        for _ in 0..200 {
            if sock.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    });
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let sock2 = sock.clone();
    let body = rt
        .block_on(async move {
            tokio::task::spawn_blocking(move || {
                let mut s = std::os::unix::net::UnixStream::connect(&sock2).unwrap();
                s.write_all(
                    b"GET /v1/status HTTP/1.1\r\nHost: vfguard\r\nConnection: close\r\n\r\n",
                )
                .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                out
            })
            .await
        })
        .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with(r#""incidents":{"contained":1}}"#), "{body}");
    let second = rt.block_on(vfguard_api::serve_unix(
        &sock,
        None,
        router(Arc::new(Fake::default())),
        Limits::default(),
        async {},
    ));
    assert!(second
        .unwrap_err()
        .to_string()
        .contains("in use by a running vfguard"));
    tx.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();
    assert!(!sock.exists(), "the socket is removed on shutdown");
    // A file that is not a socket is never taken for a stale one.
    std::fs::write(&sock, "my journal").unwrap();
    let e = rt.block_on(vfguard_api::serve_unix(
        &sock,
        None,
        router(Arc::new(Fake::default())),
        Limits::default(),
        async {},
    ));
    assert!(e.unwrap_err().to_string().contains("is not a socket"));
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "my journal");
}

#[test]
fn mutations_need_an_authorised_caller_and_carry_who_asked() {
    rt().block_on(async {
        let v = Arc::new(Fake::default());
        let uri = "/v1/functions/0000:3c:00.4/quarantine";
        let body = br#"{"reason": "tenant reported a compromised guest"}"#;
        let (s, b) = post(v.clone(), uri, None, body).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
        assert!(b["error"].as_str().unwrap().contains("unauthenticated"));
        let (s, b) = post(v.clone(), uri, Some(unix(1001)), body).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
        assert!(b["error"]
            .as_str()
            .unwrap()
            .contains("may read but not change"));
        assert!(
            v.requests.lock().unwrap().is_empty(),
            "nothing reached the loop"
        );

        let (s, b) = post(v.clone(), uri, Some(unix(1000)), body).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let want = OperatorRequest::Quarantine {
            function: "0000:3c:00.4".parse().unwrap(),
            reason: "tenant reported a compromised guest".into(),
            by: "uid=1000 pid=4242 via unix socket".into(),
        };
        assert_eq!(v.requests.lock().unwrap().clone(), [want]);
        let token = Caller::Token {
            peer: "192.0.2.7:41000".parse().unwrap(),
            read_only: false,
        };
        let (s, _) = post(
            v.clone(),
            "/v1/policy/mode",
            Some(token),
            br#"{"mode": "dry-run"}"#,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(
            v.requests.lock().unwrap().last().unwrap(),
            &OperatorRequest::SetMode {
                mode: vfguard_model::Mode::DryRun,
                by: "bearer token from 192.0.2.7:41000".into()
            }
        );
        // The loop's refusals keep their meaning.
        let (s, b) = post(
            v.clone(),
            "/v1/functions/0000:99:00.0/quarantine",
            Some(unix(0)),
            body,
        )
        .await;
        assert_eq!(
            (s, b["error"].as_str().unwrap()),
            (
                StatusCode::NOT_FOUND,
                "no function 0000:99:00.0 on this host"
            )
        );
        let (s, _) = post(
            v.clone(),
            "/v1/functions/0000:3c:00.4/release",
            Some(unix(0)),
            b"",
        )
        .await;
        assert_eq!(s, StatusCode::CONFLICT);
    });
}

#[test]
fn malformed_mutations_get_4xx_with_a_reason_and_never_reach_the_loop() {
    rt().block_on(async {
        let v = Arc::new(Fake::default());
        let q = "/v1/functions/0000:3c:00.4/quarantine";
        let big = format!(r#"{{"reason": "{}"}}"#, "x".repeat(100_000));
        for (uri, body, status, says) in [
            (q, &b""[..], StatusCode::BAD_REQUEST, "a reason is required"),
            (
                q,
                br#"{"reason": "  "}"#,
                StatusCode::BAD_REQUEST,
                "a reason is required",
            ),
            (
                q,
                br#"{"reason": "a\nb"}"#,
                StatusCode::BAD_REQUEST,
                "one line",
            ),
            (
                q,
                br#"{"reason": 7}"#,
                StatusCode::BAD_REQUEST,
                "expected JSON like",
            ),
            (
                q,
                br#"{"reason": "x", "force": true}"#,
                StatusCode::BAD_REQUEST,
                "unknown field `force`",
            ),
            (
                q,
                b"reason=x",
                StatusCode::BAD_REQUEST,
                "expected JSON like",
            ),
            (
                q,
                big.as_bytes(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "at most 65536 bytes",
            ),
            (
                "/v1/functions/zz:00.9/quarantine",
                br#"{"reason": "x"}"#,
                StatusCode::BAD_REQUEST,
                "not a PCI address",
            ),
            (
                "/v1/functions/0000:3c:00.4/release",
                br#"{"why": 1}"#,
                StatusCode::BAD_REQUEST,
                "unknown field `why`",
            ),
            (
                "/v1/policy/mode",
                br#"{"mode": "panic"}"#,
                StatusCode::BAD_REQUEST,
                "expected one of observe, dry_run, enforce",
            ),
            (
                "/v1/policy/mode",
                b"{}",
                StatusCode::BAD_REQUEST,
                "mode missing",
            ),
            (
                "/v1/status",
                b"{}",
                StatusCode::METHOD_NOT_ALLOWED,
                "POST is not allowed on /v1/status",
            ),
        ] {
            let (s, b) = post(v.clone(), uri, Some(unix(0)), body).await;
            assert_eq!(
                s,
                status,
                "{uri} {}: {b}",
                String::from_utf8_lossy(&body[..body.len().min(60)])
            );
            let msg = b["error"].as_str().unwrap_or_default();
            assert!(msg.contains(says), "{uri}: {msg}");
        }
        assert!(v.requests.lock().unwrap().is_empty());
    });
}

#[test]
fn metrics_are_openmetrics_text_when_asked_and_classic_text_otherwise() {
    rt().block_on(async {
        let r = router(Arc::new(Fake::default()))
            .oneshot(
                Request::get("/metrics")
                    .header("accept", "application/openmetrics-text;version=1.0.0")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        assert!(body.ends_with(b"# EOF\n"));
        // Without asking: the classic format, for curl and promtool.
        let r = router(Arc::new(Fake::default()))
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            r.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        assert_eq!(&body[..], b"# TYPE vfguard_up gauge\nvfguard_up 1\n");
    });
}

use proptest::prelude::*;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Any body on any mutation: a 2xx or a 4xx with a JSON reason, never a 5xx or a panic.
    #[test]
    fn any_body_gets_an_answer_not_a_crash(
        route in 0usize..3,
        body in proptest::prop_oneof![
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300).boxed(),
            "\\{\"(reason|mode|x)\": (\"[^\"]{0,40}\"|[0-9]{1,5}|null|true|\\[\\]|\\{\\})\\}".prop_map(String::into_bytes).boxed(),
        ],
    ) {
        let uri = ["/v1/functions/0000:3c:00.4/quarantine", "/v1/functions/0000:3c:00.4/release", "/v1/policy/mode"][route];
        let (s, b) = rt().block_on(post(Arc::new(Fake::default()), uri, Some(unix(0)), &body));
        proptest::prop_assert!(s.is_success() || s.is_client_error(), "{} {}", s, b);
        if !s.is_success() {
            proptest::prop_assert!(b["error"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
}

/// One raw HTTP/1.1 exchange over `stream`; the status line and the body.
fn exchange(mut stream: impl std::io::Read + std::io::Write, request: &str) -> (String, String) {
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    let status = out.lines().next().unwrap_or_default().to_owned();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

fn post_request(path: &str, extra_header: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: vfguard\r\nConnection: close\r\n{extra_header}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn the_unix_socket_names_the_caller_from_the_kernel_and_refuses_unlisted_users() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let me = std::fs::metadata(dir.path()).unwrap().uid();
    let rt = rt();
    for (access, want) in [
        (Access { mutators: vec![me] }, "200"),
        (Access { mutators: vec![] }, "403"),
    ] {
        let sock = dir.path().join(format!("api-{want}.sock"));
        let fake = Arc::new(Fake::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (path, view) = (sock.clone(), fake.clone());
        let server = rt.spawn(async move {
            vfguard_api::serve_unix(
                &path,
                None,
                vfguard_api::router(view, access),
                Limits::default(),
                async {
                    let _ = rx.await;
                },
            )
            .await
        });
        rt.block_on(async {
            while !sock.exists() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        });
        let s = sock.clone();
        let (status, body) = rt
            .block_on(async move {
                tokio::task::spawn_blocking(move || {
                    let stream = std::os::unix::net::UnixStream::connect(&s).unwrap();
                    exchange(
                        stream,
                        &post_request(
                            "/v1/functions/0000:3c:00.4/quarantine",
                            "",
                            r#"{"reason":"test"}"#,
                        ),
                    )
                })
                .await
            })
            .unwrap();
        assert!(status.contains(want), "{status}: {body}");
        let requests = fake.requests.lock().unwrap().clone();
        if want == "200" {
            let by = match &requests[..] {
                [OperatorRequest::Quarantine { by, .. }] => by.clone(),
                other => panic!("{other:?}"),
            };
            let pid = std::process::id();
            assert!(by.starts_with(&format!("uid={me}")), "{by}");
            assert!(by.contains(&format!("pid={pid} ")), "{by}");
        } else {
            assert!(body.contains("may read but not change"), "{body}");
            assert!(requests.is_empty());
        }
        tx.send(()).unwrap();
        rt.block_on(server).unwrap().unwrap();
    }
}

#[test]
fn tcp_needs_the_bearer_token_for_every_request() {
    let rt = rt();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Arc::new(Fake::default());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let view = fake.clone();
    let server = rt.spawn(async move {
        let tokens = vfguard_api::Tokens {
            change: b"s3cret-token".to_vec(),
            read: Some(b"scrape-only-token".to_vec()),
        };
        vfguard_api::serve_tcp_on(listener, router(view), tokens, Limits::default(), async {
            let _ = rx.await;
        })
        .await
    });
    let ask = |req: String| {
        rt.block_on(async move {
            tokio::task::spawn_blocking(move || {
                exchange(std::net::TcpStream::connect(addr).unwrap(), &req)
            })
            .await
        })
        .unwrap()
    };
    let get = |auth: &str| {
        format!("GET /v1/status HTTP/1.1\r\nHost: vfguard\r\nConnection: close\r\n{auth}\r\n")
    };
    let (s, b) = ask(get(""));
    assert!(
        s.contains("401") && b.contains("Authorization: Bearer"),
        "{s} {b}"
    );
    let (s, b) = ask(get("Authorization: Bearer wrong\r\n"));
    assert!(s.contains("401") && b.contains("wrong"), "{s} {b}");
    let (s, _) = ask(get("Authorization: Bearer s3cret-token\r\n"));
    assert!(s.contains("200"), "{s}");
    let (s, _) = ask(post_request("/v1/policy/mode", "", r#"{"mode":"observe"}"#));
    assert!(s.contains("401"), "{s}");
    // The scraper's token reads, and may not change anything.
    let (s, _) = ask(get("Authorization: Bearer scrape-only-token\r\n"));
    assert!(s.contains("200"), "{s}");
    let (s, b) = ask(post_request(
        "/v1/policy/mode",
        "Authorization: Bearer scrape-only-token\r\n",
        r#"{"mode":"observe"}"#,
    ));
    assert!(
        s.contains("403") && b.contains("read-only token"),
        "{s} {b}"
    );
    assert!(fake.requests.lock().unwrap().is_empty());
    let (s, _) = ask(post_request(
        "/v1/policy/mode",
        "Authorization: Bearer s3cret-token\r\n",
        r#"{"mode":"observe"}"#,
    ));
    assert!(s.contains("200"), "{s}");
    let by = match &fake.requests.lock().unwrap()[..] {
        [OperatorRequest::SetMode { by, .. }] => by.clone(),
        other => panic!("{other:?}"),
    };
    assert!(by.starts_with("bearer token from 127.0.0.1:"), "{by}");
    tx.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();
    // No token, no TCP.
    let open = rt.block_on(vfguard_api::serve_tcp(
        "127.0.0.1:0".parse().unwrap(),
        router(Arc::new(Fake::default())),
        vfguard_api::Tokens {
            change: b"  \n".to_vec(),
            read: None,
        },
        Limits::default(),
        async {},
    ));
    assert!(open
        .unwrap_err()
        .to_string()
        .contains("needs a bearer token"));
}

/// docs/openapi.json documents exactly the routes the router serves.
#[test]
fn the_openapi_document_matches_the_routes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let mut documented: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), p.clone()))
        })
        .collect();
    documented.sort();
    let mut served: Vec<(String, String)> = vfguard_api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    served.sort();
    assert_eq!(documented, served, "docs/openapi.json and ROUTES differ");
    // Every listed route is one the router serves (not the fallback, not another method).
    rt().block_on(async {
        for (method, p) in vfguard_api::ROUTES {
            let uri = p.replace("{id}", "1").replace("{bdf}", "0000:3c:00.4");
            let mut req = Request::builder()
                .method(*method)
                .uri(&uri)
                .body(Body::from(&br#"{"reason":"x","mode":"observe"}"#[..]))
                .unwrap();
            req.extensions_mut().insert(unix(0));
            let r = router(Arc::new(Fake::default()))
                .oneshot(req)
                .await
                .unwrap();
            let status = r.status();
            let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("no route") && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}: {status} {text}"
            );
        }
    });
}
