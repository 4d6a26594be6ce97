"""String formats in the grammar (``structgen.grammar.json_format_patterns``), against jsonschema.

The oracle is the 2020-12 format checker (what the semantic checks assert) on the decoded value;
each value is tried in several JSON spellings (``json.dumps``, raw UTF-8, random ``\\uXXXX`` and
``\\/`` escapes). Every test asserts soundness (accepted means valid) on every candidate, and
equality except where a documented restriction applies (``_in_scope``). Candidates come from
per-format generators (valid shapes with values straddling every limit), random mutations of
them, hypothesis strings over each format's alphabet, and exhaustive sweeps (every February 29
of years 0-9999, every month/day of leap and common years).
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import uuid
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import structgen as sg
from structgen.automata.lazy_dfa import LazyByteDFA
from structgen.automata.nfa import grammar_to_nfa
from structgen.grammar.ir import Grammar
from structgen.grammar.json_format_patterns import format_grammar, spelled_class

CHECKER = jsonschema.Draft202012Validator.FORMAT_CHECKER
VOCAB = sg.Vocabulary.byte_level([])
_DFAS: dict[tuple[str, bool], LazyByteDFA] = {}


def _dfa(name: str, escapes: bool) -> LazyByteDFA:
    if (name, escapes) not in _DFAS:
        body = format_grammar(name, escapes)
        assert body is not None
        nfa, start = grammar_to_nfa(Grammar.from_expr(body.expr))
        _DFAS[name, escapes] = LazyByteDFA(nfa, start)
    return _DFAS[name, escapes]


def _accepts(name: str, body: str, escapes: bool = False) -> bool:
    dfa = _dfa(name, escapes)
    state = dfa.step(dfa.initial, body.encode("utf-8"))
    return state != 0 and dfa.accept_list[state]


def _spellings(value: str, rng: random.Random) -> list[str]:
    """JSON string bodies that decode to ``value``."""
    out = [json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]]
    chars = []
    for ch in value:
        r = rng.random()
        if r < 0.25 and ord(ch) < 0x10000:
            code = f"{ord(ch):04x}"
            chars.append("\\u" + (code.upper() if rng.random() < 0.5 else code))
        elif ch == "/" and r < 0.6:
            chars.append("\\/")
        else:
            chars.append(json.dumps(ch, ensure_ascii=False)[1:-1])
    out.append("".join(chars))
    for body in out:
        assert json.loads(f'"{body}"') == value
    return out


_HOST_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")


def _in_scope(name: str, value: str, body: str, escapes: bool) -> bool:
    """Whether the grammar is meant to accept this valid spelling (documented restrictions)."""
    plain = body == json.dumps(value, ensure_ascii=False)[1:-1]
    if not escapes and not plain:
        return False  # by default only the spelling json.dumps writes
    if name == "uuid":
        return (
            re.fullmatch(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", value) is not None
        )
    if name == "duration":
        return not re.search("[eE]", value)
    if name in ("uri", "uri-reference"):
        ip = re.search(r"\[[^\]]*\]", value)
        return ip is None or "\\" not in body
    if name == "hostname":
        stripped = value.removesuffix("\n").removesuffix(".")
        labels = stripped.split(".")
        caps = {4: 62, 8: 30, 16: 14, 32: 6}
        cap = next((c for n, c in caps.items() if len(labels) <= n), 0)
        return plain and all(_HOST_LABEL.fullmatch(x) and len(x) <= cap for x in labels)
    return True


def _judge(name: str, values: list[str], seed: int = 0, escapes: bool = False) -> int:
    """Assert the grammar against the checker on every spelling; return how many were valid."""
    rng = random.Random(seed)
    valid_count = 0
    for value in values:
        valid = CHECKER.conforms(value, name)
        valid_count += valid
        for body in _spellings(value, rng):
            accepted = _accepts(name, body, escapes)
            assert not accepted or valid, ("false accept", name, value, body)
            if valid and _in_scope(name, value, body, escapes):
                assert accepted, ("false reject", name, value, body)
    return valid_count


def _mutants(values: list[str], alphabet: str, rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        s = list(rng.choice(values))
        for _ in range(rng.randint(1, 3)):
            i = rng.randint(0, len(s))
            op = rng.random()
            if op < 0.33 and s:
                del s[min(i, len(s) - 1)]
            elif op < 0.66:
                s.insert(i, rng.choice(alphabet))
            elif s:
                s[min(i, len(s) - 1)] = rng.choice(alphabet)
        out.append("".join(s))
    return out


# --- generators --------------------------------------------------------------------------------


def _dates(rng: random.Random, n: int) -> list[str]:
    years = [0, 1, 4, 100, 400, 1900, 2000, 2023, 2024, 2100, 2400, 9999]
    return [
        f"{rng.choice([rng.randint(0, 9999), *years]):04d}-{rng.randint(0, 13):02d}-"
        f"{rng.randint(0, 32):02d}"
        for _ in range(n)
    ]


def _times(rng: random.Random, n: int) -> list[str]:
    zones = ["Z", "z", "+01:00", "-23:59", "+24:00", "-00:60", "", "+1:00", "Z\n", "z\n\n", " Z"]
    out = []
    for _ in range(n):
        t = f"{rng.randint(0, 25):02d}:{rng.randint(0, 61):02d}:{rng.randint(0, 61):02d}"
        if rng.random() < 0.5:
            t += "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 4)))
        out.append(t + rng.choice(zones))
    return out


def _generate(name: str, rng: random.Random) -> list[str]:
    if name == "date":
        values = _dates(rng, 1500)
        return values + _mutants(values, "0123456789-T: ", rng, 800)
    if name == "time":
        values = _times(rng, 1500)
        return values + _mutants(values, "0123456789:Zz+-.tT\n ", rng, 800)
    if name == "date-time":
        values = [
            d + rng.choice("Tt t") + t
            for d, t in zip(_dates(rng, 1500), _times(rng, 1500), strict=True)
        ]
        return values + _mutants(values, "0123456789:Zz+-.tT\n ", rng, 800)
    if name in ("email", "idn-email"):
        values = ["a@b", "@", "", "ab", "a@", "@b", "x@y@z", "é@è", "a\n@", "😀@x", "no at", '"@"']
        return values + _mutants(["user@example.com"], '@a.é "\\\n', rng, 300)
    if name == "ipv4":
        values = []
        for _ in range(1500):
            parts = [
                str(rng.choice([rng.randint(0, 255), rng.randint(0, 999), 0, 255, 256]))
                for _ in range(rng.choice([3, 4, 4, 4, 5]))
            ]
            if rng.random() < 0.1:
                parts[0] = "0" + parts[0]
            values.append(".".join(parts))
        return values + _mutants(values, "0123456789. ", rng, 800)
    if name == "ipv6":
        values = ["::", "::1", "1::", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8",
                  "1:2:3:4:5:6:7:8:9", ":::", "1:::2", "::1.2.3.4", "::ffff:1.2.3.4",
                  "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "1::1.2.3.4", "fe80::1%eth0",
                  "fe80::1%", "12345::", "::01.2.3.4", "1:2:3:4:5::1.2.3.4"]  # fmt: skip
        for _ in range(1200):
            bits = rng.getrandbits(128) if rng.random() < 0.5 else rng.getrandbits(16) << 64
            address = ipaddress.IPv6Address(bits)
            text = rng.choice([address.compressed, address.exploded])
            if rng.random() < 0.2:
                text = text.upper()
            if rng.random() < 0.15:
                text = (
                    text.rsplit(":", 2)[0] + ":" + str(ipaddress.IPv4Address(rng.getrandbits(32)))
                )
            values.append(text)
        return values + _mutants(values, "0123456789abcdefABCDEF:.g%", rng, 1200)
    if name == "uuid":
        values = []
        for _ in range(400):
            u = str(uuid.UUID(int=rng.getrandbits(128)))
            values += [u, u.upper(), "{" + u + "}", "urn:uuid:" + u, u.replace("-", "")]
        return values + _mutants(values, "0123456789abcdefg-{}x_ ", rng, 500)
    if name == "duration":
        numbers = ["1", "0", "12", "1.5", "1,5", ".5", "5.", "-1", "+2", "0.0", "-0", "00",
                   "1.2.3", "", "+", ",", ",5", "1e2"]  # fmt: skip
        values = []
        for _ in range(2500):
            s = rng.choice(["P", "-P", "+P", "P", "p", "PP", ""])
            s += "".join(rng.choice(numbers) + d for d in "YMDW" if rng.random() < 0.4)
            if rng.random() < 0.2:
                s += rng.choice(["1", "2,", "-", "e", "1.5"])
            if rng.random() < 0.6:
                s += "T" + "".join(rng.choice(numbers) + d for d in "HMS" if rng.random() < 0.5)
            values.append(s)
        values += ["P2020-01-01T10:00:00S", "P1T1H", "P1,5T1H", "P1Y2T1H", "P0Y1W", "P1Y1W",
                   "P0.0D2W", "P2020T10M", "P,T1H", "PT", "P", "-P", "P1WT1H", "P1W1D"]  # fmt: skip
        return values + _mutants(values, "PYMDWTHS0123456789.,+-E ", rng, 1500)
    if name == "hostname":
        values = ["example.com", "a", "a.", "a.b.c", "-a.com", "a-.com", "a--b.com", "a..b", "",
                  ".", "a.b.c.\n", "ex_ample.com", "exa mple.com", "xn--bcher-kva.example",
                  "example.com\n", "example.com\n\n", "1.2.3.4", "A.B.C", "ſ.com"]  # fmt: skip
        for k in range(1, 40, 3):
            values += [".".join(["a" * size] * k) for size in (1, 7, 8, 14, 15, 30, 31, 62, 63, 64)]
        return values + _mutants(values[:60], "ab1-.\n_", rng, 600)
    # uri, uri-reference
    values = ["http://example.com", "https://user:pw@example.com:8080/a/b?q=1&r=2#frag",
              "mailto:a@b.c", "urn:isbn:123", "file:///etc/passwd", "http://[::1]/",
              "http://[v1.x]/", "http://1.2.3.4:80", "a:b", "a:", "//x", "/path", "rel/path", "?q",
              "#f", "", "http://ex%41mple.com/%7Euser", "http://a b", "http://exaémple.com",
              "ldap://[2001:db8::7]/c=GB?objectClass?one", "http://x/\n", "http://x/\n\n",
              "1http://x", "http://[::1%eth0]/", "http://[::ffff:1.2.3.4]", "http://[01:2::3]:8/",
              "http://[1::2::3]/", "s://[0:0:0:0:0:0:0:0:0]"]  # fmt: skip
    return values + _mutants(values, "a:/?#[]@!$&'()*+,;=%-._~9Z \"\\<>{}|^`\né", rng, 1500)


FORMATS = ["date", "time", "date-time", "email", "ipv4", "ipv6", "uuid", "duration", "hostname",
           "uri", "uri-reference"]  # fmt: skip


@pytest.mark.parametrize("escapes", [False, True], ids=["json.dumps spelling", "any spelling"])
@pytest.mark.parametrize("name", FORMATS)
def test_format_matches_jsonschema(name: str, escapes: bool) -> None:
    rng = random.Random(FORMATS.index(name))
    valid = _judge(name, _generate(name, rng), seed=1, escapes=escapes)
    assert valid > 5  # the generators reach the valid side too


def test_every_february_29_and_every_day() -> None:
    values = [f"{year:04d}-02-29" for year in range(0, 10000)]
    values += [
        f"{year:04d}-{month:02d}-{day:02d}"
        for year in (1900, 2000, 2023, 2024)
        for month in range(0, 14)
        for day in range(0, 33)
    ]
    for value in values:
        assert _accepts("date", value) == CHECKER.conforms(value, "date"), value
        time = value + "T12:00:00Z"
        assert _accepts("date-time", time) == CHECKER.conforms(time, "date-time"), time


_ALPHABETS = {
    "date": "0123456789-",
    "time": "0123456789:.Zz+-\n",
    "date-time": "0123456789-:T.Z+",
    "ipv4": "0123456789.",
    "ipv6": "0123456789abcdef:.",
    "duration": "PYMDWTHS0123456789.,-",
    "hostname": "ab0-.",
    "uri": "ab:/?#[]@%1.",
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_strings_over_format_alphabets(data: Any) -> None:
    name = data.draw(st.sampled_from(sorted(_ALPHABETS)))
    texts = data.draw(st.lists(st.text(_ALPHABETS[name], max_size=24), min_size=10, max_size=10))
    _judge(name, texts)


def test_spelled_class_decodes_to_its_characters() -> None:
    for code in range(0x80):
        ch = chr(code)
        pattern = re.compile(spelled_class(frozenset({ch})))
        spellings = {f"\\u{code:04x}", f"\\u{code:04X}"}
        if code >= 0x20 and ch not in '"\\':
            spellings.add(ch)
        short = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
        short |= {"\b": "\\b", "\f": "\\f"}
        if ch in short:
            spellings.add(short[ch])
        for body in spellings:
            assert pattern.fullmatch(body) and json.loads(f'"{body}"') == ch, (code, body)
        assert not pattern.fullmatch(f"\\u{(code + 1) % 0x80:04x}")


# --- end to end --------------------------------------------------------------------------------


def _live(compiled: sg.CompiledGrammar, text: str) -> bool:
    data = text.encode()
    return compiled.matcher().consume_tokens(list(data)) == len(data)


def _complete(compiled: sg.CompiledGrammar, text: str) -> bool:
    data = text.encode()
    matcher = compiled.matcher()
    return matcher.consume_tokens(list(data)) == len(data) and matcher.is_accepting()


def test_issue_date_cannot_run_on() -> None:
    grammar = sg.Grammar.from_json_schema({"type": "string", "format": "date"})
    assert {k.keyword: k.status for k in grammar.report}["format"] == "grammar"
    compiled = sg.compile(grammar, VOCAB)
    assert _live(compiled, '"2022-01-01')
    assert not _live(compiled, '"2022-01-01T')  # refused at once, not at the closing quote
    assert not _live(compiled, '"2023-02-29')
    assert _complete(compiled, '"2024-02-29"')
    assert _accepts("date", "\\u0032024-02-29", escapes=True)  # the any-spelling grammar


@pytest.mark.parametrize(
    "schema, status",
    [
        ({"$schema": "http://json-schema.org/draft-04/schema#", "format": "date"}, "grammar"),
        ({"$schema": "http://json-schema.org/draft-03/schema#", "format": "time"}, "check"),
        ({"format": "date-time", "maxLength": 40}, "check"),  # length next to a format: check
        ({"format": "uuid", "minLength": 36}, "grammar"),  # implied by the format
        ({"format": "iri"}, "check"),
    ],
    ids=str,
)
def test_which_formats_are_grammar(schema: dict[str, Any], status: str) -> None:
    grammar = sg.Grammar.from_json_schema(schema)
    statuses = {k.keyword: k.status for k in grammar.report}
    assert status in (statuses["format"], statuses.get("maxLength"))
