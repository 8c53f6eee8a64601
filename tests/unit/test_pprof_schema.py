"""profile.proto is compiled at build time, the decoder's message types are profile.proto's,
and the libraries behind them load only when a profile is analysed."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from spikeprof.pprof import proto_build, wire_schema


def installed_descriptor_set() -> bytes:
    return resources.files("spikeprof.pprof").joinpath("profile.binpb").read_bytes()


def test_the_installed_descriptor_is_the_one_profile_proto_compiles_to(tmp_path: Path) -> None:
    # A stale profile.binpb (profile.proto changed since the last install) fails here: rerun
    # `pip install -e .` (make venv does when pyproject.toml changes).
    fresh = proto_build.compile_profile_proto(out=tmp_path / "profile.binpb")
    assert fresh.read_bytes() == installed_descriptor_set()


def test_only_the_sample_and_string_table_fields_are_read_as_bytes() -> None:
    (upstream,) = descriptor_pb2.FileDescriptorSet.FromString(installed_descriptor_set()).file
    ours = wire_schema.profile_message().DESCRIPTOR.file
    assert ours.package == upstream.package == "perftools.profiles"
    changed = []
    for message in upstream.message_type:
        mine = ours.message_types_by_name[message.name]
        assert sorted(f.number for f in mine.fields) == sorted(f.number for f in message.field)
        for field in message.field:
            if mine.fields_by_number[field.number].type != field.type:
                changed.append((message.name, field.name))
    assert changed == [("Profile", "sample"), ("Profile", "string_table")]


def test_the_message_types_live_in_a_pool_of_their_own() -> None:
    from google.protobuf import descriptor_pool

    with pytest.raises(KeyError):
        descriptor_pool.Default().FindMessageTypeByName("perftools.profiles.Profile")


def test_the_operator_starts_without_numpy_or_protobuf() -> None:
    # They cost ~17 MiB of RSS: the operator takes it when it first analyses a profile, not
    # at start (every pprof module imports them where they are used).
    probe = (
        "import sys, spikeprof.cli, spikeprof.services.capture, spikeprof.pprof.summary; "
        "print(sorted({'numpy', 'google.protobuf'} & set(sys.modules)))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "[]"
