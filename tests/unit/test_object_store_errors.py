"""obstore's errors become ours at the adapter's boundary, each with a sentence a person can use.

The texts below are obstore's own (0.12, against S3 and MinIO), shortened to what matters; the
integration tests check the same translation against a real MinIO where one can be provoked.
"""

from __future__ import annotations

import obstore.exceptions
import pytest

from spikeprof.adapters.object_store import (
    ObjectNotFoundError,
    ObjectStoreAuthError,
    ObjectStoreConfigError,
    ObjectStoreError,
    ObjectStoreUnreachableError,
    translate_error,
)

SLOW_DOWN = (
    "Generic S3 error: Error performing PUT https://s3.eu-west-1.amazonaws.com/b/k in 3.1s, "
    "after 4 retries, max_retries: 4, retry_timeout: 30s  - Server returned non-2xx status code: "
    '503 Service Unavailable: <?xml version="1.0"?><Error><Code>SlowDown</Code>'
    "<Message>Please reduce your request rate.</Message></Error>"
)
READ_TIMEOUT = (
    "Generic S3 error: Error performing GET http://minio.storage:9000/b/k in 60s, after 4 "
    "retries, max_retries: 4, retry_timeout: 30s  - HTTP error: error sending request\n\n"
    "Debug source: ... kind: Timeout ... operation timed out"
)
EXPIRED = (
    "Generic S3 error: Error performing list request: Error performing GET "
    "https://s3.amazonaws.com/b?list-type=2 in 20ms - Server returned non-2xx status code: 400 "
    "Bad Request: <Error><Code>ExpiredToken</Code><Message>The provided token has expired."
    "</Message></Error>"
)


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (
            obstore.exceptions.GenericError(SLOW_DOWN),
            ObjectStoreUnreachableError,
            "Could not upload x: https://s3.eu-west-1.amazonaws.com kept failing (Please reduce "
            "your request rate. (SlowDown); gave up after 4 retries).",
        ),
        (
            obstore.exceptions.GenericError(READ_TIMEOUT),
            ObjectStoreUnreachableError,
            "Could not upload x: http://minio.storage:9000 did not answer (timed out; gave up "
            "after 4 retries).",
        ),
        (
            obstore.exceptions.GenericError(EXPIRED),
            ObjectStoreAuthError,
            "Could not upload x: https://s3.amazonaws.com refused the credentials or they do not "
            "allow this: The provided token has expired. (ExpiredToken).",
        ),
        (
            obstore.exceptions.UnauthenticatedError("401 Unauthorized"),
            ObjectStoreAuthError,
            "Could not upload x: the store refused the credentials or they do not allow this: "
            "401 Unauthorized.",
        ),
        (
            TimeoutError(),
            ObjectStoreUnreachableError,
            "Could not upload x: the store did not finish in the time allowed.",
        ),
        (
            obstore.exceptions.InvalidPathError('Path "a//b" contained empty path segment'),
            ObjectStoreConfigError,
            'Could not upload x: Path "a//b" contained empty path segment',
        ),
        (
            obstore.exceptions.NotSupportedError("Operation not supported"),
            ObjectStoreError,
            "Could not upload x: Operation not supported",
        ),
        (
            FileNotFoundError("Object at location k not found: ... 404 Not Found"),
            ObjectNotFoundError,
            "Could not upload x: there is no such object.",
        ),
    ],
)
def test_each_obstore_failure_becomes_one_of_ours_with_a_sentence(
    error: BaseException, kind: type[ObjectStoreError], message: str
) -> None:
    translated = translate_error(error, "upload x", endpoint=None)
    assert type(translated) is kind
    assert str(translated) == message


def test_an_error_without_the_request_url_names_the_configured_endpoint() -> None:
    error = obstore.exceptions.GenericError("HTTP error: error sending request: connection refused")
    translated = translate_error(error, "list y", endpoint="http://minio:9000")
    assert (
        str(translated)
        == "Could not list y: http://minio:9000 did not answer (connection refused)."
    )


AZURE_NOT_FOUND = (
    "Object at location x/k not found: Error performing PUT http://127.0.0.1:10000/"
    "devstoreaccount1/c/x/k in 3ms - Server returned non-2xx status code: 404 Not Found: "
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Error>\n  <Code>ResourceNotFound'
    "</Code>\n  <Message>The specified resource does not exist.\nRequestId:4c0d31a4\n"
    "Time:2026-11-26T04:15:57.537Z</Message>\n</Error>"
)


def test_an_azure_message_is_its_first_line_and_a_full_endpoint_gets_no_advice() -> None:
    # Azure follows its message with RequestId and Time lines; the endpoint names the account,
    # so the advice to add it would be wrong.
    translated = translate_error(
        FileNotFoundError(AZURE_NOT_FOUND),
        "upload k",
        endpoint="http://127.0.0.1:10000/devstoreaccount1",
        scheme="az",
    )
    assert type(translated) is ObjectNotFoundError
    assert str(translated) == (
        "Could not upload k: http://127.0.0.1:10000 answered The specified resource does not "
        "exist. (ResourceNotFound)."
    )
