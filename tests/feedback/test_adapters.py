"""Every adapter against every real sample payload, and malformed variants of each."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from hypercare.feedback.adapters import ADAPTERS
from hypercare.feedback.adapters.cloudwatch import string_to_sign
from hypercare.feedback.config import FieldMapping, IntegrationOptions
from hypercare.feedback.drafts import Rejected, SignalDraft, parse_time
from tests.feedback.helpers import fixture_bytes, fixture_json, fixture_names

NONE = IntegrationOptions()


def run(
    kind: str, body: bytes | Any, headers: dict[str, str] | None = None, **opts: Any
) -> list[SignalDraft]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ADAPTERS[kind](raw, headers or {}, IntegrationOptions(**opts) if opts else NONE)


@pytest.mark.parametrize("name", fixture_names("alertmanager_"))
def test_alertmanager_fixtures(name: str) -> None:
    payload = fixture_json(name)
    drafts = run("alertmanager", fixture_bytes(name))
    assert len(drafts) == len(payload["alerts"])
    for draft, alert in zip(drafts, payload["alerts"], strict=True):
        assert draft.kind == "system" and draft.source == "alertmanager"
        assert draft.status == alert["status"]
        assert draft.raw == alert
        assert draft.dedup_key.startswith("alertmanager:")
        if alert.get("fingerprint"):
            assert draft.dedup_key == f"alertmanager:{alert['fingerprint']}"
        assert draft.labels["alertname"] in draft.summary
        assert draft.occurred_at is not None


def test_alertmanager_details() -> None:
    firing = run("alertmanager", fixture_bytes("alertmanager_v4_firing_two_alerts.json"))
    assert [d.dedup_key for d in firing] == [
        "alertmanager:a1bc48475b20e73d",
        "alertmanager:c2ea85182f28cbd9",
    ]
    assert firing[0].severity == "critical"
    assert firing[0].summary == "High CPU Temperature: High CPU core temperature"
    assert firing[0].body == "CPU core temperature is 34.75C"
    resolved = run("alertmanager", fixture_bytes("alertmanager_v4_resolved.json"))
    assert resolved[0].status == "resolved"
    assert resolved[0].occurred_at == dt.datetime(2019, 1, 28, 20, 27, 23, 868893, tzinfo=dt.UTC)
    # no fingerprint: the key comes from the labels and is stable
    single = run("alertmanager", fixture_bytes("alertmanager_v4_firing_single.json"))
    again = run("alertmanager", fixture_bytes("alertmanager_v4_firing_single.json"))
    assert single[0].dedup_key == again[0].dedup_key != "alertmanager:"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "empty body"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        ({"version": "4", "alerts": []}, "non-empty list"),
        ({"version": "4"}, "non-empty list"),
        ({"version": "9", "alerts": [{}]}, "unsupported Alertmanager webhook version"),
        ({"alerts": ["x"]}, "alerts[0] must be a JSON object"),
        ({"alerts": [{"status": "firing"}]}, "no labels"),
        ({"alerts": [{"status": "odd", "labels": {"alertname": "a"}}]}, "'firing' or 'resolved'"),
        (b'{"a": "\xc3\x28"}', "not UTF-8"),
    ],
)
def test_alertmanager_malformed(body: bytes | dict[str, Any], needle: str) -> None:
    with pytest.raises(Rejected) as err:
        run("alertmanager", body)
    assert needle in err.value.reason
    assert err.value.status == 422


@pytest.mark.parametrize("name", fixture_names("grafana_"))
def test_grafana_fixtures(name: str) -> None:
    payload = fixture_json(name)
    drafts = run("grafana", fixture_bytes(name))
    assert drafts and all(d.source == "grafana" for d in drafts)
    if "alerts" in payload:
        assert len(drafts) == len(payload["alerts"])
        assert [d.status for d in drafts] == [a["status"] for a in payload["alerts"]]
    else:
        assert drafts[0].dedup_key == f"grafana:rule:{payload['ruleId']}"
        assert drafts[0].status == ("resolved" if payload["state"] == "ok" else "firing")


def test_grafana_legacy_resolve_pairs_with_its_firing() -> None:
    firing = run("grafana", fixture_bytes("grafana_legacy_alerting.json"))[0]
    ok = run("grafana", fixture_bytes("grafana_legacy_ok.json"))[0]
    assert firing.dedup_key == ok.dedup_key
    assert firing.labels["instance"] == "zeta.domain"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"title": "x"}, "not a Grafana notification"),
        ({"ruleId": 1, "state": "paused"}, "is not a signal"),
        ({"alerts": "nope"}, "non-empty list"),
    ],
)
def test_grafana_malformed(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(Rejected, match=needle):
        run("grafana", body)


def test_sentry_issue_alert() -> None:
    body = fixture_bytes("sentry_event_alert_triggered.json")
    event = fixture_json("sentry_event_alert_triggered.json")["data"]["event"]
    (draft,) = run("sentry", body, {"sentry-hook-resource": "event_alert"})
    assert draft.dedup_key == f"sentry:issue:{event['issue_id']}"
    assert draft.summary == event["title"]
    assert draft.severity == event["level"]
    assert draft.status == "firing"
    assert draft.labels.get("rule")


def test_sentry_legacy_plugin() -> None:
    (draft,) = run("sentry", fixture_bytes("sentry_webhooks_plugin_legacy.json"))
    assert draft.dedup_key == "sentry:issue:1385042923"
    assert draft.summary == "ReferenceError: hello is not defined"
    assert draft.severity == "error"
    assert draft.route == "/runner"
    assert draft.labels["rule"] == "Webhook Test"


def test_sentry_issue_resolved_resource() -> None:
    body = {
        "action": "resolved",
        "data": {"issue": {"id": "42", "title": "Boom", "level": "error"}},
    }
    (draft,) = run("sentry", body, {"sentry-hook-resource": "issue"})
    assert draft.status == "resolved" and draft.dedup_key == "sentry:issue:42"


def test_sentry_signature() -> None:
    body = fixture_bytes("sentry_event_alert_triggered.json")
    good = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert run("sentry", body, {"sentry-hook-signature": good}, secret="s3cret")
    for headers in ({}, {"sentry-hook-signature": "0" * 64}):
        with pytest.raises(Rejected) as err:
            run("sentry", body, headers, secret="s3cret")
        assert err.value.status == 401


def test_sentry_malformed() -> None:
    with pytest.raises(Rejected, match="not a Sentry webhook"):
        run("sentry", {"hello": "world"})
    with pytest.raises(Rejected, match="unsupported Sentry webhook resource"):
        run("sentry", {"data": {"installation": {}}}, {"sentry-hook-resource": "installation"})


def test_pagerduty_trigger_ack_resolve() -> None:
    (t,) = run("pagerduty", fixture_bytes("pagerduty_events_v2_trigger.json"))
    assert t.dedup_key == "pagerduty:samplekeyhere" and t.status == "firing"
    assert t.severity == "info" and t.component == "postgres"
    (a,) = run("pagerduty", fixture_bytes("pagerduty_events_v2_acknowledge.json"))
    assert a.status is None and a.labels["event_action"] == "acknowledge"
    (r,) = run("pagerduty", fixture_bytes("pagerduty_events_v2_resolve.json"))
    assert r.status == "resolved" and r.dedup_key == "pagerduty:dedupkeyhere"
    (c,) = run("pagerduty", fixture_bytes("pagerduty_events_v2_change_event.json"))
    assert c.create_issue is False and c.labels["event"] == "change"


def test_pagerduty_trigger_without_dedup_key_gets_one() -> None:
    body = {
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "h", "severity": "error"},
    }
    (d,) = run("pagerduty", body)
    assert len(d.labels["dedup_key"]) == 32


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"event_action": "explode"}, "event_action"),
        ({"event_action": "resolve"}, "'dedup_key' is required"),
        ({"event_action": "trigger", "payload": {"summary": "s"}}, "missing source, severity"),
        (
            {
                "event_action": "trigger",
                "payload": {"summary": "s", "source": "h", "severity": "bad"},
            },
            "payload.severity",
        ),
        ({"event_action": "trigger", "payload": "x"}, "must be a JSON object"),
        ({"event_action": "resolve", "dedup_key": ""}, "non-empty string"),
    ],
)
def test_pagerduty_malformed(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(Rejected, match=needle):
        run("pagerduty", body)


def test_datadog_default_payload() -> None:
    (d,) = run("datadog", fixture_bytes("datadog_webhook_default.json"))
    assert d.summary == "[Memory Alert]" and d.status == "firing"
    assert d.dedup_key == "datadog:[Memory Alert]"
    assert d.occurred_at == dt.datetime.fromtimestamp(1406662672, dt.UTC)
    recovered = {
        **fixture_json("datadog_webhook_default.json"),
        "title": "[Recovered] [Memory Alert]",
    }
    (r,) = run("datadog", recovered)
    assert r.status == "resolved" and r.dedup_key == d.dedup_key


def test_datadog_unsubstituted_template_is_rejected() -> None:
    with pytest.raises(Rejected, match=r"not substituted in .*title"):
        run("datadog", fixture_bytes("datadog_webhook_default_template.json"))
    with pytest.raises(Rejected, match="'title' is required"):
        run("datadog", {"body": "x"})


def test_cloudwatch_alarm_and_states() -> None:
    (alarm,) = run("cloudwatch", fixture_bytes("cloudwatch_sns_notification_alarm.json"))
    assert alarm.status == "firing" and alarm.summary == "bucketbytesAlarm: ALARM"
    assert alarm.dedup_key == "cloudwatch:1234567890:EU (Ireland):bucketbytesAlarm"
    assert alarm.labels["metric"] == "BucketSizeBytes"
    (insufficient,) = run(
        "cloudwatch", fixture_bytes("cloudwatch_sns_notification_insufficient_data.json")
    )
    assert insufficient.severity == "warning"
    ok_env = fixture_json("cloudwatch_sns_notification_alarm.json")
    msg = json.loads(ok_env["Message"]) | {"NewStateValue": "OK"}
    (ok,) = run("cloudwatch", ok_env | {"Message": json.dumps(msg)})
    assert ok.status == "resolved" and ok.dedup_key == alarm.dedup_key


def test_cloudwatch_subscription_confirmation() -> None:
    (d,) = run("cloudwatch", fixture_bytes("cloudwatch_sns_subscription_confirmation.json"))
    assert d.create_issue is False
    assert d.labels["sns_type"] == "SubscriptionConfirmation"
    assert d.labels["subscribe_url"].startswith("https://sns.eu-west-1.amazonaws.com/")


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"Type": "Other"}, "not an SNS message"),
        ({"Type": "Notification", "Message": 5}, "'Message' must be a string"),
        (
            {"Type": "Notification", "Message": '{"AlarmName": "a", "NewStateValue": "X"}'},
            "not a CloudWatch alarm",
        ),
    ],
)
def test_cloudwatch_malformed(body: dict[str, Any], needle: str) -> None:
    with pytest.raises(Rejected, match=needle):
        run("cloudwatch", body)


def _signing_pair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize("version", ["1", "2"])
def test_cloudwatch_signature(version: str) -> None:
    key, pem = _signing_pair()
    envelope = fixture_json("cloudwatch_sns_notification_alarm.json") | {
        "SignatureVersion": version
    }
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    sig = key.sign(string_to_sign(envelope), padding.PKCS1v15(), algorithm)
    envelope["Signature"] = base64.b64encode(sig).decode()
    assert run("cloudwatch", envelope, sns_certificate=pem)
    tampered = envelope | {"Subject": "something else"}
    with pytest.raises(Rejected) as err:
        run("cloudwatch", tampered, sns_certificate=pem)
    assert err.value.status == 401
    # the fixture's real AWS signature does not verify against our certificate
    with pytest.raises(Rejected):
        run(
            "cloudwatch",
            fixture_bytes("cloudwatch_sns_notification_alarm.json"),
            sns_certificate=pem,
        )


MAPPING = FieldMapping(
    items="events",
    summary="title",
    body="detail.text",
    severity="level",
    status="state",
    dedup_key="id",
    occurred_at="at",
    component="where.component",
    request_id="req",
)


def test_generic_webhook_mapping() -> None:
    body = {
        "events": [
            {
                "id": "e1",
                "title": "Checkout slow",
                "level": "high",
                "state": "open",
                "detail": {"text": "p95 4s"},
                "at": "2026-11-27T10:00:00Z",
                "where": {"component": "checkout"},
                "req": "req-1",
            },
            {"id": "e1", "title": "Checkout slow", "state": "resolved"},
        ]
    }
    first, second = run("webhook", body, mapping=MAPPING)
    assert first.dedup_key == second.dedup_key == "webhook:e1"
    assert first.status == "firing" and second.status == "resolved"
    assert first.component == "checkout" and first.request_ids == ("req-1",)
    assert first.body == "p95 4s" and first.severity == "high"


def test_generic_webhook_malformed() -> None:
    with pytest.raises(Rejected, match="'events' is not a non-empty list"):
        run("webhook", {"items": []}, mapping=MAPPING)
    with pytest.raises(Rejected, match=r"events.0: the mapped summary field 'title'"):
        run("webhook", {"events": [{"name": "x"}]}, mapping=MAPPING)
    with pytest.raises(Rejected) as err:
        run("webhook", {"x": 1})
    assert err.value.status == 409


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "2015-07-17T08:42:58.315+0000",
            dt.datetime(2015, 7, 17, 8, 42, 58, 315000, tzinfo=dt.UTC),
        ),
        (
            "2020-02-06T00:17:58.432911368Z",
            dt.datetime(2020, 2, 6, 0, 17, 58, 432911, tzinfo=dt.UTC),
        ),
        ("0001-01-01T00:00:00Z", None),
        (1406662672000, dt.datetime.fromtimestamp(1406662672, dt.UTC)),
        ("garbage", None),
        (None, None),
    ],
)
def test_parse_time(value: Any, expected: dt.datetime | None) -> None:
    assert parse_time(value) == expected
