"""Generate src/hygie/store/definitions/r4-structure.json.gz, the FHIR R4 structure table.

Run by hand (``python tools/gen_r4_structure.py``), never at install time: the runtime
only reads the committed, gzip-compressed table and never needs the packages used here.

Why this way: the official R4 StructureDefinitions are not available offline, but the
PyPI package ``fhir.resources==6.4.0`` is generated from exactly FHIR 4.0.1 and keeps the
facts a validator needs in its pydantic v1 field metadata: the JSON name (``alias``),
list or single (``shape``), the type, ``element_required`` / required fields,
``one_of_many`` / ``one_of_many_required`` (choice groups), ``enum_values`` (codes of
required bindings) and ``enum_reference_types`` (allowed reference targets). The
``isSummary`` flags are missing there; ``fhir.resources==8.3.0`` has them for R4B
(``summary_element_property``). R4B is R4 plus a few changes, so a flag is taken from the
R4B class of the same name when it has that element; otherwise (resources and elements
R4B dropped or renamed) an element is taken as summary when it is mandatory (min 1) or is
``id``, ``meta``, ``implicitRules`` or ``modifierExtension`` -- the elements the R4 base
definitions mark isSummary everywhere (elementdefinition-definitions.html, isSummary).
``isModifier`` is in neither package, so the table does not carry it.

The two packages cannot share an interpreter (pydantic v1 vs v2), so each is installed
in a throw-away virtualenv under /tmp and this same file is run there with
``--introspect r4`` or ``--introspect r4b``; each prints JSON that the parent merges.

Table layout (all keys sorted, so the output is byte-for-byte reproducible)::

    {"fhirVersion": "4.0.1",
     "primitiveTypes": [...], "resourceTypes": [...concrete...], "abstractTypes": [...],
     "dataTypes": [...complex data types...],
     "types": {"Patient": {"kind": "resource", "base": "DomainResource",
                           "elements": {"name": {"type": ["HumanName"], "max": "*",
                                                 "summary": true}, ...},
                           "choices": {"deceased": {"names": {"deceasedBoolean": "boolean",
                                                              ...}}}},
               "Patient.contact": {"kind": "backbone", ...}, ...}}

Per element: ``type`` (list of one type code: a primitive, a complex data type, a
backbone path such as ``Patient.contact``, or ``Resource``), ``min`` (omitted when 0),
``max`` (``"1"`` omitted), ``codes`` (required binding), ``targets`` (Reference
targets), ``choice`` (group name for a concrete ``valueQuantity``-style name),
``summary`` (omitted when false), ``noExt`` (true for ``Element.id`` and
``Extension.url``, XML attributes that take no ``_name`` object). Inherited elements are
copied into every type, so a lookup never walks a base chain.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import typing
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "src" / "hygie" / "store" / "definitions" / "r4-structure.json.gz"
VENVS = {
    "r4": (Path("/tmp/hygie-gen-fhir-r4"), ["fhir.resources==6.4.0", "pydantic<2"]),
    "r4b": (Path("/tmp/hygie-gen-fhir-r4b"), ["fhir.resources==8.3.0"]),
}
#: Elements the R4 base definitions flag isSummary in every type that has them.
ALWAYS_SUMMARY = ("id", "meta", "implicitRules", "modifierExtension")
#: fhir.resources 6.4.0 derives ``enum_values`` from the element's short text, which ends
#: in "+" where the value set is hierarchical ("registered | preliminary | final | amended
#: +"), so those lists miss the child codes. Complete lists from the R4 code systems
#: (valueset-<name>.html); Expression.language is an extensible binding, so no list.
CODE_FIXES: dict[tuple[str, str], list[str] | None] = {
    **{
        (t, "status"): [
            "registered", "preliminary", "final", "amended", "corrected", "cancelled",
            "entered-in-error", "unknown",
        ]
        for t in ("Observation", "DetectedIssue", "RiskAssessment")
    },
    ("DeviceUdiCarrier", "entryType"): [
        "barcode", "rfid", "manual", "card", "self-reported", "unknown",
    ],
    ("DeviceUseStatement", "status"): [
        "active", "completed", "entered-in-error", "intended", "stopped", "on-hold",
    ],
    ("DiagnosticReport", "status"): [
        "registered", "partial", "preliminary", "final", "amended", "corrected", "appended",
        "cancelled", "entered-in-error", "unknown",
    ],
    **{
        (t, "status"): [
            "planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
            "entered-in-error", "unknown",
        ]
        for t in ("Encounter", "EncounterStatusHistory")
    },
    ("Expression", "language"): None,
    ("QuestionnaireItem", "type"): [
        "group", "display", "question", "boolean", "decimal", "integer", "date", "dateTime",
        "time", "string", "text", "url", "choice", "open-choice", "attachment", "reference",
        "quantity",
    ],
    ("StructureMapGroupRuleTarget", "transform"): [
        "create", "copy", "truncate", "escape", "cast", "append", "translate", "reference",
        "dateOp", "uuid", "pointer", "evaluate", "cc", "c", "qty", "id", "cp",
    ],
    ("SupplyRequest", "status"): [
        "draft", "active", "suspended", "cancelled", "completed", "entered-in-error", "unknown",
    ],
    ("Task", "status"): [
        "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
        "in-progress", "on-hold", "failed", "completed", "entered-in-error",
    ],
}
#: Abstract types of R4 (resource.html, element.html, backboneelement.html).
ABSTRACT = ("Resource", "DomainResource", "Element", "BackboneElement")


# --- introspection, run inside the throw-away virtualenvs ---------------------------


def _introspect_r4() -> dict[str, Any]:
    """Read every class of fhir.resources 6.4.0 (FHIR 4.0.1) into plain JSON facts."""
    from fhir.resources import fhirtypes
    from fhir.resources.backboneelement import BackboneElement
    from fhir.resources.element import Element
    from fhir.resources.fhirtypesvalidators import MODEL_CLASSES, get_fhir_model_class
    from fhir.resources.resource import Resource

    def type_code(tp: Any) -> str:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if args:  # Optional[X] (primitive lists may hold nulls beside `_name` extensions)
            (tp,) = args
        if tp is bool:
            return "boolean"
        visit = getattr(tp, "__visit_name__", None)
        if visit:
            return str(visit)
        rtype = getattr(tp, "__resource_type__", None)
        if rtype:
            return str(rtype)
        raise TypeError(f"unmapped field type {tp!r}")

    classes: dict[str, Any] = {}
    for name in MODEL_CLASSES:
        if name == "FHIRPrimitiveExtension":
            continue
        classes[name] = get_fhir_model_class(name)

    primitives = list(fhirtypes.FHIR_PRIMITIVES)  # type: ignore[attr-defined,unused-ignore]
    out: dict[str, Any] = {"classes": {}, "primitives": primitives}
    for name, cls in sorted(classes.items()):
        module = cls.__module__.rsplit(".", 1)[-1]
        if issubclass(cls, Resource):
            kind = "resource"
        elif name.lower() == module and issubclass(cls, Element):
            kind = "datatype"
        else:
            kind = "nested"
        if name in ("Resource", "DomainResource", "MetadataResource"):
            kind = "abstract-resource"
        if cls is Element or cls is BackboneElement:
            kind = "abstract-datatype"
        if kind == "resource" and name.lower() != module:
            kind = "nested"
        fields = []
        order = cls.elements_sequence()
        by_alias = {f.alias: f for f in cls.__fields__.values()}
        for alias in order:
            field = by_alias[alias]
            extra = field.field_info.extra
            if not extra.get("element_property"):
                continue
            fields.append(
                {
                    "name": alias,
                    "extensible": "_" + alias in by_alias,
                    "type": type_code(field.type_),
                    "array": field.shape == 2,
                    "required": bool(field.required or extra.get("element_required")),
                    "choice": extra.get("one_of_many"),
                    "choiceRequired": bool(extra.get("one_of_many_required")),
                    "codes": extra.get("enum_values"),
                    "targets": extra.get("enum_reference_types"),
                }
            )
        # Cross-check: the root validator's required_fields list of primitive elements.
        import inspect
        import re

        src = inspect.getsource(cls)
        listed = set()
        for block in re.findall(r"required_fields = \[(.*?)\]\n", src, re.S):
            listed.update(re.findall(r'\("(\w+)", "\w+__ext"\)', block))
        declared = {
            f.name
            for f in cls.__fields__.values()
            if f.field_info.extra.get("element_required") and "_" + f.alias in by_alias
        }
        if listed != declared:
            raise SystemExit(f"{name}: required_fields {listed} != element_required {declared}")
        bases = [b.__name__ for b in cls.__mro__[1:] if b.__name__ in classes]
        out["classes"][name] = {"kind": kind, "base": bases[0] if bases else None, "fields": fields}
    return out


def _introspect_r4b() -> dict[str, Any]:
    """Read the isSummary flags of every R4B class of fhir.resources 8.3.0."""
    from fhir.resources.R4B import fhirtypes, get_fhir_model_class

    out: dict[str, dict[str, bool]] = {}
    for attr in sorted(dir(fhirtypes)):
        if not attr.endswith("Type") or attr in ("FHIRPrimitiveExtensionType",):
            continue
        try:
            cls = get_fhir_model_class(attr[: -len("Type")])
        except (ValueError, AttributeError, TypeError):
            continue
        if not hasattr(cls, "model_fields"):
            continue
        flags: dict[str, bool] = {}
        for field in cls.model_fields.values():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            if not extra.get("element_property") or not field.alias:
                continue
            summary = bool(extra.get("summary_element_property"))
            flags[field.alias] = summary
            group = extra.get("one_of_many")
            if group:
                flags["[x]" + str(group)] = flags.get("[x]" + str(group), False) or summary
        out[cls.__name__] = flags
    return out


# --- building the table in the parent --------------------------------------------------


def _run_introspection(which: str) -> Any:
    path, requirements = VENVS[which]
    python = path / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(path)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *requirements], check=True
        )
    done = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--introspect", which],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout)


def _summary_flag(r4b: dict[str, dict[str, bool]], cls: str, field: dict[str, Any]) -> bool:
    flags = r4b.get(cls)
    if flags is not None:
        if field["name"] in flags:
            return flags[field["name"]]
        if field["choice"] and "[x]" + field["choice"] in flags:
            return flags["[x]" + field["choice"]]
    return field["required"] or field["choiceRequired"] or field["name"] in ALWAYS_SUMMARY


def build_table(r4: dict[str, Any], r4b: dict[str, dict[str, bool]]) -> dict[str, Any]:
    """Merge the two introspections into the table described in the module docstring."""
    classes: dict[str, Any] = r4["classes"]
    top = {n for n, c in classes.items() if c["kind"] != "nested"}
    # Name nested (backbone) classes by the path of their first, shallowest use.
    path_of: dict[str, str] = {n: n for n in top}
    queue = sorted(top)
    while queue:
        owner = queue.pop(0)
        for field in classes[owner]["fields"]:
            tp = field["type"]
            if tp in classes and tp not in path_of:
                path_of[tp] = f"{path_of[owner]}.{field['name']}"
                queue.append(tp)
    missing = sorted(n for n in classes if n not in path_of)
    if missing:
        raise SystemExit(f"nested classes never used: {missing}")

    types: dict[str, Any] = {}
    for cls, info in classes.items():
        elements: dict[str, Any] = {}
        choices: dict[str, Any] = {}
        for field in info["fields"]:
            tp = field["type"]
            code = path_of.get(tp, tp)
            el: dict[str, Any] = {"type": [code]}
            if field["required"]:
                el["min"] = 1
            if field["array"]:
                el["max"] = "*"
            codes = CODE_FIXES.get((cls, field["name"]), field["codes"])
            if codes and any(c == "+" or " " in c for c in codes):
                raise SystemExit(f"{cls}.{field['name']}: incomplete code list {codes}")
            if codes:
                el["codes"] = list(codes)
            if field["targets"] and tp in ("Reference", "canonical"):
                el["targets"] = sorted(field["targets"])
            is_resource = info["kind"].endswith("resource")
            if (field["name"] == "id" and not is_resource) or (
                cls == "Extension" and field["name"] == "url"
            ):
                # XML attributes in R4 (json.html#primitive): no `_id` / `_url` object.
                el["noExt"] = True
            if _summary_flag(r4b, cls, field):
                el["summary"] = True
            if field["choice"]:
                group = field["choice"]
                el["choice"] = group
                entry = choices.setdefault(group, {"names": {}})
                entry["names"][field["name"]] = code
                if field["choiceRequired"]:
                    entry["min"] = 1
                if el.get("summary"):
                    entry["summary"] = True
            elements[field["name"]] = el
        kind = {
            "resource": "resource",
            "abstract-resource": "resource",
            "datatype": "datatype",
            "abstract-datatype": "datatype",
            "nested": "backbone",
        }[info["kind"]]
        entry_out: dict[str, Any] = {"kind": kind, "elements": elements}
        if choices:
            entry_out["choices"] = choices
        base = info["base"]
        if base:
            entry_out["base"] = path_of.get(base, base)
        types[path_of[cls]] = entry_out

    resources = sorted(n for n, c in classes.items() if c["kind"] == "resource")
    abstract = sorted(
        n for n, c in classes.items() if c["kind"] in ("abstract-resource", "abstract-datatype")
    )
    datatypes = sorted(n for n, c in classes.items() if c["kind"] == "datatype")
    return {
        "fhirVersion": "4.0.1",
        "source": "fhir.resources 6.4.0 (FHIR 4.0.1); isSummary from fhir.resources 8.3.0 R4B",
        "primitiveTypes": sorted(r4["primitives"]),
        "resourceTypes": resources,
        "abstractTypes": abstract,
        "dataTypes": datatypes,
        "types": types,
    }


def write_table(table: dict[str, Any], output: Path = OUTPUT) -> None:
    """Write the table as compact, sorted JSON, gzip-compressed with a fixed mtime."""
    data = json.dumps(table, sort_keys=True, separators=(",", ":")).encode()
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as raw, gzip.GzipFile(
        filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9
    ) as gz:
        gz.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--introspect", choices=["r4", "r4b"], help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    if args.introspect == "r4":
        json.dump(_introspect_r4(), sys.stdout)
        return
    if args.introspect == "r4b":
        json.dump(_introspect_r4b(), sys.stdout)
        return
    table = build_table(_run_introspection("r4"), _run_introspection("r4b"))
    write_table(table, args.output)
    print(
        f"{args.output}: {len(table['types'])} types, "
        f"{len(table['resourceTypes'])} resource types"
    )


if __name__ == "__main__":
    main()
