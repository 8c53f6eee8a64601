"""Every error spikeprof defines derives from SpikeprofError, so one except clause catches them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import spikeprof
from spikeprof.core.spec import SpecError
from spikeprof.errors import SpikeprofError


def spikeprof_exceptions() -> list[type[BaseException]]:
    found = []
    for module in pkgutil.walk_packages(spikeprof.__path__, "spikeprof."):
        loaded = importlib.import_module(module.name)
        for _, value in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == loaded.__name__:
                found.append(value)
    return found


def test_every_exception_class_of_spikeprof_derives_from_spikeprof_error() -> None:
    found = spikeprof_exceptions()
    assert len(found) >= 20  # the walk did find the modules' errors
    assert [e.__qualname__ for e in found if not issubclass(e, SpikeprofError)] == []


def test_errors_that_were_value_errors_still_are() -> None:
    # Callers that catch ValueError (argument parsing, kopf's handlers) keep working.
    assert issubclass(SpecError, ValueError)
    assert issubclass(SpecError, SpikeprofError)
