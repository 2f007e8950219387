"""Tokenizer and precedence-climbing parser for FHIRPath (N1, normative 2.0.0).

It reads the whole expression grammar (paths, indexers, function calls, every
operator with its precedence, literals including dates and ``{}``, ``%`` and ``$``
variables, delimited identifiers), which is more than the R4 search-parameter
expressions need but costs little, and fails with ``FhirPathSyntaxError`` naming
the position of the first token it cannot place. Quantity literals (``4 'mg'``)
are not read. See https://hl7.org/fhirpath/N1/#grammar and #operator-precedence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal

from hygie.store.fhirpath.nodes import (
    Binary,
    Call,
    Identifier,
    Indexer,
    Literal,
    Member,
    Node,
    TypeOp,
    Unary,
    Variable,
)


class FhirPathSyntaxError(ValueError):
    """Raised when an expression does not follow the FHIRPath grammar; says where."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # ident, qident, string, number, datetime, time, var, op, eof
    text: str
    start: int
    end: int


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<datetime>@\d{4}(?:-\d{2}(?:-\d{2})?)?
        (?:T(?:\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?)?(?:Z|[+-]\d{2}:\d{2})?)?)
  | (?P<time>@T\d{2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<qident>`(?:[^`\\]|\\.)*`)
  | (?P<var>[%$](?:[A-Za-z_][A-Za-z0-9_]*|`(?:[^`\\]|\\.)*`|'(?:[^'\\]|\\.)*'))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|!~|[-+*/&|=~<>.,()\[\]{}])
    """,
    re.VERBOSE | re.DOTALL,
)

_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n",
            "r": "\r", "t": "\t"}


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and i + 5 < len(body):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens; comments and white space are dropped."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise FhirPathSyntaxError(f"unexpected character {text[pos]!r} at {pos} in {text!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, m.group(), m.start(), m.end()))
        pos = m.end()
    tokens.append(Token("eof", "", len(text), len(text)))
    return tokens


#: Binding power of each infix operator (higher binds tighter); N1 section 5.
_INFIX: dict[str, int] = {
    "implies": 1,
    "or": 2, "xor": 2,
    "and": 3,
    "in": 4, "contains": 4,
    "=": 5, "~": 5, "!=": 5, "!~": 5,
    "<": 6, ">": 6, "<=": 6, ">=": 6,
    "|": 7,
    "is": 8, "as": 8,
    "+": 9, "-": 9, "&": 9,
    "*": 10, "/": 10, "div": 10, "mod": 10,
}
_UNARY_POWER = 11
_WORD_OPERATORS = {"implies", "or", "xor", "and", "in", "contains", "is", "as", "div", "mod"}
_TYPE_FUNCTIONS = {"is", "as"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # --- token helpers -------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> Token:
        tok = self.tok
        if tok.kind != "op" or tok.text != text:
            self.fail(f"expected {text!r}")
        return self.advance()

    def fail(self, what: str) -> None:
        tok = self.tok
        found = repr(tok.text) if tok.kind != "eof" else "end of expression"
        raise FhirPathSyntaxError(f"{what}, found {found} at {tok.start} in {self.text!r}")

    def infix_op(self) -> str | None:
        tok = self.tok
        if tok.kind == "op" and tok.text in _INFIX:
            return tok.text
        if tok.kind == "ident" and tok.text in _WORD_OPERATORS:
            return tok.text
        return None

    # --- grammar -------------------------------------------------------------

    def parse(self) -> Node:
        node = self.expression(0)
        if self.tok.kind != "eof":
            self.fail("expected an operator or the end")
        return node

    def expression(self, min_power: int) -> Node:
        left = self.prefix()
        while True:
            op = self.infix_op()
            if op is None:
                return left
            power = _INFIX[op]
            if power <= min_power:
                return left
            self.advance()
            if op in ("is", "as"):
                type_name = self.type_specifier()
                left = TypeOp(left.start, self.tokens[self.i - 1].end, op, left, type_name)
                continue
            right = self.expression(power)
            left = Binary(left.start, right.end, op, left, right)

    def prefix(self) -> Node:
        tok = self.tok
        if tok.kind == "op" and tok.text in ("+", "-"):
            self.advance()
            operand = self.expression(_UNARY_POWER)
            return Unary(tok.start, operand.end, tok.text, operand)
        return self.postfix(self.term())

    def postfix(self, node: Node) -> Node:
        while True:
            tok = self.tok
            if tok.kind == "op" and tok.text == ".":
                self.advance()
                name_tok = self.advance()
                if name_tok.kind not in ("ident", "qident"):
                    self.i -= 1
                    self.fail("expected a name after '.'")
                name = self.identifier_text(name_tok)
                if self.tok.kind == "op" and self.tok.text == "(":
                    node = self.call(node, name, node.start)
                else:
                    node = Member(node.start, name_tok.end, node, name)
            elif tok.kind == "op" and tok.text == "[":
                self.advance()
                index = self.expression(0)
                end = self.expect("]").end
                node = Indexer(node.start, end, node, index)
            else:
                return node

    def call(self, target: Node | None, name: str, start: int) -> Node:
        self.expect("(")
        args: list[Node] = []
        if not (self.tok.kind == "op" and self.tok.text == ")"):
            while True:
                args.append(self.expression(0))
                if self.tok.kind == "op" and self.tok.text == ",":
                    self.advance()
                    continue
                break
        end = self.expect(")").end
        if name in _TYPE_FUNCTIONS:
            # x.as(T) and x.is(T) mean the operators; T is a type, not an expression.
            if len(args) != 1:
                raise FhirPathSyntaxError(f"{name}() takes one type name in {self.text!r}")
            operand = target if target is not None else Variable(start, start, "$this")
            return TypeOp(start, end, name, operand, _type_name_of(args[0], self.text))
        return Call(start, end, target, name, tuple(args))

    def term(self) -> Node:
        tok = self.advance()
        if tok.kind == "number":
            value: object = Decimal(tok.text) if "." in tok.text else int(tok.text)
            return Literal(tok.start, tok.end, value, "Decimal" if "." in tok.text else "Integer")
        if tok.kind == "string":
            return Literal(tok.start, tok.end, _unescape(tok.text[1:-1]), "String")
        if tok.kind == "datetime":
            body = tok.text[1:]
            kind = "DateTime" if "T" in body else "Date"
            return Literal(tok.start, tok.end, body.rstrip("T"), kind)
        if tok.kind == "time":
            return Literal(tok.start, tok.end, tok.text[2:], "Time")
        if tok.kind == "var":
            body = tok.text[1:]
            if body[:1] in ("`", "'"):
                body = _unescape(body[1:-1])
            return Variable(tok.start, tok.end, tok.text[0] + body)
        if tok.kind == "ident" and tok.text in ("true", "false"):
            return Literal(tok.start, tok.end, tok.text == "true", "Boolean")
        if tok.kind in ("ident", "qident"):
            name = self.identifier_text(tok)
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(None, name, tok.start)
            return Identifier(tok.start, tok.end, name)
        if tok.kind == "op" and tok.text == "(":
            inner = self.expression(0)
            end = self.expect(")").end
            # The span takes the parentheses in, so that the text of a part reads alone.
            return replace(inner, start=tok.start, end=end)
        if tok.kind == "op" and tok.text == "{":
            end = self.expect("}").end
            return Literal(tok.start, end, None, None)
        self.i -= 1
        self.fail("expected a term")
        raise AssertionError("unreachable")

    def type_specifier(self) -> str:
        tok = self.advance()
        if tok.kind not in ("ident", "qident"):
            self.i -= 1
            self.fail("expected a type name")
        parts = [self.identifier_text(tok)]
        while self.tok.kind == "op" and self.tok.text == "." and self.tokens[self.i + 1].kind in (
            "ident",
            "qident",
        ):
            self.advance()
            parts.append(self.identifier_text(self.advance()))
        return ".".join(parts)

    @staticmethod
    def identifier_text(tok: Token) -> str:
        return _unescape(tok.text[1:-1]) if tok.kind == "qident" else tok.text


def _type_name_of(node: Node, text: str) -> str:
    """Read a type specifier written as a function argument: ``Age`` or ``FHIR.Age``."""
    if isinstance(node, Identifier):
        return node.name
    if isinstance(node, Member) and isinstance(node.target, Identifier):
        return f"{node.target.name}.{node.name}"
    raise FhirPathSyntaxError(f"expected a type name at {node.start} in {text!r}")


def parse(text: str) -> Node:
    """Parse a FHIRPath expression into its syntax tree."""
    return _Parser(text).parse()
