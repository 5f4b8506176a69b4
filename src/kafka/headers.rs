//! Reading a consumed record's headers as bytes, through librdkafka's C API.
//!
//! rdkafka's `Headers` accessors turn each name into a `&str` with an `unwrap`, so a
//! record with a header name that is not UTF-8 panics the thread that reads it, and they
//! read the name as a C string, so `idempotency-key\0x` comes back as `idempotency-key`.
//! Here names are read as bytes and never judged: [`crate::decode`] decides what a record
//! with a strange name gets.
//!
//! # Reliance on librdkafka's header layout
//!
//! `rd_kafka_header_get_all` returns the name as a NUL-terminated C string, not with its
//! length. librdkafka (`rd_kafka_header_add` in `rdkafka_header.c`, checked for 2.12)
//! stores a header in one allocation: the name's `name_size` bytes, a NUL, then the value
//! (`rkhdr_value = rkhdr_name + name_size + 1`) when there is one. So for a header with a
//! value, the distance from the name to the value is the name's true length plus one;
//! when it is more than `strlen(name) + 1`, the name holds a NUL, and its full bytes are
//! the ones before the value. The layout is checked before it is trusted (the value must
//! come after the visible name, within [`MAX_NAME_READ`], right after a NUL); a header
//! that fails the check is reported as holding a NUL (so its record is refused, never
//! read wrongly), logged, and counted in `kafka_header_layout_unexpected_total`. The
//! real-broker test `tests/edge.rs` fails if an upgrade of librdkafka changes the layout.
//!
//! Headers librdkafka cannot parse at all stand as one header named [`UNREADABLE`], so
//! the record is refused rather than read as if it had none.
//!
//! A header with no value has no value pointer to measure from: a NUL in its name cannot
//! be seen, and the name reads up to the NUL. Such a header carries nothing, and a key
//! header without a value is refused by [`crate::decode`] anyway.

use std::ffi::{c_char, c_void, CStr};

use rdkafka::bindings;
use rdkafka::message::BorrowedMessage;
use tracing::warn;

use crate::message::RawHeader;

/// The most bytes read as one header name past its visible (C string) part, when the
/// value's position says the name holds a NUL. A longer name is refused by decode anyway
/// (its limit is far below), so it is not read: it is reported as holding a NUL.
pub const MAX_NAME_READ: usize = 4096;

/// The name that stands for headers librdkafka could not parse: it starts with a NUL,
/// so decode refuses the record (`invalid_record`) and its message shows this name.
pub const UNREADABLE: &[u8] = b"\0unreadable-headers";

/// Copies every header of `message`, names as bytes.
pub fn read(message: &BorrowedMessage<'_>) -> Vec<RawHeader> {
    let mut native: *mut bindings::rd_kafka_headers_t = std::ptr::null_mut();
    // SAFETY: `message` is a live message; librdkafka writes a pointer it owns (valid as
    // long as the message) into `native`.
    let err = unsafe { bindings::rd_kafka_message_headers(message.ptr(), &mut native) };
    match err {
        bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR if !native.is_null() => {}
        bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__NOENT => return Vec::new(),
        _ => {
            // librdkafka could not parse the headers: the record is refused, not read
            // as if it had none (a key header would be lost without a word).
            unexpected(0, "librdkafka could not parse the record's headers");
            return vec![(UNREADABLE.to_vec(), None)];
        }
    }
    // SAFETY: `native` is the message's live headers object.
    let count = unsafe { bindings::rd_kafka_header_cnt(native) };
    let mut headers = Vec::with_capacity(count);
    for index in 0..count {
        let mut name: *const c_char = std::ptr::null();
        let mut value: *const c_void = std::ptr::null();
        let mut size: usize = 0;
        // SAFETY: `index` is below the count; the out-pointers are valid locals.
        let err = unsafe {
            bindings::rd_kafka_header_get_all(native, index, &mut name, &mut value, &mut size)
        };
        if err != bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            unexpected(index, "librdkafka did not return the header");
            headers.push((vec![0], None));
            continue;
        }
        // SAFETY: librdkafka returns each name NUL-terminated, owned by the message.
        let visible = unsafe { CStr::from_ptr(name) }.to_bytes();
        let value_bytes = (!value.is_null()).then(|| {
            // SAFETY: `value` points at `size` bytes owned by the message.
            unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) }.to_vec()
        });
        let name_bytes = if value.is_null() {
            visible.to_vec()
        } else {
            // SAFETY: both pointers are into the message's headers; `full_name` only
            // reads past the visible name after checking the layout.
            unsafe { full_name(index, name.cast::<u8>(), visible, value.cast::<u8>()) }
        };
        headers.push((name_bytes, value_bytes));
    }
    headers
}

/// The name's full bytes, measured from where its value starts (see the module doc).
///
/// # Safety
/// `name` must point at `visible` followed by a NUL, and `value` at the header's value,
/// both in one librdkafka header.
unsafe fn full_name(index: usize, name: *const u8, visible: &[u8], value: *const u8) -> Vec<u8> {
    let distance = (value as usize).wrapping_sub(name as usize);
    if distance == visible.len() + 1 {
        return visible.to_vec(); // the common case: no NUL in the name
    }
    let refused = || {
        let mut bytes = visible.to_vec();
        bytes.push(0);
        bytes
    };
    if distance < visible.len() + 1 {
        unexpected(index, "the value does not follow the name");
        return refused();
    }
    let length = distance - 1;
    if length > MAX_NAME_READ {
        // Holds a NUL (its true length is past its visible part) and is far too long.
        return refused();
    }
    // SAFETY: with the layout checked above, the name's allocation holds `length` bytes
    // and the NUL after them, before the value.
    let (bytes, terminator) =
        unsafe { (std::slice::from_raw_parts(name, length), *name.add(length)) };
    if terminator != 0 {
        unexpected(index, "no NUL between the name and the value");
        return refused();
    }
    bytes.to_vec()
}

fn unexpected(index: usize, why: &str) {
    crate::meters::header_layout_unexpected().increment(1);
    warn!(
        header_index = index,
        reason = why,
        "a header could not be read as librdkafka 2.12 lays it out; the record is refused as holding a NUL in a header name"
    );
}
