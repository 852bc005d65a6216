//! A pooled connection between ingress and egress closed by the gateway in between at the
//! moment a request crosses it (what an nginx reload or keep-alive timeout does now and then).
//! The relay drops the request and closes the connection, so the egress never saw it: an
//! idempotent request is sent again on a new connection and succeeds; a POST is not sent
//! again, because the ingress cannot know whether it was processed, and gets the exact 502.

use serde_json::json;
use tng_e2e::*;

use crate::common::*;

#[test]
fn a_closed_pooled_connection_resends_idempotent_requests_only() {
    let backend = Backend::start();
    let (egress, egress_port) = launch_egress(backend.addr(), json!({}));
    let relay = Relay::start(&format!("127.0.0.1:{egress_port}"));
    let (ingress, ingress_port) = launch_ingress(&format!("127.0.0.1:{}", relay.port()), json!({}));
    let url = |path: &str| format!("http://127.0.0.1:{ingress_port}{path}");

    // Warm-up: the key config and one request leave one pooled connection behind.
    let warm = curl_status(&[&url("/warm-up")]);
    assert_eq!(warm.status, 200, "{}", ingress.log_tail(20));
    assert_eq!(relay.connections(), 1);
    let served = backend.requests();

    relay.cut_next_request();
    let get = curl_status(&[&url("/after-a-cut")]);
    assert_eq!(get.status, 200, "{}", ingress.log_tail(20));
    assert_eq!(get.text(), "hello from backend: GET /after-a-cut");
    assert_eq!(relay.cuts(), 1);
    assert_eq!(
        relay.connections(),
        2,
        "the GET went again on a new connection"
    );
    assert_eq!(
        backend.requests(),
        served + 1,
        "the service saw the GET once"
    );
    let resent = ingress.wait_for_log("sending the GET request again", GENEROUS);
    assert!(
        resent.contains("connection closed before message completed"),
        "{resent}"
    );
    assert_eq!(
        ingress
            .log()
            .matches("sending the GET request again")
            .count(),
        1
    );

    // PUT is idempotent too, and its body is sent again whole.
    relay.cut_next_request();
    let put = curl_status(&["-X", "PUT", "--data-binary", "put body", &url("/echo")]);
    assert_eq!((put.status, put.text().as_str()), (200, "put body"));
    assert_eq!(relay.cuts(), 2);
    assert_eq!(backend.requests(), served + 2);

    relay.cut_next_request();
    let post = curl_status(&["--data-binary", "post body", &url("/echo")]);
    let (status, code, message) = error_of(&post);
    assert_eq!((status, code.as_str()), (502, "HttpCipherTextForwardError"));
    assert!(
        message.contains("connection closed before message completed"),
        "{message}"
    );
    assert_eq!(relay.cuts(), 3);
    assert_eq!(
        backend.requests(),
        served + 2,
        "the POST never reached the service"
    );
    assert!(!ingress.log().contains("sending the POST request again"));

    // The ingress and egress go on serving.
    let after = curl_status(&["--data-binary", "still fine", &url("/echo")]);
    assert_eq!((after.status, after.text().as_str()), (200, "still fine"));
    drop(egress);
}
