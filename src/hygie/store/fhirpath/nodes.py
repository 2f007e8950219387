"""The syntax tree of a FHIRPath expression, as the parser builds it.

Each node keeps the span of source text it came from, so that a search parameter
can report the part of its expression that applies to one resource type
(``Observation.value as Quantity`` out of a union over many types).
See https://hl7.org/fhirpath/N1/#grammar for the grammar these nodes mirror.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every node: where it starts and ends in the expression text."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """A literal: string, boolean, integer, decimal, date/time, or ``{}`` (value None)."""

    value: Any
    #: FHIRPath system type name: String, Boolean, Integer, Decimal, Date, DateTime, Time.
    type: str | None


@dataclass(frozen=True, slots=True)
class Identifier(Node):
    """A bare name at the start of a path: a member of the focus, or a type name."""

    name: str


@dataclass(frozen=True, slots=True)
class Variable(Node):
    """``%resource``, ``%context``, ``%ucum``... and ``$this``, ``$index``, ``$total``."""

    name: str


@dataclass(frozen=True, slots=True)
class Member(Node):
    """``target.name``: the children called ``name`` of every item of ``target``."""

    target: Node
    name: str


@dataclass(frozen=True, slots=True)
class Call(Node):
    """A function invocation, ``target.name(args)``; ``target`` None means on the focus."""

    target: Node | None
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Indexer(Node):
    """``target[index]``: the item at a 0-based position."""

    target: Node
    index: Node


@dataclass(frozen=True, slots=True)
class Unary(Node):
    """``-x`` or ``+x``."""

    op: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """An infix operator: arithmetic, comparison, equality, boolean logic, union."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class TypeOp(Node):
    """``x is T`` or ``x as T``; also built for the functions ``is(T)`` and ``as(T)``."""

    op: str
    operand: Node
    type_name: str
