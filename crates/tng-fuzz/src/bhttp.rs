//! The streaming Binary HTTP decoder (RFC 9292), requests and responses, all four framings.

use bytes::Bytes;
use tng_ohttp::bhttp::{BhttpError, Decoder, Event, Limits};

use crate::split::{Control, Splits};

/// An event stream with adjacent content merged, so it does not depend on read sizes.
#[derive(Debug, PartialEq)]
enum Seen {
    Request {
        method: String,
        scheme: String,
        authority: String,
        path: String,
        headers: Vec<(String, Vec<u8>)>,
    },
    Response {
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
    },
    Data(Vec<u8>),
    Trailers(Vec<(String, Vec<u8>)>),
    End,
}

#[derive(Debug, PartialEq)]
pub(crate) struct Transcript {
    seen: Vec<Seen>,
    end: Result<(), BhttpError>,
}

fn fields(map: &http::HeaderMap) -> Vec<(String, Vec<u8>)> {
    map.iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

impl Transcript {
    fn record(&mut self, event: Event) {
        let seen = match event {
            Event::RequestHead(head) => Seen::Request {
                method: head.method.as_str().to_owned(),
                scheme: head.scheme,
                authority: head.authority,
                path: head.path,
                headers: fields(&head.headers),
            },
            Event::ResponseHead(head) => Seen::Response {
                status: head.status.as_u16(),
                headers: fields(&head.headers),
            },
            Event::Data(data) => {
                assert!(!data.is_empty(), "empty content event");
                if let Some(Seen::Data(previous)) = self.seen.last_mut() {
                    previous.extend_from_slice(&data);
                    return;
                }
                Seen::Data(data.to_vec())
            }
            Event::Trailers(map) => {
                assert!(!map.is_empty(), "empty trailer event");
                Seen::Trailers(fields(&map))
            }
            Event::End => Seen::End,
        };
        assert!(
            !matches!(self.seen.last(), Some(Seen::End)),
            "event after the end of the message"
        );
        self.seen.push(seen);
    }

    /// Takes events until the decoder needs input; false once it failed.
    fn drain(&mut self, decoder: &mut Decoder) -> bool {
        loop {
            match decoder.next() {
                Ok(Some(event)) => self.record(event),
                Ok(None) => return true,
                Err(e) => {
                    self.end = Err(e);
                    return false;
                }
            }
        }
    }
}

/// Decodes `message` pushed in `splits` reads, as the tunnel does after each opened chunk.
pub(crate) fn decode_stream(message: &[u8], splits: Splits, limits: Limits) -> Transcript {
    let mut decoder = Decoder::new(limits);
    let mut transcript = Transcript {
        seen: Vec::new(),
        end: Ok(()),
    };
    for piece in splits.pieces(message) {
        decoder.push(Bytes::copy_from_slice(piece));
        if !transcript.drain(&mut decoder) {
            return transcript;
        }
    }
    decoder.finish();
    if transcript.drain(&mut decoder) {
        // After the end of input the decoder either failed or delivered the whole message.
        assert!(
            matches!(transcript.seen.last(), Some(Seen::End)),
            "input ended without End or an error"
        );
    }
    // A failed decoder stays failed.
    if let Err(e) = &transcript.end {
        assert_eq!(decoder.next().err().as_ref(), Some(e));
    }
    transcript
}

/// Input: [`Control`] bytes, then a BHTTP message. Flags: bit 0 = a field-section limit of
/// `16 * seed` bytes instead of the default, so short inputs reach the limit checks.
pub fn bhttp(data: &[u8]) {
    let Some((control, message)) = Control::parse(data) else {
        return;
    };
    let limits = if control.flags & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_field_section: 16 * usize::from(data[1]),
        }
    };
    let split = decode_stream(message, control.splits, limits);
    let whole = decode_stream(message, Splits::whole(), limits);
    assert_eq!(whole, split, "BHTTP decoding depends on read boundaries");
}
