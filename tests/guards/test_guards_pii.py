"""The PII guard: each kind found with its exact span, look-alikes left alone, and its
precision and recall on a small labelled set of realistic text."""

from __future__ import annotations

import pytest

from tollway.guards.pii import KINDS, PiiGuard

GUARD = PiiGuard({})


def found(text: str, guard: PiiGuard = GUARD) -> list[tuple[str, str]]:
    return [(f.kind, text[f.start : f.end]) for f in guard.scan(text)]


# (text, the PII in it as (kind, exact substring)). Realistic sentences: support tickets,
# logs, configs, code, with numbers that are not PII around the ones that are.
LABELLED: list[tuple[str, list[tuple[str, str]]]] = [
    ("Please reach me at jane.roe@example.org after 5pm.", [("email", "jane.roe@example.org")]),
    (
        "CC: first.last+billing@sub.company.co.uk",
        [("email", "first.last+billing@sub.company.co.uk")],
    ),
    (
        "Call me on (415) 555-2671 or 415.555.0198.",
        [("phone", "(415) 555-2671"), ("phone", "415.555.0198")],
    ),
    ("Our London office: +44 20 7946 0958", [("phone", "+44 20 7946 0958")]),
    (
        "Tel. +49 30 901820, Fax +33 1 42 68 53 00",
        [("phone", "+49 30 901820"), ("phone", "+33 1 42 68 53 00")],
    ),
    ("phone: 2025550143", [("phone", "2025550143")]),
    ("Card 4111 1111 1111 1111, exp 12/27, cvc 123", [("credit_card", "4111 1111 1111 1111")]),
    ("charge 5555-5555-5555-4444 for order #88231", [("credit_card", "5555-5555-5555-4444")]),
    ("Amex: 3782 822463 10005.", [("credit_card", "3782 822463 10005")]),
    ("card=4012888888881881&amount=25.00", [("credit_card", "4012888888881881")]),
    (
        "Wire to DE89 3704 0044 0532 0130 00 (BIC COBADEFFXXX)",
        [("iban", "DE89 3704 0044 0532 0130 00")],
    ),
    ("IBAN: GB82WEST12345698765432, ref 2024-001", [("iban", "GB82WEST12345698765432")]),
    ("Konto NL91ABNA0417164300 bitte", [("iban", "NL91ABNA0417164300")]),
    ("virement FR14 2004 1010 0505 0001 3M02 606", [("iban", "FR14 2004 1010 0505 0001 3M02 606")]),
    ("Failed login from 203.0.113.7? no: from 8.8.4.4 at 10:42", [("ip_address", "8.8.4.4")]),
    ("client_ip=2606:4700:4700::1111 status=403", [("ip_address", "2606:4700:4700::1111")]),
    ("My SSN is 536-22-1234.", [("national_id", "536-22-1234")]),
    ("SSN: 536221234", [("national_id", "536221234")]),
    ("National Insurance number AB 12 34 56 C", [("national_id", "AB 12 34 56 C")]),
    ("NINO AB123456C on the payslip", [("national_id", "AB123456C")]),
    ("DNI 12345678Z y NIE X1234567L", [("national_id", "12345678Z"), ("national_id", "X1234567L")]),
    ("codice fiscale RSSMRA85T10A562S", [("national_id", "RSSMRA85T10A562S")]),
    ("BSN: 123456782", [("national_id", "123456782")]),
    ("PESEL 02070803628", [("national_id", "02070803628")]),
    ("Steuer-ID 86095742719", [("national_id", "86095742719")]),
    (
        "numéro de sécurité sociale 2 95 10 99 126 111 93",
        [("national_id", "2 95 10 99 126 111 93")],
    ),
    ("Personnummer: 880320-0016", [("national_id", "880320-0016")]),
    (
        "Hi, I'm Jane (jane@corp.io, +1 202 555 0143); card 6011 1111 1111 1117 was charged twice.",
        [
            ("email", "jane@corp.io"),
            ("phone", "+1 202 555 0143"),
            ("credit_card", "6011 1111 1111 1117"),
        ],
    ),
    (
        '{"user": {"email": "bob@example.net", "ip": "198.51.100.23x", '
        '"phone": "+1-650-253-0000"}}',
        [("email", "bob@example.net"), ("phone", "+1-650-253-0000")],
    ),
    # Nothing here is personal data.
    ("Upgrade to version 1.2.3.4 or v2.0.0.1 of the SDK.", []),
    ("Released 2024-01-15 at 14:30:00 UTC, build 20240115143000.", []),
    ("Order #4155552671 shipped; tracking 1Z999AA10123456784.", []),
    ("Request id 550e8400-e29b-41d4-a716-446655440000 failed.", []),
    ("Total: $1,234,567.89 (EUR 1.234.567,89), qty 12, unit 1234567.", []),
    ("git checkout 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", []),
    ("ISBN 978-3-16-148410-0, DOI 10.1000/182, ZIP 94043-1351", []),
    ("Listen on 0.0.0.0:8080 and 127.0.0.1; the db is at 10.0.0.5:5432", []),
    ("MAC 00:1A:2B:3C:4D:5E, time 12:30:45, std::vector<int> v;", []),
    ("for (int i = 0; i < 1000000; i++) { sum += i * 31337; }", []),
    ("pip install requests==2.31.0 numpy>=1.26.4", []),
    ("Pixel ratio icon@2x.png, clone git@github.com:org/repo.git", []),
    ("Coordinates 37.4219983, -122.084; elevation 32.5 m", []),
    ("Timestamp 1700000000123, epoch 1699999999, pid 48213", []),
    ("Part no. 4111-1111-1111 rev B, lot 2025-0042", []),
    ("SELECT * FROM orders WHERE id IN (123456789, 987654321);", []),
    ("The answer is 42; pi is 3.14159265358979; e is 2.718281828", []),
    ("Colors: #ff8800 #00ff00; font-size: 14px; z-index: 1000", []),
]


def test_precision_and_recall_on_the_labelled_set() -> None:
    """Spans must match exactly; the numbers are printed for the record."""
    true_positive = false_positive = false_negative = 0
    for text, expected in LABELLED:
        got = set(found(text))
        want = set(expected)
        true_positive += len(got & want)
        false_positive += len(got - want)
        false_negative += len(want - got)
        assert got == want, text
    precision = true_positive / (true_positive + false_positive)
    recall = true_positive / (true_positive + false_negative)
    print(f"\npii labelled set: precision {precision:.3f}, recall {recall:.3f}")
    assert precision == 1.0 and recall == 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_kinds_option_limits_what_is_looked_for(kind: str) -> None:
    text = (
        "jane@example.org, (415) 555-2671, 4111 1111 1111 1111, DE89 3704 0044 0532 0130 00, "
        "8.8.8.8, SSN 536-22-1234"
    )
    assert {k for k, _ in found(text, PiiGuard({"kinds": [kind]}))} == {kind}


def test_region_reads_national_numbers() -> None:
    text = "Ruf an: 030 901820"
    assert found(text) == []  # not a valid US number
    assert found(text, PiiGuard({"region": "DE"})) == [("phone", "030 901820")]


def test_private_ips_option() -> None:
    text = "db at 10.0.0.5 and 192.168.1.20, loopback ::1, link fe80::1:2:3"
    assert found(text) == []
    assert [value for _, value in found(text, PiiGuard({"private_ips": True}))] == [
        "10.0.0.5",
        "192.168.1.20",
        "fe80::1:2:3",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # Luhn fails
        "1234 5678 9012 3456",  # no card scheme starts with 12
        "4111 1111 1111 11111",  # grouped as no card is printed
        "DE89 3704 0044 0532 0130 01",  # IBAN checksum fails
        "000-00-0000 and 666-12-3456 and 900-12-3456",  # SSNs never issued
        "QQ 12 34 56 C",  # an HMRC example prefix, never issued
        "12345678A",  # DNI check letter wrong
        "ABCDEF12G34H567I",  # codice fiscale check character wrong
        "id 123456782",  # a valid BSN, but nothing says it is one
        "999.1.1.1 and 1.2.3",  # not addresses
        "a..b@example.com and user@localhost and @mention",
    ],
)
def test_invalid_look_alikes_are_not_flagged(text: str) -> None:
    assert found(text) == []


def test_spans_index_unicode_text() -> None:
    text = "Grüße 🙂 — schreib an juergen@example.de oder ruf +49 30 901820 an. ✓"
    assert found(text) == [("email", "juergen@example.de"), ("phone", "+49 30 901820")]


def test_email_local_parts_are_ascii_and_whole() -> None:
    # "jürgen@" is not an ASCII address: no part of it is reported as one.
    assert found("jürgen@example.de") == []
    assert found("x jurgen@example.de y") == [("email", "jurgen@example.de")]


def test_an_overlap_goes_to_the_more_specific_kind() -> None:
    # The IBAN's digit groups are not also reported as a card or a phone number.
    assert found("IBAN DE89 3704 0044 0532 0130 00") == [("iban", "DE89 3704 0044 0532 0130 00")]


def test_scan_is_stateless_across_calls() -> None:
    guard = PiiGuard({})
    first = guard.scan("mail a@example.com")
    guard.scan("call (415) 555-2671")
    assert guard.scan("mail a@example.com") == first
