#!/usr/bin/env python3
"""Webhook-verification test vectors from the providers' official SDKs.

Writes host/src/verify/vectors/{twilio,slack,standard_webhooks,discord,github,telegram}.json,
which the Rust tests in host/src/verify/ load with include_str! and assert one by one.

Re-run (PyPI only; nothing else is fetched):

    python3 -m venv /tmp/vv
    /tmp/vv/bin/pip install -r scripts/verify-vectors/requirements.txt
    /tmp/vv/bin/python scripts/verify-vectors/generate.py          # rewrite the fixtures
    /tmp/vv/bin/python scripts/verify-vectors/generate.py --check  # exit 1 if they would change
    cargo test -p switchboard --lib verify

Deterministic: fixed secrets, seeds, timestamps and bodies; the SDKs' clocks are pinned (Slack's
injectable clock; Standard Webhooks' `datetime.now` patched). Run from anywhere.

Every vector is a whole HTTP request as the daemon sees it (lowercase headers, path+query, raw
body) plus the account context (secret, public_url, now_ms). It records
  * "sdk":    the verdict of the official SDK (the oracle), computed here;
  * "expect": Switchboard's verdict, equal to "sdk" unless "note" says why not;
  * "error":  for rejections, the VerifyError kind Switchboard must give.
"source" is "published" (provider docs / the SDK's own tests, re-checked here against the SDK),
"sdk" (signed here with the SDK) or "tampered" (an SDK-signed request altered afterwards).

Oracles: twilio (twilio.request_validator.RequestValidator), slack_sdk
(slack_sdk.signature.SignatureVerifier), standardwebhooks (Webhook), discord-interactions
(verify_key, i.e. PyNaCl/libsodium). GitHub and Telegram publish no verification SDK: their
oracle is the documented check (GitHub's docs' Python snippet; Telegram: exact equality).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import hashlib
import hmac
import io
import json
import sys
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, urlencode, urlparse

import discord_interactions
import nacl.signing
import slack_sdk.signature
import standardwebhooks.webhooks as swh
from multidict import MultiDict
from twilio.request_validator import RequestValidator, get_signature_algorithm

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "host" / "src" / "verify" / "vectors"
GENERATOR = "scripts/verify-vectors/generate.py"

NOW = 1_700_000_000  # 2023-11-14T22:13:20Z
NOW_MS = NOW * 1000
ACCEPT, REJECT = "accept", "reject"


# ---------------------------------------------------------------------------------------------
# helpers


def request(url, headers, body="", method="POST"):
    req = {"method": method, "url": url, "headers": [[k.lower(), v] for k, v in headers]}
    if isinstance(body, bytes):
        req["body_hex"] = body.hex()
    else:
        req["body"] = body
    return req


def header(req, name):
    for k, v in req["headers"]:
        if k == name:
            return v
    return None


def body_bytes(req):
    return bytes.fromhex(req["body_hex"]) if "body_hex" in req else req["body"].encode("utf-8")


def set_header(req, name, value):
    """A copy of req with header `name` replaced (value None: removed)."""
    r = copy.deepcopy(req)
    r["headers"] = [[k, v] for k, v in r["headers"] if k != name]
    if value is not None:
        r["headers"].append([name, value])
    return r


def with_body(req, body):
    r = copy.deepcopy(req)
    r.pop("body", None)
    r.pop("body_hex", None)
    if isinstance(body, bytes):
        r["body_hex"] = body.hex()
    else:
        r["body"] = body
    return r


class Fixture:
    def __init__(self, scheme, sdk, oracle):
        self.scheme, self.sdk, self.oracle, self.vectors = scheme, sdk, oracle, []

    def add(self, name, source, req, *, secret, expect=None, error=None, note=None, public_url=None,
            now_ms=NOW_MS, signed=None):
        assert source in ("published", "sdk", "tampered"), source
        assert name not in [v["name"] for v in self.vectors], name
        ctx = {"secret": secret, "public_url": public_url, "now_ms": now_ms}
        sdk = ACCEPT if self.oracle(ctx, req) else REJECT
        expect = expect or sdk
        if expect != sdk:
            assert note, f"{self.scheme}/{name}: Switchboard differs from the SDK ({sdk}) without a note"
        if expect == REJECT:
            assert error in ("missing", "malformed", "mismatch", "stale", "bad_secret", "no_secret"), (name, error)
        else:
            assert error is None, name
        v = {"name": name, "source": source, "secret": secret, "public_url": public_url, "now_ms": now_ms,
             "request": req, "sdk": sdk, "expect": expect, "error": error, "note": note}
        if signed is not None:
            v["signed"] = signed
        self.vectors.append(v)

    def render(self):
        doc = {"scheme": self.scheme, "generator": GENERATOR, "sdk": self.sdk, "vectors": self.vectors}
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------
# Twilio


def twilio_app_url(public_url, req):
    """Switchboard's documented rule (host/src/verify/twilio.rs `twilio_signed_url`), written
    independently: public_url with the request's query (public_url's own query only when the
    request has none); else x-forwarded-proto (default https) + host + path + query."""
    path, _, query = req["url"].partition("?")
    if public_url:
        if query:
            return public_url.split("?", 1)[0] + "?" + query
        return public_url
    proto = (header(req, "x-forwarded-proto") or "https").split(",")[0].strip().lower()
    return f"{proto}://{header(req, 'host')}{path}" + (f"?{query}" if query else "")


def twilio_oracle(ctx, req):
    """What an app using the official validator does: JSON mode when the URL carries
    bodySHA256 (params = raw body string), else the body as a form MultiDict (Flask's
    request.form)."""
    sig = header(req, "x-twilio-signature")
    if sig is None or ctx["secret"] is None:
        return False
    if ctx["public_url"] is None and header(req, "host") is None:
        return False
    url = twilio_app_url(ctx["public_url"], req)
    body = body_bytes(req).decode("utf-8", "replace")
    if "bodySHA256" in parse_qs(urlparse(url).query):
        params = body
    else:
        params = MultiDict(parse_qsl(body, keep_blank_values=True))
    alg = get_signature_algorithm(header(req, "x-twilio-webhooks-signature-settings"))
    with contextlib.redirect_stderr(io.StringIO()):
        return RequestValidator(ctx["secret"]).validate(url, params, sig, alg)


def twilio_sign(token, signed_url, pairs=None, json_body=None, algorithm=None):
    v = RequestValidator(token)
    if json_body is not None:
        return v.compute_signature(signed_url, {}, algorithm)
    return v.compute_signature(signed_url, MultiDict(pairs or []), algorithm)


def twilio():
    f = Fixture("twilio", f"twilio {version('twilio')} (twilio.request_validator.RequestValidator)", twilio_oracle)

    # -- published: twilio-python tests/unit/test_request_validator.py (token 12345)
    sdk_params = [("CallSid", "CA1234567890ABCDE"), ("Digits", "1234"), ("From", "+14158675309"),
                  ("To", "+18005551212"), ("Caller", "+14158675309")]
    form = urlencode(sdk_params)
    u = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_sign("12345", u, sdk_params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    host = [("host", "mycompany.com")]
    f.add("sdk-test: compute_signature, URL from the host header", "published",
          request("/myapp.php?foo=1&bar=2", host + [("x-twilio-signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")], form),
          secret="12345", signed=u)
    f.add("sdk-test: compute_signature, URL from public_url + request query", "published",
          request("/webhooks/twilio-main?foo=1&bar=2", [("x-twilio-signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")], form),
          secret="12345", public_url="https://mycompany.com/myapp.php", signed=u)
    f.add("sdk-test: removes port on https", "published",
          request("/myapp.php?foo=1&bar=2", [("host", "mycompany.com:1234"),
                                             ("x-twilio-signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")], form),
          secret="12345", signed=u)
    f.add("sdk-test: removes port on http (signed with :1234)", "published",
          request("/myapp.php?foo=1&bar=2", [("host", "mycompany.com:1234"), ("x-forwarded-proto", "http"),
                                             ("x-twilio-signature", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=")], form),
          secret="12345", signed="http://mycompany.com:1234/myapp.php?foo=1&bar=2")
    f.add("sdk-test: adds port 443 on https", "published",
          request("/myapp.php?foo=1&bar=2", host + [("x-twilio-signature", "kvajT1Ptam85bY51eRf/AJRuM3w=")], form),
          secret="12345", signed="https://mycompany.com:443/myapp.php?foo=1&bar=2")
    f.add("sdk-test: adds port 80 on http", "published",
          request("/myapp.php?foo=1&bar=2", host + [("x-forwarded-proto", "http"),
                                                    ("x-twilio-signature", "0ZXoZLH/DfblKGATFgpif+LLRf4=")], form),
          secret="12345", signed="http://mycompany.com:80/myapp.php?foo=1&bar=2")
    sdk_json = '{"property": "value", "boolean": true}'
    sdk_hash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    assert hashlib.sha256(sdk_json.encode()).hexdigest() == sdk_hash
    f.add("sdk-test: JSON body with bodySHA256", "published",
          request(f"/myapp.php?foo=1&bar=2&bodySHA256={sdk_hash}",
                  host + [("content-type", "application/json"), ("x-twilio-signature", "a9nBmqA0ju/hNViExpshrM61xv4=")],
                  sdk_json),
          secret="12345", signed=f"{u}&bodySHA256={sdk_hash}")
    dup = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    assert twilio_sign("12345", u, dup) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    f.add("sdk-test: repeated key (MultiDict / QueryDict)", "published",
          request("/myapp.php?foo=1&bar=2", host + [("x-twilio-signature", "IK+Dwps556ElfBT0I3Rgjkr1wJU=")],
                  urlencode(dup)), secret="12345", signed=u)
    docs_params = [("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"),
                   ("From", "+12349013030"), ("To", "+18005551212")]
    f.add("claimed docs example: GvWf1cFY/Q7PnoempGyD5oXAezc= does not verify", "published",
          request("/myapp.php?foo=1&bar=2", host + [("x-twilio-signature", "GvWf1cFY/Q7PnoempGyD5oXAezc=")],
                  urlencode(docs_params)), secret="12345", error="mismatch",
          note="quoted as Twilio's docs example (token 12345, +12349013030 params); the official SDK "
               "rejects it and computes 0/KCTR6DLpKmkAf8muzZqo1nDgQ= (next vector)")
    f.add("docs params signed by the SDK", "sdk",
          request("/myapp.php?foo=1&bar=2", host + [("x-twilio-signature", twilio_sign("12345", u, docs_params))],
                  urlencode(docs_params)), secret="12345", signed=u)

    # -- generated
    tok = "tw_auth_token_5f2b8c1d9e0a4b3c"
    pub = "https://hooks.example.com/webhooks/sms"
    local = "/webhooks/twilio-main"

    def add(name, pairs, *, signed_url, req_url=local, public_url=pub, headers=(), body=None, source="sdk",
            secret=tok, sig=None, algorithm=None, **kw):
        body = urlencode(pairs) if body is None else body
        sig = sig if sig is not None else twilio_sign(tok, signed_url, pairs, algorithm=algorithm)
        hs = list(headers) + ([("x-twilio-signature", sig)] if sig != "" else [])
        r = request(req_url, hs, body)
        f.add(name, source, r, secret=secret, public_url=public_url, signed=signed_url, **kw)
        return r

    sms = [("ToCountry", "US"), ("SmsMessageSid", "SM0123456789abcdef0123456789abcdef"), ("NumMedia", "0"),
           ("Body", "Hello there"), ("From", "+15005550006"), ("To", "+15005550001"),
           ("MessageSid", "SM0123456789abcdef0123456789abcdef"), ("AccountSid", "AC00000000000000000000000000000000"),
           ("ApiVersion", "2010-04-01")]
    base = add("inbound SMS via public_url", sms, signed_url=pub)
    add("unicode values (é, ☕, 日本語, emoji)", sms[:3] + [("Body", "Café ☕ 日本語 🎉 «ok»")] + sms[4:], signed_url=pub)
    add("code-point key order: Zeta < _x < alpha < Ünïcode", [("alpha", "1"), ("Ünïcode", "2"), ("_x", "3"),
                                                               ("Zeta", "4"), ("AccountSid", "AC1")], signed_url=pub)
    add("repeated keys, distinct values sorted", [("MediaUrl", "https://m.example/b"), ("MediaUrl", "https://m.example/a"),
                                                  ("NumMedia", "2"), ("Body", "pics")], signed_url=pub)
    add("repeated identical pair is de-duplicated by the SDK", [("Tag", "x"), ("Tag", "x"), ("Tag", "a"), ("Body", "t")],
        signed_url=pub)
    add("plus, %20 and %2B in values", [("Body", "a b+c"), ("From", "+15005550006")], signed_url=pub,
        body="Body=a+b%2Bc&From=%2B15005550006")
    add("empty values and a key without =", [("Body", ""), ("NumMedia", "0"), ("Flag", "")], signed_url=pub,
        body="Body=&NumMedia=0&Flag")
    add("public_url with explicit port, Twilio signed with it", sms, signed_url="https://hooks.example.com:8443/tw",
        public_url="https://hooks.example.com:8443/tw")
    add("public_url with explicit port, Twilio signed without it", sms, signed_url="https://hooks.example.com/tw",
        public_url="https://hooks.example.com:8443/tw")
    add("public_url without port, Twilio signed with :443", sms, signed_url="https://hooks.example.com:443/webhooks/sms")
    add("host header with port, x-forwarded-proto http", sms, signed_url="http://gw.example.net:8080/webhooks/twilio-main",
        public_url=None, headers=[("host", "gw.example.net:8080"), ("x-forwarded-proto", "http")])
    add("x-forwarded-proto list: first value counts", sms, signed_url="https://gw.example.net/webhooks/twilio-main",
        public_url=None, headers=[("host", "gw.example.net"), ("x-forwarded-proto", "https, http")])
    add("status callback: query in the URL and form body",
        [("MessageStatus", "delivered"), ("MessageSid", "SM1"), ("ErrorCode", "")],
        signed_url=f"{pub}?acct=main&attempt=1", req_url=f"{local}?acct=main&attempt=1")
    add("public_url's own query, request has none", [("Body", "q")], signed_url=f"{pub}?k=v",
        public_url=f"{pub}?k=v")
    add("GET webhook: parameters in the query only", [],
        signed_url=f"{pub}?CallSid=CA1&From=%2B15005550006", req_url=f"{local}?CallSid=CA1&From=%2B15005550006",
        body="")
    add("SharedKey mode: HMAC_SHA256 settings header", sms, signed_url=pub, algorithm="HMAC_SHA256",
        headers=[("x-twilio-webhooks-signature-settings", "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256")])
    add("settings header says HMAC_SHA256, signed with SHA1", sms, signed_url=pub, source="tampered",
        headers=[("x-twilio-webhooks-signature-settings", "key=k1,algorithm=HMAC_SHA256")], error="mismatch")
    add("settings header with an unknown algorithm", sms, signed_url=pub, source="tampered",
        headers=[("x-twilio-webhooks-signature-settings", "key=k1,algorithm=HMAC_MD5")], error="malformed")

    # JSON bodies
    jb = '{"MessageSid":"SM1","Body":"héllo","Nested":{"a":[1,2,3]}}'
    jh = hashlib.sha256(jb.encode()).hexdigest()
    jsig = twilio_sign(tok, f"{pub}?bodySHA256={jh}", json_body=jb)
    jreq = request(f"{local}?bodySHA256={jh}", [("content-type", "application/json"), ("x-twilio-signature", jsig)], jb)
    f.add("JSON body with bodySHA256 (public_url + request query)", "sdk", jreq, secret=tok, public_url=pub,
          signed=f"{pub}?bodySHA256={jh}")
    f.add("JSON body changed after signing", "tampered", with_body(jreq, jb.replace("héllo", "hallo")),
          secret=tok, public_url=pub, error="mismatch")
    evil = '{"MessageSid":"SM1","Body":"evil"}'
    eh = hashlib.sha256(evil.encode()).hexdigest()
    r = copy.deepcopy(with_body(jreq, evil))
    r["url"] = f"{local}?bodySHA256={eh}"
    f.add("JSON body replaced with its own bodySHA256 (URL no longer signed)", "tampered", r, secret=tok,
          public_url=pub, error="mismatch")
    up = jh.upper()
    f.add("bodySHA256 in uppercase hex (SDK compares strings)", "sdk",
          request(f"{local}?bodySHA256={up}", [("x-twilio-signature", twilio_sign(tok, f"{pub}?bodySHA256={up}",
                                                                                   json_body=jb))], jb),
          secret=tok, public_url=pub, error="mismatch", signed=f"{pub}?bodySHA256={up}")
    f.add("JSON body with a URL-only signature (no bodySHA256)", "tampered",
          request(local, [("content-type", "application/json"), ("x-twilio-signature", twilio_sign(tok, pub, []))], jb),
          secret=tok, public_url=pub, error="mismatch", signed=pub)

    # tampering with a form request
    def tampered_body(name, pairs, **kw):
        f.add(name, "tampered", with_body(base, urlencode(pairs)), secret=tok, public_url=pub, **kw)

    tampered_body("Body changed", [(k, "Hello therf" if k == "Body" else v) for k, v in sms], error="mismatch")
    tampered_body("parameter added", sms + [("Extra", "1")], error="mismatch")
    tampered_body("parameter removed", sms[1:], error="mismatch")
    tampered_body("key case changed (Body -> body)", [("body" if k == "Body" else k, v) for k, v in sms], error="mismatch")
    tampered_body("parameters reordered (still the same signed string)", list(reversed(sms)))
    tampered_body("identical pair repeated (the SDK de-duplicates)", sms + [("Body", "Hello there")])
    f.add("re-encoded body, same decoded params (%20 for +)", "tampered",
          with_body(base, urlencode(sms).replace("+", "%20")), secret=tok, public_url=pub)
    f.add("wrong auth token", "tampered", base, secret="tw_auth_token_other", public_url=pub, error="mismatch")
    f.add("missing X-Twilio-Signature", "tampered", set_header(base, "x-twilio-signature", None), secret=tok,
          public_url=pub, error="missing")
    f.add("signature not base64", "tampered", set_header(base, "x-twilio-signature", "%%%not-base64%%%"), secret=tok,
          public_url=pub, error="malformed")
    s = header(base, "x-twilio-signature")
    f.add("signature with one character changed", "tampered",
          set_header(base, "x-twilio-signature", ("B" if s[0] != "B" else "C") + s[1:]), secret=tok, public_url=pub,
          error="mismatch")
    f.add("public_url path differs from what Twilio called", "tampered", base, secret=tok,
          public_url="https://hooks.example.com/webhooks/other", error="mismatch")
    signed_https = [("host", "gw.example.net"), ("x-twilio-signature", twilio_sign(tok, "https://gw.example.net/webhooks/twilio-main", sms))]
    f.add("proxy says http, Twilio called https", "tampered",
          request(local, signed_https + [("x-forwarded-proto", "http")], urlencode(sms)), secret=tok, error="mismatch")
    f.add("host header of another site", "tampered",
          set_header(request(local, signed_https, urlencode(sms)), "host", "evil.example.org"), secret=tok,
          error="mismatch")
    f.add("no public_url and no host header", "tampered",
          set_header(request(local, signed_https, urlencode(sms)), "host", None), secret=tok, error="missing")
    return f


# ---------------------------------------------------------------------------------------------
# Slack


class FixedClock(slack_sdk.signature.Clock):
    def __init__(self, now_ms):
        self.t = now_ms / 1000

    def now(self):
        return self.t


def slack_oracle(ctx, req):
    v = slack_sdk.signature.SignatureVerifier(ctx["secret"], clock=FixedClock(ctx["now_ms"]))
    headers = {k: val for k, val in req["headers"]}
    try:
        return v.is_valid_request(body_bytes(req), headers)
    except (ValueError, UnicodeDecodeError):
        return False


def slack():
    f = Fixture("slack-v0", f"slack_sdk {version('slack_sdk')} (slack_sdk.signature.SignatureVerifier)", slack_oracle)
    docs_secret = "8f742231b10e8888abcd99yyyzzz85a5"
    docs_body = ("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
                 "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
                 "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
                 "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    docs = request("/webhooks/slack", [("x-slack-request-timestamp", "1531420618"),
                                       ("x-slack-signature", "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503")],
                   docs_body)
    f.add("docs.slack.dev example (slash command)", "published", docs, secret=docs_secret, now_ms=1531420618_000)
    f.add("docs example, 5 years later", "published", docs, secret=docs_secret, now_ms=NOW_MS, error="stale")

    secret = "slack_signing_secret_8c1f0e2d"
    signer = slack_sdk.signature.SignatureVerifier(secret)

    def signed(body, ts=str(NOW)):
        return request("/webhooks/slack", [("content-type", "application/json"), ("x-slack-request-timestamp", ts),
                                           ("x-slack-signature", signer.generate_signature(timestamp=ts, body=body))], body)

    ev = json.dumps({"token": "x", "team_id": "T1", "type": "event_callback", "event_id": "Ev1",
                     "event": {"type": "message", "text": "naïve café ☕ 日本", "user": "U1"}}, ensure_ascii=False)
    base = signed(ev)
    f.add("event_callback with raw UTF-8", "sdk", base, secret=secret)
    f.add("url_verification", "sdk", signed('{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}'),
          secret=secret)
    f.add("empty body", "sdk", signed(""), secret=secret)
    f.add("ts exactly 300 s old", "sdk", signed(ev, str(NOW - 300)), secret=secret)
    f.add("ts 301 s old", "sdk", signed(ev, str(NOW - 301)), secret=secret, error="stale")
    f.add("ts 300 s in the future", "sdk", signed(ev, str(NOW + 300)), secret=secret)
    f.add("ts 301 s in the future", "sdk", signed(ev, str(NOW + 301)), secret=secret, error="stale")
    f.add("ts 300 s old, now has +500 ms", "sdk", signed(ev, str(NOW - 300)), secret=secret, now_ms=NOW_MS + 500,
          error="stale")
    f.add("body changed", "tampered", with_body(base, ev.replace("café", "cafe")), secret=secret, error="mismatch")
    f.add("body with trailing newline", "tampered", with_body(base, ev + "\n"), secret=secret, error="mismatch")
    f.add("timestamp changed within the window", "tampered",
          set_header(base, "x-slack-request-timestamp", str(NOW - 1)), secret=secret, error="mismatch")
    f.add("wrong signing secret", "tampered", base, secret="slack_signing_secret_other", error="mismatch")
    sig = header(base, "x-slack-signature")
    f.add("v1= prefix", "tampered", set_header(base, "x-slack-signature", sig.replace("v0=", "v1=")), secret=secret,
          error="malformed")
    f.add("missing signature", "tampered", set_header(base, "x-slack-signature", None), secret=secret, error="missing")
    f.add("missing timestamp", "tampered", set_header(base, "x-slack-request-timestamp", None), secret=secret,
          error="missing")
    f.add("non-integer timestamp", "sdk", signed(ev, f"{NOW}.5"), secret=secret, error="malformed")
    f.add("uppercase hex signature", "tampered", set_header(base, "x-slack-signature", "v0=" + sig[3:].upper()),
          secret=secret, expect=ACCEPT,
          note="the SDK compares the hex strings; Switchboard decodes the hex and compares the MAC bytes "
               "(the same MAC, so nothing forged gets through); Slack sends lowercase")
    return f


# ---------------------------------------------------------------------------------------------
# Standard Webhooks


def sw_oracle(ctx, req):
    class PinnedDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(ctx["now_ms"] / 1000, tz)

    real = swh.datetime
    swh.datetime = PinnedDatetime
    try:
        wh = swh.Webhook(ctx["secret"])
        wh.verify(body_bytes(req), {k: v for k, v in req["headers"]}, json_parse=False)
        return True
    except Exception:  # the SDK raises ValueError/binascii.Error too, not only WebhookVerificationError
        return False
    finally:
        swh.datetime = real


def standard_webhooks():
    f = Fixture("standard-webhooks", f"standardwebhooks {version('standardwebhooks')} (standardwebhooks.webhooks.Webhook)",
                sw_oracle)
    # published: standard-webhooks libraries/python tests (test_sign_function and friends)
    ps = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    pid, pts, pbody = "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", '{"test": 2432232314}'
    psig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert swh.Webhook(ps).sign(pid, datetime.fromtimestamp(int(pts), timezone.utc), pbody) == psig

    def preq(sig):
        return request("/webhooks/sw", [("webhook-id", pid), ("webhook-timestamp", pts), ("webhook-signature", sig)], pbody)

    pnow = int(pts) * 1000
    f.add("spec example (test_sign_function)", "published", preq(psig), secret=ps, now_ms=pnow)
    f.add("spec example, secret without whsec_ prefix", "published", preq(psig), secret=ps[len("whsec_"):], now_ms=pnow)
    f.add("spec example, invalid signature (test_invalid_signature)", "published",
          preq("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="), secret=ps, now_ms=pnow, error="mismatch")
    other = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    f.add("multi-signature header (test_multi_sig_payload)", "published",
          preq(" ".join([other, other.replace("v1,", "v2,"), psig, other])), secret=ps, now_ms=pnow)

    key = bytes(range(1, 33))
    secret = "whsec_" + base64.b64encode(key).decode()
    assert secret.endswith("=")
    wh = swh.Webhook(secret)

    def signed(body, msg_id="msg_2Lh9KRb0pTbUzWvZgXzH4c", ts=NOW, sig_secret=None):
        sig = swh.Webhook(sig_secret or secret).sign(msg_id, datetime.fromtimestamp(ts, timezone.utc), body)
        return request("/webhooks/sw", [("content-type", "application/json"), ("webhook-id", msg_id),
                                        ("webhook-timestamp", str(ts)), ("webhook-signature", sig)], body)

    body = json.dumps({"type": "invoice.paid", "data": {"id": "inv_1", "memo": "Grüße 👋 — 東京"}}, ensure_ascii=False)
    base = signed(body)
    f.add("basic delivery, unicode body", "sdk", base, secret=secret)
    f.add("secret without whsec_ prefix", "sdk", base, secret=secret[len("whsec_"):])
    f.add("secret without base64 padding", "sdk", base, secret=secret.rstrip("="))
    f.add("empty body", "sdk", signed(""), secret=secret)
    sig = header(base, "webhook-signature")
    old = header(signed(body, sig_secret="whsec_" + base64.b64encode(b"old-key-0123456789").decode()), "webhook-signature")
    f.add("key rotation: old and new signatures", "sdk", set_header(base, "webhook-signature", f"{old} {sig}"), secret=secret)
    f.add("only the old key's signature", "tampered", set_header(base, "webhook-signature", old), secret=secret,
          error="mismatch")
    f.add("v1a entry carrying the valid MAC is skipped", "tampered",
          set_header(base, "webhook-signature", f"{old} {sig.replace('v1,', 'v1a,')}"), secret=secret, error="mismatch")
    f.add("unknown version entries before the valid one", "tampered",
          set_header(base, "webhook-signature", f"v2,abc v1a,ZGVm {sig}"), secret=secret)
    f.add("entry without a comma before the valid one", "tampered",
          set_header(base, "webhook-signature", f"garbage {sig}"), secret=secret, expect=ACCEPT,
          note="the SDK raises on an entry without a comma before reaching the valid one; Switchboard skips "
               "unparseable entries, and a valid v1 signature is present")
    f.add("unpadded signature base64", "tampered", set_header(base, "webhook-signature", sig.rstrip("=")),
          secret=secret, expect=ACCEPT,
          note="the SDK's b64decode needs the padding; Switchboard decodes with or without it (the same MAC bytes)")
    f.add("ts exactly 300 s old", "sdk", signed(body, ts=NOW - 300), secret=secret)
    f.add("ts 301 s old", "sdk", signed(body, ts=NOW - 301), secret=secret, error="stale")
    f.add("ts 300 s in the future", "sdk", signed(body, ts=NOW + 300), secret=secret)
    f.add("ts 301 s in the future", "sdk", signed(body, ts=NOW + 301), secret=secret, error="stale")
    f.add("body changed", "tampered", with_body(base, body.replace("paid", "void")), secret=secret, error="mismatch")
    f.add("webhook-id changed", "tampered", set_header(base, "webhook-id", "msg_other"), secret=secret, error="mismatch")
    f.add("timestamp changed within the window", "tampered", set_header(base, "webhook-timestamp", str(NOW + 1)),
          secret=secret, error="mismatch")
    f.add("wrong key", "tampered", base, secret="whsec_" + base64.b64encode(b"another key entirely").decode(),
          error="mismatch")
    for h in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        f.add(f"missing {h}", "tampered", set_header(base, h, None), secret=secret, error="missing")
    f.add("timestamp not a number", "tampered", set_header(base, "webhook-timestamp", "yesterday"), secret=secret,
          error="malformed")
    fractional = signed(body)
    fractional = set_header(fractional, "webhook-timestamp", f"{NOW}.0")
    f.add("fractional timestamp (SDK floors it)", "sdk", fractional, secret=secret, expect=REJECT, error="malformed",
          note="the SDK parses float(timestamp) and signs its floor; Switchboard requires integer seconds as the "
               "spec and every sender use")
    return f


# ---------------------------------------------------------------------------------------------
# Discord


def discord_oracle(ctx, req):
    sig, ts = header(req, "x-signature-ed25519"), header(req, "x-signature-timestamp")
    if sig is None or ts is None:  # what verify_key_decorator does
        return False
    with contextlib.redirect_stdout(io.StringIO()):  # verify_key prints exceptions
        return discord_interactions.verify_key(body_bytes(req), sig, ts, ctx["secret"])


def discord():
    f = Fixture("discord-ed25519",
                f"discord-interactions {version('discord-interactions')} (verify_key; PyNaCl {version('PyNaCl')})",
                discord_oracle)
    sk = nacl.signing.SigningKey(hashlib.sha256(b"switchboard discord test key").digest())
    pk = sk.verify_key.encode().hex()
    other_pk = nacl.signing.SigningKey(hashlib.sha256(b"another app").digest()).verify_key.encode().hex()

    def signed(body, ts=str(NOW)):
        sig = sk.sign(ts.encode() + body.encode()).signature.hex()
        return request("/webhooks/discord", [("content-type", "application/json"), ("x-signature-ed25519", sig),
                                             ("x-signature-timestamp", ts)], body)

    ping = signed('{"type":1,"id":"1","application_id":"2","token":"t","version":1}')
    f.add("PING", "sdk", ping, secret=pk)
    cmd = json.dumps({"type": 2, "data": {"name": "échő", "options": [{"name": "q", "value": "日本語 🎉"}]}},
                     ensure_ascii=False)
    base = signed(cmd)
    f.add("application command, unicode body", "sdk", base, secret=pk)
    f.add("uppercase hex signature", "sdk", set_header(base, "x-signature-ed25519", header(base, "x-signature-ed25519").upper()),
          secret=pk)
    f.add("uppercase hex public key", "sdk", base, secret=pk.upper())
    f.add("ts exactly 300 s old", "sdk", signed(cmd, str(NOW - 300)), secret=pk)
    f.add("ts 301 s old (replay)", "sdk", signed(cmd, str(NOW - 301)), secret=pk, expect=REJECT, error="stale",
          note="Discord does not require a window; Switchboard refuses timestamps more than 5 minutes from now "
               "(interactions must be answered in 3 s and are never retried, so only replays are that old)")
    f.add("ts 1 hour in the future", "sdk", signed(cmd, str(NOW + 3600)), secret=pk, expect=REJECT, error="stale",
          note="Switchboard's 5-minute window (see 'ts 301 s old')")
    f.add("validly signed non-numeric timestamp", "sdk", signed(cmd, "not-a-time"), secret=pk, expect=REJECT,
          error="malformed", note="the window needs Unix seconds, which is what Discord sends")
    f.add("body changed", "tampered", with_body(base, cmd.replace("q", "r")), secret=pk, error="mismatch")
    f.add("timestamp changed", "tampered", set_header(base, "x-signature-timestamp", str(NOW + 1)), secret=pk,
          error="mismatch")
    f.add("another application's key", "tampered", base, secret=other_pk, error="mismatch")
    sig = bytes.fromhex(header(base, "x-signature-ed25519"))
    f.add("signature truncated", "tampered", set_header(base, "x-signature-ed25519", sig[:63].hex()), secret=pk,
          error="malformed")
    f.add("signature not hex", "tampered", set_header(base, "x-signature-ed25519", "zz" * 64), secret=pk,
          error="malformed")
    flipped = bytearray(sig)
    flipped[10] ^= 0x01
    f.add("signature bit flipped", "tampered", set_header(base, "x-signature-ed25519", bytes(flipped).hex()), secret=pk,
          error="mismatch")
    # Malleability: S + L verifies under a non-strict check; libsodium and verify_strict refuse it.
    L = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(sig[32:], "little") + L
    f.add("non-canonical S (S + L)", "tampered",
          set_header(base, "x-signature-ed25519", (sig[:32] + s.to_bytes(32, "little")).hex()), secret=pk,
          error="mismatch")
    ident = "01" + "00" * 31
    f.add("small-order public key (identity) with R = identity, S = 0", "tampered",
          set_header(base, "x-signature-ed25519", ident + "00" * 32), secret=ident, error="bad_secret")
    f.add("missing signature", "tampered", set_header(base, "x-signature-ed25519", None), secret=pk, error="missing")
    f.add("missing timestamp", "tampered", set_header(base, "x-signature-timestamp", None), secret=pk, error="missing")
    return f


# ---------------------------------------------------------------------------------------------
# GitHub (no SDK: the docs' Python snippet) and Telegram (exact equality)


def github_oracle(ctx, req):
    got = header(req, "x-hub-signature-256")
    if not got:
        return False
    mac = hmac.new(ctx["secret"].encode("utf-8"), msg=body_bytes(req), digestmod=hashlib.sha256)
    return hmac.compare_digest("sha256=" + mac.hexdigest(), got)


def github():
    f = Fixture("github-sha256", "none published; oracle = docs.github.com 'Validating webhook deliveries' Python snippet",
                github_oracle)
    docs = request("/webhooks/gh", [("x-github-event", "ping"), ("x-hub-signature-256",
                                    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")],
                   "Hello, World!")
    f.add("docs example", "published", docs, secret="It's a Secret to Everybody")
    secret = "gh_webhook_secret_3b9d"

    def signed(body):
        raw = body if isinstance(body, bytes) else body.encode()
        sig = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        return request("/webhooks/gh", [("x-github-event", "push"), ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                                        ("x-hub-signature-256", sig)], body)

    push = json.dumps({"ref": "refs/heads/main", "head_commit": {"message": "Fix ümlaut ✓"}}, ensure_ascii=False)
    base = signed(push)
    f.add("push, unicode body", "sdk", base, secret=secret)
    f.add("empty body", "sdk", signed(""), secret=secret)
    f.add("non-UTF-8 body bytes", "sdk", signed(b"\xff\xfe\x00binary"), secret=secret)
    f.add("body changed", "tampered", with_body(base, push.replace("main", "mair")), secret=secret, error="mismatch")
    f.add("wrong secret", "tampered", base, secret="gh_webhook_secret_other", error="mismatch")
    sig = header(base, "x-hub-signature-256")
    f.add("sha1= prefix", "tampered", set_header(base, "x-hub-signature-256", sig.replace("sha256=", "sha1=")),
          secret=secret, error="malformed")
    f.add("missing header", "tampered", set_header(base, "x-hub-signature-256", None), secret=secret, error="missing")
    legacy = set_header(set_header(base, "x-hub-signature-256", None), "x-hub-signature",
                        "sha1=" + hmac.new(secret.encode(), push.encode(), hashlib.sha1).hexdigest())
    f.add("legacy X-Hub-Signature (sha1) alone", "tampered", legacy, secret=secret, error="missing")
    f.add("uppercase hex", "tampered", set_header(base, "x-hub-signature-256", "sha256=" + sig[7:].upper()), secret=secret,
          expect=ACCEPT, note="the docs snippet compares strings; Switchboard compares the decoded MAC bytes "
                              "(same MAC); GitHub sends lowercase")
    return f


def telegram_oracle(ctx, req):
    got = header(req, "x-telegram-bot-api-secret-token")
    return got is not None and hmac.compare_digest(got.encode(), ctx["secret"].encode())


def telegram():
    f = Fixture("telegram-secret-token", "none published; oracle = exact equality (Bot API setWebhook secret_token)",
                telegram_oracle)
    secret = "Tg_secret-Token_0123456789_abcdefXYZ"
    base = request("/webhooks/tg", [("content-type", "application/json"), ("x-telegram-bot-api-secret-token", secret)],
                   '{"update_id":10000,"message":{"chat":{"id":-1001234567890},"text":"héllo"}}')
    f.add("exact token", "sdk", base, secret=secret)
    f.add("256-character token", "sdk", set_header(base, "x-telegram-bot-api-secret-token", "A" * 256), secret="A" * 256)
    for name, value in [("lowercased", secret.lower()), ("prefix", secret[:-1]), ("suffix added", secret + "x"),
                        ("leading space", " " + secret), ("trailing space", secret + " "), ("empty", "")]:
        f.add(f"token {name}", "tampered", set_header(base, "x-telegram-bot-api-secret-token", value), secret=secret,
              error="mismatch")
    f.add("missing header", "tampered", set_header(base, "x-telegram-bot-api-secret-token", None), secret=secret,
          error="missing")
    return f


# ---------------------------------------------------------------------------------------------


FIXTURES = {"twilio.json": twilio, "slack.json": slack, "standard_webhooks.json": standard_webhooks,
            "discord.json": discord, "github.json": github, "telegram.json": telegram}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a fixture would change")
    args = ap.parse_args()
    stale = []
    for name, build in FIXTURES.items():
        fixture = build()
        text = fixture.render()
        path = OUT / name
        n = len(fixture.vectors)
        acc = sum(v["expect"] == ACCEPT for v in fixture.vectors)
        dev = sum(v["expect"] != v["sdk"] for v in fixture.vectors)
        print(f"{name}: {n} vectors ({acc} accept, {n - acc} reject, {dev} differ from the SDK with a note)")
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date: " + ", ".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
