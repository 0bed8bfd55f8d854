#!/usr/bin/env python3
"""Canned HTTP and WHOIS answers for tests/catalogue.rs (127.0.0.1 only).

Usage: stub_server.py READY_FILE

Binds an HTTP server and a WHOIS (port-43 protocol) server on free ports of
127.0.0.1, then writes {"http": PORT, "whois": PORT} to READY_FILE (via a
rename, so readers never see a partial file). Exits by itself after 10
minutes so a killed test run leaves nothing behind.
"""
import json
import os
import socketserver
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECURE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Strict-Transport-Security": "max-age=31536000",
}

CVE_LOG4J = {
    "cve": {
        "id": "CVE-2021-44228",
        "published": "2021-12-10T10:15:09.143",
        "lastModified": "2024-07-24T17:08:24.167",
        "vulnStatus": "Analyzed",
        "descriptions": [
            {"lang": "en", "value": "Apache Log4j2 JNDI features do not protect against attacker controlled LDAP endpoints."},
            {"lang": "es", "value": "Log4j2 de Apache"},
        ],
        "metrics": {
            "cvssMetricV31": [{"cvssData": {"version": "3.1", "baseScore": 10.0, "baseSeverity": "CRITICAL",
                                            "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H"}}]
        },
        "weaknesses": [{"description": [{"lang": "en", "value": "CWE-502"}, {"lang": "en", "value": "CWE-20"}]}],
        "references": [{"url": "https://logging.apache.org/log4j/2.x/security.html"}],
    }
}
CVE_OTHER = {
    "cve": {
        "id": "CVE-2021-45046",
        "published": "2021-12-14T19:15:07.733",
        "lastModified": "2024-07-24T17:08:24.167",
        "descriptions": [{"lang": "en", "value": "The fix for CVE-2021-44228 in Apache Log4j 2.15.0 was incomplete."}],
        "metrics": {"cvssMetricV2": [{"cvssData": {"version": "2.0", "baseScore": 5.1}, "baseSeverity": "MEDIUM"}]},
        "references": [],
    }
}

FORECAST = {
    "latitude": 52.52, "longitude": 13.41, "timezone": "Europe/Berlin",
    "current_units": {"temperature_2m": "°C", "wind_speed_10m": "km/h"},
    "current": {"time": "2026-11-22T16:00", "temperature_2m": 7.5, "relative_humidity_2m": 81,
                "apparent_temperature": 4.9, "weather_code": 3, "wind_speed_10m": 14.2},
    "daily_units": {"temperature_2m_max": "°C", "precipitation_sum": "mm"},
    "daily": {"time": ["2026-11-22", "2026-11-23", "2026-11-24"],
              "weather_code": [3, 61, 0],
              "temperature_2m_max": [8.1, 9.4, 6.0],
              "temperature_2m_min": [2.3, 4.0, -1.2],
              "precipitation_sum": [0.0, 4.2, 0.0]},
}
GEOCODE_BERLIN = {"results": [{"name": "Berlin", "latitude": 52.52437, "longitude": 13.41053,
                               "country": "Germany", "admin1": "Land Berlin", "timezone": "Europe/Berlin"}]}

FX_USD = {"result": "success", "base": "USD", "date": "2026-11-22",
          "rates": {"USD": 1, "EUR": 0.5, "GBP": 0.8, "JPY": 150.25}}

RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Stub News</title><link>http://stub/</link>
<item><title>Rust 2.0 released</title><link>http://stub/rust</link><pubDate>Sun, 22 Nov 2026 10:00:00 GMT</pubDate><description>Big &amp; bold</description></item>
<item><title>Python &lt;3.14&gt; news</title><link>http://stub/python</link><pubDate>Sun, 22 Nov 2026 09:00:00 GMT</pubDate></item>
<item><title>Weather turns cold</title><link>http://stub/weather</link></item>
</channel></rss>
"""
ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Stub Atom</title>
<entry><title>Atom entry one</title><link href="http://stub/a1"/><updated>2026-11-22T08:00:00Z</updated><summary>first</summary></entry>
<entry><title>Atom entry two</title><link rel="alternate" href="http://stub/a2"/><updated>2026-11-21T08:00:00Z</updated></entry>
</feed>
"""

RDAP_DOMAIN = {
    "objectClassName": "domain", "handle": "2336799_DOMAIN_COM-VRSN", "ldhName": "EXAMPLE.COM",
    "status": ["client delete prohibited", "client transfer prohibited"],
    "events": [{"eventAction": "registration", "eventDate": "1995-08-14T04:00:00Z"},
               {"eventAction": "expiration", "eventDate": "2027-08-13T04:00:00Z"},
               {"eventAction": "last changed", "eventDate": "2026-08-14T07:01:34Z"}],
    "entities": [{"objectClassName": "entity", "roles": ["registrar"], "handle": "376",
                  "vcardArray": ["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", "RESERVED-Internet Assigned Numbers Authority"]]]}],
    "nameservers": [{"objectClassName": "nameserver", "ldhName": "A.IANA-SERVERS.NET"},
                    {"objectClassName": "nameserver", "ldhName": "B.IANA-SERVERS.NET"}],
}
RDAP_IP = {"objectClassName": "ip network", "handle": "NET-192-0-2-0-1", "name": "TEST-NET-1",
           "startAddress": "192.0.2.0", "endAddress": "192.0.2.255", "country": "US",
           "status": ["active"], "entities": []}

IPINFO_8888 = {"ip": "8.8.8.8", "hostname": "dns.google", "city": "Mountain View", "region": "California",
               "country": "US", "loc": "37.4056,-122.0775", "org": "AS15169 Google LLC",
               "postal": "94043", "timezone": "America/Los_Angeles"}
IPINFO_SELF = dict(IPINFO_8888, ip="203.0.113.7", hostname="", city="Testville")
IPAPI_8888 = {"status": "success", "country": "United States", "countryCode": "US", "region": "VA",
              "regionName": "Virginia", "city": "Ashburn", "zip": "20149", "lat": 39.03, "lon": -77.5,
              "timezone": "America/New_York", "isp": "Google LLC", "org": "Google Public DNS",
              "as": "AS15169 Google LLC", "query": "8.8.8.8"}

WHOIS_EXAMPLE = """   Domain Name: EXAMPLE.COM
   Registry Domain ID: 2336799_DOMAIN_COM-VRSN
   Registrar: RESERVED-Internet Assigned Numbers Authority
   Creation Date: 1995-08-14T04:00:00Z
   Registry Expiry Date: 2027-08-13T04:00:00Z
   Domain Status: clientDeleteProhibited https://icann.org/epp#clientDeleteProhibited
   Domain Status: clientTransferProhibited https://icann.org/epp#clientTransferProhibited
   Name Server: A.IANA-SERVERS.NET
   Name Server: B.IANA-SERVERS.NET
"""


class Handler(BaseHTTPRequestHandler):
    server_version = "StubServer/1.2"
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args):
        pass

    def send(self, status, body, ctype="application/json", headers=None):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        q = urllib.parse.parse_qs(parsed.query)
        one = lambda k: (q.get(k) or [""])[0]  # noqa: E731

        if path == "/secure":
            return self.send(200, "<h1>secure</h1>", "text/html", SECURE_HEADERS)
        if path == "/plain":
            return self.send(200, "<h1>plain</h1>", "text/html", {"X-Powered-By": "PHP/8.1.2"})
        if path == "/redirect":
            return self.send(302, "", "text/plain", {"Location": "/secure"})
        if path == "/missing":
            return self.send(404, "not found", "text/plain")

        if path == "/nvd":
            cve_id = one("cveId").upper()
            if cve_id:
                vulns = [CVE_LOG4J] if cve_id == "CVE-2021-44228" else []
            else:
                kw = one("keywordSearch").lower()
                vulns = [CVE_LOG4J, CVE_OTHER] if kw == "log4j" else []
                vulns = vulns[: int(one("resultsPerPage") or 20)]
            return self.send(200, {"resultsPerPage": len(vulns), "startIndex": 0,
                                   "totalResults": len(vulns), "format": "NVD_CVE",
                                   "version": "2.0", "vulnerabilities": vulns})

        if path == "/meteo/v1/forecast":
            if not one("latitude") or not one("longitude"):
                return self.send(400, {"error": True, "reason": "latitude missing"})
            body = json.loads(json.dumps(FORECAST))
            if one("temperature_unit") == "fahrenheit":
                body["current_units"]["temperature_2m"] = "°F"
            return self.send(200, body)
        if path == "/geocode/v1/search":
            if one("name").lower() == "berlin":
                return self.send(200, GEOCODE_BERLIN)
            return self.send(200, {"generationtime_ms": 0.5})

        if path == "/fx/latest/USD":
            return self.send(200, FX_USD)
        if path.startswith("/fx/latest/"):
            return self.send(404, {"result": "error", "error-type": "unsupported-code"})

        if path == "/feed.xml":
            return self.send(200, RSS, "application/rss+xml")
        if path == "/atom.xml":
            return self.send(200, ATOM, "application/atom+xml")
        if path == "/broken.xml":
            return self.send(200, "<rss><channel><item>", "application/rss+xml")

        if path == "/rdap/domain/example.com":
            return self.send(200, RDAP_DOMAIN, "application/rdap+json")
        if path == "/rdap/ip/192.0.2.1":
            return self.send(200, RDAP_IP, "application/rdap+json")
        if path.startswith("/rdap/"):
            return self.send(404, {"errorCode": 404, "title": "Not Found"}, "application/rdap+json")

        if path == "/ipinfo/json":
            return self.send(200, IPINFO_SELF)
        if path == "/ipinfo/8.8.8.8/json":
            return self.send(200, IPINFO_8888)
        if path.startswith("/ipinfo/"):
            return self.send(404, {"status": 404, "error": {"title": "Wrong ip", "message": "Please provide a valid IP address"}})

        if path == "/geo/json/8.8.8.8":
            return self.send(200, IPAPI_8888)
        if path in ("/geo/json", "/geo/json/"):
            return self.send(200, dict(IPAPI_8888, query="203.0.113.7", city="Testville"))
        if path.startswith("/geo/json/"):
            return self.send(200, {"status": "fail", "message": "reserved range", "query": path.rsplit("/", 1)[1]})

        return self.send(404, {"error": "no such stub route", "path": path})


class WhoisHandler(socketserver.StreamRequestHandler):
    def handle(self):
        query = self.rfile.readline(512).decode("utf-8", "replace").strip().lower()
        if query == "example.com":
            answer = WHOIS_EXAMPLE
        else:
            answer = f'No match for "{query.upper()}".\n'
        self.wfile.write(answer.encode("utf-8"))


class WhoisServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    ready = sys.argv[1]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    whois = WhoisServer(("127.0.0.1", 0), WhoisHandler)
    threading.Thread(target=whois.serve_forever, daemon=True).start()
    tmp = ready + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"http": httpd.server_address[1], "whois": whois.server_address[1]}, fh)
    os.replace(tmp, ready)
    timer = threading.Timer(600, lambda: os._exit(0))
    timer.daemon = True
    timer.start()
    httpd.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
