#!/usr/bin/env python3
"""Checks the Terraform stack in deploy/terraform against what the code expects.

The code's expectations come from a manifest (deploy/terraform/orderly.manifest.json,
generated from the Rust code): the Lambda functions (zip, environment variables, the AWS
actions their adapters call), the DynamoDB tables (names, keys, indexes, streams, TTL),
the queues (names, dead-letter queue, redrive), the generated state machine definition
and the generated request schema. Terraform itself cannot run here (no provider
downloads), so this parses every .tf file with python-hcl2 and compares.

    check_terraform.py [--terraform-dir DIR] [--manifest FILE] [--require-zips DIR] [-v]
    check_terraform.py --self-test

Prints one line per failed check, then "N passed, M failed"; exits 1 on any failure.
--self-test mutates copies of the stack (drops an environment variable, adds an action,
...) and asserts that each mutation is caught, so the checker cannot silently pass.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

try:
    import hcl2
    from hcl2.utils import SerializationOptions
except ImportError:  # pragma: no cover - environment problem, not a check failure
    sys.exit(
        "check_terraform.py needs python-hcl2 8.x: run it with the tools venv "
        "(bash scripts/tools.sh stack; ~/.cache/orderly/venv-stack/bin/python "
        "deploy/checks/check_terraform.py)"
    )

REPO = Path(__file__).resolve().parents[2]
DEFAULT_TF_DIR = REPO / "deploy" / "terraform"
LAMBDA_MODULE_SOURCE = "./modules/lambda_function"
LAMBDA_MODULE_DIR = "modules/lambda_function"

# Actions every function may hold besides its manifest actions: writing its own logs,
# tracing, and using the stack's KMS key. Nothing else is allowed outside the manifest.
HOUSEKEEPING_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "kms:Decrypt",
    "kms:GenerateDataKey",
}

PACKAGE_RE = re.compile(r"^\$\{var\.lambda_dist_dir\}/(?P<binary>[^/]+)/bootstrap\.zip$")
TEMPLATEFILE_RE = re.compile(
    r'templatefile\(\s*"\$\{path\.module\}/(?P<file>[^"]+)"\s*,\s*\{(?P<vars>.*)\}\s*\)', re.S
)
FILE_RE = re.compile(r'^\$\{file\(\s*"\$\{path\.module\}/(?P<file>[^"]+)"\s*\)\}$')
MODULE_ARN_RE = re.compile(r"^\$\{module\.(?P<module>\w+)\.arn\}$")


# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


@dataclass
class Module:
    """The blocks of one Terraform module (one directory)."""

    resources: dict[tuple[str, str], dict] = field(default_factory=dict)
    data: dict[tuple[str, str], dict] = field(default_factory=dict)
    modules: dict[str, dict] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)


def _options() -> SerializationOptions:
    return SerializationOptions(
        with_comments=False,
        explicit_blocks=False,
        strip_string_quotes=True,
        preserve_heredocs=False,
    )


def parse_module(directory: Path, errors: list[str]) -> Module:
    m = Module()
    for path in sorted(directory.glob("*.tf")):
        try:
            with path.open(encoding="utf-8") as f:
                doc = hcl2.load(f, serialization_options=_options())
        except Exception as e:  # noqa: BLE001 - any parse error is a failed check
            errors.append(f"{path}: {type(e).__name__}: {e}")
            continue
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    m.resources[(rtype, name)] = body
        for block in doc.get("data", []):
            for dtype, named in block.items():
                for name, body in named.items():
                    m.data[(dtype, name)] = body
        for block in doc.get("module", []):
            m.modules.update(block)
        for block in doc.get("locals", []):
            m.locals.update(block)
        for block in doc.get("variable", []):
            m.variables.update(block)
        for block in doc.get("output", []):
            m.outputs.update(block)
    return m


def blocks(body: dict, name: str) -> list[dict]:
    """Nested blocks of a type (python-hcl2 gives a list, or one dict)."""
    v = body.get(name, [])
    if isinstance(v, dict):
        return [v]
    return list(v)


def expr(value: Any) -> str | None:
    """The inner expression of "${...}", or None for a literal."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1].strip()
    return None


def norm(s: str) -> str:
    return re.sub(r"\s+", "", s)


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    ok: bool
    detail: str = ""


class Checker:
    def __init__(self, tf_dir: Path, manifest: dict, require_zips: Path | None):
        self.tf_dir = tf_dir
        self.manifest = manifest
        self.require_zips = require_zips
        self.results: list[Result] = []

    def check(self, name: str, problems: list[str]) -> None:
        self.results.append(Result(name, not problems, "; ".join(problems)))

    # -- helpers ------------------------------------------------------------------------

    def resolve_list(self, value: Any) -> tuple[list[str], list[str]]:
        """A list of literal strings, directly or through one `local.NAME`."""
        problems: list[str] = []
        e = expr(value)
        if e is not None:
            m = re.fullmatch(r"local\.(\w+)", e)
            if not m or m.group(1) not in self.root.locals:
                return [], [f"cannot resolve {value!r} to a literal list"]
            value = self.root.locals[m.group(1)]
        if not isinstance(value, list):
            return [], [f"{value!r} is not a list"]
        out = []
        for item in value:
            if not isinstance(item, str) or expr(item) is not None:
                problems.append(f"{item!r} is not a literal string")
            else:
                out.append(item)
        return out, problems

    def prefixed(self, suffix: str) -> str:
        return "${var.prefix}" + suffix

    def find_by_name(self, rtype: str, name: str) -> list[tuple[str, dict]]:
        return [
            (label, body)
            for (t, label), body in self.root.resources.items()
            if t == rtype and body.get("name") == name
        ]

    # -- the run ------------------------------------------------------------------------

    def run(self) -> list[Result]:
        parse_errors: list[str] = []
        tf_files = [
            p for p in self.tf_dir.rglob("*.tf") if ".terraform" not in p.relative_to(self.tf_dir).parts
        ]
        self.check("terraform files found", [] if tf_files else [f"no .tf file under {self.tf_dir}"])
        self.root = parse_module(self.tf_dir, parse_errors)
        self.lambda_module = parse_module(self.tf_dir / LAMBDA_MODULE_DIR, parse_errors)
        other_dirs = {p.parent for p in tf_files} - {self.tf_dir, self.tf_dir / LAMBDA_MODULE_DIR}
        for d in sorted(other_dirs):
            parse_module(d, parse_errors)
        self.check("every .tf file parses", parse_errors)
        if parse_errors:
            return self.results

        self.function_addresses: dict[str, str] = {}
        for group in (
            self.check_variables,
            self.check_lambda_module,
            self.check_functions,
            self.check_iam_wiring,
            self.check_tables,
            self.check_queues,
            self.check_state_machine,
            self.check_request_schema,
        ):
            try:
                group()
            except Exception as e:  # noqa: BLE001 - a malformed stack or manifest fails, loudly
                self.check(f"{group.__name__} ran", [f"{type(e).__name__}: {e}"])
        return self.results

    def check_variables(self) -> None:
        problems = []
        for where, mod in (("root", self.root), (LAMBDA_MODULE_DIR, self.lambda_module)):
            for name, body in mod.variables.items():
                if not str(body.get("description", "")).strip():
                    problems.append(f"{where}: variable {name} has no description")
                if "type" not in body:
                    problems.append(f"{where}: variable {name} has no type")
        self.check("variables have a description and a type", problems)

    def check_lambda_module(self) -> None:
        problems = []
        fns = [b for (t, _), b in self.lambda_module.resources.items() if t == "aws_lambda_function"]
        if len(fns) != 1:
            problems.append(f"{LAMBDA_MODULE_DIR} must hold exactly one aws_lambda_function, found {len(fns)}")
        for fn in fns:
            if fn.get("filename") != "${var.package}":
                problems.append(f"filename is {fn.get('filename')!r}, not var.package")
            if norm(str(fn.get("source_code_hash", ""))) != norm("${filebase64sha256(var.package)}"):
                problems.append("source_code_hash is not filebase64sha256(var.package)")
            if fn.get("runtime") != "provided.al2023":
                problems.append(f"runtime is {fn.get('runtime')!r}, not provided.al2023")
            if fn.get("handler") != "bootstrap":
                problems.append(f"handler is {fn.get('handler')!r}, not bootstrap")
            env = blocks(fn, "environment")
            if not env or env[0].get("variables") != "${var.environment}":
                problems.append("environment.variables is not var.environment")
            tracing = blocks(fn, "tracing_config")
            if not tracing or tracing[0].get("mode") != "Active":
                problems.append("tracing_config.mode is not Active")
        self.check("lambda_function module passes package, environment and tracing through", problems)

    def lambda_instances(self) -> dict[str, tuple[str, dict]]:
        """binary -> (module or resource address, body with package/environment)."""
        found: dict[str, list[tuple[str, dict]]] = {}
        self.unmatched_functions: list[str] = []
        for name, body in self.root.modules.items():
            if body.get("source") != LAMBDA_MODULE_SOURCE:
                continue
            m = PACKAGE_RE.match(str(body.get("package", "")))
            if not m:
                self.unmatched_functions.append(
                    f"module.{name}: package {body.get('package')!r} is not "
                    "${var.lambda_dist_dir}/<binary>/bootstrap.zip"
                )
                continue
            found.setdefault(m.group("binary"), []).append(
                (f"module.{name}", {"env": body.get("environment"), "role": body.get("role_arn")})
            )
        for (rtype, label), body in self.root.resources.items():
            if rtype != "aws_lambda_function":
                continue
            m = PACKAGE_RE.match(str(body.get("filename", "")))
            env = blocks(body, "environment")
            entry = {"env": env[0].get("variables") if env else {}, "role": body.get("role")}
            if not m:
                self.unmatched_functions.append(
                    f"aws_lambda_function.{label}: filename {body.get('filename')!r} is not "
                    "${var.lambda_dist_dir}/<binary>/bootstrap.zip"
                )
                continue
            found.setdefault(m.group("binary"), []).append((f"aws_lambda_function.{label}", entry))
        self.duplicate_binaries = {b: v for b, v in found.items() if len(v) > 1}
        return {b: v[0] for b, v in found.items()}

    def check_functions(self) -> None:
        functions = self.manifest.get("functions", {})
        instances = self.lambda_instances()
        permissions = self.root.locals.get("function_permissions")
        self.check(
            "iam.tf has locals.function_permissions (function -> statements)",
            [] if isinstance(permissions, dict) else ["locals.function_permissions is missing or not a map"],
        )
        permissions = permissions if isinstance(permissions, dict) else {}

        known_binaries = {spec.get("binary") for spec in functions.values()}
        extra = [f"{addr} (binary {b})" for b, (addr, _) in instances.items() if b not in known_binaries]
        extra += self.unmatched_functions
        extra += [f"{b} is deployed by {len(v)} functions" for b, v in self.duplicate_binaries.items()]
        self.check("every Lambda function is in the manifest (and only once)", extra)
        self.check(
            "function_permissions has no function the manifest lacks",
            [f"function_permissions[{k!r}]" for k in permissions if k not in functions],
        )

        for fn, spec in functions.items():
            binary = spec.get("binary", "")
            inst = instances.get(binary)
            if inst is None:
                self.check(
                    f"function {fn}: zip",
                    [f"no function deploys ${{var.lambda_dist_dir}}/{binary}/bootstrap.zip"],
                )
                continue
            address, body = inst
            self.function_addresses[fn] = address
            zip_problems = []
            if self.require_zips is not None:
                z = self.require_zips / binary / "bootstrap.zip"
                if not z.is_file():
                    zip_problems.append(f"{z} does not exist (build with scripts/lambda-build.sh)")
            self.check(f"function {fn}: zip {binary}/bootstrap.zip ({address})", zip_problems)

            env = body.get("env")
            if not isinstance(env, dict):
                self.check(f"function {fn}: environment", [f"{address}: environment is not a literal map: {env!r}"])
            else:
                missing = [v for v in spec.get("env_required", []) if v not in env]
                empty = [k for k, v in env.items() if v in ("", None)]
                self.check(
                    f"function {fn}: environment",
                    [f"{address} does not set {', '.join(missing)}"] * bool(missing)
                    + [f"{address} sets {', '.join(empty)} empty"] * bool(empty),
                )

            role = str(body.get("role") or "")
            want_role = f'aws_iam_role.function["{fn}"]'
            self.check(
                f"function {fn}: uses its own role",
                [] if norm(want_role) in norm(role) else [f"{address} role is {role!r}, not {want_role}.arn"],
            )

            statements = permissions.get(fn)
            if not isinstance(statements, list):
                self.check(f"function {fn}: actions", [f"function_permissions has no statement list for {fn!r}"])
                continue
            granted: set[str] = set()
            problems = []
            for i, st in enumerate(statements):
                if not isinstance(st, dict) or "actions" not in st or "resources" not in st:
                    problems.append(f"statement {i} needs actions and resources")
                    continue
                acts, p = self.resolve_list(st["actions"])
                granted.update(acts)
                problems += [f"statement {i}: {x}" for x in p]
            wanted = set(spec.get("actions", []))
            missing = sorted(wanted - granted)
            extra = sorted(granted - wanted)
            if missing:
                problems.append(f"missing {', '.join(missing)}")
            if extra:
                problems.append(f"extra {', '.join(extra)} (not called by the code)")
            self.check(f"function {fn}: actions equal the manifest", problems)

    def check_iam_wiring(self) -> None:
        problems = []
        doc = self.root.data.get(("aws_iam_policy_document", "function"))
        if doc is None:
            problems.append('data "aws_iam_policy_document" "function" is missing')
        else:
            if doc.get("for_each") != "${local.function_permissions}":
                problems.append("the policy document is not for_each = local.function_permissions")
            dynamics = [block["statement"] for block in blocks(doc, "dynamic") if "statement" in block]
            sources = sorted(norm(str(d.get("for_each"))) for d in dynamics)
            want_sources = sorted(
                norm(x) for x in ("${each.value}", "${lookup(local.function_delivery_permissions, each.key, [])}")
            )
            if sources != want_sources:
                problems.append(
                    "the policy document's dynamic statements must come from each.value and "
                    f"lookup(local.function_delivery_permissions, each.key, []), found {sources}"
                )
            for d in dynamics:
                content = blocks(d, "content")
                if not content or content[0].get("actions") != "${statement.value.actions}":
                    problems.append("a dynamic statement's actions are not statement.value.actions")
            for st in blocks(doc, "statement"):
                acts, p = self.resolve_list(st.get("actions", []))
                problems += p
                bad = sorted(set(acts) - HOUSEKEEPING_ACTIONS)
                if bad:
                    problems.append(f"statement {st.get('sid')!r} grants {', '.join(bad)} to every function")
        pol = self.root.resources.get(("aws_iam_role_policy", "function"))
        if pol is None:
            problems.append('resource "aws_iam_role_policy" "function" is missing')
        elif norm(str(pol.get("policy"))) != norm("${data.aws_iam_policy_document.function[each.key].json}"):
            problems.append("aws_iam_role_policy.function does not use data.aws_iam_policy_document.function[each.key]")
        self.check("every function's policy is its function_permissions plus housekeeping only", problems)
        self.check_delivery_permissions()

    def failure_queues(self, fn: str) -> set[str]:
        """Labels of the SQS queues Lambda sends a function's failures to: its dead-letter
        queue and the on-failure destinations of its event source mappings."""
        address = self.function_addresses.get(fn, "")
        queues: set[str] = set()
        ref = re.compile(r"^\$\{aws_sqs_queue\.(\w+)\.arn\}$")
        arn_refs = {f"${{{address}.arn}}", f"${{{address}.function_name}}"}
        if address.startswith("module."):
            body = self.root.modules.get(address.split(".", 1)[1], {})
            m = ref.match(str(body.get("dead_letter_queue_arn", "")))
            if m:
                queues.add(m.group(1))
        else:
            for dlc in blocks(self.root.resources.get(tuple(address.split(".", 1)), {}), "dead_letter_config"):
                m = ref.match(str(dlc.get("target_arn", "")))
                if m:
                    queues.add(m.group(1))
        for (t, _), esm in self.root.resources.items():
            if t != "aws_lambda_event_source_mapping" or esm.get("function_name") not in arn_refs:
                continue
            for dc in blocks(esm, "destination_config"):
                for of in blocks(dc, "on_failure"):
                    m = ref.match(str(of.get("destination_arn", "")))
                    if m:
                        queues.add(m.group(1))
        return queues

    def check_delivery_permissions(self) -> None:
        delivery = self.root.locals.get("function_delivery_permissions", {})
        problems = []
        if not isinstance(delivery, dict):
            problems.append("locals.function_delivery_permissions is not a map")
            delivery = {}
        for fn, statements in delivery.items():
            if fn not in self.manifest.get("functions", {}):
                problems.append(f"{fn!r} is not a function of the manifest")
                continue
            allowed = self.failure_queues(fn)
            for i, st in enumerate(statements if isinstance(statements, list) else []):
                acts, p = self.resolve_list(st.get("actions", []))
                problems += [f"{fn} statement {i}: {x}" for x in p]
                if set(acts) - {"sqs:SendMessage"}:
                    problems.append(f"{fn} statement {i} grants {sorted(set(acts) - {'sqs:SendMessage'})}")
                resources = st.get("resources", [])
                for r in resources if isinstance(resources, list) else [resources]:
                    m = re.fullmatch(r"\$\{aws_sqs_queue\.(\w+)\.arn\}", str(r))
                    if not m or m.group(1) not in allowed:
                        problems.append(
                            f"{fn} statement {i} sends to {r!r}, which is not one of its failure queues "
                            f"({', '.join(sorted(allowed)) or 'none'})"
                        )
        self.check("delivery grants only send to each function's own failure queues", problems)

    def check_tables(self) -> None:
        tables = self.manifest.get("tables", {})
        wanted_names = {self.prefixed(t["name"]) for t in tables.values()}
        extra = [
            f"aws_dynamodb_table.{label} ({b.get('name')})"
            for (t, label), b in self.root.resources.items()
            if t == "aws_dynamodb_table" and b.get("name") not in wanted_names
        ]
        self.check("every DynamoDB table is in the manifest", extra)
        for key, spec in tables.items():
            name = self.prefixed(spec["name"])
            found = self.find_by_name("aws_dynamodb_table", name)
            if len(found) != 1:
                self.check(f"table {key}", [f"{len(found)} aws_dynamodb_table named {name!r}"])
                continue
            label, t = found[0]
            p: list[str] = []
            if t.get("hash_key") != spec["hash_key"]:
                p.append(f"hash_key {t.get('hash_key')!r} != {spec['hash_key']!r}")
            if t.get("range_key") != spec.get("range_key"):
                p.append(f"range_key {t.get('range_key')!r} != {spec.get('range_key')!r}")
            gsis = {g.get("name"): g for g in blocks(t, "global_secondary_index")}
            want_idx = spec.get("indexes") or {}
            if set(gsis) != set(want_idx):
                p.append(f"indexes {sorted(gsis)} != {sorted(want_idx)}")
            used = {spec["hash_key"]} | ({spec["range_key"]} if spec.get("range_key") else set())
            for iname, keys in want_idx.items():
                used.update(keys)
                g = gsis.get(iname)
                if g is None:
                    continue
                have = [g.get("hash_key")] + ([g["range_key"]] if g.get("range_key") else [])
                if have != list(keys):
                    p.append(f"index {iname} keys {have} != {list(keys)}")
                if g.get("projection_type") != "ALL":
                    p.append(f"index {iname} projection {g.get('projection_type')!r} != 'ALL'")
            declared = {a.get("name"): a.get("type") for a in blocks(t, "attribute")}
            if set(declared) != used:
                p.append(f"attribute definitions {sorted(declared)} != key attributes {sorted(used)}")
            if spec.get("stream"):
                if t.get("stream_enabled") is not True or t.get("stream_view_type") != spec["stream"]:
                    p.append(
                        f"stream {t.get('stream_view_type')!r} (enabled {t.get('stream_enabled')!r}) "
                        f"!= {spec['stream']!r}"
                    )
            elif t.get("stream_enabled") is True:
                p.append("has a stream the code does not read")
            ttl = [x for x in blocks(t, "ttl") if x.get("enabled") is True]
            if spec.get("ttl"):
                if not ttl or ttl[0].get("attribute_name") != spec["ttl"]:
                    p.append(f"ttl attribute {ttl[0].get('attribute_name') if ttl else None!r} != {spec['ttl']!r}")
            elif ttl:
                p.append(f"has a TTL ({ttl[0].get('attribute_name')!r}) the code does not write")
            if t.get("billing_mode") != "PAY_PER_REQUEST":
                p.append("not on-demand (billing_mode PAY_PER_REQUEST)")
            if not any(x.get("enabled") is True for x in blocks(t, "point_in_time_recovery")):
                p.append("point-in-time recovery is off")
            if not any(x.get("enabled") is True for x in blocks(t, "server_side_encryption")):
                p.append("no server-side encryption with the stack key")
            self.check(f"table {key} ({name}, aws_dynamodb_table.{label})", p)

    def check_queues(self) -> None:
        for key, spec in self.manifest.get("queues", {}).items():
            name = self.prefixed(spec["name"])
            found = self.find_by_name("aws_sqs_queue", name)
            if len(found) != 1:
                self.check(f"queue {key}", [f"{len(found)} aws_sqs_queue named {name!r}"])
                continue
            label, q = found[0]
            p: list[str] = []
            redrive = expr(q.get("redrive_policy")) or ""
            dlq_label = re.search(r"deadLetterTargetArn\s*=\s*aws_sqs_queue\.(\w+)\.arn", redrive)
            receives = re.search(r"maxReceiveCount\s*=\s*(\d+)", redrive)
            if not dlq_label:
                p.append(f"redrive_policy names no aws_sqs_queue as deadLetterTargetArn: {q.get('redrive_policy')!r}")
            else:
                dlq = self.root.resources.get(("aws_sqs_queue", dlq_label.group(1)))
                want_dlq = self.prefixed(spec["dlq"])
                if dlq is None:
                    p.append(f"aws_sqs_queue.{dlq_label.group(1)} does not exist")
                else:
                    if dlq.get("name") != want_dlq:
                        p.append(f"dead-letter queue is named {dlq.get('name')!r}, not {want_dlq!r}")
                    if dlq.get("message_retention_seconds") != spec["dlq_retention_seconds"]:
                        p.append(
                            f"dead-letter retention {dlq.get('message_retention_seconds')!r} != "
                            f"{spec['dlq_retention_seconds']}"
                        )
            if not receives or int(receives.group(1)) != spec["max_receive_count"]:
                p.append(
                    f"maxReceiveCount {receives.group(1) if receives else None} != {spec['max_receive_count']}"
                )
            if q.get("receive_wait_time_seconds") != 10:
                p.append(f"receive_wait_time_seconds {q.get('receive_wait_time_seconds')!r} != 10 (long polling)")
            p += self.check_consumer(label, q)
            self.check(f"queue {key} ({name}, aws_sqs_queue.{label})", p)

    def check_consumer(self, label: str, q: dict) -> list[str]:
        """The queue's Lambda consumer: partial batch responses, visibility >= 6 x timeout."""
        p: list[str] = []
        esms = [
            b
            for (t, _), b in self.root.resources.items()
            if t == "aws_lambda_event_source_mapping" and b.get("event_source_arn") == f"${{aws_sqs_queue.{label}.arn}}"
        ]
        if not esms:
            return [f"no event source mapping consumes aws_sqs_queue.{label}"]
        for esm in esms:
            if "ReportBatchItemFailures" not in (esm.get("function_response_types") or []):
                p.append("its event source mapping does not use ReportBatchItemFailures")
            m = MODULE_ARN_RE.match(str(esm.get("function_name", "")))
            module = self.root.modules.get(m.group("module")) if m else None
            if module is None:
                p.append(f"cannot find the consumer function of {esm.get('function_name')!r}")
                continue
            timeout = module.get("timeout_seconds")
            vis = q.get("visibility_timeout_seconds")
            vis_e = expr(vis)
            if vis_e and re.fullmatch(r"local\.\w+", vis_e):
                vis = self.root.locals.get(vis_e.split(".", 1)[1], vis)
                vis_e = expr(vis) if isinstance(vis, str) else None
            t_e = expr(timeout)
            ok = False
            if isinstance(vis, int) and isinstance(timeout, int):
                ok = vis >= 6 * timeout
            elif vis_e and t_e:
                mm = re.fullmatch(r"(\d+)\s*\*\s*(.+)", vis_e)
                ok = bool(mm) and int(mm.group(1)) >= 6 and norm(mm.group(2)) == norm(t_e)
            if not ok:
                p.append(
                    f"visibility timeout {q.get('visibility_timeout_seconds')!r} is not >= 6 x the consumer's "
                    f"timeout ({timeout!r})"
                )
        return p

    def check_state_machine(self) -> None:
        spec = self.manifest.get("state_machine") or {}
        machines = [(l, b) for (t, l), b in self.root.resources.items() if t == "aws_sfn_state_machine"]
        if len(machines) != 1:
            self.check("state machine", [f"{len(machines)} aws_sfn_state_machine resources (want 1)"])
            return
        label, sm = machines[0]
        p: list[str] = []
        definition = str(sm.get("definition", ""))
        m = TEMPLATEFILE_RE.search(definition)
        placeholder = spec.get("placeholder", "")
        if not m:
            p.append(f"definition is not templatefile(\"${{path.module}}/...\", {{...}}): {definition!r}")
        else:
            if m.group("file") != spec.get("definition"):
                p.append(f"definition reads {m.group('file')!r}, not {spec.get('definition')!r}")
            tvars = dict(
                (k.strip(), v.strip())
                for k, v in (
                    part.split("=", 1) for part in re.split(r",|\n", m.group("vars")) if "=" in part
                )
            )
            if placeholder not in tvars:
                p.append(f"templatefile does not pass {placeholder!r} (passes {sorted(tvars)})")
            else:
                ref = re.fullmatch(r"module\.(\w+)\.arn", tvars[placeholder])
                saga_fn = self.function_addresses.get("saga-step")
                if not ref or self.root.modules.get(ref.group(1), {}).get("source") != LAMBDA_MODULE_SOURCE:
                    p.append(f"{placeholder} = {tvars[placeholder]} is not a Lambda function module's arn")
                elif saga_fn and saga_fn != f"module.{ref.group(1)}":
                    p.append(f"{placeholder} is {ref.group(1)}, but the saga-step function is {saga_fn}")
        if sm.get("type") != "STANDARD":
            p.append(f"type {sm.get('type')!r}: must be STANDARD (Express does not dedupe execution names)")
        p += self.check_definition_file(spec.get("definition", ""), placeholder)
        self.check(f"state machine (aws_sfn_state_machine.{label}) renders {spec.get('definition')}", p)

    def check_definition_file(self, name: str, placeholder: str) -> list[str]:
        path = self.tf_dir / name
        if not name or not path.is_file():
            return [f"definition file {path} does not exist"]
        text = path.read_text(encoding="utf-8")
        p: list[str] = []
        names = set(re.findall(r"\$\{([^}]*)\}", text))
        if placeholder not in names:
            p.append(f"{name} never uses ${{{placeholder}}}")
        unknown = sorted(n for n in names if n != placeholder)
        if unknown:
            p.append(f"{name} has template references templatefile cannot fill: {unknown}")
        if "%{" in text:
            p.append(f"{name} contains a template directive (%{{)")
        rendered = text.replace("${" + placeholder + "}", "arn:aws:lambda:eu-west-1:123456789012:function:x")
        try:
            asl = json.loads(rendered)
        except json.JSONDecodeError as e:
            return p + [f"{name} (rendered) is not JSON: {e}"]
        if not isinstance(asl, dict) or "StartAt" not in asl or not isinstance(asl.get("States"), dict):
            p.append(f"{name} has no StartAt/States")
        return p

    def check_request_schema(self) -> None:
        want = self.manifest.get("request_schema", "")
        p: list[str] = []
        models = {}
        for (t, label), b in self.root.resources.items():
            m = FILE_RE.match(str(b.get("schema", ""))) if t == "aws_api_gateway_model" else None
            if m and m.group("file") == want:
                models[label] = b
        if len(models) != 1:
            p.append(f"{len(models)} aws_api_gateway_model read file(\"${{path.module}}/{want}\") (want 1)")
        path = self.tf_dir / want
        if not path.is_file():
            p.append(f"{path} does not exist")
        else:
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
                if "draft-04" not in str(schema.get("$schema", "")):
                    p.append(f"{want}: API Gateway models need JSON Schema draft-04 ($schema {schema.get('$schema')!r})")
                if schema.get("type") != "object":
                    p.append(f"{want}: not an object schema")
            except json.JSONDecodeError as e:
                p.append(f"{want} is not JSON: {e}")
        for label in models:
            used = []
            for (t, ml), m in self.root.resources.items():
                if t != "aws_api_gateway_method":
                    continue
                refs = (m.get("request_models") or {}).values()
                if f"${{aws_api_gateway_model.{label}.name}}" not in refs:
                    continue
                used.append(ml)
                if m.get("http_method") != "POST":
                    p.append(f"aws_api_gateway_method.{ml} uses the model for {m.get('http_method')!r}, not POST")
                res = re.fullmatch(r"\$\{aws_api_gateway_resource\.(\w+)\.id\}", str(m.get("resource_id")))
                r = self.root.resources.get(("aws_api_gateway_resource", res.group(1))) if res else None
                if r is None or r.get("path_part") != "orders":
                    p.append(f"aws_api_gateway_method.{ml} is not on the /orders resource")
                val = re.fullmatch(r"\$\{aws_api_gateway_request_validator\.(\w+)\.id\}", str(m.get("request_validator_id")))
                v = self.root.resources.get(("aws_api_gateway_request_validator", val.group(1))) if val else None
                if v is None or v.get("validate_request_body") is not True:
                    p.append(f"aws_api_gateway_method.{ml} has no validator with validate_request_body = true")
            if not used:
                p.append(f"no method uses aws_api_gateway_model.{label} (POST /orders should)")
        self.check(f"request schema {want} validates POST /orders", p)


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------


def run_checks(tf_dir: Path, manifest_path: Path, require_zips: Path | None) -> list[Result]:
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        return [Result(f"manifest {manifest_path}", False, str(e))]
    return Checker(tf_dir, manifest, require_zips).run()


def report(results: list[Result], verbose: bool) -> int:
    failed = [r for r in results if not r.ok]
    for r in results:
        if not r.ok:
            print(f"FAIL {r.name}: {r.detail}")
        elif verbose:
            print(f"ok   {r.name}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


@dataclass
class Mutation:
    description: str
    file: str | None  # relative to the copied terraform dir; None: no edit
    pattern: str
    replacement: str
    expect: str  # a failing check's name must contain this
    require_zips: bool = False
    detail: str = ""  # ... and its detail this


MUTATIONS = [
    Mutation("break the HCL syntax", "sns.tf", r"\}\s*\Z", "", "every .tf file parses"),
    Mutation("drop ORDERLY_EVENT_BUS from relay", "lambda.tf",
             r"\n\s*ORDERLY_EVENT_BUS\s*=[^\n]*", "", "function relay: environment",
             detail="ORDERLY_EVENT_BUS"),
    Mutation("drop ORDERLY_STATE_MACHINE_ARN from intake", "lambda.tf",
             r"\n\s*ORDERLY_STATE_MACHINE_ARN\s*=[^\n]*", "", "function intake: environment",
             detail="ORDERLY_STATE_MACHINE_ARN"),
    Mutation("grant relay an extra action", "iam.tf",
             r'actions\s*=\s*\["events:PutEvents"\]', 'actions = ["events:PutEvents", "events:PutRule"]',
             "function relay: actions", detail="extra events:PutRule"),
    Mutation("drop dynamodb:Scan from the shared table actions", "iam.tf",
             r'\n\s*"dynamodb:Scan",', "", "function api: actions",
             detail="missing dynamodb:Scan"),
    Mutation("grant every function an extra housekeeping action", "iam.tf",
             r'actions\s*=\s*\["logs:CreateLogStream", "logs:PutLogEvents"\]',
             'actions = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DeleteLogGroup"]',
             "housekeeping only", detail="logs:DeleteLogGroup"),
    Mutation("let Lambda send relay failures to the orders queue", "iam.tf",
             r"resources = \[aws_sqs_queue\.relay_failures\.arn\]", "resources = [aws_sqs_queue.orders.arn]",
             "delivery grants", detail="aws_sqs_queue.orders.arn"),
    Mutation("point the intake at another function's zip", "lambda.tf",
             r"orderly-intake/bootstrap\.zip", "orderly-intke/bootstrap.zip", "function intake: zip"),
    Mutation("rename the byUser index", "dynamodb.tf",
             r'name\s*=\s*"byUser"', 'name = "byUserId"', "table orders"),
    Mutation("drop the idempotency TTL", "dynamodb.tf",
             r'attribute_name = "ttl"', 'attribute_name = "expiresAt"', "table idempotency"),
    Mutation("change the events stream view", "dynamodb.tf",
             r'stream_view_type\s*=\s*"NEW_IMAGE"', 'stream_view_type = "KEYS_ONLY"', "table events"),
    Mutation("redrive after 5 receives", "sqs.tf",
             r"maxReceiveCount\s*=\s*3", "maxReceiveCount = 5", "queue orders",
             detail="maxReceiveCount 5 != 3"),
    Mutation("visibility only 2 x the intake timeout", "main.tf",
             r"orders_visibility_timeout_seconds = 6 \*", "orders_visibility_timeout_seconds = 2 *", "queue orders",
             detail="visibility timeout"),
    Mutation("state machine passes another placeholder", "stepfunctions.tf",
             r"\{\s*saga_step_function_arn\s*=", "{ saga_step_arn =", "state machine"),
    Mutation("state machine becomes EXPRESS", "stepfunctions.tf",
             r'type\s*=\s*"STANDARD"', 'type = "EXPRESS"', "state machine"),
    Mutation("the model reads another schema file", "apigateway.tf",
             r"create_order\.schema\.json\"\)\n", "order.schema.json\")\n", "request schema"),
    Mutation("manifest wants an action the stack lacks", "orderly.manifest.json",
             r'"sns:Publish"', '"sns:Publish", "sns:ListTopics"', "function events: actions",
             detail="missing sns:ListTopics"),
    Mutation("zips required but not built", None, "", "", "function api: zip", require_zips=True),
]


def self_test(tf_dir: Path, manifest: Path) -> int:
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="orderly-tf-selftest-") as tmp:
        base = Path(tmp) / "base"
        shutil.copytree(tf_dir, base, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
        shutil.copyfile(manifest, base / "orderly.manifest.json")
        empty_dist = Path(tmp) / "no-zips"
        empty_dist.mkdir()
        baseline = [r for r in run_checks(base, base / "orderly.manifest.json", None) if not r.ok]
        if baseline:
            for r in baseline:
                print(f"FAIL self-test baseline (the unmutated stack must pass): {r.name}: {r.detail}")
            print("0 passed, 1 failed")
            return 1
        for i, mut in enumerate(MUTATIONS):
            work = Path(tmp) / f"m{i}"
            shutil.copytree(base, work)
            if mut.file is not None:
                target = work / mut.file
                text = target.read_text(encoding="utf-8")
                new, n = re.subn(mut.pattern, mut.replacement, text, count=1)
                if n == 0 or new == text:
                    print(f"FAIL self-test {mut.description}: the mutation did not apply ({mut.file}: {mut.pattern!r})")
                    failed += 1
                    continue
                target.write_text(new, encoding="utf-8")
            results = run_checks(work, work / "orderly.manifest.json", empty_dist if mut.require_zips else None)
            caught = [r for r in results if not r.ok and mut.expect in r.name and mut.detail in r.detail]
            if caught:
                passed += 1
                print(f"ok   self-test {mut.description}: caught by \"{caught[0].name}\"")
            else:
                failed += 1
                others = [r.name for r in results if not r.ok]
                print(
                    f"FAIL self-test {mut.description}: no failing check named *{mut.expect}* "
                    f"saying *{mut.detail}* (failed: {others})"
                )
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--terraform-dir", type=Path, default=DEFAULT_TF_DIR)
    ap.add_argument("--manifest", type=Path, default=None,
                    help="manifest JSON (default: <terraform-dir>/orderly.manifest.json)")
    ap.add_argument("--require-zips", type=Path, metavar="DIR", default=None,
                    help="also require <DIR>/<binary>/bootstrap.zip for every function (e.g. target/lambda)")
    ap.add_argument("--self-test", action="store_true", help="assert that mutated copies of the stack fail")
    ap.add_argument("-v", "--verbose", action="store_true", help="print passing checks too")
    args = ap.parse_args(argv)
    tf_dir = args.terraform_dir.resolve()
    manifest = args.manifest or tf_dir / "orderly.manifest.json"
    if args.self_test:
        return self_test(tf_dir, manifest)
    return report(run_checks(tf_dir, manifest, args.require_zips), args.verbose)


if __name__ == "__main__":
    sys.exit(main())
