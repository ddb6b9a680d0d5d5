"""A synthetic outbreak: one inert family in several variants, sent as a wave across towers.

The "WbCourier" loader shares a core (its beacon path, mutex, user agent and config
marker) across four builds that differ the way packed variants do: section names, a
junk section, version information, timestamps and the strings around the core. The
mail around it varies too (senders, subjects, filenames, archive or not), while the
lure keeps one template and the sending botnet a handful of relays. Nothing here runs:
the PE has no working code and the URLs are under ``.example``.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from workbench.samples.archives import build_zip
from workbench.samples.mail import Attachment, Mail, received

FAMILY = "WbCourier"
# What every variant carries: a campaign rule is built from these.
CORE_STRINGS = (
    b"WBDEMO-COURIER-CORE",
    b"/api/v2/courier/beacon",
    b"Global\\WbCourierMutex-7731",
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) WbCourier/3",
    b"cfg:sleep=%d;jitter=%d;gate=%s",
)
# One distinct marker per variant, around the shared core.
VARIANTS = (
    ("a", b"WbCourier build a (upx-like)", ".wbp0", "ParcelTrack"),
    ("b", b"WbCourier build b (aspack-like)", ".aspk", "DeliveryHelper"),
    ("c", b"WbCourier build c (custom xor)", ".xr1", "ShipNotify"),
    ("d", b"WbCourier build d (mpress-like)", ".MPRS", "CourierAssist"),
)
RELAYS = ("203.0.113.45", "203.0.113.46", "192.0.2.77", "192.0.2.78")
SENDER_DOMAINS = ("courier-notice.example", "parcel-desk.example", "dhl-tracking.example",
                  "express-post.example")
SUBJECTS = ("Your parcel #{n} could not be delivered", "Delivery notice {n}: action required",
            "Shipment {n} is waiting for customs payment", "Reschedule delivery of order {n}")
LURE = ("Dear customer,\n\nWe attempted to deliver your parcel {n} today but nobody was available.\n"
        "Open the attached delivery note and print it, or track it at "
        "http://courier-track.example/parcel?id={n}\n\nCustomer Service Team\n")
TOWERS = ("ams-t03", "fra-t07", "iad-t12", "sin-t21", "syd-t44")


@dataclass(frozen=True)
class WaveMessage:
    mail: Mail
    tower: str
    when: dt.datetime
    variant: str
    payload_name: str


def courier_variant(key: str) -> bytes:
    """One build of the family: a PE whose core strings sit among variant-specific ones."""
    from workbench.samples.pe import CODE, IDATA, Section, build_pe

    marker, section, product = next((m, s, p) for k, m, s, p in VARIANTS if k == key)
    rng = random.Random(f"courier-{key}")
    shared = random.Random("courier-core")
    # Builds of one family share most of their code and data; each differs in a patched
    # stretch of code, its junk section and its strings.
    code = bytearray(b"\x55\x8b\xec\x83\xec\x40\x53\x56\x57" + bytes(shared.randrange(256) for _ in range(3072)))
    at = 512 + 256 * (ord(key) - ord("a"))
    code[at:at + 48] = bytes(rng.randrange(256) for _ in range(48))
    core = b"\x00\x00".join(CORE_STRINGS) + b"\x00" + bytes(shared.randrange(256) for _ in range(4096))
    junk = bytes(rng.randrange(256) for _ in range(96)) + marker + b"\x00"
    return build_pe(
        sections=[Section(".text", bytes(code) + b"\xc9\xc3", CODE), Section(".rdata", core, IDATA),
                  Section(section, junk, IDATA)],
        imports={"kernel32.dll": ["CreateMutexA", "Sleep", "GetProcAddress", "LoadLibraryA"],
                 "wininet.dll": ["InternetOpenA", "InternetOpenUrlA", "InternetReadFile"]},
        version_info={"CompanyName": f"{product} Ltd", "FileDescription": f"{product} delivery note",
                      "OriginalFilename": f"{product.lower()}.exe"},
        timestamp=0x67300000 + rng.randrange(1 << 20))


def courier_wave(start: dt.datetime, *, messages: int = 36, seed: int = 7731) -> list[WaveMessage]:
    """The wave: ``messages`` copies over about five hours, spread over five towers."""
    rng = random.Random(seed)
    builds = {key: courier_variant(key) for key, *_ in VARIANTS}
    out: list[WaveMessage] = []
    for i in range(messages):
        when = start + dt.timedelta(minutes=i * 300 // max(messages, 1) + rng.randint(0, 7))
        key = VARIANTS[i % len(VARIANTS)][0]
        n = rng.randint(100000, 999999)
        domain = SENDER_DOMAINS[(i // 3) % len(SENDER_DOMAINS)]
        relay = RELAYS[rng.randrange(len(RELAYS))]
        name = rng.choice(["Delivery_Note_{n}.pdf.exe", "DHL_Label_{n}.exe", "Parcel_{n}.scr"]).format(n=n)
        data = builds[key]
        if i % 3 == 0:       # some copies come zipped
            attachment = Attachment(f"Delivery_{n}.zip", build_zip([(name, data)]), "application/zip")
        else:
            attachment = Attachment(name, data, "application/octet-stream")
        sender = f"{rng.choice(['noreply', 'delivery', 'service', 'tracking'])}{rng.randint(1, 99)}@{domain}"
        hops = [received("mx.quarantine.example", f"mail{rng.randint(1, 9)}.{domain}", relay, when),
                received(f"mail.{domain}", "localhost", "127.0.0.1", when - dt.timedelta(seconds=3))]
        mail = Mail(sender, f"{rng.choice(['anna.berg', 'li.wei', 'omar.haddad', 'sara.costa'])}"
                            f"@{rng.choice(['northwind.example', 'contoso.example', 'fabrikam.example'])}",
                    rng.choice(SUBJECTS).format(n=n), text=LURE.format(n=n),
                    attachments=[attachment], date=when, headers=hops)
        out.append(WaveMessage(mail, TOWERS[rng.randrange(len(TOWERS))], when, key, name))
    return out
