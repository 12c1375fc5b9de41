import struct

import msgpack
import pytest

from pegasus_node.errors import ErrorCode
from pegasus_node.twisted_rpc import (
    FrameDecodeError,
    FrameDecoder,
    FrameTooLargeError,
    InvalidEnvelopeError,
    Notify,
    Reply,
    Request,
    encode_error_reply,
    encode_frame,
    encode_notify,
    encode_reply,
    encode_request,
    parse_incoming,
    parse_notify,
    parse_reply,
    parse_request,
)


def decode_all(data: bytes, max_frame_bytes: int = 1 << 20) -> list:
    return list(FrameDecoder(max_frame_bytes).feed(data))


def test_request_round_trip_keeps_bytes_and_str_apart():
    body = {"hash_key": b"\x00\xffkey", "name": "t\u00e9", "n": 2**63, "nested": [b"a", {"x": None}], 7: True}
    frame = encode_request(42, "rrdb.put", body, 1500)
    assert struct.unpack(">I", frame[:4])[0] == len(frame) - 4
    [obj] = decode_all(frame)
    request = parse_request(obj)
    assert request == Request(42, "rrdb.put", body, 1500)
    assert type(request.body["hash_key"]) is bytes and type(request.body["name"]) is str


def test_reply_round_trip_and_error_reply():
    [ok] = decode_all(encode_reply(9, ErrorCode.ERR_OK, {"value": b"v"}))
    assert parse_reply(ok) == Reply(9, 0, {"value": b"v"})
    [err] = decode_all(encode_error_reply(3, ErrorCode.ERR_TIMEOUT, "too slow"))
    assert parse_reply(err) == Reply(3, int(ErrorCode.ERR_TIMEOUT), {"message": "too slow"})


def test_decoder_is_incremental_byte_by_byte():
    stream = b"".join(encode_request(i, "m", {"i": i}) for i in range(1, 6))
    decoder = FrameDecoder()
    got = []
    for i in range(len(stream)):
        got.extend(decoder.feed(stream[i : i + 1]))
    assert [parse_request(o).request_id for o in got] == [1, 2, 3, 4, 5]
    assert decoder.buffered_bytes == 0


def test_decoder_splits_many_frames_in_one_chunk_and_keeps_the_partial_tail():
    stream = b"".join(encode_request(i, "m", b"x" * i) for i in range(1, 4))
    tail = encode_request(4, "m", b"y")
    decoder = FrameDecoder()
    first = list(decoder.feed(stream + tail[:5]))
    assert [parse_request(o).request_id for o in first] == [1, 2, 3]
    assert decoder.buffered_bytes == 5
    [last] = decoder.feed(tail[5:])
    assert parse_request(last).body == b"y"


def test_oversize_length_raises_after_delivering_the_frames_before_it():
    good = encode_request(1, "m", {})
    decoder = FrameDecoder(max_frame_bytes=100)
    got = []
    with pytest.raises(FrameTooLargeError) as info:
        for obj in decoder.feed(good + struct.pack(">I", 101) + b"\0" * 10):
            got.append(obj)
    assert len(got) == 1
    assert info.value.code == ErrorCode.ERR_INVALID_DATA
    assert "101 bytes" in info.value.message
    with pytest.raises(FrameTooLargeError):  # the decoder stays broken
        list(decoder.feed(good))


def test_a_frame_of_exactly_the_limit_is_accepted():
    payload = msgpack.packb(b"x" * 90, use_bin_type=True)
    frame = struct.pack(">I", len(payload)) + payload
    assert decode_all(frame, max_frame_bytes=len(payload)) == [b"x" * 90]


@pytest.mark.parametrize(
    "payload",
    [b"\xc1", b"", msgpack.packb(1) + msgpack.packb(2), b"\x92\x01", msgpack.packb({(1, 2): 3}, use_bin_type=True)],
    ids=["reserved-byte", "empty", "two-objects", "truncated-array", "list-as-map-key"],
)
def test_undecodable_payload_raises_frame_decode_error(payload):
    with pytest.raises(FrameDecodeError) as info:
        decode_all(struct.pack(">I", len(payload)) + payload)
    assert info.value.code == ErrorCode.ERR_INVALID_DATA


@pytest.mark.parametrize(
    "obj,request_id",
    [
        ({"method": "x"}, 0),
        ([0, 1, "m"], 1),
        ([1, 5, "m", {}, 0], 5),
        ([False, 5, "m", {}, 0], 5),
        ([0, -1, "m", {}, 0], 0),
        ([0, True, "m", {}, 0], 0),
        ([0, 7, 123, {}, 0], 7),
        ([0, 7, b"m", {}, 0], 7),
        ([0, 8, "m", {}, -5], 8),
        ([0, 8, "m", {}, "10"], 8),
    ],
)
def test_invalid_request_envelopes_name_the_request_id_when_readable(obj, request_id):
    with pytest.raises(InvalidEnvelopeError) as info:
        parse_request(obj)
    assert info.value.request_id == request_id
    assert info.value.code == ErrorCode.ERR_INVALID_DATA


def test_envelopes_may_grow_trailing_fields():
    assert parse_request([0, 1, "m", None, 0, "future"]) == Request(1, "m", None, 0)
    assert parse_reply([1, 1, 0, None, "future"]) == Reply(1, 0, None)
    assert parse_notify([2, "m", None, "future"]) == Notify("m", None)


def test_notify_round_trip_and_what_a_server_accepts():
    body = {"messages": [{"type": "prepare_ack", "gpid": [1, 0]}], "raw": b"\x00"}
    [obj] = decode_all(encode_notify("replication.messages", body))
    assert obj[0] == 2
    assert parse_incoming(obj) == Notify("replication.messages", body)
    assert type(parse_incoming(obj)) is Notify
    [request] = decode_all(encode_request(3, "m", None))
    assert type(parse_incoming(request)) is Request


@pytest.mark.parametrize("obj", [[2, "m"], [2, 5, {}], [2, b"m", {}], [True, "m", {}], [2.0, "m", {}], "notify"])
def test_invalid_notify_envelopes_name_no_request_id(obj):
    with pytest.raises(InvalidEnvelopeError) as info:
        parse_notify(obj)
    assert info.value.request_id == 0
    assert info.value.code == ErrorCode.ERR_INVALID_DATA


def test_a_server_rejects_a_broken_notify_as_a_notify_not_a_request():
    with pytest.raises(InvalidEnvelopeError, match="notify envelope") as info:
        parse_incoming([2, 9, {}])
    assert info.value.request_id == 0  # 9 is the method slot, not a request id


@pytest.mark.parametrize("obj", [[0, 1, 0, {}], [1, 1, "0", {}], [1, -1, 0, {}], "reply"])
def test_invalid_reply_envelopes(obj):
    with pytest.raises(InvalidEnvelopeError):
        parse_reply(obj)


def test_unencodable_body_raises_and_does_not_poison_later_encodes():
    with pytest.raises(TypeError):
        encode_frame({"x": object()})
    [obj] = decode_all(encode_frame([1, 2]))
    assert obj == [1, 2]
