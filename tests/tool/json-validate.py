#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Validate dmrepl --json output against the schemas in doc/schema.

    json-validate.py [--exit-status N] SCHEMA_DIR COMMAND FILE...

Each FILE is the standard output of one `dmrepl COMMAND --json` run, as
JSON Lines: every line must parse as one JSON object and validate against
SCHEMA_DIR/COMMAND.schema.json; progress lines come only before the
result; there is exactly one result line, and it is the last. FILE "-"
reads standard input. With --exit-status N, the run exited N: the
result's "ok" must be true exactly when N is 0, and its "exit_status",
when it has one, must be N.

Exit status: 0 when every file is valid, 1 when one is not (each problem
is printed as FILE:LINE: ...), 2 for a bad command line or an unusable
schema. Needs python3 and python3-jsonschema (4.10 or later) only.
"""

import glob
import json
import os
import sys

try:
    import jsonschema
except ImportError:
    print("json-validate.py: python3-jsonschema is not installed", file=sys.stderr)
    sys.exit(2)

try:
    from referencing.exceptions import Unresolvable as RefError
except ImportError:
    RefError = jsonschema.exceptions.RefResolutionError


def load_schemas(schema_dir):
    """Every *.schema.json of schema_dir, by its $id."""
    store = {}
    for path in sorted(glob.glob(os.path.join(schema_dir, "*.schema.json"))):
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
        store[schema["$id"]] = schema
    return store


def make_validator(store, schema):
    """A validator for schema that resolves $ref into store, offline."""
    cls = jsonschema.validators.validator_for(schema)
    for s in store.values():
        jsonschema.validators.validator_for(s).check_schema(s)
    try:
        # jsonschema 4.18 and later resolve references with referencing.
        from referencing import Registry, Resource
    except ImportError:
        resolver = jsonschema.RefResolver.from_schema(schema, store=store)
        return cls(schema, resolver=resolver)
    registry = Registry().with_resources(
        (uri, Resource.from_contents(s)) for uri, s in store.items())
    return cls(schema, registry=registry)


def describe(error):
    """The error, with where in the object it is and the rule it broke;
    for a oneOf or anyOf, why each alternative failed."""
    where = "/".join(str(p) for p in error.absolute_path)
    rule = "/".join(str(p) for p in error.absolute_schema_path)
    text = "%s%s (schema: %s)" % ("at " + where + ": " if where else "",
                                  error.message, rule)
    if error.context and error.validator in ("oneOf", "anyOf"):
        if len(text) > 300:
            text = "%s%s (schema: %s)" % ("at " + where + ": " if where else "",
                                          "no alternative of " + error.validator
                                          + " matches", rule)
        first = {}
        for sub in error.context:
            first.setdefault(sub.schema_path[0], sub)
        for alt, sub in sorted(first.items()):
            text += "\n    alternative %s: %s" % (alt, describe(sub).replace(
                "\n", "\n    "))
    return text


def check_exit_status(obj, status):
    """What contradicts exit status status in result obj, or None."""
    if obj.get("ok") is not (status == 0):
        return "\"ok\":%s, but the run exited %d" % (json.dumps(obj.get("ok")), status)
    if "exit_status" in obj and obj["exit_status"] != status:
        return "\"exit_status\":%s, but the run exited %d" % (
            json.dumps(obj["exit_status"]), status)
    return None


def check_file(validator, path, status=None):
    """The problems of one file, as "LINE: text" strings."""
    problems = []
    if path == "-":
        text = sys.stdin.read()
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            return ["0: cannot read: %s" % e]
    if not text:
        return ["0: no output at all: expected one result line"]
    if not text.endswith("\n"):
        problems.append("%d: the last line has no newline" % (text.count("\n") + 1))
    results = []
    for n, line in enumerate(text.split("\n")[:-1] if text.endswith("\n")
                             else text.split("\n"), start=1):
        try:
            obj = json.loads(line)
        except ValueError as e:
            problems.append("%d: not JSON (%s): %.200s" % (n, e, line))
            continue
        if not isinstance(obj, dict):
            problems.append("%d: not a JSON object: %.200s" % (n, line))
            continue
        errors = sorted(validator.iter_errors(obj), key=lambda e: e.path)
        if errors:
            problems.append("%d: %s" % (n, describe(errors[0])))
        kind = obj.get("type")
        if kind == "result":
            results.append(n)
            why = None if status is None else check_exit_status(obj, status)
            if why:
                problems.append("%d: %s" % (n, why))
        elif kind == "progress" and results:
            problems.append("%d: a progress line after the result (line %d)"
                            % (n, results[0]))
    last = text.rstrip("\n").count("\n") + 1
    if not results:
        problems.append("%d: no result line" % last)
    elif len(results) > 1:
        problems.append("%d: %d result lines (lines %s): expected one"
                        % (results[1], len(results),
                           ", ".join(str(r) for r in results)))
    elif results[0] != last:
        problems.append("%d: the result is not the last line" % results[0])
    return problems


def main(argv):
    status = None
    if len(argv) > 2 and argv[1] == "--exit-status":
        try:
            status = int(argv[2])
        except ValueError:
            status = -1
        if not 0 <= status <= 255:
            print("json-validate.py: --exit-status %s: not 0 to 255" % argv[2],
                  file=sys.stderr)
            return 2
        argv = argv[:1] + argv[3:]
    if len(argv) < 4:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    schema_dir, command, files = argv[1], argv[2], argv[3:]
    try:
        store = load_schemas(schema_dir)
    except (OSError, ValueError, KeyError) as e:
        print("json-validate.py: %s: cannot load the schemas: %s" % (schema_dir, e),
              file=sys.stderr)
        return 2
    schema = None
    for s in store.values():
        if s["$id"].rsplit("/", 1)[-1] == command + ".schema.json":
            schema = s
    if schema is None:
        print("json-validate.py: no schema %s.schema.json in %s" % (command, schema_dir),
              file=sys.stderr)
        return 2
    try:
        validator = make_validator(store, schema)
    except jsonschema.exceptions.SchemaError as e:
        print("json-validate.py: %s: a schema is not valid: %s"
              % (schema_dir, e.message), file=sys.stderr)
        return 2
    bad = 0
    for path in files:
        try:
            problems = check_file(validator, path, status)
        except RefError as e:
            print("json-validate.py: %s.schema.json: %s" % (command, e), file=sys.stderr)
            return 2
        for p in problems:
            print("%s:%s" % (path, p))
        bad += bool(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
