//! `grpc.health.v1` is NOT_SERVING until a snapshot is loaded, and checks never get a
//! decision before then; reflection lists the services.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test code"
)]

mod common;

use common::*;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn status(server: &TestServer, service: &str) -> i32 {
    let mut h = HealthClient::new(server.channel().await);
    h.check(HealthCheckRequest {
        service: service.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .status
}

async fn wait_for(server: &TestServer, service: &str, want: ServingStatus) {
    for _ in 0..100 {
        if status(server, service).await == want as i32 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{service} never became {want:?}");
}

#[tokio::test]
async fn not_serving_until_a_snapshot_is_pushed() {
    let dir = temp_dir("health");
    let server = TestServer::start(&dir, None).await;
    wait_for(&server, "", ServingStatus::NotServing).await;
    wait_for(&server, "portcullis.v1.AuthorizationService", ServingStatus::NotServing).await;
    let mut c = server.authz().await;
    let err = c.check(ann_reads()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "no decision without a snapshot");

    let mut a = server.admin().await;
    a.push_snapshot(admin(push_request(example("clinic-portal"))))
        .await
        .unwrap();
    wait_for(&server, "", ServingStatus::Serving).await;
    wait_for(&server, "portcullis.v1.AuthorizationService", ServingStatus::Serving).await;
    assert!(is_allow(&decide(&mut c, ann_reads()).await));
    server.stop().await.unwrap();
}

/// The services a reflection endpoint of version `$v` (`v1` or `v1alpha`) lists.
macro_rules! list_services {
    ($v:ident, $channel:expr) => {{
        use tonic_reflection::pb::$v::ServerReflectionRequest;
        use tonic_reflection::pb::$v::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$v::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::$v::server_reflection_response::MessageResponse;
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter(vec![req]))
            .await
            .unwrap()
            .into_inner();
        let resp = stream.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
            panic!("{resp:?}")
        };
        list.service.into_iter().map(|s| s.name).collect::<Vec<String>>()
    }};
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_v1alpha() {
    let dir = temp_dir("reflection");
    let server = TestServer::start(&dir, Some("clinic-portal")).await;
    let v1 = list_services!(v1, server.channel().await);
    let v1alpha = list_services!(v1alpha, server.channel().await);
    for want in [
        "portcullis.v1.AuthorizationService",
        "portcullis.v1.PolicyAdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(v1.iter().any(|n| n == want), "{v1:?}");
    }
    // Each version lists itself as the reflection service; the rest is the same.
    let ours = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| !n.starts_with("grpc.reflection."))
            .collect()
    };
    assert_eq!(ours(v1), ours(v1alpha));
    server.stop().await.unwrap();
}
