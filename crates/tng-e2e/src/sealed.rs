//! A minimal OHTTP client for tests that must send the egress inner requests our ingress would
//! never produce (duplicate `Content-Length`, `OPTIONS *`, non-zero padding…): the real
//! protocol code of `tng-ohttp` (key config, metadata, chunked OHTTP, BHTTP), with the inner
//! message written field by field.

use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use tng_ohttp::api::{KeyConfigResponse, CONTENT_TYPE_CHUNKED_REQUEST};
use tng_ohttp::bhttp::{self, Event, RequestHead};
use tng_ohttp::chunked::{ClientRequest, ResponseDecoder};
use tng_ohttp::keys::KeyConfig;
use tng_ohttp::metadata::{self, ClientAuth, Metadata, NoAuth, ServerKeyConfigHint};

use crate::hardening::exchange;
use crate::net::{build_post, raw_http};
use crate::RawResponse;

/// An inner request, exactly as it will be encoded.
#[derive(Clone, Debug)]
pub struct Inner {
    pub method: &'static str,
    pub authority: String,
    pub path: String,
    /// In order; repeated names stay repeated.
    pub headers: Vec<(String, String)>,
    /// Each entry is one BHTTP content chunk.
    pub content: Vec<Vec<u8>>,
    /// Bytes after the end of the message (RFC 9292 §3.8: must be zeros).
    pub padding: Vec<u8>,
}

impl Inner {
    /// `GET /echo` with `host: service` and a fresh `Date`.
    pub fn get(path: &str) -> Inner {
        Inner {
            method: "GET",
            authority: String::new(),
            path: path.to_string(),
            headers: vec![
                ("host".into(), "service".into()),
                (
                    "date".into(),
                    httpdate::fmt_http_date(std::time::SystemTime::now()),
                ),
            ],
            content: Vec::new(),
            padding: Vec::new(),
        }
    }

    pub fn method(mut self, method: &'static str) -> Inner {
        self.method = method;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Inner {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn without(mut self, name: &str) -> Inner {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    pub fn body(mut self, chunk: &[u8]) -> Inner {
        self.content.push(chunk.to_vec());
        self
    }

    fn encode(&self) -> BytesMut {
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let head = RequestHead {
            method: Method::from_bytes(self.method.as_bytes()).expect("method"),
            scheme: String::new(),
            authority: self.authority.clone(),
            path: self.path.clone(),
            headers,
        };
        let mut out = BytesMut::new();
        bhttp::encode_request_head(&head, &mut out);
        for chunk in &self.content {
            bhttp::encode_data(chunk, &mut out);
        }
        bhttp::encode_end_of_content(&mut out);
        bhttp::encode_trailers(&HeaderMap::new(), &mut out);
        out.extend_from_slice(&self.padding);
        out
    }
}

/// What the egress answered: the outer response, and the opened inner one when it was sealed.
pub struct Answer {
    pub outer: RawResponse,
    pub inner: Option<InnerResponse>,
}

#[derive(Debug)]
pub struct InnerResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl InnerResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("inner body is not JSON ({e}): {}", self.text()))
    }
}

/// Seals requests to one egress's current key, as a NoAuth client.
pub struct SealedClient {
    pub egress: String,
    pub key: KeyConfig,
}

impl SealedClient {
    /// Fetches the key config from `egress` (`host:port`).
    pub fn fetch(egress: &str) -> SealedClient {
        let r = raw_http(
            egress,
            &build_post(
                "/",
                egress,
                &[
                    ("x-tng-ohttp-api", "/tng/key-config"),
                    ("content-type", "application/json"),
                ],
                br#"{"attestation_request":null}"#,
            ),
        );
        assert_eq!(r.status, 200, "key config: {}", r.text());
        let parsed: KeyConfigResponse = serde_json::from_slice(&r.body).expect("key config JSON");
        let key = parsed
            .hpke_key_config
            .decode()
            .expect("key config list")
            .into_iter()
            .next()
            .expect("one key");
        SealedClient {
            egress: egress.to_string(),
            key,
        }
    }

    /// The complete outer request (one connection-close POST) and the decoder of its answer.
    pub fn seal(&self, inner: &Inner) -> (Vec<u8>, ResponseDecoder) {
        self.seal_with(inner, true)
    }

    /// Like [`seal`](Self::seal); `close: false` keeps the connection open.
    pub fn seal_with(&self, inner: &Inner, close: bool) -> (Vec<u8>, ResponseDecoder) {
        let mut sealer = ClientRequest::new(&self.key).expect("sealer");
        let decoder = sealer.response_decoder();
        let mut body = metadata::encode_frame(&Metadata {
            client_auth: Some(ClientAuth::NoAuth(NoAuth {})),
            key_config_hint: Some(ServerKeyConfigHint {
                public_key: self.key.public_key.to_vec(),
            }),
        })
        .to_vec();
        body.extend_from_slice(&sealer.header());
        body.extend_from_slice(&sealer.seal_final(&inner.encode()).expect("seal"));
        let mut outer = build_post(
            "/",
            &self.egress,
            &[
                ("x-tng-ohttp-api", "/tng/tunnel"),
                ("content-type", CONTENT_TYPE_CHUNKED_REQUEST),
            ],
            &body,
        );
        if !close {
            let text = b"connection: close\r\n";
            if let Some(at) = crate::net::find(&outer, text) {
                outer.drain(at..at + text.len());
            }
        }
        (outer, decoder)
    }

    /// Sends `inner` on a new connection and opens the answer.
    pub fn send(&self, inner: &Inner) -> Answer {
        let (outer, decoder) = self.seal(inner);
        open(raw_http(&self.egress, &outer), decoder)
    }

    /// Sends `inner` on `conn` (kept open) and opens the answer.
    pub fn send_on(&self, conn: &mut TcpStream, inner: &Inner) -> Answer {
        let (outer, decoder) = self.seal_with(inner, false);
        open(exchange(conn, &outer, Duration::from_secs(20)), decoder)
    }

    /// A connection to the egress from the local address `from` (e.g. `127.0.0.2`), so a
    /// test can be a source of its own.
    pub fn connect_from(&self, from: &str) -> TcpStream {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let local: std::net::SocketAddr = format!("{from}:0").parse().expect("local address");
        socket.bind(&local.into()).expect("bind");
        let remote: std::net::SocketAddr = self.egress.parse().expect("egress address");
        socket.connect(&remote.into()).expect("connect");
        let stream: TcpStream = socket.into();
        stream.set_nodelay(true).expect("nodelay");
        stream
    }
}

/// Opens a sealed answer; an unsealed one (an outer error) is returned as is.
pub fn open(outer: RawResponse, mut decoder: ResponseDecoder) -> Answer {
    let sealed = outer
        .header("content-type")
        .is_some_and(|t| t == tng_ohttp::api::CONTENT_TYPE_CHUNKED_RESPONSE);
    if !sealed {
        return Answer { outer, inner: None };
    }
    decoder.push(&outer.body).expect("response chunks");
    let mut plaintext = BytesMut::new();
    while let Some(chunk) = decoder.next_chunk().expect("response chunk") {
        plaintext.extend_from_slice(&chunk);
    }
    plaintext.extend_from_slice(&decoder.finish().expect("final response chunk"));
    let mut d = bhttp::Decoder::new(bhttp::Limits::default());
    d.push(Bytes::from(plaintext.to_vec()));
    d.finish();
    let mut inner = None;
    let mut body = Vec::new();
    while let Some(event) = d.next().expect("inner response") {
        match event {
            Event::ResponseHead(head) => inner = Some((head.status.as_u16(), head.headers)),
            Event::Data(data) => body.extend_from_slice(&data),
            Event::End => break,
            _ => {}
        }
    }
    let (status, headers) = inner.expect("inner response head");
    Answer {
        outer,
        inner: Some(InnerResponse {
            status,
            headers,
            body,
        }),
    }
}
