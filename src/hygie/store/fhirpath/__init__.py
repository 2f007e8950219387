"""A FHIRPath engine for the expressions of the R4 search-parameter definitions.

Why not a library: ``fhirpathpy`` is a complete interpreter, and the tests check
this engine against it on every official example, but it walks the syntax tree
and wraps every JSON value in node objects on each evaluation, which costs tens
to hundreds of microseconds per expression. Indexing a resource evaluates one
expression per search parameter of its type (thirty to fifty), and the store must
index more than 10,000 resources a second. So each expression is parsed once
(``parser``) and compiled into nested closures (``compiler``) that walk the JSON
directly; evaluation then allocates little more than the result lists.

What is covered: the whole grammar (paths, indexers, every operator, literals,
variables), choice elements resolved from the JSON name (``value`` finds
``valueQuantity`` and keeps the type Quantity), ``is``/``as``/``ofType`` (with the
R4 subtypes, and ``as`` applied item by item as the search definitions expect),
``where``/``select``/``exists``/``all`` and the common collection, boolean and string
functions, and FHIR's ``resolve()`` (answered from the reference string),
``extension(url)`` and ``hasValue()``. Not covered: quantity literals, date
arithmetic, ``$index``/``$total``, ``aggregate()``, terminology functions.
See https://hl7.org/fhirpath/N1/ and https://hl7.org/fhir/R4/fhirpath.html.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from hygie.store.fhirpath.compiler import FhirPathCompileError, compile_node, item_is
from hygie.store.fhirpath.functions import reference_target
from hygie.store.fhirpath.nodes import Node
from hygie.store.fhirpath.parser import FhirPathSyntaxError, parse
from hygie.store.fhirpath.values import Env, FhirPathEvaluationError, Typed, plain, type_of

__all__ = [
    "Env",
    "Expression",
    "FhirPathCompileError",
    "FhirPathError",
    "FhirPathEvaluationError",
    "FhirPathSyntaxError",
    "Typed",
    "compile_expression",
    "evaluate",
    "item_is",
    "parse",
    "plain",
    "reference_target",
    "type_of",
]

#: Any error this package raises (all are ValueErrors).
FhirPathError = (FhirPathSyntaxError, FhirPathCompileError, FhirPathEvaluationError)


class Expression:
    """A parsed and compiled expression, ready to be evaluated many times."""

    __slots__ = ("_run", "node", "text")

    def __init__(self, text: str, node: Node | None = None) -> None:
        self.text = text
        self.node = node if node is not None else parse(text)
        self._run = compile_node(self.node)

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def evaluate(self, resource: Any, env: Env | None = None) -> list[Any]:
        """The result items; those whose type a choice suffix told are ``Typed``."""
        return self._run([resource], env if env is not None else Env(resource))

    def __call__(self, resource: Any, env: Env | None = None) -> list[Any]:
        """The result as plain JSON values (types dropped)."""
        return [plain(i) for i in self.evaluate(resource, env)]

    def typed(self, resource: Any, env: Env | None = None) -> list[tuple[Any, str | None]]:
        """The result as (JSON value, FHIR type or None) pairs.

        The type is known when a choice suffix named it (``valueQuantity``) or the
        value is a resource; otherwise it is None and the caller judges the shape.
        """
        return [(plain(i), type_of(i)) for i in self.evaluate(resource, env)]


@lru_cache(maxsize=4096)
def compile_expression(text: str) -> Expression:
    """Parse and compile an expression, once per distinct text."""
    return Expression(text)


def evaluate(resource: Any, text: str) -> list[Any]:
    """Evaluate an expression on a resource and return plain JSON values."""
    return compile_expression(text)(resource)
