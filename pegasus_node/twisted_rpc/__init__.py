"""The RPC layer: msgpack frames over TCP (docs/rpc.md), HTTP on the same port, and a pipelined client pool."""

from pegasus_node.twisted_rpc.address import format_address, parse_address
from pegasus_node.twisted_rpc.client import PeerStatus, RpcClientPool
from pegasus_node.twisted_rpc.codec import (
    DEFAULT_MAX_FRAME_BYTES,
    KIND_REPLY,
    KIND_REQUEST,
    FrameDecodeError,
    FrameDecoder,
    FrameError,
    FrameTooLargeError,
    InvalidEnvelopeError,
    Reply,
    Request,
    code_name,
    encode_error_reply,
    encode_frame,
    encode_reply,
    encode_request,
    error_message,
    pack_payload,
    parse_reply,
    parse_request,
    unpack_payload,
)
from pegasus_node.twisted_rpc.fail_points import DROP, FailPoints, delay
from pegasus_node.twisted_rpc.server import PING_METHOD, RpcContext, RpcServer
from pegasus_node.twisted_rpc.validation import check_field, expect

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "DROP",
    "KIND_REPLY",
    "KIND_REQUEST",
    "PING_METHOD",
    "FailPoints",
    "FrameDecodeError",
    "FrameDecoder",
    "FrameError",
    "FrameTooLargeError",
    "InvalidEnvelopeError",
    "PeerStatus",
    "Reply",
    "Request",
    "RpcClientPool",
    "RpcContext",
    "RpcServer",
    "check_field",
    "code_name",
    "delay",
    "encode_error_reply",
    "encode_frame",
    "encode_reply",
    "encode_request",
    "error_message",
    "expect",
    "format_address",
    "pack_payload",
    "parse_address",
    "parse_reply",
    "parse_request",
    "unpack_payload",
]
