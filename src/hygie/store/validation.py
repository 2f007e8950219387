"""Validate a FHIR R4 resource (JSON) against the R4 structure, reporting every problem.

What is checked (each issue carries the FHIRPath location of the faulty node, e.g.
``Patient.name[0].given[1]`` or ``Bundle.entry[3].resource.status``):

- ``resourceType`` present and a concrete R4 resource type (resource.html);
- element names known for their type, arrays exactly where max is ``*``, no empty
  objects or arrays, ``null`` only inside a primitive array paired with a ``_name``
  array (json.html);
- primitive values: the JSON type and the regular expression of each R4 primitive
  (datatypes.html#primitive), string limits, integer ranges;
- cardinality (min 1), choice groups (required, and at most one type: formats.html#choice);
- required bindings (the codes of the value set), Reference.reference formats and the
  allowed target types (references.html#literal);
- primitive extension objects ``_name`` ({id, extension}), ext-1 on extensions and
  modifier extensions (extensibility.html);
- contained resources (dom-2: no nested contained; dom-4, dom-5: no version, last
  update or security label of their own), Bundle.entry.resource and
  Parameters.parameter.resource, each validated as its own type;
- a nesting limit (``max_depth``), so that a hostile body cannot exhaust the stack.

Why hand-written: the library validators of the field either need the full R4
definitions package at run time (not available offline: the HL7 validator, HAPI) or
build one model object per node (the pydantic models of ``fhir.resources``), which
stops at the first error of each node and is 5 to 12 times slower here
(bench/store_validate.py runs it as the peer). This module walks the JSON once against
the precompiled table of ``structure.py`` and collects every issue.

Some issues are warnings (severity "warning", the resource is still accepted), each
where the R4 reference validator does not fail the resource and official 4.0.1
examples rely on it:

- a string of whitespace only (datatypes.html#string: SHOULD have non-whitespace);
- a narrative without content (txt-2): the reference validator's htmlChecks() tests
  the element and attribute names only (txt-1), and ActivityDefinition-blood-tubes-
  supply, EventDefinition-example and two more examples have an empty <div>;
- the target type of a reference that does not resolve here, read from its URL: the
  reference validator checks it only when it resolves the target (contained and
  bundled targets, which are errors here too); DeviceMetric-example, DeviceUseStatement-
  example, MedicationRequest-medrx0301 and Observation-clinical-gender name types their
  element does not allow;
- the id part of a reference that is not a valid id (ig-r4.json names a SearchParameter
  whose id has 67 characters);
- a missing linkId on a display item of a Questionnaire (``_WARNING_RULES``).
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any
from xml.etree import ElementTree

from hygie.store.outcomes import Issue, unprocessable
from hygie.store.structure import COMPLEX, PRIMITIVE, RESOURCE, ElementDef, TypeDef, structure

#: Default limit on the nesting of objects and arrays in a resource.
MAX_DEPTH = 64
#: datatypes.html#string: "strings SHALL NOT exceed 1MB in size".
MAX_STRING = 1024 * 1024
_INT32 = (-(2**31), 2**31 - 1)

# --- primitive checks (datatypes.html#primitive, the R4 regular expressions) ----------

_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_MONTH = r"(0[1-9]|1[0-2])"
_DAY = r"(0[1-9]|[1-2][0-9]|3[0-1])"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_ZONE = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_RE_DATE = re.compile(rf"{_YEAR}(-{_MONTH}(-{_DAY})?)?")
_RE_DATETIME = re.compile(rf"{_YEAR}(-{_MONTH}(-{_DAY}(T{_TIME}{_ZONE})?)?)?")
_RE_INSTANT = re.compile(rf"{_YEAR}-{_MONTH}-{_DAY}T{_TIME}{_ZONE}")
_RE_TIME = re.compile(_TIME)
_RE_CODE = re.compile(r"[^\s]+(\s[^\s]+)*")
_RE_ID = re.compile(r"[A-Za-z0-9\-\.]{1,64}")
_RE_URI = re.compile(r"\S*")
_RE_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_RE_UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_RE_BASE64 = re.compile(r"[0-9a-zA-Z+/=]*")
_RE_SPACE = re.compile(r"\s+")

#: A check returns None when the value is valid, else (code, message, severity).
Problem = tuple[str, str, str]
Check = Callable[[Any], Problem | None]


def _bad(message: str) -> Problem:
    return ("value", message, "error")


def _check_boolean(v: Any) -> Problem | None:
    return None if v is True or v is False else _bad("must be a JSON boolean (true or false)")


def _check_integer(v: Any, low: int = _INT32[0]) -> Problem | None:
    if type(v) is not int:
        return _bad("must be a JSON integer (a number without a fraction)")
    if v < low or v > _INT32[1]:
        return _bad(f"{v} is out of range (at least {low}, at most {_INT32[1]})")
    return None


def _check_decimal(v: Any) -> Problem | None:
    tv = type(v)
    if tv is int:
        return None
    if tv is float:
        return None if math.isfinite(v) else _bad("must be a finite number")
    if tv is Decimal:
        return None if v.is_finite() else _bad("must be a finite number")
    return _bad("must be a JSON number")


def _check_string(v: Any) -> Problem | None:
    if type(v) is not str:
        return _bad("must be a JSON string")
    if not v:
        return _bad("must not be empty (json.html: empty strings are not allowed)")
    if len(v) > MAX_STRING:
        return _bad("is longer than 1 MB")
    if v.isspace():
        return ("value", "should contain non-whitespace content", "warning")
    return None


def _regex_check(pattern: re.Pattern[str], what: str) -> Check:
    match = pattern.fullmatch

    def check(v: Any) -> Problem | None:
        if type(v) is not str:
            return _bad("must be a JSON string")
        if not v:
            return _bad("must not be empty (json.html: empty strings are not allowed)")
        if match(v) is None:
            return _bad(f"{v[:80]!r} is not a valid {what}")
        return None

    return check


def _calendar_check(pattern: re.Pattern[str], what: str) -> Check:
    """The regex, then the calendar: the R4 regexes accept 2019-02-30."""
    regex = _regex_check(pattern, what)

    def check(v: Any) -> Problem | None:
        problem = regex(v)
        if problem is None and len(v) >= 10:
            year, month, day = int(v[0:4]), int(v[5:7]), int(v[8:10])
            if day > 28 and day > calendar.monthrange(year, month)[1]:
                return _bad(f"{v[:80]!r} is not a valid {what}: no such day")
        return problem

    return check


def _check_base64(v: Any) -> Problem | None:
    if type(v) is not str:
        return _bad("must be a JSON string")
    if not v:
        return _bad("must not be empty (json.html: empty strings are not allowed)")
    # Same language as the R4 regex (\s*([0-9a-zA-Z\+/=]){4}\s*)+, without backtracking.
    packed = _RE_SPACE.sub("", v) if not _RE_BASE64.fullmatch(v) else v
    if len(packed) % 4 or _RE_BASE64.fullmatch(packed) is None:
        return _bad("is not valid base64")
    return None


_XHTML_NS = "{http://www.w3.org/1999/xhtml}"
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
#: narrative.html#xhtml, txt-1: the basic formatting elements of HTML 4.0 chapters 7-11
#: (less 9.4, del and ins) and 15 (less the deprecated ones), with a and img. No head,
#: body, script, style, form, frame, iframe, object, base or link.
_XHTML_ELEMENTS = frozenset((
    "a", "abbr", "acronym", "address", "area", "b", "bdo", "big", "blockquote", "br",
    "caption", "cite", "code", "col", "colgroup", "dd", "dfn", "div", "dl", "dt", "em", "h1",
    "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "map", "ol", "p", "pre", "q",
    "samp", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "tt", "ul", "var",
))
#: The attributes those elements may carry; no event handlers (on...).
_XHTML_ATTRIBUTES = frozenset((
    "abbr", "accesskey", "align", "alt", "axis", "border", "cellpadding", "cellspacing",
    "char", "charoff", "charset", "cite", "class", "colspan", "compact", "coords", "datetime",
    "dir", "frame", "headers", "height", "href", "hreflang", "hspace", "id", "lang",
    "longdesc", "name", "nowrap", "rel", "rev", "rowspan", "rules", "scope", "shape", "span",
    "src", "start", "style", "summary", "tabindex", "title", "type", "usemap", "valign",
    "value", "vspace", "width",
))


def _check_xhtml(v: Any) -> Problem | None:
    """narrative.html#xhtml: a well-formed <div> in the XHTML namespace, only the
    allowed elements and attributes (txt-1), some content (txt-2). A narrative is shown
    to users as HTML, so this is also what keeps scripts out of the store."""
    if type(v) is not str:
        return _bad("must be a JSON string")
    try:
        root = ElementTree.fromstring(v)
    except ElementTree.ParseError as exc:
        # XML knows no HTML entities such as &nbsp; (narrative.html#xhtml).
        return _bad(f"is not well-formed XHTML ({exc})")
    if root.tag != _XHTML_NS + "div":
        return _bad('must be a <div xmlns="http://www.w3.org/1999/xhtml"> element')
    has_image = False
    for node in root.iter():
        tag = node.tag if isinstance(node.tag, str) else ""
        name = tag[len(_XHTML_NS):] if tag.startswith(_XHTML_NS) else None
        if name is None or name not in _XHTML_ELEMENTS:
            return _bad(f"txt-1: element {tag[:40]!r} is not allowed in a narrative")
        has_image = has_image or name == "img"
        for attr, value in node.attrib.items():
            plain = attr[len(_XML_NS):] if attr.startswith(_XML_NS) else attr
            if plain not in _XHTML_ATTRIBUTES:
                return _bad(f"txt-1: attribute {attr[:40]!r} is not allowed in a narrative")
            if plain in ("href", "src") and value.strip().lower().startswith("javascript:"):
                return _bad("txt-1: a script URL is not allowed in a narrative")
    if not has_image and not "".join(root.itertext()).strip():
        return ("value", "txt-2: the narrative should have some non-whitespace content",
                "warning")
    return None


_PRIMITIVE_CHECKS: dict[str, Check] = {
    "boolean": _check_boolean,
    "integer": _check_integer,
    "unsignedInt": lambda v: _check_integer(v, 0),
    "positiveInt": lambda v: _check_integer(v, 1),
    "decimal": _check_decimal,
    "string": _check_string,
    "markdown": _check_string,
    "code": _regex_check(_RE_CODE, "code (no leading, trailing or double whitespace)"),
    "id": _regex_check(_RE_ID, "id ([A-Za-z0-9-.], 1 to 64 characters)"),
    "uri": _regex_check(_RE_URI, "uri (no whitespace)"),
    "url": _regex_check(_RE_URI, "url (no whitespace)"),
    "canonical": _regex_check(_RE_URI, "canonical (no whitespace)"),
    "oid": _regex_check(_RE_OID, "oid (urn:oid:...)"),
    "uuid": _regex_check(_RE_UUID, "uuid (urn:uuid: and lower-case hex)"),
    "date": _calendar_check(_RE_DATE, "date (YYYY, YYYY-MM or YYYY-MM-DD)"),
    "dateTime": _calendar_check(
        _RE_DATETIME, "dateTime (a date, or a date and time with a time zone)"
    ),
    "instant": _calendar_check(_RE_INSTANT, "instant (date, time to the second, time zone)"),
    "time": _regex_check(_RE_TIME, "time (hh:mm:ss)"),
    "base64Binary": _check_base64,
    "xhtml": _check_xhtml,
}

#: Valid strings up to this length are remembered, by primitive type: systems, codes,
#: units and displays repeat from one resource to the next, and a remembered one costs
#: a set look-up instead of a regular expression. Each set is emptied when it is full.
_MEMO_LENGTH = 128
_MEMO_SIZE = 8192
_KNOWN_VALID: dict[str, set[str]] = {name: set() for name in _PRIMITIVE_CHECKS}


def _remember_valid(type_name: str, value: str) -> None:
    known = _KNOWN_VALID[type_name]
    if len(known) >= _MEMO_SIZE:
        known.clear()
    known.add(value)


# --- references (references.html#literal) --------------------------------------------

_RE_RELATIVE = re.compile(r"(?P<type>[A-Z][A-Za-z]+)/(?P<id>[^/\s?#]+)(/_history/[^/\s?#]+)?")
_RE_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
_RE_ABSOLUTE_REST = re.compile(
    r"https?://\S+/(?P<type>[A-Z][A-Za-z]+)/(?P<id>[^/\s?#]+)(/_history/[^/\s?#]+)?"
)
#: A conditional reference, allowed inside a transaction (http.html#trules).
_RE_CONDITIONAL = re.compile(r"(?P<type>[A-Z][A-Za-z]+)\?\S*")

_EXTENSION_KEYS = frozenset({"id", "extension"})


def _read_reference(ref: str) -> tuple[str, str | None, str | None]:
    """The form of a reference string, the type it names, and its id when not a valid id.

    ``relative``: Type/id (or a conditional Type?query, with no id); ``absolute``: a URI,
    with the type and id of a RESTful URL; ``invalid``: neither.
    """
    match = _RE_RELATIVE.fullmatch(ref) or _RE_CONDITIONAL.fullmatch(ref)
    form = "relative"
    if match is None:
        if not _RE_ABSOLUTE.fullmatch(ref):
            return "invalid", None, None
        form = "absolute"
        match = _RE_ABSOLUTE_REST.fullmatch(ref)
        if match is None:
            return form, None, None
    rid = match.groupdict().get("id")
    bad_id = rid if rid is not None and _RE_ID.fullmatch(rid) is None else None
    return form, match["type"], bad_id


_reference_form = lru_cache(maxsize=_MEMO_SIZE)(_read_reference)

#: Required elements whose absence is only a warning, and when. Each case is one where
#: an official 4.0.1 example breaks the rule and the reason makes the breach harmless:
#:
#: - Questionnaire.item.linkId on a ``display`` item: Questionnaire-qs1 (built by the
#:   specification's own tooling) leaves it out of its fly-over help items. A display
#:   item is never answered, so no QuestionnaireResponse.item and no enableWhen can
#:   name it (questionnaire.html#item, que-9 forbids answers to display items); the
#:   missing id refers to nothing. Every other item still needs its linkId (error).
_WARNING_RULES: dict[tuple[str, str], Callable[[dict[str, Any]], bool]] = {
    ("Questionnaire.item", "linkId"): lambda item: item.get("type") == "display",
}


#: How the walker reads an element's value: one primitive, one data type or backbone
#: element, one resource, an array of primitives, an array of anything else.
_ONE_PRIMITIVE, _ONE_DATA_TYPE, _ONE_RESOURCE, _MANY_PRIMITIVES, _MANY_OTHERS = range(5)

#: Per element: (how to read it, its definition, its required codes, the remembered
#: valid strings of its primitive type, the definition of its data type).
_Spec = tuple[int, ElementDef, frozenset[str] | None, set[str], TypeDef | None]

#: Type name -> JSON name -> the element's spec, worked out on first use of the type,
#: so that the walk reads one tuple per member instead of the definition's fields.
_SPECS: dict[str, dict[str, _Spec]] = {}


def _element_specs(td: TypeDef, types: dict[str, TypeDef]) -> dict[str, _Spec]:
    specs: dict[str, _Spec] = {}
    for name, el in td.elements.items():
        if el.kind == PRIMITIVE:
            mode = _MANY_PRIMITIVES if el.array else _ONE_PRIMITIVE
        elif el.array:
            mode = _MANY_OTHERS
        else:
            mode = _ONE_DATA_TYPE if el.kind == COMPLEX else _ONE_RESOURCE
        valid = _KNOWN_VALID.get(el.type, set()) if el.kind == PRIMITIVE else set()
        sub_td = types.get(el.type) if el.kind == COMPLEX else None
        specs[name] = (mode, el, el.codes, valid, sub_td)
    _SPECS[td.name] = specs
    return specs


class _Walker:
    """One validation run: the issues found so far, and the limits."""

    __slots__ = ("bundle", "issues", "local", "max_depth", "resource_types", "types")

    def __init__(self, max_depth: int) -> None:
        table = structure()
        self.types = table.types
        self.resource_types = table.resource_types
        self.max_depth = max_depth
        self.issues: list[Issue] = []
        #: Ids a ``#id`` reference may name, in the root resource being walked.
        self.local: dict[str, str] | None = None
        #: fullUrl (and Type/id) of the entries of the innermost enclosing Bundle.
        self.bundle: dict[str, str] | None = None

    def error(self, code: str, message: str, where: str, severity: str = "error") -> None:
        self.issues.append(Issue(code, message, severity=severity, expression=where))

    # --- resources -------------------------------------------------------------------

    def resource(self, res: Any, path: str | None, depth: int, contained: bool = False) -> None:
        """Validate a resource found at ``path`` (None for the top level)."""
        if type(res) is not dict:
            self.error("structure", "a resource must be a JSON object", path or "")
            return
        rtype = res.get("resourceType")
        if rtype is None:
            self.error("required", "resourceType is missing", path or "resourceType")
            return
        if type(rtype) is not str or rtype not in self.resource_types:
            self.error(
                "structure",
                f"resourceType {str(rtype)[:64]!r} is not a known FHIR R4 resource type",
                f"{path}.resourceType" if path else "resourceType",
            )
            return
        if contained:
            self._contained_rules(res, path or rtype)
        saved_local, saved_bundle = self.local, self.bundle
        if not contained:
            self.local = self._contained_index(res, rtype)
        if rtype == "Bundle":
            self.bundle = self._bundle_index(res)
        self.object(res, self.types[rtype], path or rtype, depth)
        self.local, self.bundle = saved_local, saved_bundle

    def _contained_rules(self, res: dict[str, Any], path: str) -> None:
        """dom-2, dom-4, dom-5 (domainresource.html#invs) on a contained resource."""
        if "contained" in res:
            self.error(
                "invariant",
                "dom-2: a contained resource must not contain other resources",
                f"{path}.contained",
            )
        meta = res.get("meta")
        if type(meta) is dict:
            for key in ("versionId", "lastUpdated"):
                if key in meta:
                    self.error(
                        "invariant",
                        f"dom-4: a contained resource must not have a meta.{key}",
                        f"{path}.meta.{key}",
                    )
            if "security" in meta:
                self.error(
                    "invariant",
                    "dom-5: a contained resource must not have a security label",
                    f"{path}.meta.security",
                )

    # --- objects -----------------------------------------------------------------

    def object(
        self, obj: dict[str, Any], td: TypeDef, path: str, depth: int, bare_id_ok: bool = False
    ) -> None:
        """Validate the members of a complex value of type ``td``."""
        if depth > self.max_depth:
            self.error("too-costly", f"nested deeper than {self.max_depth} levels", path)
            return
        elements = td.elements
        if not obj or (
            len(obj) == 1 and "id" in obj and td.kind != "resource" and not bare_id_ok
        ):
            self.error(
                "structure",
                "ele-1: an element must have a value or children (empty object)",
                path,
            )
            if not obj:
                return
        chosen: dict[str, str] | None = None
        specs = _SPECS.get(td.name)
        if specs is None:
            specs = _element_specs(td, self.types)
        for key, value in obj.items():
            spec = specs.get(key)
            if spec is None:
                self._other_member(obj, td, key, value, path, depth)
                base = elements.get(key[1:]) if key[:1] == "_" else None
                if base is not None and base.choice is not None:  # `_valueString`
                    chosen = self._choose(chosen, base, path)
                continue
            mode, el, codes, valid, sub_td = spec
            if el.choice is not None:
                chosen = self._choose(chosen, el, path)
            if mode == _ONE_PRIMITIVE:
                if value.__class__ is str and value in valid and (
                    codes is None or value in codes
                ):
                    continue
                if type(value) is list:
                    self._not_single(key, path)
                elif value is None:
                    self.error("structure", "null is not allowed", f"{path}.{key}")
                else:
                    self.primitive(value, el, path)
            elif mode == _ONE_DATA_TYPE:
                if value.__class__ is dict:
                    # value() for a data type or backbone element, written out.
                    where = f"{path}.{key}"
                    self.object(value, sub_td, where, depth + 1)
                    if el.type == "Reference":
                        ref = value.get("reference")
                        if type(ref) is str and ref:
                            self.reference(ref, el, where)
                elif type(value) is list:
                    self._not_single(key, path)
                else:
                    self.value(value, el, f"{path}.{key}", depth + 1)
            elif mode == _ONE_RESOURCE:
                if type(value) is list:
                    self._not_single(key, path)
                else:
                    self.value(value, el, f"{path}.{key}", depth + 1)
            elif type(value) is not list:
                self.error("structure", f"{key} must be a JSON array (max *)", f"{path}.{key}")
            elif not value:
                self.error("structure", "arrays must not be empty", f"{path}.{key}")
            elif mode == _MANY_PRIMITIVES:
                ext = obj.get("_" + key)
                for i, item in enumerate(value):
                    if item.__class__ is str and item in valid and (
                        codes is None or item in codes
                    ):
                        continue
                    if item is None:
                        if not (type(ext) is list and i < len(ext) and ext[i] is not None):
                            self.error(
                                "structure",
                                "null is only allowed where _" + key + " has an extension",
                                f"{path}.{key}[{i}]",
                            )
                    else:
                        self.primitive(item, el, path, i)
            else:
                for i, item in enumerate(value):
                    self.value(item, el, f"{path}.{key}[{i}]", depth + 1)
        for el in td.required:
            name = el.name
            if name not in obj and not (el.kind == PRIMITIVE and "_" + name in obj):
                lenient = _WARNING_RULES.get((td.name, name))
                severity = "warning" if lenient is not None and lenient(obj) else "error"
                self.error("required", f"{name} is required (min 1)", f"{path}.{name}", severity)
        for choice in td.required_choices:
            if not any(n in obj or "_" + n in obj for n in choice.names):
                self.error(
                    "required", f"{choice.name}[x] is required (min 1)", f"{path}.{choice.name}"
                )
        if td.name == "Extension" or td.name == "Extension.extension":
            self._extension_rule(obj, path)

    def _not_single(self, key: str, path: str) -> None:
        self.error(
            "structure", f"{key} must be a single value, not an array (max 1)", f"{path}.{key}"
        )

    def _choose(
        self, chosen: dict[str, str] | None, el: ElementDef, path: str
    ) -> dict[str, str]:
        """Record the type picked for a choice group; a second, different one is an error
        (formats.html#choice: only one of the value[x] names may appear)."""
        if chosen is None:
            chosen = {}
        other = chosen.get(el.choice or "")
        if other is None:
            chosen[el.choice or ""] = el.name
        elif other != el.name:
            self.error(
                "structure",
                f"only one type of {el.choice}[x] is allowed, found {other} and {el.name}",
                f"{path}.{el.name}",
            )
        return chosen

    def _other_member(
        self, obj: dict[str, Any], td: TypeDef, key: str, value: Any, path: str, depth: int
    ) -> None:
        """A member that is not an element: resourceType, a `_name` object, or unknown."""
        if key == "resourceType" and td.kind == "resource":
            return
        if key[:1] == "_":
            el = td.elements.get(key[1:])
            if el is not None and el.extensible:
                self.primitive_extension(obj, el, value, path, depth)
                return
        self.error("structure", f"unknown element {key!r} in {td.name}", f"{path}.{key}")

    def _extension_rule(self, obj: dict[str, Any], path: str) -> None:
        # ext-1 (extensibility.html): extension.exists() != value.exists().
        has_value = any(k.startswith("value") for k in obj)
        has_children = "extension" in obj
        if has_value == has_children:
            self.error(
                "invariant",
                "ext-1: an extension must have either extensions or a value[x], not both",
                path,
            )

    # --- values --------------------------------------------------------------------

    def value(self, value: Any, el: ElementDef, path: str, depth: int) -> None:
        """A complex value (data type, backbone element or resource) at ``path``."""
        if type(value) is not dict:
            what = "null" if value is None else type(value).__name__
            self.error("structure", f"must be a JSON object ({el.type}), found {what}", path)
            return
        if el.kind == RESOURCE:
            self.resource(value, path, depth, contained=el.name == "contained")
            return
        self.object(value, self.types[el.type], path, depth)
        if el.type == "Reference":
            ref = value.get("reference")
            if type(ref) is str and ref:
                self.reference(ref, el, path)

    def primitive(self, value: Any, el: ElementDef, parent: str, index: int = -1) -> None:
        """A primitive value of element ``el`` under ``parent`` (item ``index`` of an array).

        The location is only spelled out when there is something to report: most values
        are valid, and building their paths would cost more than checking them.
        """
        problem = _PRIMITIVE_CHECKS[el.type](value)
        if problem is None and (el.codes is None or value in el.codes):
            if value.__class__ is str and len(value) <= _MEMO_LENGTH:
                _remember_valid(el.type, value)
            return
        where = f"{parent}.{el.name}" if index < 0 else f"{parent}.{el.name}[{index}]"
        if problem is not None:
            code, message, severity = problem
            self.error(code, f"{el.type}: {message}", where, severity)
            if severity == "error":
                return
        if el.codes is not None and value not in el.codes:
            shown = ", ".join(sorted(el.codes)[:12])
            self.error(
                "code-invalid",
                f"{str(value)[:64]!r} is not in the required value set ({shown})",
                where,
            )

    def primitive_extension(
        self, obj: dict[str, Any], el: ElementDef, value: Any, path: str, depth: int
    ) -> None:
        """A ``_name`` member: the id and extensions of a primitive (json.html#primitive)."""
        where = f"{path}.{el.name}"
        if el.array:
            if type(value) is not list:
                self.error("structure", f"_{el.name} must be a JSON array", where)
                return
            if not value:
                self.error("structure", "arrays must not be empty", where)
                return
            base = obj.get(el.name)
            if type(base) is list and len(base) != len(value):
                self.error(
                    "structure",
                    f"_{el.name} must have as many items as {el.name} ({len(base)})",
                    where,
                )
            for i, item in enumerate(value):
                if item is None:
                    if not (type(base) is list and i < len(base) and base[i] is not None):
                        self.error(
                            "structure", "null in both the value and the extension array",
                            f"{where}[{i}]",
                        )
                    continue
                has_value = type(base) is list and i < len(base) and base[i] is not None
                self._primitive_extension_object(item, f"{where}[{i}]", depth, has_value)
        else:
            if type(value) is list:
                self.error("structure", f"_{el.name} must be a single object", where)
                return
            self._primitive_extension_object(value, where, depth, el.name in obj)

    def _primitive_extension_object(
        self, value: Any, where: str, depth: int, has_value: bool
    ) -> None:
        if type(value) is not dict:
            self.error("structure", "a primitive's extension must be a JSON object", where)
            return
        if not value:
            self.error("structure", "ele-1: an element must have a value or children", where)
            return
        members = {}
        for key, item in value.items():
            if key in _EXTENSION_KEYS:
                members[key] = item
            else:
                self.error(
                    "structure",
                    f"unknown element {key!r} in a primitive's extension (id, extension)",
                    f"{where}.{key}",
                )
        if members:
            # The Element rules: id is a string, extension an Extension array. An id
            # alone is fine where the primitive has a value, its content (ele-1).
            self.object(members, self.types["Element"], where, depth + 1, bare_id_ok=has_value)

    def reference(self, ref: str, el: ElementDef, path: str) -> None:
        """Reference.reference: its form, and its target type (references.html#literal).

        A reference that resolves here (``#id`` to a contained resource, or to an entry of
        the enclosing Bundle) must point to an allowed type: an error otherwise, as the
        R4 reference validator reports for contained and bundled targets. The type of a
        reference that does not resolve here is read from its URL and a mismatch is a
        warning, as that validator does not check unresolved targets by default (and
        official examples such as DeviceMetric-example point to other types).
        """
        where = f"{path}.reference"
        if ref[0] == "#":
            target = self.local.get(ref[1:]) if self.local is not None else None
            if target is None:
                self.error(
                    "invariant",
                    f"ref-1: no contained resource has the id {ref[1:65]!r}",
                    where,
                )
            else:
                self._target(target, el, where, resolved=True)
            return
        resolved = self.bundle.get(ref) if self.bundle is not None else None
        form, target, bad_id = _reference_form(ref) if len(ref) <= _MEMO_LENGTH else (
            _read_reference(ref)
        )
        if form == "invalid":
            self.error(
                "value",
                f"{ref[:80]!r} is not a valid reference (Type/id, Type/id/_history/v, "
                "an absolute URL, urn:uuid:, urn:oid: or #id)",
                where,
            )
            return
        if form == "absolute":
            if resolved is not None:
                self._target(resolved, el, where, resolved=True)
                return
            if target is None or target not in self.resource_types:
                return  # an absolute URI (urn:uuid:, urn:oid:, a non-FHIR URL)
        assert target is not None
        if target not in self.resource_types:
            self.error("value", f"{target!r} is not a FHIR R4 resource type", where)
            return
        if bad_id is not None:
            self.error(
                "value",
                f"{bad_id[:80]!r} is not a valid id ([A-Za-z0-9-.], 1 to 64 characters)",
                where,
                severity="warning",
            )
        self._target(target, el, where, resolved=resolved is not None)

    def _target(self, target: str, el: ElementDef, where: str, resolved: bool) -> None:
        targets = el.targets
        if targets is None or target in targets or "Resource" in targets:
            return
        self.error(
            "value",
            f"a reference to {target} is not allowed here (allowed: "
            f"{', '.join(sorted(targets))})",
            where,
            severity="error" if resolved else "warning",
        )

    # --- what a reference can resolve to -------------------------------------------

    @staticmethod
    def _contained_index(res: dict[str, Any], rtype: str) -> dict[str, str]:
        """Local ids of a root resource: ``""`` (the resource itself) and its contained."""
        local = {"": rtype}
        contained = res.get("contained")
        if type(contained) is list:
            for item in contained:
                if type(item) is dict and type(item.get("id")) is str:
                    local[item["id"]] = str(item.get("resourceType"))
        return local

    @staticmethod
    def _bundle_index(bundle: dict[str, Any]) -> dict[str, str]:
        """fullUrl and Type/id of each Bundle entry -> its resource type."""
        found: dict[str, str] = {}
        entries = bundle.get("entry")
        if type(entries) is not list:
            return found
        for entry in entries:
            if type(entry) is not dict or type(entry.get("resource")) is not dict:
                continue
            rtype = entry["resource"].get("resourceType")
            if type(rtype) is not str:
                continue
            full_url = entry.get("fullUrl")
            if type(full_url) is str:
                found[full_url] = rtype
            rid = entry["resource"].get("id")
            if type(rid) is str:
                found[f"{rtype}/{rid}"] = rtype
        return found


def validate_resource(
    resource: Any, *, expected_type: str | None = None, max_depth: int = MAX_DEPTH
) -> list[Issue]:
    """Every problem of ``resource`` against the R4 structure; an empty list when valid.

    ``expected_type`` is the type the URL names (http.html#create); ``max_depth`` bounds
    the nesting of objects and arrays. Issues of severity "warning" do not make the
    resource invalid.
    """
    walker = _Walker(max_depth)
    if type(resource) is dict and expected_type is not None:
        rtype = resource.get("resourceType")
        if rtype is not None and rtype != expected_type:
            walker.error(
                "invalid",
                f"resourceType {str(rtype)[:64]!r} does not match the expected {expected_type}",
                "resourceType",
            )
            return walker.issues
    walker.resource(resource, None, 0)
    return walker.issues


def check_resource(
    resource: Any, expected_type: str | None = None, *, max_depth: int = MAX_DEPTH
) -> None:
    """Raise ``unprocessable`` (422) with every issue when ``resource`` has an error."""
    issues = validate_resource(resource, expected_type=expected_type, max_depth=max_depth)
    if any(i.severity in ("error", "fatal") for i in issues):
        raise unprocessable(issues)


__all__ = ["MAX_DEPTH", "check_resource", "validate_resource"]
