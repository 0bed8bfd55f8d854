"""Check recorded responses of `gathm serve` against its OpenAPI document.

Input (argv[1]): {"spec": <the document>, "responses": [{"path", "method",
"status", "content_type", "body"}]}. Every status must be documented for the
route and method, the content type must be one the document lists, and a
JSON body must validate against the response schema (JSON Schema 2020-12,
which OpenAPI 3.1 uses). Prints every mismatch; exit 1 if any.
"""

import json
import sys

import jsonschema

data = json.load(open(sys.argv[1]))
spec = data["spec"]
problems = []
for r in data["responses"]:
    where = f'{r["method"].upper()} {r["path"]} -> {r["status"]}'
    op = spec["paths"].get(r["path"], {}).get(r["method"])
    if op is None and r["status"] == 405 and r["path"] in spec["paths"]:
        continue  # a method the route does not have: 405 with Allow
    if op is None:
        problems.append(f"{where}: route not in the document")
        continue
    resp = op["responses"].get(str(r["status"])) or op["responses"].get("default")
    if resp is None:
        problems.append(f"{where}: status not documented")
        continue
    content = resp.get("content", {})
    ctype = r["content_type"].split(";")[0].strip()
    if ctype not in content:
        problems.append(f"{where}: content type {ctype} not documented ({list(content)})")
        continue
    schema = content[ctype].get("schema")
    if schema is None or ctype != "application/json":
        continue
    root = dict(schema)
    root["components"] = spec["components"]
    v = jsonschema.Draft202012Validator(root)
    for e in v.iter_errors(r["body"]):
        path = "/".join(str(p) for p in e.absolute_path)
        problems.append(f"{where}: at /{path}: {e.message[:300]}")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
