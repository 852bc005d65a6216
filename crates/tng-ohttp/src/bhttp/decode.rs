//! Streaming decoder for all four RFC 9292 framings. Content is handed out as soon as any of
//! it has arrived, so neither a large known-length body nor a slow stream is ever buffered.

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::{BhttpError, Event, Limits, RequestHead, ResponseHead};
use crate::varint;

pub struct Decoder {
    limits: Limits,
    buf: BytesMut,
    state: State,
    eof: bool,
    failed: Option<BhttpError>,
}

// The field-section state dominates the size; the state lives once per message and is only
// moved, so boxing it would just add allocations.
#[allow(clippy::large_enum_variant)]
enum State {
    Framing,
    Control {
        known: bool,
    },
    Status {
        known: bool,
    },
    Fields {
        known: bool,
        purpose: Purpose,
        section: Section,
    },
    /// `remaining` is `None` until the content length has been read.
    KnownContent {
        remaining: Option<u64>,
    },
    /// `remaining` bytes left in the current chunk; 0 = at a chunk boundary.
    ChunkedContent {
        remaining: u64,
    },
    EmitEnd,
    Done,
}

enum Purpose {
    Informational,
    Request(Control),
    Response(StatusCode),
    Trailers,
}

struct Control {
    method: Method,
    scheme: String,
    authority: String,
    path: String,
}

#[derive(Default)]
struct Section {
    map: HeaderMap,
    /// Encoded bytes of the section consumed so far (indeterminate-length form).
    used: usize,
    /// Declared length of a known-length section, once read.
    declared: Option<usize>,
}

enum Step {
    Emit(Event),
    Continue,
    NeedMore,
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            buf: BytesMut::new(),
            state: State::Framing,
            eof: false,
            failed: None,
        }
    }

    pub fn push(&mut self, data: Bytes) {
        if self.buf.is_empty() {
            // Reuses the allocation when the buffer was drained (the common case).
            self.buf = BytesMut::from(data);
        } else {
            self.buf.extend_from_slice(&data);
        }
    }

    /// Marks end of input. Missing trailing sections that would be empty are then taken as
    /// empty (RFC 9292 §3.8); any other incompleteness makes `next` fail with `Truncated`.
    pub fn finish(&mut self) {
        self.eof = true;
    }

    /// The next event, or `None` when more input is needed (never after `finish`, except
    /// once the message has ended).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Event>, BhttpError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        loop {
            let state = std::mem::replace(&mut self.state, State::Done);
            match self.advance(state) {
                Ok((state, step)) => {
                    self.state = state;
                    match step {
                        Step::Emit(event) => return Ok(Some(event)),
                        Step::Continue => {}
                        Step::NeedMore => return Ok(None),
                    }
                }
                Err(err) => {
                    self.failed = Some(err.clone());
                    self.buf = BytesMut::new();
                    return Err(err);
                }
            }
        }
    }

    fn need_more(&self, state: State) -> Result<(State, Step), BhttpError> {
        if self.eof {
            Err(BhttpError::Truncated)
        } else {
            Ok((state, Step::NeedMore))
        }
    }

    /// At end of input with nothing left over: a missing section here may be read as empty.
    fn truncated_here(&self) -> bool {
        self.eof && self.buf.is_empty()
    }

    fn advance(&mut self, state: State) -> Result<(State, Step), BhttpError> {
        match state {
            State::Framing => {
                let Some((framing, n)) = varint::decode(&self.buf) else {
                    return self.need_more(state);
                };
                self.buf.advance(n);
                let next = match framing {
                    0 => State::Control { known: true },
                    1 => State::Status { known: true },
                    2 => State::Control { known: false },
                    3 => State::Status { known: false },
                    other => return Err(BhttpError::UnexpectedFraming(other)),
                };
                Ok((next, Step::Continue))
            }
            State::Control { known } => match self.parse_control()? {
                Some(control) => Ok((
                    State::Fields {
                        known,
                        purpose: Purpose::Request(control),
                        section: Section::default(),
                    },
                    Step::Continue,
                )),
                None => self.need_more(state),
            },
            State::Status { known } => {
                let Some((status, n)) = varint::decode(&self.buf) else {
                    return self.need_more(state);
                };
                self.buf.advance(n);
                let purpose = match status {
                    100..=199 => Purpose::Informational,
                    200..=999 => Purpose::Response(
                        StatusCode::from_u16(status as u16)
                            .map_err(|_| BhttpError::InvalidStatus(status))?,
                    ),
                    _ => return Err(BhttpError::InvalidStatus(status)),
                };
                Ok((
                    State::Fields {
                        known,
                        purpose,
                        section: Section::default(),
                    },
                    Step::Continue,
                ))
            }
            State::Fields {
                known,
                purpose,
                mut section,
            } => {
                let complete = if known {
                    self.parse_known_section(&mut section)?
                } else {
                    self.parse_indeterminate_section(&mut section)?
                };
                let at_boundary = section.declared.is_none();
                if !complete {
                    let may_truncate = self.truncated_here()
                        && at_boundary
                        && !matches!(purpose, Purpose::Informational);
                    if !may_truncate {
                        return self.need_more(State::Fields {
                            known,
                            purpose,
                            section,
                        });
                    }
                }
                Ok(self.section_done(known, purpose, section.map))
            }
            State::KnownContent { remaining: None } => match varint::decode(&self.buf) {
                Some((len, n)) => {
                    self.buf.advance(n);
                    Ok((
                        State::KnownContent {
                            remaining: Some(len),
                        },
                        Step::Continue,
                    ))
                }
                None if self.truncated_here() => Ok((trailers(true), Step::Continue)),
                None => self.need_more(State::KnownContent { remaining: None }),
            },
            State::KnownContent { remaining: Some(0) } => Ok((trailers(true), Step::Continue)),
            State::KnownContent {
                remaining: Some(remaining),
            } => match self.take_content(remaining) {
                Some(data) => Ok((
                    State::KnownContent {
                        remaining: Some(remaining - data.len() as u64),
                    },
                    Step::Emit(Event::Data(data)),
                )),
                None => self.need_more(State::KnownContent {
                    remaining: Some(remaining),
                }),
            },
            State::ChunkedContent { remaining: 0 } => match varint::decode(&self.buf) {
                Some((0, n)) => {
                    self.buf.advance(n);
                    Ok((trailers(false), Step::Continue))
                }
                Some((len, n)) => {
                    self.buf.advance(n);
                    Ok((State::ChunkedContent { remaining: len }, Step::Continue))
                }
                None if self.truncated_here() => Ok((trailers(false), Step::Continue)),
                None => self.need_more(State::ChunkedContent { remaining: 0 }),
            },
            State::ChunkedContent { remaining } => match self.take_content(remaining) {
                Some(data) => Ok((
                    State::ChunkedContent {
                        remaining: remaining - data.len() as u64,
                    },
                    Step::Emit(Event::Data(data)),
                )),
                None => self.need_more(State::ChunkedContent { remaining }),
            },
            State::EmitEnd => Ok((State::Done, Step::Emit(Event::End))),
            State::Done => {
                // Whatever follows the message is padding, which must be zeros (§3.8).
                if self.buf.iter().any(|b| *b != 0) {
                    return Err(BhttpError::InvalidPadding);
                }
                self.buf.clear();
                Ok((State::Done, Step::NeedMore))
            }
        }
    }

    fn section_done(&mut self, known: bool, purpose: Purpose, map: HeaderMap) -> (State, Step) {
        let content = if known {
            State::KnownContent { remaining: None }
        } else {
            State::ChunkedContent { remaining: 0 }
        };
        match purpose {
            // Interim responses carry nothing the tunnel forwards; the final one follows.
            Purpose::Informational => (State::Status { known }, Step::Continue),
            Purpose::Request(c) => (
                content,
                Step::Emit(Event::RequestHead(RequestHead {
                    method: c.method,
                    scheme: c.scheme,
                    authority: c.authority,
                    path: c.path,
                    headers: map,
                })),
            ),
            Purpose::Response(status) => (
                content,
                Step::Emit(Event::ResponseHead(ResponseHead {
                    status,
                    headers: map,
                })),
            ),
            Purpose::Trailers if map.is_empty() => (State::EmitEnd, Step::Continue),
            Purpose::Trailers => (State::EmitEnd, Step::Emit(Event::Trailers(map))),
        }
    }

    fn take_content(&mut self, remaining: u64) -> Option<Bytes> {
        if self.buf.is_empty() {
            return None;
        }
        let n = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        Some(self.buf.split_to(n).freeze())
    }

    /// Method, scheme, authority and path, consumed only once all four are complete.
    fn parse_control(&mut self) -> Result<Option<Control>, BhttpError> {
        let limit = self.limits.max_field_section;
        let mut offset = 0;
        let mut fields: [&[u8]; 4] = [&[]; 4];
        for field in fields.iter_mut() {
            let Some((len, n)) = varint::decode(&self.buf[offset..]) else {
                return Ok(None);
            };
            let end = (offset + n)
                .checked_add(usize::try_from(len).unwrap_or(usize::MAX))
                .filter(|end| *end <= limit)
                .ok_or(BhttpError::ControlDataTooLarge { limit })?;
            let Some(bytes) = self.buf.get(offset + n..end) else {
                return Ok(None);
            };
            *field = bytes;
            offset = end;
        }
        let [method, scheme, authority, path] = fields;
        let method = Method::from_bytes(method)
            .map_err(|_| BhttpError::InvalidMethod(String::from_utf8_lossy(method).into()))?;
        let text = |bytes: &[u8], field| {
            String::from_utf8(bytes.to_vec()).map_err(|_| BhttpError::InvalidControlData { field })
        };
        let control = Control {
            method,
            scheme: text(scheme, "scheme")?,
            authority: text(authority, "authority")?,
            path: text(path, "path")?,
        };
        self.buf.advance(offset);
        Ok(Some(control))
    }

    /// Known-length section: `varint(length) ‖ field lines`. Returns whether it is complete.
    fn parse_known_section(&mut self, section: &mut Section) -> Result<bool, BhttpError> {
        let limit = self.limits.max_field_section;
        let declared = match section.declared {
            Some(declared) => declared,
            None => {
                let Some((len, n)) = varint::decode(&self.buf) else {
                    return Ok(false);
                };
                let declared = usize::try_from(len)
                    .ok()
                    .filter(|len| *len <= limit)
                    .ok_or(BhttpError::FieldSectionTooLarge { limit })?;
                self.buf.advance(n);
                section.declared = Some(declared);
                declared
            }
        };
        if self.buf.len() < declared {
            return Ok(false);
        }
        let mut lines = self.buf.split_to(declared);
        while !lines.is_empty() {
            match field_line(&lines)? {
                Some((name, value, used)) => {
                    section.map.append(name, value);
                    lines.advance(used);
                }
                None => {
                    return Err(BhttpError::MalformedFieldSection {
                        declared: declared as u64,
                    })
                }
            }
        }
        Ok(true)
    }

    /// Indeterminate-length section: field lines up to a zero-length name. Lines are consumed
    /// one at a time so a slowly arriving section is not re-parsed from its start.
    fn parse_indeterminate_section(&mut self, section: &mut Section) -> Result<bool, BhttpError> {
        let limit = self.limits.max_field_section;
        loop {
            let Some((name_len, n)) = varint::decode(&self.buf) else {
                return Ok(false);
            };
            if name_len == 0 {
                self.buf.advance(n);
                return Ok(true);
            }
            // Refuse an oversized line from its declared lengths, before it is buffered.
            let too_large = BhttpError::FieldSectionTooLarge { limit };
            let name_end = usize::try_from(name_len)
                .ok()
                .and_then(|l| (section.used + n).checked_add(l))
                .filter(|end| *end <= limit)
                .ok_or_else(|| too_large.clone())?
                - section.used;
            let Some((value_len, m)) = self.buf.get(name_end..).and_then(varint::decode) else {
                return Ok(false);
            };
            usize::try_from(value_len)
                .ok()
                .and_then(|l| (section.used + name_end + m).checked_add(l))
                .filter(|end| *end <= limit)
                .ok_or(too_large)?;
            let Some((name, value, used)) = field_line(&self.buf)? else {
                return Ok(false);
            };
            section.map.append(name, value);
            section.used += used;
            self.buf.advance(used);
        }
    }
}

fn trailers(known: bool) -> State {
    State::Fields {
        known,
        purpose: Purpose::Trailers,
        section: Section::default(),
    }
}

/// One `varint(len) name ‖ varint(len) value` line at the start of `buf`, if complete.
fn field_line(buf: &[u8]) -> Result<Option<(HeaderName, HeaderValue, usize)>, BhttpError> {
    let Some((name, after_name)) = length_prefixed(buf, 0) else {
        return Ok(None);
    };
    let Some((value, end)) = length_prefixed(buf, after_name) else {
        return Ok(None);
    };
    let name = HeaderName::from_bytes(name).map_err(|_| {
        BhttpError::InvalidHeader(format!("name {:?}", String::from_utf8_lossy(name)))
    })?;
    let value = HeaderValue::from_bytes(value)
        .map_err(|_| BhttpError::InvalidHeader(format!("value of {name}")))?;
    Ok(Some((name, value, end)))
}

fn length_prefixed(buf: &[u8], offset: usize) -> Option<(&[u8], usize)> {
    let (len, n) = varint::decode(buf.get(offset..)?)?;
    let start = offset + n;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    Some((buf.get(start..end)?, end))
}
