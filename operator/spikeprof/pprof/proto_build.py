"""Compiles profile.proto into a descriptor set when the package is built.

profile.proto is google/pprof's proto/profile.proto, verbatim (Apache-2.0, from
github.com/google/pprof at b9395ee17fa0d0013c3fd96ac9482318422ac337). pyproject.toml makes
BuildPyWithProfileDescriptor setuptools' build_py ([tool.setuptools.cmdclass]), so every build,
`pip install .`, `pip install -e .` and the image's, writes profile.binpb beside the .proto with
protoc from grpcio-tools, a build requirement only: the runtime needs the protobuf package and
this file, not protoc, and no generated code is kept in the repository.

A descriptor set, rather than a generated profile_pb2.py, because wire_schema.py derives its
own message types from it in a private pool: nothing is registered in protobuf's default pool
(where another library's copy of perftools.profiles would clash), and no generated code ties
the runtime's protobuf version to the build's protoc.

setuptools loads this module by path, outside the spikeprof package, while building.
"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTO = HERE / "profile.proto"
DESCRIPTOR_SET = HERE / "profile.binpb"


def compile_profile_proto(proto: Path = PROTO, out: Path = DESCRIPTOR_SET) -> Path:
    """Run protoc (grpcio-tools) on profile.proto; the serialized FileDescriptorSet goes to out."""
    from grpc_tools import protoc  # a build requirement only

    status = protoc.main(
        [
            "protoc",
            f"--proto_path={proto.parent}",
            f"--descriptor_set_out={out}",
            str(proto),
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc could not compile {proto} (exit status {status})")
    return out


class BuildPyWithProfileDescriptor(build_py):
    """setuptools' build_py, writing profile.binpb into the source tree first.

    Into the source tree, so an editable install finds it where it imports the package from;
    build_py then copies it into a wheel as package data like any other file.
    """

    def run(self) -> None:
        compile_profile_proto()
        super().run()


if __name__ == "__main__":  # by hand: python operator/spikeprof/pprof/proto_build.py
    print(compile_profile_proto(), file=sys.stderr)
