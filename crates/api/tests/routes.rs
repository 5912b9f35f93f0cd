//! The routes against a fake view: shapes, filters passed through, and 4xx with a reason for
//! every malformed request.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt as _;
use vfguard_api::{router, AgentView, IncidentQuery, ViewError};

#[derive(Default)]
struct Fake {
    asked: Mutex<Vec<IncidentQuery>>,
    broken: bool,
}

impl AgentView for Fake {
    fn status(&self) -> Value {
        json!({"records": 12, "lost": 0})
    }
    fn topology(&self) -> Value {
        json!({"pfs": []})
    }
    fn incidents(&self, q: &IncidentQuery) -> Result<Value, ViewError> {
        if self.broken {
            return Err(ViewError("journal /x.db: disk I/O error".into()));
        }
        self.asked.lock().unwrap().push(q.clone());
        Ok(json!([{"id": 1, "state": "contained"}]))
    }
    fn incident(&self, id: u64) -> Result<Option<Value>, ViewError> {
        Ok((id == 1).then(|| json!({"id": 1, "observations": []})))
    }
    fn actions(&self, limit: usize) -> Result<Value, ViewError> {
        Ok(json!({"limit": limit}))
    }
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
            (StatusCode::OK, json!({"records": 12, "lost": 0}))
        );
        assert_eq!(get(v.clone(), "/v1/topology").await.1, json!({"pfs": []}));
        assert_eq!(get(v.clone(), "/v1/incidents/1").await.1["id"], 1);
        assert_eq!(get(v.clone(), "/v1/actions").await.1, json!({"limit": 100}));
        assert_eq!(
            get(v.clone(), "/v1/actions?limit=5").await.1,
            json!({"limit": 5})
        );
        let (s, body) = get(
            v.clone(),
            "/v1/incidents?open=true&owner=vm:web-7&pf=0000:3b:00.0",
        )
        .await;
        assert_eq!(
            (s, body[0]["state"].as_str()),
            (StatusCode::OK, Some("contained"))
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
            ("/v1/incidents/7", StatusCode::NOT_FOUND, "no incident 7"),
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
            ("/v2/status", StatusCode::NOT_FOUND, "routes: /v1/status"),
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
        vfguard_api::serve_unix(&path, router(Arc::new(Fake::default())), async {
            let _ = rx.await;
        })
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
    assert!(body.ends_with(r#"{"lost":0,"records":12}"#), "{body}");
    let second = rt.block_on(vfguard_api::serve_unix(
        &sock,
        router(Arc::new(Fake::default())),
        async {},
    ));
    assert!(second
        .unwrap_err()
        .to_string()
        .contains("in use by a running vfguard"));
    tx.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();
    assert!(!sock.exists(), "the socket is removed on shutdown");
}
