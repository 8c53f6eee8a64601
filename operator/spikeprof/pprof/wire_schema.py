"""The message types decode_upb parses with: profile.proto's, with two fields read as bytes.

profile.binpb is google/pprof's proto/profile.proto compiled by the build (proto_build.py).
From it, in a private descriptor pool (nothing in protobuf's default pool, so another library's
copy of perftools.profiles cannot clash), two fields of Profile change type:

- `sample` (repeated Sample) becomes repeated bytes: upb hands over each sample's encoded body,
  and wire_arrays decodes all of them at once with numpy. Parsed as messages, upb would be as
  fast, but reading their millions of packed ids back into Python, one int at a time, took ten
  times as long as the parse itself (measured in bench/pprof_analysis.py's profiles).
- `string_table` (repeated string) becomes repeated bytes: upb refuses a string that is not
  UTF-8, which Go's pprof reads; decode_upb decodes each with errors="replace", as the
  pure-Python decoder does.

Every other message and field is profile.proto's, with its number and type.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "perftools.profiles"
_BYTES_FIELDS = {("Profile", "sample"), ("Profile", "string_table")}


@cache
def profile_message() -> Any:
    """The class of the Profile message as decode_upb reads it (a upb message class)."""
    try:
        serialized = resources.files("spikeprof.pprof").joinpath("profile.binpb").read_bytes()
    except FileNotFoundError:
        raise ImportError(
            "spikeprof/pprof/profile.binpb is missing: it is profile.proto compiled when the "
            "package is built; reinstall it (pip install -e . in a checkout)"
        ) from None
    files = descriptor_pb2.FileDescriptorSet.FromString(serialized)
    (profile_file,) = (f for f in files.file if f.package == _PACKAGE)
    for message in profile_file.message_type:
        for field in message.field:
            if (message.name, field.name) in _BYTES_FIELDS:
                field.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                field.ClearField("type_name")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(profile_file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.Profile"))
