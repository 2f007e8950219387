"""Write the store's trimmed copy of the official R4 search-parameter definitions.

The store must not read ``../shared`` at run time, so the few fields that search
needs are copied once into ``src/hygie/store/definitions/search-parameters.json``:
for each SearchParameter its url, code, base, type, expression, target, modifier,
comparator, component, multipleOr, multipleAnd and xpathUsage. Narrative, contact
and XPath text are left out, which takes the file from about 2.2 MB to a tenth.

Run it again when the definitions change::

    .venv/bin/python tools/trim_search_parameters.py [path/to/search-parameters.json]

See https://hl7.org/fhir/R4/searchparameter.html for the meaning of each field.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "src" / "hygie" / "store" / "definitions" / "search-parameters.json"

#: SearchParameter fields the store reads, in the order they are written.
KEPT_FIELDS = (
    "url",
    "code",
    "base",
    "type",
    "expression",
    "target",
    "modifier",
    "comparator",
    "component",
    "multipleOr",
    "multipleAnd",
    "xpathUsage",
)


def default_source() -> Path:
    """The shared reference data next to the repository (as tests/conftest.py finds it)."""
    for parent in [ROOT, *ROOT.parents]:
        candidate = parent / "shared" / "data" / "fhir-r4" / "search-parameters.json"
        if candidate.is_file():
            return candidate
    raise SystemExit("search-parameters.json not found: pass its path as the first argument")


def trim_parameter(resource: dict[str, Any]) -> dict[str, Any]:
    """Keep only the fields of one SearchParameter that search uses."""
    out: dict[str, Any] = {}
    for name in KEPT_FIELDS:
        if name not in resource:
            continue
        value = resource[name]
        if name == "expression":
            value = value.strip()
        elif name == "component":
            value = [
                {"definition": c["definition"], "expression": c["expression"].strip()}
                for c in value
            ]
        out[name] = value
    return out


def trim(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """Trim every SearchParameter of a Bundle, sorted by url for a stable diff."""
    params = [
        trim_parameter(entry["resource"])
        for entry in bundle.get("entry", [])
        if entry.get("resource", {}).get("resourceType") == "SearchParameter"
    ]
    return sorted(params, key=lambda p: p["url"])


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else default_source()
    bundle = json.loads(source.read_text(encoding="utf-8"))
    params = trim(bundle)
    document = {"fhirVersion": "4.0.1", "source": "hl7.fhir.r4.core search-parameters.json",
                "parameters": params}
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, ensure_ascii=False, indent=0, separators=(",", ":"))
    OUTPUT.write_text(text + "\n", encoding="utf-8")
    print(f"{len(params)} search parameters written to {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
