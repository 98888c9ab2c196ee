//! The Redfish power driver against a small Redfish server (real HTTP on
//! loopback): discovery of the ComputerSystem, one-time PXE boot override,
//! ComputerSystem.Reset, PowerState, and basic authentication.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};

use mallee_metal::model::Mac;
use mallee_metal::power::{self, PowerOutcome, PowerSpec, PowerState, RedfishSpec};

#[derive(Debug, Default)]
struct Bmc {
    on: bool,
    boot: Option<Value>,
    resets: Vec<String>,
}

type Shared = Arc<Mutex<Bmc>>;

fn authorized(h: &HeaderMap) -> bool {
    // admin:pw
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Basic YWRtaW46cHc=")
}

async fn systems(h: HeaderMap) -> Result<Json<Value>, StatusCode> {
    if !authorized(&h) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    Ok(Json(
        json!({"Members": [{"@odata.id": "/redfish/v1/Systems/1"}]}),
    ))
}

async fn system(State(b): State<Shared>, h: HeaderMap) -> Result<Json<Value>, StatusCode> {
    if !authorized(&h) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let b = b.lock().expect("lock");
    Ok(Json(json!({"PowerState": if b.on { "On" } else { "Off" }})))
}

async fn patch_system(
    State(b): State<Shared>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> StatusCode {
    if !authorized(&h) {
        return StatusCode::UNAUTHORIZED;
    }
    b.lock().expect("lock").boot = Some(body["Boot"].clone());
    StatusCode::NO_CONTENT
}

async fn reset(State(b): State<Shared>, h: HeaderMap, Json(body): Json<Value>) -> StatusCode {
    if !authorized(&h) {
        return StatusCode::UNAUTHORIZED;
    }
    let mut b = b.lock().expect("lock");
    let kind = body["ResetType"].as_str().unwrap_or_default().to_owned();
    match kind.as_str() {
        "On" | "ForceRestart" => b.on = true,
        "ForceOff" => b.on = false,
        _ => return StatusCode::BAD_REQUEST,
    }
    b.resets.push(kind);
    StatusCode::NO_CONTENT
}

#[tokio::test]
async fn redfish_driver_drives_a_bmc() {
    let bmc: Shared = Arc::default();
    let app = Router::new()
        .route("/redfish/v1/Systems", get(systems))
        .route("/redfish/v1/Systems/1", get(system).patch(patch_system))
        .route(
            "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset",
            post(reset),
        )
        .with_state(bmc.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mac: Mac = "52:54:00:00:00:01".parse().expect("mac");
    let spec = |password: &str| {
        PowerSpec::Redfish(RedfishSpec {
            url: format!("http://{addr}/"),
            user: "admin".into(),
            password: password.into(),
            system: None,
        })
    };
    let d = power::driver("r1", &mac, &spec("pw"));
    assert_eq!(d.status().await.expect("status"), PowerState::Off);
    assert_eq!(d.power_on_netboot().await.expect("on"), PowerOutcome::Done);
    assert_eq!(d.status().await.expect("status"), PowerState::On);
    {
        let b = bmc.lock().expect("lock");
        assert_eq!(
            b.boot,
            Some(json!({"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}))
        );
        assert_eq!(b.resets, ["On"]);
    }
    // Already on: a netboot power-on is a restart.
    d.power_on_netboot().await.expect("restart");
    assert_eq!(d.power_off().await.expect("off"), PowerOutcome::Done);
    assert_eq!(d.status().await.expect("status"), PowerState::Off);
    assert_eq!(
        bmc.lock().expect("lock").resets,
        ["On", "ForceRestart", "ForceOff"]
    );

    let bad = power::driver("r1", &mac, &spec("wrong"));
    let e = bad.power_off().await.expect_err("bad password");
    assert!(e.to_string().contains("401"), "{e}");
    server.abort();
}

#[tokio::test]
async fn manual_driver_waits_for_an_operator() {
    let mac: Mac = "52:54:00:00:00:09".parse().expect("mac");
    let d = power::driver("rack7", &mac, &PowerSpec::Manual);
    match d.power_on_netboot().await.expect("manual") {
        PowerOutcome::Pending(what) => assert!(
            what.contains("rack7") && what.contains("52:54:00:00:00:09"),
            "{what}"
        ),
        PowerOutcome::Done => panic!("manual power cannot be done by the driver"),
    }
    assert_eq!(d.status().await.expect("status"), PowerState::Unknown);
}
