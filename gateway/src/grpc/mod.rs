//! The gRPC API on its own listener (`server.grpc_listen`): `gatehouse.v1.Inference`
//! (`proto/gatehouse/v1/inference.proto`), `grpc.health.v1.Health` and server reflection.
//!
//! The calls run through the HTTP stack's own middleware (gRPC is HTTP/2, its metadata are
//! headers): request ids, tracing with `traceparent`, metrics, the audit record, the
//! in-flight limit and timeout, API keys and rate limits; then the same domain stack. Errors
//! the middleware answers in OpenAI's shape become gRPC statuses on the way out
//! ([`errors::to_grpc`]).

pub mod convert;
pub mod errors;
pub mod health;
pub mod inference;

use std::sync::Arc;

use axum::middleware::{from_fn, from_fn_with_state};
use tower::ServiceBuilder;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::http::{audit, auth, middleware, AppState, REQUEST_ID};

/// Code generated from `proto/gatehouse/v1/inference.proto` (build.rs).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("gatehouse.v1");

    /// The encoded file descriptor set of the proto (and the well-known types it imports),
    /// served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/gatehouse_descriptor.bin"));
}

/// A gRPC service as an axum route: the request body converted to tonic's.
fn route<S>(router: axum::Router, path: &str, svc: S) -> axum::Router
where
    S: tower::Service<
            axum::http::Request<tonic::body::Body>,
            Response = axum::http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    router.route_service(
        path,
        svc.map_request(|r: axum::extract::Request| r.map(tonic::body::Body::new)),
    )
}

/// Reflection over our proto and the health service's.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// The gRPC stack over `state`, and the health reporter that [`health::follow`] keeps in
/// step with `/readyz`.
pub fn router(state: Arc<AppState>) -> (axum::Router, tonic_health::server::HealthReporter) {
    let limit = state.config.server.body_limit_bytes;
    let inference =
        pb::inference_server::InferenceServer::new(inference::Inference::new(state.clone()))
            // Decoded messages are bounded like HTTP bodies; `errors::outcome` answers past it.
            .max_decoding_message_size(limit);
    // One route per method, so metrics and audit records name the method, and a method the
    // proto gains cannot be served without a route here (a test compares both lists).
    let mut api = axum::Router::new();
    for method in inference::METHODS {
        api = route(
            api,
            &format!("/{}/{method}", inference::SERVICE),
            inference.clone(),
        );
    }
    let api = api
        .layer(from_fn_with_state(state.clone(), errors::outcome))
        .layer(from_fn_with_state(state.clone(), auth::rate_limit))
        .layer(from_fn_with_state(state.clone(), auth::authenticate))
        .layer(from_fn_with_state(state.clone(), middleware::limits))
        .layer(from_fn_with_state(state.clone(), audit::audit));
    // Health and reflection answer without a key, like the HTTP probes.
    let (reporter, health) = tonic_health::server::health_reporter();
    let v1 = reflection()
        .build_v1()
        .expect("the embedded descriptor sets decode");
    let v1alpha = reflection()
        .build_v1alpha()
        .expect("the embedded descriptor sets decode");
    let probes = tonic::service::Routes::new(health)
        .add_service(v1)
        .add_service(v1alpha)
        .into_axum_router();
    let header = axum::http::HeaderName::from_static(REQUEST_ID);
    let router = api
        .merge(probes)
        .fallback(|| async {
            tonic::Status::unimplemented("no such gRPC service or method")
                .into_http::<axum::body::Body>()
        })
        .layer(from_fn_with_state(state.clone(), middleware::metrics))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(header.clone(), MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(header))
                .layer(TraceLayer::new_for_http().make_span_with(middleware::request_span))
                // Outside the panic handler, so that its 500 becomes INTERNAL too.
                .layer(from_fn(errors::to_grpc))
                .layer(CatchPanicLayer::custom(middleware::panic_response)),
        );
    (router, reporter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_of_the_proto_has_a_route() {
        let fds: prost_types::FileDescriptorSet =
            prost::Message::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
        let file = fds
            .file
            .iter()
            .find(|f| f.package() == "gatehouse.v1")
            .unwrap();
        let service = &file.service[0];
        assert_eq!(
            format!("{}.{}", file.package(), service.name()),
            inference::SERVICE
        );
        let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
        assert_eq!(methods, inference::METHODS);
        // Reflection clients resolve the import from the same set.
        assert!(fds
            .file
            .iter()
            .any(|f| f.name() == "google/protobuf/struct.proto"));
    }
}
