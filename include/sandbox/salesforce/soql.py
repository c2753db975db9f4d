"""SOQL for the Salesforce sandbox: a lark grammar and its translation to SQLite SQL.

The grammar covers field lists with parent relationship paths (``Account.Name``,
``Contact.Email``) and ``COUNT()``. ``WHERE`` takes AND/OR/NOT with parentheses, the
operators ``= != <> < <= > >=``, ``IN`` and ``NOT IN`` with value lists or a semi-join
sub-query, and ``LIKE`` with ``%`` and ``_``. Literals are null, true, false, numbers,
dates, datetimes and quoted strings. ``ORDER BY`` takes ASC/DESC and NULLS FIRST/LAST,
followed by ``LIMIT`` and ``OFFSET``.

Comparisons follow SOQL rather than SQL: text compares case-insensitively (Unicode case
folding), ``!=`` and ``NOT IN`` match null values, and a literal must have the type of its
field (quoted text for text and Id fields, unquoted dates and datetimes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from include.sandbox.salesforce.errors import SalesforceApiError, invalid_field, malformed_query
from include.sandbox.salesforce.ids import normalize_id
from include.sandbox.salesforce.schema import (
    ID_TYPES,
    NUMBER_TYPES,
    TEXT_TYPES,
    FieldDef,
    SObjectDef,
    find_sobject,
)
from include.sandbox.salesforce.store import format_datetime, parse_datetime

MAX_STATEMENT_LENGTH = 100_000
MAX_OFFSET = 2_000

GRAMMAR = r"""
start: select_query

select_query: "SELECT"i select_list "FROM"i NAME where_clause? order_clause? limit_clause? \
    offset_clause?

select_list: count_all | field_path ("," field_path)*
count_all: "COUNT"i "(" ")"
field_path: NAME ("." NAME)*

where_clause: "WHERE"i condition

// SOQL rejects AND and OR mixed without parentheses, so a chain uses one of them only.
?condition: and_chain | or_chain | negation
and_chain: negation ("AND"i negation)+
or_chain: negation ("OR"i negation)+
?negation: "NOT"i negation -> not_ | primary
?primary: "(" condition ")" | comparison

comparison: field_path COMPARATOR value -> compare
    | field_path "IN"i "(" value_list ")" -> in_list
    | field_path "NOT"i "IN"i "(" value_list ")" -> not_in_list
    | field_path "IN"i "(" select_query ")" -> in_subquery
    | field_path "NOT"i "IN"i "(" select_query ")" -> not_in_subquery
    | field_path "LIKE"i value -> like

value_list: value ("," value)*
value: STRING | NUMBER | DATETIME | DATE | TRUE | FALSE | NULL

order_clause: "ORDER"i "BY"i order_item ("," order_item)*
order_item: field_path DIRECTION? NULLS_ORDER?
limit_clause: "LIMIT"i NUMBER
offset_clause: "OFFSET"i NUMBER

COMPARATOR: "!=" | "<>" | "<=" | ">=" | "=" | "<" | ">"
DIRECTION: "ASC"i | "DESC"i
NULLS_ORDER.2: /NULLS\s+(FIRST|LAST)\b/i
TRUE: "TRUE"i
FALSE: "FALSE"i
NULL: "NULL"i
NAME: /[a-z_][a-z0-9_]*/i
STRING: /'(?:[^'\\]|\\.)*'/s
DATETIME.3: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})/
DATE.2: /\d{4}-\d{2}-\d{2}/
NUMBER: /[+-]?\d+(\.\d+)?/

%import common.WS
%ignore WS
"""

_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)

_STRING_ESCAPES = {
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "b": "\b",
    "f": "\f",
    '"': '"',
    "'": "'",
    "\\": "\\",
}


def decode_string(token: str, *, like: bool = False) -> list[tuple[str, bool]]:
    """Decode a quoted SOQL string literal into (character, is_wildcard) pairs.

    ``%`` and ``_`` are wildcards only in a LIKE pattern and only when not escaped. The
    escapes ``\\%`` and ``\\_`` are allowed only in a LIKE pattern.

    :raises SalesforceApiError: MALFORMED_QUERY for an invalid escape sequence.
    """
    body = token[1:-1]
    characters: list[tuple[str, bool]] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            characters.append((char, like and char in "%_"))
            index += 1
            continue
        escape = body[index + 1] if index + 1 < len(body) else ""
        if escape in _STRING_ESCAPES:
            characters.append((_STRING_ESCAPES[escape], False))
            index += 2
        elif escape == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[index + 2 : index + 6]):
            characters.append((chr(int(body[index + 2 : index + 6], 16)), False))
            index += 6
        elif like and escape in "%_" and escape:
            characters.append((escape, False))
            index += 2
        else:
            raise malformed_query(
                f"Invalid string literal {token}: illegal escape sequence '\\{escape}'. "
                "Valid escapes are \\n \\r \\t \\b \\f \\\" \\' \\\\ \\uXXXX, plus \\% and \\_ "
                "in LIKE patterns."
            )
    return characters


def string_value(token: str) -> str:
    """Return the text of a quoted SOQL string literal."""
    return "".join(char for char, _ in decode_string(token))


def like_pattern(token: str) -> str:
    """Translate a SOQL LIKE literal to the regular expression ``sf_like`` matches."""
    parts = []
    for char, is_wildcard in decode_string(token, like=True):
        if is_wildcard:
            parts.append(".*" if char == "%" else ".")
        else:
            parts.append(re.escape(char.casefold()))
    return "".join(parts)


@dataclass
class SelectedField:
    """One column of the select list: its path as written and where it is stored."""

    label: str
    path: list[str]
    field: FieldDef
    alias: str


@dataclass
class Join:
    """A parent relationship joined into the query."""

    alias: str
    parent_alias: str
    relationship: str
    definition: SObjectDef
    reference: FieldDef


@dataclass
class CompiledQuery:
    """A SOQL statement translated to SQLite.

    ``select_sql`` has no LIMIT; :func:`fetch_page` adds the page window. Rows start with the
    base Id and one Id per join, followed by the selected fields.
    """

    sobject: SObjectDef
    is_count: bool
    select_sql: str
    count_sql: str
    params: list[Any]
    fields: list[SelectedField]
    joins: list[Join]
    limit: int | None
    offset: int
    api_version: str = "59.0"
    join_index: dict[str, int] = field(default_factory=dict)

    def window(self, total_matches: int) -> int:
        """Return the number of rows the statement yields, after OFFSET and LIMIT."""
        remaining = max(0, total_matches - self.offset)
        return remaining if self.limit is None else min(remaining, self.limit)

    def record(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """Build a REST query record (with ``attributes``) from a result row."""
        base = self.sobject.name
        record: dict[str, Any] = {"attributes": self._attributes(base, row[0])}
        offset = 1 + len(self.joins)
        for position, selected in enumerate(self.fields):
            value = _json_value(selected.field, row[offset + position])
            target = record
            alias_path = []
            for relationship in selected.path[:-1]:
                alias_path.append(relationship)
                join_position = self.join_index["/".join(alias_path)]
                join = self.joins[join_position]
                parent_id = row[1 + join_position]
                key = join.relationship
                if parent_id is None:
                    target[key] = None
                    target = None
                    break
                if not isinstance(target.get(key), dict):
                    target[key] = {"attributes": self._attributes(join.definition.name, parent_id)}
                target = target[key]
            if target is not None:
                target[selected.field.name] = value
        return record

    def csv_values(self, row: tuple[Any, ...]) -> list[str]:
        """Build one Bulk API 2.0 CSV row (text values, empty for null)."""
        offset = 1 + len(self.joins)
        values = []
        for position, selected in enumerate(self.fields):
            value = _json_value(selected.field, row[offset + position])
            if value is None:
                values.append("")
            elif isinstance(value, bool):
                values.append("true" if value else "false")
            else:
                values.append(str(value))
        return values

    def _attributes(self, sobject: str, record_id: str) -> dict[str, str]:
        return {
            "type": sobject,
            "url": f"/services/data/v{self.api_version}/sobjects/{sobject}/{record_id}",
        }


def _json_value(field_def: FieldDef, value: Any) -> Any:
    if value is None:
        return None
    if field_def.type == "boolean":
        return bool(value)
    if field_def.type == "int":
        return int(value)
    if field_def.type in NUMBER_TYPES:
        return float(value)
    return value


def parse(statement: str) -> Tree:
    """Parse a SOQL statement.

    :raises SalesforceApiError: MALFORMED_QUERY for a statement over 100,000 characters or
        one the grammar rejects.
    """
    if len(statement) > MAX_STATEMENT_LENGTH:
        raise malformed_query(
            f"Query is too long: {len(statement)} characters, the maximum is "
            f"{MAX_STATEMENT_LENGTH}. Split the query into smaller ones."
        )
    try:
        return _PARSER.parse(statement)
    except UnexpectedEOF as exc:
        raise malformed_query("unexpected end of query") from exc
    except UnexpectedToken as exc:
        raise malformed_query(f"unexpected token: '{exc.token}'") from exc
    except UnexpectedCharacters as exc:
        snippet = statement[exc.pos_in_stream : exc.pos_in_stream + 20]
        raise malformed_query(f"unexpected token: '{snippet}'") from exc
    except UnexpectedInput as exc:
        raise malformed_query(f"invalid query: {exc}") from exc


def compile_soql(
    statement: str, *, include_deleted: bool = False, api_version: str = "59.0"
) -> CompiledQuery:
    """Parse and translate a SOQL statement for the sandbox store.

    :param statement: the SOQL text.
    :param include_deleted: True for ``queryAll`` (recycle-bin rows included).
    :param api_version: the version written into record ``attributes.url``.
    :raises SalesforceApiError: MALFORMED_QUERY, INVALID_TYPE, INVALID_FIELD,
        INVALID_QUERY_FILTER_OPERATOR or NUMBER_OUTSIDE_VALID_RANGE.
    """
    tree = parse(statement)
    compiler = _Compiler(alias_prefix="t")
    compiled = compiler.compile(tree.children[0], include_deleted=include_deleted)
    compiled.api_version = api_version
    return compiled


class _Compiler:
    def __init__(self, alias_prefix: str) -> None:
        self.alias_prefix = alias_prefix
        self.params: list[Any] = []
        self.joins: list[Join] = []
        self.join_index: dict[str, int] = {}
        self.base: SObjectDef | None = None
        self.base_alias = f"{alias_prefix}0"
        self.subquery_count = 0

    # Resolution

    def compile(self, query: Tree, *, include_deleted: bool) -> CompiledQuery:
        parts = {child.data: child for child in query.children if isinstance(child, Tree)}
        name_token = next(c for c in query.children if isinstance(c, Token))
        self.base = find_sobject(str(name_token))
        if self.base is None:
            raise SalesforceApiError(
                400,
                "INVALID_TYPE",
                f"sObject type '{name_token}' is not supported. If you are attempting to use a "
                "custom object, be sure to append the '__c' after the entity name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
            )

        select_list = parts["select_list"]
        is_count = select_list.children[0].data == "count_all"
        selected: list[SelectedField] = []
        if not is_count:
            seen: set[str] = set()
            for path_tree in select_list.children:
                item = self.resolve(path_tree)
                key = ".".join(item.path).lower()
                if key in seen:
                    raise malformed_query(f"duplicate field selected: {item.label}")
                seen.add(key)
                selected.append(item)

        where_sql = []
        if not include_deleted:
            where_sql.append(f"{self.base_alias}.IsDeleted = 0")
        if "where_clause" in parts:
            where_sql.append(self.condition(parts["where_clause"].children[0]))

        order_sql = self.order(parts.get("order_clause"))
        limit = self.integer(parts.get("limit_clause"), "LIMIT")
        offset = self.integer(parts.get("offset_clause"), "OFFSET") or 0
        if offset > MAX_OFFSET:
            raise SalesforceApiError(
                400,
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"Maximum SOQL offset allowed is {MAX_OFFSET}",
            )

        from_sql = self.from_sql()
        where_text = f" WHERE {' AND '.join(where_sql)}" if where_sql else ""
        id_columns = [f"{self.base_alias}.Id"] + [f"{join.alias}.Id" for join in self.joins]
        columns = id_columns + [f'{item.alias}."{item.field.name}"' for item in selected]
        select_sql = f"SELECT {', '.join(columns)} FROM {from_sql}{where_text} {order_sql}"
        count_sql = f"SELECT COUNT(*) FROM {from_sql}{where_text}"
        return CompiledQuery(
            sobject=self.base,
            is_count=is_count,
            select_sql=select_sql,
            count_sql=count_sql,
            params=self.params,
            fields=selected,
            joins=self.joins,
            limit=limit,
            offset=offset,
            join_index=self.join_index,
        )

    def from_sql(self) -> str:
        assert self.base is not None
        parts = [f'"{self.base.name}" {self.base_alias}']
        for join in self.joins:
            parts.append(
                f'LEFT JOIN "{join.definition.name}" {join.alias} '
                f'ON {join.alias}.Id = {join.parent_alias}."{join.reference.name}"'
            )
        return " ".join(parts)

    def resolve(self, path_tree: Tree) -> SelectedField:
        assert self.base is not None
        names = [str(token) for token in path_tree.children]
        label = ".".join(names)

        if (
            len(names) > 1
            and names[0].lower() == self.base.name.lower()
            and names[0].lower() not in self.base.relationships
        ):
            names = names[1:]

        definition = self.base
        alias = self.base_alias
        canonical: list[str] = []
        for relationship in names[:-1]:
            reference = definition.relationships.get(relationship.lower())
            if reference is None or reference.reference_to is None:
                raise invalid_field(
                    f"Didn't understand relationship '{relationship}' in field path. If you are "
                    "attempting to use a custom relationship, be sure to append the '__r' after "
                    "the custom relationship name. Please reference your WSDL or the describe "
                    "call for the appropriate names."
                )
            canonical.append(reference.relationship_name or relationship)
            key = "/".join(part.lower() for part in canonical)
            if key not in self.join_index:
                target = find_sobject(reference.reference_to)
                assert target is not None
                join_alias = f"{self.alias_prefix}{len(self.joins) + 1}"
                self.join_index[key] = len(self.joins)
                self.joins.append(
                    Join(join_alias, alias, reference.relationship_name or "", target, reference)
                )
            join = self.joins[self.join_index[key]]
            definition = join.definition
            alias = join.alias

        field_def = definition.field(names[-1])
        if field_def is None:
            raise invalid_field(
                f"No such column '{names[-1]}' on entity '{definition.name}'. If you are "
                "attempting to use a custom field, be sure to append the '__c' after the custom "
                "field name. Please reference your WSDL or the describe call for the "
                "appropriate names."
            )

        path = [*(c.lower() for c in canonical), field_def.name]
        return SelectedField(label, path, field_def, alias)

    # WHERE

    def condition(self, node: Tree) -> str:
        kind = node.data
        if kind in ("and_chain", "or_chain"):
            joiner = " AND " if kind == "and_chain" else " OR "
            return "(" + joiner.join(self.condition(child) for child in node.children) + ")"
        if kind == "not_":
            return f"(NOT COALESCE({self.condition(node.children[0])}, 0))"
        item = self.resolve(node.children[0])
        column = _comparable(item)
        if kind == "compare":
            return self.compare(item, column, str(node.children[1]), node.children[2])
        if kind in ("in_list", "not_in_list"):
            return self.in_list(item, column, node.children[1], negated=kind == "not_in_list")
        if kind in ("in_subquery", "not_in_subquery"):
            column = f'{item.alias}."{item.field.name}"'
            return self.semi_join(item, column, node.children[1], negated=kind.startswith("not"))
        if kind == "like":
            return self.like(item, node.children[1])
        raise malformed_query(f"unsupported condition {kind}")

    def literal(self, item: SelectedField, value_tree: Tree) -> Any:
        token: Token = value_tree.children[0]
        kind = token.type
        field_def = item.field
        field_type = field_def.type
        if kind == "NULL":
            return None
        if field_type in TEXT_TYPES or field_type in ID_TYPES:
            if kind != "STRING":
                raise _type_mismatch(field_def, "string", "should be enclosed in quotes")
            text = string_value(str(token))
            if field_type in ID_TYPES:
                normalized = normalize_id(text)
                if normalized is None:
                    raise SalesforceApiError(
                        400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {text}"
                    )
                return normalized
            return text.casefold()
        if field_type == "boolean":
            if kind not in ("TRUE", "FALSE"):
                raise _type_mismatch(field_def, "boolean", "should not be enclosed in quotes")
            return 1 if kind == "TRUE" else 0
        if field_type in NUMBER_TYPES:
            if kind != "NUMBER":
                raise _type_mismatch(field_def, "number", "should not be enclosed in quotes")
            return float(str(token))
        if field_type == "datetime":
            if kind != "DATETIME":
                raise _type_mismatch(field_def, "dateTime", "should not be enclosed in quotes")
            return format_datetime(parse_datetime(str(token)))
        if field_type == "date":
            if kind != "DATE":
                raise _type_mismatch(field_def, "date", "should not be enclosed in quotes")
            try:
                return date.fromisoformat(str(token)).isoformat()
            except ValueError as exc:
                raise malformed_query(f"invalid date: {token}") from exc
        raise malformed_query(f"unsupported field type {field_type}")

    def compare(self, item: SelectedField, column: str, operator: str, value: Tree) -> str:
        literal = self.literal(item, value)
        if operator == "<>":
            operator = "!="
        if literal is None:
            if operator == "=":
                return f"{column} IS NULL"
            if operator == "!=":
                return f"{column} IS NOT NULL"
            raise malformed_query(f"invalid operator {operator} for null")
        if item.field.type == "boolean" and operator not in ("=", "!="):
            raise SalesforceApiError(
                400,
                "INVALID_QUERY_FILTER_OPERATOR",
                f"invalid operator on boolean field: {item.label} {operator}",
            )
        self.params.append(literal)
        if operator == "!=":
            return f"{column} IS NOT ?"
        return f"{column} {operator} ?"

    def in_list(self, item: SelectedField, column: str, values: Tree, *, negated: bool) -> str:
        literals = [self.literal(item, value) for value in values.children]
        present = [value for value in literals if value is not None]
        has_null = len(present) != len(literals)
        self.params.extend(present)
        placeholders = ", ".join("?" for _ in present)
        if negated:
            clause = f"({column} NOT IN ({placeholders}) OR {column} IS NULL)" if present else "1"
            return f"({clause} AND {column} IS NOT NULL)" if has_null else clause
        clause = f"{column} IN ({placeholders})" if present else "0"
        return f"({clause} OR {column} IS NULL)" if has_null else clause

    def semi_join(self, item: SelectedField, column: str, query: Tree, *, negated: bool) -> str:
        if item.field.type not in ID_TYPES:
            raise malformed_query(
                f"semi join sub-selects are only allowed on Id and reference fields, "
                f"not on {item.label}"
            )
        self.subquery_count += 1
        sub = _Compiler(alias_prefix=f"{self.alias_prefix}s{self.subquery_count}_")
        compiled = sub.compile(query, include_deleted=False)
        if compiled.is_count or len(compiled.fields) != 1:
            raise malformed_query("a semi join sub-select must select exactly one Id field")
        selected = compiled.fields[0]
        if selected.field.type not in ID_TYPES:
            raise malformed_query(
                f"a semi join sub-select must select an Id or reference field, not {selected.label}"
            )
        if compiled.limit is not None or compiled.offset:
            raise malformed_query("LIMIT and OFFSET are not allowed in a semi join sub-select")
        sub_column = f'{selected.alias}."{selected.field.name}"'
        where = compiled.count_sql.split(" WHERE ", 1)[1]
        from_sql = sub.from_sql()
        self.params.extend(compiled.params)
        subquery = f"SELECT {sub_column} FROM {from_sql} WHERE {where} AND {sub_column} IS NOT NULL"
        if negated:
            return f"({column} IS NULL OR {column} NOT IN ({subquery}))"
        return f"{column} IN ({subquery})"

    def like(self, item: SelectedField, value: Tree) -> str:
        token: Token = value.children[0]
        if item.field.type not in TEXT_TYPES:
            raise SalesforceApiError(
                400,
                "INVALID_QUERY_FILTER_OPERATOR",
                f"invalid operator on field of type {item.field.type}: LIKE {item.label}",
            )
        if token.type != "STRING":
            raise _type_mismatch(item.field, "string", "should be enclosed in quotes")
        self.params.append(like_pattern(str(token)))
        return f'sf_like({item.alias}."{item.field.name}", ?)'

    # ORDER BY, LIMIT, OFFSET

    def order(self, clause: Tree | None) -> str:
        terms = []
        for order_item in clause.children if clause is not None else []:
            item = self.resolve(order_item.children[0])
            direction = "ASC"
            nulls = None
            for token in order_item.children[1:]:
                if token.type == "DIRECTION":
                    direction = str(token).upper()
                else:
                    nulls = "LAST" if str(token).upper().endswith("LAST") else "FIRST"
            term = f"{_comparable(item)} {direction}"
            # SQLite sorts nulls first ascending and last descending, as SOQL does by default.
            default_nulls = "FIRST" if direction == "ASC" else "LAST"
            if nulls is not None and nulls != default_nulls:
                term += f" NULLS {nulls}"
            terms.append(term)
        # The rowid tie-breaker keeps pages stable between queryMore calls.
        terms.append(f"{self.base_alias}.rowid")
        return "ORDER BY " + ", ".join(terms)

    @staticmethod
    def integer(clause: Tree | None, keyword: str) -> int | None:
        if clause is None:
            return None
        text = str(clause.children[0])
        if not text.isdigit():
            raise malformed_query(f"{keyword} must be a non-negative whole number, not {text}")
        return int(text)


def _comparable(item: SelectedField) -> str:
    """Return the SQL expression that compares and sorts a field as SOQL does.

    Text fields compare case-insensitively, so they go through ``sf_fold`` and their
    literals are casefolded to match. The store's Email and external Id indexes are built
    on the same expression.
    """
    column = f'{item.alias}."{item.field.name}"'
    return f"sf_fold({column})" if item.field.is_text else column


def _type_mismatch(field_def: FieldDef, expected: str, hint: str) -> SalesforceApiError:
    return invalid_field(
        f"value of filter criterion for field '{field_def.name}' must be of type {expected} "
        f"and {hint}",
        [field_def.name],
    )


def count_matches(connection: Any, compiled: CompiledQuery) -> int:
    """Return the number of rows the statement yields (after OFFSET and LIMIT)."""
    row = connection.execute(compiled.count_sql, compiled.params).fetchone()
    return compiled.window(int(row[0]))


def fetch_page(
    connection: Any, compiled: CompiledQuery, start: int, size: int
) -> list[tuple[Any, ...]]:
    """Fetch rows ``start`` .. ``start + size`` of the statement's result (0-based)."""
    if compiled.limit is not None:
        size = max(0, min(size, compiled.limit - start))
    if size == 0:
        return []
    sql = f"{compiled.select_sql} LIMIT ? OFFSET ?"
    return connection.execute(sql, [*compiled.params, size, compiled.offset + start]).fetchall()
