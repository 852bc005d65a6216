use super::*;

const PK_HEX: &str = "9f5ff2ab249191e4964ad36b7c1f2f9d6a08a6cc9151c61f39c3c74400d0fe77";

fn no_auth() -> Metadata {
    Metadata {
        client_auth: Some(ClientAuth::NoAuth(NoAuth {})),
        key_config_hint: Some(ServerKeyConfigHint {
            public_key: hex::decode(PK_HEX).unwrap(),
        }),
    }
}

#[test]
fn observed_no_auth_frame() {
    let frame = encode_frame(&no_auth());
    let expected = hex::decode(format!("000000260a001a220a20{PK_HEX}")).unwrap();
    assert_eq!(frame.len(), 4 + 38);
    assert_eq!(&frame[..], &expected[..]);

    let mut reader = MetadataReader::new(METADATA_MAX_LEN);
    let mut input = expected.clone();
    input.extend_from_slice(b"ciphertext");
    let (metadata, rest) = reader.push(&input).unwrap().unwrap();
    assert_eq!(metadata, no_auth());
    assert_eq!(&rest[..], b"ciphertext");
}

#[test]
fn attested_public_key_round_trips() {
    let m = Metadata {
        client_auth: Some(metadata::ClientAuth::AttestedPublicKey(AttestedPublicKey {
            attestation_result: "eyJhbGciOi.x.y".into(),
            pk_s: vec![7; 32],
            as_provider: "coco".into(),
        })),
        key_config_hint: Some(ServerKeyConfigHint {
            public_key: vec![1; 32],
        }),
    };
    let frame = encode_frame(&m);
    // Field 2 (attested_public_key), length-delimited.
    assert_eq!(frame[4], 0x12);
    let mut reader = MetadataReader::new(METADATA_MAX_LEN);
    let (decoded, rest) = reader.push(&frame).unwrap().unwrap();
    assert_eq!(decoded, m);
    assert!(rest.is_empty());
    // Absent client_auth / hint decode as None (the egress reports them).
    let mut reader = MetadataReader::new(METADATA_MAX_LEN);
    let (empty, _) = reader.push(&[0, 0, 0, 0]).unwrap().unwrap();
    assert_eq!(empty.client_auth, None);
    assert_eq!(empty.key_config_hint, None);
}

#[test]
fn every_split_point() {
    let frame = encode_frame(&no_auth());
    let mut input = frame.to_vec();
    input.extend_from_slice(b"rest");
    for split in 0..=input.len() {
        let mut reader = MetadataReader::new(METADATA_MAX_LEN);
        let (a, b) = input.split_at(split);
        let mut result = reader.push(a).unwrap();
        let mut tail = Vec::new();
        if let Some((_, rest)) = &result {
            tail.extend_from_slice(rest);
            tail.extend_from_slice(b);
        } else {
            result = reader.push(b).unwrap();
            if let Some((_, rest)) = &result {
                tail.extend_from_slice(rest);
            }
        }
        let (metadata, _) = result.expect("complete after all input");
        assert_eq!(metadata, no_auth(), "split at {split}");
        assert_eq!(tail, b"rest", "split at {split}");
    }
}

#[test]
fn too_long_is_refused_from_the_length_alone() {
    let mut reader = MetadataReader::new(METADATA_MAX_LEN);
    let len = (METADATA_MAX_LEN + 1) as u32;
    let err = reader.push(&len.to_be_bytes()).unwrap_err();
    assert!(
        matches!(
            err,
            MetadataError::TooLong {
                len: 33_554_433,
                max: 33_554_432
            }
        ),
        "{err:?}"
    );
    // Split length prefix.
    let mut reader = MetadataReader::new(10);
    assert!(reader.push(&[0, 0]).unwrap().is_none());
    assert!(matches!(
        reader.push(&[0, 11]),
        Err(MetadataError::TooLong { len: 11, max: 10 })
    ));
    // At the limit is fine.
    let mut reader = MetadataReader::new(10);
    assert!(reader.push(&[0, 0, 0, 10]).unwrap().is_none());
}

#[test]
fn eof_is_a_read_error() {
    let mut reader = MetadataReader::new(METADATA_MAX_LEN);
    assert!(reader.push(&[0, 0]).unwrap().is_none());
    let err = reader.finish();
    assert!(matches!(err, MetadataError::Read(_)));
    assert!(err.to_string().contains("unexpected end of body"), "{err}");

    // Inside the body (where upstream hangs instead).
    let mut reader = MetadataReader::new(METADATA_MAX_LEN);
    assert!(reader.push(&[0, 0, 0, 10, 1]).unwrap().is_none());
    let err = reader.finish();
    assert!(matches!(err, MetadataError::Read(_)));
    assert!(err.to_string().contains("1 of 10"), "{err}");

    let mut reader = MetadataReader::new(METADATA_MAX_LEN);
    assert!(matches!(reader.finish(), MetadataError::Read(_)));
}

#[test]
fn garbage_is_a_decode_error() {
    let mut reader = MetadataReader::new(METADATA_MAX_LEN);
    let err = reader.push(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap_err();
    assert!(matches!(err, MetadataError::Decode(_)), "{err:?}");
    // Wrong wire type for field 3.
    let mut reader = MetadataReader::new(METADATA_MAX_LEN);
    assert!(matches!(
        reader.push(&[0, 0, 0, 2, 0x18, 0x01]),
        Err(MetadataError::Decode(_))
    ));
}
