"""AWS CloudWatch alarms delivered by SNS over HTTP(S).

The SNS envelope carries the alarm as a JSON string in ``Message``: ``ALARM`` fires,
``OK`` resolves, ``INSUFFICIENT_DATA`` is kept as a warning. A ``SubscriptionConfirmation``
becomes an information signal holding the SubscribeURL (the view fetches it when
``sns_auto_confirm`` is set). With ``sns_certificate`` configured, the message signature
(SignatureVersion 1 = SHA1, 2 = SHA256, RSA PKCS#1 v1.5) must verify against it.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hypercare.feedback.adapters.base import SUMMARY, Integration, now_iso
from hypercare.feedback.config import IntegrationOptions
from hypercare.feedback.drafts import (
    Rejected,
    SignalDraft,
    need_object,
    parse_json,
    parse_time,
    text,
)

_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED_FIELDS["UnsubscribeConfirmation"] = _SIGNED_FIELDS["SubscriptionConfirmation"]
_STATES = {
    "ALARM": ("firing", "error"),
    "OK": ("resolved", None),
    "INSUFFICIENT_DATA": ("firing", "warning"),
}


def string_to_sign(envelope: Mapping[str, Any]) -> bytes:
    """The canonical text SNS signs: ``Key\\nValue\\n`` for each signed key present."""
    fields = _SIGNED_FIELDS.get(str(envelope.get("Type")), ())
    out = "".join(f"{k}\n{envelope[k]}\n" for k in fields if envelope.get(k) is not None)
    return out.encode()


def verify(envelope: Mapping[str, Any], certificate_pem: str) -> None:
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError:
        raise Rejected(
            "the configured sns_certificate is not a PEM certificate", status=409
        ) from None
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Rejected("the configured sns_certificate does not hold an RSA key", status=409)
    version = str(envelope.get("SignatureVersion", ""))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise Rejected(f"unsupported SNS SignatureVersion {version!r} (1 and 2 are)", status=401)
    try:
        signature = base64.b64decode(str(envelope.get("Signature", "")), validate=True)
        key.verify(signature, string_to_sign(envelope), padding.PKCS1v15(), algorithm)
    except (InvalidSignature, binascii.Error, ValueError):
        raise Rejected(
            "the SNS message signature does not verify against the configured certificate",
            status=401,
        ) from None


def _alarm_draft(envelope: dict[str, Any], alarm: dict[str, Any]) -> SignalDraft:
    name = alarm.get("AlarmName")
    state = alarm.get("NewStateValue")
    if not name or state not in _STATES:
        raise Rejected(
            "Message is not a CloudWatch alarm: 'AlarmName' and 'NewStateValue' "
            f"({', '.join(_STATES)}) are required"
        )
    status, severity = _STATES[state]
    trigger = alarm.get("Trigger") if isinstance(alarm.get("Trigger"), dict) else {}
    labels = {
        "region": text(alarm.get("Region"), 100),
        "account": text(alarm.get("AWSAccountId"), 40),
        "state": state,
        "previous_state": text(alarm.get("OldStateValue"), 40),
        "metric": text((trigger or {}).get("MetricName"), 200),
        "namespace": text((trigger or {}).get("Namespace"), 200),
    }
    return SignalDraft(
        kind="system",
        source="cloudwatch",
        summary=text(f"{name}: {state}", 500),
        body=text(alarm.get("NewStateReason") or alarm.get("AlarmDescription")),
        dedup_key=f"cloudwatch:{labels['account']}:{labels['region']}:{text(name, 255)}",
        raw=envelope,
        severity=severity,
        status="resolved" if status == "resolved" else "firing",
        occurred_at=parse_time(alarm.get("StateChangeTime") or envelope.get("Timestamp")),
        service=text((trigger or {}).get("Namespace"), 120) or None,
        labels={k: v for k, v in labels.items() if v},
    )


def parse(
    body: bytes, headers: Mapping[str, str], options: IntegrationOptions
) -> list[SignalDraft]:
    envelope = need_object(parse_json(body), "the SNS message")
    kind = envelope.get("Type") or headers.get("x-amz-sns-message-type")
    if kind not in _SIGNED_FIELDS:
        raise Rejected(
            "not an SNS message: 'Type' must be Notification or SubscriptionConfirmation, "
            f"got {kind!r}"
        )
    if options.sns_certificate:
        verify(envelope, options.sns_certificate)
    topic = text(envelope.get("TopicArn"), 300)
    if kind != "Notification":
        url = text(envelope.get("SubscribeURL"), 2000)
        return [
            SignalDraft(
                kind="system",
                source="cloudwatch",
                summary=text(f"SNS {kind} for {topic}", 500),
                body=f"Confirm the subscription by visiting: {url}" if url else "",
                dedup_key=f"cloudwatch:sns:{topic}",
                raw=envelope,
                severity="info",
                labels={"sns_type": str(kind), "topic": topic, "subscribe_url": url},
                create_issue=False,
            )
        ]
    message = envelope.get("Message")
    if not isinstance(message, str):
        raise Rejected("'Message' must be a string (the CloudWatch alarm as JSON)")
    try:
        alarm = json.loads(message)
    except json.JSONDecodeError:
        alarm = None
    if isinstance(alarm, dict):
        return [_alarm_draft(envelope, alarm)]
    return [
        SignalDraft(
            kind="system",
            source="cloudwatch",
            summary=text(envelope.get("Subject") or message, 500),
            body=text(message),
            dedup_key=f"cloudwatch:message:{text(envelope.get('MessageId'), 100)}",
            raw=envelope,
            labels={"topic": topic},
        )
    ]


def sample(options: IntegrationOptions) -> tuple[bytes, dict[str, str]]:
    """An SNS Notification whose Message is a CloudWatch alarm. Not for an integration
    that verifies SNS signatures: only AWS can sign."""
    if options.sns_certificate:
        raise Rejected(
            "this CloudWatch integration verifies SNS signatures, which only AWS can make, "
            "so the console cannot send it a test event; publish a message to its SNS "
            "topic instead",
            status=409,
        )
    now = now_iso()
    alarm = {
        "AlarmName": "HypercareTestAlarm",
        "AlarmDescription": SUMMARY.format(kind="cloudwatch"),
        "AWSAccountId": "000000000000",
        "NewStateValue": "ALARM",
        "NewStateReason": SUMMARY.format(kind="cloudwatch"),
        "StateChangeTime": now,
        "Region": "test",
        "OldStateValue": "OK",
        "Trigger": {"MetricName": "HypercareTest", "Namespace": "Hypercare/Test"},
    }
    envelope = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": "arn:aws:sns:test:000000000000:hypercare-test",
        "Subject": "ALARM: HypercareTestAlarm",
        "Message": json.dumps(alarm),
        "Timestamp": now,
        "SignatureVersion": "1",
        "Signature": "",
    }
    return json.dumps(envelope).encode(), {"x-amz-sns-message-type": "Notification"}


INTEGRATION = Integration(
    type="cloudwatch",
    parse=parse,
    sample=sample,
    dedup="the AWS account, region and alarm name",
)
