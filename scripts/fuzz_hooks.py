"""Schemathesis hooks for scripts/fuzz-api.sh (loaded through scripts/schemathesis.toml).

Positive cases (requests valid per the schema, which must be accepted) get two fixes
before they are sent; negative cases are left alone, so that they stay invalid:
- they carry the run's API key alone, no invented bearer token (see
  as_the_run_authenticates);
- one rule of POST /orders cannot be written in JSON Schema: an order names each product
  at most once (the server answers 400 naming the repeated line), so repeated lines are
  dropped: the case stays schema-valid and becomes valid for the server too.
"""

import schemathesis
from schemathesis import GenerationMode


@schemathesis.hook("map_case")
def as_the_run_authenticates(context, case):
    """Positive cases are sent as the run authenticates: with the admin API key alone. The
    schema offers a bearer token as the other way in, and the fuzzer invents one next to
    the key; the server refuses any request carrying an invalid credential (401), whatever
    else it carries, so an invented token would make a valid request invalid. Negative
    cases keep what was generated."""
    meta = getattr(case, "meta", None)
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
    if case.headers:
        for name in [h for h in case.headers if h.lower() == "authorization"]:
            del case.headers[name]
    if case.method.upper() == "POST" and case.path == "/orders":
        one_line_per_product(case)
    return case


def one_line_per_product(case):
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        seen = set()
        lines = []
        for line in body["items"]:
            if isinstance(line, dict):
                product = line.get("productId")
                if product is None:
                    product = line.get("sku")
                if product in seen:
                    continue
                seen.add(product)
            lines.append(line)
        body["items"] = lines
