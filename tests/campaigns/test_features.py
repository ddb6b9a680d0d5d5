"""Campaign features: templates, the sending hop, URLs, and the near-identical index keys."""

from __future__ import annotations

import random

import ppdeep
import tlsh

from workbench.campaigns.features import (
    DissectedNode,
    Feature,
    arrival_features,
    dissection_features,
    first_external_hop,
    fuzzy_keys,
    fuzzy_similar,
    header_features,
    registrable_domain,
    subject_template,
    url_features,
)
from workbench.samples.campaign import courier_variant
from workbench.samples.mail import Mail, received


def test_subject_template_drops_what_varies_between_copies() -> None:
    assert subject_template("RE: Fwd: Your parcel #482913 could not be delivered") == \
        subject_template("Your parcel #100233 could not be delivered")
    assert subject_template("Invoice 4471 overdue") != subject_template("Payment details")


def test_the_first_external_hop_skips_internal_relays() -> None:
    received = [
        "from relay.corp.example (relay [10.1.2.3]) by mx.example; Mon, 1 Dec 2026 10:00:00 +0000",
        "from mail7.sender.example (mail7.sender.example [203.0.113.45]) by relay.corp.example; x",
        "from localhost (localhost [127.0.0.1]) by mail7.sender.example; x",
    ]
    assert first_external_hop(received) == ("203.0.113.45", "mail7.sender.example")
    assert first_external_hop(["from a (a [192.168.1.1]) by b; x"]) == ("", "")


def test_header_features_come_from_the_raw_message() -> None:
    import datetime as dt

    when = dt.datetime(2026, 12, 1, 8, tzinfo=dt.UTC)
    raw = Mail("a@sender.example", "b@rcpt.example", "=?utf-8?q?Delivery_notice_123456?=",
               text="hello", headers=[received("mx.example", "mail1.sender.example", "192.0.2.77", when)],
               date=when).build()
    kinds = {f.kind: f.value for f in header_features(raw)}
    assert kinds == {"subject": "delivery notice <n>", "relay": "192.0.2.77", "helo": "mail1.sender.example"}
    assert header_features(b"\xff\xfe garbage") == []


def test_arrival_features_read_the_body_and_attachments_without_dissection() -> None:
    import datetime as dt
    import hashlib

    from workbench.samples.campaign import courier_wave

    wave = courier_wave(dt.datetime(2026, 12, 1, tzinfo=dt.UTC), messages=2)
    direct = wave[1].mail
    got = arrival_features(direct.build())
    assert Feature("url", "courier-track.example/parcel") in got
    assert Feature("payload", hashlib.sha256(direct.attachments[0].data).hexdigest()) in got
    assert {"subject", "relay", "body", "domain"} <= {f.kind for f in got}
    # both wave messages share the body template, whatever their parcel number
    assert {f for f in got if f.kind == "body"} == {f for f in arrival_features(wave[0].mail.build())
                                                    if f.kind == "body"}
    broken = b"Subject: x\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=x-nope\n\n" + b"hi " * 30
    assert Feature("subject", "x") not in arrival_features(broken)      # too short a subject
    assert arrival_features(broken) is not None


def test_urls_give_host_and_path_and_the_registrable_domain() -> None:
    found = set(url_features(["http://courier-track.example/parcel?id=1", "hxxps://x.evil[.]co.uk/a/b",
                              "https://bare.example"]))
    assert Feature("url", "courier-track.example/parcel") in found
    assert Feature("domain", "evil.co.uk") in found
    assert Feature("domain", "bare.example") in found
    assert not any(f.kind == "url" and f.value.startswith("bare.example") for f in found)
    assert registrable_domain("a.b.c.example") == "c.example"


def test_near_identical_builds_meet_under_a_fuzzy_key_and_compare_similar() -> None:
    a, b = courier_variant("a"), courier_variant("b")
    for kind, digest in (("ssdeep", ppdeep.hash), ("tlsh", tlsh.hash)):
        fa, fb = Feature(kind, digest(a)), Feature(kind, digest(b))
        assert set(fuzzy_keys(fa)) & set(fuzzy_keys(fb)), kind
        assert fuzzy_similar(fa, fb), kind
    unrelated = bytes(random.Random(1).randrange(256) for _ in range(len(a)))
    assert not fuzzy_similar(Feature("ssdeep", ppdeep.hash(a)), Feature("ssdeep", ppdeep.hash(unrelated)))
    assert not fuzzy_similar(Feature("tlsh", tlsh.hash(a)), Feature("tlsh", tlsh.hash(unrelated)))


def test_dissection_features_take_payloads_not_body_parts() -> None:
    message = {"subject": "Shipment 5 waiting", "text": "Dear customer, your parcel 55 is waiting for you at the depot.",
               "urls": [{"url": "http://courier-track.example/parcel?id=5"}],
               "received": [{"raw": "from a (a [10.0.0.1]) by b; x"},
                            {"raw": "from mail1.x.example (m [192.0.2.77]) by mx; x"}]}
    nodes = [
        DissectedNode("b" * 64, "", "text/plain", 300),                   # the body
        DissectedNode("c" * 64, "Parcel.exe", "application/x-dosexec", 9000, "96:abcdefghij:klmnopq",
                      "T1" + "A" * 70, ({"imphash": "f" * 32},)),
        DissectedNode("d" * 64, "tiny.txt", "text/plain", 10),            # too small to say anything
    ]
    got = dissection_features(message, nodes)
    kinds = {f.kind for f in got}
    assert {"subject", "relay", "url", "domain", "body", "payload", "ssdeep", "tlsh", "imphash"} <= kinds
    payloads = {f.value for f in got if f.kind == "payload"}
    assert payloads == {"c" * 64}
