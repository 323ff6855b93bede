//! `grpc.health.v1.Health` follows `/readyz`: the overall status (service `""`) and
//! `gatehouse.v1.Inference` are `SERVING` once every model is loaded and until draining
//! starts; each model, by its id, is `SERVING` while it is ready.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::http::AppState;
use crate::models::ModelState;

/// How often model states are read: loading and failing are rare events, and a `Watch`
/// client hears of a change within this.
const POLL: Duration = Duration::from_millis(250);

/// Every health service name and its status now.
pub fn statuses(state: &AppState) -> Vec<(String, ServingStatus)> {
    let draining = state.draining.load(Ordering::SeqCst);
    let serving = |up: bool| {
        if up && !draining {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        }
    };
    let overall = serving(state.models.all_ready());
    let mut out = vec![
        (String::new(), overall),
        (super::inference::SERVICE.to_string(), overall),
    ];
    for slot in state.models.all() {
        let ready = matches!(slot.state(), ModelState::Ready(_));
        out.push((slot.config.id.clone(), serving(ready)));
    }
    out
}

/// Keeps `reporter` in step with `state` until the task is aborted; statuses are only sent
/// when they change, so `Watch` clients hear each change once.
pub fn follow(state: Arc<AppState>, reporter: HealthReporter) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: HashMap<String, ServingStatus> = HashMap::new();
        loop {
            for (name, status) in statuses(&state) {
                if last.get(&name) != Some(&status) {
                    reporter.set_service_status(&name, status).await;
                    last.insert(name, status);
                }
            }
            tokio::time::sleep(POLL).await;
        }
    })
}
