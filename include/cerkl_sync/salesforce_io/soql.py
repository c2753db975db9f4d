"""Pack many string values into ``IN (...)`` SOQL statements that fill the REST limits.

Salesforce limits a SOQL statement to 100,000 characters and a REST request URI to 16,384
bytes, and a string literal inside a WHERE clause to 4,000 characters. A query travels URL
encoded in the ``q`` parameter of a GET request, where ``'`` costs 3 bytes and a non-ASCII
character 6 to 12, so the URI limit is usually the one that binds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from urllib.parse import quote_plus

VALUES_PLACEHOLDER = "{values}"
MAX_STATEMENT_CHARS = 100_000
MAX_REQUEST_URI_BYTES = 16_384
MAX_WHERE_STRING_CHARS = 4_000


def encoded_length(text: str) -> int:
    """Return the length of ``text`` once form-encoded as ``requests`` encodes query params."""
    return len(quote_plus(text, safe=""))


def check_string_value(position: int, value: object) -> str:
    """Return ``value`` when it can be a SOQL string literal, else raise ValueError.

    The message gives the value's position and never the value.
    """
    if not isinstance(value, str):
        raise ValueError(
            f"value at position {position} is a {type(value).__name__}, not a string: "
            "pass the values as strings"
        )
    if len(value) > MAX_WHERE_STRING_CHARS:
        raise ValueError(
            f"value at position {position} has {len(value)} characters, and SOQL allows "
            f"at most {MAX_WHERE_STRING_CHARS} in a string literal: drop or shorten it"
        )
    return value


def split_template(soql_template: str) -> tuple[str, str]:
    """Split a template at its one ``{values}`` placeholder.

    :raises ValueError: when the template has no placeholder or more than one.
    """
    found = soql_template.count(VALUES_PLACEHOLDER)
    if found != 1:
        raise ValueError(
            f"SOQL template must contain exactly one {VALUES_PLACEHOLDER} placeholder, found "
            f"{found}: write it where the IN list goes, e.g. "
            f"'SELECT Id FROM Contact WHERE Email IN {VALUES_PLACEHOLDER}'"
        )
    head, tail = soql_template.split(VALUES_PLACEHOLDER)
    return head, tail


def pack_in_statements(
    soql_template: str,
    values: Iterable[str],
    *,
    uri_prefix: str,
    max_uri_bytes: int = MAX_REQUEST_URI_BYTES,
    max_statement_chars: int = MAX_STATEMENT_CHARS,
) -> Iterator[str]:
    """Yield statements that together hold every value once, each within both limits.

    Each value is quoted and escaped as a SOQL string literal. Statements are filled in input
    order, and a new one starts when the next value would overflow either limit, so every
    statement but the last is full to within one value.

    :param soql_template: SOQL with one ``{values}`` placeholder where the IN list goes.
    :param values: the strings to match; the caller removes duplicates.
    :param uri_prefix: everything of the request URL before the encoded statement, for
        example ``https://host/services/data/v59.0/query?q=``.
    :param max_uri_bytes: the maximum length of the full encoded request URL.
    :param max_statement_chars: the maximum length of one statement.
    :return: an iterator of statements. It yields nothing when ``values`` is empty.
    :raises ValueError: when the template is invalid, or when a value is not a string, is
        longer than 4,000 characters or does not fit in a statement on its own. The message
        gives the value's position and never the value.
    """
    from simple_salesforce.format import quote_soql_value

    head, tail = split_template(soql_template)
    fixed_bytes = len(uri_prefix) + encoded_length(f"{head}(){tail}")
    fixed_chars = len(head) + len("()") + len(tail)
    comma_bytes = encoded_length(",")

    literals: list[str] = []
    used_bytes = fixed_bytes
    used_chars = fixed_chars
    for position, value in enumerate(values):
        literal = quote_soql_value(check_string_value(position, value))
        literal_bytes = encoded_length(literal)
        if fixed_bytes + literal_bytes > max_uri_bytes or fixed_chars + len(literal) > (
            max_statement_chars
        ):
            raise ValueError(
                f"value at position {position} does not fit in one query statement "
                f"({literal_bytes} bytes encoded, limit {max_uri_bytes - fixed_bytes}): "
                "shorten the template or drop the value"
            )

        separator_bytes = comma_bytes if literals else 0
        separator_chars = 1 if literals else 0
        over_uri = used_bytes + separator_bytes + literal_bytes > max_uri_bytes
        over_chars = used_chars + separator_chars + len(literal) > max_statement_chars
        if literals and (over_uri or over_chars):
            yield f"{head}({','.join(literals)}){tail}"
            literals = []
            used_bytes = fixed_bytes
            used_chars = fixed_chars
            separator_bytes = 0
            separator_chars = 0

        literals.append(literal)
        used_bytes += separator_bytes + literal_bytes
        used_chars += separator_chars + len(literal)

    if literals:
        yield f"{head}({','.join(literals)}){tail}"
