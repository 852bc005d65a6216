use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::*;

/// Comparable summary of a decoded message: adjacent data is merged.
#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Request(String, String, String, String, Vec<(String, String)>),
    Response(u16, Vec<(String, String)>),
    Data(Vec<u8>),
    Trailers(Vec<(String, String)>),
    End,
}

fn fields(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect()
}

fn summarize(events: Vec<Event>) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    for e in events {
        let ev = match e {
            Event::RequestHead(h) => Ev::Request(
                h.method.to_string(),
                h.scheme,
                h.authority,
                h.path,
                fields(&h.headers),
            ),
            Event::ResponseHead(h) => Ev::Response(h.status.as_u16(), fields(&h.headers)),
            Event::Data(d) => {
                assert!(!d.is_empty(), "empty Data event");
                if let Some(Ev::Data(prev)) = out.last_mut() {
                    prev.extend_from_slice(&d);
                    continue;
                }
                Ev::Data(d.to_vec())
            }
            Event::Trailers(t) => Ev::Trailers(fields(&t)),
            Event::End => Ev::End,
        };
        out.push(ev);
    }
    out
}

/// Pushes `pieces` one by one, draining events after each, then signals EOF.
fn decode_pieces(pieces: &[&[u8]], limits: Limits) -> Result<Vec<Ev>, BhttpError> {
    let mut d = Decoder::new(limits);
    let mut events = Vec::new();
    for piece in pieces {
        d.push(Bytes::copy_from_slice(piece));
        while let Some(e) = d.next()? {
            events.push(e);
        }
    }
    d.finish();
    while let Some(e) = d.next()? {
        events.push(e);
    }
    // Nothing after End, and no further events.
    assert!(d.next()?.is_none());
    Ok(summarize(events))
}

fn decode(bytes: &[u8]) -> Result<Vec<Ev>, BhttpError> {
    decode_pieces(&[bytes], Limits::default())
}

fn vs(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    crate::varint::encode(s.len() as u64, &mut out);
    out.extend_from_slice(s.as_bytes());
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn observed_upstream_request() {
    let mut msg = vec![0x02];
    for part in ["POST", "", "", "/api/v1/users?x=1&y=2"] {
        msg.extend(vs(part));
    }
    for part in ["host", "example.com:8080", "user-agent", "curl/8.5.0"] {
        msg.extend(vs(part));
    }
    msg.push(0);
    msg.extend(vs("hello-body"));
    msg.extend([0, 0]);
    assert_eq!(
        &msg[..35],
        b"\x02\x04POST\x00\x00\x15/api/v1/users?x=1&y=2\x04host"
    );
    assert_eq!(
        decode(&msg).unwrap(),
        vec![
            Ev::Request(
                "POST".into(),
                "".into(),
                "".into(),
                "/api/v1/users?x=1&y=2".into(),
                pairs(&[("host", "example.com:8080"), ("user-agent", "curl/8.5.0")])
            ),
            Ev::Data(b"hello-body".to_vec()),
            Ev::End,
        ]
    );
}

#[test]
fn status_201_encoding() {
    let mut out = BytesMut::new();
    encode_response_head(StatusCode::CREATED, &HeaderMap::new(), &mut out).unwrap();
    assert_eq!(&out[..], &[0x03, 0x40, 0xc9, 0x00]);
    for status in [100, 101, 103] {
        let err = encode_response_head(
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            &mut out,
        )
        .unwrap_err();
        assert_eq!(err, BhttpError::InformationalStatus(status));
    }
}

const UA: &str = "curl/7.16.3 libcurl/7.16.3 OpenSSL/0.9.7l zlib/1.2.3";

fn rfc_get_head() -> Ev {
    Ev::Request(
        "GET".into(),
        "https".into(),
        "".into(),
        "/hello.txt".into(),
        pairs(&[
            ("user-agent", UA),
            ("host", "www.example.com"),
            ("accept-language", "en, mi"),
        ]),
    )
}

/// RFC 9292 §5.1 example request, known-length encoding.
#[test]
fn rfc9292_known_length_request() {
    let bytes = hex::decode(concat!(
        "0003474554056874747073000a2f6865",
        "6c6c6f2e747874406c0a757365722d61",
        "67656e7434637572",
        "6c2f372e31362e33206c69626375726c",
        "2f372e31362e33204f70656e53534c2f",
        "302e392e376c207a6c69622f312e322e",
        "3304686f73740f7777772e6578616d70",
        "6c652e636f6d0f6163636570742d6c61",
        "6e677561676506656e2c206d690000",
    ))
    .unwrap();
    assert_eq!(decode(&bytes).unwrap(), vec![rfc_get_head(), Ev::End]);
}

/// RFC 9292 §5.1 example request, indeterminate-length encoding with 10 bytes of padding.
#[test]
fn rfc9292_indeterminate_length_request() {
    let bytes = hex::decode(concat!(
        "0203474554056874747073000a2f6865",
        "6c6c6f2e7478740a757365722d616765",
        "6e74346375726c2f372e31362e33206c",
        "69626375726c2f372e31362e33204f70",
        "656e53534c2f302e392e376c207a6c69",
        "622f312e322e3304686f73740f777777",
        "2e6578616d706c652e636f6d0f616363",
        "6570742d6c616e677561676506656e2c",
        "206d690000000000000000000000000000",
    ))
    .unwrap();
    assert_eq!(decode(&bytes).unwrap(), vec![rfc_get_head(), Ev::End]);
}

fn sample_response() -> (Vec<u8>, Vec<Ev>) {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.append("set-cookie", HeaderValue::from_static("a=1"));
    headers.append("set-cookie", HeaderValue::from_static("b=2"));
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    let mut out = BytesMut::new();
    encode_response_head(StatusCode::OK, &headers, &mut out).unwrap();
    let mut body = Vec::new();
    for chunk in [&b"hello "[..], &[b'x'; 70][..], b"", &[b'y'; 300][..]] {
        encode_data(chunk, &mut out);
        body.extend_from_slice(chunk);
    }
    encode_end_of_content(&mut out);
    encode_trailers(&trailers, &mut out);
    let expected = vec![
        Ev::Response(
            200,
            pairs(&[
                ("content-type", "text/plain"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2"),
            ]),
        ),
        Ev::Data(body),
        Ev::Trailers(pairs(&[("x-checksum", "abc")])),
        Ev::End,
    ];
    (out.to_vec(), expected)
}

#[test]
fn request_encoding_round_trips() {
    let mut headers = HeaderMap::new();
    headers.insert("Host", HeaderValue::from_static("example.com"));
    headers.insert("X-Mixed-Case", HeaderValue::from_static("v"));
    let head = RequestHead {
        method: Method::PUT,
        scheme: String::new(),
        authority: String::new(),
        path: "/p?q=1".into(),
        headers,
    };
    let mut out = BytesMut::new();
    encode_request_head(&head, &mut out);
    encode_data(b"", &mut out);
    encode_data(b"body", &mut out);
    encode_end_of_content(&mut out);
    encode_trailers(&HeaderMap::new(), &mut out);
    let mut expected = vec![2];
    for part in [
        "PUT",
        "",
        "",
        "/p?q=1",
        "host",
        "example.com",
        "x-mixed-case",
        "v",
    ] {
        expected.extend(vs(part));
    }
    expected.push(0);
    expected.extend(vs("body"));
    expected.extend([0, 0]);
    assert_eq!(
        out.to_vec(),
        expected,
        "names lower case, empty data omitted"
    );
    assert_eq!(
        decode(&out).unwrap(),
        vec![
            Ev::Request(
                "PUT".into(),
                "".into(),
                "".into(),
                "/p?q=1".into(),
                pairs(&[("host", "example.com"), ("x-mixed-case", "v")])
            ),
            Ev::Data(b"body".to_vec()),
            Ev::End
        ]
    );
}

#[test]
fn every_split_point_and_byte_by_byte() {
    let (bytes, expected) = sample_response();
    assert_eq!(decode(&bytes).unwrap(), expected);
    for split in 0..=bytes.len() {
        let (a, b) = bytes.split_at(split);
        assert_eq!(
            decode_pieces(&[a, b], Limits::default()).unwrap(),
            expected,
            "split at {split}"
        );
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(
        decode_pieces(&singles, Limits::default()).unwrap(),
        expected
    );
    // The RFC's known-length request too.
    let mut known = vec![0];
    for part in ["GET", "https", "", "/x"] {
        known.extend(vs(part));
    }
    known.extend([0x08]);
    known.extend(vs("a"));
    known.extend(vs("bcdef"));
    known.extend(vs("content"));
    known.extend([0x04]);
    known.extend(vs("t"));
    known.extend(vs("v"));
    let expected = vec![
        Ev::Request(
            "GET".into(),
            "https".into(),
            "".into(),
            "/x".into(),
            pairs(&[("a", "bcdef")]),
        ),
        Ev::Data(b"content".to_vec()),
        Ev::Trailers(pairs(&[("t", "v")])),
        Ev::End,
    ];
    for split in 0..=known.len() {
        let (a, b) = known.split_at(split);
        assert_eq!(
            decode_pieces(&[a, b], Limits::default()).unwrap(),
            expected,
            "known-length split at {split}"
        );
    }
}

#[test]
fn content_streams_before_its_chunk_is_complete() {
    // Indeterminate: a 16 KiB chunk announced, 100 bytes arrived.
    let mut d = Decoder::new(Limits::default());
    let mut msg = vec![3, 0x40, 0xc8, 0];
    crate::varint::encode(16384, &mut msg);
    msg.extend([1u8; 100]);
    d.push(Bytes::from(msg));
    assert!(matches!(d.next().unwrap(), Some(Event::ResponseHead(_))));
    match d.next().unwrap() {
        Some(Event::Data(data)) => assert_eq!(data.len(), 100),
        other => panic!("{other:?}"),
    }
    assert!(d.next().unwrap().is_none());

    // Known length: 1 GiB declared, content flows as it arrives.
    let mut d = Decoder::new(Limits::default());
    let mut msg = vec![1, 0x40, 0xc8, 0];
    crate::varint::encode(1 << 30, &mut msg);
    d.push(Bytes::from(msg));
    assert!(matches!(d.next().unwrap(), Some(Event::ResponseHead(_))));
    assert!(d.next().unwrap().is_none());
    let mut total = 0usize;
    for _ in 0..4 {
        d.push(Bytes::from(vec![0u8; 4096]));
        while let Some(Event::Data(data)) = d.next().unwrap() {
            total += data.len();
        }
    }
    assert_eq!(total, 4 * 4096);
    d.finish();
    assert_eq!(d.next().unwrap_err(), BhttpError::Truncated);
}

#[test]
fn informational_responses_are_skipped() {
    // Indeterminate: 102 Processing and 103 Early Hints before 200.
    let mut msg = vec![3, 0x40, 0x66];
    msg.extend(vs("running"));
    msg.extend(vs("\"sleep 15\""));
    msg.push(0);
    msg.extend([0x40, 0x67]);
    msg.extend(vs("link"));
    msg.extend(vs("</style.css>; rel=preload; as=style"));
    msg.push(0);
    msg.extend([0x40, 0xc8]);
    msg.extend(vs("date"));
    msg.extend(vs("Mon, 27 Jul 2009 12:28:53 GMT"));
    msg.push(0);
    msg.extend(vs("ok"));
    msg.extend([0, 0]);
    let expected = vec![
        Ev::Response(200, pairs(&[("date", "Mon, 27 Jul 2009 12:28:53 GMT")])),
        Ev::Data(b"ok".to_vec()),
        Ev::End,
    ];
    assert_eq!(decode(&msg).unwrap(), expected);

    // Known length: 100 Continue with an empty field section, then 204.
    let msg = [1, 0x40, 0x64, 0, 0x40, 0xcc, 0, 0, 0];
    assert_eq!(
        decode(&msg).unwrap(),
        vec![Ev::Response(204, vec![]), Ev::End]
    );
    // A message may not end with an interim response.
    assert_eq!(decode(&[3, 0x40, 0x64, 0]), Err(BhttpError::Truncated));
    assert_eq!(decode(&[3, 0x40, 0x64]), Err(BhttpError::Truncated));
}

#[test]
fn truncation_rules() {
    let head = |framing: u8| {
        let mut m = vec![framing];
        for part in ["GET", "", "", "/"] {
            m.extend(vs(part));
        }
        m
    };
    let get = |headers: Vec<(String, String)>| {
        Ev::Request("GET".into(), "".into(), "".into(), "/".into(), headers)
    };
    // Indeterminate: empty header section, content and trailers may all be omitted…
    assert_eq!(decode(&head(2)).unwrap(), vec![get(vec![]), Ev::End]);
    // …after a field line too (remaining terminators omitted).
    let mut m = head(2);
    m.extend(vs("a"));
    m.extend(vs("b"));
    assert_eq!(
        decode(&m).unwrap(),
        vec![get(pairs(&[("a", "b")])), Ev::End]
    );
    // After the header section; after a content chunk; after the content terminator.
    let mut m = head(2);
    m.push(0);
    assert_eq!(decode(&m).unwrap(), vec![get(vec![]), Ev::End]);
    m.extend(vs("data"));
    let with_data = vec![get(vec![]), Ev::Data(b"data".to_vec()), Ev::End];
    assert_eq!(decode(&m).unwrap(), with_data);
    m.push(0);
    assert_eq!(decode(&m).unwrap(), with_data);
    // Inside a content chunk, inside a field line, inside control data: truncated.
    let mut cut = m.clone();
    cut.truncate(cut.len() - 2);
    assert_eq!(decode(&cut), Err(BhttpError::Truncated));
    let mut in_field = head(2);
    in_field.extend(vs("name"));
    in_field.push(5);
    in_field.extend(b"val");
    assert_eq!(decode(&in_field), Err(BhttpError::Truncated));
    let control = head(2);
    assert_eq!(
        decode(&control[..control.len() - 1]),
        Err(BhttpError::Truncated)
    );
    assert_eq!(decode(&[]), Err(BhttpError::Truncated));
    assert_eq!(decode(&[3]), Err(BhttpError::Truncated));

    // Known length: may end after the header section or after the content.
    let mut m = head(0);
    assert_eq!(decode(&m).unwrap(), vec![get(vec![]), Ev::End]);
    m.push(0);
    assert_eq!(decode(&m).unwrap(), vec![get(vec![]), Ev::End]);
    m.extend(vs("0123456789"));
    let known = vec![get(vec![]), Ev::Data(b"0123456789".to_vec()), Ev::End];
    assert_eq!(decode(&m).unwrap(), known);
    // …but not inside the content or a declared field section.
    assert_eq!(decode(&m[..m.len() - 5]), Err(BhttpError::Truncated));
    let mut m = head(0);
    m.push(4);
    m.extend(vs("a"));
    assert_eq!(decode(&m), Err(BhttpError::Truncated));
    // Truncated trailers.
    let (bytes, _) = sample_response();
    assert_eq!(
        decode(&bytes[..bytes.len() - 3]),
        Err(BhttpError::Truncated)
    );
}

#[test]
fn field_section_limit() {
    let limits = Limits {
        max_field_section: 64,
    };
    // Refused from the declared value length alone, before the value arrives.
    let mut d = Decoder::new(limits);
    let mut m = vec![3, 0x40, 0xc8];
    m.extend(vs("x-big"));
    crate::varint::encode(1000, &mut m);
    d.push(Bytes::from(m));
    assert_eq!(
        d.next().unwrap_err(),
        BhttpError::FieldSectionTooLarge { limit: 64 }
    );
    // Errors are sticky.
    assert_eq!(
        d.next().unwrap_err(),
        BhttpError::FieldSectionTooLarge { limit: 64 }
    );
    // Many small lines add up.
    let mut m = vec![3, 0x40, 0xc8];
    for i in 0..20 {
        m.extend(vs(&format!("h{i}")));
        m.extend(vs("v"));
    }
    m.push(0);
    assert_eq!(
        decode_pieces(&[&m], limits),
        Err(BhttpError::FieldSectionTooLarge { limit: 64 })
    );
    // Known-length section declared too large.
    assert_eq!(
        decode_pieces(&[&[1, 0x40, 0xc8, 0x40, 0x41]], limits),
        Err(BhttpError::FieldSectionTooLarge { limit: 64 })
    );
    // Control data.
    let mut m = vec![2];
    m.extend(vs("GET"));
    m.extend(vs(""));
    m.extend(vs(""));
    m.extend(vs(&"/".repeat(100)));
    assert_eq!(
        decode_pieces(&[&m], limits),
        Err(BhttpError::ControlDataTooLarge { limit: 64 })
    );
    // Exactly at the limit is fine.
    let mut m = vec![3, 0x40, 0xc8];
    m.extend(vs("a"));
    m.extend(vs(&"v".repeat(61)));
    m.extend([0, 0, 0]);
    assert!(decode_pieces(&[&m], limits).is_ok());
}

#[test]
fn malformed_messages() {
    assert_eq!(decode(&[4]), Err(BhttpError::UnexpectedFraming(4)));
    assert_eq!(
        decode(&[3, 0x40, 0x63, 0]),
        Err(BhttpError::InvalidStatus(99))
    );
    assert_eq!(
        decode(&[3, 0x43, 0xe8, 0]),
        Err(BhttpError::InvalidStatus(1000))
    );
    let mut m = vec![3, 0x40, 0xc8];
    m.extend(vs("bad name"));
    m.extend(vs("v"));
    m.push(0);
    assert!(matches!(decode(&m), Err(BhttpError::InvalidHeader(_))));
    let mut m = vec![3, 0x40, 0xc8];
    m.extend(vs("ok"));
    m.extend(vs("bad\nvalue"));
    m.push(0);
    assert!(matches!(decode(&m), Err(BhttpError::InvalidHeader(_))));
    let mut m = vec![2];
    m.extend(vs("G T"));
    m.extend([0, 0, 0]);
    assert!(matches!(decode(&m), Err(BhttpError::InvalidMethod(_))));
    let mut m = vec![2];
    m.extend(vs("GET"));
    m.extend([0, 0, 1, 0xff]);
    assert_eq!(
        decode(&m),
        Err(BhttpError::InvalidControlData { field: "path" })
    );
    // Known-length field section whose lines overrun it.
    let m = [1, 0x40, 0xc8, 2, 1, b'a'];
    assert!(matches!(
        decode(&m),
        Err(BhttpError::MalformedFieldSection { .. })
    ));
    // Non-zero padding.
    let (mut bytes, _) = sample_response();
    bytes.extend([0, 0, 1]);
    assert_eq!(decode(&bytes), Err(BhttpError::InvalidPadding));
}

#[test]
fn encoders_write_exact_bytes() {
    let mut out = BytesMut::new();
    encode_data(b"", &mut out);
    assert!(out.is_empty(), "empty data must not end the content");
    encode_data(&[0xaa; 64], &mut out);
    assert_eq!(&out[..3], &[0x40, 0x40, 0xaa]);
    out.clear();
    encode_end_of_content(&mut out);
    encode_trailers(&HeaderMap::new(), &mut out);
    assert_eq!(&out[..], &[0, 0]);
}
