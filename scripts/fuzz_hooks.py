"""Schemathesis hooks for scripts/fuzz-api.sh (loaded through scripts/schemathesis.toml).

One rule of POST /orders cannot be written in JSON Schema: an order names each product at
most once (the server answers 400 naming the repeated line). Positive test cases are
generated from the schema alone and would often repeat a product id, so before they are
sent their repeated lines are dropped: the case stays schema-valid and becomes valid for
the server too. Negative cases are left alone, so that they stay invalid.
"""

import schemathesis
from schemathesis import GenerationMode


@schemathesis.hook("map_case").apply_to(method="POST", path="/orders")
def one_line_per_product(context, case):
    meta = getattr(case, "meta", None)
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
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
    return case
