"""Our Standard Webhooks signer and verifier agree with the published vector and the reference package."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import standardwebhooks

from adapters.wire.webhooks import (
    WebhookSecretError,
    WebhookSigner,
    WebhookVerificationError,
    WebhookVerifier,
    decode_secret,
    generate_secret,
    new_message_id,
)

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

OLD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NEW_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
BODY = '{"event_id":"01J0000000000000000000000A","status":"ACCEPTED","org":"凯里市市场监督管理局"}'.encode()


def vector_headers(signature: str = VECTOR_SIGNATURE) -> dict[str, str]:
    return {"webhook-id": VECTOR_ID, "webhook-timestamp": str(VECTOR_TIMESTAMP), "webhook-signature": signature}


def reason_of(verifier: WebhookVerifier, headers: dict[str, str], body: bytes, now: int | None = None) -> str:
    with pytest.raises(WebhookVerificationError) as caught:
        verifier.verify(headers, body, now=now)
    return caught.value.reason


def test_the_signer_reproduces_the_published_vector() -> None:
    headers = WebhookSigner([VECTOR_SECRET]).sign(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert headers == vector_headers()


def test_the_verifier_accepts_the_published_vector_at_its_time() -> None:
    verified = WebhookVerifier([VECTOR_SECRET]).verify(vector_headers(), VECTOR_BODY, now=VECTOR_TIMESTAMP + 10)
    assert (verified.msg_id, verified.timestamp, verified.key_index) == (VECTOR_ID, VECTOR_TIMESTAMP, 0)


def test_an_aware_datetime_signs_the_same_as_unix_seconds() -> None:
    at = datetime.fromtimestamp(VECTOR_TIMESTAMP, UTC)
    assert WebhookSigner([VECTOR_SECRET]).sign(VECTOR_ID, at, VECTOR_BODY) == vector_headers()


def test_a_naive_datetime_is_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        WebhookSigner([VECTOR_SECRET]).sign(VECTOR_ID, datetime(2024, 6, 11, 9, 30), VECTOR_BODY)


def test_the_reference_package_verifies_our_signature() -> None:
    headers = WebhookSigner([NEW_SECRET]).sign(new_message_id(), int(time.time()), BODY)
    assert standardwebhooks.Webhook(NEW_SECRET).verify(BODY, headers)["status"] == "ACCEPTED"


def test_the_reference_package_verifies_each_of_our_rotation_signatures() -> None:
    headers = WebhookSigner([NEW_SECRET, OLD_SECRET]).sign(new_message_id(), None, BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (NEW_SECRET, OLD_SECRET):
        assert standardwebhooks.Webhook(secret).verify(BODY, headers)["org"] == "凯里市市场监督管理局"


def test_we_verify_the_reference_packages_signature() -> None:
    msg_id, now = new_message_id(), datetime.now(UTC)
    signature = standardwebhooks.Webhook(NEW_SECRET).sign(msg_id, now, BODY.decode())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    assert WebhookVerifier([NEW_SECRET]).verify(headers, BODY).msg_id == msg_id


def test_a_receiver_holding_old_and_new_secrets_accepts_a_sender_still_on_the_old_one() -> None:
    headers = WebhookSigner([OLD_SECRET]).sign(new_message_id(), None, BODY)
    assert WebhookVerifier([NEW_SECRET, OLD_SECRET]).verify(headers, BODY).key_index == 1


def test_a_receiver_still_on_the_old_secret_accepts_a_sender_in_rotation() -> None:
    headers = WebhookSigner([NEW_SECRET, OLD_SECRET]).sign(new_message_id(), None, BODY)
    assert WebhookVerifier([OLD_SECRET]).verify(headers, BODY).key_index == 0


def test_a_retired_secret_no_longer_verifies() -> None:
    headers = WebhookSigner([OLD_SECRET]).sign(new_message_id(), None, BODY)
    assert reason_of(WebhookVerifier([NEW_SECRET]), headers, BODY) == "no_matching_signature"


def test_a_tampered_body_is_refused() -> None:
    headers = WebhookSigner([NEW_SECRET]).sign(new_message_id(), None, BODY)
    assert reason_of(WebhookVerifier([NEW_SECRET]), headers, BODY.replace(b"ACCEPTED", b"CLOSED")) == (
        "no_matching_signature"
    )


def test_a_changed_webhook_id_is_refused() -> None:
    headers = WebhookSigner([NEW_SECRET]).sign("msg_original", None, BODY)
    headers["webhook-id"] = "msg_replayed"
    assert reason_of(WebhookVerifier([NEW_SECRET]), headers, BODY) == "no_matching_signature"


def test_a_stale_timestamp_is_refused_even_with_a_good_signature() -> None:
    assert reason_of(WebhookVerifier([VECTOR_SECRET]), vector_headers(), VECTOR_BODY) == "timestamp_too_old"


def test_a_timestamp_too_far_in_the_future_is_refused() -> None:
    now = int(time.time())
    headers = WebhookSigner([NEW_SECRET]).sign(new_message_id(), now + 301, BODY)
    assert reason_of(WebhookVerifier([NEW_SECRET]), headers, BODY, now=now) == "timestamp_too_new"


def test_the_tolerance_edge_is_inclusive_and_configurable() -> None:
    now = int(time.time())
    headers = WebhookSigner([NEW_SECRET]).sign(new_message_id(), now - 300, BODY)
    WebhookVerifier([NEW_SECRET]).verify(headers, BODY, now=now)
    assert reason_of(WebhookVerifier([NEW_SECRET], tolerance_seconds=60), headers, BODY, now=now) == (
        "timestamp_too_old"
    )


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_each_missing_header_is_named(header: str) -> None:
    headers = WebhookSigner([NEW_SECRET]).sign(new_message_id(), None, BODY)
    del headers[header]
    with pytest.raises(WebhookVerificationError, match=header) as caught:
        WebhookVerifier([NEW_SECRET]).verify(headers, BODY)
    assert caught.value.reason == "missing_header"


def test_header_names_are_case_insensitive() -> None:
    headers = WebhookSigner([NEW_SECRET]).sign(new_message_id(), None, BODY)
    WebhookVerifier([NEW_SECRET]).verify({k.title(): v for k, v in headers.items()}, BODY)


@pytest.mark.parametrize("timestamp", ["1614265330.5", "soon", "-1614265330", "１６１４２６５３３０"])
def test_a_timestamp_that_is_not_integer_seconds_is_refused(timestamp: str) -> None:
    headers = vector_headers() | {"webhook-timestamp": timestamp}
    assert reason_of(WebhookVerifier([VECTOR_SECRET]), headers, VECTOR_BODY) == "invalid_timestamp"


def test_malformed_and_unknown_version_signatures_are_skipped_not_crashed_on() -> None:
    garbage = f"v2,abc nocomma v1,!!!notbase64 {VECTOR_SIGNATURE}"
    WebhookVerifier([VECTOR_SECRET]).verify(vector_headers(garbage), VECTOR_BODY, now=VECTOR_TIMESTAMP)
    assert reason_of(
        WebhookVerifier([VECTOR_SECRET]), vector_headers("v2,abc nocomma"), VECTOR_BODY, now=VECTOR_TIMESTAMP
    ) == "no_matching_signature"


def test_the_signature_covers_the_exact_bytes_including_non_utf8() -> None:
    body = "消费者投诉".encode("gb18030")
    headers = WebhookSigner([NEW_SECRET]).sign(new_message_id(), None, body)
    WebhookVerifier([NEW_SECRET]).verify(headers, body)


@pytest.mark.parametrize("secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_***", ""])
def test_a_malformed_secret_is_refused_at_construction(secret: str) -> None:
    with pytest.raises(WebhookSecretError):
        WebhookSigner([secret])


def test_an_empty_secret_list_or_a_bare_string_is_refused() -> None:
    with pytest.raises(WebhookSecretError):
        WebhookVerifier([])
    with pytest.raises(WebhookSecretError):
        WebhookVerifier(VECTOR_SECRET)


def test_a_generated_secret_round_trips_and_works_with_the_reference() -> None:
    secret = generate_secret()
    assert len(decode_secret(secret)) == 32
    headers = WebhookSigner([secret]).sign(new_message_id(), None, BODY)
    standardwebhooks.Webhook(secret).verify(BODY, headers)


def test_a_webhook_id_with_a_dot_is_refused_because_it_would_blur_the_signed_content() -> None:
    with pytest.raises(ValueError, match="dots"):
        WebhookSigner([NEW_SECRET]).sign("msg.1", None, BODY)
